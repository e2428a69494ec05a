"""The example scripts run as a user would run them."""

import os
import subprocess
import sys

from conftest import REPO, fixture_dir

from ostinato.events import read
from ostinato.symbolic.model import load_model_folder


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


def _recipe(name: str, tmp_path, **env):
    config = tmp_path / "tiny.json"
    config.write_text('{"n_layers": 1, "d_model": 32, "n_heads": 2, "context": 64, "dropout": 0.0}')
    variables = {**os.environ, "OUT": str(tmp_path / "model"), "CONFIG": str(config), "STEPS": "4", "EVAL": "2", **env}
    return subprocess.run(["bash", str(REPO / "examples" / name)], capture_output=True, text=True, timeout=600,
                          cwd=tmp_path, env=variables)


def test_folk_abc_recipe_trains_a_loadable_model(tmp_path):
    result = _recipe("train_folk_abc.sh", tmp_path, DATA="music21:essenFolksong/han1.abc")
    assert result.returncode == 0, result.stderr
    _, tokenizer, config = load_model_folder(tmp_path / "model")
    assert tokenizer.kind == "abc" and config.context == 64
    assert "bits_per_char" in (tmp_path / "model" / "model_card.md").read_text()


def test_multitrack_midi_recipe_trains_a_loadable_model(tmp_path):
    midi = fixture_dir("midi_one_track")
    result = _recipe("train_multitrack_midi.sh", tmp_path, DATA=str(midi), INSTRUMENTS="keep", WORKERS="1")
    assert result.returncode == 0, result.stderr
    _, tokenizer, _ = load_model_folder(tmp_path / "model")
    assert tokenizer.kind == "remi" and tokenizer.styles == ("midi_one_track",)


def test_wavenet_recipe_trains_a_model_the_engine_loads(tmp_path):
    midi = fixture_dir("midi_one_track")
    result = _recipe("train_wavenet.sh", tmp_path, CONFIG="tiny", STEPS="2", EVAL="1", PIECES="20",
                     SECONDS_PER_PIECE="2", BATCH="2", DEVICE="cpu", DATA=str(midi))
    assert result.returncode == 0, result.stderr
    assert "held-out loss" in result.stderr
    from ostinato.render import get_renderer

    with get_renderer("wavenet", model=str(tmp_path / "model")) as renderer:
        assert renderer.config.sample_rate_hz == 8000   # the tiny preset
