"""``ostinato train symbolic``: options in, typed calls to symbolic/ out (no torch at import time)."""

from __future__ import annotations

import argparse
import sys


def _not_yet(args: argparse.Namespace) -> int:
    print("ostinato: train symbolic: not available in this version yet", file=sys.stderr)
    return 1


def add_train_parsers(train_sub, common: argparse.ArgumentParser) -> None:
    """Add ``train symbolic``."""
    symbolic = train_sub.add_parser("symbolic", parents=[common], help="train a symbolic (token) model")
    symbolic.set_defaults(run=_not_yet)
