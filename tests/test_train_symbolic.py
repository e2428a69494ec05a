"""`ostinato train symbolic`, run for real: it learns, resumes exactly, runs under torchrun, fails cleanly."""

import json
import os
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from conftest import REPO, run_cli

from ostinato.symbolic.model import ModelConfig, build_model, load_model_folder, save_model_folder
from ostinato.symbolic.tokenizers import build_tokenizer
from ostinato.symbolic.train import TrainConfig, native_bf16, train_dtype

TUNES = "music21:essenFolksong/han1.abc"   # 554 German folk tunes (music21's corpus)


def _tiny_config(tmp_path: Path, context: int = 128, d_model: int = 64) -> str:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"architecture": "gpt2", "n_layers": 2, "d_model": d_model, "n_heads": 2,
                                "context": context, "dropout": 0.0}))
    return str(path)


def _train(out: Path, config: str, *extra: str, data: str = TUNES, tokenizer: str = "abc", batch: int = 8):
    return run_cli("train", "symbolic", "--data", data, "--tokenizer", tokenizer, "--out", str(out),
                   "--config", config, "--batch-size", str(batch), "--lr", "3e-3", "-q", *extra)


def _losses(out: Path) -> dict[int, float]:
    lines = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    return {r["step"]: r["loss"] for r in lines if "loss" in r}


def test_a_short_cpu_run_learns_well_below_the_unigram_entropy(tmp_path):
    out = tmp_path / "folk"
    result = _train(out, _tiny_config(tmp_path, d_model=96), "--steps", "200", "--eval-every", "100",
                    "--checkpoint-every", "100", "--lr", "3e-3", batch=16)   # (5e-3 can diverge by step 200)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    heldout = metrics["heldout"]
    print(f"held-out {heldout['bits_per_token']:.3f} bits/token, {heldout['bits_per_char']:.3f} bits/char; "
          f"unigram {metrics['unigram_bits_per_token']:.3f} bits/token")
    assert metrics["n_test_pieces"] == heldout["n_pieces"] > 10
    assert heldout["bits_per_token"] < 0.9 * metrics["unigram_bits_per_token"]
    losses = _losses(out)
    assert sorted(losses) == list(range(1, 201))
    # the held-out figure is logged at each evaluation, and the model card records the command and it
    evals = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines() if "heldout" in line]
    assert [e["step"] for e in evals] == [100, 200]
    assert evals[1]["heldout"]["bits_per_token"] < evals[0]["heldout"]["bits_per_token"]
    card = (out / "model_card.md").read_text()
    assert f"--data {TUNES} --tokenizer abc" in card and f"{heldout['bits_per_char']:.4f}" in card
    _model, tokenizer, config = load_model_folder(out)
    assert tokenizer.kind == "abc" and config.context == 128
    # the steps ran in bfloat16 where this CPU multiplies it (--precision auto), and the card says which
    native = native_bf16(torch.device("cpu"))
    assert metrics["precision"] == ("bf16" if native else "fp32")
    assert (", bfloat16 autocast." if native else ", float32.") in card


def test_precision_chooses_the_training_steps_arithmetic(tmp_path, monkeypatch):
    from ostinato.symbolic import train as train_module

    cpu = torch.device("cpu")
    for native, auto in ((True, torch.bfloat16), (False, torch.float32)):
        monkeypatch.setattr(train_module, "native_bf16", lambda device, native=native: native)
        assert train_dtype("auto", cpu) == auto
        assert train_dtype("fp32", cpu) == torch.float32 and train_dtype("bf16", cpu) == torch.bfloat16
    with pytest.raises(ValueError, match="precision: expected one of auto, fp32, bf16, got 'fp16'"):
        TrainConfig(precision="fp16")
    refused = run_cli("train", "symbolic", "--data", TUNES, "--tokenizer", "abc", "--out", str(tmp_path / "x"),
                      "--precision", "fp16")
    assert refused.returncode == 2 and "--precision: invalid choice: 'fp16'" in refused.stderr
    # the flag reaches the steps: the same 3 steps in each arithmetic start from the same weights and
    # batches, and their losses differ by bfloat16's rounding alone
    config, losses = _tiny_config(tmp_path, context=64), {}
    for precision in ("fp32", "bf16"):
        out = tmp_path / precision
        result = _train(out, config, "--steps", "3", "--eval-every", "3", "--checkpoint-every", "3",
                        "--precision", precision)
        assert result.returncode == 0, result.stderr
        assert json.loads((out / "metrics.json").read_text())["precision"] == precision
        losses[precision] = _losses(out)
    for step in (1, 2, 3):
        assert losses["bf16"][step] != losses["fp32"][step]
        assert losses["bf16"][step] == pytest.approx(losses["fp32"][step], rel=0.02)


def test_resume_after_kill_follows_the_same_loss_curve(tmp_path):
    config = _tiny_config(tmp_path, context=64)
    args = ["--steps", "30", "--eval-every", "1000", "--checkpoint-every", "6"]
    straight = tmp_path / "straight"
    assert _train(straight, config, *args).returncode == 0
    # the same run, killed with SIGKILL once its first checkpoint is on disk
    killed = tmp_path / "killed"
    cmd = [sys.executable, "-m", "ostinato", "train", "symbolic", "--data", TUNES,
           "--tokenizer", "abc", "--out", str(killed), "--config", config, "--batch-size", "8", "--lr", "3e-3",
           "-q", *args]
    proc = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    latest = killed / "checkpoints" / "latest"
    while proc.poll() is None and not latest.exists():
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    step = int(latest.read_text().strip().split("-")[1])
    assert step < 30, "the run finished before it could be killed"
    # a checkpoint is a model folder, loadable mid-run
    _model, tokenizer, _ = load_model_folder(killed / "checkpoints" / latest.read_text().strip())
    assert tokenizer.kind == "abc"
    # without --resume the run refuses to start over it
    refused = _train(killed, config, *args)
    assert refused.returncode == 1 and "pass --resume" in refused.stderr
    resumed = _train(killed, config, *args, "--resume")
    assert resumed.returncode == 0, resumed.stderr
    assert _losses(killed) == _losses(straight)
    a, _, _ = load_model_folder(straight)
    b, _, _ = load_model_folder(killed)
    for (name, x), (_, y) in zip(a.state_dict().items(), b.state_dict().items(), strict=True):
        assert torch.equal(x, y), name


def test_two_processes_under_torchrun_match_one(tmp_path):
    config = _tiny_config(tmp_path, context=64)
    args = ["--data", TUNES, "--tokenizer", "abc", "--config", config, "--batch-size", "8", "--lr", "3e-3",
            "--steps", "6", "--eval-every", "1000", "--checkpoint-every", "1000", "-q",
            "--precision", "fp32"]   # (bfloat16 rounds a batch of 4 apart from a batch of 8: 0.1% by step 6)
    single = tmp_path / "single"
    assert run_cli("train", "symbolic", "--out", str(single), *args).returncode == 0
    ddp = tmp_path / "ddp"
    env = dict(os.environ, OMP_NUM_THREADS="1")
    result = subprocess.run(
        [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "--module", "ostinato",
         "train", "symbolic", "--out", str(ddp), *args],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.loads((ddp / "metrics.json").read_text())
    assert metrics["n_processes"] == 2
    one, two = _losses(single), _losses(ddp)
    assert sorted(two) == list(range(1, 7))
    for step in one:   # the same global batch, split over two processes: the same curve
        assert two[step] == pytest.approx(one[step], rel=1e-4)


def test_save_then_load_gives_identical_logits(tmp_path):
    tokenizer = build_tokenizer("abc")
    for architecture in ("gpt2", "llama"):
        torch.manual_seed(0)
        model = build_model(ModelConfig(architecture=architecture, n_layers=2, d_model=32, n_heads=2, context=64,
                                        dropout=0.0), len(tokenizer)).eval()
        save_model_folder(model, tokenizer, tmp_path / architecture)
        assert sorted(p.name for p in (tmp_path / architecture).iterdir()) == [
            "config.json", "model.safetensors", "tokenizer.json"]
        loaded, loaded_tokenizer, config = load_model_folder(tmp_path / architecture)
        ids = torch.tensor([tokenizer.encode("X:1\nM:2/4\nL:1/8\nK:G\nGABc|d2B2|]\n")])
        with torch.no_grad():
            assert torch.equal(model(ids).logits, loaded(ids).logits)
        assert config.architecture == architecture and loaded_tokenizer.kind == "abc"


def test_resume_with_more_steps_extends_the_run_and_the_card_says_so(tmp_path):
    config, out = _tiny_config(tmp_path), tmp_path / "run"
    first = _train(out, config, "--steps", "6", "--checkpoint-every", "3", "--eval-every", "6")
    assert first.returncode == 0, first.stderr
    second = _train(out, config, "--steps", "9", "--checkpoint-every", "3", "--eval-every", "3", "--resume")
    assert second.returncode == 0, second.stderr
    assert sorted(_losses(out)) == list(range(1, 10))
    metrics = json.loads((out / "metrics.json").read_text())
    assert [(s["from_step"], s["steps"]) for s in metrics["schedule"]] == [(0, 6), (6, 9)]
    assert "--steps 6" in metrics["schedule"][0]["command"] and "--resume" in metrics["schedule"][1]["command"]
    card = (out / "model_card.md").read_text()
    assert "- steps 0-6 (a 6-step schedule):" in card and "- steps 6-9 (a 9-step schedule):" in card


def test_init_from_starts_from_the_given_weights(tmp_path):
    config = _tiny_config(tmp_path)
    base = tmp_path / "base"
    assert _train(base, config, "--steps", "40", "--eval-every", "40", "--checkpoint-every", "40",
                  batch=16).returncode == 0
    base_figures = json.loads((base / "metrics.json").read_text())["heldout"]
    # a second schedule from those weights (with more dropout, none on the attention weights), at a
    # learning rate too small to move them: the same held-out figure
    again = tmp_path / "again"
    more_dropout = tmp_path / "dropout.json"
    more_dropout.write_text(json.dumps({**json.loads(Path(config).read_text()), "dropout": 0.2,
                                         "attention_dropout": 0.0}))
    result = run_cli("train", "symbolic", "--data", TUNES, "--init-from", str(base), "--out", str(again),
                     "--config", str(more_dropout), "--steps", "1", "--lr", "1e-12", "--warmup", "1",
                     "--batch-size", "2", "-q")
    assert result.returncode == 0, result.stderr
    metrics = json.loads((again / "metrics.json").read_text())
    assert metrics["init_from"] == str(base) and metrics["model"]["context"] == 128
    assert metrics["model"]["dropout"] == 0.2 and metrics["model"]["attention_dropout"] == 0.0
    assert abs(metrics["heldout"]["bits_per_token"] - base_figures["bits_per_token"]) < 1e-4
    assert f"Started from the weights of `{base}`" in (again / "model_card.md").read_text()
    # a tokenizer or a shape other than the model's own is refused in one line
    wrong = run_cli("train", "symbolic", "--data", TUNES, "--init-from", str(base), "--tokenizer", "remi",
                    "--out", str(tmp_path / "x"), "--steps", "1")
    assert wrong.returncode == 1 and wrong.stderr.strip().startswith(
        f"ostinato: {base}: uses the 'abc' tokenizer, not 'remi'")
    shape = run_cli("train", "symbolic", "--data", TUNES, "--init-from", str(base), "--config", "small",
                    "--out", str(tmp_path / "y"), "--steps", "1")
    assert shape.returncode == 1 and "than --config small" in shape.stderr
    assert len(shape.stderr.strip().splitlines()) == 1
    # a config of the model's shape with more layers deepens it (the new blocks start as the identity)
    deeper_config = tmp_path / "deeper.json"
    base_config = json.loads((base / "config.json").read_text())["ostinato"]
    deeper_config.write_text(json.dumps({**base_config, "n_layers": base_config["n_layers"] + 1}))
    deeper = tmp_path / "deeper"
    result = run_cli("train", "symbolic", "--data", TUNES, "--init-from", str(base), "--config", str(deeper_config),
                     "--out", str(deeper), "--steps", "1", "--lr", "1e-12", "--warmup", "1", "--batch-size", "2", "-q")
    assert result.returncode == 0, result.stderr
    assert load_model_folder(deeper)[2].n_layers == base_config["n_layers"] + 1
    assert (f"Started from the weights of `{base}` (see its model card), deepened from {base_config['n_layers']} "
            f"to {base_config['n_layers'] + 1} layers") in (deeper / "model_card.md").read_text()
    fewer_config = tmp_path / "fewer.json"
    fewer_config.write_text(json.dumps({**base_config, "n_layers": base_config["n_layers"] - 1}))
    fewer = run_cli("train", "symbolic", "--data", TUNES, "--init-from", str(base), "--config", str(fewer_config),
                    "--out", str(tmp_path / "v"), "--steps", "1")
    assert fewer.returncode == 1 and "can add layers, not take them away" in fewer.stderr
    missing = run_cli("train", "symbolic", "--data", TUNES, "--out", str(tmp_path / "z"), "--steps", "1")
    assert missing.returncode == 2 and "--tokenizer is required" in missing.stderr   # a usage error
    # --context grows the model's positions (the old ones stretched over the new context), for longer windows
    longer = tmp_path / "longer"
    result = run_cli("train", "symbolic", "--data", TUNES, "--init-from", str(base), "--out", str(longer),
                     "--context", "320", "--steps", "1", "--lr", "1e-12", "--warmup", "1", "--batch-size", "2", "-q")
    assert result.returncode == 0, result.stderr
    assert json.loads((longer / "metrics.json").read_text())["model"]["context"] == 320
    old_model, _, _ = load_model_folder(base)
    new_model, _, new_config = load_model_folder(longer)
    assert new_config.context == 320
    old_positions = old_model.transformer.wpe.weight.detach()
    new_positions = new_model.transformer.wpe.weight.detach()
    assert new_positions.shape == (320, old_positions.shape[1])
    for row in (0, -1):   # the old first and last rows, moved by nothing but the 1e-12 step (an ulp near 0)
        assert torch.allclose(new_positions[row], old_positions[row], rtol=0, atol=1e-9)
    shrink = run_cli("train", "symbolic", "--data", TUNES, "--init-from", str(base), "--context", "64",
                     "--out", str(tmp_path / "w"), "--steps", "1")
    assert shrink.returncode == 1 and "can grow it, not shrink it to 64" in shrink.stderr
    assert len(shrink.stderr.strip().splitlines()) == 1


def test_a_grown_context_stretches_the_learned_positions():
    from ostinato.symbolic.model import grow_context, stretched_positions

    # three positions stretched to five: the new ones halfway between their neighbours
    old = torch.tensor([[0.0, 1.0], [10.0, 3.0], [20.0, 2.0]])
    assert stretched_positions(old, 5).tolist() == [[0, 1], [5, 2], [10, 3], [15, 2.5], [20, 2]]
    assert torch.equal(stretched_positions(old, 3), old)

    tok = build_tokenizer("abc")
    config = ModelConfig(n_layers=1, d_model=32, n_heads=2, context=64, dropout=0.0)
    torch.manual_seed(0)
    model = build_model(config, len(tok)).eval()
    grown, grown_config = grow_context(model, tok, config, 127)
    assert grown_config.context == 127 and grown_config.n_layers == 1
    positions, old_positions = grown.transformer.wpe.weight.detach(), model.transformer.wpe.weight.detach()
    assert torch.equal(positions[::2], old_positions)   # 64 -> 127: every other position is an old one
    assert torch.allclose(positions[1::2], (old_positions[:-1] + old_positions[1:]) / 2)
    before, after = model.state_dict(), grown.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before if "wpe" not in k)   # nothing else changed
    with torch.no_grad():
        assert grown(input_ids=torch.arange(3, 130)[None]).logits.shape[1] == 127
    with pytest.raises(ValueError, match="grow, not shrink"):
        grow_context(model, tok, config, 32)


@pytest.mark.parametrize("architecture", ["gpt2", "llama"])
def test_added_layers_compute_nothing_until_trained(architecture):
    from ostinato.symbolic.model import grow_layers

    tok = build_tokenizer("abc")
    config = ModelConfig(architecture=architecture, n_layers=2, d_model=32, n_heads=2, context=64, dropout=0.0)
    torch.manual_seed(0)
    model = build_model(config, len(tok)).eval()
    grown, grown_config = grow_layers(model, tok, config, 5)
    assert grown_config == ModelConfig(architecture=architecture, n_layers=5, d_model=32, n_heads=2, context=64,
                                       dropout=0.0)
    ids = torch.arange(3, 60)[None]
    with torch.no_grad():
        assert torch.allclose(grown(input_ids=ids).logits, model(input_ids=ids).logits, rtol=0, atol=1e-5)
    # 2 -> 5: old block 0 is followed by one new block, old block 1 by two; each new one copies the block before it
    prefix, out_proj, inner = (("transformer.h.", "attn.c_proj.weight", "attn.c_attn.weight") if architecture == "gpt2"
                               else ("model.layers.", "self_attn.o_proj.weight", "self_attn.q_proj.weight"))
    before, after = model.state_dict(), grown.state_dict()
    for new, old, is_new in ((0, 0, False), (1, 0, True), (2, 1, False), (3, 1, True), (4, 1, True)):
        assert torch.equal(after[f"{prefix}{new}.{inner}"], before[f"{prefix}{old}.{inner}"])
        assert after[f"{prefix}{new}.{out_proj}"].abs().sum().item() == 0 if is_new else torch.equal(
            after[f"{prefix}{new}.{out_proj}"], before[f"{prefix}{old}.{out_proj}"])
    # the new blocks learn: one step moves their output projections off zero
    grown.train()
    loss = grown(input_ids=ids, labels=ids).loss
    loss.backward()
    assert grown.state_dict(keep_vars=True)[f"{prefix}1.{out_proj}"].grad.abs().sum().item() > 0
    with pytest.raises(ValueError, match="gain layers, not lose them"):
        grow_layers(model, tok, config, 1)


@pytest.mark.parametrize("n_ids", [2, 17, 33, 34, 50, 66, 67, 100])
def test_a_piece_longer_than_the_context_is_scored_by_sliding_windows(n_ids):
    """Every token after <bos> is predicted once, and one past the first window sees at least half a
    context before it: the held-out nats equal a token-by-token sum over exactly those prefixes."""
    from ostinato.symbolic.data import TokenizedPiece
    from ostinato.symbolic.train import heldout_nats, score_windows

    context = 32
    config = ModelConfig(architecture="gpt2", n_layers=1, d_model=32, n_heads=2, context=context, dropout=0.0)
    torch.manual_seed(0)
    model = build_model(config, 50).eval()
    ids = torch.randint(3, 50, (n_ids,))
    expected, seen = 0.0, []
    with torch.no_grad():
        for t in range(1, n_ids):   # the window that scores target t, and what the model sees of it
            start = next(s for s, first in reversed(score_windows(n_ids, context)) if first <= t)
            assert t - start <= context and (t <= context or t - start >= context // 2)
            seen.append(t - start)
            logits = model(input_ids=ids[None, start:t]).logits[0, -1]
            expected -= torch.log_softmax(logits, -1)[ids[t]].item()
    piece = TokenizedPiece(key="x/y.abc", ids=ids.numpy().astype("int32"), n_units=n_ids)
    totals = heldout_nats(model, [piece, piece], context=context, pad_id=0, device=torch.device("cpu"))
    assert totals["n_tokens"] == 2 * (n_ids - 1)
    assert totals["nats"] == pytest.approx(2 * expected, rel=1e-5)
    if n_ids > context + 1:   # disjoint chunks would predict token context + 1 from nothing but itself
        assert min(seen[context:]) >= context // 2

def test_the_teachers_distribution_is_the_mean_of_their_probabilities():
    from ostinato.symbolic.train import teacher_log_probs

    tok = build_tokenizer("abc")
    config = ModelConfig(architecture="gpt2", n_layers=1, d_model=32, n_heads=2, context=64, dropout=0.0)
    teachers = []
    for seed in (0, 1):
        torch.manual_seed(seed)
        teachers.append(build_model(config, len(tok)).eval())
    ids = torch.arange(3, 40)[None]
    with torch.no_grad():
        a, b = (torch.softmax(t(input_ids=ids).logits, -1) for t in teachers)
    mixed = teacher_log_probs(teachers, ids)
    assert mixed.shape == (1, 37, len(tok))
    assert torch.allclose(mixed.exp(), (a + b) / 2, rtol=0, atol=1e-6)   # not the mean of the log-probabilities
    assert not torch.allclose(a, b, atol=1e-3)


def test_a_distilled_model_learns_its_teachers_mixture(tmp_path):
    config = _tiny_config(tmp_path)
    teacher = tmp_path / "teacher"
    assert _train(teacher, config, "--steps", "30", "--eval-every", "30", "--checkpoint-every", "30",
                  batch=16).returncode == 0

    def first_loss(out: Path, *extra: str) -> float:
        result = run_cli("train", "symbolic", "--data", TUNES, "--init-from", str(teacher), "--out", str(out),
                         "--steps", "1", "--lr", "1e-12", "--warmup", "1", "--batch-size", "4", "-q", *extra)
        assert result.returncode == 0, result.stderr
        return _losses(out)[1]

    # the model its own teacher: the KL divergence is 0, so the loss is (1 - weight) x the cross-entropy
    plain = first_loss(tmp_path / "plain")
    assert first_loss(tmp_path / "half", "--teacher", str(teacher)) == pytest.approx(plain / 2, rel=1e-5)
    assert abs(first_loss(tmp_path / "kl", "--teacher", str(teacher), "--teacher", str(teacher),
                          "--distill-weight", "1")) < 1e-5
    metrics = json.loads((tmp_path / "kl" / "metrics.json").read_text())
    assert metrics["teachers"] == [str(teacher)] * 2 and metrics["train"]["distill_weight"] == 1.0
    assert (f"Distilled from `{teacher}`, `{teacher}` (the mean of their next-token distributions): each target's "
            f"loss is 1 x the KL divergence from them and 0 x the token's cross-entropy.") in (
        tmp_path / "kl" / "model_card.md").read_text()
    assert json.loads((tmp_path / "plain" / "metrics.json").read_text())["teachers"] is None
    # from random weights, on the KL divergence alone, the student moves towards the teacher
    student = tmp_path / "student"
    assert _train(student, config, "--steps", "30", "--eval-every", "30", "--checkpoint-every", "30", "--teacher",
                  str(teacher), "--distill-weight", "1", batch=16).returncode == 0
    losses = _losses(student)
    assert losses[30] < losses[1] / 3
    # a resume keeps the loss it was trained with: the same teachers, or it is refused by name
    changed = _train(student, config, "--steps", "31", "--resume")
    assert changed.returncode == 1 and changed.stderr.strip() == (
        f"ostinato: {student / 'checkpoints' / 'step-0000030'}: was trained with --teacher {teacher}: resume with "
        f"the same (not no --teacher)")
    assert _train(student, config, "--steps", "31", "--resume", "--teacher", str(teacher), "--distill-weight",
                  "1").returncode == 0
    # refusals, each in one line
    alone = _train(tmp_path / "a", config, "--steps", "1", "--distill-weight", "0.5")
    assert alone.returncode == 2 and "--distill-weight: needs a --teacher to distil from" in alone.stderr
    heavy = _train(tmp_path / "b", config, "--steps", "1", "--teacher", str(teacher), "--distill-weight", "2")
    assert heavy.returncode == 2 and "expected a weight from 0 to 1, got 2.0" in heavy.stderr
    plain_teacher = tmp_path / "no-infill"
    assert _train(plain_teacher, config, "--steps", "1", "--infill-share", "0").returncode == 0
    other = _train(tmp_path / "c", config, "--steps", "1", "--teacher", str(plain_teacher))
    assert other.returncode == 1 and other.stderr.strip() == (
        f"ostinato: {plain_teacher}: has another tokenizer (vocabulary) than the model trained: a teacher's "
        f"distribution must be over the same tokens")
    longer = _train(tmp_path / "d", _tiny_config(tmp_path, context=256), "--steps", "1", "--teacher", str(teacher))
    assert longer.returncode == 1 and longer.stderr.strip() == (
        f"ostinato: {teacher}: has a context of 128 tokens, shorter than the model's 256")


def test_attention_dropout_is_its_own_and_the_gelu_is_gpt2s():
    # the attention weights' dropout defaults to the model's dropout (every config written before it)
    assert ModelConfig(dropout=0.15).attention_pdrop == 0.15
    assert ModelConfig.from_json({"dropout": 0.15}).attention_dropout is None
    config = ModelConfig(n_layers=1, d_model=32, n_heads=2, context=64, dropout=0.15, attention_dropout=0.0)
    for architecture in ("gpt2", "llama"):
        hf = build_model(ModelConfig(**{**config.__dict__, "architecture": architecture}), 50).config
        if architecture == "gpt2":
            assert (hf.attn_pdrop, hf.resid_pdrop, hf.embd_pdrop) == (0.0, 0.15, 0.15)
        else:
            assert hf.attention_dropout == 0.0
    with pytest.raises(ValueError, match=r"attention_dropout: expected 0 <= attention_dropout < 1, got 1\.0"):
        ModelConfig(attention_dropout=1.0)
    with pytest.raises(ValueError, match="dropout: expected 0 <= dropout < 1, got None"):
        ModelConfig(dropout=None)
    # GPT-2's MLP runs PyTorch's one-kernel tanh GELU: the same function as transformers' "gelu_new"
    import transformers

    torch.manual_seed(0)
    model = build_model(config, 50).eval()
    assert model.config.activation_function == "gelu_pytorch_tanh"
    reference = transformers.GPT2LMHeadModel(transformers.GPT2Config(
        **{**model.config.to_dict(), "activation_function": "gelu_new"})).eval()
    reference.load_state_dict(model.state_dict())
    ids = torch.randint(3, 50, (2, 64), generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ours, theirs = model(input_ids=ids).logits, reference(input_ids=ids).logits
    assert not torch.equal(ours, torch.zeros_like(ours))
    torch.testing.assert_close(ours, theirs, rtol=1e-5, atol=1e-5)


# ---------------------------------------------------------------------------- bad input
def test_a_source_with_no_pieces_fails_in_one_line(tmp_path):
    empty = tmp_path / "empty"
    empty.mkdir()
    result = _train(tmp_path / "out", "tiny", "--steps", "2", data=str(empty))
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"ostinato: {empty}: no music files")
    assert "Traceback" not in result.stderr


def test_unknown_tokenizer_and_abc_tokenizer_on_midi(tmp_path):
    result = _train(tmp_path / "out", "tiny", "--steps", "2", tokenizer="bpe")
    assert result.returncode == 2 and result.stderr.strip() == (
        "ostinato: bpe: unknown tokenizer (choose one of abc, remi, tsd, midilike or a .json file)")
    midi = tmp_path / "midi"
    midi.mkdir()
    (midi / "a.mid").write_bytes(_one_note_midi())
    wrong = _train(tmp_path / "out2", "tiny", "--steps", "2", data=str(midi))
    assert wrong.returncode == 1 and "no piece could be used for training" in wrong.stderr
    assert "not an ABC file" in wrong.stderr and len(wrong.stderr.strip().splitlines()) == 1


def _one_note_midi() -> bytes:
    import numpy as np

    from ostinato.events import NoteTable, Track
    from ostinato.events.midi import midi_bytes

    table = NoteTable.from_ticks(np.array([0]), np.array([480]), np.array([60]), np.array([90]), np.array([0]),
                                 [Track("p", 0, False)])
    return midi_bytes(table)


def test_a_corrupt_checkpoint_is_refused_by_name(tmp_path):
    config = _tiny_config(tmp_path, context=32)
    out = tmp_path / "run"
    assert _train(out, config, "--steps", "4", "--checkpoint-every", "2").returncode == 0
    weights = out / "checkpoints" / "step-0000004" / "model.safetensors"
    weights.write_bytes(b"\x00" * 100)
    result = _train(out, config, "--steps", "8", "--checkpoint-every", "2", "--resume")
    assert result.returncode == 1
    assert result.stderr.strip().startswith(f"ostinato: {weights.parent}: cannot load the model")
    assert len(result.stderr.strip().splitlines()) == 1


def test_a_full_disk_mid_checkpoint_keeps_the_previous_one(tmp_path):
    config = _tiny_config(tmp_path, context=32)
    out = tmp_path / "run"
    assert _train(out, config, "--steps", "4", "--checkpoint-every", "4").returncode == 0
    before = sorted(p.name for p in (out / "checkpoints").iterdir())
    # resume with files capped at 64 KiB: the next checkpoint's weights cannot be written
    def cap_file_size():
        resource.setrlimit(resource.RLIMIT_FSIZE, (64 * 1024, 64 * 1024))

    cmd = [sys.executable, "-m", "ostinato", "train", "symbolic", "--data", TUNES,
           "--tokenizer", "abc", "--out", str(out), "--config", config, "--batch-size", "8", "--steps", "8",
           "--checkpoint-every", "4", "--resume", "-q"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, preexec_fn=cap_file_size, timeout=600)
    assert result.returncode == 1
    message = result.stderr.strip()
    assert message.startswith(f"ostinato: {out / 'checkpoints' / 'step-0000008'}: cannot write the checkpoint (")
    assert "File too large" in message and message.endswith("; the previous checkpoint step-0000004 is kept")
    assert len(message.splitlines()) == 1
    assert sorted(p.name for p in (out / "checkpoints").iterdir()) == before
    model, _, _ = load_model_folder(out / "checkpoints" / "step-0000004")
    assert model is not None


def test_transposition_augmentation_trains_every_piece_in_each_key_the_parts_can_play(tmp_path):
    midi = tmp_path / "midi"
    midi.mkdir()
    for name in ("a", "b", "c"):
        (midi / f"{name}.mid").write_bytes(_one_note_midi())   # one piano C4: every shift fits
    out = tmp_path / "out"
    result = _train(out, _tiny_config(tmp_path), "--steps", "2", "--transpose=-2..3", data=str(midi),
                    tokenizer="remi", batch=2)
    assert result.returncode == 0, result.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    train_pieces = metrics["n_train_pieces"]
    assert metrics["transpose"] == [-2, -1, 1, 2, 3] and metrics["n_train_sequences"] == 6 * train_pieces
    assert "every shift of -2..+3 semitones" in (out / "model_card.md").read_text()
    bad = _train(tmp_path / "o2", "tiny", "--steps", "2", "--transpose", "3", data=str(midi), tokenizer="remi")
    assert bad.returncode == 2 and bad.stderr.strip() == (
        "ostinato: --transpose: expected LOW..HIGH semitones within -11..11 (e.g. -5..6), or all, got '3'")
    assert not (tmp_path / "o2").exists()
    abc = _train(tmp_path / "o3", _tiny_config(tmp_path), "--steps", "2", "--transpose=-1..1", batch=2)
    assert abc.returncode == 0, abc.stderr
    metrics = json.loads((tmp_path / "o3" / "metrics.json").read_text())
    assert metrics["transpose"] == [-1, 1] and metrics["n_train_sequences"] == 3 * metrics["n_train_pieces"]


def test_leave_out_names_a_collection_the_data_lacks_in_one_line(tmp_path):
    result = _train(tmp_path / "out", "tiny", "--steps", "2", "--leave-out", "ryansMammoth")
    assert result.returncode == 1 and result.stderr.strip() == (
        f"ostinato: {TUNES}: has no collection 'ryansMammoth' to leave out (it has: essenFolksong)")
    assert not (tmp_path / "out" / "checkpoints").exists()


def test_repeats_played_out_are_trained_on_as_performed_and_recorded(tmp_path):
    tunes = tmp_path / "tunes.abc"
    tunes.write_text("".join(f"X:{i}\nM:4/4\nL:1/4\nK:C\n|:C D E F|G A B c:|\n|:c B A G|F E D C:|\n\n"
                             for i in range(1, 4)))
    figures = {}
    for expand in (False, True):
        out = tmp_path / f"out-{expand}"
        result = _train(out, _tiny_config(tmp_path), "--steps", "2", *(["--expand-repeats"] if expand else []),
                        data=str(tunes), tokenizer="remi", batch=2)
        assert result.returncode == 0, result.stderr
        figures[expand] = json.loads((out / "metrics.json").read_text())
        assert figures[expand]["expand_repeats"] is expand
        assert ("Repeats played out" in (out / "model_card.md").read_text()) is expand
    written, performed = figures[False]["n_train_tokens"], figures[True]["n_train_tokens"]
    assert performed > 1.8 * written   # every bar played twice: its notes (and bar tokens) twice


@pytest.mark.parametrize("name", ["folk-abc.json", "folk-abc-large.json", "folk-abc-7x256.json"])
def test_the_example_model_configs_load_and_fit_the_25_mb_a_shipped_model_may_take(name):
    from ostinato.symbolic.model import model_config

    config = model_config(str(REPO / "examples" / "configs" / name))
    model = build_model(config, len(build_tokenizer("abc")) + 11)   # + the infill and span tokens
    size = sum(p.numel() * p.element_size() for p in model.parameters())
    assert size <= 25_000_000, f"{name}: {size:,} bytes of float32 weights"
