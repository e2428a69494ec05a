"""ABC -> note table through abc2midi (the abcMIDI program that symusic ships), for bulk conversion.

music21 parses ABC with its measure structure, at about 0.2 s a tune; abc2midi, the reference
ABC player, turns a tune into MIDI in a few milliseconds. It plays the tune *as performed*:
repeats and endings played out, grace notes played, broken rhythms, and velocities from
its beat-stress model (105 on the downbeat, 95 on other strong beats, 80 elsewhere); each
note starts one tick late and ends one tick early (its articulation). Guitar chord symbols
are not played (``-NGUI``), so the notes are the tune's own; the notes of a chord start together
(``%%MIDI chordattack 0`` before the tune's own directives: abc2midi's default rolls a chord, 10 ticks
a note, so an 8-note chord spread over a sixth of a beat). It runs as a subprocess with a
time limit, so a tune that hangs it costs that tune only.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import subprocess
import tempfile
from pathlib import Path

from .errors import InputError
from .table import NoteTable

DEFAULT_TIMEOUT_S = 60.0


def abc2midi_program() -> str:
    """The abc2midi executable: symusic's bundled copy, else one on PATH."""
    import symusic  # noqa: F401  (importing symusic sets SYMUSIC_ABC2MIDI to its bundled binary)

    found = os.environ.get("SYMUSIC_ABC2MIDI") or shutil.which("abc2midi")
    if not found or not Path(found).is_file():
        raise RuntimeError("abc2midi not found (it comes with symusic; or install the abcmidi package)")
    return found


def _problem(output: str, added_at: int) -> str:
    """abc2midi's first error line, its line number the tune's own (``added_at``: the line we added)."""
    lines = [line.strip() for line in output.splitlines() if line.strip()]
    errors = [line for line in lines if line.startswith("Error")]
    first = (errors or lines or ["no MIDI written"])[0]
    return re.sub(r"(line-char )(\d+)", lambda m: m.group(1) + str(int(m.group(2)) - (int(m.group(2)) > added_at)),
                  first, count=1)


def _voices_in_track_order(text: str) -> list:
    """The tune's voices (:func:`events.abc_read.split_voices`) in the order abc2midi writes their tracks: by
    number when every voice is numbered, else as they appear; none (names left as read) when the two mix."""
    from .abc_read import split_voices

    voices = split_voices(text)[1]
    numbered = [voice.id.isdigit() for voice in voices]
    if all(numbered):
        return sorted(voices, key=lambda voice: int(voice.id))
    return [] if any(numbered) else voices


def read_abc_abc2midi(text: str, name: str = "<abc>", *, timeout_s: float = DEFAULT_TIMEOUT_S) -> NoteTable:
    """Play one ABC tune (its full text, ``X:`` to the end) through abc2midi into a note table.

    Args:
        text: the tune's ABC text (e.g. :meth:`events.sources.Item.abc_text`).
        name: the tune's name for messages (``file.abc#3``).
        timeout_s: seconds abc2midi may take.

    Raises:
        InputError: abc2midi wrote no MIDI, or stopped on an error with a torn one (its first error line is
            the problem), or timed out.
    """
    from .midi import parse_midi

    program = abc2midi_program()
    # Two fresh files, unlinked after: a temporary folder costs more than abc2midi itself (creating
    # and removing it takes milliseconds on ext4), and abc2midi seeks in its output, so no pipe.
    fd, source = tempfile.mkstemp(prefix="ostinato-abc2midi-", suffix=".abc")
    lines = text.split("\n")
    x = next((i for i, line in enumerate(lines) if line.startswith("X:")), 0)
    lines.insert(x + 1, "%%MIDI chordattack 0")
    with os.fdopen(fd, "wb") as f:
        f.write("\n".join(lines).encode())
    fd, target = tempfile.mkstemp(prefix="ostinato-abc2midi-", suffix=".mid")
    os.close(fd)
    try:
        try:
            done = subprocess.run([program, source, "-o", target, "-silent", "-NGUI"], cwd=os.path.dirname(target),
                                  stdin=subprocess.DEVNULL, capture_output=True, timeout=timeout_s)
        except subprocess.TimeoutExpired:
            raise InputError(name, f"abc2midi took longer than {timeout_s:g} s") from None
        data = Path(target).read_bytes()
        output = (done.stdout + done.stderr).decode("utf-8", "replace")
        if not data:
            raise InputError(name, f"abc2midi: {_problem(output, x + 2)}")
        try:
            table = parse_midi(data, name)
        except InputError:
            if done.returncode == 0:
                raise
            # abc2midi stopped on an error and left a torn file (a track chunk begun and never written):
            # its error is the problem, not the chunk
            raise InputError(name, f"abc2midi: {_problem(output, x + 2)}") from None
        from .abc_read import with_voices

        return with_voices(table, _voices_in_track_order(text))   # names; a track's layers merged
    finally:
        for path in (source, target):
            with contextlib.suppress(OSError):
                os.unlink(path)
