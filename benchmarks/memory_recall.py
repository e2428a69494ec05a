"""An ABC model's memory of its training tunes (symbolic/memory.py) against its network alone.

    python benchmarks/memory_recall.py [--model folk-abc] [--tunes 100] [--pieces 0] [--originality]

The same model folder twice in one run, with its memory and without (``model.memory = None``):
held-out bits per character of the first ``--pieces`` held-out tunes of its data (0: all of them,
as `evaluate nll` scores them), the seconds to compose ``--tunes`` tunes (seeds 0..4, batches of
20, top-p 0.95, as `ostinato compose` samples), and with ``--originality`` the longest run of notes
each composed tune shares with a training tune (`evaluate samples`'s originality; reading the
training tunes takes a minute or two). Lower bits are better: the ratio printed is with / without.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", default="folk-abc", help="an ABC model folder with a memory (default folk-abc)")
    parser.add_argument("--data", default="music21:abc-folk", help="its data (held-out and training splits)")
    parser.add_argument("--tunes", type=int, default=100, help="tunes composed each way (default 100)")
    parser.add_argument("--pieces", type=int, default=0, help="held-out tunes scored (default 0: all)")
    parser.add_argument("--originality", action="store_true", help="longest runs shared with training tunes")
    args = parser.parse_args()

    import torch

    from ostinato.events.sources import iter_items
    from ostinato.symbolic.compose import compose
    from ostinato.symbolic.evaluate import TrainingIndex, likelihood, note_sequence
    from ostinato.symbolic.model import load_model_folder
    from ostinato.symbolic.sample import SamplingConfig
    from ostinato.symbolic.shipped import resolve_model

    torch.set_num_threads(1)
    model, tokenizer, config = load_model_folder(resolve_model(args.model), inference=True)
    memory = model.memory
    if memory is None:
        sys.exit(f"{args.model}: no memory (ostinato train memory gives it one)")
    items = list(iter_items(args.data, split="test"))
    if args.pieces:
        items = items[:args.pieces]
    index = None
    if args.originality:
        training = {}
        for item in iter_items(args.data, split="train"):
            try:
                training[item.key] = note_sequence(item.read(abc_reader="abc2midi"))
            except Exception:   # a tune music21 cannot read is no evidence either way
                continue
        index = TrainingIndex(training)
    rows = {}
    for name, recall in (("with the memory", memory), ("the network alone", None)):
        model.memory = recall
        bits = likelihood(model, tokenizer, context=config.context, items=items, quiet=True)["bits_per_char"]
        # (scoring with the memory built its index first: the timing below leaves it out)
        start, runs = time.perf_counter(), []
        for seed in range((args.tunes + 19) // 20):
            n = min(20, args.tunes - 20 * seed)
            for piece in compose(model, tokenizer, n=n, sampling=SamplingConfig(seed=seed, top_p=0.95)):
                if index is not None:
                    runs.append(index.longest_shared_run(note_sequence(piece.table))[0])
        seconds = time.perf_counter() - start
        rows[name] = (bits, seconds, runs)
        shared = (f"; shared with a training tune: longest {max(runs)} notes, mean {sum(runs) / len(runs):.2f}, "
                  f"over 20 in {sum(r > 20 for r in runs)}") if runs else ""
        print(f"{name}: {bits:.4f} bits/char held out ({len(items)} tunes); {args.tunes} tunes composed in "
              f"{seconds:.1f} s{shared}")
    (with_bits, with_s, _), (alone_bits, alone_s, _) = rows["with the memory"], rows["the network alone"]
    print(f"composing: {with_s / max(alone_s, 1e-9):.2f}x the network's time")
    print(f"held-out bits per character, with / without the memory: ratio {with_bits / alone_bits:.3f}x")


if __name__ == "__main__":
    main()
