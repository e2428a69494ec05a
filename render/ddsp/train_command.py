"""``ostinato train renderer --engine ddsp``: data from the options, then :func:`training.train`."""

from __future__ import annotations

import argparse
import itertools
import logging
import sys

log = logging.getLogger("ostinato")


def load_pairs(args: argparse.Namespace, sample_rate_hz: int, *, quiet: bool = False) -> tuple[list, list]:
    """(train pairs, held-out pairs) from ``--pairs`` or ``--synthesize-from``; bad pieces reported and skipped."""
    from ostinato.events.errors import report

    from ..paired import Pair, load_audio_mono, synthesize_pairs

    def skip(key, exc) -> None:
        report(exc, debug=args.debug, source=key)

    pairs: list = []
    if args.pairs:
        from ostinato.corpora.paired import iter_pairs

        for split in ("train", "test"):
            found = iter_pairs(args.pairs, split=split)
            for pair in itertools.islice(found, args.max_pieces):
                try:
                    table = pair.read_notes()
                    audio = load_audio_mono(pair.audio, sample_rate_hz)
                except Exception as exc:
                    skip(pair.key, exc)
                    continue
                audio = audio[: int(args.max_seconds * sample_rate_hz)] if args.max_seconds else audio
                from ..paired import truncate

                pairs.append(Pair(pair.key, truncate(table, len(audio) / sample_rate_hz), audio, sample_rate_hz,
                                  split == "test"))
    else:
        from tqdm import tqdm

        from ..soundfont import SoundFontRenderer
        from ..sources import iter_notes

        renderer = SoundFontRenderer(args.soundfont)
        items = itertools.chain.from_iterable(
            itertools.islice(iter_notes(source, on_error=skip), args.max_pieces) for source in args.synthesize_from)
        made = synthesize_pairs(items, renderer=renderer, sample_rate_hz=sample_rate_hz,
                                max_seconds=args.max_seconds, assign=args.assign_instruments,
                                drums_fraction=args.drums, on_error=skip)
        pairs = list(tqdm(made, desc="synthesize pairs", unit="piece", disable=quiet))
        renderer.close()
    return [p for p in pairs if not p.held_out], [p for p in pairs if p.held_out]


def run_train(args: argparse.Namespace) -> int:
    from .config import DDSPConfig
    from .training import TrainConfig, train

    quiet = args.quiet > 0
    model_config = DDSPConfig(n_harmonics=args.harmonics, hidden_size=args.hidden_size, n_layers=args.layers)
    train_config = TrainConfig(steps=args.steps, batch_size=args.batch_size, segment_s=args.segment_s,
                               learning_rate=args.learning_rate, eval_every=args.eval_every, seed=args.seed,
                               device=args.device)
    train_pairs, heldout_pairs = load_pairs(args, model_config.sample_rate_hz, quiet=quiet)
    seconds = sum(len(p.audio) for p in train_pairs) / model_config.sample_rate_hz
    print(f"ostinato: {len(train_pairs)} training pieces ({seconds / 60:.1f} min), "
          f"{len(heldout_pairs)} held out", file=sys.stderr, flush=True)
    state = train(model_config, train_pairs, heldout_pairs, args.out, train_config, resume=args.resume,
                  progress=not quiet, log=lambda m: print(f"ostinato: {m}", file=sys.stderr, flush=True))
    print(f"ostinato: done: step {state['step']}, held-out loss {state['first_heldout_loss']:.4f} -> "
          f"best {state['best_heldout_loss']:.4f}; model in {args.out}", file=sys.stderr)
    return 0
