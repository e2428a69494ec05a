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
from collections.abc import Callable, Sequence

log = logging.getLogger("ostinato")

EXIT_OK, EXIT_FAILED, EXIT_USAGE = 0, 1, 2

# Subcommands the project grows into, with the issue that builds each one.
PLANNED: dict[str, tuple[str, str]] = {}

# Each stage adds its own subcommands: ``add_parsers(sub, common)`` in its ``commands`` module
# declares options and sets ``run`` (heavy imports such as torch stay inside the run functions,
# so ``ostinato --help`` stays fast). ``train`` is shared: each stage adds its ``train <what>``.
STAGE_COMMANDS = ("ostinato.symbolic.commands", "ostinato.render.commands", "ostinato.corpora.commands",
                  "ostinato.symbolic.evaluate_commands")
TRAIN_COMMANDS = ("ostinato.symbolic.commands", "ostinato.render.commands")


def _common_options() -> argparse.ArgumentParser:
    common = argparse.ArgumentParser(add_help=False)
    group = common.add_argument_group("output")
    group.add_argument("-q", "--quiet", action="count", default=0, help="print less (errors only)")
    group.add_argument("-v", "--verbose", action="count", default=0, help="print more (repeat for debug logs)")
    group.add_argument("--debug", action="store_true", help="show full tracebacks on errors")
    return common


def build_parser() -> argparse.ArgumentParser:
    common = _common_options()
    parser = argparse.ArgumentParser(
        prog="ostinato", parents=[common],
        description="Symbolic-first music: a transformer composes ABC/MIDI, a neural renderer plays it.",
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

    import importlib

    for module in STAGE_COMMANDS:
        importlib.import_module(module).add_parsers(sub, common)
    train = sub.add_parser("train", parents=[common], help="train a symbolic model or a renderer",
                           description="Train a symbolic (token) model or an audio renderer.")
    train_sub = train.add_subparsers(dest="what", metavar="WHAT", required=True)
    for module in TRAIN_COMMANDS:
        importlib.import_module(module).add_train_parsers(train_sub, common)

    for name, (summary, issue) in PLANNED.items():
        planned = sub.add_parser(name, parents=[common], help=f"{summary} (not yet available)",
                                 description=f"{summary}. Not available in this version: it arrives with "
                                             f"the {issue} work.")
        planned.set_defaults(run=_not_yet(name))
    return parser


def _not_yet(name: str) -> Callable[[argparse.Namespace], int]:
    def run(args: argparse.Namespace) -> int:
        print(f"ostinato: {name}: not available in this version yet (see `ostinato {name} --help`)", file=sys.stderr)
        return EXIT_FAILED

    return run


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
        "tracks": tracks,
    }


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
    parser = build_parser()
    args = parser.parse_args(argv)
    _configure_logging(args)
    try:
        return args.run(args)
    except BrokenPipeError:  # e.g. `ostinato info ... | head`: stop quietly
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return EXIT_FAILED
    except KeyboardInterrupt:
        print("ostinato: interrupted", file=sys.stderr)
        return 130
    except Exception as exc:
        _report(exc, args, args.command)
        return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
