"""The note table: the one representation of notes that every stage of ostinato shares.

A :class:`NoteTable` is columnar: one NumPy array per field, all of length ``n_notes``.
Times are kept twice, as MIDI ticks (exact, what symusic and miditok consume) and as seconds
(what renderers consume); the two always agree through the table's :class:`TempoMap`.

Columns (shape ``[n_notes]`` each):

=============  =========  ==========================================================
column         dtype      meaning
=============  =========  ==========================================================
onset_tick     int64      note start, in ticks (``ticks_per_quarter`` per quarter note)
offset_tick    int64      note end, in ticks (``offset_tick >= onset_tick``)
onset_s        float64    note start, seconds from the start of the piece
offset_s       float64    note end, seconds
pitch          uint8      MIDI pitch 0-127 (60 = middle C); for drums, the GM drum key
velocity       uint8      MIDI velocity 1-127
program        uint8      General MIDI program 0-127 (ignored by players when is_drum)
is_drum        bool       the note belongs to a percussion track (MIDI channel 10)
track          int32      index into ``tracks``
=============  =========  ==========================================================

Metadata: ``ticks_per_quarter``, ``tracks`` (name, program, drum flag per track),
``tempos``, ``time_signatures`` and ``key_signatures`` (each sorted by tick, each event
stamped with both its tick and its time in seconds).

Performance data: ``controls``, a :class:`Controls` table of the controller changes and pitch
bends that renderers honour (sustain pedal CC64, volume CC7, expression CC11, pan CC10, pitch
bend), per track, each stamped with its tick and its time in seconds. :func:`with_sustain`
turns the pedal into note lengths; :func:`default_pans` gives the pan of a track whose file
sets none.
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from .theory import LETTERS, NATURAL_PC, tonic_pc

DEFAULT_TICKS_PER_QUARTER = 480
DEFAULT_QPM = 120.0

# Major-key tonics by number of sharps (-7 = seven flats .. +7 = seven sharps).
_MAJOR_TONICS = ["Cb", "Gb", "Db", "Ab", "Eb", "Bb", "F", "C", "G", "D", "A", "E", "B", "F#", "C#"]
# Church modes as the scale degree (0-based) of the major scale that is their tonic.
MODE_DEGREES = {
    "major": 0, "ionian": 0, "dorian": 1, "phrygian": 2, "lydian": 3,
    "mixolydian": 4, "minor": 5, "aeolian": 5, "locrian": 6,
}


def _major_scale_names(tonic: str) -> list[str]:
    """Spell the major scale on ``tonic`` ("Eb" -> Eb F G Ab Bb C D)."""
    steps = [0, 2, 4, 5, 7, 9, 11]
    start_letter = LETTERS.index(tonic[0])
    start_pc = tonic_pc(tonic)
    names = []
    for degree, step in enumerate(steps):
        letter = LETTERS[(start_letter + degree) % 7]
        alter = (start_pc + step - NATURAL_PC[letter] + 6) % 12 - 6
        names.append(letter + ("#" * alter if alter > 0 else "b" * -alter))
    return names


@dataclass(frozen=True)
class Tempo:
    """A tempo change: from ``tick`` (at ``time_s`` seconds) on, ``qpm`` quarter notes per minute."""

    tick: int
    time_s: float
    qpm: float


@dataclass(frozen=True)
class TimeSignature:
    """A meter change at ``tick``: ``numerator``/``denominator`` (denominator a power of two)."""

    tick: int
    time_s: float
    numerator: int
    denominator: int

    @property
    def text(self) -> str:
        """The meter as written, e.g. ``"3/4"``."""
        return f"{self.numerator}/{self.denominator}"

    @property
    def bar_quarters(self) -> Fraction:
        """Length of one bar in quarter notes (6/8 -> 3)."""
        return Fraction(4 * self.numerator, self.denominator)


def _is_meter(tick, numerator, denominator) -> bool:
    """True for a meter a bar can have (n >= 1 beats of 1/d, d a power of two); warns and drops any other."""
    numerator, denominator = int(numerator), int(denominator)
    if numerator >= 1 and denominator >= 1 and denominator & (denominator - 1) == 0:
        return True
    import warnings

    warnings.warn(f"time signature {numerator}/{denominator} at tick {int(tick)} is not a meter; dropped",
                  stacklevel=3)
    return False


@dataclass(frozen=True)
class KeySignature:
    """A key change at ``tick``: ``sharps`` in -7..7 (negative = flats) and a ``mode``.

    ``mode`` is ``"major"`` or ``"minor"`` for keys from MIDI files; ABC and MusicXML may also
    give church modes (``"dorian"``, ``"mixolydian"``, ...).
    """

    tick: int
    time_s: float
    sharps: int
    mode: str = "major"

    def __post_init__(self) -> None:
        if not -7 <= self.sharps <= 7:
            raise ValueError(f"KeySignature.sharps must be in -7..7, got {self.sharps}")
        if self.mode not in MODE_DEGREES:
            raise ValueError(f"KeySignature.mode must be one of {sorted(MODE_DEGREES)}, got {self.mode!r}")

    @property
    def tonic(self) -> str:
        """Tonic spelled with # and b, e.g. ``"F#"`` for 3 sharps minor."""
        return _major_scale_names(_MAJOR_TONICS[self.sharps + 7])[MODE_DEGREES[self.mode]]

    @property
    def name(self) -> str:
        """Readable name, e.g. ``"F# minor"``."""
        return f"{self.tonic} {self.mode}"


@dataclass(frozen=True)
class Track:
    """One part: its ``name``, General MIDI ``program`` (0-127) and whether it is percussion."""

    name: str = ""
    program: int = 0
    is_drum: bool = False


class TempoMap:
    """Piecewise-constant tempo: converts ticks to seconds and back, vectorised.

    Args:
        ticks_per_quarter: ticks per quarter note (the MIDI division), > 0.
        tempos: tempo changes; the first one is moved to tick 0 if it starts later
            (a piece with no tempo plays at 120 qpm, as MIDI specifies).
    """

    def __init__(self, ticks_per_quarter: int, tempos: list[tuple[int, float]] | None = None):
        if ticks_per_quarter <= 0:
            raise ValueError(f"ticks_per_quarter must be > 0, got {ticks_per_quarter}")
        changes = sorted(tempos or [], key=lambda tq: tq[0])
        if not changes or changes[0][0] > 0:
            changes.insert(0, (0, changes[0][1] if changes else DEFAULT_QPM))
        ticks = np.array([t for t, _ in changes], dtype=np.int64)
        qpm = np.array([q for _, q in changes], dtype=np.float64)
        if np.any(qpm <= 0) or not np.all(np.isfinite(qpm)):
            raise ValueError(f"tempo must be positive and finite, got {qpm[(qpm <= 0) | ~np.isfinite(qpm)][0]}")
        # Keep the last tempo of several at the same tick.
        keep = np.append(ticks[1:] != ticks[:-1], True)
        self.ticks_per_quarter = int(ticks_per_quarter)
        self.change_ticks = ticks[keep]  # [n_changes] int64
        self.qpm = qpm[keep]  # [n_changes] float64
        self.seconds_per_tick = 60.0 / (self.qpm * self.ticks_per_quarter)  # [n_changes]
        spans = np.diff(self.change_ticks) * self.seconds_per_tick[:-1]
        self.change_s = np.concatenate([[0.0], np.cumsum(spans)])  # [n_changes] seconds

    def to_seconds(self, ticks: np.ndarray | int) -> np.ndarray:
        """Seconds at ``ticks`` (any shape, int)."""
        ticks = np.asarray(ticks, dtype=np.int64)
        i = np.searchsorted(self.change_ticks, ticks, side="right") - 1
        i = np.clip(i, 0, None)
        return self.change_s[i] + (ticks - self.change_ticks[i]) * self.seconds_per_tick[i]

    def to_ticks(self, seconds: np.ndarray | float) -> np.ndarray:
        """Nearest tick at ``seconds`` (any shape, float), as int64."""
        seconds = np.asarray(seconds, dtype=np.float64)
        i = np.clip(np.searchsorted(self.change_s, seconds, side="right") - 1, 0, None)
        ticks = self.change_ticks[i] + (seconds - self.change_s[i]) / self.seconds_per_tick[i]
        return np.rint(ticks).astype(np.int64)


# ------------------------------------------------------------------ performance data
SUSTAIN, VOLUME, PAN, EXPRESSION = 64, 7, 10, 11
CONTROLLERS = {VOLUME: "volume", PAN: "pan", EXPRESSION: "expression", SUSTAIN: "sustain"}
PITCH_BEND = 128  # the ``number`` of pitch-bend events in :class:`Controls` (not a controller number)
BEND_RANGE = 129  # the ``number`` of pitch-bend range settings (RPN 0), ``value`` in cents
#: What a MIDI channel holds before any event (General MIDI): volume 100, pan centre, full expression,
#: pedal up, no bend, a bend range of 2 semitones.
DEFAULT_VALUES = {VOLUME: 100, PAN: 64, EXPRESSION: 127, SUSTAIN: 0, PITCH_BEND: 0, BEND_RANGE: 200}
PITCH_BEND_RANGE_SEMITONES = 2.0  # the General MIDI default bend range, until a track's RPN 0 sets another
MAX_BEND_RANGE_CENTS = 127 * 100 + 99   # RPN 0's largest: data entry 127 semitones, 99 cents
PEDAL_DOWN = 64  # CC64 values 64..127 hold the pedal down
KIND_NAMES = {**CONTROLLERS, PITCH_BEND: "pitch_bend", BEND_RANGE: "bend_range"}   # number -> name


@dataclass(eq=False)
class Controls:
    """Controller changes and pitch bends, columnar (each column shape ``[n_events]``).

    Kept: sustain (CC64), volume (CC7), expression (CC11), pan (CC10), pitch bend
    (``number == PITCH_BEND``) and the pitch-bend range (``number == BEND_RANGE``: registered
    parameter 0, set by CC101/CC100 = 0 then data entry CC6 semitones and CC38 cents; read from and
    written back as those controllers); other controllers are not part of the contract. Events are in
    canonical order: by track, then number, then tick, events at the same tick in file order
    (the last one wins).

    Columns: ``tick`` int64 (>= 0), ``time_s`` float64, ``track`` int32 (index into the
    table's tracks), ``number`` uint8 (7, 10, 11, 64, 128 or 129), ``value`` int16 (0..127 for a
    controller; -8192..8191 for a bend, 0 = none, +8191 = up the bend range in force; cents for a
    bend range, 0..12799, default 200).
    """

    tick: np.ndarray
    time_s: np.ndarray
    track: np.ndarray
    number: np.ndarray
    value: np.ndarray

    def __post_init__(self) -> None:
        n = len(np.asarray(self.tick))
        for name, dtype in (("tick", np.int64), ("time_s", np.float64), ("track", np.int32),
                            ("number", np.int64), ("value", np.int64)):
            raw = np.asarray(getattr(self, name))
            if raw.shape != (n,):
                raise ValueError(f"Controls.{name} must have shape ({n},), got {raw.shape}")
            setattr(self, name, raw.astype(dtype, copy=False))
        if n:
            known = np.isin(self.number, [*CONTROLLERS, PITCH_BEND, BEND_RANGE])
            if not known.all():
                raise ValueError(f"Controls.number must be one of {sorted(CONTROLLERS)}, {PITCH_BEND} (pitch bend) or "
                                 f"{BEND_RANGE} (bend range), got {self.number[~known][0]}")
            bend, bend_range = self.number == PITCH_BEND, self.number == BEND_RANGE
            low = np.where(bend, -8192, 0)
            high = np.where(bend, 8191, np.where(bend_range, MAX_BEND_RANGE_CENTS, 127))
            bad = (self.value < low) | (self.value > high)
            if bad.any():
                i = int(np.argmax(bad))
                what = "pitch bend" if bend[i] else "bend range" if bend_range[i] else f"CC{self.number[i]}"
                raise ValueError(f"Controls.value of {what} out of range, got {self.value[i]}")
            if self.tick.min() < 0:
                raise ValueError(f"Controls.tick must be >= 0, got {self.tick.min()}")
            if self.track.min() < 0:
                raise ValueError(f"Controls.track must be >= 0, got {self.track.min()}")
        order = np.lexsort((self.tick, self.number, self.track))  # stable: same-tick events keep their order
        if n and np.any(order != np.arange(n)):
            for name in ("tick", "time_s", "track", "number", "value"):
                setattr(self, name, getattr(self, name)[order])
        for name, dtype in (("tick", np.int64), ("time_s", np.float64), ("track", np.int32), ("number", np.uint8),
                            ("value", np.int16)):
            setattr(self, name, np.ascontiguousarray(getattr(self, name).astype(dtype)))

    @classmethod
    def from_ticks(cls, tick, track, number, value, tempo_map: TempoMap) -> Controls:
        """Events at ``tick`` (arrays ``[n_events]``), their seconds from ``tempo_map``."""
        tick = np.asarray(tick, dtype=np.int64)
        return cls(tick=tick, time_s=tempo_map.to_seconds(tick), track=track, number=number, value=value)

    @classmethod
    def empty(cls) -> Controls:
        return cls(tick=[], time_s=[], track=[], number=[], value=[])

    def __len__(self) -> int:
        return int(self.tick.shape[0])

    def restamped(self, tempo_map: TempoMap) -> Controls:
        """The same events with their seconds recomputed from ``tempo_map``."""
        return Controls.from_ticks(self.tick, self.track, self.number, self.value, tempo_map)

    def select(self, mask) -> Controls:
        return Controls(**{k: getattr(self, k)[mask] for k in ("tick", "time_s", "track", "number", "value")})

    def events(self, track: int, number: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(tick, time_s, value)`` of one track's events of one kind, in playing order."""
        mask = (self.track == track) & (self.number == number)
        return self.tick[mask], self.time_s[mask], self.value[mask]

    def values_at(self, track: int, number: int, times_s, default: int | None = None) -> np.ndarray:
        """The value in effect at ``times_s`` (any shape): the last event at or before each time,
        else ``default`` (else the General MIDI default of ``number``). Returns int64, shape of ``times_s``."""
        _, time_s, value = self.events(track, number)
        default = DEFAULT_VALUES[number] if default is None else default
        i = np.searchsorted(time_s, np.asarray(times_s, dtype=np.float64), side="right") - 1
        return np.where(i >= 0, np.append(value, 0)[i], default).astype(np.int64)

    def equals(self, other: Controls) -> bool:
        """Same events (ticks, tracks, numbers, values exactly; seconds within 1 ns)."""
        return (len(self) == len(other)
                and all(np.array_equal(getattr(self, c), getattr(other, c))
                        for c in ("tick", "track", "number", "value"))
                and bool(np.allclose(self.time_s, other.time_s, rtol=0, atol=1e-9)))

    def __repr__(self) -> str:
        numbers, counts = np.unique(self.number, return_counts=True)
        kinds = {KIND_NAMES[int(k)]: int(c) for k, c in zip(numbers, counts)}
        return f"Controls(n_events={len(self)}, {kinds})"


# GM-style default pans (CC10 values) by instrument family (program // 8), after common band and
# orchestra seatings; a convention of ostinato's, not part of General MIDI.
_FAMILY_PANS = [54, 83, 45, 39, 64, 64, 52, 86, 76, 47, 80, 48, 77, 83, 89, 64]
_PROGRAM_PANS = {40: 36, 41: 55, 42: 77, 43: 90, 44: 45, 45: 45, 46: 86, 47: 80, 50: 80, 51: 80,
                 56: 80, 57: 92, 58: 96, 60: 70, 68: 58, 70: 74, 71: 50, 73: 48}
_SPREAD = 0.4  # tracks sharing a default pan are spread evenly over +-this (in pan units, -1..1)


def default_pan(program: int, is_drum: bool = False) -> int:
    """The CC10 value (0..127, 64 = centre) of a track of ``program`` whose file sets no pan; drums are centred."""
    if is_drum:
        return 64
    return _PROGRAM_PANS.get(int(program), _FAMILY_PANS[int(program) // 8])


def default_pans(tracks: list[Track]) -> list[int]:
    """CC10 values for ``tracks`` when their file sets none (:func:`default_pan`); pitched tracks
    that share a program are spread evenly +-0.4 around its pan, in track order, so no two sit together."""
    pans = [default_pan(t.program, t.is_drum) for t in tracks]
    groups: dict[int, list[int]] = {}
    for index, t in enumerate(tracks):
        if not t.is_drum:
            groups.setdefault(int(t.program), []).append(index)
    for members in groups.values():
        if len(members) > 1:
            for k, index in enumerate(members):
                offset = _SPREAD * (2 * k / (len(members) - 1) - 1)
                pans[index] = int(np.clip(round(pans[index] + 63 * offset), 0, 127))
    return pans


def with_sustain(table: NoteTable) -> NoteTable:
    """The table with notes held by the sustain pedal (CC64 >= 64) lengthened, and its CC64 events removed.

    A note whose release (``offset_tick``) falls while its track's pedal is down (the last CC64
    at or before it is >= 64) sounds on until the pedal comes up, or until the same key is struck
    again in the same track, whichever comes first (never shorter than written); a pedal never
    lifted holds to the end of the piece. Other performance data is kept.
    """
    c = table.controls
    pedal = c.number == SUSTAIN
    if not pedal.any() or not len(table):
        return dataclasses.replace(table, controls=c.select(~pedal)) if pedal.any() else table
    offset_tick = table.offset_tick.copy()
    end_tick = int(table.offset_tick.max())
    for track in np.unique(c.track[pedal]).tolist():
        ticks, _, values = c.events(track, SUSTAIN)
        notes = np.flatnonzero(table.track == track)
        if not len(notes):
            continue
        last = np.searchsorted(ticks, table.offset_tick[notes], side="right") - 1
        held = (last >= 0) & (values[np.clip(last, 0, None)] >= PEDAL_DOWN)
        up_ticks = ticks[values < PEDAL_DOWN]
        i = np.searchsorted(up_ticks, table.offset_tick[notes], side="right")
        release = np.where(i < len(up_ticks), np.append(up_ticks, 0)[i], max(end_tick, 0))
        # the next onset of the same key in this track, strictly later than this note's onset
        pitch, onset = table.pitch[notes].astype(np.int64), table.onset_tick[notes]
        order = np.lexsort((onset, pitch))
        keys = pitch[order] * (1 << 40) + onset[order]  # sorted; ticks stay far below 2**40
        after = np.searchsorted(keys, pitch * (1 << 40) + onset, side="right")
        found = (after < len(notes)) & (np.append(pitch[order], -1)[after] == pitch)
        next_onset = np.where(found, np.append(onset[order], 0)[after], np.iinfo(np.int64).max)
        new_offset = np.maximum(table.offset_tick[notes], np.minimum(release, next_onset))
        offset_tick[notes] = np.where(held, new_offset, table.offset_tick[notes])
    changed = offset_tick != table.offset_tick
    offset_s = table.offset_s.copy()
    offset_s[changed] = table.tempo_map.to_seconds(offset_tick[changed])
    return dataclasses.replace(table, offset_tick=offset_tick, offset_s=offset_s, controls=c.select(~pedal))


_COLUMNS = {
    "onset_tick": np.int64,
    "offset_tick": np.int64,
    "onset_s": np.float64,
    "offset_s": np.float64,
    "pitch": np.uint8,
    "velocity": np.uint8,
    "program": np.uint8,
    "is_drum": np.bool_,
    "track": np.int32,
}


@dataclass(eq=False)
class NoteTable:
    """Notes as columns of equal length, plus tempo, meter, key and track metadata.

    Build one with :meth:`from_ticks` or :meth:`from_seconds`, which fill the other time
    columns from the tempo map; the constructor itself checks every column and raises
    ``ValueError`` naming the column and the bad value.
    """

    onset_tick: np.ndarray
    offset_tick: np.ndarray
    onset_s: np.ndarray
    offset_s: np.ndarray
    pitch: np.ndarray
    velocity: np.ndarray
    program: np.ndarray
    is_drum: np.ndarray
    track: np.ndarray
    tracks: list[Track] = field(default_factory=list)
    ticks_per_quarter: int = DEFAULT_TICKS_PER_QUARTER
    tempos: list[Tempo] = field(default_factory=list)
    time_signatures: list[TimeSignature] = field(default_factory=list)
    key_signatures: list[KeySignature] = field(default_factory=list)
    controls: Controls = field(default_factory=Controls.empty)

    def __post_init__(self) -> None:
        n = len(np.asarray(self.onset_tick))
        for name, dtype in _COLUMNS.items():
            raw = np.asarray(getattr(self, name))
            if raw.shape != (n,):
                raise ValueError(f"NoteTable.{name} must have shape ({n},), got {raw.shape}")
            if dtype in (np.uint8,) and n and (raw.min() < 0 or raw.max() > 127):
                bad = raw[(raw < 0) | (raw > 127)][0]
                raise ValueError(f"NoteTable.{name} must be in 0..127, got {bad}")
            setattr(self, name, np.ascontiguousarray(raw.astype(dtype, copy=False)))
        if n:
            if self.velocity.min() < 1:
                raise ValueError("NoteTable.velocity must be in 1..127, got 0")
            if np.any(self.offset_tick < self.onset_tick):
                i = int(np.argmax(self.offset_tick < self.onset_tick))
                raise ValueError(
                    f"NoteTable.offset_tick must be >= onset_tick, note {i} ends at "
                    f"{self.offset_tick[i]} before it starts at {self.onset_tick[i]}"
                )
            if self.onset_tick.min() < 0:
                raise ValueError(f"NoteTable.onset_tick must be >= 0, got {self.onset_tick.min()}")
            if self.track.min() < 0 or self.track.max() >= len(self.tracks):
                raise ValueError(
                    f"NoteTable.track must index tracks (0..{len(self.tracks) - 1}), "
                    f"got {self.track.min() if self.track.min() < 0 else self.track.max()}"
                )
        if self.ticks_per_quarter <= 0:
            raise ValueError(f"NoteTable.ticks_per_quarter must be > 0, got {self.ticks_per_quarter}")
        if not isinstance(self.controls, Controls):
            raise ValueError(f"NoteTable.controls must be a Controls table, got {type(self.controls).__name__}")
        if len(self.controls) and self.controls.track.max() >= len(self.tracks):
            raise ValueError(f"NoteTable.controls.track must index tracks (0..{len(self.tracks) - 1}), "
                             f"got {self.controls.track.max()}")

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_ticks(
        cls,
        onset_tick, offset_tick, pitch, velocity, track, tracks: list[Track], *,
        ticks_per_quarter: int = DEFAULT_TICKS_PER_QUARTER,
        tempos: list[tuple[int, float]] | None = None,
        time_signatures: list[tuple[int, int, int]] | None = None,
        key_signatures: list[tuple[int, int, str]] | None = None,
        controls: Controls | None = None,
    ) -> NoteTable:
        """Build a table from tick times; seconds, programs and drum flags are derived.

        Args:
            onset_tick, offset_tick, pitch, velocity, track: arrays of shape [n_notes].
            tracks: the parts; ``track`` indexes into it.
            tempos: ``(tick, qpm)`` pairs (default: 120 qpm).
            time_signatures: ``(tick, numerator, denominator)`` (default: none).
            key_signatures: ``(tick, sharps, mode)`` (default: none).
            controls: performance data (default: none); its seconds are recomputed from ``tempos``.
        """
        tmap = TempoMap(ticks_per_quarter, tempos)
        track = np.asarray(track, dtype=np.int32)
        programs = np.array([t.program for t in tracks] or [0], dtype=np.uint8)
        drums = np.array([t.is_drum for t in tracks] or [False], dtype=bool)
        onset_tick = np.asarray(onset_tick, dtype=np.int64)
        offset_tick = np.asarray(offset_tick, dtype=np.int64)
        in_range = track.clip(0, max(len(tracks) - 1, 0))
        return cls(
            onset_tick=onset_tick,
            offset_tick=offset_tick,
            onset_s=tmap.to_seconds(onset_tick),
            offset_s=tmap.to_seconds(offset_tick),
            pitch=np.asarray(pitch),
            velocity=np.asarray(velocity),
            program=programs[in_range],
            is_drum=drums[in_range],
            track=track,
            tracks=list(tracks),
            ticks_per_quarter=ticks_per_quarter,
            tempos=_stamp_tempos(tmap),
            time_signatures=[
                TimeSignature(int(t), float(tmap.to_seconds(t)), int(n), int(d))
                for t, n, d in sorted(time_signatures or []) if _is_meter(t, n, d)
            ],
            key_signatures=[
                KeySignature(int(t), float(tmap.to_seconds(t)), int(s), m)
                for t, s, m in sorted(key_signatures or [], key=lambda k: k[0])
            ],
            controls=Controls.empty() if controls is None else controls.restamped(tmap),
        )

    @classmethod
    def from_seconds(
        cls,
        onset_s, offset_s, pitch, velocity, program=None, is_drum=None, *,
        track=None, tracks: list[Track] | None = None,
        ticks_per_quarter: int = DEFAULT_TICKS_PER_QUARTER,
        tempos: list[tuple[int, float]] | None = None,
        time_signatures: list[tuple[int, int, int]] | None = None,
        key_signatures: list[tuple[int, int, str]] | None = None,
        controls: Controls | None = None,
    ) -> NoteTable:
        """Build a table from times in seconds (what a renderer or transcriber has).

        Ticks are the nearest ticks under the tempo map. Without ``track``, notes are
        grouped into one track per (program, is_drum), in order of first appearance;
        ``program`` and ``is_drum`` (scalars or arrays of shape [n_notes], default 0 and
        False) then choose the tracks. With ``track`` and ``tracks``, programs and drum flags
        come from the tracks.
        """
        onset_s = np.asarray(onset_s, dtype=np.float64)
        n = onset_s.shape[0]
        if track is None:
            program = np.broadcast_to(np.asarray(0 if program is None else program, dtype=np.int64), (n,))
            is_drum = np.broadcast_to(np.asarray(False if is_drum is None else is_drum, dtype=bool), (n,))
            keys = list(zip(program.tolist(), is_drum.tolist()))
            order = list(dict.fromkeys(keys))
            index = {k: i for i, k in enumerate(order)}
            track = np.array([index[k] for k in keys], dtype=np.int32)
            tracks = [Track(name="", program=p, is_drum=d) for p, d in order]
        elif tracks is None:
            raise ValueError("NoteTable.from_seconds: `tracks` is required when `track` is given")
        tmap = TempoMap(ticks_per_quarter, tempos)
        table = cls.from_ticks(
            tmap.to_ticks(onset_s), tmap.to_ticks(offset_s), pitch, velocity, track, tracks,
            ticks_per_quarter=ticks_per_quarter, tempos=tempos,
            time_signatures=time_signatures, key_signatures=key_signatures, controls=controls,
        )
        # Keep the caller's exact seconds; ticks are their nearest grid points.
        table.onset_s = onset_s.copy()
        table.offset_s = np.asarray(offset_s, dtype=np.float64).copy()
        return table

    @classmethod
    def empty(cls, ticks_per_quarter: int = DEFAULT_TICKS_PER_QUARTER) -> NoteTable:
        """A table with no notes and no tracks."""
        return cls.from_ticks([], [], [], [], [], [], ticks_per_quarter=ticks_per_quarter)

    # ------------------------------------------------------------------ properties
    def __len__(self) -> int:
        return int(self.pitch.shape[0])

    @property
    def n_notes(self) -> int:
        return len(self)

    @property
    def n_tracks(self) -> int:
        return len(self.tracks)

    @property
    def duration_s(self) -> float:
        """Seconds from time 0 to the end of the last note (0.0 when empty)."""
        return float(self.offset_s.max()) if len(self) else 0.0

    @property
    def tempo_map(self) -> TempoMap:
        return TempoMap(self.ticks_per_quarter, [(t.tick, t.qpm) for t in self.tempos])

    @property
    def has_drums(self) -> bool:
        return bool(self.is_drum.any()) or any(t.is_drum for t in self.tracks)

    @property
    def programs(self) -> list[int]:
        """Sorted General MIDI programs of the pitched (non-drum) tracks that have notes."""
        return sorted({int(p) for p in self.program[~self.is_drum]})

    # ------------------------------------------------------------------ operations
    def select(self, mask: np.ndarray) -> NoteTable:
        """The notes where ``mask`` ([n_notes] bool or int indices) holds; metadata kept."""
        columns = {name: getattr(self, name)[mask] for name in _COLUMNS}
        return dataclasses.replace(self, **columns)

    def sorted(self) -> NoteTable:
        """Notes ordered by (onset, track, pitch, offset): the canonical order used for equality."""
        order = np.lexsort((self.offset_tick, self.pitch, self.track, self.onset_tick))
        return self.select(order)

    def notes_equal(self, other: NoteTable, *, tick_tolerance: int = 0) -> bool:
        """Same notes (pitch, velocity, program, drum flag exact; ticks within tolerance)."""
        if len(self) != len(other):
            return False
        a, b = self.sorted(), other.sorted()
        exact = all(np.array_equal(getattr(a, c), getattr(b, c)) for c in ("pitch", "velocity", "program", "is_drum"))
        times = ("onset_tick", "offset_tick")
        return exact and all(np.abs(getattr(a, c) - getattr(b, c)).max(initial=0) <= tick_tolerance for c in times)

    def __repr__(self) -> str:
        ts = self.time_signatures[0].text if self.time_signatures else "-"
        key = self.key_signatures[0].name if self.key_signatures else "-"
        return (
            f"NoteTable(n_notes={len(self)}, n_tracks={self.n_tracks}, duration_s={self.duration_s:.2f}, "
            f"tpq={self.ticks_per_quarter}, tempos={len(self.tempos)}, time_signature={ts}, key={key}, "
            f"controls={len(self.controls)})"
        )


def _stamp_tempos(tmap: TempoMap) -> list[Tempo]:
    return [Tempo(int(t), float(s), float(q)) for t, s, q in zip(tmap.change_ticks, tmap.change_s, tmap.qpm)]
