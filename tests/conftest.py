"""Shared test helpers: where the shared fixtures live, and how to run the CLI for real."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures"


def fixture_dir(name: str) -> Path:
    """A folder of ../shared/fixtures, or skip the test when ../shared is absent."""
    path = FIXTURES / name
    if not path.is_dir():
        pytest.skip(f"shared fixtures not found at {path}")
    return path


def run_cli(*args: str, cwd: str | os.PathLike | None = None) -> subprocess.CompletedProcess:
    """Run ``ostinato ARGS`` in a real subprocess; returns the completed process (text)."""
    return subprocess.run(
        [sys.executable, "-m", "ostinato", *args],
        capture_output=True, text=True, timeout=600, cwd=cwd or REPO,
    )


def brown_thorn() -> str:
    """O'Neill's "The Brown Thorn" (music21's oneills1850, tune 32) as its file has it: ties between
    different notes (``D-E``, an old way of writing a slur), ties after broken rhythm (``d>-e``) and a slur
    that never closes; 17 bars of 3/4 with a pickup, ending ``||``."""
    from ostinato.events.sources import iter_items

    return next(item.abc_text() for item in iter_items("music21:oneills1850/0001-0050.abc", split="all")
                if item.key.endswith("#32"))
