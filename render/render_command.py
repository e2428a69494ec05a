"""The work of ``ostinato render``: a :class:`RenderRequest` in, every input rendered to an audio file.

    request = RenderRequest(inputs=("song.mid",), output="song.flac", engine="soundfont")
    exit_code = render_files(request)     # 0: every file rendered or skipped; 1: some failed

Inputs are expanded into jobs (:func:`plan`: one input and an audio-suffix output is one file;
otherwise the output is a folder mirroring the input names), and each job is rendered by a
:class:`RenderWorker`, in this process or in ``jobs`` spawned processes (one worker each).
"""

from __future__ import annotations

import math
import os
import sys
from dataclasses import dataclass
from pathlib import Path

from ostinato.events import AUDIO_FORMATS
from ostinato.events.errors import UsageError

MUSIC21_PREFIX = "music21:"


@dataclass(frozen=True)
class RenderRequest:
    """What ``ostinato render`` is asked to do (validated: a bad value is a :class:`UsageError`).

    Attributes:
        inputs: files, folders (recursive), globs or ``music21:<piece>`` names.
        output: the audio file (one input), or the folder the outputs mirror the inputs in.
        engine: a registered engine (``ddsp``, ``soundfont``, ``wavenet``).
        sample_rate_hz: the output rate; gain: the audio is multiplied by this.
        soundfont: the soundfont engine's SoundFont; model: the ddsp/wavenet model folder or name.
        format: ``wav``, ``flac`` or ``ogg`` (default: the output's suffix, else wav).
        jobs: files rendered in parallel (spawned processes).
        temperature: the wavenet engine's sampling temperature (0..10).
        overwrite: replace existing outputs (else they are skipped).
        quiet, verbose, debug: what is printed on stderr (nothing but errors; each file; tracebacks).
    """

    inputs: tuple[str, ...]
    output: str
    engine: str = "ddsp"
    sample_rate_hz: int = 44100
    gain: float = 1.0
    soundfont: str | None = None
    model: str | None = None
    format: str | None = None
    jobs: int = 1
    temperature: float | None = None
    mono: bool = False              # the same mix in both channels (default: the tracks panned)
    overwrite: bool = False
    quiet: bool = False
    verbose: bool = False
    debug: bool = False

    def __post_init__(self) -> None:
        from .base import ENGINES, check_sample_rate

        object.__setattr__(self, "inputs", tuple(os.fspath(i) for i in self.inputs))
        object.__setattr__(self, "output", os.fspath(self.output))

        def usage(problem: str) -> UsageError:
            return UsageError("render", problem)

        if self.engine not in ENGINES:
            raise usage(f"unknown engine {self.engine!r} (choose {', '.join(sorted(ENGINES))})")
        try:
            check_sample_rate(self.sample_rate_hz)
        except ValueError as exc:
            raise usage(str(exc)) from None
        if self.jobs < 1:
            raise usage(f"--jobs must be >= 1, got {self.jobs}")
        if not (math.isfinite(self.gain) and self.gain > 0):   # nan would write full-scale DC
            raise usage(f"--gain must be a finite number above 0, got {self.gain}")
        if self.format is not None and self.format not in AUDIO_FORMATS:
            raise usage(f"--format must be one of {', '.join(AUDIO_FORMATS)}, got {self.format!r}")
        suffix = Path(self.output).suffix
        if suffix and suffix.lower().lstrip(".") not in AUDIO_FORMATS and not Path(self.output).is_dir():
            raise usage(f"-o {self.output}: unknown audio extension {suffix!r} (write .{', .'.join(AUDIO_FORMATS)}; "
                        f"a folder of outputs is named without an extension)")
        if self.soundfont and self.engine != "soundfont":
            raise usage("--soundfont needs --engine soundfont")
        if self.model and self.engine == "soundfont":
            raise usage("--model is for the ddsp/wavenet engines")
        if self.temperature is not None:
            if self.engine != "wavenet":
                raise usage("--temperature is for the wavenet engine")
            if not 0 <= self.temperature <= 10:
                raise usage(f"--temperature must be in 0..10, got {self.temperature}")

    def engine_options(self) -> dict:
        """The keyword arguments of ``get_renderer(self.engine, ...)``."""
        options: dict = {}
        if self.soundfont:
            options["soundfont"] = self.soundfont
        if self.model:
            options["model"] = self.model
        if self.temperature is not None:
            options["temperature"] = self.temperature
        if self.engine == "wavenet" and not self.quiet:
            options["announce"] = True  # the expected time on a CPU, on stderr
        return options


@dataclass(frozen=True)
class Job:
    """One input file (or one tune of an ABC file) and the audio file it becomes.

    Attributes:
        source: the input file or ``music21:`` name.
        output: the audio file.
        tune: the key suffix of one ABC tune (``"3"``; ``"3.2"`` for a second ``X:3``), None: the whole file.
    """

    source: str
    output: Path
    tune: str | None = None

    @property
    def name(self) -> str:
        """The input as messages name it: ``file`` or ``file#tune``."""
        return self.source if self.tune is None else f"{self.source}#{self.tune}"


def expand_inputs(inputs: list[str] | tuple[str, ...]) -> list[tuple[str, Path]]:
    """``(file, path relative to the output folder)`` for files, folders (recursive) and globs.

    Folders and globs are enumerated by :func:`events.sources.iter_items` (hidden files skipped;
    an ABC file is one file here, its tunes become ``NAME-X`` outputs). A folder maps to
    ``<folder name>/<relative path>``, a glob's files to their path below its fixed part, a file
    to its name, ``music21:a/b`` to ``a_b``. A file that does not exist is kept: rendering it
    reports the problem, and the other inputs are still rendered.

    Raises:
        events.InputError: a glob matches nothing, or a folder holds no music files.
    """
    from ostinato.events.sources import iter_items

    found: list[tuple[str, Path]] = []
    for item in inputs:
        if item.startswith(MUSIC21_PREFIX):
            found.append((item, Path(item[len(MUSIC21_PREFIX):].replace("/", "_"))))
            continue
        path = Path(item)
        is_glob = not path.exists() and any(ch in item for ch in "*?[")
        if not is_glob and not path.is_dir():
            found.append((item, Path(path.name)))
            continue
        if is_glob:
            prefix = item.split("*")[0].split("?")[0].split("[")[0]
            root = Path(prefix) if prefix.endswith(os.sep) else Path(prefix).parent
        else:
            root = path
        files = dict.fromkeys(p.path for p in iter_items(item))  # the tunes of an ABC file share one path
        for file in files:
            relative = Path(os.path.relpath(file, root))
            found.append((file, Path(path.resolve().name) / relative if not is_glob else relative))
    return found


def _tune_keys(source: str) -> list[str] | None:
    """The key suffixes of the tunes of a local ABC file (``tune_keys``), or None (not ABC, or unreadable:
    the job then reads the whole file and reports why it cannot)."""
    from ostinato.events import InputError
    from ostinato.events.abc_read import ABC_SUFFIXES, read_abc_text, split_tunes, tune_keys

    if source.startswith(MUSIC21_PREFIX) or Path(source).suffix.lower() not in ABC_SUFFIXES:
        return None
    try:
        tunes = split_tunes(read_abc_text(source))
    except InputError:
        return None
    return tune_keys(tunes) or None


def plan(inputs: list[str] | tuple[str, ...], output: str, fmt: str | None) -> list[Job]:
    """The jobs: one input and an audio-extension OUT -> that file; otherwise OUT is a folder.

    An ABC file of several tunes gives one job per tune, its output named ``NAME-X`` (``NAME-X.2`` for
    a second tune numbered X), so existing outputs are skipped tune by tune. The same input given
    twice (the same real file, read as the same format) is one job.
    """
    files = expand_inputs(inputs)
    single = len(files) == 1 and len(inputs) == 1 and not Path(inputs[0]).is_dir()
    if single and Path(output).suffix.lower().lstrip(".") in AUDIO_FORMATS and not Path(output).is_dir():
        targets = [(files[0][0], Path(output))]
    else:
        suffix = "." + (fmt or "wav")
        targets = [(source, Path(output) / relative.with_suffix(suffix)) for source, relative in files]
    jobs: dict[tuple, Job] = {}
    for source, target in targets:
        tunes = _tune_keys(source)
        if tunes is None or len(tunes) == 1:
            found = [Job(source, target, tunes[0] if tunes else None)]
        else:
            found = [Job(source, target.with_name(f"{target.stem}-{tune}{target.suffix}"), tune) for tune in tunes]
        for job in found:
            same = (os.path.realpath(job.source), Path(job.source).suffix.lower(), job.tune,
                    os.path.abspath(job.output))
            jobs.setdefault(same, job)
    return list(jobs.values())


def distinct_jobs(jobs: list[Job]) -> tuple[list[Job], list[str], list[str]]:
    """Every job with an output of its own: ``(jobs, failure lines, rename notes)``.

    Two inputs can map to one output (``a.mid`` beside ``a.abc``; two source folders of one name;
    ``x.abc`` of tunes 1 and 2 beside a file ``x-1.mid``). The first keeps it; a later one is written
    with its input's suffix kept (``a.abc.wav``, noted), and when that name is taken too it fails,
    naming the input that holds its output, so no rendered file ever replaces another input's.
    """
    from ostinato.events.outputs import OutputClaims, output_name

    claims = OutputClaims()
    kept, failures, notes = [], [], []
    for job in jobs:
        options = [job.output]
        suffix = Path(job.source).suffix
        if suffix and not job.source.startswith(MUSIC21_PREFIX):
            options.append(job.output.with_name(f"{job.output.stem}{suffix}{job.output.suffix}"))
        for output in options:
            if claims.claim([output_name(output)], job) is None:
                if output != job.output:
                    notes.append(f"{job.name}: its output {job.output} is also "
                                 f"{claims.owner([output_name(job.output)]).name}'s; written as {output.name}")
                    job = Job(job.source, output, job.tune)
                kept.append(job)
                break
        else:
            owner = claims.owner([output_name(job.output)])
            failures.append(f"{job.name}: OutputCollision: its output {job.output} is also {owner.name}'s; rename "
                            f"one of them or render them into separate folders")
    return kept, failures, notes


@dataclass(frozen=True)
class Failure:
    """A file that failed, as text (exceptions do not always survive pickling between processes)."""

    line: str
    traceback: str


class RenderWorker:
    """Renders jobs with one renderer, built on the first job and kept loaded across files.

    Each process has its own: the parent's for ``jobs == 1``, else one per pool process, made by
    the pool's initializer. A renderer that cannot be built fails the job (and is tried again
    on the next one).
    """

    def __init__(self, engine: str, options: dict, sample_rate_hz: int, gain: float, fmt: str | None,
                 mono: bool = False):
        self.engine, self.options = engine, dict(options)
        self.sample_rate_hz, self.gain, self.fmt, self.mono = sample_rate_hz, gain, fmt, mono
        self.renderer = None
        self.one_thread = False  # set in pool processes (start_process_worker)

    @classmethod
    def for_request(cls, request: RenderRequest) -> RenderWorker:
        return cls(request.engine, request.engine_options(), request.sample_rate_hz, request.gain, request.format,
                   request.mono)

    def get_renderer(self):
        """The worker's renderer (built on first use)."""
        if self.renderer is None:
            if self.engine == "wavenet":
                import torch

                torch.set_num_threads(1)  # files run in parallel with -j instead; many threads thrash a busy machine
            elif self.one_thread:  # a pool process: -j processes share the cores, one BLAS thread each
                from threadpoolctl import threadpool_limits

                threadpool_limits(1)
            from . import get_renderer

            options = dict(self.options)
            if self.one_thread and self.engine == "ddsp":
                options["threads"] = 1  # one chunk at a time: the pool's processes already use every core
            self.renderer = get_renderer(self.engine, **options)
        return self.renderer

    def render(self, job: Job) -> int:
        """Render one job (every piece of the file; a multi-tune ABC file gives ``NAME-X`` files). Returns samples."""
        from ostinato import events

        from .audio_io import write_audio_stream
        from .base import N_CHANNELS

        pieces = events.pieces(job.source)
        if job.tune is not None:
            pieces = [piece for piece in pieces if piece.key.rsplit("#", 1)[-1] == job.tune]
            if not pieces:
                raise events.InputError(job.name, "this tune is gone (the file changed while rendering)")
        renderer = self.get_renderer()
        written = 0
        for piece in pieces:
            output = job.output
            if len(pieces) > 1:
                output = job.output.with_name(f"{job.output.stem}-{piece.key.rsplit('#', 1)[-1]}{job.output.suffix}")
            table = piece.read()
            blocks = renderer.stream(table, self.sample_rate_hz)
            if self.gain != 1.0:
                blocks = (block * self.gain for block in blocks)
            if self.mono:   # the channels' mean in each: a mono mix in a stereo file
                blocks = (block.mean(axis=0, keepdims=True).repeat(block.shape[0], axis=0) for block in blocks)
            written += write_audio_stream(blocks, self.sample_rate_hz, output, self.fmt, n_channels=N_CHANNELS)
        return written

    def run(self, job: Job) -> tuple[Job, int, Failure | None]:
        """``(job, samples written, None)``, or ``(job, 0, Failure)`` when it failed."""
        try:
            return job, self.render(job), None
        except Exception as exc:  # reported by the parent, one line
            import traceback

            from ostinato.events.errors import one_line

            return job, 0, Failure(one_line(exc, job.name), "".join(traceback.format_exception(exc)))


_process_worker: RenderWorker | None = None  # set once in each pool process, by start_process_worker


def start_process_worker(worker: RenderWorker) -> None:
    """The pool's initializer: this process renders its jobs with ``worker``."""
    global _process_worker
    worker.one_thread = True
    _process_worker = worker


def run_in_process_worker(job: Job) -> tuple[Job, int, Failure | None]:
    """A pool task: ``job`` rendered by this process's worker (see :func:`start_process_worker`)."""
    assert _process_worker is not None, "start_process_worker was not called in this process"
    return _process_worker.run(job)


def render_in_parallel(todo: list[Job], worker: RenderWorker, n_processes: int):
    """Results of ``todo`` rendered by ``n_processes`` fresh (spawned) processes, in completion order.

    A worker that dies takes only its own file down: the file is reported and the rest go on.
    """
    import multiprocessing
    from concurrent.futures import ProcessPoolExecutor, as_completed
    from concurrent.futures.process import BrokenProcessPool

    pending = list(todo)
    while pending:
        pool = ProcessPoolExecutor(max_workers=n_processes, mp_context=multiprocessing.get_context("spawn"),
                                   initializer=start_process_worker, initargs=(worker,))
        futures = {pool.submit(run_in_process_worker, job): job for job in pending}
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
                    yield job, 0, Failure(f"{job.name}: the rendering process died", "")
        pool.shutdown(cancel_futures=True)


def render_files(request: RenderRequest) -> int:
    """Run ``ostinato render``: 0 when every file rendered (or was skipped), 1 when any failed.

    Existing outputs are skipped (a line on stderr unless quiet) unless ``request.overwrite``. An input
    whose output is another input's is written under its own suffix, or fails naming the other
    (:func:`distinct_jobs`). A file that fails is reported on stderr in one line (its traceback too
    with ``debug``).
    """
    jobs, collisions, renamed = distinct_jobs(plan(request.inputs, request.output, request.format))
    for line in collisions + ([] if request.quiet else renamed):
        print(f"ostinato: {line}", file=sys.stderr, flush=True)
    failed = len(collisions)
    todo, skipped = [], 0
    for job in jobs:
        if job.output.exists() and not request.overwrite:
            skipped += 1
            if not request.quiet:
                print(f"ostinato: {job.output}: exists, skipped (use --overwrite to replace it)", file=sys.stderr)
        else:
            todo.append(job)
    from tqdm import tqdm

    worker = RenderWorker.for_request(request)
    bar = tqdm(total=len(todo), desc="render", unit="file",
               disable=request.quiet or len(todo) < 2 or not sys.stderr.isatty())   # no bar in a log file
    if request.jobs == 1 or len(todo) < 2:
        results = (worker.run(job) for job in todo)
    else:
        results = render_in_parallel(todo, worker, request.jobs)
    for job, _, exc in results:
        bar.update(1)
        if exc is not None:
            failed += 1
            bar.clear()
            if request.debug:
                print(exc.traceback, file=sys.stderr, end="")
            print(f"ostinato: {exc.line}", file=sys.stderr, flush=True)
        elif request.verbose:
            bar.write(f"ostinato: {job.name} -> {job.output}", file=sys.stderr)
    bar.close()
    if not request.quiet:   # as convert ends: one line on stdout
        total = len(jobs) + len(collisions)
        print(f"rendered {total - failed - skipped}/{total}, failed {failed}, skipped {skipped}", flush=True)
    return 1 if failed else 0
