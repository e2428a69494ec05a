"""Convert a corpus into training token shards from Python, then read the held-out pieces back.

    python examples/convert_corpus.py                                  # one Essen folk-song book, ABC tokens
    python examples/convert_corpus.py 'data/**/*.mid' --tokenizer remi -o shards/
    python examples/convert_corpus.py music21:abc-folk -j 2            # all ~13,000 of music21's folk tunes

The same batch from the command line:
    ostinato convert music21:essenFolksong/altdeu10.abc --to tokens --tokenizer abc -o example_shards
Run it again and everything is skipped (resume); add --overwrite to redo it.
"""

import argparse
from pathlib import Path

from ostinato.corpora import BatchOptions, ConvertSpec, PoolLimits, iter_shard_pieces, iter_sources, run_batch
from ostinato.symbolic.tokenizers import build_tokenizer, save_tokenizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", default="music21:essenFolksong/altdeu10.abc")
    parser.add_argument("--tokenizer", default="abc", help="abc, remi, tsd or midilike")
    parser.add_argument("-o", "--out", type=Path, default=Path("example_shards"))
    parser.add_argument("-j", "--jobs", type=int, default=2)
    args = parser.parse_args()

    items = list(iter_sources([args.source]))  # one item per file, one per tune of an ABC file
    held_out = sum(item.held_out for item in items)
    print(f"{len(items)} pieces in {args.source} ({held_out} held out), e.g. {items[0].key}")

    args.out.mkdir(parents=True, exist_ok=True)
    tokenizer_json = args.out / "tokenizer.json"
    if not tokenizer_json.exists():
        save_tokenizer(build_tokenizer(args.tokenizer), tokenizer_json)
    spec = ConvertSpec(to="tokens", out_dir=str(args.out), tokenizer=str(tokenizer_json))
    summary = run_batch(items, spec, BatchOptions(limits=PoolLimits(n_workers=args.jobs, time_limit_s=60)))
    print(summary.line())

    for key, ids in list(iter_shard_pieces(args.out, split="test"))[:3]:
        print(f"{key}: {len(ids)} tokens, first {ids[:8].tolist()}")


if __name__ == "__main__":
    main()
