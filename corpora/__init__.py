"""Data sets and batch conversion: sources, per-file converters, local and Ray runners, manifests.

    from ostinato.corpora import iter_sources, ConvertSpec, BatchOptions, PoolLimits, run_batch

    items = list(iter_sources(["music21:abc-folk"], split="train"))     # one Item per tune, keyed
    spec = ConvertSpec(to="mid", out_dir="out/")                         # or tokens, abc, pianoroll, ...
    summary = run_batch(items, spec, BatchOptions(limits=PoolLimits(n_workers=2)))
    print(summary.line())              # converted X/Y, failed Z, skipped W (manifest: out/manifest.jsonl)

Modules: :mod:`~corpora.sources` (files, folders, globs, music21 collections, the held-out
split), :mod:`~corpora.paired` (MAESTRO, URMP, Slakh2100 with their audio),
:mod:`~corpora.convert` (the per-item function), :mod:`~corpora.pool` (the local runner),
:mod:`~corpora.ray_runner` (Ray Data), :mod:`~corpora.batch` (resume, manifest, shards),
:mod:`~corpora.manifest`, :mod:`~corpora.shards` (token shards for training),
:mod:`~corpora.abc2midi` (the fast ABC reader).
"""

import importlib

# Loaded on first use, so that `ostinato --help` (which imports corpora.commands) stays light.
_EXPORTS = {
    "BatchOptions": "batch", "BatchSummary": "batch", "run_batch": "batch",
    "TARGETS": "convert", "ConvertSpec": "convert", "Result": "convert", "convert_item": "convert",
    "Pair": "paired", "detect_layout": "paired", "iter_pairs": "paired",
    "PoolLimits": "pool", "WorkerFailure": "pool", "run_pool": "pool",
    "iter_pieces": "shards",
    "Item": "sources", "is_held_out": "sources", "iter_items": "sources", "iter_sources": "sources",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        return getattr(importlib.import_module(f".{_EXPORTS[name]}", __name__), name)
    raise AttributeError(f"module 'corpora' has no attribute {name!r}")
