"""The command behaves as the tools users know: it starts without what it does not need, takes
global options anywhere, refuses bad values before work, shows progress on a terminal only, leaves
nothing behind, and keeps the held-out split through conversions. Real subprocesses throughout."""

from __future__ import annotations

import fcntl
import json
import os
import shutil
import stat
import struct
import subprocess
import sys
import termios

import numpy as np
import pytest
import torch
from conftest import REPO, run_cli

from ostinato import events
from ostinato.events.sources import is_held_out, iter_items

TUNE = "X:1\nM:4/4\nL:1/8\nK:G\nGABc dedB|G4 G4|]\n"
ARPEGGIO = events.NoteTable.from_seconds([0.0, 0.5, 1.0, 1.5], [0.45, 0.95, 1.45, 2.4], [60, 64, 67, 72], [100] * 4)


def _modules_after(args: list[str], cwd, *watched: str) -> dict:
    """Run ``ostinato ARGS`` in a fresh interpreter; which of ``watched`` modules it imported, and its exit code."""
    code = ("import json, sys\nfrom ostinato.cli import main\ncode = main(sys.argv[1:])\n"
            f"print(json.dumps({{'code': code, 'loaded': [m for m in {list(watched)!r} if m in sys.modules]}}))\n")
    done = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True, cwd=cwd, timeout=600,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout.strip().splitlines()[-1])


def _on_a_terminal(args: list[str], cwd) -> tuple[int, str, str]:
    """``ostinato ARGS`` with stderr on a pseudo-terminal (120 columns): exit code, stdout, what the terminal got."""
    import pty

    master, slave = pty.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 120, 0, 0))
    process = subprocess.Popen([sys.executable, "-m", "ostinato", *args], stdout=subprocess.PIPE, stderr=slave,
                               cwd=cwd, env={**os.environ, "OMP_NUM_THREADS": "1"})
    os.close(slave)
    screen = b""
    while True:
        try:
            chunk = os.read(master, 4096)
        except OSError:   # the child closed its end
            break
        if not chunk:
            break
        screen += chunk
    os.close(master)
    out, _ = process.communicate(timeout=600)
    return process.returncode, out.decode(), screen.decode(errors="replace")


# ---------------------------------------------------------------------------- start-up
def test_compose_abc_imports_neither_transformers_nor_music21(tmp_path):
    found = _modules_after(["compose", "-o", "t.abc", "-q"], tmp_path, "transformers", "music21", "torch")
    assert found == {"code": 0, "loaded": ["torch"]}
    assert (tmp_path / "t.abc").read_text().startswith("X:1\n")


def test_render_and_compose_render_import_neither_transformers_nor_music21(tmp_path):
    midi = tmp_path / "arp.mid"
    events.write(ARPEGGIO, midi)
    # nor torch, nor scipy (its fft alone takes 0.28 s to import: the ddsp synth uses ducc0's)
    found = _modules_after(["render", str(midi), "-o", "arp.wav", "-q"], tmp_path, "transformers", "music21",
                           "torch", "scipy")
    assert found == {"code": 0, "loaded": []} and (tmp_path / "arp.wav").is_file()
    found = _modules_after(["compose", "--model", "chorale-midi", "--bars", "2", "-o", "c.mid", "--render", "c.wav",
                            "-q"], tmp_path, "transformers", "music21")
    assert found == {"code": 0, "loaded": []} and (tmp_path / "c.wav").is_file()


def test_inference_model_is_ours_and_gives_transformers_logits():
    from ostinato.symbolic.fast_decode import GPT2, GPT2Decoder
    from ostinato.symbolic.model import load_model_folder
    from ostinato.symbolic.shipped import resolve_model

    for name in ("folk-abc", "chorale-midi"):
        ours, tokenizer, config = load_model_folder(resolve_model(name), inference=True)
        theirs, _, _ = load_model_folder(resolve_model(name))
        assert isinstance(ours, GPT2) and not ours.training
        assert ours.lm_head.weight.data_ptr() == ours.transformer.wte.weight.data_ptr()
        assert sorted(ours.state_dict()) == sorted(theirs.state_dict())
        generator = torch.Generator().manual_seed(0)
        ids = torch.randint(3, len(tokenizer), (3, 40), generator=generator)
        mask = torch.ones(3, 40, dtype=torch.long)
        mask[1, 25:] = 0   # right padding, as evaluate nll pads
        with torch.no_grad():
            expected = theirs(input_ids=ids, attention_mask=mask).logits
            got = ours(input_ids=ids, attention_mask=mask).logits
        keep = mask.bool()
        torch.testing.assert_close(got[keep], expected[keep], atol=1e-4, rtol=1e-4)
        step = GPT2Decoder(ours, batch=3, max_tokens=config.context).step(ids)
        with torch.no_grad():
            unpadded = theirs(input_ids=ids).logits[:, -1]
        torch.testing.assert_close(step, unpadded, atol=1e-4, rtol=1e-4)


def test_model_safetensors_has_the_mode_of_other_outputs(tmp_path):
    from ostinato.symbolic.model import PRESETS, build_model, save_model_folder
    from ostinato.symbolic.shipped import resolve_model
    from ostinato.symbolic.tokenizers import load_tokenizer

    tokenizer = load_tokenizer(resolve_model("folk-abc") / "tokenizer.json")
    save_model_folder(build_model(PRESETS["tiny"], len(tokenizer)), tokenizer, tmp_path / "m")
    mask = os.umask(0)
    os.umask(mask)
    modes = {p.name: stat.S_IMODE(p.stat().st_mode) for p in (tmp_path / "m").iterdir()}
    assert modes == dict.fromkeys(["config.json", "model.safetensors", "tokenizer.json"], 0o666 & ~mask)


# ---------------------------------------------------------------------------- options
@pytest.mark.parametrize("args", [["--debug", "info", "missing.mid"], ["info", "missing.mid", "--debug"],
                                  ["info", "--debug", "missing.mid"]])
def test_global_options_work_before_or_after_the_command(tmp_path, args):
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" in result.stderr
    assert result.stderr.strip().endswith("ostinato: missing.mid: no such file")


def test_quiet_before_the_command_silences_it(tmp_path):
    (tmp_path / "t.abc").write_text(TUNE)
    loud = run_cli("plot", "t.abc", "-o", "a.png", cwd=tmp_path)
    quiet = run_cli("-q", "plot", "t.abc", "-o", "b.png", cwd=tmp_path)
    assert loud.returncode == quiet.returncode == 0
    assert loud.stderr.strip() == "ostinato: wrote a.png" or "wrote a.png" in loud.stderr
    assert quiet.stderr == ""


def test_bare_command_lists_the_commands():
    result = run_cli()
    assert result.returncode == 2
    for command in ("info", "compose", "render", "convert", "train", "evaluate", "plot"):
        assert f"\n    {command} " in result.stderr
    assert result.stderr.rstrip().endswith("ostinato: error: the following arguments are required: COMMAND")
    train = run_cli("train")
    assert train.returncode == 2 and "symbolic" in train.stderr and "renderer" in train.stderr


def test_both_trainers_take_both_spellings_of_the_learning_rate():
    from ostinato.cli import build_parser

    parser = build_parser()
    for spelling in ("--learning-rate", "--lr"):
        args = parser.parse_args(["train", "symbolic", "--data", "x", "--out", "y", spelling, "1e-3"])
        assert args.lr == 1e-3
        args = parser.parse_args(["train", "renderer", "--synthesize-from", "x", "--out", "y", spelling, "2e-4"])
        assert args.learning_rate == 2e-4


def test_an_unknown_audio_extension_is_a_usage_error(tmp_path):
    midi = tmp_path / "song.mid"
    events.write(ARPEGGIO, midi)
    result = run_cli("render", str(midi), "-o", "x.mp3", cwd=tmp_path)
    assert result.returncode == 2 and "unknown audio extension '.mp3'" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "x.mp3").exists()


@pytest.mark.parametrize("args, message", [
    (["--meter", "7/9", "-o", "t.abc"], "meter '7/9' is not in the ABC vocabulary"),
    (["--key", "Hmaj", "-o", "t.abc"], "key 'Hmaj' is not in the ABC vocabulary"),
    (["--instruments", "banjo2", "-o", "t.mid"], "unknown instrument 'banjo2'"),
])
def test_bad_controls_exit_2_before_the_model_loads(tmp_path, args, message):
    code = ("import json, sys\nfrom ostinato.cli import main\ncode = main(sys.argv[1:])\n"
            "print(json.dumps([code, 'safetensors.torch' in sys.modules,\n"
            "                  'ostinato.symbolic.fast_decode' in sys.modules]))")
    done = subprocess.run([sys.executable, "-c", code, "compose", *args], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600)
    assert json.loads(done.stdout.strip().splitlines()[-1]) == [2, False, False]   # no weights were read
    assert message in done.stderr and len(done.stderr.strip().splitlines()) == 1
    assert not any(tmp_path.iterdir())


# ---------------------------------------------------------------------------- progress and summaries
def _not_held_out_tune(tmp_path):
    folder = tmp_path / "tunes"
    folder.mkdir()
    for n in range(100):   # a name whose key is in the training split (95% are)
        path = folder / f"tune{n}.abc"
        path.write_text(TUNE)
        if not is_held_out(f"tunes/{path.name}#1"):
            return path
        path.unlink()
    raise AssertionError("no training-split name found")


def test_nll_on_a_terminal_shows_progress_with_totals_and_is_quiet_otherwise(tmp_path):
    args = ["evaluate", "nll", "--model", "chorale-midi", "music21:bach/bwv340", "--all", "--json"]
    code, out, screen = _on_a_terminal(args, tmp_path)
    assert code == 0
    assert "tokenize: 100%" in screen and "1/1 [" in screen
    assert "score: 100%" in screen and "2/2 [" in screen
    record = json.loads(out.strip().splitlines()[-1])
    assert record["n_pieces"] == 1 and record["n_sequences"] == 2   # one chorale (1,810 tokens), two windows
    code, _, screen = _on_a_terminal([*args, "-q"], tmp_path)
    assert code == 0 and "%" not in screen
    piped = run_cli(*args, cwd=tmp_path)   # stderr is a pipe: no bar
    assert piped.returncode == 0 and piped.stderr == ""


def test_evaluate_render_on_a_terminal_shows_progress(tmp_path):
    for name in ("a.mid", "b.mid"):
        events.write(ARPEGGIO, tmp_path / name)
    code, out, screen = _on_a_terminal(["evaluate", "render", "--engine", "soundfont", "--reference", "soundfont",
                                        "a.mid", "b.mid", "--no-f1", "--sample-rate", "16000"], tmp_path)
    if "SoundFont not found" in screen or "libfluidsynth" in screen:
        pytest.skip("FluidSynth or its SoundFont is not installed")
    assert code == 0, screen
    assert "evaluate render: 100%" in screen and "2/2 [" in screen
    assert "n_pieces" in out


def test_nll_says_once_that_nothing_is_held_out(tmp_path):
    path = _not_held_out_tune(tmp_path)
    result = run_cli("evaluate", "nll", "--model", "folk-abc", str(path))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"ostinato: {path}: none of its pieces is held out (about 5% are); pass --all to score every piece"]


def test_convert_on_a_terminal_shows_progress_and_leaves_no_lock(tmp_path):
    source = tmp_path / "src"
    source.mkdir()
    for n in range(3):
        (source / f"t{n}.abc").write_text(TUNE.replace("GABc", "GAB" + "cde"[n]))
    code, out, screen = _on_a_terminal(["convert", str(source), "--to", "mid", "-o", str(tmp_path / "out")], tmp_path)
    assert code == 0 and "100%" in screen and "3/3 [" in screen
    assert out.strip().splitlines()[-1].startswith("converted 3/3, failed 0, skipped 0")
    assert sorted(p.name for p in (tmp_path / "out").iterdir()) == ["manifest.jsonl", "src"]   # no lock left


def test_render_of_a_folder_ends_with_a_summary(tmp_path):
    folder = tmp_path / "midi"
    folder.mkdir()
    events.write(ARPEGGIO, folder / "a.mid")
    events.write(ARPEGGIO, folder / "b.mid")
    (folder / "c.mid").write_bytes(b"not midi")
    result = run_cli("render", str(folder), "-o", str(tmp_path / "audio"), "--engine", "soundfont", "-r", "16000")
    if "SoundFont not found" in result.stderr or "libfluidsynth" in result.stderr:
        pytest.skip("FluidSynth or its SoundFont is not installed")
    assert result.returncode == 1
    assert result.stdout.strip().splitlines()[-1] == "rendered 2/3, failed 1, skipped 0"
    again = run_cli("render", str(folder / "a.mid"), str(folder / "b.mid"), "-o", str(tmp_path / "audio" / "midi"),
                    "--engine", "soundfont", "-r", "16000")
    assert again.stdout.strip() == "rendered 0/2, failed 0, skipped 2"


# ---------------------------------------------------------------------------- held-out split through conversions
def test_held_out_pieces_stay_held_out_through_conversions(tmp_path):
    first = run_cli("convert", "music21:bach", "--split", "test", "--to", "mid", "-o", "out", "-q", cwd=tmp_path)
    assert first.returncode == 0, first.stderr
    manifest = [json.loads(line) for line in (tmp_path / "out" / "manifest.jsonl").read_text().splitlines()]
    keys = sorted(record["key"] for record in manifest)
    assert len(keys) >= 10 and all(is_held_out(key) for key in keys)
    # read again as a source, every converted file keeps its piece's key (and so its split)
    assert sorted(item.key for item in iter_items(tmp_path / "out", split="test")) == keys
    assert list(iter_items(tmp_path / "out" / "bach", split="train")) == []
    second = run_cli("convert", "out", "--to", "tokens", "--tokenizer", "remi", "-o", "shards", "-q", cwd=tmp_path)
    assert second.returncode == 0, second.stderr
    index = [json.loads(line) for line in (tmp_path / "shards" / "index.jsonl").read_text().splitlines()]
    assert sorted({row["key"] for row in index}) == keys and {row["split"] for row in index} == {"test"}
    assert not list((tmp_path / "shards").glob("train-*.bin"))
    # a copy of one converted file elsewhere is keyed by its new place (no manifest lists it there)
    copy = tmp_path / "elsewhere" / "x.mid"
    copy.parent.mkdir()
    shutil.copy(tmp_path / "out" / manifest[0]["outputs"][0], copy)
    assert [item.key for item in iter_items(copy)] == ["elsewhere/x.mid"]


# ---------------------------------------------------------------------------- note F1 without resampy
def _fake_broken_resampy(tmp_path):
    fake = tmp_path / "site" / "resampy"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("import pkg_resources_that_setuptools_80_removed\n")
    return {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(REPO)])}


def test_basic_pitch_loads_when_resampy_cannot_be_imported(tmp_path):
    for extra in ("onnxruntime", "mir_eval", "librosa", "basic_pitch"):
        pytest.importorskip(extra)
    code = ("import sys, numpy as np\nfrom ostinato.render.evaluate import basic_pitch\nbasic_pitch()\n"
            "import resampy, basic_pitch.note_creation\n"
            "x = np.sin(np.arange(44100) * 2 * np.pi * 440 / 44100)\n"
            "y = resampy.resample(x, 44100, 22050)\n"
            "print(getattr(resampy, '__ostinato_stand_in__', False), y.shape[0])")
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path, timeout=300,
                          env=_fake_broken_resampy(tmp_path))
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["True", "22050"]


def test_resampling_stand_in_matches_a_band_limited_sine():
    from ostinato.render.evaluate import resample

    t = np.arange(44100) / 44100
    y = resample(np.sin(2 * np.pi * 440 * t), 44100, 22050)
    expected = np.sin(2 * np.pi * 440 * np.arange(22050) / 22050)
    assert y.shape == (22050,)
    np.testing.assert_allclose(y[500:-500], expected[500:-500], atol=1e-3)


def test_note_f1_through_the_command_without_resampy(tmp_path):
    for extra in ("onnxruntime", "mir_eval", "librosa", "basic_pitch"):
        pytest.importorskip(extra)
    midi = tmp_path / "arp.mid"
    events.write(ARPEGGIO, midi)
    done = subprocess.run([sys.executable, "-m", "ostinato", "evaluate", "render", "--engine", "soundfont",
                           "--reference", "soundfont", str(midi), "--json"], capture_output=True, text=True,
                          cwd=tmp_path, timeout=600, env=_fake_broken_resampy(tmp_path))
    if "SoundFont not found" in done.stderr or "libfluidsynth" in done.stderr:
        pytest.skip("FluidSynth or its SoundFont is not installed")
    assert done.returncode == 0, done.stderr
    record = json.loads(done.stdout.strip().splitlines()[-1])
    assert record["note_f1"] >= 0.75


def test_a_missing_eval_dependency_is_named(tmp_path):
    fake = tmp_path / "site" / "mir_eval"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("import a_module_that_is_not_there\n")
    midi = tmp_path / "arp.mid"
    events.write(ARPEGGIO, midi)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([str(tmp_path / "site"), str(REPO)])}
    done = subprocess.run([sys.executable, "-m", "ostinato", "evaluate", "render", "--engine", "soundfont",
                           "--reference", "soundfont", str(midi)], capture_output=True, text=True, cwd=tmp_path,
                          timeout=300, env=env)
    assert done.returncode == 1
    assert done.stderr.strip().endswith("(cannot import mir_eval: No module named 'a_module_that_is_not_there')")


# ---------------------------------------------------------------------------- the README tour's sample files
def test_the_tour_sample_files_ship_and_read():
    examples = REPO / "examples"
    result = run_cli("info", "--json", "song.mid", "tunes.abc", "score.mxl", cwd=examples)
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in records] == ["song.mid", "tunes.abc#1", "tunes.abc#2", "tunes.abc#3", "score.mxl"]
    assert records[0]["n_tracks"] == 2 and records[0]["duration_s"] == 10.0 and records[0]["tempo_bpm"] == 96.0
    assert all((examples / name).stat().st_size < 4096 for name in ("song.mid", "tunes.abc", "score.mxl"))
