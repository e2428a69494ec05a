"""The example scripts run as a user would run them."""

import subprocess
import sys

from conftest import REPO

from events import read


def test_load_and_write_example(tmp_path):
    result = subprocess.run([sys.executable, str(REPO / "examples" / "load_and_write.py"), "-o", str(tmp_path)],
                            capture_output=True, text=True, timeout=300, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "NoteTable(n_notes=163, n_tracks=4" in result.stdout
    original = read("music21:bach/bwv66.6")
    midi = read(tmp_path / "bach_bwv66.mid")
    assert midi.notes_equal(original)
    abc = read(tmp_path / "bach_bwv66.abc")
    assert abc.pitch.tolist() == original.pitch.tolist() and abc.n_tracks == 4
