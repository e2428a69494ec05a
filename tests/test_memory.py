"""The memory of an ABC model's training tunes (symbolic/memory.py, `ostinato train memory`)."""

import hashlib
import json
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import run_cli

from ostinato.events.errors import InputError
from ostinato.symbolic.memory import (
    COUNT_BANDS,
    MEMORY_TENSORS,
    MEMORY_WEIGHTS,
    ORDER_BANDS,
    SEP,
    DegreeCode,
    Memory,
    MemoryWeights,
    build_alphabet,
    encode_stream,
    fit_weights,
    load_memory,
    save_memory,
)
from ostinato.symbolic.tokenizers import build_tokenizer

TUNES = "music21:essenFolksong/han1.abc"   # 554 German folk tunes, 26 of them held out

REEL = "X:1\nM:4/4\nL:1/8\nK:G\nGABc dBAG|FGAB cAFD|GABc dBAG|FAdc BGG2|]\n"
WALTZ = "X:1\nM:3/4\nL:1/4\nK:G\nB2 A|G2 E|D2 E|G3|]\n"


def _ids(tok, text):
    return [int(t) for t in tok.encode(tok.normalise(text))]


def _memory(tok, tunes, weights=None):
    code = DegreeCode(tok)
    alphabet = build_alphabet(code, tunes)
    return Memory(tok, alphabet, encode_stream(code, alphabet, tunes), weights)


def test_a_tune_and_its_transposition_read_as_the_same_degrees():
    tok = build_tokenizer("abc")
    ids = _ids(tok, REEL)
    down = tok.transpose_ids(ids, -5)   # G -> D, letters three steps down
    assert tok.decode(down) != tok.decode(ids)
    code = DegreeCode(tok)
    assert code.codes(down).tolist() == code.codes(ids).tolist()
    up = tok.transpose_ids(ids, 2)      # G -> A: one letter up, the degrees the same
    assert code.codes(up).tolist() == code.codes(ids).tolist()
    assert code.tonic_in_force(ids) == "CDEFGAB".index("G") and code.tonic_in_force(up) == "CDEFGAB".index("A")


def test_recall_finds_the_longest_run_and_writes_its_continuation_in_the_key_in_force():
    tok = build_tokenizer("abc")
    reel, waltz = _ids(tok, REEL), _ids(tok, WALTZ)
    memory = _memory(tok, [reel, waltz])
    cut = reel.index(tok.token_to_id["F"])   # the reel up to its second bar's first note
    order, count, q = memory.recall(reel[:cut])
    assert order == cut and count == 1       # the whole prefix, <bos> on, occurs once
    letters = np.flatnonzero(q[:len(memory.alphabet)] == q.max())
    assert q.sum() == pytest.approx(1.0)
    # the same prefix in A: the run is the same (read as degrees) and the note proposed is G, F's degree in A
    in_a = tok.transpose_ids(reel, 2).tolist()
    order_a, count_a, q_a = memory.recall(in_a[:cut])
    assert (order_a, count_a) == (order, count) and np.array_equal(q_a, q)
    probs = np.full(len(tok), 1 / len(tok))
    _, _, vocab_q = memory.distribution(in_a[:cut], probs)
    assert vocab_q.sum() == pytest.approx(1.0)
    assert tok.vocab[int(vocab_q.argmax())] == "G" and tok.vocab[reel[cut]] == "F"
    assert len(letters) == 1
    # a run nowhere in the memory: only the shorter runs' counts, down to the unigram
    order_0, count_0, _ = memory.recall([tok.token_to_id["z"]] * 3)
    assert order_0 == 0 and count_0 == len(reel) + len(waltz)


def test_the_mixture_is_a_distribution_and_the_weights_choose_how_much():
    tok = build_tokenizer("abc")
    reel = _ids(tok, REEL)
    rows = [[0.0] * len(COUNT_BANDS) for _ in ORDER_BANDS]
    rows[-1][0] = 0.9   # runs of 32+ tokens seen once: 0.9
    memory = _memory(tok, [reel], MemoryWeights(tuple(tuple(r) for r in rows)))
    log_probs = torch.log_softmax(torch.randn(len(tok), generator=torch.Generator().manual_seed(0)), -1)
    mixed = memory.mix(reel[:40], log_probs)
    assert torch.logsumexp(mixed.double(), 0).item() == pytest.approx(0.0, abs=1e-6)
    order, count, q = memory.distribution(reel[:40], log_probs.exp().double().numpy())
    assert order == 40 and count == 1
    expected = np.log(0.1 * log_probs.exp().double().numpy() + 0.9 * q)
    assert np.allclose(mixed.numpy(), expected)
    assert torch.equal(memory.mix(reel[:20], log_probs), log_probs)   # a 20-token run has weight 0 here
    # composing: the memory does not carry a run of max_run tokens or more further (compose.MEMORY_MAX_RUN)
    assert torch.equal(memory.mix(reel[:40], log_probs, max_run=40), log_probs)
    assert torch.equal(memory.mix(reel[:40], log_probs, max_run=41), mixed)


def test_em_finds_the_weight_the_tokens_were_drawn_with():
    """Each token comes from the memory with probability 0.7 in one band, 0.2 in another: EM finds both."""
    rng = np.random.default_rng(0)
    n = 40000
    orders = np.where(np.arange(n) < n // 2, 33, 5)
    from_memory = rng.random(n) < np.where(orders == 33, 0.7, 0.2)
    p = np.where(from_memory, 0.01, 0.5)   # the model's probability of the token drawn
    q = np.where(from_memory, 0.9, 0.001)
    weights = fit_weights(p, orders, np.ones(n, np.int64), q)
    table = np.asarray(weights.weights)
    assert table[11, 0] == pytest.approx(0.7, abs=0.02) and table[2, 0] == pytest.approx(0.2, abs=0.02)
    assert table[0, 1] == 0.0   # a band with no token


def test_a_memory_folder_that_is_not_ours_is_refused_in_one_line(tmp_path):
    tok = build_tokenizer("abc")
    reel = _ids(tok, REEL)
    code = DegreeCode(tok)
    alphabet = build_alphabet(code, [reel])
    weights = MemoryWeights(tuple(tuple([0.0] * len(COUNT_BANDS)) for _ in ORDER_BANDS))
    save_memory(tmp_path, alphabet, encode_stream(code, alphabet, [reel]), weights)
    assert load_memory(tmp_path, tok) is not None
    from safetensors.torch import save_file

    good = (tmp_path / MEMORY_TENSORS).read_bytes()
    save_file({"alphabet": torch.zeros(3, dtype=torch.float32), "stream": torch.zeros(3, dtype=torch.uint8)},
              str(tmp_path / MEMORY_TENSORS))
    with pytest.raises(InputError, match="int32 'alphabet'"):
        load_memory(tmp_path, tok)
    save_file({"alphabet": torch.tensor([0, 2999], dtype=torch.int32), "stream": torch.zeros(3, dtype=torch.uint8)},
              str(tmp_path / MEMORY_TENSORS))   # 2999: no mode of this tokenizer
    with pytest.raises(InputError, match="code 2999 is no token"):
        load_memory(tmp_path, tok)
    save_file({"alphabet": torch.tensor([0, 5], dtype=torch.int32), "stream": torch.tensor([255, 0, 7],
              dtype=torch.uint8)}, str(tmp_path / MEMORY_TENSORS))
    with pytest.raises(InputError, match="a letter past the alphabet"):
        load_memory(tmp_path, tok)
    (tmp_path / MEMORY_TENSORS).write_bytes(b"\x80\x04not safetensors")   # a pickle is never unpickled
    with pytest.raises(InputError, match="cannot load the memory"):
        load_memory(tmp_path, tok)
    (tmp_path / MEMORY_TENSORS).write_bytes(good)
    (tmp_path / MEMORY_WEIGHTS).write_text(json.dumps({"weights": []}))
    with pytest.raises(InputError, match=r"memory\.json"):
        load_memory(tmp_path, tok)
    data = weights.to_json()
    data["weights"][0][0] = 1.5
    (tmp_path / MEMORY_WEIGHTS).write_text(json.dumps(data))
    with pytest.raises(InputError, match="0 <= w < 1"):
        load_memory(tmp_path, tok)
    assert SEP == 255
    with pytest.raises(InputError, match="a memory is an ABC model's"):
        load_memory(tmp_path, build_tokenizer("remi"))


def _digest(folder: Path) -> str:
    return hashlib.sha256(b"".join(p.read_bytes() for p in sorted(folder.iterdir()))).hexdigest()


def test_train_memory_fits_writes_and_the_folder_scores_and_composes_with_it(tmp_path):
    """folk-abc given a memory of han1's training tunes: the held-out figure falls, `evaluate nll` of the
    new folder is the fit's, and it composes valid tunes, the same ones again with the seed."""
    from ostinato.symbolic.shipped import resolve_model

    shipped = resolve_model("folk-abc")
    plain = tmp_path / "plain"   # the shipped weights without the shipped memory
    plain.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (plain / name).write_bytes((shipped / name).read_bytes())
    before = _digest(plain)
    out = tmp_path / "with-memory"
    result = run_cli("train", "memory", "--model", str(plain), "--data", TUNES, "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert _digest(plain) == before   # the model's own folder is never written
    record = json.loads((out / "metrics.json").read_text())["memory"]
    assert record["n_pieces"] == 26 and record["memory_tunes"] == 554 - 26
    assert record["bits_per_char_memory"] < record["bits_per_char_model"]
    assert record["bits_per_char_memory"] <= record["bits_per_char_crossfit"]   # in-sample is the optimum
    assert "## Memory" in (out / "model_card.md").read_text()
    scored = run_cli("evaluate", "nll", TUNES, "--model", str(out), "--json", "-q")
    assert scored.returncode == 0, scored.stderr
    assert json.loads(scored.stdout)["bits_per_char"] == pytest.approx(record["bits_per_char_memory"], abs=1e-5)
    alone = run_cli("evaluate", "nll", TUNES, "--model", str(plain), "--json", "-q")
    assert json.loads(alone.stdout)["bits_per_char"] == pytest.approx(record["bits_per_char_model"], abs=1e-5)
    tunes = []
    for name in ("a", "b"):
        done = run_cli("compose", "--model", str(out), "--format", "abc", "-n", "3", "--seed", "5", "--bars", "8",
                       "-o", str(tmp_path / name))
        assert done.returncode == 0, done.stderr
        tunes.append([p.read_text() for p in sorted((tmp_path / name).glob("*.abc"))])
    assert tunes[0] == tunes[1] and len(tunes[0]) == 3
    from ostinato.symbolic.evaluate import check_abc_tune

    assert all(check_abc_tune(text).valid for text in tunes[0])


def test_the_suffix_array_sorts_by_the_first_letters_asked():
    """Random texts over small alphabets (long repeats): every suffix once, in order of its first ``depth``
    letters (a suffix that ends sooner first), the order the memory's nested ranges rely on."""
    from ostinato.symbolic.memory import _suffix_array

    rng = np.random.default_rng(0)
    for _ in range(300):
        text = rng.integers(0, rng.integers(1, 5), rng.integers(0, 80))
        depth = int(rng.integers(1, 40))
        order = _suffix_array(text, depth)
        assert sorted(order.tolist()) == list(range(len(text)))
        firsts = [tuple(text[i:i + depth].tolist()) for i in order]
        assert firsts == sorted(firsts)


def test_train_memory_refuses_in_one_line(tmp_path):
    """A MIDI model (the memory reads ABC scale degrees), an output folder that is not new: one line each, exit 2
    or 1, no traceback, nothing written."""
    result = run_cli("train", "memory", "--model", "chorale-midi", "--data", TUNES, "--out", str(tmp_path / "m"))
    assert result.returncode != 0 and "not an ABC model" in result.stderr and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and not (tmp_path / "m").exists()
    (tmp_path / "full").mkdir()
    (tmp_path / "full" / "x").write_text("x")
    result = run_cli("train", "memory", "--model", "folk-abc", "--data", TUNES, "--out", str(tmp_path / "full"))
    assert result.returncode != 0 and "must be a new or empty folder" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and "Traceback" not in result.stderr


def test_a_torn_memory_in_a_model_folder_is_one_line_when_composing(tmp_path):
    from ostinato.symbolic.shipped import resolve_model

    shipped = resolve_model("folk-abc")
    folder = tmp_path / "torn"
    folder.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json", MEMORY_WEIGHTS):
        (folder / name).write_bytes((shipped / name).read_bytes())
    (folder / MEMORY_TENSORS).write_bytes((shipped / MEMORY_TENSORS).read_bytes()[:5000])
    result = run_cli("compose", "--model", str(folder), "--format", "abc", "-o", str(tmp_path / "t.abc"))
    assert result.returncode != 0 and "Traceback" not in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1 and MEMORY_TENSORS in result.stderr
    assert not (tmp_path / "t.abc").exists()
