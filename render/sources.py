"""Note sources for renderer training: ``corpora.sources`` when present, else a small fallback.

Yields ``(key, table, held_out)``. Keys follow DESIGN.md (``<collection>/<file>`` and
``#<X>`` for a tune of an ABC file) and decide the held-out split.
"""

from __future__ import annotations

import glob
import os
from collections.abc import Iterator
from pathlib import Path

from .paired import is_held_out


def iter_notes(source: str, *, split: str = "all", on_error=None) -> Iterator[tuple[str, object, bool]]:
    """``(key, NoteTable, held_out)`` for every piece of ``source`` in ``split`` (all/train/test).

    ``source`` is a file, folder, glob or ``music21:<collection or piece>``. A piece that cannot
    be read is passed to ``on_error(key, exc)`` (or raised without one) and skipped.
    """
    try:
        from corpora.sources import iter_items
    except ImportError:
        iter_items = None
    if iter_items is not None:
        for item in iter_items(source, split=split):
            try:
                yield item.key, item.read(), bool(item.held_out)
            except Exception as exc:
                if on_error is None:
                    raise
                on_error(item.key, exc)
        return
    for key, piece in _fallback_pieces(source):  # until corpora.sources lands
        held_out = is_held_out(key)
        if (split == "train" and held_out) or (split == "test" and not held_out):
            continue
        try:
            yield key, piece.read(), held_out
        except Exception as exc:
            if on_error is None:
                raise
            on_error(key, exc)


def _fallback_pieces(source: str):
    import events

    if source.startswith("music21:") and "/" not in source[len("music21:"):]:
        import music21

        name = source[len("music21:"):]
        root = Path(music21.corpus.__file__).parent / "corpus"
        paths = sorted(str(p) for p in music21.corpus.getComposer(name))
        if not paths:
            raise events.InputError(source, "no such music21 collection")
        for path in paths:
            if Path(path).suffix.lower() not in events.READ_SUFFIXES:
                continue
            relative = os.path.relpath(path, root / name) if Path(path).is_relative_to(root / name) else Path(path).name
            for piece in events.pieces(path):
                suffix = piece.key[len(path):] if piece.key.startswith(path) else ""
                yield f"{name}/{relative}{suffix}", piece
        return
    if any(ch in source for ch in "*?["):
        paths = sorted(glob.glob(source, recursive=True))
    elif Path(source).is_dir():
        paths = sorted(str(p) for p in Path(source).rglob("*") if p.suffix.lower() in events.READ_SUFFIXES)
    else:
        paths = [source]
    base = Path(source).name if Path(source).is_dir() else ""
    for path in paths:
        for piece in events.pieces(path):
            key = piece.key
            if base:
                key = f"{base}/{os.path.relpath(path, source)}{key[len(path):]}"
            yield key, piece
