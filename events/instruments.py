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

# Ensembles a part-writing piece is played by: GM programs, highest part first. A keyboard (one program)
# plays every part in one stream, its voices merged as a keyboard part's are; the others give each part
# a program of its own (:func:`ensemble_programs`), so a model learns each line as a line.
ENSEMBLES: dict[str, tuple[int, ...]] = {
    "piano": (0,),
    "organ": (19,),
    "strings": (40, 41, 42, 43),
    "woodwinds": (73, 68, 71, 70),
    "brass": (56, 60, 57, 58),
    "guitars": (24, 25, 26, 33),
    "mixed": (73, 40, 60, 42),
}
# Programs for parts beyond an ensemble's own (a five-voice mass), in this order, skipping those it has;
# also the stand-ins that keep a primer's parts apart when they share a program (symbolic.midi_tokens).
MORE_PARTS = (73, 40, 60, 42, 71, 41, 70, 43, 68, 57, 56, 58, 65, 66, 69, 32)
# Programs a one-part piece is played by.
SOLO_PROGRAMS = (0, 19, 40, 41, 56, 57, 60, 65, 68, 71, 73, 52, 53, 24, 48, 22, 33, 42, 11)


def keyed_rng(key: str, salt: str) -> np.random.Generator:
    """A random generator seeded by ``salt`` and a piece ``key``: the same draws on every machine."""
    digest = hashlib.sha256(f"{salt}:{key}".encode()).digest()
    return np.random.default_rng(int.from_bytes(digest[:8], "little"))


def ensemble_programs(name: str, n_parts: int) -> tuple[int, ...]:
    """The programs of ``n_parts`` parts (highest first) on ensemble ``name`` of :data:`ENSEMBLES`.

    A keyboard gives every part its one program; another ensemble gives each part its own: its
    programs in turn, then those of :data:`MORE_PARTS` it lacks (``("mixed", 5)`` -> 73, 40, 60, 42, 71),
    so at most ``len(ENSEMBLES[name]) + 12`` parts.
    """
    own = ENSEMBLES[name]
    if len(own) == 1:
        return own * n_parts
    programs = (*own, *(p for p in MORE_PARTS if p not in own))
    if n_parts > len(programs):
        raise ValueError(f"n_parts: ensemble {name!r} has programs for at most {len(programs)} parts, not {n_parts}")
    return programs[:n_parts]


def assign_instruments(table: NoteTable, key: str) -> NoteTable:
    """The same notes with GM programs chosen per part, deterministically from ``key``.

    One-part pieces get a solo instrument; several parts get an ensemble of :data:`ENSEMBLES`
    (:func:`ensemble_programs`: a program per part, or a keyboard's one). Drum tracks are left as they are.
    """
    rng = keyed_rng(key, "instruments")
    pitched = [i for i, t in enumerate(table.tracks) if not t.is_drum]
    if len(pitched) <= 1:
        programs = [int(rng.choice(SOLO_PROGRAMS))]
    else:
        name = list(ENSEMBLES)[int(rng.integers(len(ENSEMBLES)))]
        programs = list(ensemble_programs(name, min(len(pitched), len(MORE_PARTS))))
    tracks = list(table.tracks)
    for n, index in enumerate(pitched):
        tracks[index] = Track(name=tracks[index].name, program=programs[n % len(programs)], is_drum=False)
    return retrack(table, tracks)


def ensemble_maps(programs: set[int] | frozenset[int]) -> dict[str, dict[int, int]]:
    """``{ensemble name: {program: new program}}``: the other ensembles a piece whose pitched parts were
    given ``programs`` by :func:`assign_instruments` can be played by, part for part.

    The piece's parts are matched to the first ensemble (and the fewest parts) that gives exactly
    ``programs``; another ensemble plays part ``n`` as ``assign_instruments`` would have
    (:func:`ensemble_programs`). A keyboard takes every part (merged onto its program); a piece already
    on a keyboard (its parts merged, or one part) only takes the other keyboard. Empty when ``programs``
    is no ensemble's."""
    programs = frozenset(programs)
    for name in ENSEMBLES:
        for n_parts in range(1, len(MORE_PARTS) + 1):
            own = ensemble_programs(name, n_parts)
            if frozenset(own) != programs:
                continue
            maps: dict[str, dict[int, int]] = {}
            for other in ENSEMBLES:
                theirs = ensemble_programs(other, n_parts)
                if other == name or (len(programs) == 1 and len(ENSEMBLES[other]) > 1):
                    continue
                maps[other] = dict(zip(own, theirs, strict=True))
            return maps
    return {}


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


# ---------------------------------------------------------------------------- playable ranges
@dataclasses.dataclass(frozen=True)
class InstrumentRange:
    """What one General MIDI instrument can play: sounding MIDI pitches ``low..high`` (inclusive)
    and at most ``polyphony`` notes sounding at once (a violin's double stop is 2, a flute 1)."""

    low: int
    high: int
    polyphony: int


def _ranges(*spans: tuple[int, int, int, int, int]) -> tuple[InstrumentRange, ...]:
    table: list[InstrumentRange | None] = [None] * 128
    for first, last, low, high, poly in spans:
        for program in range(first, last + 1):
            table[program] = InstrumentRange(low, high, poly)
    assert all(r is not None for r in table)
    return tuple(table)  # type: ignore[arg-type]


# The playable range of each of the 128 General MIDI programs (index = program), as sounding MIDI
# pitches (middle C = 60), with the most notes it sounds at once. Orchestral instruments take the
# standard orchestration ranges (S. Adler, *The Study of Orchestration*, 3rd ed., and the Vienna
# Symphonic Library instrument pages): violin G3-A7 (55-105 cut to 103), viola C3-E6, cello C2-C6,
# contrabass E1-G4 sounding, trumpet F#3-D6, horn B1-F5, trombone E2-C5, tuba D1-F4 (limited to
# E1..), flute C4-C7, oboe Bb3-G6, clarinet D3-Bb6, bassoon Bb1-Eb5, saxophones at their written
# range transposed to sounding pitch; fretted instruments from their standard tunings (guitar
# E2-E6, bass E1-G4); keyboards their keyboard compass; voices the choral SATB compass E2-A5.
# Synthesizer and effect programs (80-103, 119-127) have no acoustic model: the span of a 61-key
# keyboard (C2-C7) is used. Monophonic winds and brass play 1 note, bowed strings 2 (double stops),
# plucked strings their string count, keyboards 10 (two hands), sections and pads 8.
GM_RANGES: tuple[InstrumentRange, ...] = _ranges(
    (0, 5, 21, 108, 10),      # pianos, electric pianos: A0-C8
    (6, 6, 29, 89, 10),       # harpsichord F1-F6
    (7, 7, 36, 96, 10),       # clavinet
    (8, 8, 60, 108, 10),      # celesta C4-C8
    (9, 9, 79, 108, 2),       # glockenspiel G5-C8 (sounding)
    (10, 10, 60, 96, 6),      # music box
    (11, 11, 53, 89, 4),      # vibraphone F3-F6
    (12, 12, 45, 96, 4),      # marimba A2-C7
    (13, 13, 65, 108, 2),     # xylophone F4-C8 (sounding)
    (14, 14, 60, 77, 2),      # tubular bells C4-F5
    (15, 15, 48, 96, 4),      # dulcimer
    (16, 18, 36, 96, 10),     # drawbar, percussive, rock organ
    (19, 19, 24, 108, 10),    # church organ, pedals from C1
    (20, 20, 36, 96, 10),     # reed organ
    (21, 21, 41, 89, 6),      # accordion (treble keyboard)
    (22, 22, 60, 96, 3),      # harmonica
    (23, 23, 41, 89, 6),      # tango accordion
    (24, 24, 40, 83, 6),      # nylon guitar E2-B5
    (25, 30, 40, 88, 6),      # steel, jazz, clean, muted, overdriven, distortion guitars E2-E6
    (31, 31, 52, 88, 6),      # guitar harmonics
    (32, 37, 28, 67, 2),      # acoustic, finger, pick, fretless, slap basses E1-G4
    (38, 39, 24, 72, 2),      # synth basses
    (40, 40, 55, 103, 2),     # violin G3-G7
    (41, 41, 48, 91, 2),      # viola C3-G6
    (42, 42, 36, 84, 2),      # cello C2-C6
    (43, 43, 28, 67, 2),      # contrabass E1-G4 (sounding)
    (44, 45, 28, 103, 8),     # tremolo, pizzicato strings (the section)
    (46, 46, 23, 103, 8),     # harp B0-G7
    (47, 47, 40, 57, 2),      # timpani E2-A3
    (48, 51, 28, 103, 8),     # string ensembles, synth strings
    (52, 53, 40, 81, 8),      # choir aahs, voice oohs: E2-A5
    (54, 54, 40, 84, 8),      # synth voice
    (55, 55, 36, 84, 6),      # orchestra hit
    (56, 56, 54, 86, 1),      # trumpet F#3-D6
    (57, 57, 40, 72, 1),      # trombone E2-C5
    (58, 58, 28, 65, 1),      # tuba E1-F4
    (59, 59, 54, 82, 1),      # muted trumpet
    (60, 60, 35, 77, 1),      # french horn B1-F5
    (61, 61, 35, 86, 6),      # brass section
    (62, 63, 36, 96, 8),      # synth brass
    (64, 64, 56, 87, 1),      # soprano sax Ab3-Eb6
    (65, 65, 49, 81, 1),      # alto sax Db3-A5
    (66, 66, 44, 76, 1),      # tenor sax Ab2-E5
    (67, 67, 36, 69, 1),      # baritone sax C2-A4
    (68, 68, 58, 91, 1),      # oboe Bb3-G6
    (69, 69, 52, 81, 1),      # english horn E3-A5
    (70, 70, 34, 75, 1),      # bassoon Bb1-Eb5
    (71, 71, 50, 94, 1),      # clarinet D3-Bb6
    (72, 72, 74, 108, 1),     # piccolo D5-C8
    (73, 73, 60, 96, 1),      # flute C4-C7
    (74, 74, 72, 98, 1),      # recorder (soprano) C5-D7
    (75, 76, 60, 96, 1),      # pan flute, blown bottle
    (77, 77, 55, 91, 1),      # shakuhachi
    (78, 78, 72, 108, 1),     # whistle
    (79, 79, 60, 89, 1),      # ocarina
    (80, 87, 36, 96, 2),      # synth leads
    (88, 95, 36, 96, 8),      # synth pads
    (96, 103, 36, 96, 6),     # synth effects
    (104, 104, 48, 84, 2),    # sitar
    (105, 105, 48, 86, 4),    # banjo
    (106, 106, 50, 84, 2),    # shamisen
    (107, 107, 55, 91, 4),    # koto
    (108, 108, 60, 88, 4),    # kalimba
    (109, 109, 55, 74, 1),    # bagpipe (chanter)
    (110, 110, 55, 100, 2),   # fiddle
    (111, 111, 60, 90, 1),    # shanai
    (112, 112, 72, 96, 2),    # tinkle bell
    (113, 113, 60, 84, 2),    # agogo
    (114, 114, 52, 88, 4),    # steel drums
    (115, 115, 60, 84, 2),    # woodblock
    (116, 118, 36, 72, 2),    # taiko, melodic tom, synth drum
    (119, 127, 36, 96, 2),    # reverse cymbal and sound effects
)
# The GM percussion key map (channel 10): 27 (high Q) .. 87 (open surdo); a kit plays 4 at once.
DRUM_RANGE = InstrumentRange(27, 87, 4)
GM_RANGE_TABLE = np.array([(r.low, r.high) for r in GM_RANGES], dtype=np.int64)   # [128, 2]: low, high


def instrument_range(program: int | str) -> InstrumentRange:
    """The :class:`InstrumentRange` of a GM program 0-127, or of ``"drums"`` (or program -1)."""
    if program == DRUMS or program == -1:
        return DRUM_RANGE
    if not isinstance(program, int | np.integer) or not 0 <= program <= 127:
        raise ValueError(f"program: expected a GM program 0-127 or {DRUMS!r}, got {program!r}")
    return GM_RANGES[int(program)]
