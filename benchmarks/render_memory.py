"""Peak memory of ``ostinato render`` on a 30-minute multi-track MIDI, ddsp and soundfont engines.

    python benchmarks/render_memory.py [--minutes 30] [--rate 22050]

Builds a 30-minute piece (a held-out chorale with instruments and drums, repeated), renders it
to FLAC with the command in a child process and prints the child's peak resident memory.
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

MEASURE = ("import resource, subprocess, sys; r = subprocess.run(sys.argv[1:]).returncode; "
           "print(resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss, r)")


def long_piece(path: Path, minutes: float) -> float:
    from ostinato import events
    from ostinato.render.paired import add_drum_part, assign_instruments
    from ostinato.render.sources import iter_notes

    key, table, _ = next(iter(iter_notes("music21:bach", split="test")))
    table = add_drum_part(assign_instruments(table, key), key)
    period_s = table.duration_s + 0.5
    copies = int(np.ceil(minutes * 60 / period_s))
    shift = np.repeat(np.arange(copies) * period_s, len(table))
    cols = {name: np.tile(getattr(table, name), copies) for name in ("pitch", "velocity", "track")}
    long = events.NoteTable.from_seconds(np.tile(table.onset_s, copies) + shift,
                                         np.tile(table.offset_s, copies) + shift, cols["pitch"], cols["velocity"],
                                         track=cols["track"], tracks=table.tracks)
    events.write_midi(long, path)
    return events.read(path).duration_s


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--minutes", type=float, default=30.0)
    parser.add_argument("--rate", type=int, default=22050)
    parser.add_argument("--model", default=None, help="ddsp model folder (default: the shipped model)")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        midi = Path(tmp) / "long.mid"
        duration = long_piece(midi, args.minutes)
        print(f"{midi.name}: {duration / 60:.1f} minutes, rendered at {args.rate} Hz to FLAC")
        for engine in ("ddsp", "soundfont"):
            out = Path(tmp) / f"{engine}.flac"
            command = [sys.executable, "-m", "ostinato", "render", str(midi), "-o", str(out), "--engine", engine,
                       "-r", str(args.rate), "-q"]
            if engine == "ddsp" and args.model:
                command += ["--model", args.model]
            start = time.perf_counter()
            result = subprocess.run([sys.executable, "-c", MEASURE, *command], capture_output=True, text=True,
                                    check=True)
            peak_kib, rc = result.stdout.split()
            print(f"  {engine:10s} peak memory {int(peak_kib) / 1024:7.1f} MiB  exit {rc}  "
                  f"{time.perf_counter() - start:6.1f} s  (limit 1024 MiB)")


if __name__ == "__main__":
    main()
