"""The ``ostinato`` command: compose, render, convert, train, evaluate, info.

This is the edge where options are read; every stage below it takes typed arguments.
Errors in the user's input print one line (``ostinato: <file>: <problem>``) and exit 1;
usage errors exit 2; ``--debug`` shows the traceback instead.
"""

from __future__ import annotations

import argparse
import json
import logging
import os
import sys
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("ostinato")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# The stages' own commands: ``add_parsers(sub, common)`` in each stage's ``commands`` module
# declares options and sets ``run`` (heavy imports such as torch stay inside the run functions,
# so ``ostinato --help`` stays fast). ``train`` and ``evaluate`` are shared: each stage adds its
# ``train <what>`` and ``evaluate <what>``. This module is the only one that wires stages
# together: ``compose --render`` (symbolic, then render) and ``plot`` (notes over a spectrogram).


class _Parser(argparse.ArgumentParser):
    """argparse, except that a missing command (``ostinato``, ``ostinato train``) lists the commands."""

    def error(self, message: str):
        if message.startswith("the following arguments are required: ") and message.endswith(("COMMAND", "WHAT")):
            self.print_help(sys.stderr)
            self.exit(EXIT_USAGE, f"\n{self.prog}: error: {message}\n")
        super().error(message)


def _common_options(*, top: bool = False) -> argparse.ArgumentParser:
    """``-q``, ``-v`` and ``--debug``, accepted before the command (``top``) and after it.

    After the command they default to nothing (``SUPPRESS``), so a flag given before the command
    is not reset by the subcommand's parser: ``ostinato --debug info x`` = ``ostinato info --debug x``.
    """
    def default(value):
        return value if top else argparse.SUPPRESS

    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("output")
    group.add_argument("-q", "--quiet", action="count", default=default(0), help="print less (errors only)")
    group.add_argument("-v", "--verbose", action="count", default=default(0),
                       help="print more (repeat for debug logs)")
    group.add_argument("--debug", action="store_true", default=default(False), help="show full tracebacks on errors")
    return common


def build_parser() -> argparse.ArgumentParser:
    from ostinato.corpora import commands as corpora_commands
    from ostinato.render import commands as render_commands
    from ostinato.symbolic import commands as symbolic_commands
    from ostinato.symbolic import evaluate_commands

    common = _common_options()
    parser = _Parser(
        prog="ostinato", parents=[_common_options(top=True)],
        description="Symbolic-first music: a transformer composes ABC/MIDI, a neural renderer plays it. "
                    "-q, -v and --debug go before or after the command.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", required=True)

    info = sub.add_parser("info", parents=[common], help="summarise MIDI, ABC, MusicXML or kern files",
                          description="Print a summary of each piece: notes, tracks, duration, tempo, meter, key. "
                                      "A multi-tune ABC file gives one entry per tune (FILE#X).")
    info.add_argument("files", nargs="+", metavar="FILE",
                      help="a .mid/.midi/.abc/.xml/.musicxml/.mxl/.krn file, or music21:<name> "
                           "(e.g. music21:bach/bwv66.6)")
    info.add_argument("--json", action="store_true", help="one JSON object per piece per line")
    info.add_argument("--tune", type=int, metavar="X", help="for ABC files, only the tune numbered X:")
    info.add_argument("--expand-repeats", action="store_true", help="play repeats out (ABC, MusicXML)")
    info.set_defaults(run=run_info)

    compose = symbolic_commands.add_compose_parser(sub, common)
    audio = compose.add_argument_group("audio (the render stage)")
    audio.add_argument("--render", metavar="OUT.wav", help="also render the piece to audio (with -n above 1: a folder)")
    audio.add_argument("--engine", default="ddsp", help="render engine for --render (default: ddsp)")
    compose.set_defaults(run=run_compose)
    render_commands.add_parsers(sub, common)
    corpora_commands.add_parsers(sub, common)

    train = sub.add_parser("train", parents=[common], help="train a symbolic model or a renderer",
                           description="Train a symbolic (token) model or an audio renderer.")
    train_sub = train.add_subparsers(dest="what", metavar="WHAT", required=True)
    symbolic_commands.add_train_parsers(train_sub, common)
    render_commands.add_train_parsers(train_sub, common)

    evaluate = sub.add_parser("evaluate", parents=[common],
                              help="held-out likelihood, sample quality and render quality",
                              description="Measure a symbolic model (held-out likelihood, quality of its samples) "
                                          "or a renderer (spectral distance, speed, note F1).")
    what = evaluate.add_subparsers(dest="what", metavar="WHAT", required=True)
    evaluate_commands.add_evaluate_parsers(what, common)
    render_commands.add_evaluate_parsers(what, common)

    plot = sub.add_parser("plot", parents=[common], help="draw a piano roll or a spectrogram as PNG",
                          description="MIDI/ABC/MusicXML: a piano roll, tracks coloured by instrument, bars marked. "
                                      "Audio (WAV/FLAC/OGG): a log-mel spectrogram, with the notes of --notes "
                                      "overlaid.")
    plot.add_argument("file", metavar="FILE")
    plot.add_argument("-o", "--output", required=True, metavar="OUT.png")
    plot.add_argument("--notes", metavar="MIDI", help="audio: overlay the notes of this MIDI/ABC file")
    plot.add_argument("--tune", type=int, metavar="X", help="ABC: the tune numbered X (default: the first)")
    plot.set_defaults(run=run_plot)
    return parser


# ---------------------------------------------------------------------------- compose --render
def run_compose(args: argparse.Namespace) -> int:
    """``compose``, and with ``--render`` each piece rendered to audio by a render engine."""
    from ostinato.events.errors import UsageError
    from ostinato.symbolic.commands import compose_request, compose_to_files, list_models

    if args.list:
        list_models()
        return EXIT_OK
    request = compose_request(args)
    renders = None
    if args.render:
        from ostinato.events.io import check_not_an_input
        from ostinato.render import ENGINES

        if args.engine not in ENGINES:
            raise UsageError("--engine", f"unknown engine {args.engine!r} (choose one of {', '.join(ENGINES)})")
        renders = render_paths(args.render, request.n)
        for path in renders:
            check_not_an_input(path, [args.primer, *request.outputs], option="--render")
    pieces = compose_to_files(request)
    if renders:
        from ostinato.render import get_renderer, write_audio

        if args.engine == "wavenet":   # as `render` does: many threads thrash a busy machine
            import torch

            torch.set_num_threads(1)
        with get_renderer(args.engine) as renderer:
            for piece, path in zip(pieces, renders, strict=True):
                path.parent.mkdir(parents=True, exist_ok=True)
                write_audio(renderer.render(piece.table, 44100), 44100, path)
                if request.show_progress:
                    print(f"rendered {path}", file=sys.stderr)
    return EXIT_OK


def render_paths(render: str, n: int) -> list[Path]:
    """The audio files of ``--render``: the file itself, or ``001.wav``... in a folder for ``n`` above 1."""
    if n == 1:
        return [Path(render)]
    return [Path(render) / f"{i:03d}.wav" for i in range(1, n + 1)]


# ---------------------------------------------------------------------------- plot
@dataclass(frozen=True)
class PlotRequest:
    """``ostinato plot``: ``file`` drawn into the PNG ``output``: a score as a piano roll, audio as a
    spectrogram with the notes of ``notes`` outlined."""

    file: str
    output: str
    notes: str | None = None
    tune: int | None = None


def run_plot(args: argparse.Namespace) -> int:
    """``plot``: a piano roll of a score, or a spectrogram of audio with ``--notes`` outlined."""
    from ostinato.events.io import check_not_an_input

    request = PlotRequest(file=args.file, output=args.output, notes=args.notes, tune=args.tune)
    check_not_an_input(request.output, [request.file, request.notes])
    plot(request)
    if args.quiet == 0:
        print(f"wrote {request.output}", file=sys.stderr)
    return EXIT_OK


def plot(request: PlotRequest) -> None:
    """Draw the PNG of ``request`` (the events stage draws scores, the render stage audio)."""
    from ostinato.events import AUDIO_SUFFIXES, InputError

    path = Path(request.file)
    if not path.exists():
        raise InputError(path, "no such file")
    if path.suffix.lower() in AUDIO_SUFFIXES:
        from ostinato.render.plot import plot_spectrogram

        notes = _read_notes(request.notes, None) if request.notes else None
        plot_spectrogram(path, request.output, notes=notes)
    else:
        if request.notes:
            raise InputError(request.notes, "--notes is for audio files (a piano roll shows its own notes)")
        from ostinato.events.plot import plot_pianoroll

        table = _read_notes(str(path), request.tune)
        plot_pianoroll(table, request.output, title=path.name)


def _read_notes(path: str, tune: int | None):
    from ostinato import events

    if tune is not None:
        from ostinato.events.abc_read import read_abc

        return read_abc(path, tune=tune)
    return events.read(path)


# ---------------------------------------------------------------------------- info
def piece_summary(key: str, table) -> dict:
    """The JSON record of one piece (stable keys; see README)."""
    first_ts = table.time_signatures[0].text if table.time_signatures else None
    first_key = table.key_signatures[0].name if table.key_signatures else None
    tracks = []
    for index, trk in enumerate(table.tracks):
        mask = table.track == index
        tracks.append({
            "name": trk.name, "program": trk.program, "is_drum": trk.is_drum, "n_notes": int(mask.sum()),
            "pitch_range": [int(table.pitch[mask].min()), int(table.pitch[mask].max())] if mask.any() else None,
            "controls": _control_counts(table.controls, index),
        })
    return {
        "path": key,
        "n_notes": len(table),
        "n_tracks": table.n_tracks,
        "duration_s": round(table.duration_s, 6),
        "programs": table.programs,
        "has_drums": table.has_drums,
        "tempo_bpm": round(table.tempos[0].qpm, 3) if table.tempos else None,
        "time_signature": first_ts,
        "key": first_key,
        "ticks_per_quarter": table.ticks_per_quarter,
        "n_tempo_changes": max(len(table.tempos) - 1, 0),
        "controls": _control_counts(table.controls),
        "tracks": tracks,
    }


def _control_counts(controls, track: int | None = None) -> dict:
    """Events of each kind of performance data (of one track, or of all): sustain, volume, ..."""
    from ostinato.events.table import CONTROLLERS, KIND_NAMES

    mine = controls.number if track is None else controls.number[controls.track == track]
    kinds = {**{name: number for number, name in sorted(CONTROLLERS.items(), key=lambda kv: kv[1])},
             **{name: number for number, name in KIND_NAMES.items() if number not in CONTROLLERS}}
    return {name: int((mine == number).sum()) for name, number in kinds.items()}


def _format_summary(record: dict) -> str:
    import pretty_midi

    minutes, seconds = divmod(record["duration_s"], 60)
    changes = f" (+{record['n_tempo_changes']} changes)" if record["n_tempo_changes"] else ""
    lines = [
        record["path"],
        f"  {record['n_notes']:,} notes in {record['n_tracks']} track{'s' * (record['n_tracks'] != 1)}, "
        f"{int(minutes)}:{seconds:04.1f}, {record['tempo_bpm']:g} bpm"
        f"{changes}, "
        f"meter {record['time_signature'] or '-'}, key {record['key'] or '-'}",
    ]
    for index, trk in enumerate(record["tracks"]):
        instrument = "drums" if trk["is_drum"] else pretty_midi.program_to_instrument_name(trk["program"])
        span = "-" if trk["pitch_range"] is None else "{}-{}".format(*trk["pitch_range"])
        name = f" {trk['name']!r}" if trk["name"] else ""
        lines.append(f"  track {index}{name}: {instrument} (program {trk['program']}), "
                     f"{trk['n_notes']:,} notes, pitches {span}")
    return "\n".join(lines)


def run_info(args: argparse.Namespace) -> int:
    from ostinato.events import InputError, pieces

    failed = 0
    for source in args.files:
        try:
            found = pieces(source, expand_repeats=args.expand_repeats)
            if args.tune is not None:
                found = [p for p in found if p.key.endswith(f"#{args.tune}")]
                if not found:
                    raise InputError(source, f"no tune X:{args.tune}")
        except InputError as exc:
            failed += 1
            _report(exc, args)
            continue
        for piece in found:
            try:
                record = piece_summary(piece.key, piece.read())
            except InputError as exc:
                failed += 1
                _report(exc, args)
                continue
            except BrokenPipeError:
                raise
            except Exception as exc:  # one bad piece never stops the others
                failed += 1
                _report(exc, args, piece.key)
                continue
            print(json.dumps(record) if args.json else _format_summary(record), flush=True)
    return EXIT_FAILED if failed else EXIT_OK


# ---------------------------------------------------------------------------- plumbing
def _report(exc: BaseException, args: argparse.Namespace, source: str | None = None) -> None:
    """Print one line for ``exc`` (the traceback too with --debug)."""
    from ostinato.events.errors import report

    report(exc, debug=args.debug, source=source)


def _configure_logging(args: argparse.Namespace) -> None:
    level = logging.WARNING + 10 * (args.quiet - args.verbose)
    logging.basicConfig(level=max(level, logging.DEBUG), format="ostinato: %(message)s", stream=sys.stderr)
    logging.captureWarnings(True)
    logging.getLogger("py.warnings").setLevel(max(level, logging.DEBUG))
    if not args.debug:
        warnings.showwarning = lambda message, category, *_a, **_k: log.warning("%s", " ".join(str(message).split()))


def main(argv: Sequence[str] | None = None) -> int:
    from ostinato.events.errors import UsageError

    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    try:
        return args.run(args)
    except BrokenPipeError:  # e.g. `ostinato info ... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except UsageError as exc:   # a bad option value, found before any work: as argparse's own errors
        _report(exc, args)
        return EXIT_USAGE
    except KeyboardInterrupt:
        print("ostinato: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        _report(exc, args, args.command)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
