"""``ostinato convert``: options in, typed calls to corpora/ out (no heavy imports at import time)."""

from __future__ import annotations

import argparse
import sys


def _not_yet(args: argparse.Namespace) -> int:
    print("ostinato: convert: not available in this version yet (see `ostinato convert --help`)", file=sys.stderr)
    return 1


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    """Add ``convert`` to the top-level subcommands."""
    convert = sub.add_parser("convert", parents=[common], help="convert files or whole corpora",
                             description="Convert files or whole corpora to MIDI, ABC, MusicXML, tokens, "
                                         "piano rolls or audio.")
    convert.set_defaults(run=_not_yet)
