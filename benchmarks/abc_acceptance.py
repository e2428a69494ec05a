"""ABC tokenizer over music21's whole ABC corpus: acceptance, rejection reasons, speed against music21.

    python benchmarks/abc_acceptance.py [--peer-tunes 300] [--top 25] [--music21-check N]

Prints the fraction of tunes the normaliser accepts, the rejection reasons counted, the
vocabulary size, tokens and characters per tune, the seconds to normalise and encode the
whole corpus, and tunes/s of ``normalise + encode`` against music21's own ABC front end
(``abcFormat.ABCHandler().process``: tokenising and token processing, no score building) on
the same first ``--peer-tunes`` tunes, as a ratio (higher is better for us). With
``--music21-check N``, N random accepted tunes (seed 0; those music21 misreads left out, see
``music21_misreads``) are read by music21 from their original and their normalised text, and the
tunes whose notes (onset, offset, pitch) differ are listed.
"""

from __future__ import annotations

import argparse
import collections
import contextlib
import re
import time
from pathlib import Path

from ostinato.events.abc_read import read_abc_text, split_tunes
from ostinato.symbolic.abc_normalise import AbcNotAccepted, music21_misreads
from ostinato.symbolic.abc_tokens import AbcTokenizer


def corpus_tunes() -> list[tuple[str, str]]:
    """(``<file>#<X>``, text) for every ABC tune under music21's corpus folder."""
    import music21

    root = Path(music21.__file__).parent / "corpus"
    return [(f"{path.relative_to(root).as_posix()}#{tune.number}", tune.text)
            for path in sorted(root.rglob("*.abc")) for tune in split_tunes(read_abc_text(path))]


def ours(tok: AbcTokenizer, texts: list[str]) -> tuple[int, collections.Counter]:
    accepted, reasons = 0, collections.Counter()
    for text in texts:
        try:
            tok.encode(text)
            accepted += 1
        except AbcNotAccepted as exc:
            reasons[str(exc)] += 1
    return accepted, reasons


def music21_front_end(texts: list[str]) -> None:
    from music21 import abcFormat

    for text in texts:
        with contextlib.suppress(Exception):  # the peer's failures are not ours to count
            abcFormat.ABCHandler().process(text)


def music21_check(tunes: list[tuple[str, str]], tok: AbcTokenizer, n_tunes: int) -> None:
    import random
    import warnings

    from ostinato.events.abc_read import AbcTune, parse_tune

    warnings.filterwarnings("ignore")

    def notes(text: str, number: int) -> list:
        table = parse_tune(AbcTune(number, text))
        return sorted(zip(table.onset_tick.tolist(), table.offset_tick.tolist(), table.pitch.tolist(), strict=True))

    compared = misread = differ = 0
    for key, text in random.Random(0).sample(tunes, min(n_tunes, len(tunes))):
        try:
            normal = tok.normalise(text)
        except AbcNotAccepted:
            continue
        if music21_misreads(text):
            misread += 1
            continue
        number = int(key.rsplit("#", 1)[1])
        try:
            original = notes(text, number)
        except Exception as exc:
            print(f"  music21 cannot read {key}: {exc}")
            continue
        compared += 1
        if notes(normal, 1) != original:
            differ += 1
            print(f"  DIFFERENT NOTES: {key}")
    print(f"\nmusic21 check: {compared} tunes compared, {differ} with different notes "
          f"({misread} left out: music21 misreads the original)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--peer-tunes", type=int, default=300, help="tunes timed against music21 (default 300)")
    parser.add_argument("--top", type=int, default=25, help="rejection reasons to list (default 25)")
    parser.add_argument("--music21-check", type=int, default=0, metavar="N",
                        help="compare music21's notes of N random tunes, original vs normalised (slow: ~0.5 s a tune)")
    args = parser.parse_args()

    start = time.perf_counter()
    tunes = corpus_tunes()
    read_s = time.perf_counter() - start
    tok = AbcTokenizer()
    texts = [text for _, text in tunes]

    start = time.perf_counter()
    accepted, reasons = ours(tok, texts)
    encode_s = time.perf_counter() - start

    n_tokens = n_chars = 0
    for text in texts:
        try:
            normal = tok.normalise(text)
        except AbcNotAccepted:
            continue
        n_tokens += len(tok.encode(normal, normalised=True))
        n_chars += tok.n_chars(normal)

    print(f"tunes: {len(tunes)} (read and split in {read_s:.2f} s)")
    print(f"accepted: {accepted}/{len(tunes)} = {accepted / len(tunes):.4f}")
    print(f"vocabulary: {len(tok)} tokens in {len(tok.blocks)} blocks")
    print(f"normalise + encode, whole corpus: {encode_s:.2f} s ({len(tunes) / encode_s:.0f} tunes/s)")
    print(f"accepted tunes: {n_tokens / accepted:.1f} tokens and {n_chars / accepted:.1f} normalised "
          f"characters per tune ({n_chars / n_tokens:.2f} characters per token, bos/eos included)")

    grouped = collections.Counter()
    for reason, count in reasons.items():
        grouped[re.sub(r"'[^']*'|\S+:\S+", "<x>", reason)] += count
    print(f"\nrejections by kind ({sum(reasons.values())}):")
    for reason, count in grouped.most_common():
        print(f"  {count:5d}  {reason}")
    print(f"\nrejection reasons, top {args.top}:")
    for reason, count in reasons.most_common(args.top):
        print(f"  {count:5d}  {reason}")

    peer_texts = texts[:args.peer_tunes]
    start = time.perf_counter()
    ours(tok, peer_texts)
    ours_s = time.perf_counter() - start
    start = time.perf_counter()
    music21_front_end(peer_texts)
    peer_s = time.perf_counter() - start
    print(f"\nfirst {len(peer_texts)} tunes: ours {len(peer_texts) / ours_s:.0f} tunes/s, music21 ABCHandler.process "
          f"{len(peer_texts) / peer_s:.0f} tunes/s, ratio ours/music21 = {peer_s / ours_s:.1f}x")
    if args.music21_check:
        music21_check(tunes, tok, args.music21_check)


if __name__ == "__main__":
    main()
