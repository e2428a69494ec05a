"""Token-stage benchmark: training throughput, and held-out bits per character against `xz -9e`.

    python benchmarks/train_symbolic.py [--data music21:abc-folk] [--steps 300] [--config small]
    python benchmarks/train_symbolic.py --data music21:abc-folk --model folk-abc

Trains a model on the ABC tunes of --data with `ostinato train symbolic` (in-process), then
prints tokens per second and the held-out bits per character next to `xz -9e` compressing the
same held-out normalised text (its size in bits / characters). Lower is better for both; the
ratio says how much better the model is than a strong general-purpose compressor.

With --model (a shipped name or a model folder) nothing is trained: the model's held-out bits
per character (``ostinato evaluate nll``'s computation) is compared with xz on the same text;
--write-card also writes the comparison into the model's card (section "Against xz -9e").

With --all every tune of --data is scored, not only the held-out ones: for a collection the model
was trained without (``train symbolic --leave-out ryansMammoth``), how it does on music it never
saw, again beside xz on that text (card section "On music it never saw: <data>").

    python benchmarks/train_symbolic.py --data music21:ryansMammoth --all --model runs/folk-lo --write-card
"""

from __future__ import annotations

import argparse
import json
import lzma
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data", default="music21:essenFolksong")
    parser.add_argument("--steps", type=int, default=300)
    parser.add_argument("--config", default="small")
    parser.add_argument("--batch-size", type=int, default=16)
    parser.add_argument("--out", help="model folder (default: a temporary one)")
    parser.add_argument("--model", help="measure this trained model instead of training one")
    parser.add_argument("--write-card", action="store_true", help="with --model: record the result in its card")
    parser.add_argument("--all", action="store_true",
                        help="with --model: score every tune of --data (a collection left out of its training)")
    args = parser.parse_args()
    split = "all" if args.all else "test"

    from ostinato.events.sources import iter_items
    from ostinato.symbolic.tokenizers import build_tokenizer

    tokenizer = build_tokenizer("abc")
    texts = []
    for item in iter_items(args.data, split=split):
        try:
            texts.append(tokenizer.normalise(item.abc_text()))
        except ValueError:
            continue
    heldout = "".join(texts)
    xz = lzma.compress(heldout.encode(), preset=9 | lzma.PRESET_EXTREME)
    xz_bpc = 8 * len(xz) / len(heldout)

    if args.model:
        compare_trained(args.model, args.data, heldout, xz_bpc, write_card=args.write_card, split=split)
        return
    out = Path(args.out or tempfile.mkdtemp(prefix="ostinato-bench-"))
    from ostinato import cli
    started = time.perf_counter()
    code = cli.main(["train", "symbolic", "--data", args.data, "--tokenizer", "abc", "--out", str(out),
                     "--config", args.config, "--steps", str(args.steps), "--batch-size", str(args.batch_size),
                     "--eval-every", str(args.steps), "--checkpoint-every", str(args.steps), "-q"])
    if code:
        sys.exit(code)
    wall = time.perf_counter() - started
    metrics = json.loads((out / "metrics.json").read_text())
    tokens = args.steps * args.batch_size * metrics["model"]["context"]
    ours = metrics["heldout"]["bits_per_char"]
    print(f"data {args.data}: {metrics['n_train_pieces']} training tunes, {len(texts)} held-out tunes "
          f"({len(heldout):,} characters)")
    print(f"training: {tokens / metrics['elapsed_s']:,.0f} tokens/s over {args.steps} steps on {metrics['device']} "
          f"(wall {wall:.0f} s including tokenization)")
    print(f"held-out bits per character: model {ours:.3f}, xz -9e {xz_bpc:.3f} (ratio xz/model {xz_bpc / ours:.2f}x)")


def compare_trained(model_name: str, data: str, heldout: str, xz_bpc: float, *, write_card: bool = False,
                    split: str = "test") -> None:
    """Print a trained model's held-out bits per character next to xz's (and put it in its card);
    ``split="all"``: on every tune of ``data`` (a collection it was trained without)."""
    from ostinato.events.sources import iter_items
    from ostinato.symbolic.evaluate import likelihood
    from ostinato.symbolic.model import load_model_folder
    from ostinato.symbolic.shipped import resolve_model

    folder = resolve_model(model_name)
    model, tokenizer, config = load_model_folder(folder)
    figures = likelihood(model, tokenizer, context=config.context, items=list(iter_items(data, split=split)))
    ours = figures["bits_per_char"]
    what = "held-out" if split == "test" else "every tune of"
    print(f"{what} {data}: {figures['n_pieces']} tunes, {figures['n_chars']:,} characters "
          f"(xz's text: {len(heldout):,}), {figures['n_failed']} not tokenized")
    print(f"{what} {data}, bits per character: model {ours:.4f}, xz -9e {xz_bpc:.4f}: model / xz = "
          f"{ours / xz_bpc:.4f} (xz / model {xz_bpc / ours:.2f}x)")
    if write_card:
        from ostinato.events.atomic import write_text_atomic

        card = (folder / "model_card.md").read_text()
        title = "Against xz -9e" if split == "test" else f"On music it never saw: {data}"
        before, _, after = card.partition(f"\n## {title}\n")
        rest = after[after.index("\n## "):] if "\n## " in after else ""   # the sections after this one stay
        flag = "" if split == "test" else " --all"
        card = before.rstrip("\n") + "\n"
        card += (f"\n## {title}\n\n`python benchmarks/train_symbolic.py --data {data}{flag} --model {model_name} "
                 f"--write-card`:\n\n| {what} {data}: bits per character | value |\n|---|---|\n"
                 f"| this model | {ours:.4f} |\n| `xz -9e` on the same normalised text "
                 f"({len(heldout):,} characters) | {xz_bpc:.4f} |\n| model / xz | {ours / xz_bpc:.3f} |\n") + rest
        write_text_atomic(folder / "model_card.md", card)
        print(f"wrote the comparison into {folder / 'model_card.md'}")


if __name__ == "__main__":
    main()
