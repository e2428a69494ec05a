"""MusicXML/kern -> notes: ``events.music21_io.sounding_notes`` against music21's ``stripTies``, on the same scores.

    python benchmarks/read_musicxml.py [--pieces 40] [--seed 3]

Both sides start from the same parsed music21 score (parsing is music21's either way) and give the
sounding notes of every part, tied notes merged: ours follows ties voice by voice; the peer is what
ostinato did before, music21's ``part.stripTies().flatten().notes`` (ties matched by pitch across
voices). The pieces are drawn from ``music21:polyphonic``. Prints the time of each side, the ratio
peer/ours, and how many pieces the two read differently (with the first such piece's first differing
notes: which side is right is for the reader to check, as the tests do for known cases).
"""

from __future__ import annotations

import argparse
import random
import sys
import time
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def peer_notes(part) -> list[tuple[Fraction, Fraction, int]]:
    out = []
    for element in part.stripTies().flatten().notes:
        length = Fraction(element.duration.quarterLength)
        if length <= 0:
            continue
        start = Fraction(element.offset)
        out.extend((start, start + length, p.midi) for p in element.pitches)
    return sorted(out)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--pieces", type=int, default=40)
    parser.add_argument("--seed", type=int, default=3)
    args = parser.parse_args()

    import warnings

    from music21 import converter

    from ostinato.events.music21_io import sounding_notes
    from ostinato.events.sources import iter_items

    warnings.simplefilter("ignore")
    items = [item for item in iter_items("music21:polyphonic") if not item.path.endswith(".abc")]
    random.Random(args.seed).shuffle(items)
    ours_s = peer_s = 0.0
    n_notes, differ, example = 0, 0, None
    for item in items[:args.pieces]:
        score = converter.parse(item.path)
        parts = list(score.parts) or [score]
        started = time.perf_counter()
        ours = [sorted((s, e, m) for s, e, m, _ in sounding_notes(p, p.getInstrument(returnDefault=True)))
                for p in parts]
        ours_s += time.perf_counter() - started
        started = time.perf_counter()
        peer = [peer_notes(p) for p in parts]
        peer_s += time.perf_counter() - started
        n_notes += sum(map(len, ours))
        if ours != peer:
            differ += 1
            if example is None:
                a, b = {n for part in ours for n in part}, {n for part in peer for n in part}
                example = (item.key, sorted(a - b)[:3], sorted(b - a)[:3])
    print(f"{args.pieces} pieces of music21:polyphonic, {n_notes:,} notes (ours)")
    print(f"ours (sounding_notes): {ours_s:.2f} s; peer (music21 stripTies): {peer_s:.2f} s; "
          f"peer/ours {peer_s / max(ours_s, 1e-9):.1f}x")
    print(f"pieces read differently: {differ}/{args.pieces}")
    if example:
        key, only_ours, only_peer = example
        fmt = lambda notes: ", ".join(f"{m}@{float(s):g}-{float(e):g}" for s, e, m in notes)   # noqa: E731
        print(f"  e.g. {key}: only ours {fmt(only_ours)}; only the peer's {fmt(only_peer)}")


if __name__ == "__main__":
    main()
