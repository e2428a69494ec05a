"""Data sets and batch conversion: sources, per-file converters, local and Ray runners, manifests.

    from ostinato.corpora import iter_sources, ConvertSpec, BatchOptions, PoolLimits, run_batch

    items = list(iter_sources(["music21:abc-folk"], split="train"))     # one Item per tune, keyed
    spec = ConvertSpec(to="mid", out_dir="out/")                         # or tokens, abc, pianoroll, ...
    summary = run_batch(items, spec, BatchOptions(limits=PoolLimits(n_workers=2)))
    print(summary.line())              # converted X/Y, failed Z, skipped W (manifest: out/manifest.jsonl)

The layer above the two stages (DESIGN.md, "The layers"): corpora may import
``ostinato.events``, ``ostinato.symbolic`` (tokens targets) and ``ostinato.render`` (audio
targets); nothing below imports corpora, and only ``ostinato.cli`` imports it.

Modules: :mod:`~corpora.convert` (the per-item function), :mod:`~corpora.pool` (the local
runner), :mod:`~corpora.ray_runner` (Ray Data), :mod:`~corpora.batch` (resume, manifest,
shards), :mod:`~corpora.manifest`, :mod:`~corpora.shards` (token shards for training),
:mod:`~corpora.commands` (``ostinato convert``). The sources of pieces (files, folders, globs,
music21 collections, the held-out split) are ``ostinato.events.sources``, re-exported here.
"""

import importlib

# Loaded on first use, so that `ostinato --help` (which imports corpora.commands) stays light.
_EXPORTS = {
    "BatchOptions": "batch", "BatchSummary": "batch", "run_batch": "batch",
    "TARGETS": "convert", "ConvertSpec": "convert", "Result": "convert", "convert_item": "convert",
    "PoolLimits": "pool", "WorkerFailure": "pool", "run_pool": "pool",
    "iter_shard_pieces": "shards",
    "Item": "ostinato.events.sources", "is_held_out": "ostinato.events.sources",
    "iter_items": "ostinato.events.sources", "iter_sources": "ostinato.events.sources",
}
__all__ = sorted(_EXPORTS)


def __getattr__(name: str):
    if name in _EXPORTS:
        module = _EXPORTS[name]
        return getattr(importlib.import_module(module if "." in module else f".{module}", __name__), name)
    raise AttributeError(f"module 'corpora' has no attribute {name!r}")
