"""Held-out multi-track pieces for the render benchmarks (shared by render_speed/quality/memory).

The held-out chorales of music21's Bach collection (DESIGN.md split), with instruments assigned
per part and, for every other piece, a drum part, exactly as the shipped model's training data was
made (render/paired.py), written as MIDI files into a folder.
"""

from __future__ import annotations

import itertools
from pathlib import Path

from ostinato import events
from ostinato.render.paired import add_drum_part, assign_instruments
from ostinato.render.sources import iter_notes


def heldout_midis(folder: Path, n_pieces: int = 6, source: str = "music21:bach") -> list[Path]:
    """Write ``n_pieces`` held-out pieces of ``source`` as multi-track MIDI into ``folder``."""
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i, (key, table, held_out) in enumerate(itertools.islice(iter_notes(source, split="test"), n_pieces)):
        assert held_out, key
        table = assign_instruments(table, key)
        if i % 2 == 0:
            table = add_drum_part(table, key)
        path = folder / (key.replace("/", "_").replace("#", "_") + ".mid")
        events.write_midi(table, path)
        paths.append(path)
    return paths
