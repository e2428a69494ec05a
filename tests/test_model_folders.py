"""Model folders load without executing code: our own config, safetensors loaded strictly."""

import json
import shutil

import pytest
import torch
from conftest import run_cli
from safetensors.torch import load_file, save_file

from ostinato.events import InputError
from ostinato.symbolic.model import load_model_folder
from ostinato.symbolic.shipped import resolve_model

EVIL = '''
import pathlib
pathlib.Path({marker!r}).write_text("ran")
from transformers import GPT2LMHeadModel as EvilModel
'''


def _copy(tmp_path, name="folk-abc"):
    folder = tmp_path / name
    shutil.copytree(resolve_model(name), folder)
    return folder


def _edit_config(folder, **changes):
    config = json.loads((folder / "config.json").read_text())
    config.update(changes)
    (folder / "config.json").write_text(json.dumps(config))


def test_a_folder_with_its_own_code_never_runs_it(tmp_path):
    folder = _copy(tmp_path)
    marker = tmp_path / "marker"
    (folder / "modeling_evil.py").write_text(EVIL.format(marker=str(marker)))
    _edit_config(folder, auto_map={"AutoModelForCausalLM": "modeling_evil.EvilModel",
                                   "AutoConfig": "modeling_evil.EvilModel"})
    out = tmp_path / "tune.abc"
    import subprocess
    import sys

    for args in (["compose", "--model", str(folder), "-o", str(out), "-q"],
                 ["evaluate", "nll", "--model", str(folder), "--all", "--json", "-q", str(tmp_path / "t.abc")],
                 ["evaluate", "samples", "--model", str(folder), "-n", "1", "--reference", str(tmp_path / "t.abc"),
                  "--no-originality", "--max-tokens", "64", "-q"],
                 ["train", "symbolic", "--data", str(tmp_path / "t.abc"), "--init-from", str(folder), "--out",
                  str(tmp_path / "tuned"), "--steps", "1", "--batch-size", "1", "--eval-every", "1",
                  "--checkpoint-every", "1", "-q"]):
        (tmp_path / "t.abc").write_text("X:1\nM:4/4\nL:1/8\nK:G\nGABc dedB|G4 G4|]\n")
        subprocess.run([sys.executable, "-m", "ostinato", *args], input="y\ny\n", capture_output=True, text=True,
                       timeout=600, check=True)
    assert out.is_file() and (tmp_path / "tuned" / "model.safetensors").is_file()
    assert not marker.exists()
    # resume loads the run's own checkpoint folder, which the evil files are copied into too
    (tmp_path / "tuned" / "modeling_evil.py").write_text(EVIL.format(marker=str(marker)))
    subprocess.run([sys.executable, "-m", "ostinato", "train", "symbolic", "--data", str(tmp_path / "t.abc"),
                    "--init-from", str(folder), "--out", str(tmp_path / "tuned"), "--steps", "2", "--batch-size", "1",
                    "--eval-every", "1", "--checkpoint-every", "1", "--resume", "-q"],
                   input="y\ny\n", capture_output=True, text=True, timeout=600, check=True)
    assert not marker.exists()


@pytest.mark.parametrize("change, message", [
    ("missing", "1 missing tensor(s) (transformer.h.0.attn.c_attn.bias)"),
    ("unexpected", "1 unexpected tensor(s) (extra.weight)"),
    ("shape", "1 mis-shaped tensor(s) (transformer.wpe.weight (128, 256) (expected (256, 256)))"),
    ("foreign", "88 missing tensor(s) (transformer.h.0.attn.c_attn.bias, "),
    ("foreign", "3 unexpected tensor(s) (encoder.layer.0.weight, encoder.layer.1.weight, encoder.layer.2.weight)"),
])
def test_weights_that_do_not_fit_are_refused_in_one_line(tmp_path, change, message):
    folder = _copy(tmp_path)
    state = load_file(folder / "model.safetensors")
    if change == "missing":
        del state["transformer.h.0.attn.c_attn.bias"]
    elif change == "unexpected":
        state["extra.weight"] = torch.zeros(2)
    elif change == "shape":
        state["transformer.wpe.weight"] = state["transformer.wpe.weight"][:128].clone()
    else:   # an unrelated safetensors file
        state = {f"encoder.layer.{i}.weight": torch.zeros(4) for i in range(3)}
    save_file(state, folder / "model.safetensors")
    with pytest.raises(InputError, match="does not fit its config and tokenizer") as caught:
        load_model_folder(folder)
    assert message in str(caught.value) and "\n" not in str(caught.value)
    result = run_cli("compose", "--model", str(folder), "-o", str(tmp_path / "x.abc"))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert str(folder) in result.stderr and not (tmp_path / "x.abc").exists()


def test_a_model_type_that_is_not_ours_is_refused(tmp_path):
    folder = _copy(tmp_path)
    _edit_config(folder, model_type="bert")
    with pytest.raises(InputError, match="model_type 'bert' is not ostinato's gpt2"):
        load_model_folder(folder)


def test_the_shipped_weights_load_exactly():
    for name in ("folk-abc", "chorale-midi"):
        model, _, _ = load_model_folder(resolve_model(name))
        stored = load_file(resolve_model(name) / "model.safetensors")
        state = model.state_dict()
        assert all(torch.equal(state[k], v) for k, v in stored.items())
        assert model.lm_head.weight.data_ptr() == model.transformer.wte.weight.data_ptr()   # tied, as trained


def test_compose_refuses_what_the_model_never_saw_and_names_what_it_knows(tmp_path):
    out = tmp_path / "x.mid"
    guitar = run_cli("compose", "--instruments", "40,30", "-o", str(out))
    assert guitar.returncode == 2 and not out.exists()
    assert guitar.stderr.strip() == (
        "ostinato: --instruments: chorale-midi was never trained on 30 (it knows GM programs 0, 19, 24, 25, 26, 33, "
        "40, 41, 42, 43, 56, 57, 58, 60, 68, 70, 71, 73, drums)")
    style = run_cli("compose", "--style", "debussy", "-o", str(out))
    assert style.returncode == 2 and "never trained on the style 'debussy' (it knows bach, beethoven" in style.stderr
    listed = run_cli("compose", "--list")
    assert "instruments (GM programs): 0, 19, 24, 25, 26," in listed.stdout
    assert "styles: bach, beethoven," in listed.stdout


def test_training_records_the_controls_it_saw(tmp_path):
    from ostinato.symbolic.data import TokenizedPiece
    from ostinato.symbolic.tokenizers import build_tokenizer
    from ostinato.symbolic.train import seen_controls

    tokenizer = build_tokenizer("remi", styles=["bach", "mozart"])
    ids = [tokenizer.token_to_id[t] for t in ("Style:bach", "Inst:40", "Inst:drums", "Inst:0", "Style:none")]
    pieces = [TokenizedPiece("bach/a", ids, 1)]
    assert seen_controls(tokenizer, pieces) == {"trained_instruments": ["0", "40", "drums"],
                                               "trained_styles": ["bach"]}
    assert seen_controls(build_tokenizer("abc"), pieces) == {}


def test_a_model_file_that_is_no_regular_file_is_named(tmp_path):
    folder = _copy(tmp_path)
    (folder / "tokenizer.json").unlink()
    (folder / "tokenizer.json").symlink_to("/dev/zero")
    result = run_cli("compose", "--model", str(folder), "-o", str(tmp_path / "x.abc"))
    assert result.returncode == 1
    assert result.stderr.strip() == f"ostinato: {folder / 'tokenizer.json'}: not a regular file"
    (folder / "tokenizer.json").unlink()
    result = run_cli("compose", "--model", str(folder), "-o", str(tmp_path / "x.abc"))
    assert result.stderr.strip() == f"ostinato: {folder}: not a model folder (no tokenizer.json)"
