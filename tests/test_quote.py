"""Quoting (symbolic/quote.py): an infill may repeat the music shown around it, token for token."""

import json
import math
import shutil

import numpy as np
import pytest
import torch
from conftest import run_cli

from ostinato.events.errors import InputError
from ostinato.events.instruments import assign_instruments
from ostinato.events.sources import iter_items
from ostinato.symbolic.infill import infill, infill_compositions, middle_token_bits
from ostinato.symbolic.model import ModelConfig, build_model, load_model_folder
from ostinato.symbolic.quote import (
    BANDS,
    QUOTE_FILE,
    Quoter,
    QuoteWeights,
    fit_weights,
    load_weights,
    mix_log_probs,
    quoted_bits,
)
from ostinato.symbolic.sample import SamplingConfig, sample
from ostinato.symbolic.shipped import resolve_model

TUNES = "music21:essenFolksong/han1.abc"


def test_the_quoter_takes_the_longest_run_of_the_history_found_in_the_music_shown():
    quoter = Quoter([[1, 2, 3, 4, 5, 9], [7, 2, 3, 4, 6]])
    assert quoter.propose([0, 2, 3, 4]) == (3, {5: 1, 6: 1})   # as long in both runs: both proposals pooled
    assert quoter.propose([1, 2, 3, 4]) == (4, {5: 1})         # longer in the first run: its proposal alone
    assert quoter.propose([3, 4]) == (2, {5: 1, 6: 1})
    assert quoter.propose([8]) == (0, {})                       # not in the music shown
    assert quoter.propose([9]) == (0, {})                       # nothing follows it there
    assert quoter.propose([]) == (0, {})
    assert Quoter([[5, 6, 5, 6, 5, 7]]).propose([5]) == (1, {6: 2, 7: 1})   # counts of what followed


def test_the_weight_goes_by_the_band_of_the_match_length():
    weights = QuoteWeights((0.0, 0.1, 0.2, 0.3, 0.5, 0.9, 0.95))
    assert [weights.weight(n) for n in (0, 1, 3, 4, 7, 8, 16, 23, 24, 31, 32, 48)] == [
        0.0, 0.0, 0.0, 0.1, 0.1, 0.2, 0.5, 0.5, 0.9, 0.9, 0.95, 0.95]
    for bad in [(0.1,) * 6, (0.1,) * 6 + (1.0,), (0.1,) * 6 + (-0.1,), (0.1,) * 6 + (float("nan"),)]:
        with pytest.raises(ValueError):
            QuoteWeights(bad)


def test_quote_json_round_trips_and_a_broken_one_is_one_line_naming_it(tmp_path):
    assert load_weights(tmp_path) is None   # no file: the model alone
    weights = QuoteWeights((0.0, 0.02, 0.03, 0.29, 0.57, 0.875, 0.978))
    (tmp_path / QUOTE_FILE).write_text(json.dumps(weights.to_json()))
    assert load_weights(tmp_path) == weights
    path = tmp_path / QUOTE_FILE
    for text, problem in [
        ("{", "not JSON"),
        ('{"weights": [0.1]}', 'expected an object with "bands", "max_match" and "weights"'),
        (json.dumps({**weights.to_json(), "bands": [1, 2]}), "this version quotes with bands"),
        (json.dumps({**weights.to_json(), "weights": [0.5] * 6 + [1.5]}), "expected numbers 0 <= w < 1"),
        (json.dumps({**weights.to_json(), "weights": "0.5"}), "weights: expected a list"),
    ]:
        path.write_text(text)
        with pytest.raises(InputError) as info:
            load_weights(tmp_path)
        assert str(info.value).startswith(f"{path}: ") and problem in str(info.value), str(info.value)
        assert "\n" not in str(info.value)


def test_quoted_bits_are_the_mixture_of_the_model_and_the_quote():
    weights = QuoteWeights((0.5, 0.5, 0.5, 0.5, 0.5, 0.5, 0.5))
    bits = quoted_bits(np.array([2.0, 3.0, 1.0]), [4, 7, 2], [1, 2, 3], [[1, 2, 3, 4], [9, 7, 2]], weights)
    # 4 after 1 2 3: run 3, the quote says 4 for sure; 7 after 1 2 3 4: no run (nothing follows 4), the model's
    # own; 2 after ... 4 7: run 1 in the second run shown, which says 2
    assert bits == pytest.approx([-math.log2(0.5 * 0.25 + 0.5), 3.0, -math.log2(0.5 * 0.5 + 0.5)])
    log_probs = torch.log_softmax(torch.tensor([0.0, 1.0, 2.0, 3.0]), -1)
    mixed = mix_log_probs(log_probs, 5, {1: 3, 2: 1}, weights)
    expected = 0.5 * log_probs.exp() + 0.5 * torch.tensor([0.0, 0.75, 0.25, 0.0])
    assert torch.allclose(mixed.exp(), expected) and float(mixed.exp().sum()) == pytest.approx(1.0)
    assert mix_log_probs(log_probs, 0, {}, weights) is log_probs   # no run: the model's own distribution


def test_em_fits_each_band_to_how_often_its_quote_is_right():
    # band 8-11: the quote right half the time (q = 1, p = 0.2) and wrong the other half (q = 0, p = 0.2):
    # the likelihood log(0.2 + 0.8 w) + log(0.2 - 0.2 w) is highest at w = 0.375
    observations = ([(0.2, 9, 1.0), (0.2, 10, 0.0)] * 50 + [(0.1, 30, 1.0)] * 40 + [(0.3, 5, 0.0)] * 30)
    weights, counts = fit_weights(observations, iterations=2000)
    assert counts == [0, 30, 100, 0, 0, 40, 0]
    assert weights.weights[BANDS.index(8)] == pytest.approx(0.375, abs=1e-3)
    assert weights.weights[BANDS.index(4)] == 0.0                  # never right: never quoted
    assert weights.weights[BANDS.index(24)] == pytest.approx(0.999)  # always right: as much as allowed
    assert weights.weights[BANDS.index(1)] == 0.0                  # no tokens: 0
    with pytest.raises(ValueError):
        fit_weights([])


def test_the_sampler_mixes_each_sequence_before_its_draw():
    torch.manual_seed(0)
    model = build_model(ModelConfig(n_layers=1, d_model=16, n_heads=2, context=32, dropout=0.0), 10).eval()
    seen = []

    def only_seven(sequence, log_probs):
        seen.append(len(sequence))
        out = torch.full_like(log_probs, -math.inf)
        out[7] = 0.0
        return out

    seqs = sample(model, prompt=[1, 3], n=2, config=SamplingConfig(max_tokens=8, seed=1), eos_id=2,
                  mix=[only_seven, lambda sequence, log_probs: log_probs])
    assert seqs[0] == [1, 3] + [7] * 6
    assert seqs[1][:2] == [1, 3] and seqs[1][2:] != [7] * 6
    assert seen[:2] == [2, 3]   # it sees the sequence so far
    with pytest.raises(ValueError, match="mix: expected 2, got 1"):
        sample(model, prompt=[1, 3], n=2, config=SamplingConfig(max_tokens=8), eos_id=2, mix=[only_seven])


@pytest.fixture(scope="module")
def performed():
    """bwv153.5 (held out) with its repeat played out: bars 2-4 come back as bars 6-8, token for token."""
    item = next(i for i in iter_items("music21:bach", split="test") if i.key == "bach/bwv153.5.mxl")
    return assign_instruments(item.read(expand_repeats=True), item.key)


def test_a_middle_with_its_copy_in_the_suffix_costs_little_with_the_quotes(performed):
    folder = resolve_model("chorale-midi")
    model, tok, _ = load_model_folder(folder, inference=True)
    weights = load_weights(folder)
    assert weights is not None   # the shipped model's own (`ostinato train quote`, its card)
    fim, plain, _ = middle_token_bits(model, tok, performed, (2, 3), style="bach", quote=weights)
    fim_alone, plain_alone, _ = middle_token_bits(model, tok, performed, (2, 3), style="bach")
    # the model alone hardly uses the copy four bars on; quoting it, the middle is nearly free
    assert fim_alone.mean() > 0.5 and plain_alone.mean() > 0.5
    assert fim.mean() < 0.25 * fim_alone.mean()
    # without the suffix there is nothing to quote but the prefix, which holds no copy of bars 2-3
    assert plain.mean() > 0.8 * plain_alone.mean()
    # and bars 6-7, whose copy (bars 2-3) is in the prefix, are cheap with the suffix in view or without
    fim6, plain6, _ = middle_token_bits(model, tok, performed, (6, 7), style="bach", quote=weights)
    assert fim6.mean() < 0.25 and plain6.mean() < 0.25


def test_greedy_fills_take_the_copy_and_sampled_ones_stay_valid(performed):
    folder = resolve_model("chorale-midi")
    model, tok, _ = load_model_folder(folder, inference=True)
    weights = load_weights(folder)
    from ostinato import events

    downbeats = sorted({int(t) for t in events.to_score(performed).get_downbeats()} | {0})
    start, end = downbeats[2], downbeats[4]   # bars 3-4: their copy, bars 7-8, follows bar 6, the copy of bar 2
    span = (performed.onset_tick >= start) & (performed.onset_tick < end)
    own = performed.select(span).sorted()
    greedy = infill_compositions(model, tok, performed, (3, 4), style="bach", quote=weights,
                                 sampling=SamplingConfig(temperature=0.0))[0].table
    again = greedy.select((greedy.onset_tick >= start) & (greedy.onset_tick < end)).sorted()
    for column in ("pitch", "onset_tick", "offset_tick", "track"):
        assert np.array_equal(getattr(again, column), getattr(own, column)), column
    api = infill(performed, "3-4", temperature=0.0, style="bach")   # the Python API: the shipped model's quotes
    assert np.array_equal(api.sorted().pitch, greedy.sorted().pitch)
    first = infill_compositions(model, tok, performed, (3, 4), n=2, style="bach", quote=weights,
                                sampling=SamplingConfig(seed=3, top_p=0.95))
    second = infill_compositions(model, tok, performed, (3, 4), n=2, style="bach", quote=weights,
                                 sampling=SamplingConfig(seed=3, top_p=0.95))
    for a, b in zip(first, second, strict=True):   # seeded: the same fills
        assert np.array_equal(a.table.pitch, b.table.pitch) and np.array_equal(a.table.onset_tick, b.table.onset_tick)
        kept = a.table.select((a.table.onset_tick < start) | (a.table.onset_tick >= end)).sorted()
        outside = performed.select(~span).sorted()
        assert np.array_equal(kept.pitch, outside.pitch) and np.array_equal(kept.onset_tick, outside.onset_tick)


def test_train_quote_writes_a_new_model_folder_and_never_the_models_own(tmp_path):
    source = resolve_model("folk-abc")
    before = {p.name: p.read_bytes() for p in source.iterdir()}
    out = tmp_path / "folk-quoted"
    result = run_cli("train", "quote", "--model", "folk-abc", "--data", TUNES, "--pieces", "3", "--spans", "2",
                     "--out", str(out))
    assert result.returncode == 0, result.stderr
    assert {p.name: p.read_bytes() for p in source.iterdir()} == before
    assert sorted(p.name for p in out.iterdir()) == sorted([*before, QUOTE_FILE])
    for name, data in before.items():
        if name != "model_card.md":
            assert (out / name).read_bytes() == data, name
    weights = load_weights(out)
    card = (out / "model_card.md").read_text()
    assert card.startswith(before["model_card.md"].decode().rstrip("\n"))
    assert "## Quotes (infilling)" in card and f"train quote --model folk-abc --data {TUNES}" in card
    assert "| 32-48 | " in card and f"{weights.weights[-1]:.3f} |" in card
    assert f"{out}: quote weights " in result.stderr
    # an infill with the new folder quotes; the same seed gives the same tune
    primer = tmp_path / "t.abc"
    primer.write_text(next(iter_items(TUNES, split="test")).abc_text())
    runs = [run_cli("compose", "--model", str(out), "--primer", str(primer), "--infill", "2-3", "-o",
                    str(tmp_path / f"o{i}.abc"), "--seed", "4", "-q") for i in range(2)]
    assert all(r.returncode == 0 for r in runs), runs[0].stderr
    assert (tmp_path / "o0.abc").read_text() == (tmp_path / "o1.abc").read_text()
    # not onto a folder with files in it (the model's own among them), and not with nothing to fit
    for args, message in [
        (["--out", str(out)], f"{out}: the new model folder must be a new or empty folder (not the model's own)"),
        (["--out", str(source)], f"{source}: the new model folder must be a new or empty folder (not the model's own)"),
        (["--out", str(tmp_path / "x"), "--pieces", "0"], "--pieces: expected a positive number, got 0"),
    ]:
        bad = run_cli("train", "quote", "--model", "folk-abc", "--data", TUNES, *args)
        assert bad.returncode != 0 and bad.stderr.strip().splitlines() == [f"ostinato: {message}"], bad.stderr
    assert not (tmp_path / "x").exists()


def test_a_broken_quote_json_stops_an_infill_in_one_line(tmp_path):
    folder = tmp_path / "folk"
    shutil.copytree(resolve_model("folk-abc"), folder)
    (folder / QUOTE_FILE).write_text('{"weights": "all"}')
    primer = tmp_path / "t.abc"
    primer.write_text(next(iter_items(TUNES, split="test")).abc_text())
    result = run_cli("compose", "--model", str(folder), "--primer", str(primer), "--infill", "2-3", "-o",
                     str(tmp_path / "o.abc"), "-q")
    assert result.returncode != 0 and not (tmp_path / "o.abc").exists()
    assert result.stderr.strip().splitlines() == [
        f'ostinato: {folder / QUOTE_FILE}: expected an object with "bands", "max_match" and "weights" '
        f'(`ostinato train quote` writes it)']


def test_no_quote_infills_with_the_model_alone_and_only_goes_with_infill(tmp_path):
    primer = tmp_path / "chorale.mid"
    from ostinato import events

    item = next(i for i in iter_items("music21:bach", split="test") if i.key == "bach/bwv153.5.mxl")
    events.write(assign_instruments(item.read(expand_repeats=True), item.key), primer)
    outs = {}
    for flag in ([], ["--no-quote"]):
        out = tmp_path / f"out{len(flag)}.mid"
        result = run_cli("compose", "--primer", str(primer), "--infill", "3-4", "--temperature", "0", "-o", str(out),
                         "-q", *flag)
        assert result.returncode == 0, result.stderr
        outs[bool(flag)] = events.read(out)
    table = events.read(primer)
    # greedy with the quotes: bars 3-4 again (their copy follows bar 6, the copy of bar 2); the model alone: not
    same = [len(outs[q]) == len(table) and np.array_equal(outs[q].sorted().pitch, table.sorted().pitch)
            for q in (False, True)]
    assert same == [True, False]
    bad = run_cli("compose", "--no-quote", "-o", str(tmp_path / "x.mid"), "-q")
    assert bad.returncode == 2 and bad.stderr.strip().splitlines() == [
        "ostinato: --no-quote: goes with --infill (the quotes are an infill's)"]
