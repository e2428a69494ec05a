"""``ostinato render`` for real: fixtures, one file, folders, formats, skip/overwrite, gain, errors."""

from __future__ import annotations

import numpy as np
import pytest
import soundfile
from conftest import fixture_dir, run_cli

from ostinato import events
from ostinato.events import NoteTable, Track


@pytest.fixture
def midi_dir(tmp_path):
    folder = tmp_path / "in" / "sub"
    for i, program in enumerate([0, 40]):
        table = NoteTable.from_seconds([0.0, 0.5], [0.5, 1.0], [60 + i, 64 + i], [100, 90], track=[0, 0],
                                       tracks=[Track("p", program)])
        events.write_midi(table, folder / f"t{i}.mid")
    return tmp_path / "in"


def test_fixtures_every_good_file_and_one_error(tmp_path):
    good = fixture_dir("midi_one_track")
    bad = fixture_dir("midi_corrupted")
    out = tmp_path / "out"
    result = run_cli("render", str(good), str(bad), "-o", str(out), "--engine", "soundfont", "-r", "16000",
                     "-j", "2", "-q")
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith(f"ostinato: {bad / 'ValueError_Control168.mid'}: invalid MIDI")
    expected = sorted(p.with_suffix(".wav").name for p in good.glob("*.mid"))
    written = sorted(p.name for p in (out / good.name).iterdir())
    assert written == expected
    for name in expected:
        info = soundfile.info(out / good.name / name)
        assert info.samplerate == 16000 and info.channels == 2 and info.frames >= 16000


def test_fixture_with_ddsp_default_engine(tmp_path):
    good = fixture_dir("midi_one_track")
    out = tmp_path / "pop.flac"
    result = run_cli("render", str(good / "POP909_191.mid"), "-o", str(out), "-r", "16000")
    assert result.returncode == 0, result.stderr   # the shipped ddsp model is the default
    table = events.read(good / "POP909_191.mid")
    assert soundfile.info(out).frames == int(np.ceil((table.duration_s + 1.0) * 16000))


def test_one_file_formats_skip_overwrite_gain(tmp_path, midi_dir):
    source = midi_dir / "sub" / "t0.mid"
    wav = tmp_path / "one.wav"
    common = ("--engine", "soundfont", "-r", "22050")
    assert run_cli("render", str(source), "-o", str(wav), *common).returncode == 0
    full, rate = soundfile.read(wav)
    assert rate == 22050 and full.shape == (int(np.ceil(2.0 * 22050)), 2)
    skipped = run_cli("render", str(source), "-o", str(wav), *common, "-g", "0.5")
    assert skipped.returncode == 0 and "exists, skipped" in skipped.stderr
    assert np.array_equal(soundfile.read(wav)[0], full)
    assert run_cli("render", str(source), "-o", str(wav), *common, "-g", "0.5", "--overwrite").returncode == 0
    half = soundfile.read(wav)[0]
    np.testing.assert_allclose(half, full / 2, atol=2 / 32768)
    ogg = run_cli("render", str(source), "-o", str(tmp_path / "x"), *common, "--format", "ogg")
    assert ogg.returncode == 0
    assert soundfile.info(tmp_path / "x" / "t0.ogg").format == "OGG"  # no audio suffix: a folder
    unknown = run_cli("render", str(source), "-o", str(tmp_path / "x.mp3"), *common)   # not a folder either
    assert unknown.returncode == 2 and "unknown audio extension '.mp3'" in unknown.stderr
    assert not (tmp_path / "x.mp3").exists()


def test_folder_mirrors_names(tmp_path, midi_dir):
    out = tmp_path / "out"
    result = run_cli("render", str(midi_dir), "-o", str(out), "--engine", "soundfont", "--format", "flac",
                     "-r", "16000", "-q")
    assert result.returncode == 0, result.stderr
    assert sorted(str(p.relative_to(out)) for p in out.rglob("*.flac")) == ["in/sub/t0.flac", "in/sub/t1.flac"]
    globbed = run_cli("render", str(midi_dir / "sub" / "*.mid"), "-o", str(tmp_path / "g"), "--engine", "soundfont",
                      "-r", "16000", "-q")
    assert globbed.returncode == 0 and sorted(p.name for p in (tmp_path / "g").iterdir()) == ["t0.wav", "t1.wav"]


def test_usage_errors(tmp_path, midi_dir):
    source = str(midi_dir / "sub" / "t0.mid")
    assert run_cli("render", source, "-o", str(tmp_path / "a.wav"), "--engine", "nope").returncode == 2
    assert run_cli("render", source, "-o", str(tmp_path / "a.wav"), "--soundfont", "x.sf2").returncode == 2
    assert run_cli("render", source, "-o", str(tmp_path / "a.wav"), "-r", "0").returncode == 2
    missing = run_cli("render", str(tmp_path / "missing.mid"), "-o", str(tmp_path / "a.wav"), "--engine", "soundfont")
    assert missing.returncode == 1 and "Traceback" not in missing.stderr
    assert not (tmp_path / "a.wav").exists()
    bad_sf = run_cli("render", source, "-o", str(tmp_path / "a.wav"), "--engine", "soundfont", "--soundfont",
                     str(tmp_path / "none.sf2"))
    assert bad_sf.returncode == 1 and "SoundFont not found" in bad_sf.stderr


def test_a_file_that_is_no_soundfont_is_one_line(tmp_path, midi_dir):
    """FluidSynth refuses it, and libinstpatch (GLib) also wrote "** CRITICAL **: ipatch_container_init_iter:
    assertion ... failed" to stderr: now our line is all there is."""
    source = str(midi_dir / "sub" / "t0.mid")
    result = run_cli("render", source, "-o", str(tmp_path / "a.wav"), "--engine", "soundfont", "--soundfont", source)
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [f"ostinato: {source}: FluidSynth could not load this SoundFont"]
    assert not (tmp_path / "a.wav").exists()


def test_render_piece_example(tmp_path):
    import subprocess
    import sys

    from conftest import REPO

    from ostinato.render.ddsp.config import DDSPConfig
    from ostinato.render.ddsp.model import DDSPModel
    from ostinato.render.model_folder import save_model

    save_model(DDSPModel(DDSPConfig(n_harmonics=8, hidden_size=16, trained_instruments=[0, 40])), tmp_path / "m")
    result = subprocess.run([sys.executable, str(REPO / "examples" / "render_piece.py"), "-o", str(tmp_path / "out"),
                             "-r", "16000", "--model", str(tmp_path / "m")],
                            capture_output=True, text=True, timeout=600, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "STFT distance ddsp -> soundfont" in result.stdout
    names = sorted(p.name for p in (tmp_path / "out").iterdir())
    assert names == ["bach_bwv66_ddsp.flac", "bach_bwv66_soundfont.flac"]
    assert soundfile.info(tmp_path / "out" / names[0]).frames == soundfile.info(tmp_path / "out" / names[1]).frames


def test_requests_are_checked_before_any_model_loads(tmp_path):
    """The commands' request dataclasses take typed values (no argparse) and reject bad ones as usage errors."""
    from ostinato.events.errors import UsageError
    from ostinato.render.evaluate import EvaluateRenderRequest
    from ostinato.render.paired import PairSource
    from ostinato.render.render_command import RenderRequest
    from ostinato.render.train_command import TrainRendererRequest
    from ostinato.render.training_common import TrainConfig

    with pytest.raises(UsageError, match="render: --temperature is for the wavenet engine"):
        RenderRequest(inputs=("a.mid",), output="a.wav", engine="ddsp", temperature=0.5)
    with pytest.raises(UsageError, match="unknown engine 'nope'"):
        RenderRequest(inputs=("a.mid",), output="a.wav", engine="nope")
    data = PairSource(synthesize_from=("a.mid",))
    with pytest.raises(UsageError, match="--config and --distribution are for --engine wavenet"):
        TrainRendererRequest(engine="ddsp", data=data, out=tmp_path, train=TrainConfig(), config="tiny")
    with pytest.raises(UsageError, match=r"DDSPConfig\.n_harmonics is out of range"):
        TrainRendererRequest(engine="ddsp", data=data, out=tmp_path, train=TrainConfig(), harmonics=0)
    with pytest.raises(ValueError, match="one of a recorded data set folder"):
        PairSource()
    with pytest.raises(UsageError, match="evaluate render: unknown engine 'nope'"):
        EvaluateRenderRequest(files=("a.mid",), engine="nope", reference="soundfont")
    with pytest.raises(UsageError, match="--reference must be"):
        EvaluateRenderRequest(files=("a.mid",), engine="soundfont", reference=str(tmp_path / "missing"))


def test_render_files_is_a_library_call(tmp_path, midi_dir):
    from ostinato.render.render_command import RenderRequest, render_files

    request = RenderRequest(inputs=(str(midi_dir),), output=str(tmp_path / "out"), engine="soundfont",
                            sample_rate_hz=16000, format="flac", quiet=True)
    assert render_files(request) == 0
    assert sorted(p.relative_to(tmp_path / "out").as_posix() for p in (tmp_path / "out").rglob("*.flac")) == [
        "in/sub/t0.flac", "in/sub/t1.flac"]
