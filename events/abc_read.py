"""ABC files -> :class:`NoteTable`: one tune, a tune by its ``X:`` number, or every tune.

A file is split into tunes at its ``X:`` lines (our own split, so one broken tune never
costs the others); each tune is parsed by music21. Fields, the ``%abc-<version>`` line and
``%%`` directives in the file header (before the first ``X:``) apply to every tune, as ABC 2.1
specifies; the version matters, since music21 carries accidentals through a bar only for ABC 2.0+. A tune's key is
``<file>#<X number>`` (DESIGN.md's held-out split keys tunes this way).
"""

from __future__ import annotations

import os
import re
from dataclasses import dataclass, field, replace
from pathlib import Path

import numpy as np

from .errors import InputError
from .instruments import retrack
from .table import NoteTable, Track

ABC_SUFFIXES = (".abc",)
MAX_ABC_BYTES = 32 * 1024 * 1024
# File-header lines every tune inherits: fields, the version line (%abc-2.1 turns on
# accidental propagation in music21) and %% directives.
_FILE_HEADER = re.compile(r"^([A-Za-z]:|%abc-|%%)")
_TUNE_START = re.compile(r"^X:[ \t]*(\S*)", re.MULTILINE)


@dataclass(frozen=True)
class AbcTune:
    """One tune of an ABC file: its ``X:`` number and its full text (header and body)."""

    number: int
    text: str


def split_tunes(text: str) -> list[AbcTune]:
    """Split ABC ``text`` into tunes at ``X:`` lines.

    A tune ends at the next ``X:`` line or at the first blank line after its body began
    (free text between tunes is dropped). A tune whose ``X:`` value is not a number gets the
    next free number. Text with no ``X:`` but with a ``K:`` line is one tune, number 1.
    """
    starts = list(_TUNE_START.finditer(text))
    if not starts:
        return [AbcTune(1, "X:1\n" + text)] if re.search(r"^K:", text, re.MULTILINE) else []
    file_header = [line for line in text[:starts[0].start()].splitlines() if _FILE_HEADER.match(line)]
    tunes, used = [], set()
    for i, match in enumerate(starts):
        end = starts[i + 1].start() if i + 1 < len(starts) else len(text)
        lines = text[match.start():end].splitlines()
        body_started, kept = False, []
        for line in lines:
            if not line.strip():
                if body_started:
                    break
                continue
            kept.append(line)
            body_started = body_started or line.startswith("K:")
        value = match.group(1)   # ASCII digits only: "²" passes str.isdigit() and then fails int()
        number = int(value) if value.isascii() and value.isdigit() else max(used, default=0) + 1
        if str(number) != value.lstrip("0") and kept:   # the tune carries the number it is known by
            kept[0] = f"X:{number}"
        used.add(number)
        version = [line for line in file_header if line.startswith("%abc-")]
        fields = [line for line in file_header if not line.startswith("%abc-")]
        tunes.append(AbcTune(number, "\n".join(version + kept[:1] + fields + kept[1:]) + "\n"))
    return tunes


def read_abc_text(path: str | os.PathLike) -> str:
    """The text of an ABC file (UTF-8, else Latin-1), refusing binary and oversized files."""
    from .limits import ReadLimits, check_lines, read_file_bytes

    path = Path(path)
    data = read_file_bytes(path, ReadLimits(max_file_bytes=MAX_ABC_BYTES))   # ABC's own, smaller byte cap
    if b"\x00" in data:
        raise InputError(path, "not an ABC file (binary data)")
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError:
        text = data.decode("latin-1")
    return check_lines(text, path)


@dataclass
class AbcVoice:
    """One voice of a tune (``V:``): its track's name (``name=``/``nm=``, else a voice id that is not a
    number), General MIDI program (``%%MIDI program``) and drums (``%%MIDI channel 10``), and its body lines."""

    id: str
    props: str = ""
    name: str = ""
    program: int | None = None
    is_drum: bool = False
    lines: list[str] = field(default_factory=list)

    def define(self, props: str) -> None:
        props = props.strip()
        if props and not self.props:
            self.props = props
        named = _VOICE_NAME.search(props)
        if named and not self.name:
            self.name = " ".join((named.group(1) if named.group(1) is not None else named.group(2)).split())

    def track(self, read: Track) -> Track:
        """The track music21 read for this voice (``read``) with what the tune says of it."""
        name = self.name or ("" if self.id.isdigit() else self.id) or read.name
        program = read.program if self.program is None else self.program
        return Track(name=name, program=program, is_drum=self.is_drum or read.is_drum)


_VOICE_LINE = re.compile(r"^V:[ \t]*([^\s\]]+)(.*)$")
_INLINE_VOICE = re.compile(r"\[V:[ \t]*([^\s\]]+)([^\]]*)\]")
_VOICE_NAME = re.compile(r'(?:^|\s)(?:name|nm)\s*=\s*(?:"([^"]*)"|(\S+))')
_MIDI_PROGRAM = re.compile(r"^%%MIDI[ \t]+program[ \t]+(?:\d+[ \t]+)?(\d+)")   # abc2midi: [channel] program
_MIDI_DRUMS = re.compile(r"^%%MIDI[ \t]+channel[ \t]+10\b")


def split_voices(text: str) -> tuple[str, list[AbcVoice]]:
    """A tune's voices, and its text with each voice's lines gathered under one ``V:`` line.

    Multi-voice ABC is usually written a few bars of each voice in turn (``V:1`` lines, ``V:2`` lines,
    ``V:1`` again, or ``[V:1]`` at a line's start), and voices are often defined in the header; music21
    makes a part of every ``V:`` it meets and starts each at the beginning, so the second line of a voice
    sounded with its first, and it takes only numbered voices as voices (``V:S``, ``V:A`` ran one after
    the other). The text returned has one block per voice, numbered in order of appearance, for music21
    to read; a tune of one voice is returned as it is."""
    lines = text.splitlines()
    k = next((i for i, line in enumerate(lines) if line.startswith("K:")), len(lines) - 1)
    voices: dict[str, AbcVoice] = {}
    default = AbcVoice("")   # the %%MIDI lines before any V: (every voice's, unless it sets its own)
    current: AbcVoice | None = None
    head: list[str] = []

    def switch(voice_id: str, props: str) -> AbcVoice:
        voice = voices.setdefault(voice_id, AbcVoice(voice_id))
        voice.define(props)
        return voice

    def midi(line: str, voice: AbcVoice) -> bool:
        program, drums = _MIDI_PROGRAM.match(line), _MIDI_DRUMS.match(line)
        if program and voice.program is None:
            voice.program = min(127, int(program.group(1)))
        voice.is_drum = voice.is_drum or bool(drums)
        return bool(program or drums)

    for i, line in enumerate(lines):
        in_head = i <= k
        match = _VOICE_LINE.match(line)
        if match:
            current = switch(match.group(1), match.group(2))
            continue
        if line.startswith("%%MIDI") and midi(line, current or default):
            continue
        if in_head:
            head.append(line)
            if i == k:   # the body's lines before its first V: belong to the first voice
                current = None
            continue
        pieces = _INLINE_VOICE.split(line)   # text, id, props, text, id, props, ...
        for j in range(0, len(pieces), 3):
            if j:
                current = switch(pieces[j - 2], pieces[j - 1])
            if pieces[j].strip() or (j == 0 and len(pieces) == 1):
                if current is None:   # body lines before any V: belong to the first voice defined
                    current = next(iter(voices.values())) if voices else switch("1", "")
                current.lines.append(pieces[j] if j == 0 else pieces[j].lstrip())
    ordered = list(voices.values()) or [default]
    for voice in ordered:   # the header's %%MIDI applies to every voice that sets none
        if voice.program is None and not voice.is_drum:
            voice.program = default.program
        voice.is_drum = voice.is_drum or default.is_drum
    if len(ordered) == 1:
        return text, ordered
    out = list(head)
    for number, voice in enumerate(ordered, start=1):
        out.append(f"V:{number} {voice.props}".rstrip())
        out += voice.lines
    return "\n".join(out) + "\n", ordered


def with_voices(table: NoteTable, voices: list[AbcVoice]) -> NoteTable:
    """``table`` (one track per voice, in order) with each track's name, program and drums from its voice;
    voices of one name and instrument are one track (a part written in several voices, as a piano's
    hands, or the layers our writer gives a track's overlapping notes)."""
    if len(voices) != len(table.tracks):
        return table
    tracks: list[Track] = []
    index: dict[tuple, int] = {}
    remap = np.zeros(len(voices), dtype=np.int32)
    for i, voice in enumerate(voices):
        track = voice.track(table.tracks[i])
        key = (track.name, track.program, track.is_drum) if track.name else ("#", i)
        if key not in index:
            index[key] = len(tracks)
            tracks.append(track)
        remap[i] = index[key]
    merged = replace(table, track=remap[table.track] if len(table) else table.track, tracks=tracks)
    return retrack(merged, tracks).sorted()   # (programs and drum flags follow the tracks)


_CHORD_NOTE = re.compile(r"(?:\^{1,2}|_{1,2}|=)?[A-Ga-gz][,']*[0-9/]*(-?)")


def tie_chords(score, handler) -> None:
    """Tie the chords of ``score`` (music21's translation of ``handler``'s tokens) that the ABC ties, in place.

    music21 reads ties on single notes only: ``[CE]2-`` (the chord tied) and ``[C-E-]2`` (its notes) came back
    as two chords, each note struck again. Chords are matched to their tokens in order (voice by voice, as
    music21 translates them); nothing is changed if the two counts differ."""
    from music21 import chord, harmony, tie
    from music21.abcFormat import ABCChord, ABCNote

    tokens = [t for t in handler.tokens if isinstance(t, ABCChord) and t.subTokens]
    if not any(t.tie in ("start", "continue") or "-" in t.src for t in tokens):
        return
    chords = [c for c in score.recurse().getElementsByClass(chord.Chord) if not isinstance(c, harmony.Harmony)]
    if len(chords) != len(tokens):
        return
    for token, made in zip(tokens, chords, strict=True):
        inside = token.src[token.src.find("[") + 1:token.src.rfind("]")]
        tied = [bool(m.group(1)) for m in _CHORD_NOTE.finditer(inside)]
        members = list(made.notes)
        if len(tied) != len([t for t in token.subTokens if isinstance(t, ABCNote)]) or len(tied) != len(members):
            tied = [False] * len(members)
        for member, own in zip(members, tied, strict=True):
            if own or token.tie in ("start", "continue"):
                member.tie = tie.Tie("start")


def parse_tune(tune: AbcTune, path: str | os.PathLike = "<abc>", *, expand_repeats: bool = False) -> NoteTable:
    """Parse one tune with music21 into a note table (repeats as written unless expanded); its voices
    (:func:`split_voices`) are its tracks, with the names and ``%%MIDI`` programs the tune gives them."""
    from music21 import abcFormat, stream

    from .music21_io import stream_to_table

    name = f"{path}#{tune.number}"
    if not re.search(r"^K:", tune.text, re.MULTILINE):
        raise InputError(name, "ABC tune has no K: field")
    text, voices = split_voices(tune.text)
    if not re.search(r"^[LM]:", text, re.MULTILINE):  # ABC 2.1: no L: and no M: means L:1/8
        text = re.sub(r"^(K:.*)$", r"L:1/8\n\1", text, count=1, flags=re.MULTILINE)
    from .limits import check_table
    from .music21_io import music21_messages

    with music21_messages(name):   # music21's warnings name the tune, with our prefix
        try:
            handler = abcFormat.ABCFile().readstr(text)   # (what converter.parse does, keeping the tokens)
            if handler.definesReferenceNumbers():
                score = abcFormat.translate.abcToStreamOpus(handler)
            else:
                score = stream.Score()
                abcFormat.translate.abcToStreamScore(handler, score)
        except Exception as exc:  # music21's ABC parser raises many kinds
            raise InputError(name, f"cannot parse ABC: {type(exc).__name__}: {exc}") from None
        tie_chords(score, handler)
        table = stream_to_table(score, expand_repeats=expand_repeats, path=name)
    return check_table(with_voices(table, voices), name)


def read_abc(path: str | os.PathLike, *, tune: int | None = None, expand_repeats: bool = False) -> NoteTable:
    """Read one tune of an ABC file: the one numbered ``tune`` (``X:``), or the first."""
    tunes = split_tunes(read_abc_text(path))
    if not tunes:
        raise InputError(path, "no ABC tune found (no X: or K: line)")
    if tune is None:
        return parse_tune(tunes[0], path, expand_repeats=expand_repeats)
    for candidate in tunes:
        if candidate.number == tune:
            return parse_tune(candidate, path, expand_repeats=expand_repeats)
    raise InputError(path, f"no tune X:{tune} (tunes: {', '.join(str(t.number) for t in tunes[:20])})")


def tune_keys(tunes: list[AbcTune]) -> list[str]:
    """The key suffix of each tune of one file: its ``X:`` number, made unique when a file repeats
    a number (rare): ``3``, ``3.2``, ``3.3``. Every reader of multi-tune files keys tunes this way."""
    seen: dict[int, int] = {}
    keys = []
    for tune in tunes:
        seen[tune.number] = seen.get(tune.number, 0) + 1
        keys.append(str(tune.number) if seen[tune.number] == 1 else f"{tune.number}.{seen[tune.number]}")
    return keys
