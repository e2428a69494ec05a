"""``ostinato render`` and ``ostinato train renderer``: options in, typed calls to render/ out.

Only argparse here at import time; torch and the engines are imported inside the run functions.
"""

from __future__ import annotations

import argparse
import sys


def _not_yet(name: str):
    def run(args: argparse.Namespace) -> int:
        print(f"ostinato: {name}: not available in this version yet (see `ostinato {name} --help`)", file=sys.stderr)
        return 1

    return run


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    """Add ``render`` to the top-level subcommands."""
    render = sub.add_parser("render", parents=[common], help="render MIDI/ABC/MusicXML to audio",
                            description="Render MIDI/ABC/MusicXML to audio (ddsp, soundfont or wavenet engine).")
    render.set_defaults(run=_not_yet("render"))


def add_train_parsers(train_sub, common: argparse.ArgumentParser) -> None:
    """Add ``train renderer``."""
    renderer = train_sub.add_parser("renderer", parents=[common], help="train an audio renderer (ddsp, wavenet)")
    renderer.set_defaults(run=_not_yet("train renderer"))
