"""``ostinato convert``: options in, typed calls to corpora/ out (no heavy imports at import time)."""

from __future__ import annotations

import argparse
import sys

TARGET_HELP = """\
targets (outputs mirror the split keys: <out>/<key><suffix>, e.g. out/folk/set.abc#2.mid):
  mid        MIDI files (type 1)
  abc        ABC tunes (ostinato's writer)
  musicxml   MusicXML (.musicxml; --mxl for compressed .mxl)
  json       the note table as JSON (columns, tracks, tempos, meters, keys)
  pianoroll  .npz: onset, frame, velocity [n_tracks, 128, n_frames], frame_rate_hz, programs, is_drum
  audio      .wav/.flac/.ogg through a render engine (--render-engine, --sample-rate, --audio-format)
  tokens     shards for training: train-NNNNN.bin / test-NNNNN.bin (raw uint16/uint32 ids),
             index.jsonl (key, split, shard, offset, length), meta.json, tokenizer.json

sources: files, folders (recursive), quoted globs ('data/**/*.mid'), music21 collections
  (music21:bach, music21:essenFolksong; groups: music21:abc-folk = all of music21's ABC folk
  tunes, music21:abc = every ABC collection, music21:polyphonic = the part-writing collections)
  and pieces (music21:bach/bwv66.6). Each tune of an ABC file is its own item, keyed <file>#X;
  keys are <collection>/<relative path>, and --split uses DESIGN.md's held-out rule on them.

The batch writes <out>/manifest.jsonl (one line per item: key, sha256, status, error,
outputs, seconds, versions). A rerun skips what is done (resume after a kill) unless
--overwrite. Exit 0: all converted or skipped; 1: some failed; 2: usage.
"""


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    """Add ``convert`` to the top-level subcommands."""
    p = sub.add_parser("convert", parents=[common], help="convert files or whole corpora",
                       formatter_class=argparse.RawDescriptionHelpFormatter,
                       description="Convert files or whole corpora to MIDI, ABC, MusicXML, tokens, piano rolls, "
                                   "audio or JSON, on a process pool or on Ray; every failure is reported and "
                                   "recorded, and an interrupted batch resumes.",
                       epilog=TARGET_HELP)
    p.add_argument("sources", nargs="+", metavar="SOURCE", help="file, folder, glob or music21:<name>")
    p.add_argument("--to", required=True, choices=("mid", "abc", "musicxml", "tokens", "pianoroll", "audio", "json"),
                   help="the target format")
    p.add_argument("-o", "--out", required=True, metavar="DIR", help="output folder (holds manifest.jsonl)")
    p.add_argument("--split", choices=("train", "test", "all"), default="all",
                   help="train: all but the held-out pieces; test: only the held-out pieces (DESIGN.md); "
                        "default all")

    run = p.add_argument_group("running")
    run.add_argument("-j", "--jobs", type=int, default=None, metavar="N",
                     help="worker processes (default: the CPUs available; 0 = in this process, no limits)")
    run.add_argument("--engine", choices=("local", "ray"), default="local",
                     help="local: process pool (default); ray: Ray Data (pip install 'ostinato[ray]')")
    run.add_argument("--time-limit", type=float, default=120.0, metavar="S",
                     help="seconds one item may take before its worker is killed (default 120; 0 = none)")
    run.add_argument("--memory-limit", type=int, default=4096, metavar="MB",
                     help="MiB a worker may allocate beyond its start (default 4096; 0 = none; local engine)")
    run.add_argument("--overwrite", action="store_true", help="redo items an earlier run finished")
    run.add_argument("--fail-fast", action="store_true", help="stop at the first failed item")
    run.add_argument("--max-failures", type=int, default=None, metavar="N", help="stop after N failed items")
    run.add_argument("--ray-batch-size", type=int, default=16, metavar="N",
                     help="items per Ray map batch (default 16)")

    target = p.add_argument_group("target options")
    target.add_argument("--abc-reader", choices=("abc2midi", "music21"), default="abc2midi",
                        help="how ABC becomes notes: abc2midi (default; as performed: repeats and grace notes "
                             "played, beat-stress velocities; convert is about 40x faster than music21, see the "
                             "README) or music21 (as written, like `ostinato info`; repeats only with "
                             "--expand-repeats)")
    target.add_argument("--expand-repeats", action="store_true",
                        help="play ABC (music21 reader) and MusicXML repeats out")
    target.add_argument("--tokenizer", default="remi", metavar="FILE|KIND",
                        help="tokens: a saved tokenizer JSON file, or a kind to build with defaults "
                             "(abc, remi, tsd, midilike; default remi)")
    target.add_argument("--shard-tokens", type=int, default=None, metavar="N",
                        help="tokens: tokens per shard file (default 2**27)")
    target.add_argument("--frame-rate", type=float, default=100.0, metavar="HZ",
                        help="pianoroll: frames per second (default 100)")
    target.add_argument("--render-engine", default="soundfont", metavar="NAME",
                        help="audio: render engine (soundfont, ddsp, ...; default soundfont)")
    target.add_argument("--soundfont", metavar="SF2", help="audio: the SoundFont for the soundfont engine")
    target.add_argument("--render-option", action="append", default=[], metavar="NAME=VALUE",
                        help="audio: another engine option (repeatable; VALUE read as JSON when it parses, "
                             "e.g. --render-option gain=0.3 --render-option model=DIR)")
    target.add_argument("--sample-rate", type=int, default=44100, metavar="HZ",
                        help="audio: sample rate (default 44100)")
    target.add_argument("--audio-format", choices=("wav", "flac", "ogg"), default="wav",
                        help="audio: file format (default wav)")
    target.add_argument("--mxl", action="store_true", help="musicxml: write compressed .mxl")
    p.set_defaults(run=run_convert)


def _usage(message: str) -> int:
    print(f"ostinato: convert: {message}", file=sys.stderr)
    return 2


def _render_options(args: argparse.Namespace) -> tuple[tuple[str, object], ...]:
    import json

    options = {"soundfont": args.soundfont} if args.soundfont else {}
    for option in args.render_option:
        name, sep, value = option.partition("=")
        if not sep or not name.isidentifier():
            raise ValueError(f"--render-option: expected NAME=VALUE, got {option!r}")
        try:
            options[name] = json.loads(value)
        except json.JSONDecodeError:
            options[name] = value
    return tuple(sorted(options.items()))


def _tokenizer_file(value: str, scratch: str) -> str:
    """A tokenizer JSON path for ``value`` (a file, or a kind built with defaults and saved to ``scratch``)."""
    import os

    from ostinato.symbolic.tokenizers import KINDS, build_tokenizer, save_tokenizer

    if value in KINDS and not os.path.exists(value):
        path = os.path.join(scratch, "tokenizer.json")
        save_tokenizer(build_tokenizer(value), path)
        return path
    return value


def run_convert(args: argparse.Namespace) -> int:
    import tempfile

    from ostinato.events import InputError
    from ostinato.events.errors import report
    from ostinato.events.sources import iter_sources

    from .batch import BatchOptions, BatchUsageError, run_batch
    from .convert import ConvertSpec
    from .pool import PoolLimits, default_workers

    if args.engine == "ray":
        try:
            import ray  # noqa: F401
        except ImportError:
            return _usage("--engine ray needs Ray Data: pip install 'ostinato[ray]'")
    jobs = default_workers() if args.jobs is None else args.jobs
    try:
        render_options = _render_options(args)
    except ValueError as exc:
        return _usage(str(exc))
    with tempfile.TemporaryDirectory(prefix="ostinato-convert-") as scratch:
        try:
            tokenizer = _tokenizer_file(args.tokenizer, scratch) if args.to == "tokens" else None
            spec = ConvertSpec(
                to=args.to, out_dir=args.out, expand_repeats=args.expand_repeats, abc_reader=args.abc_reader,
                frame_rate_hz=args.frame_rate,
                tokenizer=tokenizer, render_engine=args.render_engine, render_options=render_options,
                sample_rate_hz=args.sample_rate, audio_format=args.audio_format, musicxml_compressed=args.mxl,
            )
            options = BatchOptions(
                engine=args.engine, overwrite=args.overwrite, fail_fast=args.fail_fast,
                max_failures=args.max_failures, ray_batch_size=args.ray_batch_size, shard_tokens=args.shard_tokens,
                limits=PoolLimits(n_workers=jobs, time_limit_s=args.time_limit or None,
                                  memory_limit_mb=args.memory_limit or None),
            )
            if args.to == "audio":  # a bad engine or SoundFont is a usage error, not a failure per item
                from .convert import check_renderer

                check_renderer(spec)
            items = list(iter_sources(args.sources, split=args.split, exclude=[args.out]))   # never its own outputs
        except (InputError, ValueError, TypeError) as exc:
            return _usage(str(exc))
        if not items:
            return _usage(f"no items in the {args.split} split of {' '.join(args.sources)}")

        progress = None
        if sys.stderr.isatty() and not args.quiet:
            from tqdm import tqdm

            progress = tqdm(total=len(items), unit="item", file=sys.stderr, dynamic_ncols=True)

        def on_result(result) -> None:
            if progress is not None:
                progress.update(1)
            if result.status != "failed":
                return
            if args.debug and result.traceback:
                print(result.traceback, file=sys.stderr, end="")
            problem = result.message if result.error == "InputError" else f"{result.error}: {result.message}"
            line = f"ostinato: {result.key}: {problem}"
            if progress is not None:
                progress.write(line, file=sys.stderr)
            else:
                print(line, file=sys.stderr, flush=True)

        try:
            summary = run_batch(items, spec, options, on_result=on_result)
        except (BatchUsageError, InputError) as exc:
            if args.debug:
                report(exc, debug=True)
            return _usage(str(exc))
        finally:
            if progress is not None:
                progress.close()
    if summary.stopped:
        print(f"ostinato: convert: {summary.stopped}; {summary.not_attempted} not attempted", file=sys.stderr)
    print(summary.line(), flush=True)
    return summary.exit_code
