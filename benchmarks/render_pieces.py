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


def long_midi(path: Path, minutes: float = 6.0, source: str = "music21:bach") -> Path:
    """One General MIDI file of ``minutes`` or more: held-out pieces of ``source`` one after another (each
    with its own ensemble, every other one with drums, as :func:`heldout_midis`), one track per program
    and one drum track, at 120 bpm, written to ``path``."""
    import numpy as np

    from ostinato.events import NoteTable, Track

    notes, start = [], 0.0
    for key, table, _ in iter_notes(source, split="test"):
        table = assign_instruments(table, key)
        if len(notes) % 2 == 0:
            table = add_drum_part(table, key)
        notes.append((table, start))
        start += table.duration_s + 1.0
        if start >= 60 * minutes:
            break
    tracks = sorted({(bool(d), int(p)) for t, _ in notes for d, p in zip(t.is_drum, t.program, strict=True)})
    index = {kind: i for i, kind in enumerate(tracks)}
    tpq, per_s = 480, 480 * 2   # 120 bpm: 960 ticks a second
    onset, offset, pitch, velocity, track = [], [], [], [], []
    for table, at in notes:
        onset.append(np.round((table.onset_s + at) * per_s))
        offset.append(np.round((table.offset_s + at) * per_s))
        pitch.append(table.pitch)
        velocity.append(table.velocity)
        track.append([index[(bool(d), int(p))] for d, p in zip(table.is_drum, table.program, strict=True)])
    out = NoteTable.from_ticks(np.concatenate(onset), np.concatenate(offset), np.concatenate(pitch),
                               np.concatenate(velocity), np.concatenate(track),
                               [Track("drums" if d else f"program {p}", 0 if d else p, d) for d, p in tracks],
                               ticks_per_quarter=tpq, tempos=[(0, 120.0)], time_signatures=[(0, 4, 4)])
    path.parent.mkdir(parents=True, exist_ok=True)
    events.write_midi(out, path)
    return path
