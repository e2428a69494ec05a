"""What one input file may hold before it is refused, checked before the expensive parse.

Every reader (MIDI, ABC, MusicXML, kern) reads through :func:`read_file_bytes`: only regular
files (a FIFO, a device or ``/dev/zero`` behind a link named ``.mid`` would hang or fill memory),
at most ``max_file_bytes``. Compressed MusicXML is checked for its uncompressed size first (a
zip bomb), ABC for its longest line (music21's ABC parser slows down badly on huge lines), and
every parsed piece for its note count and duration (:func:`check_table`).
"""

from __future__ import annotations

import contextlib
import os
import stat
import warnings
import zipfile
from collections.abc import Iterator
from dataclasses import dataclass

from .errors import InputError


@dataclass(frozen=True)
class ReadLimits:
    """What one file may declare before it is refused (memory and time stay bounded).

    Attributes:
        max_file_bytes: largest file read, in bytes.
        max_uncompressed_bytes: largest total of a compressed file's members (``.mxl``), in bytes.
        max_line_chars: longest line of an ABC file, in characters.
        max_notes: most notes in one piece.
        max_duration_s: longest piece, in seconds (an absurd tick value or note length shows up here).
    """

    max_file_bytes: int = 64 * 1024 * 1024
    max_uncompressed_bytes: int = 64 * 1024 * 1024
    max_line_chars: int = 20_000
    max_notes: int = 5_000_000
    max_duration_s: float = 24 * 3600.0


DEFAULT_LIMITS = ReadLimits()


def check_regular_file(path: str | os.PathLike, limits: ReadLimits = DEFAULT_LIMITS) -> int:
    """The size in bytes of ``path``, a regular file (links followed) within ``limits.max_file_bytes``.

    Raises:
        InputError: missing, not a regular file, unreadable, or too large.
    """
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError(path, "no such file") from None
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    if stat.S_ISDIR(info.st_mode):
        raise InputError(path, "is a folder, not a file")
    if not stat.S_ISREG(info.st_mode):
        raise InputError(path, "not a regular file (a FIFO, device or socket is never read)")
    if info.st_size > limits.max_file_bytes:
        raise InputError(path, f"file is {info.st_size} bytes (limit {limits.max_file_bytes})")
    return info.st_size


def read_file_bytes(path: str | os.PathLike, limits: ReadLimits = DEFAULT_LIMITS) -> bytes:
    """The bytes of the regular file ``path``, never more than ``limits.max_file_bytes``."""
    check_regular_file(path, limits)
    try:
        with open(path, "rb") as fh:
            data = fh.read(limits.max_file_bytes + 1)
    except OSError as exc:
        raise InputError(path, exc.strerror or str(exc)) from None
    if len(data) > limits.max_file_bytes:   # it grew after the check
        raise InputError(path, f"file is over {limits.max_file_bytes} bytes (the limit)")
    return data


def check_compressed(path: str | os.PathLike, limits: ReadLimits = DEFAULT_LIMITS) -> None:
    """Refuse a zip file (``.mxl``) whose members uncompress to more than ``limits.max_uncompressed_bytes``."""
    check_regular_file(path, limits)
    try:
        with zipfile.ZipFile(path) as archive:
            total = sum(member.file_size for member in archive.infolist())
    except (zipfile.BadZipFile, OSError, ValueError) as exc:
        raise InputError(path, f"not a compressed MusicXML file: {exc}") from None
    if total > limits.max_uncompressed_bytes:
        raise InputError(path, f"uncompresses to {total} bytes (limit {limits.max_uncompressed_bytes})")


def check_lines(text: str, path: str | os.PathLike, limits: ReadLimits = DEFAULT_LIMITS) -> str:
    """``text`` unchanged, unless a line is longer than ``limits.max_line_chars`` (then InputError)."""
    longest = max((len(line) for line in text.splitlines()), default=0)
    if longest > limits.max_line_chars:
        raise InputError(path, f"a line of {longest} characters (limit {limits.max_line_chars})")
    return text


def check_table(table, path: str | os.PathLike, limits: ReadLimits = DEFAULT_LIMITS):
    """``table`` unchanged, unless it holds more notes or lasts longer than ``limits`` allow."""
    if len(table) > limits.max_notes:
        raise InputError(path, f"{len(table)} notes (limit {limits.max_notes})")
    if table.duration_s > limits.max_duration_s:
        raise InputError(path, f"absurd note times: piece lasts {table.duration_s / 3600:.1f} h "
                               f"(limit {limits.max_duration_s / 3600:.1f} h)")
    return table


@contextlib.contextmanager
def named_warnings(path: str | os.PathLike) -> Iterator[None]:
    """Re-emit the warnings raised while the block runs as ``"<path>: <message>"`` (same category), each
    distinct one once, so that a reader's warning (a dropped time signature...) names the file it is about."""
    name = os.fspath(path)
    caught: list = []
    try:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always")
            yield
    finally:
        seen = set()
        for warning in caught or ():
            message = " ".join(str(warning.message).split())
            if message not in seen:
                seen.add(message)
                warnings.warn(message if message.startswith(name) else f"{name}: {message}", warning.category,
                              stacklevel=3)
