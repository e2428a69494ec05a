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
from dataclasses import dataclass
from pathlib import Path

from .errors import InputError
from .table import NoteTable

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


def parse_tune(tune: AbcTune, path: str | os.PathLike = "<abc>", *, expand_repeats: bool = False) -> NoteTable:
    """Parse one tune with music21 into a note table (repeats as written unless expanded)."""
    from music21 import converter

    from .music21_io import stream_to_table

    name = f"{path}#{tune.number}"
    if not re.search(r"^K:", tune.text, re.MULTILINE):
        raise InputError(name, "ABC tune has no K: field")
    text = tune.text
    if not re.search(r"^[LM]:", text, re.MULTILINE):  # ABC 2.1: no L: and no M: means L:1/8
        text = re.sub(r"^(K:.*)$", r"L:1/8\n\1", text, count=1, flags=re.MULTILINE)
    from .limits import check_table
    from .music21_io import music21_messages

    with music21_messages(name):   # music21's warnings name the tune, with our prefix
        try:
            score = converter.parse(text, format="abc", forceSource=True)
        except Exception as exc:  # music21's ABC parser raises many kinds
            raise InputError(name, f"cannot parse ABC: {type(exc).__name__}: {exc}") from None
        return check_table(stream_to_table(score, expand_repeats=expand_repeats, path=name), name)


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
