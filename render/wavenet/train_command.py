"""``ostinato train renderer --engine wavenet``: config and data from the options, then :func:`training.train`.

The data options (``--pairs`` / ``--synthesize-from`` and the rest) are the ddsp engine's
(:func:`render.ddsp.train_command.load_pairs`); the model comes from ``--config`` (a preset or
a JSON file, default ``piano``) and ``--distribution`` (mulaw or mol).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys


def run_train(args: argparse.Namespace) -> int:
    from ..ddsp.train_command import load_pairs
    from .config import model_config
    from .training import TrainConfig, train

    quiet = args.quiet > 0
    config = model_config(getattr(args, "config", None) or "piano")
    if getattr(args, "distribution", None):
        config = dataclasses.replace(config, output=args.distribution)
    train_config = TrainConfig(steps=args.steps, batch_size=args.batch_size, segment_s=args.segment_s,
                               learning_rate=args.learning_rate, eval_every=args.eval_every, seed=args.seed,
                               device=args.device)
    if args.resume:
        from ..training_common import require_checkpoint
        from .config import WaveNetConfig

        config = WaveNetConfig.from_json((require_checkpoint(args.out) / "config.json").read_text())
    train_pairs, heldout_pairs = load_pairs(args, config.sample_rate_hz, quiet=quiet)
    seconds = sum(len(p.audio) for p in train_pairs) / config.sample_rate_hz
    print(f"ostinato: {len(train_pairs)} training pieces ({seconds / 60:.1f} min), "
          f"{len(heldout_pairs)} held out", file=sys.stderr, flush=True)
    state = train(config, train_pairs, heldout_pairs, args.out, train_config, resume=args.resume,
                  progress=not quiet, log=lambda m: print(f"ostinato: {m}", file=sys.stderr, flush=True))
    print(f"ostinato: done: step {state['step']}, held-out loss {state['first_heldout_loss']:.4f} -> "
          f"best {state['best_heldout_loss']:.4f} nats/sample; model in {args.out}", file=sys.stderr)
    return 0
