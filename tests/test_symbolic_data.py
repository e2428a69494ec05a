"""Token-stage data: the held-out split, instruments for scores without any, worker processes, packing."""

import numpy as np

from ostinato.events.sources import is_held_out
from ostinato.symbolic.data import (
    TokenizedPiece,
    load_token_data,
    pack,
    sample_blocks,
    save_token_data,
    source_items,
    tokenize_items,
)
from ostinato.symbolic.tokenizers import build_tokenizer


def test_held_out_tunes_never_reach_training_and_workers_change_nothing(tmp_path):
    tokenizer = build_tokenizer("abc")
    items = source_items("music21:essenFolksong/han1.abc")
    one = tokenize_items(items, tokenizer, max_tokens=256)
    two = tokenize_items(items, tokenizer, max_tokens=256, workers=2)
    failed = {f.split(": ")[0] for f in one.failures}
    assert [p.key for p in one.test] == [i.key for i in items if is_held_out(i.key) and i.key not in failed]
    assert not any(is_held_out(p.key) for p in one.train) and len(one.test) == 26
    assert len(one.train) + len(one.test) + len(one.failures) == len(items) == 554
    assert [p.key for p in one.train] == [p.key for p in two.train]
    assert all(np.array_equal(a.ids, b.ids) for a, b in zip(one.train, two.train, strict=True))
    path = tmp_path / "cache.npz"
    save_token_data(one, path)
    again = load_token_data(path)
    assert again.unit == "char" and [p.n_units for p in again.test] == [p.n_units for p in one.test]
    assert all(np.array_equal(a.ids, b.ids) for a, b in zip(one.test, again.test, strict=True))


def test_ensemble_instruments_give_chorale_parts_their_own_programs():
    tokenizer = build_tokenizer("remi", styles=["bach"])
    items = [i for i in source_items("music21:bach") if i.key == "bach/bwv66.6.mxl"]
    kept = tokenize_items(items, tokenizer, max_tokens=4096)
    ensemble = tokenize_items(items, tokenizer, max_tokens=4096, instruments="ensemble")
    def instruments(data):
        return [tokenizer.vocab[i] for i in data.train[0].ids if tokenizer.vocab[i].startswith("Inst:")]
    assert instruments(kept) == ["Inst:0"]
    assert instruments(ensemble) == ["Inst:19"]   # this key draws the organ
    # the same key always gets the same ensemble
    assert instruments(ensemble) == instruments(tokenize_items(items, tokenizer, max_tokens=4096,
                                                               instruments="ensemble"))


def test_batches_depend_only_on_seed_and_step():
    stream = pack([TokenizedPiece("k", np.arange(100, dtype=np.int32), 0)])
    a = sample_blocks(stream, block=9, batch=4, seed=3, step=17)
    assert a.shape == (4, 9) and np.array_equal(a, sample_blocks(stream, block=9, batch=4, seed=3, step=17))
    assert not np.array_equal(a, sample_blocks(stream, block=9, batch=4, seed=3, step=18))
    assert all(np.array_equal(row, np.arange(row[0], row[0] + 9)) for row in a)


def test_transposed_copies_follow_each_piece_with_their_shift_in_the_key():
    from ostinato.symbolic.data import augmented

    tok = build_tokenizer("remi", styles=["bach"])
    items = [i for i in source_items("music21:bach") if i.key == "bach/bwv66.6.mxl"]
    data = tokenize_items(items, tok, max_tokens=4096, instruments="ensemble")   # the organ: 36..96
    piece = data.train[0]
    out = augmented([piece], tok, shifts=(-2, -1, 1, 2))
    assert [p.key for p in out] == ["bach/bwv66.6.mxl@0", *(f"bach/bwv66.6.mxl@0^{s:+d}" for s in (-2, -1, 1, 2))]
    assert all(p.n_units == piece.n_units and len(p.ids) == len(piece.ids) for p in out)
    keys = [tok.vocab[p.ids[2]] for p in out]
    assert keys == ["Key:F# minor", "Key:E minor", "Key:F minor", "Key:G minor", "Key:Ab minor"]   # one spelling
    low = min(tok.decode(p.ids).pitch.min() for p in out)
    assert low == tok.decode(piece.ids).pitch.min() - 2


def test_a_left_out_collection_never_reaches_training():
    import pytest

    from ostinato.events.errors import InputError

    every = source_items("music21:abc-folk")
    kept = source_items("music21:abc-folk", leave_out=["ryansMammoth", "miscFolk"])
    gone = {i.key for i in every if i.key.split("/")[0] in ("ryansMammoth", "miscFolk")}
    assert len(gone) > 1000 and [i.key for i in kept] == [i.key for i in every if i.key not in gone]
    with pytest.raises(InputError, match="has no collection 'ryans' to leave out"):
        source_items("music21:abc-folk", leave_out=["ryans"])


def test_ensemble_maps_follow_parts_and_never_split_a_merged_part():
    from ostinato.events.instruments import ensemble_maps

    mixed = ensemble_maps({73, 40, 60, 42})   # flute, violin, horn, cello: soprano to bass
    assert mixed["brass"] == {73: 56, 40: 60, 60: 57, 42: 58}
    assert mixed["string quartet"] == {73: 40, 40: 40, 60: 41, 42: 42}   # two parts merge onto violin
    assert mixed["piano"] == {73: 0, 40: 0, 60: 0, 42: 0} and "mixed" not in mixed
    quartet = ensemble_maps({40, 41, 42})     # its two violins share program 40: no ensemble splits them
    assert sorted(quartet) == ["bright piano", "choir", "drawbar organ", "organ", "piano", "string ensemble",
                               "voices"]
    assert sorted(ensemble_maps({52})) == ["bright piano", "drawbar organ", "organ", "piano", "voices"]
    assert ensemble_maps({5, 7}) == {}        # not an ensemble's programs


def test_reinstrumented_copies_keep_every_note_on_its_new_program():
    from ostinato.events.instruments import ensemble_maps
    from ostinato.symbolic.data import augmented

    tok = build_tokenizer("remi", styles=["bach"])
    items = [i for i in source_items("music21:bach") if i.key == "bach/bwv66.6.mxl"]
    piece = tokenize_items(items, tok, max_tokens=4096, instruments="ensemble").train[0]   # the organ
    assert tok.programs_of(piece.ids) == {19}
    piano = tok.reinstrument_ids(piece.ids, {19: 0})
    before, after = tok.decode(piece.ids), tok.decode(piano)
    assert [tok.vocab[i] for i in piano[5:6]] == ["Inst:0"] and set(after.program.tolist()) == {0}
    assert np.array_equal(before.pitch, after.pitch) and np.array_equal(before.onset_tick, after.onset_tick)
    assert tok.reinstrument_ids(piece.ids, {19: 73}) is None     # its bass is below the flute's C4
    copies = augmented([piece], tok, shifts=(-1, 1), ensembles=True)
    assert [p.key.split("~")[0] for p in copies] == ["bach/bwv66.6.mxl@0", "bach/bwv66.6.mxl@0^-1",
                                                     "bach/bwv66.6.mxl@0^+1"]
    drawn = [p.key.split("~")[1] if "~" in p.key else "organ" for p in copies[1:]]
    assert all(name in [*ensemble_maps({19}), "organ"] for name in drawn)
    again = augmented([piece], tok, shifts=(-1, 1), ensembles=True)   # the same draw every time
    assert [p.key for p in again] == [p.key for p in copies]
    assert all(np.array_equal(a.ids, b.ids) for a, b in zip(again, copies, strict=True))
    assert [p.n_units for p in copies] == [piece.n_units] * 3
