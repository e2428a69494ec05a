"""MIDI reading speed: ostinato's guarded reader against pretty_midi and mido on the same files.

    python benchmarks/read_midi.py [FILES...]   # default: ../shared/fixtures/midi_one_track/*.mid

Prints files/s for each reader and the ratio ours/peer (higher is better for us).
"""

import sys
import time
from pathlib import Path

import mido
import pretty_midi

from ostinato.events import read_midi

ROUNDS = 3


def files_per_second(read, files) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for path in files:
            read(path)
        best = min(best, time.perf_counter() - start)
    return len(files) / best


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "midi_one_track"
    files = [Path(f) for f in sys.argv[1:]] or sorted(default.glob("*.mid"))
    if not files:
        sys.exit("no MIDI files given (and ../shared/fixtures is absent)")
    ours = files_per_second(read_midi, files)
    peers = {
        "pretty_midi.PrettyMIDI": files_per_second(lambda p: pretty_midi.PrettyMIDI(str(p)), files),
        "mido.MidiFile": files_per_second(lambda p: mido.MidiFile(str(p)), files),
    }
    print(f"{len(files)} files, best of {ROUNDS} rounds")
    print(f"{'reader':28s} {'files/s':>10s} {'ours/peer':>10s}")
    print(f"{'ostinato events.read_midi':28s} {ours:10.1f} {'':>10s}")
    for name, rate in peers.items():
        print(f"{name:28s} {rate:10.1f} {ours / rate:10.1f}x")


if __name__ == "__main__":
    main()
