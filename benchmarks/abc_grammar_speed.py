"""Speed of the ABC grammar mask: microseconds per ``allowed()`` + ``advance()`` call.

Workloads: replaying real tunes from music21's corpus (what a trained model's samples look like;
a first pass with cold caches, then a second pass), the same with the form rules ``compose`` adds (tonic
endings, no loops or near loops: their per-token cost is not cached), and uniform random walks over the
allowed tokens (the worst case: almost every state is new), without and with the form rules. The peer
is the work a sampler does per token anyway on the same vocabulary: torch softmax + multinomial over the
logits of one sequence; the ratio says what the grammar adds to it.

    python benchmarks/abc_grammar_speed.py [--tunes 400] [--walks 20]
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import numpy as np


def corpus_tunes(n_tunes: int, tok) -> list[list[int]]:
    import music21

    from ostinato.events.abc_read import read_abc_text, split_tunes
    from ostinato.symbolic.abc_normalise import AbcNotAccepted

    root = Path(music21.__file__).parent / "corpus"
    tunes = [t for path in sorted(root.rglob("*.abc")) for t in split_tunes(read_abc_text(path))]
    out = []
    for tune in tunes[:: max(1, len(tunes) // n_tunes)]:
        try:
            out.append(tok.encode(tune.text))
        except AbcNotAccepted:
            continue
    return out[:n_tunes]


def replay(grammar, tunes: list[list[int]]) -> tuple[int, float]:
    """Calls and seconds for allowed()+advance() over the tunes the grammar accepts."""
    calls, seconds = 0, 0.0
    for ids in tunes:
        state = grammar.start()
        start = time.perf_counter()
        n = 0
        try:
            for t in ids:
                grammar.allowed(state)
                state = grammar.advance(state, t)
                n += 1
        except ValueError:
            pass
        seconds += time.perf_counter() - start
        calls += n
    return calls, seconds


def random_walks(grammar, n_walks: int, seed: int) -> tuple[int, float]:
    rng = np.random.default_rng(seed)
    calls, seconds = 0, 0.0
    for _ in range(n_walks):
        state = grammar.start()
        while not grammar.finished(state):
            start = time.perf_counter()
            mask = grammar.allowed(state)
            seconds += time.perf_counter() - start
            token = int(rng.choice(np.flatnonzero(mask)))
            start = time.perf_counter()
            state = grammar.advance(state, token)
            seconds += time.perf_counter() - start
            calls += 1
    return calls, seconds


def peer_us(vocab_size: int, n: int = 20000) -> float:
    """Microseconds for torch softmax + multinomial over one sequence's logits."""
    import torch

    torch.manual_seed(0)
    logits = torch.randn(1, vocab_size)
    start = time.perf_counter()
    for _ in range(n):
        torch.multinomial(torch.softmax(logits / 0.9, dim=-1), 1)
    return (time.perf_counter() - start) / n * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--tunes", type=int, default=400)
    parser.add_argument("--walks", type=int, default=20)
    args = parser.parse_args()
    from ostinato.symbolic.abc_grammar import AbcGrammar
    from ostinato.symbolic.abc_tokens import AbcTokenizer

    tok = AbcTokenizer()
    tunes = corpus_tunes(args.tunes, tok)
    peer = peer_us(len(tok))
    print(f"peer: torch softmax+multinomial over {len(tok)} logits: {peer:.1f} us per token")
    grammar = AbcGrammar(tok, max_tokens=100_000, strict_bars=True, final_bar_line=False)
    for label in ("corpus replay, cold caches", "corpus replay, second pass"):
        calls, seconds = replay(grammar, tunes)
        us = seconds / calls * 1e6
        print(f"{label}: {calls} calls, {us:.1f} us per allowed()+advance() ({us / peer:.2f}x the peer)")
    form = AbcGrammar(tok, max_tokens=100_000, strict_bars=True, form=True)  # + the style rules compose uses
    for label in ("corpus replay with the form rules", "... second pass"):
        calls, seconds = replay(form, tunes)
        us = seconds / calls * 1e6
        print(f"{label}: {calls} calls, {us:.1f} us per allowed()+advance() ({us / peer:.2f}x the peer)")
    walker = AbcGrammar(tok, meter="6/8", unit="1/8", key="G", max_tokens=256)
    form_walker = AbcGrammar(tok, meter="6/8", unit="1/8", key="G", bars=16, max_tokens=256, form=True)
    for label, g in (("uniform random walks, cold", walker), ("uniform random walks, again", walker),
                     ("random walks with the form rules (16 bars)", form_walker), ("... again", form_walker)):
        calls, seconds = random_walks(g, args.walks, seed=0)
        us = seconds / calls * 1e6
        print(f"{label}: {calls} calls, {us:.1f} us per allowed()+advance() ({us / peer:.2f}x the peer)")


if __name__ == "__main__":
    main()
