"""Scaling of the local runner: ``ostinato convert`` with 1 worker against 2 workers, same corpus.

    python benchmarks/convert_workers.py [SOURCE] [--to mid] [--rounds 3] [--workers 1 2]

Default: music21's O'Neill's 1850 collection (2,009 ABC tunes) to MIDI through the default
reader (abc2midi). Each run is the real command in a fresh process (start-up included);
runs alternate, and the median of ``--rounds`` is reported with the speed-up over 1 worker.
On a machine shared with other work, the speed-up is what the cores could give.
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", default="music21:oneills1850")
    parser.add_argument("--to", default="mid")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--workers", type=int, nargs="+", default=[1, 2])
    args = parser.parse_args()
    seconds: dict[int, list[float]] = {n: [] for n in args.workers}
    lines = {}
    with tempfile.TemporaryDirectory(prefix="bench-workers-") as tmp:
        for r in range(args.rounds):
            for n in args.workers:
                command = [sys.executable, "-m", "ostinato", "convert", args.source, "--to", args.to,
                           "-o", str(Path(tmp, f"j{n}-{r}")), "-j", str(n)]
                start = time.perf_counter()
                done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
                seconds[n].append(time.perf_counter() - start)
                lines[n] = (done.stdout.strip().splitlines() or [done.stderr[-300:]])[-1]
    n_items = int(lines[args.workers[0]].split("/")[1].split(",")[0]) if "/" in lines[args.workers[0]] else 0
    base = statistics.median(seconds[args.workers[0]])
    print(f"ostinato convert {args.source} --to {args.to}: {n_items} items, median of {args.rounds} rounds")
    print(f"{'workers':>8s} {'items/s':>9s} {'speed-up':>9s}  result")
    for n in args.workers:
        median = statistics.median(seconds[n])
        print(f"{n:8d} {n_items / median:9.1f} {base / median:8.2f}x  {lines[n]}")


if __name__ == "__main__":
    main()
