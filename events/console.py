"""Console output shared by every command: two-column tables and one-line JSON records.

Every ``evaluate`` command prints a readable table and, with ``--json``, one JSON object on the
last line of stdout (README, "Evaluating").
"""

from __future__ import annotations

import json
import math


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
