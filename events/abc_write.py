"""NoteTable -> ABC 2.1 text (our own writer: music21 reads ABC but does not write it).

Time is quantised to a grid of 1/12 quarter note (``GRID_PER_QUARTER``), so sixteenths and
eighth- and sixteenth-note triplets are exact: a tick ``t`` becomes grid step
``round(t * 12 / ticks_per_quarter)`` (halves round up). A note that quantises to zero length
keeps one grid step. Durations are written as reduced multiples of the unit length ``L:``
whose denominators are powers of two (``C2``, ``C/``, ``C3/2``), as every reader takes them (abc2midi
refuses ``C2/3``); triplet lengths are written as tuplets of such lengths within a beat: ``(3CDE``
for eighth triplets, ``(3:2:6G/A/B/c/d/e/`` for sixteenth ones, ``(3:2:r`` for any ``r`` items whose
lengths are thirds or sixths of plain ones. A note no tuplet note can be (5/12 of a quarter) is
written as tied pieces on and off the sixteenth grid, a rest as rests.

Layout of the text::

    %abc-2.1                 file identification: ABC 2.1 rules (accidentals carry in a bar)
    X:1                      reference number
    T:title                  only when a title is given
    M:4/4                    first time signature (default 4/4); later ones inline, [M:3/4]
    L:1/8                    unit note length
    Q:1/4=120                first tempo, quarter notes per minute
    K:G                      first key signature (tonic and mode, K:Em, K:Ddor); default K:C
    V:1 name="Piano"         one voice per track and polyphonic layer (only when more than one;
                             a track's layers share its name, and a reader takes them as one part)
    %%MIDI program 0         the voice's General MIDI program (drums: %%MIDI channel 10)
    G2 A2 B2 c2 | ...        four bars a line, a final |]

Notes of one track with the same onset and length form a chord ``[CEG]``; notes that overlap
with other timing go to further voices, allocated greedily (the first voice that is free at
the note's onset). Every voice has the same bars; gaps are rests ``z`` and a note that
crosses a bar line is split and tied with ``-``.

Pitches are spelled from the first key signature: a pitch in the key's scale takes its
diatonic name, the semitone below the tonic is the leading tone (C# in D minor), and any
other pitch is a sharp (sharp and neutral keys) or a flat (flat keys).
Accidentals follow the ABC 2.1 rule that an accidental holds to the end of the bar for that
letter in that octave. Because readers differ where that rule is silent or loosely
implemented (music21 carries an accidental into every octave and not into or out of chords),
a courtesy accidental is also written wherever such a reader would hear a different pitch, and
a note tied over a bar line repeats an accidental its first part showed (music21 joins ties
only between notes that agree on that). Chords tied over a bar line are written ``[C-E-]``;
music21 alone reads them as two chords (it reads no ties inside chords); our reader holds them
(:func:`events.abc_read.tie_chords`).

Not written: velocities, later key and tempo changes (the first key spells the whole piece,
so pitches stay exact), lyrics and repeats. Locrian keys are written as the major key with the
same signature (music21 does not read ``K:Bloc``).
"""

from __future__ import annotations

import itertools
import os
import warnings
from dataclasses import dataclass
from fractions import Fraction

import numpy as np

from .atomic import write_text_atomic
from .table import KeySignature, NoteTable
from .theory import ABC_MODE_SUFFIX, LETTERS, NATURAL_PC, key_alterations, tonic_pc

GRID_PER_QUARTER = 12  # grid steps per quarter note
BARS_PER_LINE = 4

_SHARP_NAMES = [("C", 0), ("C", 1), ("D", 0), ("D", 1), ("E", 0), ("F", 0),
                ("F", 1), ("G", 0), ("G", 1), ("A", 0), ("A", 1), ("B", 0)]
_FLAT_NAMES = [("C", 0), ("D", -1), ("D", 0), ("E", -1), ("E", 0), ("F", 0),
               ("G", -1), ("G", 0), ("A", -1), ("A", 0), ("B", -1), ("B", 0)]
_ACCIDENTAL_TEXT = {-2: "__", -1: "_", 0: "=", 1: "^", 2: "^^"}


# --------------------------------------------------------------------------- data


@dataclass(frozen=True)
class _Event:
    """A note or chord of one voice: grid steps ``[start, end)`` and its MIDI pitches."""

    start: int
    end: int
    pitches: tuple[int, ...]


@dataclass(frozen=True)
class _Bar:
    """One bar: grid steps ``[start, end)``, the beat (grid steps) and an inline meter to write."""

    start: int
    end: int
    beat: int
    meter: str | None  # e.g. "3/4" where the meter changes at this bar, else None


@dataclass(frozen=True)
class _Voice:
    """One ABC voice: its events in time order and the track it came from."""

    events: list[_Event]
    track: int
    first_of_track: bool


# --------------------------------------------------------------------------- public API


def table_to_abc(
    table: NoteTable,
    *,
    title: str | None = None,
    reference_number: int = 1,
    unit_length: Fraction = Fraction(1, 8),
) -> str:
    """The ABC 2.1 text of one tune holding every note of ``table``.

    Args:
        table: the notes; times are read from ``onset_tick``/``offset_tick``.
        title: written as ``T:`` when given.
        reference_number: the tune's ``X:`` number.
        unit_length: the ``L:`` unit note length, as a fraction of a whole note (1/8 = eighth).

    Returns:
        The tune as text, ending in a newline.
    """
    unit_length = Fraction(unit_length)
    if unit_length <= 0:
        raise ValueError(f"unit_length must be > 0, got {unit_length}")
    key = table.key_signatures[0] if table.key_signatures else KeySignature(0, 0.0, 0, "major")
    starts, ends = _quantise(table.onset_tick, table.offset_tick, table.ticks_per_quarter)
    voices = _all_voices(table, starts, ends)
    bars = _make_bars(_meters(table), int(ends.max()) if len(ends) else 0)
    lines = _header(table, key, title, reference_number, unit_length)
    key_alters, spelling = key_alterations(key.sharps), _spelling(key)
    names = _voice_names(table, voices)
    for number, voice in enumerate(voices, start=1):
        lines += _voice_preamble(table, voice, number, len(voices), names.get(voice.track, ""))
        bar_texts = _VoiceWriter(key_alters, spelling, unit_length).bars(voice.events, bars)
        lines += _music_lines(bar_texts, bars)
    return "\n".join(lines) + "\n"


def write_abc(table: NoteTable, path: str | os.PathLike, **options) -> None:
    """Write ``table`` to ``path`` as an ABC 2.1 file, atomically.

    ``options`` (``title``, ``reference_number``, ``unit_length``) go to :func:`table_to_abc`.
    """
    write_text_atomic(path, table_to_abc(table, **options))


# --------------------------------------------------------------------------- time


def _quantise(onset_tick: np.ndarray, offset_tick: np.ndarray, ticks_per_quarter: int) -> tuple[np.ndarray, np.ndarray]:
    """Onsets and offsets ([n_notes] ticks) as grid steps; every note keeps at least one step."""
    starts = _to_grid(onset_tick, ticks_per_quarter)
    ends = np.maximum(_to_grid(offset_tick, ticks_per_quarter), starts + 1)
    return starts, ends


def _to_grid(ticks: np.ndarray | int, ticks_per_quarter: int) -> np.ndarray:
    """Nearest grid step (1/12 quarter) of ``ticks``, halves rounded up, in exact integer arithmetic."""
    ticks = np.asarray(ticks, dtype=np.int64)
    return (2 * GRID_PER_QUARTER * ticks + ticks_per_quarter) // (2 * ticks_per_quarter)


def _meters(table: NoteTable) -> list[tuple[int, int, int]]:
    """``(grid step, numerator, denominator)`` meter changes; the first starts at step 0."""
    changes: dict[int, tuple[int, int]] = {}
    for i, ts in enumerate(table.time_signatures):
        step = 0 if i == 0 else int(_to_grid(ts.tick, table.ticks_per_quarter))
        changes[step] = (ts.numerator, ts.denominator)
    changes.setdefault(0, (4, 4))
    return [(step, num, den) for step, (num, den) in sorted(changes.items())]


def _beat_steps(numerator: int, denominator: int) -> int:
    """Grid steps of one beat: a dotted quarter in compound meters (6/8, 9/8), else 1/denominator."""
    unit = Fraction(4 * GRID_PER_QUARTER, denominator)
    if denominator >= 8 and numerator % 3 == 0 and numerator > 3:
        unit *= 3
    return max(1, round(unit))


def _make_bars(meters: list[tuple[int, int, int]], end: int) -> list[_Bar]:
    """Bars from step 0 until ``end`` (grid steps), at least one; a meter change starts a new bar."""
    bars: list[_Bar] = []
    pos, index, previous = 0, 0, None
    while pos < end or not bars:
        while index + 1 < len(meters) and meters[index + 1][0] <= pos:
            index += 1
        _, num, den = meters[index]
        length = max(1, round(Fraction(4 * GRID_PER_QUARTER * num, den)))
        bar_end = pos + length
        if index + 1 < len(meters):
            bar_end = min(bar_end, meters[index + 1][0])
        text = f"{num}/{den}"
        bars.append(_Bar(pos, bar_end, _beat_steps(num, den), text if bars and text != previous else None))
        previous, pos = text, bar_end
    return bars


# --------------------------------------------------------------------------- voices


def _all_voices(table: NoteTable, starts: np.ndarray, ends: np.ndarray) -> list[_Voice]:
    """The voices of every track that has notes, in track order (one empty voice if no notes)."""
    voices: list[_Voice] = []
    for track in sorted({int(t) for t in table.track}):
        idx = np.flatnonzero(table.track == track)
        layers = _allocate(_chords(starts[idx], ends[idx], table.pitch[idx]))
        voices += [_Voice(events, track, i == 0) for i, events in enumerate(layers)]
    return voices or [_Voice([], -1, True)]


def _chords(starts: np.ndarray, ends: np.ndarray, pitches: np.ndarray) -> list[_Event]:
    """Group notes ([n] grid steps and MIDI pitches) with equal start and end into chords."""
    groups: dict[tuple[int, int], list[int]] = {}
    for s, e, p in zip(starts.tolist(), ends.tolist(), pitches.tolist()):
        groups.setdefault((s, e), []).append(p)
    return [_Event(s, e, tuple(sorted(ps))) for (s, e), ps in groups.items()]


def _allocate(events: list[_Event]) -> list[list[_Event]]:
    """Put events into voices greedily: each goes to the first voice free at its start.

    Events are taken by start, the highest-pitched first at equal starts (so the top line
    lands in voice 1).
    """
    layers: list[list[_Event]] = []
    for event in sorted(events, key=lambda ev: (ev.start, -ev.pitches[-1], ev.end)):
        for layer in layers:
            if layer[-1].end <= event.start:
                layer.append(event)
                break
        else:
            layers.append([event])
    return layers


# --------------------------------------------------------------------------- pitch


def _spelling(key: KeySignature) -> list[tuple[str, int]]:
    """``(letter, alteration)`` for each pitch class 0-11 under ``key``.

    Pitch classes of the key's scale take their diatonic names; the pitch a semitone below
    the tonic is its leading tone (C# in D minor, not Db); any other pitch is a sharp in
    sharp and neutral keys and a flat in flat keys. Double sharps and flats are never used.
    """
    key_alters = key_alterations(key.sharps)
    names = list(_FLAT_NAMES if key.sharps < 0 else _SHARP_NAMES)
    tonic = tonic_pc(key.tonic)
    leading = LETTERS[LETTERS.index(key.tonic[0]) - 1]
    leading_alter = (tonic - 1 - NATURAL_PC[leading] + 6) % 12 - 6
    if abs(leading_alter) <= 1:
        names[(tonic - 1) % 12] = (leading, leading_alter)
    for letter, alter in key_alters.items():
        names[(NATURAL_PC[letter] + alter) % 12] = (letter, alter)
    return names


def _spell(pitch: int, spelling: list[tuple[str, int]]) -> tuple[str, int, int]:
    """``(letter, alteration, octave)`` of MIDI ``pitch`` under a :func:`_spelling` table.

    The octave is the scientific one of the letter (B#3 is MIDI 60, C4 is MIDI 60).
    """
    letter, alter = spelling[pitch % 12]
    return letter, alter, (pitch - alter - NATURAL_PC[letter]) // 12 - 1


def _pitch_text(letter: str, octave: int) -> str:
    """ABC note name: C = C4 (MIDI 60), c = C5, c' = C6, C, = C3."""
    if octave >= 5:
        return letter.lower() + "'" * (octave - 5)
    return letter + "," * (4 - octave)


class _BarAccidentals:
    """The accidentals in force within one bar, as different ABC readers track them.

    ABC 2.1 carries an accidental to the end of the bar for the same letter in the same
    octave; music21 carries it for the letter in every octave, and neither into nor out of
    chords. An accidental is left off only where all these readings give the wanted pitch.
    """

    def __init__(self, key_alters: dict[str, int]):
        self.key = key_alters
        self.by_octave: dict[tuple[str, int], int] = {}  # ABC 2.1: letter and octave
        self.by_letter: dict[str, int] = {}  # "pitch" propagation: letter, any octave
        self.by_letter_single: dict[str, int] = {}  # music21: set and read by single notes only

    def mark(self, letter: str, octave: int, alter: int, in_chord: bool, force: bool = False) -> tuple[str, bool]:
        """The accidental to write (``""`` if none, unless ``force``) for a note; remember its effect.

        Also returns whether music21 gives the note an accidental of its own (written, or
        carried from earlier in the bar), which it needs to know to join tied notes.
        """
        key = self.key[letter]
        readings = {
            self.by_octave.get((letter, octave), key),
            self.by_letter.get(letter, key),
            key if in_chord else self.by_letter_single.get(letter, key),
        }
        if readings == {alter} and not force:
            return "", not in_chord and letter in self.by_letter_single
        self.by_octave[(letter, octave)] = alter
        self.by_letter[letter] = alter
        if not in_chord:
            self.by_letter_single[letter] = alter
        return _ACCIDENTAL_TEXT[alter], True


# --------------------------------------------------------------------------- text


def _length_text(steps: int | Fraction, unit_length: Fraction) -> str:
    """A length of ``steps`` grid steps as a reduced multiple of ``unit_length``: "", "2", "/", "3/2", "/4"."""
    units = Fraction(steps) / GRID_PER_QUARTER / (4 * unit_length)
    if units.denominator == 1:
        return "" if units.numerator == 1 else str(units.numerator)
    if units.numerator == 1:
        return "/" if units.denominator == 2 else f"/{units.denominator}"
    return f"{units.numerator}/{units.denominator}"


def _plain(steps: int, unit_length: Fraction) -> bool:
    """``steps`` grid steps are a power-of-two multiple or fraction of ``unit_length`` (``2``, ``3/2``,
    ``/4``), as every ABC reader takes; thirds and sixths (``/3``) are not (abc2midi refuses them)."""
    units = Fraction(steps, GRID_PER_QUARTER) / (4 * unit_length)
    return units.denominator & (units.denominator - 1) == 0


def _pieces(step: int, steps: int) -> list[tuple[int, int]]:
    """``(step, steps)`` of the pieces an item from ``step`` (grid steps in the bar) is written as: itself when
    its length is plain (a multiple of 3 steps, a sixteenth) or, in a triplet, one note (1, 2, 4, 8, ... steps:
    a 32nd to a whole note 3/2 as long); otherwise the part before the first sixteenth line, the part on
    the lines, and the part after the last (``z47/6`` is ``z/3`` in a tuplet and ``z15/2``): readers take
    those (music21 refuses a tuplet note of 5/8 of a quarter)."""
    if steps % 3 == 0 or steps & (steps - 1) == 0:
        return [(step, steps)]
    first, last = -(-step // 3) * 3, (step + steps) // 3 * 3
    if first >= last:
        return [(step, steps)]
    bounds = [step, first, last, step + steps]
    return [(a, b - a) for a, b in itertools.pairwise(bounds) if b > a]


def _bar_text(items: list[_Item], bar: _Bar, unit_length: Fraction) -> str:
    """Join a bar's items, with a space before each new beat. A run of items within a beat whose lengths are
    not plain (triplet lengths) is one tuplet ``(3:2:r`` (``(3`` for three): its ``r`` items written 3/2 as
    long, which is plain (three eighth triplets ``(3CDE``, six sixteenth ones ``(3:2:6G/^G/A/^A/B/c/``)."""
    out = f"[M:{bar.meter}] " if bar.meter else ""
    i = 0
    while i < len(items):
        item = items[i]
        if i and item.step % bar.beat == 0:
            out += " "
        if _plain(item.steps, unit_length):
            out += item.head + _length_text(item.steps, unit_length) + item.tail
            i += 1
            continue
        run = i + 1  # to the next plain length or beat
        while run < len(items) and not _plain(items[run].steps, unit_length) and items[run].step % bar.beat:
            run += 1
        written = (x.head + _length_text(Fraction(3 * x.steps, 2), unit_length) + x.tail for x in items[i:run])
        out += ("(3" if run - i == 3 else f"(3:2:{run - i}") + "".join(written)
        i = run
    return out


@dataclass(frozen=True)
class _Item:
    """A note, chord or rest of a bar: its step in the bar, its length (grid steps) and its text before
    and after the length (``^c`` and ``-``, ``[CEG]`` and ``""``, ``z`` and ``""``)."""

    step: int
    steps: int
    head: str
    tail: str = ""


class _VoiceWriter:
    """Writes one voice bar by bar: notes and chords, rests in the gaps, ties over bar lines.

    A note tied over a bar line repeats an accidental that its first part showed: music21
    joins a tie only between notes that agree on having a (natural) accidental.
    """

    def __init__(self, key_alters: dict[str, int], spelling: list[tuple[str, int]], unit_length: Fraction):
        self.key_alters = key_alters
        self.spelling = spelling
        self.unit_length = unit_length
        self.tie_marked = False  # the note tied into the next bar showed an accidental

    def bars(self, events: list[_Event], bars: list[_Bar]) -> list[str]:
        """The text of each of ``bars`` for ``events`` (time-ordered, not overlapping)."""
        texts, i = [], 0
        for bar in bars:
            items, i = self._bar_items(events, i, bar)
            texts.append(_bar_text(items, bar, self.unit_length))
        return texts

    def _bar_items(self, events: list[_Event], i: int, bar: _Bar) -> tuple[list[_Item], int]:
        """The notes and rests of ``bar``, from ``events[i]`` on; the next ``i``."""
        accidentals = _BarAccidentals(self.key_alters)
        items: list[_Item] = []
        cursor = bar.start
        while i < len(events) and events[i].start < bar.end:
            event = events[i]
            start, end = max(event.start, bar.start), min(event.end, bar.end)
            if start > cursor:
                items += [_Item(step, steps, "z") for step, steps in _pieces(cursor - bar.start, start - cursor)]
            tie = event.end > bar.end
            pieces = _pieces(start - bar.start, end - start)
            for j, (step, steps) in enumerate(pieces):  # a note of an odd triplet length is tied pieces
                force = self.tie_marked and (j > 0 or event.start < bar.start)
                head, tail, self.tie_marked = self._note(event.pitches, tie or j + 1 < len(pieces), accidentals,
                                                         force)
                items.append(_Item(step, steps, head, tail))
            cursor = end
            if tie:
                break
            i += 1
        if cursor < bar.end:
            items += [_Item(step, steps, "z") for step, steps in _pieces(cursor - bar.start, bar.end - cursor)]
        return items, i

    def _note(
        self, pitches: tuple[int, ...], tie: bool, accidentals: _BarAccidentals, force: bool
    ) -> tuple[str, str, bool]:
        """A note or chord: the text before its length and after it (a tie ``-`` when ``tie``), and
        whether a single note showed an accidental (to music21)."""
        in_chord = len(pitches) > 1
        names, shown = [], False
        for pitch in pitches:
            letter, alter, octave = _spell(pitch, self.spelling)
            sign, shown = accidentals.mark(letter, octave, alter, in_chord, force)
            names.append(sign + _pitch_text(letter, octave))
        tie_mark = "-" if tie else ""
        if in_chord:
            return "[" + "".join(name + tie_mark for name in names) + "]", "", False
        return names[0], tie_mark, shown


def _music_lines(bar_texts: list[str], bars: list[_Bar]) -> list[str]:
    """Bars joined ``BARS_PER_LINE`` to a line, each ending in ``|``, the last bar in ``|]``."""
    lines = []
    for first in range(0, len(bar_texts), BARS_PER_LINE):
        chunk = bar_texts[first:first + BARS_PER_LINE]
        last = first + len(chunk) == len(bars)
        lines.append(" | ".join(chunk) + (" |]" if last else " |"))
    return lines


def _key_text(key: KeySignature) -> str:
    """The ``K:`` value: tonic and ABC mode suffix, e.g. ``G``, ``Em``, ``Ddor``, ``Bb``, ``F#m``.

    Locrian keys and an Fb tonic, which music21 misreads, are written as the major key with
    the same signature (``K:C`` for B locrian): the mode's name is lost, the pitches are not.
    """
    if key.mode == "locrian" or key.tonic == "Fb":
        key = KeySignature(key.tick, key.time_s, key.sharps, "major")
    return key.tonic + ABC_MODE_SUFFIX[key.mode]


def _header(
    table: NoteTable, key: KeySignature, title: str | None, reference_number: int, unit_length: Fraction
) -> list[str]:
    """The file identification line and the tune header, ``K:`` last."""
    meter = table.time_signatures[0].text if table.time_signatures else "4/4"
    qpm = table.tempos[0].qpm if table.tempos else 120.0
    lines = ["%abc-2.1", f"X:{int(reference_number)}"]
    if title is not None:
        lines.append("T:" + " ".join(str(title).split()))
    lines += [
        f"M:{meter}",
        f"L:{unit_length.numerator}/{unit_length.denominator}",
        f"Q:1/4={max(1, round(qpm))}",
        f"K:{_key_text(key)}",
    ]
    return lines


def _voice_names(table: NoteTable, voices: list[_Voice]) -> dict[int, str]:
    """Per track, the ``name=`` of its voices: every voice of a track carries the track's name, which a
    reader (:func:`events.abc_read.with_voices`) takes as one part; a track of several voices without a name
    is named by its instrument, and a name that two tracks of one instrument share is numbered (``Violin 2``)
    so that they stay two."""
    import pretty_midi

    layers: dict[int, int] = {}
    for voice in voices:
        layers[voice.track] = layers.get(voice.track, 0) + 1
    names, taken = {}, set()
    for track_index in layers:
        if track_index < 0:
            continue
        track = table.tracks[track_index]
        name = " ".join(track.name.replace('"', "'").split())
        if not name and layers[track_index] > 1:
            name = "Drums" if track.is_drum else pretty_midi.program_to_instrument_name(track.program)
        if name:
            base, n = name, 1
            while (name, track.program, track.is_drum) in taken:
                n += 1
                name = f"{base} {n}"
            taken.add((name, track.program, track.is_drum))
        names[track_index] = name
    return names


def _voice_preamble(table: NoteTable, voice: _Voice, number: int, n_voices: int, name: str) -> list[str]:
    """``V:`` (when there are several voices, with the track's ``name``) and the ``%%MIDI`` line of one voice."""
    lines = []
    if n_voices > 1:
        lines.append(f'V:{number} name="{name}"' if name else f"V:{number}")
    if voice.track < 0:
        return lines
    track = table.tracks[voice.track]
    if track.is_drum:
        if voice.first_of_track:
            warnings.warn(
                f"ABC has no standard drum notation: drum track {voice.track} ({track.name!r}) is written as "
                "pitched notes (GM drum keys) on %%MIDI channel 10",
                stacklevel=3,
            )
        lines.append("%%MIDI channel 10")
    else:
        lines.append(f"%%MIDI program {track.program}")
    return lines
