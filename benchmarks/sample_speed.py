"""Sampling speed: our KV-cached loop against transformers' ``generate()`` on the same model.

    python benchmarks/sample_speed.py [--model DIR] [-n 16] [--tokens 256]

Both draw ``n`` sequences of ``--tokens`` tokens with temperature 1 and top-p 0.95 and no
early stop; prints tokens per second for each and the ratio (ours / generate). Without
--model, a randomly initialised `small` GPT-2 is used (speed does not depend on the weights).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model")
    parser.add_argument("-n", type=int, default=16)
    parser.add_argument("--tokens", type=int, default=256)
    parser.add_argument("--repeats", type=int, default=2)
    args = parser.parse_args()

    import torch

    from symbolic.model import PRESETS, build_model, load_model_folder
    from symbolic.sample import SamplingConfig, sample

    if args.model:
        model, tokenizer, _ = load_model_folder(args.model)
        vocab = len(tokenizer)
    else:
        torch.manual_seed(0)
        vocab = 400
        model = build_model(PRESETS["small"], vocab).eval()
    never = vocab + 10   # an id that is never drawn, so both run the full length
    prompt = [1]
    length = len(prompt) + args.tokens

    def ours() -> None:
        sample(model, prompt=prompt, n=args.n, config=SamplingConfig(top_p=0.95, max_tokens=length), eos_id=never)

    def generate() -> None:
        with torch.no_grad():
            model.generate(torch.tensor([prompt] * args.n), do_sample=True, top_p=0.95, top_k=0, max_length=length,
                           min_length=length, pad_token_id=0, eos_token_id=None)

    results = {}
    for name, run in (("ostinato", ours), ("generate", generate)):
        best = float("inf")
        for _ in range(args.repeats):
            started = time.perf_counter()
            run()
            best = min(best, time.perf_counter() - started)
        results[name] = args.n * args.tokens / best
        print(f"{name:9s} {results[name]:9.0f} tokens/s  ({args.n} x {args.tokens} tokens, best of {args.repeats})")
    print(f"ratio ostinato / generate: {results['ostinato'] / results['generate']:.2f}x on "
          f"{torch.get_num_threads()} CPU threads")


if __name__ == "__main__":
    main()
