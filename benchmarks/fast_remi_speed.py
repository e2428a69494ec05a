"""REMI encoding speed: ostinato's vectorised ``fast_remi_ids`` against miditok's own ``encode``.

    python benchmarks/fast_remi_speed.py [FILES...]   # default: ../shared/fixtures/midi_one_track/*.mid

Both give the same ids (tests/test_fast_remi.py asserts it); this prints files/s of each, best
of 3 rounds, and the ratio (above 1: ours is faster).
"""

import sys
import time
from pathlib import Path

import symusic

from ostinato.symbolic.fast_remi import fast_remi_ids
from ostinato.symbolic.midi_tokens import MidiTokenizer

ROUNDS = 3


def files_per_second(encode, scores) -> float:
    best = float("inf")
    for _ in range(ROUNDS):
        start = time.perf_counter()
        for score in scores:
            encode(score)
        best = min(best, time.perf_counter() - start)
    return len(scores) / best


def main() -> None:
    default = Path(__file__).resolve().parents[2] / "shared" / "fixtures" / "midi_one_track"
    files = [Path(f) for f in sys.argv[1:]] or sorted(default.glob("*.mid"))
    if not files:
        sys.exit("no MIDI files given (and ../shared/fixtures is absent)")
    scores = [symusic.Score(str(p)) for p in files]
    tokenizer = MidiTokenizer("remi").miditok
    miditok = files_per_second(tokenizer.encode, scores)
    ours = files_per_second(lambda score: fast_remi_ids(tokenizer, score), scores)
    print(f"REMI ids of {len(scores)} files, best of {ROUNDS} rounds")
    print(f"  miditok.encode   {miditok:8.1f} files/s")
    print(f"  fast_remi_ids    {ours:8.1f} files/s")
    print(f"ratio fast_remi_ids / miditok.encode: {ours / miditok:.2f}x")


if __name__ == "__main__":
    main()
