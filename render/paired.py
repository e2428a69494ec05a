"""Paired (notes, audio) data for renderer training: :class:`TrainingPair` and where pairs come from.

* :func:`synthesize_pairs`: any note source rendered by the ``soundfont`` engine (as Slakh2100
  was made), optionally with instruments assigned per part (:func:`assign_instruments`) and a
  simple drum part added (:func:`add_drum_part`), both deterministic in the piece's key;
* :func:`recorded_pairs`: a folder in the MAESTRO-v3, URMP or Slakh2100 layout
  (:mod:`render.datasets`), notes and audio read into memory;
* :func:`load_pairs`: either, as a :class:`PairSource` describes it, split into training and
  held-out pairs (what ``ostinato train renderer`` trains on, for every engine).

A pair's audio is mono float32 at the model's native rate. The held-out split is the project's
(DESIGN.md): a piece is held out when the first byte of sha256(key) is below 13.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass

import numpy as np

from ostinato.events import NoteTable
from ostinato.events.instruments import ENSEMBLES, SOLO_PROGRAMS, assign_instruments
from ostinato.events.instruments import keyed_rng as _rng
from ostinato.events.sources import is_held_out

# with re-exports: the project's split rule (is_held_out) and the instrument choice for parts that name none
__all__ = [
    "DRUM_KEYS", "ENSEMBLES", "SOLO_PROGRAMS", "PairSource", "TrainingPair", "add_drum_part", "assign_instruments",
    "concat_tables", "drum_pattern", "is_held_out", "load_audio_mono", "load_pairs", "note_studies", "recorded_pairs",
    "study_programs", "synthesize_pairs", "truncate",
]

DRUM_KEYS = {"kick": 36, "kick2": 35, "snare": 38, "snare2": 40, "stick": 37, "clap": 39, "closed hat": 42,
             "pedal hat": 44, "open hat": 46, "low tom": 45, "mid tom": 47, "high tom": 50, "floor tom": 41,
             "crash": 49, "ride": 51, "ride bell": 53, "tambourine": 54, "cowbell": 56, "crash2": 57, "splash": 55}


def drum_pattern(duration_s: float, beat_s: float, beats_per_bar: int, key: str
                 ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """A simple kit part: kick, snare/clap on the off-beats, hats or ride in eighths, a crash every
    four bars and a tom fill before it; deterministic in ``key``.

    Returns (onset_s, pitch, velocity), each [n_hits].
    """
    rng = _rng(key, "drums")
    hits: list[tuple[float, int, int]] = []
    cymbal = [DRUM_KEYS["closed hat"], DRUM_KEYS["ride"], DRUM_KEYS["pedal hat"]][int(rng.integers(3))]
    backbeat = [DRUM_KEYS["snare"], DRUM_KEYS["snare2"], DRUM_KEYS["clap"], DRUM_KEYS["stick"]][int(rng.integers(4))]
    kick = [DRUM_KEYS["kick"], DRUM_KEYS["kick2"]][int(rng.integers(2))]
    extra = [DRUM_KEYS["tambourine"], DRUM_KEYS["cowbell"], DRUM_KEYS["ride bell"], None][int(rng.integers(4))]
    bar_s = beat_s * beats_per_bar
    n_bars = math.ceil(duration_s / bar_s)
    for bar in range(n_bars):
        t0 = bar * bar_s
        if bar % 4 == 0:
            hits.append((t0, [DRUM_KEYS["crash"], DRUM_KEYS["crash2"], DRUM_KEYS["splash"]][bar // 4 % 3], 100))
        for beat in range(beats_per_bar):
            tb = t0 + beat * beat_s
            if beat % 2 == 0:
                hits.append((tb, kick, int(rng.integers(90, 120))))
            else:
                hits.append((tb, backbeat, int(rng.integers(80, 115))))
            for half in (0, 1):
                if rng.random() < 0.9:
                    hat = DRUM_KEYS["open hat"] if rng.random() < 0.08 else cymbal
                    hits.append((tb + half * beat_s / 2, hat, int(rng.integers(50, 95))))
            if extra is not None and rng.random() < 0.3:
                hits.append((tb + beat_s / 2, extra, int(rng.integers(50, 90))))
        if bar % 4 == 3:  # fill on the last beat: four tom hits
            toms = [DRUM_KEYS["high tom"], DRUM_KEYS["mid tom"], DRUM_KEYS["low tom"], DRUM_KEYS["floor tom"]]
            for n, tom in enumerate(toms):
                hits.append((t0 + (beats_per_bar - 1) * beat_s + n * beat_s / 4, tom, int(rng.integers(80, 115))))
    hits = [h for h in hits if h[0] < duration_s]
    hits.sort()
    onset = np.array([h[0] for h in hits], dtype=np.float64)
    return onset, np.array([h[1] for h in hits], dtype=np.int64), np.array([h[2] for h in hits], dtype=np.int64)


def add_drum_part(table: NoteTable, key: str) -> NoteTable:
    """``table`` plus a drum track in its tempo and meter (:func:`drum_pattern`)."""
    if not len(table):
        return table
    qpm = table.tempos[0].qpm if table.tempos else 120.0
    ts = table.time_signatures[0] if table.time_signatures else None
    beats = ts.numerator if ts is not None and ts.numerator in (2, 3, 4, 6) else 4
    beat_s = 60.0 / qpm * (4 / ts.denominator if ts is not None else 1.0)
    while beat_s < 0.3:  # fast meters: one drum beat per two notated beats
        beat_s *= 2
    while beat_s > 1.0:
        beat_s /= 2
    onset, pitch, velocity = drum_pattern(table.duration_s, beat_s, beats, key)
    drums = NoteTable.from_seconds(onset, onset + 0.1, pitch, velocity, 0, True,
                                   ticks_per_quarter=table.ticks_per_quarter,
                                   tempos=[(t.tick, t.qpm) for t in table.tempos])
    return concat_tables(table, drums)


def study_programs() -> tuple[int, ...]:
    """The programs assigned parts are played by (:data:`ENSEMBLES`, :data:`SOLO_PROGRAMS`), ascending."""
    return tuple(sorted({p for ensemble in ENSEMBLES.values() for p in ensemble} | set(SOLO_PROGRAMS)))


def note_studies(n: int, seconds: float = 20.0) -> Iterator[tuple[str, NoteTable, bool]]:
    """``n`` studies ``(key, table, held_out)``: one instrument playing single notes, each alone.

    A study heard alone is what a renderer learns attacks and decays from: in a mixture a drum
    hit or a note's first 50 ms is masked by the other parts. Study ``i`` (key ``studies/NNNNN``)
    is a drum study when ``i % 3 == 2`` (the keys of :data:`DRUM_KEYS`, each hit left to ring
    0.4-1.2 s), else one of :func:`study_programs` (``i``-th in turn) playing notes across its
    General MIDI range at velocities 20-127, 0.05-1.5 s long, with 0.2-0.8 s of silence after each.
    Deterministic in the key; held out by the project's rule.
    """
    from ostinato.events.instruments import instrument_range

    programs = study_programs()
    drum_keys = sorted(set(DRUM_KEYS.values()))
    for i in range(n):
        key = f"studies/{i:05d}"
        rng = _rng(key, "study")
        onsets, offsets, pitches, velocities = [], [], [], []
        drums = i % 3 == 2
        program = 0 if drums else programs[(i - i // 3) % len(programs)]
        low, high = (0, 0) if drums else (instrument_range(program).low, instrument_range(program).high)
        t = 0.1
        while t < seconds - 0.3:
            if drums:
                pitch, length, gap = int(rng.choice(drum_keys)), 0.1, float(rng.uniform(0.4, 1.2))
            else:
                pitch, length = int(rng.integers(low, high + 1)), float(rng.uniform(0.05, 1.5))
                gap = length + float(rng.uniform(0.2, 0.8))
            onsets.append(t)
            offsets.append(min(t + length, seconds))
            pitches.append(pitch)
            velocities.append(int(rng.integers(20, 128)))
            t += gap
        table = NoteTable.from_seconds(np.array(onsets), np.array(offsets), np.array(pitches), np.array(velocities),
                                       program, drums)
        yield key, table, is_held_out(key)


def concat_tables(a: NoteTable, b: NoteTable) -> NoteTable:
    """The notes of ``a`` and ``b`` together (``b``'s tracks after ``a``'s); ``a``'s metadata."""
    import dataclasses

    columns = {}
    for name in ("onset_tick", "offset_tick", "onset_s", "offset_s", "pitch", "velocity", "program", "is_drum"):
        columns[name] = np.concatenate([getattr(a, name), getattr(b, name)])
    columns["track"] = np.concatenate([a.track, b.track + len(a.tracks)])
    return dataclasses.replace(a, tracks=list(a.tracks) + list(b.tracks), **columns)


def truncate(table: NoteTable, max_seconds: float) -> NoteTable:
    """Notes starting before ``max_seconds``, cut to end by then."""
    kept = table.select(table.onset_s < max_seconds)
    kept.offset_s = np.minimum(kept.offset_s, max_seconds)
    return kept


@dataclass
class TrainingPair:
    """One training piece in memory: its key, notes, mono audio at ``sample_rate_hz`` and split.

    (A data set's files, before they are read, are a :class:`render.datasets.RecordedPair`.)
    """

    key: str
    table: NoteTable
    audio: np.ndarray  # [n_samples] float32
    sample_rate_hz: int
    held_out: bool


def synthesize_pairs(items: Iterable[tuple[str, NoteTable, bool]], *, renderer, sample_rate_hz: int,
                     max_seconds: float = 30.0, assign: bool = False, drums_fraction: float = 0.0,
                     on_error=None) -> Iterator[TrainingPair]:
    """Render ``(key, table, held_out)`` items with a soundfont renderer into pairs.

    Args:
        renderer: a :class:`render.soundfont.SoundFontRenderer` (any Renderer works).
        max_seconds: pieces are cut to this length (training uses segments anyway).
        assign: give parts instruments with :func:`assign_instruments`.
        drums_fraction: add a drum part (:func:`add_drum_part`) to this fraction of pieces,
            chosen by key.
        on_error: called with (key, exception) for a piece that fails; it is skipped.
    """
    for key, table, held_out in items:
        try:
            table = truncate(table, max_seconds)
            if not len(table):
                continue
            if assign:
                table = assign_instruments(table, key)
            if drums_fraction > 0 and _rng(key, "add drums").random() < drums_fraction:
                table = add_drum_part(table, key)
            audio = renderer.render(table, sample_rate_hz).mean(0)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(key, exc)
            continue
        yield TrainingPair(key, table, audio.astype(np.float32), sample_rate_hz, held_out)


def load_audio_mono(path, sample_rate_hz: int) -> np.ndarray:
    """Mono float32 audio from a file, resampled to ``sample_rate_hz`` with soxr."""
    import soundfile
    import soxr

    data, rate = soundfile.read(str(path), dtype="float32", always_2d=True)
    mono = data.mean(1)
    if rate != sample_rate_hz:
        mono = soxr.resample(mono, rate, sample_rate_hz).astype(np.float32)
    return mono


def recorded_pairs(root: str | os.PathLike, sample_rate_hz: int, *, split: str = "all", max_pieces: int | None = None,
                   max_seconds: float | None = None, on_error: Callable[[str, Exception], None] | None = None
                   ) -> Iterator[TrainingPair]:
    """The pieces of a MAESTRO-v3, URMP or Slakh2100 folder (:func:`render.datasets.iter_pairs`) in memory.

    Args:
        split: ``"train"``, ``"test"`` (held out) or ``"all"``.
        max_pieces: at most this many pieces (in the layout's order).
        max_seconds: audio cut to this length, and the notes with it.
        on_error: called with (key, exception) for a piece whose notes or audio cannot be read;
            it is skipped (raised without one).
    """
    from .datasets import iter_pairs

    for pair in itertools.islice(iter_pairs(root, split=split), max_pieces):
        try:
            table = pair.read_notes()
            audio = load_audio_mono(pair.audio, sample_rate_hz)
        except Exception as exc:
            if on_error is None:
                raise
            on_error(pair.key, exc)
            continue
        audio = audio[: int(max_seconds * sample_rate_hz)] if max_seconds else audio
        yield TrainingPair(pair.key, truncate(table, len(audio) / sample_rate_hz), audio, sample_rate_hz,
                           pair.held_out)


@dataclass(frozen=True)
class PairSource:
    """Where training pairs come from: a recorded data set folder, or note sources to synthesize.

    Attributes:
        recorded: a MAESTRO-v3, URMP or Slakh2100 folder (:func:`recorded_pairs`); or
        synthesize_from: note sources (file, folder, glob, ``music21:<collection>``) rendered by the
            soundfont engine with ``soundfont`` (default: FluidR3_GM) (:func:`synthesize_pairs`).
        max_pieces: at most this many pieces from each source (each split of a recorded folder).
        max_seconds: cut each piece to this length (a recorded piece: 0 keeps it whole).
        assign_instruments, drums_fraction: synthesized pieces only (see :func:`synthesize_pairs`).
        studies: this many :func:`note_studies` more (single notes and drum hits, each alone), rendered
            by the same SoundFont; with sources or on their own.
    """

    recorded: str | None = None
    synthesize_from: tuple[str, ...] = ()
    soundfont: str | None = None
    max_pieces: int | None = None
    max_seconds: float = 20.0
    assign_instruments: bool = False
    drums_fraction: float = 0.0
    studies: int = 0

    def __post_init__(self) -> None:
        object.__setattr__(self, "synthesize_from", tuple(self.synthesize_from))
        if (self.recorded is None) == (not self.synthesize_from and not self.studies):
            raise ValueError("give one of a recorded data set folder (--pairs) or sources to synthesize "
                             "(--synthesize-from, --studies)")
        if self.studies < 0 or (self.studies and self.recorded is not None):
            raise ValueError(f"--studies must be >= 0 and goes with --synthesize-from or alone, got {self.studies}")
        if self.max_pieces is not None and self.max_pieces < 1:
            raise ValueError(f"--max-pieces must be >= 1, got {self.max_pieces}")
        if self.max_seconds < 0:
            raise ValueError(f"--max-seconds must be >= 0, got {self.max_seconds}")
        if not 0 <= self.drums_fraction <= 1:
            raise ValueError(f"--drums must be in 0..1, got {self.drums_fraction}")


def load_pairs(source: PairSource, sample_rate_hz: int, *, progress: bool = True,
               on_error: Callable[[str, Exception], None] | None = None
               ) -> tuple[list[TrainingPair], list[TrainingPair]]:
    """(training pairs, held-out pairs) of ``source`` at ``sample_rate_hz``.

    Args:
        progress: show a progress bar while synthesizing.
        on_error: called with (key, exception) for a piece that cannot be read or rendered; it is
            skipped (raised without one).
    """
    if source.recorded is not None:
        pairs = [pair for split in ("train", "test")
                 for pair in recorded_pairs(source.recorded, sample_rate_hz, split=split, max_pieces=source.max_pieces,
                                            max_seconds=source.max_seconds, on_error=on_error)]
    else:
        from tqdm import tqdm

        from .soundfont import SoundFontRenderer
        from .sources import iter_notes

        renderer = SoundFontRenderer(source.soundfont)
        items = itertools.chain.from_iterable(
            itertools.islice(iter_notes(name, on_error=on_error), source.max_pieces) for name in source.synthesize_from)
        made = synthesize_pairs(items, renderer=renderer, sample_rate_hz=sample_rate_hz,
                                max_seconds=source.max_seconds, assign=source.assign_instruments,
                                drums_fraction=source.drums_fraction, on_error=on_error)
        studies = synthesize_pairs(note_studies(source.studies, source.max_seconds or 20.0), renderer=renderer,
                                   sample_rate_hz=sample_rate_hz, max_seconds=source.max_seconds or 20.0,
                                   on_error=on_error)
        pairs = list(tqdm(itertools.chain(made, studies), desc="synthesize pairs", unit="piece",
                          disable=not progress))
        renderer.close()
    return [p for p in pairs if not p.held_out], [p for p in pairs if p.held_out]
