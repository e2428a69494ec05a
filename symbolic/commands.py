"""``ostinato train symbolic``: options in, typed calls to symbolic/ out (no torch at import time)."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys

log = logging.getLogger("ostinato")

TOKENIZERS = ("abc", "remi", "tsd", "midilike")


def add_train_parsers(train_sub, common: argparse.ArgumentParser) -> None:
    """Add ``train symbolic``."""
    p = train_sub.add_parser(
        "symbolic", parents=[common], help="train a symbolic (token) model",
        description="Train a GPT-2 (or Llama) model on ABC tunes or MIDI event tokens. The held-out split of "
                    "DESIGN.md is never trained on; held-out bits per token and per character (ABC) or per "
                    "note (MIDI) are reported every --eval-every steps. Runs the same under "
                    "`torchrun --nproc_per_node=K` (DDP).")
    p.add_argument("--data", required=True, metavar="SOURCE",
                   help="music21:<collection> (music21:essenFolksong, music21:abc-folk, music21:bach, ...), "
                        "a folder, a file, or a quoted glob of MIDI/ABC/MusicXML")
    p.add_argument("--tokenizer", required=True, metavar="KIND|FILE",
                   help=f"one of {', '.join(TOKENIZERS)}, or a saved tokenizer .json")
    p.add_argument("--out", required=True, metavar="DIR", help="the model folder to write (checkpoints inside)")
    p.add_argument("--config", default="small", metavar="small|base|tiny|FILE",
                   help="model size preset or a JSON file of ModelConfig fields (default: small)")
    p.add_argument("--architecture", choices=("gpt2", "llama"), help="override the config's architecture")
    p.add_argument("--steps", type=int, default=2000, help="optimizer steps (default: 2000)")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per step over all processes (default: 16)")
    p.add_argument("--lr", type=float, default=6e-4, help="peak learning rate (default: 6e-4)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: 5%% of --steps)")
    p.add_argument("--eval-every", type=int, default=200, metavar="N", help="held-out evaluation every N steps")
    p.add_argument("--checkpoint-every", type=int, default=200, metavar="N", help="checkpoint every N steps")
    p.add_argument("--instruments", choices=("keep", "ensemble"), default="keep",
                   help="MIDI tokenizers: keep the parts' programs, or give each part of a piece a GM program "
                        "from an ensemble chosen by the piece's key (for scores whose parts name none, "
                        "such as music21's); default: keep")
    p.add_argument("-j", "--workers", type=int, default=1, metavar="N",
                   help="processes that read and tokenize the pieces (default: 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.set_defaults(run=run_train_symbolic)


def run_train_symbolic(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from events.errors import InputError

    from . import distributed
    from .data import tokenize_source
    from .model import model_config
    from .tokenizers import build_tokenizer, load_tokenizer
    from .train import TrainConfig, train

    if args.tokenizer in TOKENIZERS:
        tokenizer = build_tokenizer(args.tokenizer) if args.tokenizer == "abc" else None
    elif args.tokenizer.endswith(".json") or Path(args.tokenizer).exists():
        tokenizer = load_tokenizer(args.tokenizer)
    else:
        raise InputError(args.tokenizer, f"unknown tokenizer (choose one of {', '.join(TOKENIZERS)} or a .json file)")
    config = model_config(args.config)
    if args.architecture:
        config = replace(config, architecture=args.architecture)
    try:
        train_config = TrainConfig(
            steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
            warmup_steps=args.warmup if args.warmup is not None else max(args.steps // 20, 1),
            eval_every=args.eval_every, checkpoint_every=args.checkpoint_every, seed=args.seed)
    except ValueError as exc:
        raise InputError("train symbolic", str(exc)) from None

    ctx = distributed.setup(args.device)
    try:
        out = Path(args.out)
        if tokenizer is None:   # a MIDI scheme: its Style block holds the source's collections
            from corpora.sources import iter_items

            from .data import collection_of

            styles = sorted({collection_of(item.key) for item in iter_items(args.data)})
            tokenizer = build_tokenizer(args.tokenizer, styles=styles)
        show = args.quiet == 0
        cache = out / "data"
        if ctx.is_main:
            data = tokenize_source(args.data, tokenizer, max_tokens=config.context, cache_dir=cache,
                                   instruments=args.instruments, workers=args.workers,
                                   progress=_progress("tokenize", show))
        ctx.barrier()
        if not ctx.is_main:
            data = tokenize_source(args.data, tokenizer, max_tokens=config.context, cache_dir=cache,
                                   instruments=args.instruments)
        if ctx.is_main:
            for failure in data.failures[:20] if args.verbose else []:
                log.warning("skipped %s", failure)
            if data.failures:
                log.warning("%d piece(s) could not be used (-v lists them); %d training and %d held-out sequences",
                            len(data.failures), len(data.train), len(data.test))
        command = "ostinato " + shlex.join(sys.argv[1:]) if sys.argv and sys.argv[0] else ""
        figures = train(data=data, tokenizer=tokenizer, model_config=config, config=train_config, out_dir=out,
                        resume=args.resume, command=command, source=args.data, ctx=ctx, show_progress=show)
    finally:
        distributed.teardown(ctx)
    if ctx.is_main and args.quiet == 0:
        message = ", ".join(f"{k} {v:.4f}" for k, v in figures.items() if k.startswith("bits"))
        print(f"wrote {out} (held-out: {message or 'none'})", file=sys.stderr)
    return 0


def _progress(desc: str, show: bool):
    def wrap(items):
        from tqdm import tqdm

        return tqdm(items, desc=desc, unit="piece", file=sys.stderr, disable=not show, dynamic_ncols=True,
                    mininterval=1.0)

    return wrap
