"""music21 scores <-> :class:`NoteTable`: MusicXML, Humdrum kern, ABC parsing and music21's corpus.

music21 is imported lazily: reading MIDI never pays for it. A music21 score becomes a note
table part by part: ties are merged (a tied pair is one sounding note), chords give one note
per pitch, grace notes (no notated duration) are left out, repeats are kept as written unless
``expand_repeats`` is asked for. Offsets are exact at music21's own MIDI resolution of
10080 ticks per quarter note (divisible by 2..10, so tuplets stay exact).
"""

from __future__ import annotations

import contextlib
import io
import os
import re
import warnings
from collections.abc import Iterator
from fractions import Fraction
from pathlib import Path

import numpy as np

from .atomic import write_bytes_atomic
from .errors import InputError
from .table import DEFAULT_QPM, MODE_DEGREES, NoteTable, Track

MUSIC21_TICKS_PER_QUARTER = 10080
MUSICXML_SUFFIXES = (".xml", ".musicxml", ".mxl")
KERN_SUFFIXES = (".krn",)
CORPUS_PREFIX = "music21:"
DEFAULT_VELOCITY = 90  # music21's realised default volume (0.7087 * 127)


class Music21Warning(UserWarning):
    """Something music21 said while reading a file, re-emitted naming the file (see :func:`music21_messages`)."""


_MUSIC21_HEADER = re.compile(r"^\s*music21[\w.]*:\s*WARNING:\s*")


@contextlib.contextmanager
def music21_messages(path: str | os.PathLike) -> Iterator[None]:
    """Collect what music21 says while the block runs (its ``warnings`` and the lines its
    ``environLocal.warn`` writes straight to stderr) and re-emit each distinct message once, as a
    :class:`Music21Warning` ``"<path>: <message>"`` (``(N times)`` when repeated): the command line
    prints them as ``ostinato: <path>: ...``, never as bare music21 output.
    """
    caught: list = []
    buffer = io.StringIO()
    try:
        with warnings.catch_warnings(record=True) as caught, contextlib.redirect_stderr(buffer):
            warnings.simplefilter("always")
            yield
    finally:
        messages = [str(w.message) for w in caught or ()]
        messages += [_MUSIC21_HEADER.sub("", line) for line in buffer.getvalue().splitlines() if line.strip()]
        counts: dict[str, int] = {}
        for message in messages:
            message = " ".join(message.split())
            if message:
                counts[message] = counts.get(message, 0) + 1
        for message, n in counts.items():
            warnings.warn(f"{os.fspath(path)}: {message}" + (f" ({n} times)" if n > 1 else ""), Music21Warning,
                          stacklevel=3)


def stream_to_table(score, *, expand_repeats: bool = False, path: str | os.PathLike = "<music21>") -> NoteTable:
    """Convert a ``music21.stream.Score`` (or Part, or Opus of one score) into a note table.

    Args:
        score: a parsed music21 stream.
        expand_repeats: play repeats and endings out, as a performance would.
        path: named in error messages.
    """
    from music21 import key, meter, stream, tempo

    if isinstance(score, stream.Opus):
        score = score.scores[0] if score.scores else stream.Score()
    parts = list(score.parts) if isinstance(score, stream.Score) else [score]
    if isinstance(score, stream.Score) and not parts and score.recurse().notes:
        parts = [score]
    tpq = MUSIC21_TICKS_PER_QUARTER
    tracks, onset, offset, pitch, velocity, track = [], [], [], [], [], []
    for index, part in enumerate(parts):
        if expand_repeats:
            try:
                part = part.expandRepeats()
            except Exception as exc:  # music21 raises ExpanderException (and others) on bad repeats
                raise InputError(path, f"cannot expand repeats: {exc}") from None
        inst = part.getInstrument(returnDefault=True)
        is_drum = inst.midiChannel == 9 or "Percussion" in inst.classes
        tracks.append(Track(name=part.partName or inst.instrumentName or "", program=inst.midiProgram or 0,
                            is_drum=bool(is_drum)))
        for start, end, midi, vel in sounding_notes(part, inst):
            onset.append(round(start * tpq))
            offset.append(round(end * tpq))
            pitch.append(midi)
            velocity.append(max(1, min(127, int(vel))))
            track.append(index)

    flat = score.flatten()
    tempos = [
        (round(Fraction(mark.offset) * tpq), float(mark.getQuarterBPM()))
        for mark in flat.getElementsByClass(tempo.MetronomeMark)
        if mark.number is not None or mark.numberSounding is not None
    ]
    first = parts[0].flatten() if parts else flat
    time_signatures = _dedupe(
        (round(Fraction(ts.offset) * tpq), int(ts.numerator), int(ts.denominator))
        for ts in first.getElementsByClass(meter.TimeSignature)
    )
    key_signatures = _dedupe(
        (round(Fraction(ks.offset) * tpq), int(ks.sharps), _mode(ks))
        for ks in first.getElementsByClass(key.KeySignature)
        if -7 <= ks.sharps <= 7
    )
    return NoteTable.from_ticks(
        np.array(onset, dtype=np.int64), np.array(offset, dtype=np.int64), np.array(pitch, dtype=np.int64),
        np.array(velocity, dtype=np.int64), np.array(track, dtype=np.int32), tracks,
        ticks_per_quarter=tpq, tempos=tempos or [(0, DEFAULT_QPM)],
        time_signatures=time_signatures, key_signatures=key_signatures,
    ).sorted()


def sounding_notes(part, inst=None) -> list[tuple[Fraction, Fraction, int, int]]:
    """``(start, end, pitch, velocity)`` of each note ``part`` sounds, in quarter notes from its start: tied notes
    are one note, chords one note per pitch, grace notes (no notated duration) left out.

    A tie continues into the next note of its pitch that starts where it ends, in its own voice (else in
    any), whatever that note's own tie says: old encodings mark every note of a tied chain "start".
    music21's ``stripTies`` matches ties by pitch across voices, so two voices with one pitch (a piano's
    held note under a repeated one) lost and lengthened notes; this reads each voice as written.
    ``inst``: the part's instrument (a percussion map gives unpitched notes their key).
    """
    from music21 import chord, note, stream

    notes: list[list] = []   # [start, end, pitch, velocity]
    open_ties: dict[tuple[object, int], int] = {}   # (voice, pitch) -> index in notes of a tie not yet ended
    for element in part.recurse().notes:
        length = Fraction(element.duration.quarterLength)
        if length <= 0:  # grace notes have no notated duration
            continue
        start = Fraction(element.getOffsetInHierarchy(part))
        end = start + length
        voice = element.activeSite.id if isinstance(element.activeSite, stream.Voice) else None
        velocity = element.volume.velocity or DEFAULT_VELOCITY
        if isinstance(element, note.Unpitched):
            members = [(getattr(inst, "percMapPitch", None) or element.displayPitch().midi, element.tie)]
        elif isinstance(element, note.Note):
            members = [(element.pitch.midi, element.tie)]
        elif isinstance(element, chord.ChordBase):
            members = [(member.pitch.midi if isinstance(member, note.Note) else member.displayPitch().midi,
                        member.tie) for member in element.notes]   # (a chord's .tie is its first tied note's)
        else:
            continue
        for midi, tie in members:
            if not 0 <= midi <= 127:
                continue
            kind = tie.type if tie is not None else None
            own = open_ties.get((voice, midi))
            if own is not None and notes[own][1] == start:
                tied = (voice, midi)
            else:   # a tie from another voice
                tied = next((k for k, i in open_ties.items() if k[1] == midi and notes[i][1] == start), None)
            if tied is not None:   # the tie goes on into this note
                held = open_ties.pop(tied)
                notes[held][1] = end
                if kind in ("start", "continue"):
                    open_ties[(voice, midi)] = held
                continue
            notes.append([start, end, midi, velocity])
            if kind in ("start", "continue"):
                open_ties[(voice, midi)] = len(notes) - 1
    return [(start, end, midi, velocity) for start, end, midi, velocity in notes]


def _mode(ks) -> str:
    mode = (getattr(ks, "mode", None) or "major").lower()
    return mode if mode in MODE_DEGREES else "major"


def _dedupe(events) -> list:
    """Drop events repeating the one in force (music21 repeats signatures in every part/system)."""
    out = []
    for event in sorted(events, key=lambda e: e[0]):
        if out and out[-1][1:] == event[1:]:
            continue
        if out and out[-1][0] == event[0]:
            out[-1] = event
        else:
            out.append(event)
    return out


def table_to_stream(table: NoteTable):
    """A ``music21.stream.Score`` with one part per track (offsets on a 1/12-quarter grid).

    Notes in one part that start together with the same length become chords; music21
    makes measures, ties and voices when the score is written out.
    """
    from music21 import chord, instrument, key, meter, note, stream, tempo

    score = stream.Score()
    tpq = table.ticks_per_quarter

    def quarters(ticks) -> Fraction:
        return Fraction(round(int(ticks) * 12 / tpq), 12)

    for index, trk in enumerate(table.tracks):
        part = stream.Part()
        part.partName = trk.name or None
        if trk.is_drum:
            inst = instrument.Percussion()
            inst.midiChannel = 9
        else:
            inst = instrument.instrumentFromMidiProgram(trk.program)
            inst.midiProgram = trk.program
        part.insert(0, inst)
        if index == 0:
            for mark in table.tempos:
                part.insert(quarters(mark.tick), tempo.MetronomeMark(number=round(mark.qpm, 3), referent=1.0))
        for ts in table.time_signatures:
            part.insert(quarters(ts.tick), meter.TimeSignature(ts.text))
        for ks in table.key_signatures:
            part.insert(quarters(ks.tick), key.KeySignature(ks.sharps))
        rows = np.flatnonzero(table.track == index)
        groups: dict[tuple[Fraction, Fraction], list[int]] = {}
        for row in rows:
            start = quarters(table.onset_tick[row])
            length = max(quarters(table.offset_tick[row]) - start, Fraction(1, 12))
            groups.setdefault((start, length), []).append(int(row))
        for (start, length), members in sorted(groups.items()):
            if len(members) == 1:
                element = note.Note(int(table.pitch[members[0]]))
            else:
                element = chord.Chord([int(table.pitch[r]) for r in sorted(members, key=lambda r: table.pitch[r])])
            element.quarterLength = length
            element.volume.velocity = int(table.velocity[members].max())
            part.insert(start, element)
        score.insert(0, part)
    return score


MXL_MIMETYPE = b"application/vnd.recordare.musicxml"
# what music21 writes that is not the score's: the day it was written, and its own name as the composer
_NOT_THE_SCORES = re.compile(rb"\s*(<encoding-date>[^<]*</encoding-date>|<creator type=\"composer\">Music21</creator>)")


def musicxml_bytes(table: NoteTable, title: str) -> bytes:
    """``table`` as uncompressed MusicXML, the same bytes for the same table: parts and instruments are
    numbered (``P1``, ``P1-I1``; music21 draws random ids), the title is ``title`` (music21's default is
    "Music21 Fragment"), and what music21 adds that is not the score's is left out: the day it is written
    (``<encoding-date>``) and "Music21" as the composer."""
    from music21 import metadata
    from music21.musicxml.m21ToXml import GeneralObjectExporter

    score = table_to_stream(table)
    score.metadata = metadata.Metadata(title=title)
    for number, part in enumerate(score.parts, start=1):
        part.id = f"P{number}"
        for inst in part.getElementsByClass("Instrument"):
            inst.partId, inst.instrumentId = f"P{number}", f"P{number}-I1"
    return _NOT_THE_SCORES.sub(b"", GeneralObjectExporter(score).parse())


def mxl_bytes(xml: bytes, name: str) -> bytes:
    """A compressed MusicXML file (MusicXML 4.0's container) holding ``xml`` as ``name``: ``mimetype`` first,
    stored, then ``META-INF/container.xml`` and the score, with fixed timestamps (the same bytes each time)."""
    import zipfile

    container = ('<?xml version="1.0" encoding="UTF-8"?>\n<container>\n  <rootfiles>\n'
                 f'    <rootfile full-path="{name}" media-type="application/vnd.recordare.musicxml+xml"/>\n'
                 '  </rootfiles>\n</container>\n').encode()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as archive:
        for member, data, method in (("mimetype", MXL_MIMETYPE, zipfile.ZIP_STORED),
                                     ("META-INF/container.xml", container, zipfile.ZIP_DEFLATED),
                                     (name, xml, zipfile.ZIP_DEFLATED)):
            info = zipfile.ZipInfo(member, date_time=(1980, 1, 1, 0, 0, 0))
            info.compress_type = method
            info.external_attr = 0o644 << 16
            archive.writestr(info, data)
    return buffer.getvalue()


def write_musicxml(table: NoteTable, path: str | os.PathLike) -> None:
    """Write ``table`` as MusicXML (``.musicxml``/``.xml``, or compressed ``.mxl``), atomically; the same
    table gives the same bytes (:func:`musicxml_bytes`), titled by the file's name (``piece.mxl``: "piece").
    An ``.mxl`` holds the score as ``<name>.musicxml`` (``tune#1.mxl``: ``tune_1.musicxml``)."""
    path = Path(path)
    xml = musicxml_bytes(table, title=path.stem)
    if path.suffix.lower() == ".mxl":
        # the container names the score by a URI path: '#', '%', '?' or a space in it would be read as a
        # fragment, an escape, a query or break it; word characters, '.' and '-' only
        xml = mxl_bytes(xml, re.sub(r"[^\w.-]", "_", path.stem, flags=re.ASCII) + ".musicxml")
    write_bytes_atomic(path, xml)


def read_music21_file(path: str | os.PathLike, *, expand_repeats: bool = False) -> NoteTable:
    """Read MusicXML (``.xml``, ``.musicxml``, ``.mxl``) or Humdrum (``.krn``) with music21."""
    from music21 import converter

    from .limits import check_compressed, check_regular_file, check_table

    path = Path(path)
    if path.suffix.lower() == ".mxl":
        check_compressed(path)   # a regular file, and no zip bomb: refused before it is unpacked
    else:
        check_regular_file(path)   # no FIFO, device or oversized file reaches music21
    with music21_messages(path):   # music21's warnings name the file, with our prefix
        try:
            score = converter.parse(str(path), forceSource=True)
        except Exception as exc:  # music21 raises many kinds; all mean "cannot read this file"
            raise InputError(path, f"cannot parse {path.suffix.lstrip('.')}: {type(exc).__name__}: {exc}") from None
        return check_table(stream_to_table(score, expand_repeats=expand_repeats, path=path), path)


def corpus_path(name: str) -> Path:
    """The file behind ``music21:<name>`` (e.g. ``music21:bach/bwv66.6``)."""
    from music21 import corpus

    ref = name[len(CORPUS_PREFIX):] if name.startswith(CORPUS_PREFIX) else name
    try:
        found = corpus.getWork(ref)
    except Exception:
        raise InputError(name, "no such piece in music21's corpus") from None
    found = found[0] if isinstance(found, list) else found
    return Path(found)
