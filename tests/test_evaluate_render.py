"""`ostinato evaluate render`: FluidSynth against itself is distance 0; note F1 by hand through
mir_eval; a transcription of rendered sines finds their notes; a clear message without [eval]."""

import json
import os
import subprocess
import sys

import numpy as np
import pytest
from conftest import REPO, run_cli

from ostinato import events
from ostinato.events import NoteTable
from ostinato.render.evaluate import EXTRA_MISSING, note_f1, realtime_factor

ARPEGGIO = NoteTable.from_seconds([0.0, 0.5, 1.0, 1.5], [0.45, 0.95, 1.45, 2.4], [60, 64, 67, 72], [100] * 4)


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_fluidsynth_against_itself_is_distance_zero(tmp_path):
    midi = tmp_path / "arp.mid"
    events.write(ARPEGGIO, midi)
    result = run_cli("evaluate", "render", "--engine", "soundfont", "--reference", "soundfont", str(midi),
                     "--no-f1", "--json")
    assert result.returncode == 0, result.stderr
    record = _last_json(result.stdout)
    assert record["stft_distance"] == 0.0 and record["n_pieces"] == 1 and record["note_f1"] is None
    assert record["realtime_factor"] > 0
    assert "stft_distance" in result.stdout.splitlines()[0] or "stft_distance    0.0000" in result.stdout


def test_reference_folder_and_a_batch_that_survives_a_bad_file(tmp_path):
    import soundfile

    from ostinato.render import get_renderer

    midi = tmp_path / "arp.mid"
    events.write(ARPEGGIO, midi)
    silent = tmp_path / "refs"
    silent.mkdir()
    with get_renderer("soundfont") as renderer:
        audio = renderer.render(events.read(midi), 22050)
    soundfile.write(silent / "arp.wav", audio.T, 22050, subtype="FLOAT")   # the same render, stored exactly
    bad = tmp_path / "bad.mid"
    bad.write_bytes(b"not midi")
    result = run_cli("evaluate", "render", "--engine", "soundfont", "--reference", str(silent), str(bad), str(midi),
                     "--sample-rate", "22050", "--no-f1", "--json")
    assert result.returncode == 1   # one file failed, the other was measured
    assert "bad.mid" in result.stderr and len(result.stderr.strip().splitlines()) == 1
    record = _last_json(result.stdout)
    assert record["n_pieces"] == 1 and record["n_failed"] == 1 and record["stft_distance"] == 0.0


def test_note_f1_by_hand():
    pytest.importorskip("mir_eval")
    reference = ([[0.0, 1.0], [1.0, 2.0]], [60, 64])
    assert note_f1(reference, reference) == 1.0
    # one onset 20 ms late (within 50 ms), one 200 ms late: precision = recall = 1/2
    assert note_f1(reference, ([[0.02, 1.0], [1.2, 2.0]], [60, 64])) == 0.5
    # right onsets, a wrong pitch and an extra note: 1 of 3 estimated, 1 of 2 reference: F1 = 2/5
    assert note_f1(reference, ([[0.0, 1.0], [1.0, 2.0], [1.5, 1.8]], [60, 65, 70])) == pytest.approx(0.4)
    # offsets: within 20% of the reference note's length (or 50 ms) only with_offsets
    late_end = ([[0.0, 1.5], [1.0, 2.05]], [60, 64])
    assert note_f1(reference, late_end) == 1.0 and note_f1(reference, late_end, with_offsets=True) == 0.5
    assert note_f1(ARPEGGIO, ARPEGGIO, with_offsets=True) == 1.0
    assert realtime_factor(44100 * 10, 44100, 2.0) == 5.0


def test_a_transcription_of_two_sines_finds_their_notes():
    pytest.importorskip("onnxruntime")
    pytest.importorskip("mir_eval")
    pytest.importorskip("librosa")
    from ostinato.render.evaluate import transcribe

    rate = 22050
    t = np.arange(int(3.5 * rate)) / rate
    audio = np.zeros_like(t)
    notes = NoteTable.from_seconds([0.5, 2.0], [1.5, 3.0], [69, 76], [100, 100])   # A4, E5
    for onset, offset, pitch in zip(notes.onset_s, notes.offset_s, notes.pitch, strict=True):
        on = (t >= onset) & (t < offset)
        audio[on] += 0.3 * np.sin(2 * np.pi * 440.0 * 2 ** ((int(pitch) - 69) / 12) * t[on])
    intervals, pitches = transcribe(audio.astype(np.float32), rate)
    assert pitches.tolist() == [69, 76]
    assert np.all(np.abs(intervals[:, 0] - notes.onset_s) < 0.05)
    assert note_f1(notes, (intervals, pitches)) == 1.0


def test_note_f1_of_fluidsynth_through_the_command(tmp_path):
    for extra in ("onnxruntime", "mir_eval", "librosa", "basic_pitch"):
        pytest.importorskip(extra)
    midi = tmp_path / "arp.mid"
    events.write(ARPEGGIO, midi)
    result = run_cli("evaluate", "render", "--engine", "soundfont", "--reference", "soundfont", str(midi), "--json")
    assert result.returncode == 0, result.stderr
    record = _last_json(result.stdout)
    print(record)
    assert record["stft_distance"] == 0.0
    assert record["note_f1"] >= 0.75   # a piano arpeggio: basic-pitch finds (nearly) every onset
    assert 0.0 <= record["note_f1_offset"] <= record["note_f1"]
    assert not any(line.startswith("Predicting") for line in result.stdout.splitlines())


def test_without_the_eval_extra_the_message_says_how_to_install_it(tmp_path):
    fake = tmp_path / "site" / "basic_pitch"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('no basic_pitch here')\n")
    midi = tmp_path / "arp.mid"
    events.write(ARPEGGIO, midi)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(REPO)])}
    result = subprocess.run([sys.executable, "-m", "ostinato", "evaluate", "render",
                             "--engine", "soundfont", "--reference", "soundfont", str(midi)],
                            capture_output=True, text=True, cwd=REPO, env=env, timeout=300)
    assert result.returncode == 1
    assert result.stderr.strip() == (f"ostinato: evaluate render: {EXTRA_MISSING} "
                                     f"(cannot import basic_pitch: no basic_pitch here)")   # the cause, not hidden
