"""Recorded data sets for renderer training: MIDI (or note annotations) with the audio it is aligned to.

Three published layouts are read as they are downloaded; each one's quirks live in its own
small class below, and nowhere else. A :class:`RecordedPair` names a piece's files (a
:class:`render.paired.TrainingPair`, made from it by :func:`render.paired.recorded_pairs`,
holds the notes and audio in memory):

``maestro`` (MAESTRO v3: ``maestro-v3.0.0.csv`` + year folders of ``.midi``/``.wav``)
    The CSV is the index (a partial download is fine: rows whose files are missing are
    skipped with one warning). Performances hold the sustain pedal (CC64); the piano keeps
    sounding while it is down, so :meth:`RecordedPair.read_notes` extends each note's offset to the
    pedal release (cut at the next onset of the same pitch), as the Onsets and Frames
    transcription targets do. Audio may have been re-encoded (``.flac``/``.ogg``/``.mp3``
    beside the listed ``.wav``): the first that exists is used.
``urmp`` (URMP: ``NN_Piece_inst1_inst2/`` with ``Sco_*.mid``, ``AuMix_*.wav``, per part
``AuSep_<n>_<inst>_*.wav`` and ``Notes_<n>_<inst>_*.txt``)
    The ``Sco_`` MIDI is the *score*, not the performance: its timing does not follow the
    recording. The aligned notes are the ``Notes_`` annotations (one line per note: onset in
    seconds, pitch in Hz, duration in seconds), so the note table is built from them, one
    track per part with the General MIDI program of its instrument abbreviation (``vn``
    violin, ``vc`` cello, ``tpt`` trumpet, ...), velocity 90 (none is annotated). Without
    annotations the score MIDI is used, with a warning.
``slakh`` (Slakh2100: ``TrackNNNNN/`` with ``all_src.mid``, ``mix.flac``, ``metadata.yaml``,
``MIDI/Sxx.mid``, ``stems/Sxx.flac``, optionally under ``train/``, ``validation/``, ``test/``)
    Not every source was rendered: ``metadata.yaml`` marks stems with ``audio_rendered:
    false``, whose notes are absent from ``mix.flac``, so the note table is built from the
    rendered stems' own ``MIDI/Sxx.mid`` files with the program and drum flag the metadata
    gives (what was actually rendered), not those inside the MIDI. The ``omitted/`` folder
    of the original release (duplicates) is skipped.

Keys follow DESIGN.md with the layout's root folder as the collection:
``<root name>/<MIDI path relative to the root>`` (for URMP, the ``Sco_`` file's path), so the
held-out split (:func:`events.sources.is_held_out`) applies unchanged.
"""

from __future__ import annotations

import csv
import logging
import os
import re
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ostinato.events import AUDIO_SUFFIXES, InputError, NoteTable, Track
from ostinato.events.sources import Item, check_split, is_held_out

log = logging.getLogger("ostinato.render")

# what a downloaded data set's audio may have been re-encoded as: the formats ostinato writes, and MP3
RECORDING_SUFFIXES = (*AUDIO_SUFFIXES, ".mp3")
URMP_VELOCITY = 90
# URMP instrument abbreviations -> General MIDI programs (0-based).
URMP_PROGRAMS = {
    "vn": 40, "va": 41, "vc": 42, "db": 43, "fl": 73, "ob": 68, "cl": 71, "sax": 65, "bn": 70,
    "tpt": 56, "hn": 60, "tbn": 57, "tba": 58,
}


@dataclass(frozen=True)
class Part:
    """One part of a paired piece: its notes file (MIDI or annotation), stem audio, program."""

    name: str
    notes: str | None
    audio: str | None
    program: int = 0
    is_drum: bool = False


@dataclass(frozen=True)
class RecordedPair:
    """One piece with its aligned audio.

    Attributes:
        key: the split key ``<root name>/<relative MIDI path>``.
        midi: the MIDI file (for URMP, the score ``Sco_*.mid``; None when absent).
        audio: the mixture audio file.
        layout: ``"maestro"``, ``"urmp"`` or ``"slakh"``.
        parts: per-part notes and stems (URMP, Slakh); empty for MAESTRO.
    """

    key: str
    midi: str | None
    audio: str
    layout: str
    parts: tuple[Part, ...] = ()

    @property
    def held_out(self) -> bool:
        return is_held_out(self.key)

    def read_notes(self) -> NoteTable:
        """The notes aligned to :attr:`audio` (the layout's quirks applied; see the module docstring).

        Raises:
            events.InputError: a file of the pair cannot be read.
        """
        return LAYOUTS[self.layout].read_notes(self)

    def item(self) -> Item:
        """This pair as a :class:`~events.sources.Item` (path = the MIDI file, audio kept)."""
        return Item(key=self.key, path=self.midi or self.audio, audio=self.audio)


# ---------------------------------------------------------------------------- helpers
def _score_and_table(path: str | os.PathLike):
    import symusic

    from ostinato.events.midi import DEFAULT_LIMITS, check_midi_bytes
    from ostinato.events.score import from_score

    try:
        data = Path(path).read_bytes()
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    data = check_midi_bytes(data, path, DEFAULT_LIMITS)
    try:
        score = symusic.Score.from_midi(data)
    except Exception as exc:
        raise InputError(path, f"invalid MIDI: {exc}") from None
    return score, from_score(score)


def apply_sustain(table: NoteTable, pedals: list[np.ndarray]) -> NoteTable:
    """Extend notes held by the sustain pedal.

    Args:
        table: the notes.
        pedals: per track of ``table``, an int array ``[n_pedals, 2]`` of (down tick, up tick).

    A note whose key is released while the pedal is down sounds until the pedal comes up,
    or until the same pitch is struck again in its track, whichever is first.
    """
    offset = table.offset_tick.copy()
    for index, spans in enumerate(pedals):
        if len(spans) == 0:
            continue
        spans = spans[np.argsort(spans[:, 0])]
        rows = np.flatnonzero((table.track == index) & ~table.is_drum)
        at = np.searchsorted(spans[:, 0], offset[rows], side="right") - 1
        held = (at >= 0) & (offset[rows] < spans[np.maximum(at, 0), 1])
        offset[rows[held]] = np.maximum(offset[rows[held]], spans[at[held], 1])
    # Cut at the next onset of the same pitch in the same track.
    order = np.lexsort((table.onset_tick, table.pitch, table.track))
    same = (table.track[order][1:] == table.track[order][:-1]) & (table.pitch[order][1:] == table.pitch[order][:-1])
    later = table.onset_tick[order][1:] > table.onset_tick[order][:-1]
    cut = same & later
    rows = order[:-1][cut]
    offset[rows] = np.minimum(offset[rows], table.onset_tick[order][1:][cut])
    offset = np.maximum(offset, table.onset_tick)
    return NoteTable.from_ticks(
        table.onset_tick, offset, table.pitch, table.velocity, table.track, table.tracks,
        ticks_per_quarter=table.ticks_per_quarter, tempos=[(t.tick, t.qpm) for t in table.tempos],
        time_signatures=[(t.tick, t.numerator, t.denominator) for t in table.time_signatures],
        key_signatures=[(k.tick, k.sharps, k.mode) for k in table.key_signatures],
    )


def _existing_audio(path: Path) -> Path | None:
    if path.is_file():
        return path
    for suffix in RECORDING_SUFFIXES:
        candidate = path.with_suffix(suffix)
        if candidate.is_file():
            return candidate
    return None


def _key(root: Path, path: Path) -> str:
    return f"{root.resolve().name}/{path.relative_to(root).as_posix()}"


# ---------------------------------------------------------------------------- layouts
class Maestro:
    """MAESTRO v3 (and v2): the CSV index, year folders, sustain pedal applied."""

    name = "maestro"

    @staticmethod
    def index(root: Path) -> Path | None:
        found = sorted(root.glob("maestro-v*.csv"))
        return found[-1] if found else None

    def detect(self, root: Path) -> bool:
        return self.index(root) is not None

    def pairs(self, root: Path) -> Iterator[RecordedPair]:
        index = self.index(root)
        with open(index, newline="", encoding="utf-8") as f:
            rows = list(csv.DictReader(f))
        if rows and not {"midi_filename", "audio_filename"} <= set(rows[0]):
            raise InputError(index, "not a MAESTRO index (no midi_filename/audio_filename columns)")
        missing = 0
        for row in rows:
            midi = root / row["midi_filename"]
            audio = _existing_audio(root / row["audio_filename"])
            if not midi.is_file() or audio is None:
                missing += 1
                continue
            yield RecordedPair(key=_key(root, midi), midi=str(midi), audio=str(audio), layout=self.name)
        if missing:
            log.warning("%s: %d of %d pieces listed in %s have no MIDI or audio file here (skipped)",
                        root, missing, len(rows), index.name)

    def read_notes(self, pair: RecordedPair) -> NoteTable:
        score, table = _score_and_table(pair.midi)
        pedals = []
        for trk in score.tracks:
            p = trk.pedals.numpy()
            start = p["time"].astype(np.int64)
            pedals.append(np.stack([start, start + p["duration"].astype(np.int64)], axis=1))
        return apply_sustain(table, pedals)


class Urmp:
    """URMP: per-piece folders; aligned notes from the Notes_ annotations (Hz), not the score MIDI."""

    name = "urmp"
    _PIECE = re.compile(r"^(\d+)_([^_]+)_(.+)$")
    _PART = re.compile(r"^(?:Notes|AuSep)_(\d+)_([a-z]+)_")

    def _pieces(self, root: Path) -> list[Path]:
        return sorted(d for d in root.iterdir()
                      if d.is_dir() and self._PIECE.match(d.name) and any(d.glob("AuMix_*")))

    def detect(self, root: Path) -> bool:
        return bool(self._pieces(root))

    def pairs(self, root: Path) -> Iterator[RecordedPair]:
        for folder in self._pieces(root):
            mix = _existing_audio(folder / f"AuMix_{folder.name}.wav") or next(iter(sorted(folder.glob("AuMix_*"))))
            scores = sorted(folder.glob("Sco_*.mid"))
            parts: dict[int, dict] = {}
            for path in sorted(folder.iterdir()):
                match = self._PART.match(path.name)
                if not match:
                    continue
                part = parts.setdefault(int(match.group(1)), {"inst": match.group(2)})
                part["notes" if path.name.startswith("Notes_") else "audio"] = str(path)
            key_path = scores[0] if scores else mix
            yield RecordedPair(
                key=_key(root, key_path), midi=str(scores[0]) if scores else None, audio=str(mix), layout=self.name,
                parts=tuple(
                    Part(name=f"{n}_{p['inst']}", notes=p.get("notes"), audio=p.get("audio"),
                         program=URMP_PROGRAMS.get(p["inst"], 0))
                    for n, p in sorted(parts.items())
                ),
            )

    def read_notes(self, pair: RecordedPair) -> NoteTable:
        annotated = [p for p in pair.parts if p.notes]
        if not annotated or len(annotated) < len(pair.parts):
            if pair.midi is None:
                raise InputError(pair.key, "no Notes_ annotations and no Sco_ MIDI")
            log.warning("%s: no Notes_ annotation for every part; using the score MIDI (not aligned to the audio)",
                        pair.key)
            return _score_and_table(pair.midi)[1]
        onset, offset, pitch, track = [], [], [], []
        for index, part in enumerate(annotated):
            try:
                rows = np.loadtxt(part.notes, dtype=np.float64, ndmin=2)
            except (OSError, ValueError) as exc:
                raise InputError(part.notes, f"cannot read URMP note annotation: {exc}") from None
            if rows.size == 0:
                continue
            if rows.shape[1] < 3 or np.any(rows[:, 1] <= 0) or np.any(rows[:, 2] < 0):
                raise InputError(part.notes, "expected lines of: onset (s), pitch (Hz > 0), duration (s)")
            onset.append(rows[:, 0])
            offset.append(rows[:, 0] + rows[:, 2])
            pitch.append(np.clip(np.rint(69 + 12 * np.log2(rows[:, 1] / 440.0)), 0, 127).astype(np.int64))
            track.append(np.full(len(rows), index, dtype=np.int32))
        tracks = [Track(name=p.name, program=p.program) for p in annotated]
        if not onset:
            return NoteTable.from_seconds([], [], [], [], track=np.zeros(0, np.int32), tracks=tracks)
        pitches = np.concatenate(pitch)
        return NoteTable.from_seconds(
            np.concatenate(onset), np.concatenate(offset), pitches, np.full(len(pitches), URMP_VELOCITY),
            track=np.concatenate(track), tracks=tracks,
        ).sorted()


class Slakh:
    """Slakh2100: TrackNNNNN folders; only rendered stems, with the metadata's programs."""

    name = "slakh"
    _TRACK = re.compile(r"^Track\d+$")

    def _tracks(self, root: Path) -> list[Path]:
        found = []
        for base in (root, *sorted(d for d in root.iterdir() if d.is_dir() and d.name != "omitted")):
            found += [d for d in base.iterdir() if d.is_dir() and self._TRACK.match(d.name)]
        return sorted(found, key=lambda d: d.relative_to(root).as_posix())

    def detect(self, root: Path) -> bool:
        return bool(self._tracks(root))

    def pairs(self, root: Path) -> Iterator[RecordedPair]:
        import yaml

        for folder in self._tracks(root):
            mix = _existing_audio(folder / "mix.flac")
            midi = folder / "all_src.mid"
            if mix is None or not midi.is_file():
                log.warning("%s: no mix audio or all_src.mid (skipped)", folder)
                continue
            parts = []
            meta_path = folder / "metadata.yaml"
            if meta_path.is_file():
                try:
                    meta = yaml.safe_load(meta_path.read_text(encoding="utf-8")) or {}
                except (OSError, yaml.YAMLError) as exc:
                    raise InputError(meta_path, f"cannot read Slakh metadata: {exc}") from None
                for stem, info in sorted((meta.get("stems") or {}).items()):
                    if not info.get("audio_rendered", True):
                        continue
                    notes = folder / "MIDI" / f"{stem}.mid"
                    parts.append(Part(
                        name=f"{stem} {info.get('inst_class', '')}".strip(),
                        notes=str(notes) if notes.is_file() else None,
                        audio=str(_existing_audio(folder / "stems" / f"{stem}.flac") or "") or None,
                        program=int(info.get("program_num", 0)), is_drum=bool(info.get("is_drum", False)),
                    ))
            yield RecordedPair(key=_key(root, midi), midi=str(midi), audio=str(mix), layout=self.name,
                               parts=tuple(parts))

    def read_notes(self, pair: RecordedPair) -> NoteTable:
        _, base = _score_and_table(pair.midi)
        stems = [p for p in pair.parts if p.notes]
        if not stems:
            return base
        onset, offset, pitch, velocity, track = [], [], [], [], []
        for index, part in enumerate(stems):
            _, table = _score_and_table(part.notes)
            onset.append(table.onset_s)
            offset.append(table.offset_s)
            pitch.append(table.pitch.astype(np.int64))
            velocity.append(table.velocity.astype(np.int64))
            track.append(np.full(len(table), index, dtype=np.int32))
        tracks = [Track(name=p.name, program=p.program, is_drum=p.is_drum) for p in stems]
        return NoteTable.from_seconds(
            np.concatenate(onset), np.concatenate(offset), np.concatenate(pitch), np.concatenate(velocity),
            track=np.concatenate(track), tracks=tracks, ticks_per_quarter=base.ticks_per_quarter,
            tempos=[(t.tick, t.qpm) for t in base.tempos],
            time_signatures=[(t.tick, t.numerator, t.denominator) for t in base.time_signatures],
            key_signatures=[(k.tick, k.sharps, k.mode) for k in base.key_signatures],
        ).sorted()


LAYOUTS = {layout.name: layout for layout in (Maestro(), Urmp(), Slakh())}


def detect_layout(root: str | os.PathLike) -> str:
    """The layout of the folder ``root``: ``"maestro"``, ``"urmp"`` or ``"slakh"``.

    Raises:
        events.InputError: ``root`` is not a folder, or none of the layouts is recognised.
    """
    path = Path(root)
    if not path.is_dir():
        raise InputError(root, "no such folder")
    for name, layout in LAYOUTS.items():
        if layout.detect(path):
            return name
    raise InputError(root, "not a MAESTRO (maestro-v*.csv), URMP (NN_Piece_inst folders with AuMix_) "
                           "or Slakh2100 (TrackNNNNN folders) layout")


def iter_pairs(root: str | os.PathLike, *, split: str = "all", layout: str | None = None) -> Iterator[RecordedPair]:
    """The (notes, audio) pairs under ``root``, in a stable order.

    Args:
        root: the folder the data set was unpacked into.
        split: ``"train"``, ``"test"`` (held out, DESIGN.md) or ``"all"``.
        layout: force a layout instead of detecting it.
    """
    check_split(split)
    path = Path(root)
    name = layout or detect_layout(path)
    if name not in LAYOUTS:
        raise ValueError(f"layout must be one of {', '.join(LAYOUTS)}, got {name!r}")
    for pair in LAYOUTS[name].pairs(path):
        if split == "all" or pair.held_out == (split == "test"):
            yield pair
