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

    # ----------------------------------------------------------------- construction
    @classmethod
    def from_ticks(
        cls,
        onset_tick, offset_tick, pitch, velocity, track, tracks: list[Track], *,
        ticks_per_quarter: int = DEFAULT_TICKS_PER_QUARTER,
        tempos: list[tuple[int, float]] | None = None,
        time_signatures: list[tuple[int, int, int]] | None = None,
        key_signatures: list[tuple[int, int, str]] | None = None,
    ) -> NoteTable:
        """Build a table from tick times; seconds, programs and drum flags are derived.

        Args:
            onset_tick, offset_tick, pitch, velocity, track: arrays of shape [n_notes].
            tracks: the parts; ``track`` indexes into it.
            tempos: ``(tick, qpm)`` pairs (default: 120 qpm).
            time_signatures: ``(tick, numerator, denominator)`` (default: none).
            key_signatures: ``(tick, sharps, mode)`` (default: none).
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
            time_signatures=time_signatures, key_signatures=key_signatures,
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
            f"tpq={self.ticks_per_quarter}, tempos={len(self.tempos)}, time_signature={ts}, key={key})"
        )


def _stamp_tempos(tmap: TempoMap) -> list[Tempo]:
    return [Tempo(int(t), float(s), float(q)) for t, s, q in zip(tmap.change_ticks, tmap.change_s, tmap.qpm)]
