"""Start-up: the whole process ``ostinato compose -o t.abc`` against ``python -c "import torch"``.

    python benchmarks/startup.py [--runs 3] [--threads 1]

Both commands run as fresh processes in the same run, alternately, ``--runs`` times each, with
``OMP_NUM_THREADS`` set to ``--threads``; prints the median wall time of each and the ratio
compose / import torch (the target is 1.5x or less: composing a tune should cost little more
than the import of torch that any model needs). ``--importtime`` also lists the slowest
top-level imports of one compose run (``python -X importtime``).
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path


def timed(command: list[str], env: dict, cwd: str) -> float:
    start = time.perf_counter()
    subprocess.run(command, env=env, cwd=cwd, check=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    return time.perf_counter() - start


def slowest_imports(env: dict, cwd: str, n: int = 8) -> list[tuple[float, str]]:
    done = subprocess.run([sys.executable, "-X", "importtime", "-m", "ostinato", "compose", "-o", "t.abc", "-q"],
                          env=env, cwd=cwd, capture_output=True, text=True, check=True)
    rows = []
    for line in done.stderr.splitlines():
        parts = line.split("|")
        if len(parts) == 3 and parts[1].strip().isdigit() and not parts[2].startswith("  "):   # top level
            rows.append((int(parts[1]) / 1e6, parts[2].strip()))
    return sorted(rows, reverse=True)[:n]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--importtime", action="store_true")
    args = parser.parse_args()
    env = {**os.environ, "OMP_NUM_THREADS": str(args.threads)}
    env.pop("PYTHONDONTWRITEBYTECODE", None)   # as installed: compiled once (the warm-up run), not every start
    compose = [sys.executable, "-m", "ostinato", "compose", "-o", "t.abc", "-q"]
    torch_only = [sys.executable, "-c", "import torch"]
    with tempfile.TemporaryDirectory(prefix="bench-startup-") as tmp:
        timed(torch_only, env, tmp)   # warm the file cache for both
        timed(compose, env, tmp)
        ours, peer = [], []
        for _ in range(args.runs):
            ours.append(timed(compose, env, tmp))
            peer.append(timed(torch_only, env, tmp))
        assert Path(tmp, "t.abc").is_file()
        imports = slowest_imports(env, tmp) if args.importtime else []
    ours_s, peer_s = statistics.median(ours), statistics.median(peer)
    print(f"median of {args.runs} runs, OMP_NUM_THREADS={args.threads}")
    print(f"{'command':36s} {'seconds':>8s}")
    peer_name = 'python -c "import torch"'
    print(f"{peer_name:36s} {peer_s:8.2f}")
    print(f"{'ostinato compose -o t.abc':36s} {ours_s:8.2f}")
    print(f"ratio compose / import torch: {ours_s / peer_s:.2f}x")
    print("(the target: at most 1.5 times the import of torch)")
    for seconds, name in imports:
        print(f"  import {name}: {seconds:.2f} s")


if __name__ == "__main__":
    main()
