"""`ostinato train calibrate` (symbolic/calibrate.py): one logit temperature, fitted on held-out music and baked in."""

import hashlib
import json
import re
from pathlib import Path

import pytest
import torch
from conftest import run_cli

from ostinato.symbolic.calibrate import fit_beta, nll_at, scaled_weights
from ostinato.symbolic.model import ModelConfig, build_model, load_model_folder, save_model_folder
from ostinato.symbolic.tokenizers import build_tokenizer

TUNES = "music21:essenFolksong/han1.abc"   # 554 German folk tunes, 26 of them held out (and tokenized)


def test_the_fit_finds_the_temperature_the_tokens_were_drawn_at():
    """Targets sampled from softmax(z / 2) for random logits z: the maximum-likelihood T is 2 within the
    sampling error, and the likelihood is worse a little either side of the fitted one."""
    generator = torch.Generator().manual_seed(0)
    logits = torch.randn(20000, 40, generator=generator) * 3
    targets = torch.multinomial(torch.softmax(logits / 2, -1), 1, generator=generator)[:, 0]
    parts = [(logits[:10000], targets[:10000]), (logits[10000:], targets[10000:])]
    beta = fit_beta(parts)
    assert 1 / beta == pytest.approx(2.0, abs=0.05)
    best = nll_at(parts, beta)
    assert best < nll_at(parts, beta * 1.01) and best < nll_at(parts, beta / 1.01)
    assert best < nll_at(parts, 1.0)
    sharp = torch.multinomial(torch.softmax(logits[:10000] * 2, -1), 1, generator=generator)[:, 0]
    assert 1 / fit_beta([(logits[:10000], sharp)]) == pytest.approx(0.5, abs=0.02)   # an underconfident model


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_baking_the_temperature_divides_the_logits_by_it(tmp_path, architecture):
    tok = build_tokenizer("abc")
    config = ModelConfig(architecture=architecture, n_layers=1, d_model=32, n_heads=2, context=32, dropout=0.0)
    torch.manual_seed(0)
    model = build_model(config, len(tok))
    with torch.no_grad():   # as after training: no norm left at its initial ones and zeros
        for parameter in model.parameters():
            parameter.add_(torch.randn_like(parameter) * 0.1)
    save_model_folder(model, tok, tmp_path / "m")
    state, metadata = scaled_weights(tmp_path / "m" / "model.safetensors", architecture, 1.25)
    from safetensors.torch import load_file, save_file

    before = load_file(tmp_path / "m" / "model.safetensors")
    changed = sorted(name for name in state if not torch.equal(state[name], before[name]))
    assert changed == (["transformer.ln_f.bias", "transformer.ln_f.weight"] if architecture == "gpt2"
                       else ["model.norm.weight"])
    (tmp_path / "c").mkdir()
    for name in ("config.json", "tokenizer.json"):
        (tmp_path / "c" / name).write_bytes((tmp_path / "m" / name).read_bytes())
    save_file(state, tmp_path / "c" / "model.safetensors", metadata=metadata)
    ids = torch.arange(3, 30)[None]
    for inference in (True, False):
        old, _, _ = load_model_folder(tmp_path / "m", inference=inference)
        new, _, _ = load_model_folder(tmp_path / "c", inference=inference)
        with torch.no_grad():
            torch.testing.assert_close(new(input_ids=ids).logits, old(input_ids=ids).logits / 1.25,
                                       rtol=1e-5, atol=1e-5)


def _digest(folder: Path) -> dict:
    return {p.name: hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(folder.iterdir()) if p.is_file()}


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    """A tiny ABC model trained past its best held-out figure (overconfident on tunes it has not seen)."""
    root = tmp_path_factory.mktemp("cal")
    (root / "tiny.json").write_text(json.dumps({"architecture": "gpt2", "n_layers": 2, "d_model": 64, "n_heads": 2,
                                                "context": 128, "dropout": 0.0}))
    out = root / "model"
    result = run_cli("train", "symbolic", "--data", TUNES, "--tokenizer", "abc", "--out", str(out), "--config",
                     str(root / "tiny.json"), "--steps", "400", "--batch-size", "16", "--lr", "3e-3",
                     "--eval-every", "400", "--checkpoint-every", "400", "-q")
    assert result.returncode == 0, result.stderr
    return out


def test_calibrate_fits_bakes_and_records_the_temperature(tmp_path, trained):
    before = _digest(trained)
    out = tmp_path / "calibrated"
    result = run_cli("train", "calibrate", "--model", str(trained), "--data", TUNES, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert _digest(trained) == before   # the model's own folder is never written
    metrics = json.loads((out / "metrics.json").read_text())
    old = json.loads((trained / "metrics.json").read_text())
    cal = metrics["calibration"]
    assert 0.5 < cal["temperature"] < 2
    assert cal["n_tokens"] == old["heldout"]["n_tokens"] and cal["n_pieces"] == old["heldout"]["n_pieces"] == 26
    assert cal["bits_per_char_before"] == pytest.approx(old["heldout"]["bits_per_char"], abs=1e-5)
    assert cal["bits_per_char_after"] < cal["bits_per_char_before"]
    assert cal["bits_per_char_after"] <= cal["bits_per_char_crossfit"]   # in-sample is the optimum
    assert metrics["heldout"]["bits_per_char"] == cal["bits_per_char_after"]
    card = (out / "model_card.md").read_text()
    assert f"| bits_per_char | {cal['bits_per_char_after']:.4f} |" in card   # the training's table, at the new T
    assert f"| {cal['bits_per_char_after']:.4f} | {cal['bits_per_token_after']:.4f} |" in card
    assert f"T = {cal['temperature']:.3f}" in (out / "model_card.md").read_text()
    assert f"temperature {cal['temperature']:.3f}" in result.stderr
    # the folder scores as its metrics say, by the evaluator every model goes through
    scored = run_cli("evaluate", "nll", TUNES, "--model", str(out), "--json", "-q")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["bits_per_char"] == pytest.approx(cal["bits_per_char_after"], abs=1e-5)
    # a second calibration finds nothing left to fit, and says so in the card once
    again = tmp_path / "again"
    assert run_cli("train", "calibrate", "--model", str(out), "--data", TUNES, "--out", str(again),
                   "-q").returncode == 0
    twice = json.loads((again / "metrics.json").read_text())["calibration"]
    assert twice["temperature"] == pytest.approx(1.0, abs=1e-4)
    assert twice["total_temperature"] == pytest.approx(cal["temperature"], rel=1e-4)
    assert (again / "model_card.md").read_text().count("## Calibration") == 1


def test_an_overconfident_model_gets_the_temperature_that_undoes_it(tmp_path, trained):
    """The model made 1.5 times as sharp (its logits multiplied by 1.5): its fitted temperature is exactly 1.5
    times the model's own, and calibrated the two are the same model."""
    from safetensors.torch import save_file

    sharp = tmp_path / "sharp"
    sharp.mkdir()
    for path in trained.iterdir():
        if path.is_file() and path.name != "model.safetensors":
            (sharp / path.name).write_bytes(path.read_bytes())
    card = (sharp / "model_card.md").read_text()   # the table's figure made stale, to see it replaced
    (sharp / "model_card.md").write_text(re.sub(r"^\| bits_per_char \| [0-9.]+ \|$", "| bits_per_char | 9.9999 |",
                                                card, flags=re.M))
    assert "| bits_per_char | 9.9999 |" in (sharp / "model_card.md").read_text()
    state, metadata = scaled_weights(trained / "model.safetensors", "gpt2", 1 / 1.5)
    save_file(state, sharp / "model.safetensors", metadata=metadata)
    fitted = {}
    for name, folder in (("own", trained), ("sharp", sharp)):
        assert run_cli("train", "calibrate", "--model", str(folder), "--data", TUNES, "--out",
                       str(tmp_path / f"{name}-cal"), "-q").returncode == 0
        fitted[name] = json.loads((tmp_path / f"{name}-cal" / "metrics.json").read_text())["calibration"]
    assert fitted["sharp"]["temperature"] == pytest.approx(1.5 * fitted["own"]["temperature"], rel=1e-4)
    assert fitted["sharp"]["bits_per_char_before"] > fitted["own"]["bits_per_char_before"] + 0.05
    assert fitted["sharp"]["bits_per_char_after"] == pytest.approx(fitted["own"]["bits_per_char_after"], abs=1e-5)
    card = (tmp_path / "sharp-cal" / "model_card.md").read_text()   # its table's figure replaced, not kept
    assert f"| bits_per_char | {fitted['sharp']['bits_per_char_after']:.4f} |" in card
    assert "9.9999" not in card
    assert "## Held-out figures (final step, calibrated)" in card


def test_calibrate_refuses_in_one_line(tmp_path, trained):
    from ostinato.events.sources import is_held_out

    folder = tmp_path / "tunes"
    folder.mkdir()
    name = next(f"t{i}.abc" for i in range(100) if not is_held_out(f"tunes/t{i}.abc"))   # a training tune only
    (folder / name).write_text("X:1\nT:t\nM:4/4\nL:1/8\nK:G\nGABc dedB|c2A2 G4|]\n")
    for out, data, problem in ((trained, TUNES, "must be a new or empty folder"),
                               (tmp_path / "x", str(folder), "no held-out piece to calibrate on")):
        result = run_cli("train", "calibrate", "--model", str(trained), "--data", data, "--out", str(out))
        assert result.returncode != 0 and problem in result.stderr, result.stderr
        assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr
    assert not (tmp_path / "x").exists()


def test_the_halves_keep_a_midi_pieces_windows_together():
    """Cross-fitting splits pieces, not windows: the windows of one MIDI piece (keys ``path@N``) share a fold,
    and every scored token is in exactly one fold."""
    from ostinato.symbolic.calibrate import collect_logits
    from ostinato.symbolic.data import TokenizedPiece

    config = ModelConfig(architecture="gpt2", n_layers=1, d_model=32, n_heads=2, context=16, dropout=0.0)
    torch.manual_seed(0)
    model = build_model(config, 50).eval()
    lengths = {"a.mid@0": 10, "a.mid@1": 7, "b.mid@0": 5, "c.mid@0": 12, "c.mid@1": 4}
    pieces = [TokenizedPiece(key=key, ids=torch.randint(3, 50, (n,)).numpy().astype("int32"), n_units=n)
              for key, n in lengths.items()]
    folds = collect_logits(model, pieces, context=16, pad_id=0, device=torch.device("cpu"))
    counts = [sorted(len(targets) for _, targets in fold) for fold in folds]
    assert counts == [sorted([9, 6, 11, 3]), [4]]   # a and c in the first half, b in the second
