"""How much can the suffix tell a middle? A bound for infill_quality.py's "the suffix must help" (issue 20).

    python benchmarks/infill_information.py --model chorale-midi -n 4 --samples 256

infill_quality.py measures how much cheaper a model's infill prompt makes a held-out middle when the suffix
is in view (the issue asks for 5%). This asks how much there is to gain: by a left-to-right model's own
reckoning, what the bars after a span say about the span, given the bars before it. For a middle
m = [Bar] + x of k bars after the prefix p, and the suffix s (its next ``--suffix-bars`` bars; s[0] is a Bar),
Bayes with the left-to-right model gives

    log2 P(x | p, s) - log2 P(x | p) = log2 R(x) - log2 E_q[R(x')],   R(x) = P(s[1:] | p, Bar, x, Bar)

where q samples x' left to right after p + [Bar] until the model has written k more Bar tokens (the last
one is s[0]). Its mean over the held-out middles is the information the suffix carries about the middle,
I(m; s | p), under the model; printed as a share of the middle's own bits left to right, beside what the
infill prompt gains (``symbolic.infill.middle_token_bits``) on the same spans.

The expectation is estimated from ``--samples`` draws; the log of a mean of few draws is too low on
average, so the estimate is too high, the more so the fewer the draws: it is printed for 1/16, 1/4 and all
of the draws (when the three still fall, the last is an upper bound). Pieces: the first ``-n`` held-out
chorales (DESIGN.md's split, parts given an ensemble as chorale-midi was trained), every span of 1 to
``--max-bars`` bars from bar 2 on whose prefix, middle and suffix fit the context from the piece's start
(so the early bars of each chorale). MIDI (REMI) models only.
"""

from __future__ import annotations

import argparse
import math
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def score_rows(model, rows: list[list[int]], chunk: int = 16) -> list[np.ndarray]:
    """Per row: log p(row[t] | row[:t]) in nats for t >= 1 (float64 [len(row) - 1])."""
    import torch

    out = []
    for at in range(0, len(rows), chunk):
        part = rows[at:at + chunk]
        width = max(map(len, part))
        x = torch.zeros(len(part), width, dtype=torch.long)   # right-padded: a causal model never sees the pad
        for i, row in enumerate(part):
            x[i, :len(row)] = torch.tensor(row)
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=x[:, :-1]).logits.float(), -1)
        picked = logp.gather(2, x[:, 1:, None])[..., 0].double().numpy()
        out.extend(picked[i, :len(row) - 1] for i, row in enumerate(part))
    return out


def sample_middles(model, context: list[int], bar: int, k: int, n: int, room: int, seed: int) -> list[list[int]]:
    """``n`` draws of x after ``context + [bar]``, left to right at temperature 1, each until the model writes
    its k-th next ``bar`` (not included); draws longer than ``room`` tokens are dropped."""
    import torch

    from ostinato.symbolic.fast_decode import GPT2Decoder

    generator = torch.Generator().manual_seed(seed)
    decoder = GPT2Decoder(model, batch=n, max_tokens=len(context) + 1 + room)
    logits = decoder.step(torch.tensor([[*context, bar]] * n))
    drawn: list[list[int]] = [[] for _ in range(n)]
    bars_left = [k] * n
    for _ in range(room):
        token = torch.multinomial(torch.softmax(logits.float(), -1), 1, generator=generator)[:, 0].tolist()
        for i, t in enumerate(token):
            if bars_left[i]:
                if t == bar:
                    bars_left[i] -= 1
                if bars_left[i]:
                    drawn[i].append(t)
        if not any(bars_left):
            break
        logits = decoder.step(torch.tensor(token)[:, None])
    return [x for x, left in zip(drawn, bars_left, strict=True) if not left]


def log_mean_exp(values: np.ndarray) -> float:
    return float(np.logaddexp.reduce(values) - math.log(len(values)))


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", default="chorale-midi", help="a shipped MIDI model's name or a model folder")
    p.add_argument("-n", "--pieces", type=int, default=4, help="held-out chorales (default 4)")
    p.add_argument("--samples", type=int, default=256, help="draws of each middle (default 256)")
    p.add_argument("--max-bars", type=int, default=2, help="the longest span in bars (default 2)")
    p.add_argument("--suffix-bars", type=int, default=2, help="the suffix's bars (default 2)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)

    import torch

    from ostinato.events.instruments import assign_instruments
    from ostinato.events.sources import iter_items
    from ostinato.symbolic.evaluate_commands import trained_expand_repeats
    from ostinato.symbolic.infill import bar_cuts, has_infill, middle_token_bits, split_head
    from ostinato.symbolic.model import load_model_folder
    from ostinato.symbolic.sample import context_of
    from ostinato.symbolic.shipped import resolve_model

    torch.set_num_threads(args.threads)
    folder = resolve_model(args.model)
    model, tok, _config = load_model_folder(folder, inference=True)
    model.eval()
    if getattr(tok, "scheme", None) != "remi":
        p.error(f"{args.model}: a REMI model is needed (its Bar tokens mark the spans)")
    expand = trained_expand_repeats(folder)
    context = context_of(model)
    bar = tok.token_to_id["Bar_None"]
    style = "bach" if "bach" in getattr(tok, "styles", ()) else None
    fractions = sorted({max(1, args.samples // 16), max(1, args.samples // 4), args.samples})
    totals: dict[int, dict] = {}
    started = time.perf_counter()
    for item in list(iter_items("music21:bach", split="test"))[:args.pieces]:
        table = assign_instruments(item.read(expand_repeats=expand), item.key)
        ids = tok.encode(table, style=style)
        head, body, _ended = split_head(tok, ids)
        cuts = bar_cuts(tok, body)
        n_bars = len(cuts) - 1
        for k in range(1, args.max_bars + 1):
            for first in range(2, n_bars - k - args.suffix_bars + 2):
                a, b, c = cuts[first - 1], cuts[first - 1 + k], cuts[first - 1 + k + args.suffix_bars]
                prefix, middle, suffix = [*head, *body[:a]], body[a:b], body[b:c]
                room = 2 * len(middle)   # a draw may be twice the true middle's length
                if len(prefix) + 1 + room + len(suffix) > context:
                    break
                draws = sample_middles(model, prefix, bar, k, args.samples,
                                       room, seed=args.seed * 1_000_003 + first * 10 + k)
                if not draws:
                    continue
                rows = [[*prefix, bar, *x, *suffix] for x in draws] + [[*prefix, *middle, *suffix]]
                scored = score_rows(model, rows)
                tails = np.array([s[len(r) - len(suffix):].sum() for s, r in zip(scored, rows, strict=True)])
                bits = -scored[-1][len(prefix) - 1:len(prefix) + len(middle) - 1].sum() / math.log(2)
                t = totals.setdefault(k, {"spans": 0, "bits": 0.0, "gain": {f: 0.0 for f in fractions},
                                          "prompt_gain": 0.0, "dropped": 0})
                for f in fractions:
                    t["gain"][f] += (tails[-1] - log_mean_exp(tails[:-1][:f])) / math.log(2)
                t["dropped"] += args.samples - len(draws)
                t["bits"] += bits
                t["spans"] += 1
                if has_infill(tok):   # what the model's own infill prompt gains on this span
                    fim, plain, _ = middle_token_bits(model, tok, table, (first, first + k - 1), style=style)
                    t["prompt_gain"] += float(plain.sum() - fim.sum())
    print(f"{args.model}: the suffix's information about the middle, by the left-to-right model "
          f"({args.suffix_bars} suffix bars; {time.perf_counter() - started:.0f} s)")
    for k, t in sorted(totals.items()):
        if not t["spans"]:
            continue
        shares = ", ".join(f"{t['gain'][f] / t['bits']:.1%} ({f} draws)" for f in fractions)
        line = (f"  {k}-bar spans ({t['spans']}, {t['bits'] / t['spans']:.1f} bits each left to right): "
                f"the suffix tells {shares}")
        if has_infill(tok):
            line += f"; the infill prompt makes them {t['prompt_gain'] / t['bits']:.1%} cheaper"
        print(line + (f"; {t['dropped']} draws too long, dropped" if t["dropped"] else ""))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
