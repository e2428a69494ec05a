"""One reader and one writer per format, chosen by file extension (or a ``music21:`` name).

    table = read("song.mid")                 # MIDI (symusic)
    table = read("tunes.abc", tune=3)        # the ABC tune X:3 (music21)
    table = read("music21:bach/bwv66.6")     # a piece of music21's corpus
    for key, table in iter_pieces("tunes.abc"): ...   # every tune, keyed "tunes.abc#X"
    write(table, "out.musicxml")             # MIDI, ABC or MusicXML, atomically
"""

from __future__ import annotations

import functools
import os
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

from .abc_read import ABC_SUFFIXES
from .errors import InputError
from .limits import DEFAULT_LIMITS, ReadLimits
from .midi import MIDI_SUFFIXES, read_midi, write_midi
from .music21_io import CORPUS_PREFIX, KERN_SUFFIXES, MUSICXML_SUFFIXES
from .table import NoteTable

MUSIC21_SUFFIXES = MUSICXML_SUFFIXES + KERN_SUFFIXES
READ_SUFFIXES = MIDI_SUFFIXES + ABC_SUFFIXES + MUSIC21_SUFFIXES
WRITE_FORMATS = {"mid": ".mid", "midi": ".mid", "abc": ".abc", "musicxml": ".musicxml", "xml": ".musicxml",
                 "mxl": ".mxl"}
# Audio files (written by the renderers, read as references and for plots): soundfile's formats.
AUDIO_FORMATS = ("wav", "flac", "ogg")
AUDIO_SUFFIXES = tuple(f".{fmt}" for fmt in AUDIO_FORMATS)


def _kind(source: str | os.PathLike) -> str:
    text = os.fspath(source)
    if text.startswith(CORPUS_PREFIX):
        return "corpus"
    suffix = Path(text).suffix.lower()
    for kind, suffixes in (("midi", MIDI_SUFFIXES), ("abc", ABC_SUFFIXES), ("music21", MUSIC21_SUFFIXES)):
        if suffix in suffixes:
            return kind
    if Path(text).is_dir():
        raise InputError(text, "is a folder (give the files in it)")
    raise InputError(text, f"unknown file type {suffix or '(no extension)'!r} (expected one of "
                           f"{', '.join(READ_SUFFIXES)} or music21:<corpus name>)")


def read(source: str | os.PathLike, *, tune: int | None = None, expand_repeats: bool = False,
         limits: ReadLimits = DEFAULT_LIMITS) -> NoteTable:
    """Read one piece from a file or a ``music21:`` corpus name.

    Args:
        source: a path (``.mid/.midi``, ``.abc``, ``.xml/.musicxml/.mxl/.krn``) or
            ``music21:<name>``, e.g. ``music21:bach/bwv66.6``.
        tune: for an ABC file, the ``X:`` number of the tune (default: the first tune).
        expand_repeats: for ABC/MusicXML, play repeats out (MIDI has none to expand).
        limits: caps on what a MIDI file may declare.

    Raises:
        InputError: one line naming the source and the problem.
    """
    kind = _kind(source)
    if kind == "midi":
        from .limits import named_warnings

        with named_warnings(source):   # a reader's warning names the file
            return read_midi(source, limits)
    if kind == "abc":
        from .abc_read import read_abc

        return read_abc(source, tune=tune, expand_repeats=expand_repeats)
    from .music21_io import corpus_path, read_music21_file

    path = corpus_path(os.fspath(source)) if kind == "corpus" else source
    if kind == "corpus" and path.suffix.lower() == ".abc":
        return read(path, tune=tune, expand_repeats=expand_repeats)
    return read_music21_file(path, expand_repeats=expand_repeats)


@dataclass(frozen=True)
class Piece:
    """One piece of a source, not yet parsed: ``key`` names it, ``read()`` parses it.

    Keys are the path (or ``music21:`` name), with ``#<X number>`` for a tune of an ABC file.
    """

    key: str
    load: Callable[[], NoteTable]

    def read(self) -> NoteTable:
        """Parse the piece; raises :class:`InputError` if it cannot be read."""
        return self.load()


def pieces(source: str | os.PathLike, *, expand_repeats: bool = False,
           limits: ReadLimits = DEFAULT_LIMITS) -> list[Piece]:
    """The pieces in ``source``: one per file, one per tune of an ABC file (read once).

    Raises :class:`InputError` when the source itself cannot be opened; a piece that cannot
    be parsed raises only when its ``read()`` is called, so the others still can be.
    """
    kind = _kind(source)
    name = os.fspath(source)
    path = source
    if kind == "corpus":
        from .music21_io import corpus_path

        path = corpus_path(name)
    if kind == "abc" or (kind == "corpus" and path.suffix.lower() in ABC_SUFFIXES):
        from .abc_read import parse_tune, read_abc_text, split_tunes, tune_keys

        tunes = split_tunes(read_abc_text(path))
        if not tunes:
            raise InputError(name, "no ABC tune found (no X: or K: line)")
        return [Piece(f"{name}#{suffix}", functools.partial(parse_tune, tune, name, expand_repeats=expand_repeats))
                for tune, suffix in zip(tunes, tune_keys(tunes), strict=True)]
    return [Piece(name, functools.partial(read, source, expand_repeats=expand_repeats, limits=limits))]


def iter_pieces(source: str | os.PathLike, *, expand_repeats: bool = False,
                limits: ReadLimits = DEFAULT_LIMITS) -> Iterator[tuple[str, NoteTable]]:
    """Yield ``(key, table)`` for every piece of ``source``; stops at the first that fails."""
    for piece in pieces(source, expand_repeats=expand_repeats, limits=limits):
        yield piece.key, piece.read()


def format_for(path: str | os.PathLike, format: str | None = None) -> str:
    """The output format (``mid``, ``abc``, ``musicxml``, ``mxl``) from ``format`` or the extension."""
    name = (format or Path(path).suffix.lstrip(".")).lower()
    if name not in WRITE_FORMATS:
        raise ValueError(f"cannot write {name or 'a file with no extension'!r}: "
                         f"choose one of mid, abc, musicxml, mxl")
    return WRITE_FORMATS[name].lstrip(".")


def write(table: NoteTable, path: str | os.PathLike, format: str | None = None) -> None:
    """Write ``table`` to ``path`` (atomically) as MIDI, ABC or MusicXML, by ``format`` or extension."""
    fmt = format_for(path, format)
    if fmt == "mid":
        write_midi(table, path)
    elif fmt == "abc":
        from .abc_write import write_abc

        write_abc(table, path)
    else:
        from .music21_io import write_musicxml

        write_musicxml(table, path)


def same_file(a: str | os.PathLike, b: str | os.PathLike) -> bool:
    """True when ``a`` and ``b`` are one existing file (``os.path.samefile``: links and ``..`` included)."""
    try:
        return os.path.samefile(a, b)
    except OSError:
        return False


def check_not_an_input(output: str | os.PathLike, inputs, *, option: str = "-o") -> None:
    """Refuse an output that is one of the command's own inputs: nothing a user hands us is overwritten.

    Raises:
        UsageError: ``output`` is the same file as one of ``inputs`` (exit 2, before any work).
    """
    from .errors import UsageError

    for source in inputs:
        if source is not None and same_file(output, source):
            raise UsageError(option, f"{os.fspath(output)} is an input of this command ({os.fspath(source)}); "
                                     f"choose another output")
