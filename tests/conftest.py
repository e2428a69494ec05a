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
