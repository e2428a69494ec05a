"""Note sources for renderer training, through ``events.sources`` (files, folders, globs, music21).

Yields ``(key, table, held_out)``. Keys follow DESIGN.md (``<collection>/<file>`` and
``#<X>`` for a tune of an ABC file) and decide the held-out split.
"""

from __future__ import annotations

from collections.abc import Iterator


def iter_notes(source: str, *, split: str = "all", on_error=None) -> Iterator[tuple[str, object, bool]]:
    """``(key, NoteTable, held_out)`` for every piece of ``source`` in ``split`` (all/train/test).

    ``source`` is a file, folder, glob or ``music21:<collection or piece>``. A piece that cannot
    be read is passed to ``on_error(key, exc)`` (or raised without one) and skipped.
    """
    from ostinato.events.sources import iter_items

    for item in iter_items(source, split=split):
        try:
            yield item.key, item.read(), bool(item.held_out)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(item.key, exc)
