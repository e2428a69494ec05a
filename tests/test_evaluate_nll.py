"""`ostinato evaluate nll`, run for real on a model trained in the test: it reproduces the model
card's held-out figure exactly, and lists the pieces the tokenizer cannot accept."""

import json
from pathlib import Path

import pytest
from conftest import run_cli

TUNES = "music21:essenFolksong/han1.abc"   # 554 German folk tunes, 26 of them held out


@pytest.fixture(scope="module")
def model(tmp_path_factory) -> Path:
    """A tiny GPT-2 trained for 20 steps on the folk tunes (about 20 s on 2 cores)."""
    root = tmp_path_factory.mktemp("nll")
    config = root / "tiny.json"
    config.write_text(json.dumps({"architecture": "gpt2", "n_layers": 2, "d_model": 32, "n_heads": 2,
                                  "context": 128, "dropout": 0.0}))
    out = root / "model"
    result = run_cli("train", "symbolic", "--data", TUNES, "--tokenizer", "abc", "--out", str(out),
                     "--config", str(config), "--steps", "20", "--batch-size", "8", "--lr", "3e-3",
                     "--eval-every", "20", "--checkpoint-every", "20", "-q")
    assert result.returncode == 0, result.stderr
    return out


def _last_json(stdout: str) -> dict:
    return json.loads(stdout.strip().splitlines()[-1])


def test_nll_on_the_held_out_pieces_reproduces_the_model_card(model):
    result = run_cli("evaluate", "nll", "--model", str(model), TUNES, "--json")
    assert result.returncode == 0, result.stderr
    record = _last_json(result.stdout)
    heldout = json.loads((model / "metrics.json").read_text())["heldout"]
    assert heldout["n_pieces"] == 26
    for key, value in heldout.items():   # bits_per_token, bits_per_char, n_tokens, n_pieces, n_chars
        assert record[key] == value, key
    assert record["split"] == "test" and record["n_failed"] == 0 and record["failed"] == []
    assert f"| bits_per_char | {record['bits_per_char']:.4f} |" in (model / "model_card.md").read_text()
    # the readable table comes first, with the same figure
    assert f"bits_per_char   {record['bits_per_char']:.4f}" in result.stdout


GOOD = "X:1\nT:one\nM:2/4\nL:1/8\nK:G\nGA Bc|d2 B2|]\n\nX:2\nT:two\nM:3/4\nL:1/8\nK:D\nD2 F2 A2|d6|]\n"
TWO_VOICES = "X:1\nM:2/4\nL:1/8\nK:C\nV:1\nCD EF|G4|]\nV:2\nC,4|G,4|]\n"


def test_pieces_the_tokenizer_cannot_accept_are_counted_and_listed(model, tmp_path):
    folder = tmp_path / "mine"
    folder.mkdir()
    (folder / "good.abc").write_text(GOOD)
    (folder / "voices.abc").write_text(TWO_VOICES)
    (folder / "notes.mid").write_bytes(b"MThd garbage")
    before = {p.name: p.read_bytes() for p in folder.iterdir()}
    result = run_cli("evaluate", "nll", "--model", str(model), str(folder), "--all", "--json")
    assert result.returncode == 0, result.stderr
    record = _last_json(result.stdout)
    assert record["n_pieces"] == 2 and record["split"] == "all"
    assert record["n_chars"] == len("X:1\nM:2/4\nL:1/8\nK:G\nGABc|d2B2|]\n") + len(
        "X:1\nM:3/4\nL:1/8\nK:D\nD2F2A2|d6|]\n")   # the normalised texts (no T:, no spaces)
    assert record["n_failed"] == 2
    assert any("voices.abc" in f and "several voices" in f for f in record["failed"])
    assert any("notes.mid" in f and "not an ABC file" in f for f in record["failed"])
    assert result.stderr.count("ostinato: not scored: ") == 2
    assert {p.name: p.read_bytes() for p in folder.iterdir()} == before   # inputs untouched


def test_a_source_without_held_out_pieces_says_so(model, tmp_path):
    path = tmp_path / "tune.abc"
    path.write_text(GOOD.split("\n\n")[0] + "\n")
    result = run_cli("evaluate", "nll", "--model", str(model), str(path))
    if result.returncode == 0:   # this key happened to be held out
        pytest.skip("the tune's key is held out")
    assert result.returncode == 1
    assert "--all" in result.stderr and "Traceback" not in result.stderr


def test_an_unknown_model_is_one_line():
    result = run_cli("evaluate", "nll", "--model", "no-such-model", TUNES)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("ostinato: no-such-model: no such model")
    assert len(result.stderr.strip().splitlines()) == 1


def test_evaluate_samples_from_the_model_meets_its_controls(model, tmp_path):
    reference = tmp_path / "ref"
    reference.mkdir()
    (reference / "tunes.abc").write_text(GOOD)
    keep = tmp_path / "kept"
    result = run_cli("evaluate", "samples", "--model", str(model), "-n", "3", "--key", "G", "--meter", "3/4",
                     "--bars", "4", "--max-tokens", "100", "--reference", str(reference), "--keep", str(keep),
                     "--json")
    assert result.returncode == 0, result.stderr
    record = _last_json(result.stdout)
    # the grammar makes every tune valid with bars of the meter, in the key and meter asked for
    assert record["n_pieces"] == 3 and record["valid_fraction"] == 1.0 and record["bad_bar_fraction"] == 0.0
    assert record["adherence"] == {"key": 1.0, "meter": 1.0, "bars": 1.0}
    assert sorted(p.name for p in keep.iterdir()) == ["001.abc", "002.abc", "003.abc"]
    assert all(p.read_text().startswith("X:1\nM:3/4\nL:") for p in keep.iterdir())
    assert record["n_training_pieces"] + record["n_reference_pieces"] >= 2


def test_the_instrument_assignment_a_model_was_trained_with_is_read_from_its_metrics(model, tmp_path):
    from ostinato.symbolic.evaluate_commands import trained_instruments

    assert json.loads((model / "metrics.json").read_text())["instruments"] == "keep"
    assert trained_instruments(model) == "keep"
    folder = tmp_path / "ensemble-model"
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"instruments": "ensemble"}))
    assert trained_instruments(folder) == "ensemble"
    assert trained_instruments(tmp_path / "no-such-folder") == "keep"
    assert trained_instruments(Path(__file__).resolve().parents[1] / "symbolic/pretrained/chorale-midi") == "ensemble"


def test_repeats_played_out_are_read_from_the_metrics_and_refused_for_abc_tokens(model, tmp_path):
    from ostinato.symbolic.evaluate_commands import trained_expand_repeats

    assert json.loads((model / "metrics.json").read_text())["expand_repeats"] is False
    assert trained_expand_repeats(model) is False
    folder = tmp_path / "performed"
    folder.mkdir()
    (folder / "metrics.json").write_text(json.dumps({"expand_repeats": True}))
    assert trained_expand_repeats(folder) is True
    assert trained_expand_repeats(tmp_path / "no-such-folder") is False
    message = "--expand-repeats: ABC tokens keep a tune's text, repeat signs included: it is for MIDI tokens"
    scored = run_cli("evaluate", "nll", "--model", str(model), TUNES, "--expand-repeats")
    trained = run_cli("train", "symbolic", "--data", TUNES, "--tokenizer", "abc", "--out", str(tmp_path / "x"),
                      "--expand-repeats")
    for result in (scored, trained):
        assert result.returncode == 2 and result.stderr.strip().splitlines() == [f"ostinato: {message}"]
    assert not (tmp_path / "x").exists()
