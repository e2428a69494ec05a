"""MIDI files <-> :class:`NoteTable`, through symusic, with guards against hostile files.

Before symusic sees a file, its bytes are checked against what the Standard MIDI File
format allows and against :class:`ReadLimits`, so that a truncated file, a garbage file
named ``.mid``, a 0 or SMPTE division, or a chunk that declares gigabytes all end in one
:class:`~events.errors.InputError` naming the file and the problem, in bounded time and memory.
"""

from __future__ import annotations

import os
import struct
from pathlib import Path

import numpy as np
import symusic

from .atomic import write_bytes_atomic
from .errors import InputError
from .limits import DEFAULT_LIMITS, ReadLimits, read_file_bytes
from .score import from_score, to_score
from .table import NoteTable

MIDI_SUFFIXES = (".mid", ".midi", ".smf", ".kar", ".rmi")




def check_midi_bytes(data: bytes, path: str | os.PathLike, limits: ReadLimits = DEFAULT_LIMITS) -> bytes:
    """Check the chunk structure of a Standard MIDI File and return its SMF bytes.

    A RIFF ``RMID`` wrapper is unwrapped. Raises :class:`InputError` on anything that is not
    a well-formed header followed by the declared track chunks.
    """
    if data[:4] == b"RIFF" and data[8:12] == b"RMID":
        start = data.find(b"MThd", 12)
        data = data[start:] if start >= 0 else b""
    if len(data) < 14 or data[:4] != b"MThd":
        what = "empty file" if not data else "no MThd header"
        raise InputError(path, f"not a MIDI file ({what})")
    header_len, fmt, n_tracks, division = struct.unpack(">IHHH", data[4:14])
    if header_len < 6 or 8 + header_len > len(data):
        raise InputError(path, f"invalid MIDI header length {header_len}")
    if fmt > 2:
        raise InputError(path, f"unknown MIDI format {fmt} (expected 0, 1 or 2)")
    if division & 0x8000:
        raise InputError(path, "SMPTE time division is not supported (only ticks per quarter note)")
    if division == 0:
        raise InputError(path, "0 ticks per quarter note in the MIDI header")
    pos, found = 8 + header_len, 0
    while pos + 8 <= len(data) and found < n_tracks:
        chunk_type = data[pos:pos + 4]
        (length,) = struct.unpack(">I", data[pos + 4:pos + 8])
        if length > limits.max_file_bytes:
            raise InputError(path, f"chunk {found + 1} declares {length} bytes (limit {limits.max_file_bytes})")
        if pos + 8 + length > len(data):
            raise InputError(
                path, f"truncated: track {found + 1} declares {length} bytes but {len(data) - pos - 8} remain"
            )
        found += chunk_type == b"MTrk"
        pos += 8 + length
    if found < n_tracks:
        raise InputError(path, f"truncated: header declares {n_tracks} tracks, file has {found}")
    return data


def read_midi(path: str | os.PathLike, limits: ReadLimits = DEFAULT_LIMITS) -> NoteTable:
    """Read a MIDI file into a note table (all tracks, ticks kept exactly, with the performance data
    of :class:`~events.table.Controls`).

    Raises:
        InputError: the file is missing, too large, malformed, or exceeds ``limits``.
    """
    path = Path(path)
    return parse_midi(read_file_bytes(path, limits), path, limits)


def parse_midi(data: bytes, path: str | os.PathLike = "<bytes>", limits: ReadLimits = DEFAULT_LIMITS) -> NoteTable:
    """Parse MIDI ``data`` (bytes of a file called ``path``, for messages) into a note table."""
    data = check_midi_bytes(data, path, limits)
    try:
        score = symusic.Score.from_midi(data)
    except Exception as exc:  # symusic raises RuntimeError/ValueError with a short reason
        raise InputError(path, f"invalid MIDI: {exc}") from None
    n_notes = score.note_num()
    if n_notes > limits.max_notes:
        raise InputError(path, f"{n_notes} notes (limit {limits.max_notes})")
    table = from_score(score)
    if len(table) and (table.onset_tick.min() < 0 or np.any(table.offset_tick < table.onset_tick)):
        raise InputError(path, "absurd tick values (times overflow)")
    if table.duration_s > limits.max_duration_s:
        raise InputError(
            path, f"absurd tick values: piece lasts {table.duration_s / 3600:.1f} h "
            f"(limit {limits.max_duration_s / 3600:.1f} h)"
        )
    return table


def midi_bytes(table: NoteTable) -> bytes:
    """The table as a type-1 Standard MIDI File: one track per table track, drums on channel 10,
    each track with its performance data (sustain pedal, volume, expression, pan, pitch bend)."""
    return to_score(table).dumps_midi()


def write_midi(table: NoteTable, path: str | os.PathLike) -> None:
    """Write ``table`` to ``path`` as a type-1 MIDI file, atomically."""
    write_bytes_atomic(path, midi_bytes(table))
