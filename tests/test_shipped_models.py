"""The shipped symbolic models (symbolic/pretrained/): what the README's first command runs.

They load without pickle, fit the size limit, carry a model card with the exact training
command and held-out figures that `ostinato evaluate nll` reproduces, and compose valid pieces
with the defaults, offline, the same for the same seed.
"""

import json

import pytest
import soundfile
from conftest import run_cli

from ostinato import events
from ostinato.symbolic.evaluate import check_abc_tune
from ostinato.symbolic.shipped import DEFAULT_FOR_FORMAT, PRETRAINED, shipped_models

MAX_BYTES = 25 * 1024 * 1024
SOURCES = {"folk-abc": "music21:abc-folk", "chorale-midi": "music21:polyphonic"}


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


@pytest.mark.parametrize("name", ["folk-abc", "chorale-midi"])
def test_shipped_model_folder_and_card(name):
    assert name in shipped_models() and name in DEFAULT_FOR_FORMAT.values()
    folder = PRETRAINED / name
    # the controls a plain compose uses; the weights of an infill's quotes (`ostinato train quote`)
    # folk-abc: its memory of its training tunes (`ostinato train memory`)
    own_defaults = ["compose.json", "quote.json"] if name == "chorale-midi" else ["memory.json", "memory.safetensors"]
    assert sorted(p.name for p in folder.iterdir() if p.name != "__pycache__") == sorted([
        "config.json", "metrics.json", "model.safetensors", "model_card.md", "tokenizer.json", *own_defaults])
    assert sum(p.stat().st_size for p in folder.glob("*.safetensors")) <= MAX_BYTES
    card = (folder / "model_card.md").read_text()
    if name == "chorale-midi":
        assert "ostinato train quote --model chorale-midi --data music21:bach " in card
    else:   # its logit temperature (`ostinato train calibrate`), fitted on the held-out split of its data
        calibration = json.loads((folder / "metrics.json").read_text())["calibration"]
        assert calibration["command"].startswith("ostinato train calibrate ") and calibration["command"] in card
        assert calibration["data"] == SOURCES[name] and f"T = {calibration['temperature']:.3f}" in card
        assert calibration["bits_per_char_after"] < calibration["bits_per_char_crossfit"] < calibration[
            "bits_per_char_before"]
        memory = json.loads((folder / "metrics.json").read_text())["memory"]
        assert memory["command"].startswith("ostinato train memory ") and memory["command"] in card
        assert memory["data"] == SOURCES[name]
        assert memory["bits_per_char_memory"] < memory["bits_per_char_crossfit"] < memory["bits_per_char_model"]
        assert memory["bits_per_char_model"] == pytest.approx(calibration["bits_per_char_after"], abs=1e-6)
        assert f"| with the memory | {memory['bits_per_char_memory']:.4f} |" in card
    metrics = json.loads((folder / "metrics.json").read_text())
    assert metrics["command"].startswith("ostinato train symbolic ") and metrics["command"] in card
    assert f"--data {SOURCES[name]}" in metrics["command"]
    unit = "bits_per_char" if name == "folk-abc" else "bits_per_note"
    assert f"| {unit} | {metrics['heldout'][unit]:.4f} |" in card
    assert metrics["heldout"]["bits_per_token"] < metrics["unigram_bits_per_token"]


@pytest.mark.parametrize("name", ["folk-abc", "chorale-midi"])
def test_evaluate_nll_reproduces_the_card(name):
    """The held-out figure of the card, recomputed from the corpus by `evaluate nll` (which reads
    how the model was trained, e.g. `--instruments ensemble`, from its metrics.json)."""
    result = run_cli("evaluate", "nll", "--model", name, SOURCES[name], "--json")
    assert result.returncode == 0, result.stderr
    record = _last_json(result.stdout)
    heldout = json.loads((PRETRAINED / name / "metrics.json").read_text())["heldout"]
    unit = "n_chars" if name == "folk-abc" else "n_notes"
    for key in ("n_pieces", "n_tokens", unit):
        assert record[key] == heldout[key], key
    for key in ("bits_per_token", "bits_per_char" if name == "folk-abc" else "bits_per_note"):
        assert record[key] == pytest.approx(heldout[key], abs=1e-5), key


def test_readme_main_job_composes_and_renders_with_the_defaults(tmp_path):
    piece, audio = tmp_path / "piece.mid", tmp_path / "piece.wav"
    result = run_cli("compose", "-o", str(piece), "--render", str(audio), "-q")
    assert result.returncode == 0, result.stderr
    table = events.read(piece)   # 16 bars of a chorale on chorale-midi's default ensemble (its compose.json)
    assert [t.program for t in table.tracks] == [73, 40, 60, 42]
    meter = table.time_signatures[0]
    bar_ticks = 4 * table.ticks_per_quarter * meter.numerator // meter.denominator
    assert len(table) > 0 and int(table.onset_tick.max()) // bar_ticks == 15
    data, rate = soundfile.read(audio)
    assert rate > 0 and data.shape[1] == 2 and len(data) > rate and abs(data).max() > 0.01
    again = tmp_path / "again.mid"
    assert run_cli("compose", "-o", str(again), "-q").returncode == 0
    assert again.read_bytes() == piece.read_bytes()   # seed 0 by default: the same piece


def test_folk_abc_tunes_are_valid_and_follow_the_controls(tmp_path):
    out = tmp_path / "tunes"
    result = run_cli("compose", "-o", str(out), "--format", "abc", "-n", "4", "--seed", "5", "--meter", "6/8",
                     "--key", "Ador", "--bars", "8", "-q")
    assert result.returncode == 0, result.stderr
    files = sorted(out.iterdir())
    assert len(files) == 4
    for path in files:
        text = path.read_text()
        assert "M:6/8" in text and "L:" in text and "K:Ador" in text
        check = check_abc_tune(text, str(path))
        assert check.valid and check.n_bad_bars == 0 and check.bars_written == 8, (path, check.problem)


def test_chorale_midi_uses_only_the_requested_instruments(tmp_path):
    piece = tmp_path / "quartet.mid"
    result = run_cli("compose", "-o", str(piece), "--instruments", "40,41,42,drums", "--meter", "3/4", "--bars",
                     "4", "--seed", "2", "-q")
    assert result.returncode == 0, result.stderr
    table = events.read(piece)
    assert {"drums" if t.is_drum else t.program for t in table.tracks} <= {40, 41, 42, "drums"}
    assert len(table.tracks) >= 2 and len(table) > 0


@pytest.mark.parametrize("args, code, message", [
    (["--model", "no-such-model"], 1, "no-such-model: no such model"),   # a folder that cannot be read
    (["--format", "abc", "--key", "H"], 2, "key 'H' is not in the ABC vocabulary"),   # usage errors
    (["--format", "abc", "--bars", "0"], 2, "bars must be at least 1, got 0"),
    (["--key", "H"], 2, "key: 'H' is not a key"),
    (["--bars", "0"], 2, "bars: must be a whole number >= 1, got 0"),
    (["--instruments", "0,999"], 2, "unknown instrument '999'"),
])
def test_impossible_requests_are_one_line(tmp_path, args, code, message):
    result = run_cli("compose", "-o", str(tmp_path / "out"), *args)
    assert result.returncode == code, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and message in result.stderr
    assert "Traceback" not in result.stderr and not (tmp_path / "out").exists()


def test_a_bad_primer_is_one_line(tmp_path):
    primer = tmp_path / "broken.mid"
    primer.write_bytes(b"MThd\x00\x00\x00\x06garbage")
    result = run_cli("compose", "--primer", str(primer), "--bars", "4", "-o", str(tmp_path / "more.mid"))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert str(primer) in result.stderr and "Traceback" not in result.stderr
    assert primer.read_bytes() == b"MThd\x00\x00\x00\x06garbage"   # inputs are never modified


def test_a_primer_at_a_tempo_no_piece_is_composed_at_is_one_line(tmp_path):
    """A primer whose tempo is 60,000,000 quarter notes a minute was a usage error about `compose`'s own
    tempo option (exit 2), naming no file: the file is what is wrong."""
    import mido

    midi = mido.MidiFile()
    midi.tracks.append(mido.MidiTrack([mido.MetaMessage("set_tempo", tempo=1, time=0),
                                       mido.Message("note_on", note=60, velocity=80, time=0),
                                       mido.Message("note_off", note=60, time=480)]))
    primer = tmp_path / "fast.mid"
    midi.save(primer)
    result = run_cli("compose", "--primer", str(primer), "--bars", "2", "-o", str(tmp_path / "more.mid"))
    assert result.returncode == 1, result.stderr
    assert result.stderr.strip() == (f"ostinato: {primer}: its tempo is 60,000,000.0 quarter notes per minute: "
                                     "a piece is continued at 10..400")
    assert not (tmp_path / "more.mid").exists()


def test_compose_list_shows_both_cards():
    result = run_cli("compose", "--list")
    assert result.returncode == 0
    assert "folk-abc" in result.stdout and "chorale-midi" in result.stdout
    assert "defaults: --style bach --instruments 73,40,60,42" in result.stdout


@pytest.mark.parametrize("content, message", [
    ('{"style": "bach", "tempo": 90}', 'expected an object with "style" and/or "instruments"'),
    ('{"instruments": "73,999"}', "instruments: unknown instrument '999'"),
    ('{"instruments": [73, 40]}', "instruments: expected a list such as"),
    ("not json", "not JSON"),
])
def test_a_model_folders_defaults_are_checked(tmp_path, content, message):
    import shutil

    folder = tmp_path / "model"
    shutil.copytree(PRETRAINED / "chorale-midi", folder, ignore=shutil.ignore_patterns("__pycache__"))
    (folder / "compose.json").write_text(content)
    result = run_cli("compose", "--model", str(folder), "-o", str(tmp_path / "out.mid"), "--bars", "2")
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1, result.stderr
    assert f"{folder / 'compose.json'}: " in result.stderr and message in result.stderr
    assert not (tmp_path / "out.mid").exists()


def test_flags_override_a_model_folders_defaults(tmp_path):
    from ostinato.symbolic.commands import ComposeRequest, with_defaults

    request = ComposeRequest(outputs=(tmp_path / "a.mid",), fmt="mid", model="chorale-midi", instruments=(0,))
    changed = with_defaults(request, {"style": "bach", "instruments": (73, 40)})
    assert changed.instruments == (0,) and changed.style == "bach"
    assert with_defaults(request, {}) is request
