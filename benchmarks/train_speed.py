"""Training-step speed: bfloat16 autocast against float32, and no dropout on the attention weights
against the model's own, on the shipped models' shapes.

    python benchmarks/train_speed.py [--model folk-abc --model chorale-midi] [--steps 6] [--threads 2]

For each model (a shipped name or a model folder: its architecture, width, depth, context and
vocabulary, with random weights, since speed does not depend on them) times ``--steps`` calls of
``symbolic.train.train_step`` (forward, loss, backward, gradient clipping, AdamW), the step
``ostinato train symbolic`` runs, on batches of ``--batch`` full-context windows, first in float32
then in bfloat16 autocast (``--precision bf16``), then in bfloat16 with ``"attention_dropout": 0``
in the model config, and prints tokens per second for each and the ratios (bf16 / fp32; attention
dropout 0 / the model's own, both bf16). The first step of each is a warm-up and is not counted.

Dropout on the attention weights keeps PyTorch from its fused attention kernel: the [heads, T, T]
weights are made, masked with fresh random numbers and multiplied out, which on a CPU costs more
than the attention's own arithmetic.

bfloat16 pays where the processor multiplies it natively (AVX512-BF16 or AMX on a CPU; every
recent GPU): ``--precision auto`` picks it there. On other CPUs it is emulated, and slower.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", action="append", help="a shipped name or model folder (repeatable; "
                                                         "default: folk-abc and chorale-midi)")
    parser.add_argument("--batch", type=int, help="windows per step (default: the model's own training batch, "
                                                  "from its metrics.json, else 16)")
    parser.add_argument("--steps", type=int, default=6, help="timed steps per precision (plus one warm-up)")
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()

    import torch

    from ostinato.symbolic.model import build_model, read_model_config
    from ostinato.symbolic.shipped import resolve_model
    from ostinato.symbolic.tokenizers import load_tokenizer
    from ostinato.symbolic.train import TrainConfig, make_optimizer, native_bf16, train_step

    torch.set_num_threads(args.threads)
    device = torch.device("cpu")
    print(f"CPU, {args.threads} threads; native bfloat16: {native_bf16(device)}")
    variants = (("fp32", torch.float32, None), ("bf16", torch.bfloat16, None),
                ("bf16, attention dropout 0", torch.bfloat16, 0.0))
    print("| model | batch x context | dropout (attention) | "
          + " | ".join(f"{name} tokens/s" for name, _, _ in variants) + " | bf16 / fp32 | attention 0 / own |")
    print("|---|---|---|" + "---|" * (len(variants) + 2))
    for name in args.model or ["folk-abc", "chorale-midi"]:
        folder = resolve_model(name)
        config = read_model_config(folder)
        vocab = len(load_tokenizer(folder / "tokenizer.json"))
        batch_size = args.batch or _trained_batch(folder)
        generator = torch.Generator().manual_seed(0)
        batch = torch.randint(3, vocab, (batch_size, config.context + 1), generator=generator)
        rates = {}
        for variant, dtype, attention in variants:
            torch.manual_seed(0)
            shape = config if attention is None else replace(config, attention_dropout=attention)
            model = build_model(shape, vocab).train()
            optimizer = make_optimizer(model, TrainConfig())
            train_step(model, optimizer, batch, dtype=dtype, grad_clip=1.0)   # warm-up
            started = time.perf_counter()
            for _ in range(args.steps):
                train_step(model, optimizer, batch, dtype=dtype, grad_clip=1.0)
            rates[variant] = args.steps * batch_size * config.context / (time.perf_counter() - started)
        row = " | ".join(f"{rates[v]:,.0f}" for v, _, _ in variants)
        own = f"{config.dropout} ({config.attention_pdrop})"
        print(f"| {name} | {batch_size} x {config.context} | {own} | {row} | {rates['bf16'] / rates['fp32']:.2f}x "
              f"| {rates['bf16, attention dropout 0'] / rates['bf16']:.2f}x |")
    return 0


def _trained_batch(folder: Path) -> int:
    """The batch the model was trained with (its metrics.json), else 16."""
    try:
        return int(json.loads((folder / "metrics.json").read_text())["train"]["batch_size"])
    except (OSError, ValueError, KeyError, TypeError):
        return 16


if __name__ == "__main__":
    sys.exit(main())
