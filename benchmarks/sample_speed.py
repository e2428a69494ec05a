"""Sampling speed: our KV-cached loop against transformers' ``generate()`` on the same model.

    python benchmarks/sample_speed.py [--model DIR] [--batches 1,16] [--tokens 256]

For each batch size, both draw that many sequences of ``--tokens`` tokens with temperature 1
and top-p 0.95 and no early stop; prints tokens per second for each and the ratio (ours /
generate). Without --model, a randomly initialised `small` GPT-2 is used (speed does not
depend on the weights). With a --model it also times composing one whole piece under its
tokenizer's grammar (`ostinato compose` without the file writing), seed 0..4.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", help="a shipped model name or a model folder")
    parser.add_argument("--batches", default="1,16", help="comma-separated batch sizes")
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch

    from ostinato.symbolic.model import PRESETS, build_model, load_model_folder
    from ostinato.symbolic.sample import SamplingConfig, sample
    from ostinato.symbolic.shipped import resolve_model

    if args.model:
        model, tokenizer, _ = load_model_folder(resolve_model(args.model))
        vocab = len(tokenizer)
    else:
        torch.manual_seed(0)
        vocab = 400
        model = build_model(PRESETS["small"], vocab).eval()
    never = vocab + 10   # an id that is never drawn, so both run the full length
    prompt = [1]
    length = len(prompt) + args.tokens
    for n in (int(b) for b in args.batches.split(",")):
        def ours(n=n) -> None:
            sample(model, prompt=prompt, n=n, config=SamplingConfig(top_p=0.95, max_tokens=length), eos_id=never)

        def generate(n=n) -> None:
            with torch.no_grad():
                model.generate(torch.tensor([prompt] * n), do_sample=True, top_p=0.95, top_k=0, max_length=length,
                               min_length=length, pad_token_id=0, eos_token_id=None)

        results = {}
        for name, run in (("ostinato", ours), ("generate", generate)):
            best = float("inf")
            for _ in range(args.repeats):
                started = time.perf_counter()
                run()
                best = min(best, time.perf_counter() - started)
            results[name] = n * args.tokens / best
            print(f"batch {n:3d}: {name:9s} {results[name]:9.0f} tokens/s  ({args.tokens} tokens, best of "
                  f"{args.repeats})")
        print(f"batch {n:3d}: ratio ostinato / generate: {results['ostinato'] / results['generate']:.2f}x on "
              f"{torch.get_num_threads()} CPU threads")
    if args.model:
        from ostinato.symbolic.compose import compose

        times = []
        for seed in range(5):
            started = time.perf_counter()
            (piece,) = compose(model, tokenizer, n=1, sampling=SamplingConfig(top_p=0.95, seed=seed))
            times.append(time.perf_counter() - started)
        print(f"one whole piece under the grammar: median {sorted(times)[2]:.2f} s (seeds 0-4, "
              f"last one {len(piece.ids)} tokens)")


if __name__ == "__main__":
    main()
