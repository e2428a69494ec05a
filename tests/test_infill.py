"""Infilling (issue 20): the fill-in-the-middle format, the span grammars, exact bars outside the span,
and a tiny real training run that learns the format and then infills through the CLI."""

import itertools
import json
from fractions import Fraction

import music21
import numpy as np
import pytest
import torch
from conftest import brown_thorn, run_cli

from ostinato import events
from ostinato.events.instruments import assign_instruments, instrument_range
from ostinato.events.sources import iter_items
from ostinato.symbolic.abc_tokens import AbcTokenizer
from ostinato.symbolic.fim import FIM_ORDER, SPAN_TOKENS, fim_order, fim_prompt, has_span, plain_json, span_id
from ostinato.symbolic.infill import (
    INFILL_TOKENS,
    add_infill_tokens,
    bar_cuts,
    fim_cut,
    fim_example,
    from_fim,
    has_infill,
    infill_compositions,
    infill_ids,
    middle_bits,
    middle_token_bits,
    split_bars,
    split_head,
    to_fim,
    token_log_probs,
)
from ostinato.symbolic.model import ModelConfig, build_model, load_model_folder, save_model_folder
from ostinato.symbolic.sample import SamplingConfig
from ostinato.symbolic.tokenizers import build_tokenizer, load_tokenizer

TUNES = "music21:essenFolksong/han1.abc"


def _abc_tunes(n: int) -> list[str]:
    tok = AbcTokenizer()
    out = []
    for item in iter_items(TUNES, split="all"):
        try:
            out.append(tok.normalise(item.abc_text()))
        except ValueError:
            continue
        if len(out) == n:
            return out
    return out


def _chorales(n: int):
    items = list(iter_items("music21:bach", split="all"))[:n]
    return [assign_instruments(item.read(), item.key) for item in items]


def _random_model(tokenizer, context: int = 512):
    torch.manual_seed(0)
    return build_model(ModelConfig(n_layers=1, d_model=32, n_heads=2, context=context, dropout=0.0),
                       len(tokenizer)).eval()


def _bars(tok, text: str) -> tuple[list[list[str]], list[str]]:
    """The closed bars of a tune (each bar's tokens, its closing bar line group included) and what follows."""
    _head, body, _ = split_head(tok, tok.encode(text, normalised=True))
    cuts = bar_cuts(tok, body)
    words = [tok.vocab[i] for i in body]
    return [words[a:b] for a, b in itertools.pairwise(cuts)], words[cuts[-1]:]


def _measure_lengths(text: str) -> list[tuple[Fraction, Fraction]]:
    """(length, the meter's bar length) in quarters of each bar with notes, as music21 reads the tune."""
    score = music21.converter.parse(text, format="abc")
    part = score.parts[0] if score.parts else score
    return [(Fraction(m.duration.quarterLength).limit_denominator(10000),
             Fraction(m.barDuration.quarterLength).limit_denominator(10000))
            for m in part.getElementsByClass("Measure") if m.notesAndRests]


# ---------------------------------------------------------------------------- the format
def test_new_tokens_leave_every_id_and_the_shipped_models_have_them():
    for name in ("folk-abc", "chorale-midi"):   # fine-tuned with the format, then with the span tokens after it
        tok = load_tokenizer(f"symbolic/pretrained/{name}")
        assert has_infill(tok) and has_span(tok) and tok.vocab[-11:] == [*INFILL_TOKENS, *SPAN_TOKENS]
    for tok in (AbcTokenizer(), build_tokenizer("remi", styles=["bach"])):
        assert not has_infill(tok)
        plain = list(tok.vocab)
        add_infill_tokens(tok)
        assert tok.vocab[:len(plain)] == plain and tok.vocab[len(plain):] == list(INFILL_TOKENS)
        assert infill_ids(tok) == (len(plain), len(plain) + 1, len(plain) + 2)
        again = type(tok).from_json(json.loads(json.dumps(tok.to_json())))
        assert again.vocab == tok.vocab and has_infill(again)
        assert fim_order(tok) == fim_order(again) == "spm" == FIM_ORDER   # what training writes now
        legacy = {k: v for k, v in tok.to_json().items() if k != "infill_order"}   # saved before the order was
        assert fim_order(type(tok).from_json(legacy)) == "psm"
        with pytest.raises(ValueError, match="infill_order"):
            type(tok).from_json({**tok.to_json(), "infill_order": "mps"})
        assert plain_json(tok) == plain_json(type(tok).from_json(legacy))   # the token cache is shared


def test_the_two_orders_of_the_format():
    tok = AbcTokenizer()
    fill, mid, end = infill_ids(add_infill_tokens(tok))
    parts = split_bars(tok, tok.encode(_abc_tunes(1)[0], normalised=True), 2, 3)
    h, p, m, s = parts.head, parts.prefix, parts.middle, parts.suffix
    assert to_fim(tok, parts) == [*h, fill, *s, mid, *p, *m, end]   # spm: the middle continues the prefix
    assert from_fim(tok, to_fim(tok, parts), n_middle=len(m)) == parts
    with pytest.raises(ValueError, match="n_middle"):
        from_fim(tok, to_fim(tok, parts))
    add_infill_tokens(tok, "psm")
    assert to_fim(tok, parts) == [*h, *p, fill, *s, mid, *m, end]
    assert from_fim(tok, to_fim(tok, parts)) == parts


def test_the_span_tokens_say_the_middles_bars_and_mark_where_it_begins():
    for tok in (AbcTokenizer(), build_tokenizer("remi", styles=["bach"])):
        plain, before = len(tok.vocab), tok.to_json()
        add_infill_tokens(tok)
        assert not has_span(tok)
        add_infill_tokens(tok, span=True)   # a model fine-tuned from one without them: appended after
        assert tok.vocab[plain:] == [*INFILL_TOKENS, *SPAN_TOKENS] and SPAN_TOKENS[-1] == "<span:8>"
        assert [tok.vocab[span_id(tok, k)] for k in (1, 3, 8, 12)] == ["<span:1>", "<span:3>", "<span:8>", "<span:8>"]
        again = type(tok).from_json(json.loads(json.dumps(tok.to_json())))
        assert again.vocab == tok.vocab and has_span(again) and again.blocks["span"] == tok.blocks["span"]
        assert plain_json(again) == before   # the token cache is shared with plain models
    tok = add_infill_tokens(AbcTokenizer(), span=True)
    fill, mid, end = infill_ids(tok)
    text = "X:1\nM:4/4\nL:1/8\nK:G\nG2A2 B2c2|d2e2 f2g2|a8|g8|]\n"
    parts = split_bars(tok, tok.encode(text), 2, 3)
    h, p, m, s = parts.head, parts.prefix, parts.middle, parts.suffix
    assert to_fim(tok, parts) == [*h, fill, *s, mid, *p, span_id(tok, 2), *m, end]
    assert from_fim(tok, to_fim(tok, parts)) == parts   # the span token marks the prefix's end: no n_middle
    with pytest.raises(ValueError, match="n_bars"):
        fim_prompt(tok, h, p, s)
    add_infill_tokens(tok, "psm")
    assert to_fim(tok, parts) == [*h, *p, fill, *s, mid, span_id(tok, 2), *m, end]
    assert from_fim(tok, to_fim(tok, parts)) == parts
    midi = add_infill_tokens(build_tokenizer("remi", styles=["bach"]), span=True)
    ids = midi.encode(_chorales(1)[0], style="bach")
    cut = split_bars(midi, ids, 2, 4)
    assert to_fim(midi, cut)[len(to_fim(midi, cut)) - len(cut.middle) - 2] == span_id(midi, 3)


def test_a_piece_becomes_a_fim_example_and_reassembles_exactly():
    tok = add_infill_tokens(AbcTokenizer())
    fill, mid, end = infill_ids(tok)
    n_checked = 0
    for text in _abc_tunes(40):
        ids = tok.encode(text, normalised=True)
        for seed in range(3):
            fim = fim_example(tok, ids, np.random.default_rng(seed))
            cut = fim_cut(tok, ids, np.random.default_rng(seed))
            assert fim == to_fim(tok, cut) and cut.joined(tok.eos_id) == ids
            assert fim.count(fill) == fim.count(mid) == fim.count(end) == 1 and fim[-1] == end
            assert from_fim(tok, fim, n_middle=len(cut.middle)) == cut
            n_checked += 1
        parts = split_bars(tok, ids, 2, 3)
        assert tok.decode(parts.joined(tok.eos_id)) == text
        assert from_fim(tok, to_fim(tok, parts), n_middle=len(parts.middle)) == parts
    assert n_checked == 120
    midi = add_infill_tokens(build_tokenizer("remi", styles=["bach"]))
    for table in _chorales(3):
        ids = midi.encode(table, style="bach")
        cut = fim_cut(midi, ids, np.random.default_rng(0))
        assert cut.joined(midi.eos_id) == ids
        assert midi.vocab[cut.middle[0]] == "Bar_None"   # a middle is whole bars


def test_most_training_middles_have_a_bar_on_each_side():
    from ostinato.symbolic.fim import INTERIOR_SHARE

    midi = add_infill_tokens(build_tokenizer("remi", styles=["bach"]), span=True)
    table = _chorales(1)[0]
    windows = midi.encode_windows(table, max_tokens=512, style="bach")   # training windows: a few bars each
    n_bars, ids = max((len(bar_cuts(midi, split_head(midi, w)[1])) - 1, w) for w in windows)
    assert 4 <= n_bars <= 8
    cuts = [fim_cut(midi, ids, np.random.default_rng(seed)) for seed in range(400)]
    inside = sum(bool(c.prefix) and bool(c.suffix) for c in cuts) / len(cuts)
    # anywhere in n bars alone, a middle has both neighbours far less often (n = 5: 29%)
    anywhere = np.mean([(n_bars - k - 1) / (n_bars - k + 1) for k in range(1, n_bars + 1)])
    assert inside >= INTERIOR_SHARE - 0.05 > anywhere + 0.3
    assert {len(bar_cuts(midi, c.middle)) - 1 for c in cuts} == set(range(1, n_bars + 1))   # still every length
    assert any(not c.suffix for c in cuts) and any(not c.prefix for c in cuts)   # and the piece's ends


def test_each_pass_over_the_data_draws_new_middles():
    from ostinato.symbolic.data import TokenizedPiece, fim_parts

    tok = add_infill_tokens(AbcTokenizer(), span=True)
    pieces = [TokenizedPiece(f"tune{i}", np.asarray(tok.encode(text, normalised=True), np.int32), 1)
              for i, text in enumerate(_abc_tunes(40))]

    def passes(epoch):
        return [p.ids.tolist() for p in fim_parts(pieces, tok, share=0.5, seed=3, epoch=epoch)]

    first, second = passes(0), passes(1)
    assert first == [p.ids.tolist() for p in fim_parts(pieces, tok, share=0.5, seed=3)]   # pass 0: as before
    assert passes(1) == second   # a pass is the same on every run (and on resume)
    fill = infill_ids(tok)[0]
    in_fim = [sum(fill in ids for ids in run) for run in (first, second)]
    assert all(12 <= n <= 28 for n in in_fim)   # about half of 40 in either pass
    # the pieces in the form in both passes are mostly cut elsewhere the second time
    both = [(a, b) for a, b in zip(first, second, strict=True) if fill in a and fill in b]
    assert both and sum(a != b for a, b in both) >= len(both) // 2


def test_the_loss_can_weigh_an_infill_sequences_context_below_its_middle():
    from ostinato.symbolic.fim import context_weights
    from ostinato.symbolic.train import train_step

    tok = add_infill_tokens(build_tokenizer("remi", styles=["bach"]), span=True)
    chorale, other = (tok.encode(table, style="bach") for table in _chorales(2))
    parts = split_bars(tok, chorale, 3, 4)
    fim = to_fim(tok, parts)
    n_head = len(parts.head)
    window = np.array([fim + other[:40]])   # a window from an infill sequence's <bos> into the next piece
    weights = context_weights(tok, window, 0.25)
    assert weights.shape == (1, len(fim) + 39) and weights.dtype == np.float32
    # targets: the controls and <fill> 1; suffix, <mid>, prefix, <span:k> 0.25; the middle, <endfill> and
    # the left-to-right piece after it 1
    n_context = len(parts.suffix) + 1 + len(parts.prefix) + 1
    expected = [1.0] * n_head + [0.25] * n_context + [1.0] * (len(parts.middle) + 1 + 40)
    assert weights[0].tolist() == expected
    assert context_weights(tok, np.array([other[:41]]), 0.25).tolist() == [[1.0] * 40]   # left to right: all 1
    psm = add_infill_tokens(build_tokenizer("remi", styles=["bach"]), "psm")   # psm: the middle follows <mid>
    head, prefix, suffix = parts.head, parts.prefix, parts.suffix
    seq = fim_prompt(psm, head, prefix, suffix) + parts.middle + [infill_ids(psm)[2]]
    w = context_weights(psm, np.array([seq]), 0.0)[0]
    # controls, prefix, <fill>, middle, <endfill>
    assert w.tolist() == [1.0] * (n_head + len(prefix)) + [0.0] * (len(suffix) + 1) + [1.0] * (len(parts.middle) + 1)
    with pytest.raises(ValueError, match="no marker"):
        context_weights(add_infill_tokens(build_tokenizer("remi", styles=["bach"])), window, 0.5)
    # train_step's weighted loss is the weighted mean of the targets' cross-entropies
    model = _random_model(tok, context=len(fim) + 39).train()
    batch = torch.from_numpy(window)
    with torch.no_grad():
        logits = model(input_ids=batch[:, :-1]).logits
        each = torch.nn.functional.cross_entropy(logits[0], batch[0, 1:], reduction="none")
    w = torch.from_numpy(weights)
    loss, _ = train_step(model, torch.optim.SGD(model.parameters(), lr=0.0), batch, weights=w)
    assert loss.item() == pytest.approx(float((each * w[0]).sum() / w.sum()), rel=1e-5)
    one = torch.zeros_like(w)
    one[0, 7] = 3.0   # one target alone: the loss is its cross-entropy
    loss, _ = train_step(model, torch.optim.SGD(model.parameters(), lr=0.0), batch, weights=one)
    assert loss.item() == pytest.approx(float(each[7]), rel=1e-5)


def test_middle_bits_scores_the_pieces_own_bars_in_the_samplers_prompt_and_left_to_right():
    tok = add_infill_tokens(AbcTokenizer())
    model = _random_model(tok)
    text = _abc_tunes(1)[0]
    parts = split_bars(tok, tok.encode(text), 2, 3)
    with_suffix, without, n = middle_bits(model, tok, text, (2, 3))
    assert n == len(parts.middle) > 0
    fim = [*fim_prompt(tok, parts.head, parts.prefix, parts.suffix), *parts.middle]   # the tune fits whole
    plain = [*parts.head, *parts.prefix, *parts.middle]
    for got, seq in ((with_suffix, fim), (without, plain)):
        assert got == pytest.approx(-token_log_probs(model, seq)[-n:].sum() / np.log(2), rel=1e-9)
    assert with_suffix != pytest.approx(without)
    # token by token (middle_token_bits): the same middle, the same bits where each token is
    per_fim, per_plain, middle = middle_token_bits(model, tok, text, (2, 3))
    assert middle == parts.middle and per_fim.shape == per_plain.shape == (n,)
    assert per_fim == pytest.approx(-token_log_probs(model, fim)[-n:] / np.log(2), rel=1e-9)
    assert per_plain.sum() == pytest.approx(without, rel=1e-12)
    # without="no-suffix": the same infill prompt with nothing between <fill> and <mid>
    again, no_suffix, _ = middle_bits(model, tok, text, (2, 3), without="no-suffix")
    empty = [*fim_prompt(tok, parts.head, parts.prefix, []), *parts.middle]
    assert again == with_suffix
    assert no_suffix == pytest.approx(-token_log_probs(model, empty)[-n:].sum() / np.log(2), rel=1e-9)
    assert no_suffix not in (pytest.approx(with_suffix), pytest.approx(without))
    # both ways at once: the same arrays, in the order asked
    both_fim, (l2r, none), _ = middle_token_bits(model, tok, text, (2, 3), without=("left-to-right", "no-suffix"))
    assert both_fim.tolist() == per_fim.tolist() and l2r.tolist() == per_plain.tolist()
    assert none.sum() == pytest.approx(no_suffix, rel=1e-12)
    with pytest.raises(ValueError, match="without: expected"):
        middle_bits(model, tok, text, (2, 3), without="none")
    with pytest.raises(ValueError, match="extend"):
        middle_bits(model, tok, text, (len(_bars(tok, text)[0]) + 1, len(_bars(tok, text)[0]) + 2))
    with pytest.raises(ValueError, match="bars 2-7 are 52 tokens: after the prompt's 14 they do not fit"):
        middle_bits(_random_model(tok, context=48), tok, text, (2, 7))   # the bars themselves need more room


def test_the_bars_at_both_seams_are_shown_when_they_fit_together():
    from ostinato.symbolic.infill import _fit_midi

    midi = add_infill_tokens(build_tokenizer("remi", styles=["bach"]), span=True)
    bar = midi.token_to_id["Bar_None"]
    checked = 0
    for table in _chorales(4):
        _head, body, _ = split_head(midi, midi.encode(table, style="bach"))
        cuts = bar_cuts(midi, body)
        for i in range(2, len(cuts) - 3):   # prefix: bars 1..i, middle: bar i + 1, suffix: the rest
            prefix, suffix = body[:cuts[i]], body[cuts[i + 1]:]
            last_bar, first_bar = cuts[i] - cuts[i - 1], cuts[i + 2] - cuts[i + 1]
            room = last_bar + first_bar + 4
            if first_bar <= room // 2:   # a suffix of half the room shows its first bar anyway
                continue
            shown_prefix, shown_suffix = _fit_midi(midi, prefix, suffix, room)
            assert shown_suffix == suffix[:first_bar]              # the seam out of the span
            assert shown_prefix.count(bar) == 1 and shown_prefix[-1] == prefix[-1]   # and the seam into it
            assert len(shown_prefix) + len(shown_suffix) <= room
            checked += 1
    assert checked >= 5


# ---------------------------------------------------------------------------- span grammars
def test_abc_span_keeps_every_other_bar_byte_for_byte_and_fills_whole_bars():
    tok = add_infill_tokens(AbcTokenizer())
    model = _random_model(tok)
    checked = 0
    for text in _abc_tunes(12):
        bars, tail = _bars(tok, text)
        first, last = 2, min(4, len(bars))
        pieces = infill_compositions(model, tok, text, (first, last), n=2, sampling=SamplingConfig(seed=3))
        for piece in pieces:
            new_bars, new_tail = _bars(tok, piece.text)
            assert len(new_bars) == len(bars) and new_tail == tail
            for i, (old, new) in enumerate(zip(bars, new_bars, strict=True), start=1):
                if i < first or i > last:
                    assert "".join(new) == "".join(old)           # the bar's bytes in the text
                else:
                    assert new[-1] == old[-1]                     # its own closing bar line
            lengths = _measure_lengths(piece.text)
            for i in range(first, last + 1):
                assert lengths[i - 1][0] == lengths[i - 1][1], (piece.text, i)
            checked += 1
    assert checked == 24


def test_abc_infill_after_bars_with_marks_the_grammar_would_not_write():
    """The bars before the span tie different notes (``D-E``): the infill said "the bars before the span are
    not valid ABC tokens: token 'E' not allowed: a tie continues 'D'". They are read without their ties and
    slurs (which change no length), and the span is filled as anywhere else."""
    tok = add_infill_tokens(AbcTokenizer())
    model = _random_model(tok)
    text = tok.normalise(brown_thorn())
    bars, tail = _bars(tok, text)
    assert "".join(bars[0]) == "D-E|" and len(bars) == 17
    for piece in infill_compositions(model, tok, text, (5, 6), n=2, sampling=SamplingConfig(seed=2)):
        new_bars, new_tail = _bars(tok, piece.text)
        assert len(new_bars) == 17 and new_tail == tail
        assert ["".join(b) for i, b in enumerate(new_bars) if i not in (4, 5)] == \
            ["".join(b) for i, b in enumerate(bars) if i not in (4, 5)]
        lengths = _measure_lengths(piece.text)
        assert lengths[4] == lengths[5] == (Fraction(3), Fraction(3)), piece.text

def test_a_cut_prefix_is_shown_under_the_key_it_is_in():
    """A tune in G that moves to D: where the context shows only bars after the key change, the infill prompt (and
    its left-to-right twin) is headed with ``K:D``, not the tune's ``K:G``; the tune itself keeps both."""
    from ostinato.symbolic.infill import _plan

    tok = add_infill_tokens(AbcTokenizer())
    text = "X:1\nM:4/4\nL:1/8\nK:G\nGABc dBGB|c2A2 G4|\nK:D\n" + "|".join(["DFAd fdAF", "G2B2 A4"] * 8) + "|]\n"
    plan = _plan(tok, text, (17, 17), 64, None)
    vocab = [tok.vocab[i] for i in plan.prompt]
    assert vocab[:4] == ["<bos>", "M:4/4", "L:1/8", "K:D"] and "K:G" not in vocab, vocab
    assert [tok.vocab[i] for i in plan.before[:4]] == ["<bos>", "M:4/4", "L:1/8", "K:D"]
    whole = plan.finish(plan.middle)
    assert whole.text == tok.decode_text(tok.encode(text))   # the tune as it was, both keys
    shown = _plan(tok, text, (3, 3), 512, None)   # the key change shown: the tune's own head
    assert [tok.vocab[i] for i in shown.prompt[:4]] == ["<bos>", "M:4/4", "L:1/8", "K:G"]


def test_abc_infill_past_the_end_extends_the_tune():
    tok = add_infill_tokens(AbcTokenizer())
    model = _random_model(tok)
    text = _abc_tunes(3)[2]
    bars, tail = _bars(tok, text)
    n = len(bars) + (1 if any(t not in ("|", "|]") for t in tail) else 0)
    piece = infill_compositions(model, tok, text, (n + 1, n + 3), n=1, sampling=SamplingConfig(seed=1))[0]
    new_bars, new_tail = _bars(tok, piece.text)
    assert new_tail == [] and new_bars[-1][-1] == "|]" and len(new_bars) == n + 3
    for old, new in zip(bars, new_bars, strict=False):
        assert [t for t in old if t != "|]"] == [t for t in new if t not in ("|]", "|")] or old[:-1] == new[:-1]
    lengths = _measure_lengths(piece.text)
    assert all(a == b for a, b in lengths[n:])


def test_midi_span_keeps_every_other_note_and_fills_the_bars_with_the_pieces_instruments():
    tok = add_infill_tokens(build_tokenizer("remi", styles=["bach"]))
    model = _random_model(tok, context=1024)
    for table in _chorales(3):
        ids = tok.encode(table)
        _head, body, _ = split_head(tok, ids)
        n_bars = len(bar_cuts(tok, body)) - 1
        downbeats = sorted({int(t) for t in events.to_score(table).get_downbeats()} | {0})
        start, end = downbeats[2], downbeats[5]          # bars 3-5
        pieces = infill_compositions(model, tok, table, (3, 5), n=2, sampling=SamplingConfig(seed=2))
        outside = (table.onset_tick < start) | (table.onset_tick >= end)
        kept = table.select(outside).sorted()
        for piece in pieces:
            new = piece.table
            keep = (new.onset_tick < start) | (new.onset_tick >= end)
            same = new.select(keep).sorted()
            for column in ("pitch", "onset_tick", "offset_tick", "onset_s", "offset_s", "velocity", "program",
                           "track"):
                assert np.array_equal(getattr(same, column), getattr(kept, column)), column
            fresh = new.select(~keep)
            assert len(fresh) > 0 and fresh.offset_tick.max() <= end
            for track in np.unique(fresh.track):
                assert set(fresh.program[fresh.track == track]) == {table.tracks[track].program}
            assert set(fresh.track.tolist()) == set(np.unique(table.track).tolist())   # every part plays
        assert n_bars >= 5


def test_a_model_without_infill_tokens_is_refused_in_one_line(tmp_path):
    plain = tmp_path / "plain"
    result = run_cli("train", "symbolic", "--data", TUNES, "--tokenizer", "abc", "--out", str(plain), "--config",
                     _tiny(tmp_path), "--steps", "1", "--batch-size", "2", "--infill-share", "0", "-q")
    assert result.returncode == 0, result.stderr
    primer = _write(tmp_path / "t.abc", _abc_tunes(1)[0])
    result = run_cli("compose", "--model", str(plain), "--primer", str(primer), "--infill", "2-3", "-o",
                     str(tmp_path / "o.abc"), "-q")
    assert result.returncode == 2
    assert result.stderr.strip().splitlines() == [
        f"ostinato: --infill: the model {plain} was not trained to infill (its tokenizer has no <fill> tokens); "
        f"fine-tune it with `ostinato train symbolic --init-from {plain} --infill-share 0.25 ...`"]
    bad = run_cli("compose", "--model", "folk-abc", "--primer", str(tmp_path / "t.abc"), "--infill", "5-2", "-q")
    assert bad.returncode == 2 and "--infill" in bad.stderr and len(bad.stderr.strip().splitlines()) == 1


def test_the_context_weight_is_recorded_in_the_card_and_checked(tmp_path):
    out = tmp_path / "weighted"
    result = run_cli("train", "symbolic", "--data", TUNES, "--tokenizer", "abc", "--out", str(out), "--config",
                     _tiny(tmp_path), "--steps", "2", "--batch-size", "2", "--infill-share", "0.5",
                     "--infill-context-weight", "0.3", "-q")
    assert result.returncode == 0, result.stderr
    assert json.loads((out / "metrics.json").read_text())["train"]["infill_context_weight"] == 0.3
    assert "their suffix and prefix weigh 0.3 in the loss, their middle 1" in (out / "model_card.md").read_text()
    bad = run_cli("train", "symbolic", "--data", TUNES, "--tokenizer", "abc", "--out", str(tmp_path / "x"),
                  "--config", _tiny(tmp_path), "--steps", "2", "--infill-context-weight", "1.5", "-q")
    assert bad.returncode == 2 and not (tmp_path / "x").exists()
    assert bad.stderr.strip().splitlines() == [
        "ostinato: --infill-context-weight: expected a weight from 0 to 1, got 1.5"]


def _write(path, text: str):
    path.write_text(text)
    return path


def test_midi_infill_through_the_cli_writes_n_pieces_into_a_folder(tmp_path):
    tok = add_infill_tokens(build_tokenizer("remi", styles=["bach"]))
    folder = tmp_path / "model"
    save_model_folder(_random_model(tok, context=1024), tok, folder)
    table = _chorales(1)[0]
    primer = tmp_path / "chorale.mid"
    events.write(table, primer)
    table = events.read(primer)
    result = run_cli("compose", "--model", str(folder), "--primer", str(primer), "--infill", "2-3", "-n", "2",
                     "-o", str(tmp_path / "out"), "--seed", "5", "-q")
    assert result.returncode == 0, result.stderr
    downbeats = sorted({int(t) for t in events.to_score(table).get_downbeats()} | {0})
    start, end = downbeats[1], downbeats[3]
    for path in sorted((tmp_path / "out").iterdir()):
        new = events.read(path)
        outside = (table.onset_tick < start) | (table.onset_tick >= end)
        kept = (new.onset_tick < start) | (new.onset_tick >= end)
        a, b = table.select(outside).sorted(), new.select(kept).sorted()
        for column in ("pitch", "onset_tick", "offset_tick", "velocity", "program", "track"):
            assert np.array_equal(getattr(a, column), getattr(b, column)), column
        fresh = new.select(~kept)
        assert len(fresh) > 0
        for program, pitch in zip(fresh.program.tolist(), fresh.pitch.tolist(), strict=True):
            assert program in table.program.tolist()
            assert pitch >= 0 and pitch <= 127 and program >= 0
    assert len(list((tmp_path / "out").iterdir())) == 2


def test_each_part_keeps_its_instrument_and_range_in_the_span():
    tok = add_infill_tokens(build_tokenizer("remi", styles=["bach"]))
    model = _random_model(tok, context=1024)
    for table in _chorales(4)[2:]:
        downbeats = sorted({int(t) for t in events.to_score(table).get_downbeats()} | {0})
        start, end = downbeats[1], downbeats[4]
        for piece in infill_compositions(model, tok, table, (2, 4), n=2, sampling=SamplingConfig(seed=9)):
            new = piece.table
            assert new.tracks == table.tracks
            fresh = new.select((new.onset_tick >= start) & (new.onset_tick < end))
            assert len(fresh) > 0
            for track, pitch in zip(fresh.track.tolist(), fresh.pitch.tolist(), strict=True):
                own = table.pitch[table.track == track]
                r = instrument_range(table.tracks[track].program)
                assert min(r.low, own.min()) <= pitch <= max(r.high, own.max())


def test_a_span_across_a_meter_change_is_filled_one_meter_at_a_time():
    from ostinato.events.table import Track
    from ostinato.symbolic.infill import meter_runs

    tok = add_infill_tokens(build_tokenizer("remi", styles=["bach"]))
    model = _random_model(tok, context=1024)
    q = 480   # 3 bars of 4/4, then 4 of 3/4: quarter notes, soprano and bass
    bars = [(i * 4 * q, 4) for i in range(3)] + [(3 * 4 * q + i * 3 * q, 3) for i in range(4)]
    on = [start + b * q for start, beats in bars for b in range(beats)]
    table = events.NoteTable.from_ticks(
        np.array(on * 2), np.array(on * 2) + q, [67, 69, 71, 72] * 6 + [48] * 24, [80] * 48,
        [0] * 24 + [1] * 24, [Track("S", 73, False), Track("B", 42, False)], ticks_per_quarter=q,
        time_signatures=[(0, 4, 4), (12 * q, 3, 4)])
    assert meter_runs(tok, table, (2, 5)) == [(2, 3), (4, 5)] and meter_runs(tok, table, (4, 6)) == [(4, 6)]
    start, end = 4 * q, 12 * q + 6 * q   # bars 2-5
    pieces = infill_compositions(model, tok, table, (2, 5), n=2, sampling=SamplingConfig(seed=4))
    kept = table.select((table.onset_tick < start) | (table.onset_tick >= end)).sorted()
    for piece in pieces:
        new = piece.table
        assert [(t.tick, t.numerator, t.denominator) for t in new.time_signatures] == [(0, 4, 4), (12 * q, 3, 4)]
        same = new.select((new.onset_tick < start) | (new.onset_tick >= end)).sorted()
        for column in ("pitch", "onset_tick", "offset_tick", "velocity", "program", "track"):
            assert np.array_equal(getattr(same, column), getattr(kept, column)), column
        fresh = new.select((new.onset_tick >= start) & (new.onset_tick < end))
        for bar_start, bar_end in ((4 * q, 8 * q), (8 * q, 12 * q), (12 * q, 15 * q), (15 * q, 18 * q)):
            inside = fresh.select((fresh.onset_tick >= bar_start) & (fresh.onset_tick < bar_end))
            assert len(inside) > 0   # every bar of the span has notes
        assert int(fresh.offset_tick.max()) <= end
        assert not np.any((fresh.onset_tick < 12 * q) & (fresh.offset_tick > 12 * q))   # none across the change


# ---------------------------------------------------------------------------- a tiny real training run
def _tiny(tmp_path, context: int = 256) -> str:
    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"architecture": "gpt2", "n_layers": 2, "d_model": 64, "n_heads": 2,
                                "context": context, "dropout": 0.0}))
    return str(path)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    root = tmp_path_factory.mktemp("fim")
    out = root / "folk-fim"
    result = run_cli("train", "symbolic", "--data", TUNES, "--tokenizer", "abc", "--out", str(out), "--config",
                     _tiny(root), "--steps", "300", "--batch-size", "16", "--lr", "5e-3", "--eval-every", "300",
                     "--checkpoint-every", "300", "--infill-share", "0.5", "-q")
    assert result.returncode == 0, result.stderr
    return out


def _fim_bits(model, tok, tunes: list[str]) -> tuple[float, float]:
    """Bits per token of the middles of ``tunes`` (bars 2-3) with the suffix in view, and of the ``<mid>``
    marker that closes the suffix: (middle bits/token, bits of <mid>)."""
    _fill, mid, _end = infill_ids(tok)
    bits, n, mid_bits = 0.0, 0, 0.0
    for text in tunes:
        parts = split_bars(tok, tok.encode(text, normalised=True), 2, 3)
        seq = to_fim(tok, parts)
        ids = torch.tensor([seq])
        with torch.no_grad():
            logp = torch.log_softmax(model(input_ids=ids[:, :-1]).logits.float(), -1)[0]
        start = len(seq) - 1 - len(parts.middle)
        picked = logp[torch.arange(len(seq) - 1), ids[0, 1:]] / -np.log(2)
        bits += float(picked[start - 1:].sum())
        n += len(seq) - start
        mid_bits += float(picked[seq.index(mid) - 1])
    return bits / n, mid_bits / len(tunes)


def test_a_tiny_run_learns_the_format_and_infills_through_the_cli(tmp_path, trained):
    metrics = json.loads((trained / "metrics.json").read_text())
    assert metrics["infill_share"] == 0.5
    model, tok, _config = load_model_folder(trained)
    added = len(INFILL_TOKENS) + len(SPAN_TOKENS)   # training writes the middle's length in bars too
    assert has_infill(tok) and has_span(tok) and metrics["infill_span"] and metrics["infill_interior"] == 0.8
    assert "80% of the middles with a bar before and after them" in (trained / "model_card.md").read_text()
    assert model.get_input_embeddings().weight.shape[0] == len(tok) == len(AbcTokenizer()) + added
    held_out = []
    for item in iter_items(TUNES, split="test"):
        try:
            text = tok.normalise(item.abc_text())
        except ValueError:
            continue
        if len(tok.encode(text, normalised=True)) <= 200 and len(_bars(tok, text)[0]) >= 4:   # fits the context
            held_out.append(text)
    assert len(held_out) >= 10
    untrained = _random_model(tok, context=256)
    trained_bits, trained_mid = _fim_bits(model.eval(), tok, held_out[:10])
    random_bits, random_mid = _fim_bits(untrained, tok, held_out[:10])
    print(f"middle bits/token: trained {trained_bits:.3f}, untrained {random_bits:.3f}; <mid> bits: "
          f"{trained_mid:.3f} vs {random_mid:.3f}")
    assert trained_bits < 0.6 * random_bits and trained_mid < random_mid - 1   # at least twice as likely
    primer = _write(tmp_path / "tune.abc", held_out[0])
    result = run_cli("compose", "--model", str(trained), "--primer", str(primer), "--infill", "2-3", "-n", "3",
                     "-o", str(tmp_path / "out"), "--format", "abc", "--seed", "1", "-q")
    assert result.returncode == 0, result.stderr
    bars, tail = _bars(tok, held_out[0])
    for path in sorted((tmp_path / "out").iterdir()):
        new_bars, new_tail = _bars(tok, path.read_text())
        assert new_tail == tail and len(new_bars) == len(bars)
        assert [b for i, b in enumerate(new_bars) if i not in (1, 2)] == [b for i, b in enumerate(bars)
                                                                          if i not in (1, 2)]
        lengths = _measure_lengths(path.read_text())
        assert lengths[1][0] == lengths[1][1] and lengths[2][0] == lengths[2][1]
    import ostinato.symbolic  # the Python API: ABC text in, ABC text out

    texts = ostinato.symbolic.infill(held_out[1], "3-4", model=str(trained), n=2, seed=7)
    bars, tail = _bars(tok, held_out[1])
    for text in texts:
        new_bars, new_tail = _bars(tok, text)
        assert new_tail == tail and new_bars[:2] == bars[:2] and new_bars[4:] == bars[4:]
    one = ostinato.symbolic.infill(held_out[1], (3, 4), model=str(trained), seed=7)
    assert isinstance(one, str) and ostinato.symbolic.infill(held_out[1], "3-4", model=str(trained), seed=7) == one


def test_init_from_a_model_without_the_tokens_grows_its_vocabulary(tmp_path, trained):
    base = tmp_path / "plain"
    result = run_cli("train", "symbolic", "--data", TUNES, "--tokenizer", "abc", "--out", str(base), "--config",
                     _tiny(tmp_path), "--steps", "2", "--batch-size", "2", "--infill-share", "0", "-q")
    assert result.returncode == 0, result.stderr
    plain_model, plain_tok, _ = load_model_folder(base)
    assert not has_infill(plain_tok)
    grown = tmp_path / "grown"
    result = run_cli("train", "symbolic", "--data", TUNES, "--init-from", str(base), "--out", str(grown),
                     "--steps", "2", "--batch-size", "2", "--lr", "1e-9", "--infill-share", "0.25", "-q")
    assert result.returncode == 0, result.stderr
    model, tok, _ = load_model_folder(grown)
    added = len(INFILL_TOKENS) + len(SPAN_TOKENS)
    assert has_infill(tok) and has_span(tok) and len(tok) == len(plain_tok) + added
    old = plain_model.get_input_embeddings().weight
    new = model.get_input_embeddings().weight
    assert new.shape[0] == old.shape[0] + added
    assert torch.allclose(new[:old.shape[0]], old, atol=1e-6)   # a learning rate of 1e-9 keeps the old rows
    assert json.loads((grown / "metrics.json").read_text())["infill_share"] == 0.25


def test_an_abc_primer_goes_on_as_abc_into_a_folder(tmp_path):
    primer = _write(tmp_path / "t.abc", _abc_tunes(1)[0])
    result = run_cli("compose", "--primer", str(primer), "--infill", "2-3", "-n", "2", "-o", str(tmp_path / "fills"),
                     "-q")
    assert result.returncode == 0, result.stderr
    assert sorted(p.name for p in (tmp_path / "fills").iterdir()) == ["001.abc", "002.abc"]


def test_the_fill_kept_is_the_candidate_that_leads_best_into_the_suffix(trained, monkeypatch):
    import importlib

    from ostinato.symbolic.infill import lead_in_scores

    infill_module = importlib.import_module("ostinato.symbolic.infill")   # (the package exports the function)

    model, tok, _config = load_model_folder(trained)
    model.eval()
    text = next(t for t in _abc_tunes(40) if len(_bars(tok, t)[0]) >= 6)
    sampling = SamplingConfig(seed=3)
    kept = infill_compositions(model, tok, text, (3, 4), n=1, sampling=sampling)[0]
    assert infill_module.INFILL_CANDIDATES == 4
    monkeypatch.setattr(infill_module, "INFILL_CANDIDATES", 1)   # the same batch, every candidate returned
    candidates = infill_compositions(model, tok, text, (3, 4), n=4, sampling=sampling)
    assert len({c.text for c in candidates}) > 1
    head, body, _ = split_head(tok, tok.encode(text, normalised=True))
    cuts = bar_cuts(tok, body)
    lead = body[cuts[4]:cuts[6]]   # the two bars after the span

    def scored(piece):
        ids = tok.encode(piece.text, normalised=True)
        _h, new_body, _ = split_head(tok, ids)
        new_cuts = bar_cuts(tok, new_body)
        assert new_body[new_cuts[4]:new_cuts[6]] == lead
        return [*head, *new_body[:new_cuts[4]], *lead], len(head) + new_cuts[4]

    scores = lead_in_scores(model, [scored(c) for c in candidates])
    assert kept.text == candidates[int(np.argmax(scores))].text
    x = torch.tensor([scored(candidates[0])[0]])   # the score is the suffix bars' log-likelihood
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=x[:, :-1]).logits.float(), -1)[0]
    start = scored(candidates[0])[1]
    expect = sum(float(logp[i - 1, x[0, i]]) for i in range(start, x.shape[1]))
    assert scores[0] == pytest.approx(expect, abs=1e-4)
