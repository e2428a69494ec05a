"""Console output shared by every command: two-column tables and one-line JSON records.

Every ``evaluate`` command prints a readable table and, with ``--json``, one JSON object on the
last line of stdout (README, "Evaluating"). Long work shows a :func:`progress` bar (total and ETA)
on a terminal only.
"""

from __future__ import annotations

import json
import math
import sys


def show_progress(quiet: int | bool = False) -> bool:
    """Whether a progress bar is drawn: stderr is a terminal and ``-q`` was not given."""
    try:
        return not quiet and sys.stderr.isatty()
    except (AttributeError, ValueError):   # a replaced or closed stderr
        return False


def progress(iterable=None, *, total: int | None = None, desc: str, unit: str = "piece", quiet: int | bool = False,
             **options):
    """A tqdm bar on stderr (count of ``total``, rate and ETA), drawn only when :func:`show_progress`.

    Use it as tqdm: around an iterable, or with ``total`` and ``update``; ``write`` prints a line above it.
    """
    from tqdm import tqdm

    if total is None and iterable is not None and hasattr(iterable, "__len__"):
        total = len(iterable)
    return tqdm(iterable, total=total, desc=desc, unit=unit, file=sys.stderr, disable=not show_progress(quiet),
                dynamic_ncols=True, mininterval=0.5, **options)


def format_value(value) -> str:
    """``value`` for a table cell: floats with 4 decimals (``inf`` as such), the rest as ``str``."""
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.4f}"
    return str(value)


def print_table(title: str, rows: list[tuple[str, object]]) -> None:
    """A two-column table on stdout: ``title``, then one ``name  value`` line per row."""
    width = max((len(name) for name, _ in rows), default=0)
    print(title)
    for name, value in rows:
        print(f"  {name:<{width}}  {format_value(value)}")


def print_json(record: dict) -> None:
    """One JSON object on one line (non-finite floats become null, which JSON can hold)."""
    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x

    print(json.dumps(clean(record)), flush=True)
