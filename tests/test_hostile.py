"""Hostile input, made here: every bad file gives one InputError line naming it, fast and bounded.

Each case is read through ``events.read`` and then all of them at once through the real
``ostinato info`` command, next to good files that must still be reported.
"""

import json
import struct

import numpy as np
import pytest
from conftest import fixture_dir, run_cli

from ostinato.events import InputError, read


def _mthd(fmt=0, n_tracks=1, division=480) -> bytes:
    return b"MThd" + struct.pack(">IHHH", 6, fmt, n_tracks, division)


def _mtrk(body: bytes, declared: int | None = None) -> bytes:
    return b"MTrk" + struct.pack(">I", len(body) if declared is None else declared) + body


NOTE = b"\x00\x90\x3c\x40\x83\x60\x80\x3c\x00"  # C4 for one quarter at 480 tpq
EOT = b"\x00\xff\x2f\x00"
GOOD_MIDI = _mthd() + _mtrk(NOTE + EOT)

# name -> (file bytes, text expected in the one-line error)
HOSTILE = {
    "truncated.mid": (GOOD_MIDI[:-6], "truncated"),
    "random_bytes.mid": (np.random.default_rng(0).bytes(4096), "not a MIDI file"),
    "empty_file.mid": (b"", "not a MIDI file (empty file)"),
    "zero_tpq.mid": (_mthd(division=0) + _mtrk(NOTE + EOT), "0 ticks per quarter"),
    "smpte.mid": (_mthd(division=0xE728) + _mtrk(NOTE + EOT), "SMPTE"),
    "huge_chunk.mid": (_mthd() + _mtrk(NOTE + EOT, declared=0xFFFFFFF0), "declares 4294967280 bytes"),
    "missing_tracks.mid": (_mthd(fmt=1, n_tracks=3) + _mtrk(NOTE + EOT), "header declares 3 tracks, file has 1"),
    "running_status_garbage.mid": (_mthd() + _mtrk(b"\x00\x40\x40" + EOT), "invalid MIDI"),
    "unknown_status.mid": (_mthd() + _mtrk(b"\x00\x90\x40\x40\x00\xf4\x01\x02" + EOT), "invalid MIDI"),
    "absurd_ticks.mid": (_mthd(division=1) + _mtrk(b"\x00\x90\x40\x40\xff\xff\xff\x7f\x80\x40\x00" + EOT),
                         "absurd tick values"),
    "bad_header_length.mid": (b"MThd" + struct.pack(">I", 2) + b"\x00\x00", "not a MIDI file"),
    "format_7.mid": (_mthd(fmt=7) + _mtrk(NOTE + EOT), "unknown MIDI format 7"),
    "wave_named.mid": (b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40), "no MThd header"),
    "text_named.mid": (b"hello, I am not music\n", "no MThd header"),
    "binary.abc": (b"\x00\x01\x02X:1\nK:C\n\xff\xfe", "not an ABC file (binary data)"),
    "no_tune.abc": (b"just some words\nwith no header at all\n", "no ABC tune found"),
    "zero_length.abc": (b"X:1\nT:broken\nL:0/0\nK:C\nCDE|\n", "cannot parse ABC"),
    "garbage.musicxml": (b"<score-partwise><part><<<not xml", "cannot parse musicxml"),
    "notes.txt": (b"C D E", "unknown file type '.txt'"),
}


@pytest.fixture()
def hostile_dir(tmp_path):
    for name, (data, _) in HOSTILE.items():
        (tmp_path / name).write_bytes(data)
    (tmp_path / "good.mid").write_bytes(GOOD_MIDI)
    (tmp_path / "good.abc").write_text("X:1\nM:2/4\nL:1/8\nK:G\nGABc|d2B2|]\n")
    return tmp_path


@pytest.mark.parametrize("name", sorted(HOSTILE))
def test_read_raises_one_line_input_error(hostile_dir, name):
    path = hostile_dir / name
    before = path.read_bytes()
    with pytest.raises(InputError) as info:
        read(path)
    message = str(info.value)
    assert message.startswith(str(path))  # ABC errors name the tune: file#X
    assert HOSTILE[name][1] in message
    assert "\n" not in message
    assert path.read_bytes() == before  # inputs are never modified


def test_missing_file_and_folder(tmp_path):
    with pytest.raises(InputError, match="no such file"):
        read(tmp_path / "nope.mid")
    with pytest.raises(InputError, match="no such file"):
        read(tmp_path / "nope.abc")
    with pytest.raises(InputError, match="is a folder"):
        read(tmp_path)


def test_file_size_cap(tmp_path):
    from ostinato.events import ReadLimits

    path = tmp_path / "big.mid"
    path.write_bytes(GOOD_MIDI + bytes(2000))
    with pytest.raises(InputError, match="limit 1000"):
        read(path, limits=ReadLimits(max_file_bytes=1000))


def test_note_cap(tmp_path):
    from ostinato.events import ReadLimits

    path = tmp_path / "many.mid"
    path.write_bytes(_mthd() + _mtrk(NOTE * 50 + EOT))
    with pytest.raises(InputError, match="50 notes"):
        read(path, limits=ReadLimits(max_notes=10))


def test_corrupted_fixture():
    path = fixture_dir("midi_corrupted") / "ValueError_Control168.mid"
    with pytest.raises(InputError, match="control_value=168"):
        read(path)


def test_cli_reports_each_bad_file_in_one_line_and_still_reports_the_good(hostile_dir):
    names = ["good.mid", *sorted(HOSTILE), "missing.mid", "good.abc"]
    result = run_cli("info", "--json", *names, cwd=hostile_dir)
    assert result.returncode == 1
    assert "Traceback" not in result.stderr
    errors = result.stderr.strip().splitlines()
    assert len(errors) == len(HOSTILE) + 1
    for line, name in zip(errors, [*sorted(HOSTILE), "missing.mid"], strict=True):
        assert line.startswith(f"ostinato: {name}"), line
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in records] == ["good.mid", "good.abc#1"]
    assert [r["n_notes"] for r in records] == [1, 6]


def test_cli_debug_shows_the_traceback(hostile_dir):
    result = run_cli("info", "--debug", "random_bytes.mid", cwd=hostile_dir)
    assert result.returncode == 1 and "Traceback" in result.stderr
