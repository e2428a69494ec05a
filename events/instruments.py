"""Instruments for pieces that name none: music21's scores are parts without GM programs.

A multi-track token model and a renderer both need to know what plays each part. This gives
each part a General MIDI program, deterministically from the piece's key, so the same piece
always gets the same instruments on every machine.
"""

from __future__ import annotations

import dataclasses
import hashlib

import numpy as np

from .table import NoteTable, Track

# Ensembles a part-writing piece is played by; each lists GM programs, given to parts in turn.
ENSEMBLES: dict[str, tuple[int, ...]] = {
    "piano": (0,),
    "bright piano": (1,),
    "organ": (19,),
    "drawbar organ": (16,),
    "string quartet": (40, 40, 41, 42),
    "string ensemble": (48, 48, 48, 43),
    "woodwinds": (73, 68, 71, 70),
    "brass": (56, 60, 57, 58),
    "choir": (52,),
    "voices": (53,),
    "guitars": (24, 25, 33),
    "mixed": (73, 40, 60, 42),
}
# Programs a one-part piece is played by.
SOLO_PROGRAMS = (0, 19, 40, 41, 56, 57, 60, 65, 68, 71, 73, 52, 53, 24, 48, 22, 33, 42, 11)


def keyed_rng(key: str, salt: str) -> np.random.Generator:
    """A random generator seeded by ``salt`` and a piece ``key``: the same draws on every machine."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def assign_instruments(table: NoteTable, key: str) -> NoteTable:
    """The same notes with GM programs chosen per part, deterministically from ``key``.

    One-part pieces get a solo instrument; several parts get an ensemble of :data:`ENSEMBLES`
    (its programs given to the parts in turn). Drum tracks are left as they are.
    """
    rng = keyed_rng(key, "instruments")
    pitched = [i for i, t in enumerate(table.tracks) if not t.is_drum]
    if len(pitched) <= 1:
        programs = [int(rng.choice(SOLO_PROGRAMS))]
    else:
        programs = list(ENSEMBLES[list(ENSEMBLES)[int(rng.integers(len(ENSEMBLES)))]])
    tracks = list(table.tracks)
    for n, index in enumerate(pitched):
        tracks[index] = Track(name=tracks[index].name, program=programs[n % len(programs)], is_drum=False)
    return retrack(table, tracks)


def retrack(table: NoteTable, tracks: list[Track]) -> NoteTable:
    """``table`` with new track descriptions (same length and order): programs and drum flags follow."""
    if len(tracks) != len(table.tracks):
        raise ValueError(f"tracks: expected {len(table.tracks)} tracks, got {len(tracks)}")
    program = np.array([t.program for t in tracks], dtype=np.uint8)[table.track] if len(table) else table.program
    drum = np.array([t.is_drum for t in tracks], dtype=bool)[table.track] if len(table) else table.is_drum
    return dataclasses.replace(table, tracks=tracks, program=program, is_drum=drum)


DRUMS = "drums"


def instrument_program(name: str) -> int | str:
    """A General MIDI program (0-127) for ``name``: a number, a GM instrument name (``"Violin"``),
    or ``"drums"`` (returned as the string ``"drums"``).

    Raises:
        ValueError: neither (one line, naming ``name``).
    """
    name = name.strip()
    if name.lower() == DRUMS:
        return DRUMS
    if name.isascii() and name.isdigit() and 0 <= int(name) <= 127:
        return int(name)
    import pretty_midi

    try:
        return int(pretty_midi.instrument_name_to_program(name))
    except ValueError:
        raise ValueError(f"unknown instrument {name!r} (a GM program 0-127, a GM name such as 'Violin', "
                         f"or drums)") from None


def instrument_list(text: str) -> tuple[int | str, ...]:
    """``"0,Violin,drums"`` -> ``(0, 40, "drums")`` (see :func:`instrument_program`); empty items are skipped."""
    return tuple(instrument_program(x) for x in text.split(",") if x.strip())
