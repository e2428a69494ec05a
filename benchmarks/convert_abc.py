"""ABC -> MIDI: ``ostinato convert --to mid`` against music21's converter, on the same tunes.

    python benchmarks/convert_abc.py [--tunes 150] [--jobs 2] [--music21-reader]

The tunes are the first N of music21's O'Neill's 1850 collection, each written to its own
``.abc`` file so both sides read the same input. Both sides are whole processes, start-up
included: music21 (the peer) parses each file and writes it as MIDI in one process (it has no
batch converter); ostinato runs the real command (``ostinato convert DIR --to mid -j JOBS``)
with its default ABC reader, abc2midi. ``--music21-reader`` also times ``--abc-reader music21`` (music21 inside
ostinato's pool: the speed-up of the pool alone). Prints tunes/s and the ratio ours/peer.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from ostinato.events.sources import iter_items

PEER = """
import sys
from pathlib import Path
from music21 import converter
failed = 0
out = Path(sys.argv[1])
for name in sys.argv[2:]:
    try:
        score = converter.parse(name, format="abc", forceSource=True)
        score.write("midi", fp=str(out / (Path(name).stem + ".mid")))
    except Exception:
        failed += 1
print(failed)
"""


def music21_convert(files: list[Path], out: Path) -> tuple[float, int]:
    """The peer as a whole process (its start-up and music21's import included, as ours are)."""
    start = time.perf_counter()
    done = subprocess.run([sys.executable, "-c", PEER, str(out), *map(str, files)], capture_output=True, text=True,
                          check=True)
    return time.perf_counter() - start, int(done.stdout.strip().splitlines()[-1])


def ostinato_convert(folder: Path, out: Path, jobs: int, *extra: str) -> tuple[float, str]:
    command = [sys.executable, "-m", "ostinato", "convert", str(folder), "--to", "mid", "-o", str(out), "-j", str(jobs),
               *extra]
    env = dict(os.environ)
    env.pop("PYTHONDONTWRITEBYTECODE", None)   # as installed: our modules compiled once, not at every start
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=Path(__file__).resolve().parents[1], env=env)
    seconds = time.perf_counter() - start
    return seconds, done.stdout.strip().splitlines()[-1] if done.stdout.strip() else done.stderr[-300:]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tunes", type=int, default=150)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--music21-reader", action="store_true")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-abc-") as tmp:
        folder = Path(tmp, "tunes")
        folder.mkdir()
        items = list(iter_items("music21:oneills1850"))[:args.tunes]
        files = []
        for n, item in enumerate(items):
            files.append(folder / f"tune{n:05d}.abc")
            files[-1].write_text(item.abc_text(), encoding="utf-8")
        warm = Path(tmp, "warm")   # one small untimed run first: our modules compiled, files cached, as for a user
        warm.mkdir()
        for path in files[:4]:
            (warm / path.name).write_text(path.read_text(encoding="utf-8"), encoding="utf-8")
        ostinato_convert(warm, Path(tmp, "warm-out"), args.jobs)
        peer_out = Path(tmp, "music21")
        peer_out.mkdir()
        peer_s, peer_failed = music21_convert(files, peer_out)
        ours_s, ours_line = ostinato_convert(folder, Path(tmp, "ours"), args.jobs)
        rows = [("music21 converter.parse + write('midi')", peer_s, f"{peer_failed} failed"),
                (f"ostinato convert -j {args.jobs} (abc2midi)", ours_s, ours_line)]
        if args.music21_reader:
            m21_s, m21_line = ostinato_convert(folder, Path(tmp, "ours-m21"), args.jobs, "--abc-reader", "music21")
            rows.append((f"ostinato convert -j {args.jobs} --abc-reader music21", m21_s, m21_line))
    n = len(files)
    print(f"{n} tunes (music21:oneills1850), {args.jobs} workers for ostinato")
    print(f"{'converter':48s} {'tunes/s':>9s} {'ours/peer':>10s}  result")
    for name, seconds, note in rows:
        ratio = "" if name.startswith("music21") else f"{peer_s / seconds:9.1f}x"
        print(f"{name:48s} {n / seconds:9.1f} {ratio:>10s}  {note}")


if __name__ == "__main__":
    main()
