"""The work of ``ostinato render``: expand inputs, map them to outputs, render each (in parallel with -j)."""

from __future__ import annotations

import argparse
import glob
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from .audio_io import AUDIO_FORMATS

_STATE: dict = {}  # per process: the renderer, built once and kept loaded across files


@dataclass(frozen=True)
class Job:
    """One input file and the audio file it becomes."""

    source: str
    output: Path


def expand_inputs(inputs: list[str]) -> list[tuple[str, Path]]:
    """``(file, path relative to the output folder)`` for files, folders (recursive) and globs."""
    from ostinato.events import READ_SUFFIXES, InputError

    found: list[tuple[str, Path]] = []
    for item in inputs:
        if item.startswith("music21:"):
            found.append((item, Path(item[len("music21:"):].replace("/", "_"))))
        elif any(ch in item for ch in "*?["):
            prefix = item.split("*")[0].split("?")[0].split("[")[0]
            root = Path(prefix) if prefix.endswith(os.sep) else Path(prefix).parent
            matches = sorted(p for p in glob.glob(item, recursive=True) if Path(p).is_file())
            if not matches:
                raise InputError(item, "no file matches this pattern")
            found += [(p, Path(os.path.relpath(p, root))) for p in matches]
        elif Path(item).is_dir():
            files = sorted(p for p in Path(item).rglob("*") if p.is_file() and p.suffix.lower() in READ_SUFFIXES)
            found += [(str(p), Path(Path(item).resolve().name) / p.relative_to(item)) for p in files]
        else:
            found.append((item, Path(Path(item).name)))
    return found


def plan(inputs: list[str], output: str, fmt: str | None) -> list[Job]:
    """The jobs: one input and an audio-extension OUT -> that file; otherwise OUT is a folder."""
    files = expand_inputs(inputs)
    single = len(files) == 1 and len(inputs) == 1 and not Path(inputs[0]).is_dir()
    if single and Path(output).suffix.lower().lstrip(".") in AUDIO_FORMATS and not Path(output).is_dir():
        return [Job(files[0][0], Path(output))]
    suffix = "." + (fmt or "wav")
    return [Job(source, Path(output) / relative.with_suffix(suffix)) for source, relative in files]


def _renderer(engine: str, options: dict):
    key = (engine, tuple(sorted(options.items())))
    if _STATE.get("key") != key:
        if engine != "soundfont":
            _one_torch_thread()  # files run in parallel with -j instead; many threads thrash on a busy machine
        from . import get_renderer

        _STATE["renderer"] = get_renderer(engine, **options)
        _STATE["key"] = key
    return _STATE["renderer"]


def render_one(job: Job, engine: str, options: dict, sample_rate_hz: int, gain: float, fmt: str | None) -> int:
    """Render one job (every piece of the file; a multi-tune ABC file gives ``NAME-X`` files). Returns samples."""
    from ostinato import events

    from .audio_io import write_audio_stream
    from .base import N_CHANNELS

    pieces = events.pieces(job.source)
    renderer = _renderer(engine, options)
    written = 0
    for piece in pieces:
        output = job.output
        if len(pieces) > 1:
            output = job.output.with_name(f"{job.output.stem}-{piece.key.rsplit('#', 1)[-1]}{job.output.suffix}")
        table = piece.read()
        blocks = renderer.stream(table, sample_rate_hz)
        if gain != 1.0:
            blocks = (block * gain for block in blocks)
        written += write_audio_stream(blocks, sample_rate_hz, output, fmt, n_channels=N_CHANNELS)
    return written


def _one_torch_thread() -> None:
    import torch

    torch.set_num_threads(1)


@dataclass(frozen=True)
class Failure:
    """A file that failed, as text (exceptions do not always survive pickling between processes)."""

    line: str
    traceback: str


def _run_job(job: Job, engine: str, options: dict, sample_rate_hz: int, gain: float, fmt: str | None):
    try:
        return job, render_one(job, engine, options, sample_rate_hz, gain, fmt), None
    except Exception as exc:  # reported by the parent, one line
        import traceback

        from ostinato.events.errors import one_line

        return job, 0, Failure(one_line(exc, job.source), "".join(traceback.format_exception(exc)))


def _parallel(todo: list[Job], args: argparse.Namespace, options: dict, fmt: str | None):
    """Results of ``todo`` rendered by ``args.jobs`` fresh (spawned) processes, in completion order.

    A worker that dies takes only its own file down: the file is reported and the rest go on.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    pending = list(todo)
    while pending:
        pool = ProcessPoolExecutor(max_workers=args.jobs, mp_context=multiprocessing.get_context("spawn"))
        futures = {pool.submit(_run_job, job, args.engine, options, args.sample_rate, args.gain, fmt): job
                   for job in pending}
        pending = []
        broken = False
        for future in as_completed(futures):
            job = futures[future]
            try:
                yield future.result()
            except BrokenProcessPool:
                if broken:
                    pending.append(job)  # an innocent bystander: try it again in a new pool
                else:
                    broken = True
                    yield job, 0, Failure(f"{job.source}: the rendering process died", "")
        pool.shutdown(cancel_futures=True)


def render_files(args: argparse.Namespace) -> int:
    """Run ``ostinato render``: 0 when every file rendered (or was skipped), 1 when any failed."""
    from .base import ENGINES, check_sample_rate

    if args.engine not in ENGINES:
        print(f"ostinato: render: unknown engine {args.engine!r} (choose {', '.join(sorted(ENGINES))})",
              file=sys.stderr)
        return 2
    try:
        check_sample_rate(args.sample_rate)
    except ValueError as exc:
        print(f"ostinato: render: {exc}", file=sys.stderr)
        return 2
    if args.jobs < 1:
        print(f"ostinato: render: --jobs must be >= 1, got {args.jobs}", file=sys.stderr)
        return 2
    options: dict = {}
    if args.soundfont:
        if args.engine != "soundfont":
            print("ostinato: render: --soundfont needs --engine soundfont", file=sys.stderr)
            return 2
        options["soundfont"] = args.soundfont
    if args.model:
        if args.engine == "soundfont":
            print("ostinato: render: --model is for the ddsp/wavenet engines", file=sys.stderr)
            return 2
        options["model"] = args.model
    temperature = getattr(args, "temperature", None)
    if temperature is not None:
        if args.engine != "wavenet":
            print("ostinato: render: --temperature is for the wavenet engine", file=sys.stderr)
            return 2
        if not 0 <= temperature <= 10:
            print(f"ostinato: render: --temperature must be in 0..10, got {temperature}", file=sys.stderr)
            return 2
        options["temperature"] = temperature
    if args.engine == "wavenet" and args.quiet == 0:
        options["announce"] = True  # the expected time on a CPU, on stderr
    fmt = args.format
    jobs = plan(args.inputs, args.output, fmt)
    failed = 0
    todo = []
    for job in jobs:
        if job.output.exists() and not args.overwrite:
            if args.quiet == 0:
                print(f"ostinato: {job.output}: exists, skipped (use --overwrite to replace it)", file=sys.stderr)
        else:
            todo.append(job)
    from tqdm import tqdm

    bar = tqdm(total=len(todo), desc="render", unit="file", disable=args.quiet > 0 or len(todo) < 2)
    if args.jobs == 1 or len(todo) < 2:
        results = (_run_job(job, args.engine, options, args.sample_rate, args.gain, fmt) for job in todo)
    else:
        results = _parallel(todo, args, options, fmt)
    for job, _, exc in results:
        bar.update(1)
        if exc is not None:
            failed += 1
            bar.clear()
            if args.debug:
                print(exc.traceback, file=sys.stderr, end="")
            print(f"ostinato: {exc.line}", file=sys.stderr, flush=True)
        elif args.verbose:
            bar.write(f"ostinato: {job.source} -> {job.output}", file=sys.stderr)
    bar.close()
    return 1 if failed else 0
