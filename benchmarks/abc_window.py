"""What an ABC model is fed past its context: held-out tokens scored as the sampler feeds them.

    python benchmarks/abc_window.py                       # folk-abc, the held-out split
    python benchmarks/abc_window.py --split train         # the training tunes' tails (never trained on:
                                                          # training windows start at a tune's start)

Every held-out tune of ``music21:abc-folk`` longer than the model's context, its tokens past the context
scored three ways (bits per token, the same tokens):

- ``slides``: windows sliding half a context, no header (``ostinato evaluate nll``'s windows);
- ``window``: as the sampler goes on once the context is full (:meth:`symbolic.abc_tokens.AbcTokenizer.window`):
  the header in force and the last whole bars in half a context, then on to the full context, then again;
- ``window+bars``: the same, the length control counting the bars the window shows and those still to come
  (what ``compose`` feeds when the tune's bars are known: ``--bars``, ``--sections``, ``--primer``).
"""

from __future__ import annotations

import argparse
import math
import sys
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="folk-abc", help="shipped model name or model folder (default folk-abc)")
    parser.add_argument("--split", default="test", choices=("test", "train"), help="held-out (default) or training")
    args = parser.parse_args(argv)

    import numpy as np
    import torch

    from ostinato.events.sources import iter_items
    from ostinato.symbolic.abc_tokens import count_bars
    from ostinato.symbolic.data import tokenize_items
    from ostinato.symbolic.model import load_model_folder
    from ostinato.symbolic.shipped import resolve_model

    model, tok, config = load_model_folder(resolve_model(args.model))
    model.eval()
    ctx = config.context
    items = list(iter_items("music21:abc-folk", split=args.split))
    data = tokenize_items(items, tok, max_tokens=ctx, instruments="keep", expand_repeats=False)
    tunes = [[int(i) for i in p.ids] for p in [*data.train, *data.test] if len(p.ids) > ctx]

    def nats(ids: list[int], first: int) -> np.ndarray:   # of ids[first:], each given what is before it
        x = torch.tensor(ids, dtype=torch.long)[None]
        with torch.no_grad():
            logits = model(input_ids=x[:, :-1]).logits.float()[0]
        return torch.nn.functional.cross_entropy(logits[first - 1:], x[0, first:], reduction="none").numpy()

    def slides(ids: list[int]) -> np.ndarray:
        out, half, start = np.zeros(len(ids)), ctx // 2, 0
        while True:
            end = min(start + ctx, len(ids))
            first = 1 if start == 0 else half
            out[start + first:end] = nats(ids[start:end], first)
            if end == len(ids):
                return out[ctx:]
            start += half

    def windowed(ids: list[int], recount: bool) -> np.ndarray:
        bars = count_bars([tok.vocab[i] for i in ids[5:]]) if recount else None
        out, covered = np.zeros(len(ids)), ctx
        while covered < len(ids):
            fed = tok.window(ids[:covered], max_tokens=ctx // 2, bars=bars)
            chunk = ids[covered:covered + ctx - len(fed)]
            out[covered:covered + len(chunk)] = nats(fed + chunk, len(fed))
            covered += len(chunk)
        return out[ctx:]

    ways = {"slides": slides, "window": lambda ids: windowed(ids, False),
            "window+bars": lambda ids: windowed(ids, True)}
    n = sum(len(ids) - ctx for ids in tunes)
    print(f"{args.model}: {len(tunes)} {args.split} tunes of music21:abc-folk longer than its context of {ctx}, "
          f"{n} tokens past it")
    print("| fed | bits per token |\n|---|---|")
    bits = {}
    for name, way in ways.items():
        bits[name] = sum(way(ids).sum() for ids in tunes) / n / math.log(2)
        print(f"| {name} | {bits[name]:.4f} |")
    print(f"ratio (window+bars / slides, bits: lower is better): {bits['window+bars'] / bits['slides']:.3f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
