"""Token-stage data: the held-out split, instruments for scores without any, worker processes, packing."""

import numpy as np
import pytest

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


def test_windows_from_sequence_starts_see_each_sequence_from_its_control_prefix():
    from ostinato.symbolic.data import sequence_starts

    pieces = [TokenizedPiece(f"k{i}", np.arange(1000 * i, 1000 * i + n, dtype=np.int32), 0)
              for i, n in enumerate((5, 12, 7, 30))]
    stream, starts = pack(pieces), sequence_starts(pieces)
    assert starts.tolist() == [0, 5, 17, 24]
    a = sample_blocks(stream, block=9, batch=64, seed=3, step=17, starts=starts)
    assert np.array_equal(a, sample_blocks(stream, block=9, batch=64, seed=3, step=17, starts=starts))
    assert {int(row[0]) for row in a} == {0, 1000, 2000, 3000}   # every window at a sequence's first token
    for row in a:   # and on through the stream (wrapping at its end)
        at = int(np.flatnonzero(stream == row[0])[0])
        assert np.array_equal(row, np.concatenate([stream, stream])[at:at + 9])


def test_a_fill_in_the_middle_example_fits_the_context_by_leaving_out_the_prefix_first():
    from ostinato.symbolic.fim import add_infill_tokens, bar_cuts, fim_cut, fim_length, split_head

    tok = add_infill_tokens(build_tokenizer("remi", styles=["bach"]))
    items = [i for i in source_items("music21:bach") if i.key == "bach/bwv66.6.mxl"]
    ids = tokenize_items(items, tok, max_tokens=4096, instruments="ensemble").train[0].ids.tolist()
    head, _body, _ = split_head(tok, ids)
    n_cut = 0
    for seed in range(30):
        whole = fim_cut(tok, ids, np.random.default_rng(seed))
        cut = fim_cut(tok, ids, np.random.default_rng(seed), max_tokens=600)
        if cut is None:   # the middle alone is too long
            assert fim_length(whole) - len(whole.prefix) - len(whole.suffix) > 600
            continue
        assert fim_length(cut) <= 600 and cut.middle == whole.middle and cut.head == head
        assert whole.prefix[len(whole.prefix) - len(cut.prefix):] == cut.prefix   # the prefix's last bars
        assert whole.suffix[:len(cut.suffix)] == cut.suffix                       # the suffix's first bars
        assert not cut.prefix or cut.prefix[0] == tok.token_to_id["Bar_None"]
        assert cut.prefix or not cut.suffix or len(cut.suffix) == len(whole.suffix) or \
            bar_cuts(tok, whole.suffix).count(len(cut.suffix)) == 1
        n_cut += cut != whole
    assert n_cut >= 10 and len(ids) > 600


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

    from ostinato.events.errors import InputError

    every = source_items("music21:abc-folk")
    kept = source_items("music21:abc-folk", leave_out=["ryansMammoth", "miscFolk"])
    gone = {i.key for i in every if i.key.split("/")[0] in ("ryansMammoth", "miscFolk")}
    assert len(gone) > 1000 and [i.key for i in kept] == [i.key for i in every if i.key not in gone]
    with pytest.raises(InputError, match="has no collection 'ryans' to leave out"):
        source_items("music21:abc-folk", leave_out=["ryans"])


def test_ensemble_maps_follow_parts_and_never_split_a_merged_part():
    from ostinato.events.instruments import ensemble_maps, ensemble_programs

    mixed = ensemble_maps({73, 40, 60, 42})   # flute, violin, horn, cello: soprano to bass
    assert mixed["brass"] == {73: 56, 40: 60, 60: 57, 42: 58}
    assert mixed["strings"] == {73: 40, 40: 41, 60: 42, 42: 43}   # violin, viola, cello, contrabass
    assert mixed["piano"] == {73: 0, 40: 0, 60: 0, 42: 0} and "mixed" not in mixed   # a keyboard merges them
    assert sorted(mixed) == ["brass", "guitars", "organ", "piano", "strings", "woodwinds"]
    five = ensemble_maps({73, 68, 71, 70, 40})   # woodwinds' four, and violin for a fifth part
    assert five["mixed"] == {73: 73, 68: 40, 71: 60, 70: 42, 40: 71}
    assert ensemble_programs("guitars", 6) == (24, 25, 26, 33, 73, 40) and ensemble_programs("organ", 3) == (19,) * 3
    assert ensemble_maps({19}) == {"piano": {19: 0}}   # merged parts: only the other keyboard
    assert ensemble_maps({5, 7}) == {}        # not an ensemble's programs
    with pytest.raises(ValueError, match="at most 16 parts"):
        ensemble_programs("mixed", 17)


def test_every_part_of_a_piece_on_an_ensemble_has_its_own_program():
    from ostinato.events.instruments import assign_instruments

    items = {i.key: i for i in source_items("music21:bach")}
    brass = assign_instruments(items["bach/bwv1.6.mxl"].read(), "bach/bwv1.6.mxl")
    assert [t.program for t in brass.tracks] == [56, 60, 57, 58, 73]   # a fifth part (its horn): a program of its own
    guitars = assign_instruments(items["bach/bwv10.7.mxl"].read(), "bach/bwv10.7.mxl")
    assert [t.program for t in guitars.tracks] == [24, 25, 26, 33]
    organ = assign_instruments(items["bach/bwv115.6.mxl"].read(), "bach/bwv115.6.mxl")
    assert [t.program for t in organ.tracks] == [19] * 4


def test_reinstrumented_copies_keep_every_note_on_its_new_program():
    from ostinato.events.instruments import ensemble_maps
    from ostinato.symbolic.data import augmented

    tok = build_tokenizer("remi", styles=["bach"])
    items = [i for i in source_items("music21:bach") if i.key == "bach/bwv115.6.mxl"]
    piece = tokenize_items(items, tok, max_tokens=4096, instruments="ensemble").train[0]   # the organ
    assert tok.programs_of(piece.ids) == {19}
    piano = tok.reinstrument_ids(piece.ids, {19: 0})
    before, after = tok.decode(piece.ids), tok.decode(piano)
    assert [tok.vocab[i] for i in piano[5:6]] == ["Inst:0"] and set(after.program.tolist()) == {0}
    assert np.array_equal(before.pitch, after.pitch) and np.array_equal(before.onset_tick, after.onset_tick)
    assert tok.reinstrument_ids(piece.ids, {19: 73}) is None     # its bass is below the flute's C4
    copies = augmented([piece], tok, shifts=(-1, 1), ensembles=True)
    assert [p.key.split("~")[0] for p in copies] == ["bach/bwv115.6.mxl@0", "bach/bwv115.6.mxl@0^-1",
                                                     "bach/bwv115.6.mxl@0^+1"]
    drawn = [p.key.split("~")[1] if "~" in p.key else "organ" for p in copies[1:]]
    assert all(name in [*ensemble_maps({19}), "organ"] for name in drawn)
    again = augmented([piece], tok, shifts=(-1, 1), ensembles=True)   # the same draw every time
    assert [p.key for p in again] == [p.key for p in copies]
    assert all(np.array_equal(a.ids, b.ids) for a, b in zip(again, copies, strict=True))
    assert [p.n_units for p in copies] == [piece.n_units] * 3


def test_repeats_played_out_are_tokenized_as_performed_in_workers_too():
    """bwv248.53-5 repeats its first two phrases: 164 notes as written, 240 as performed."""
    items = source_items("music21:bach/bwv248.53-5.mxl")
    remi = build_tokenizer("remi", styles=["bach"])
    written = tokenize_items(items, remi, max_tokens=4096)
    performed = tokenize_items(items, remi, max_tokens=4096, expand_repeats=True)
    in_workers = tokenize_items(items * 2, remi, max_tokens=4096, expand_repeats=True, workers=2)
    assert [p.n_units for p in written.train + written.test] == [164]
    assert [p.n_units for p in performed.train + performed.test] == [240]
    assert [p.n_units for p in in_workers.train + in_workers.test] == [240, 240]
    refused = tokenize_items(source_items("music21:essenFolksong/han1.abc")[:1], build_tokenizer("abc"),
                             max_tokens=256, expand_repeats=True)
    assert len(refused.failures) == 1 and "expand_repeats is for MIDI tokens" in refused.failures[0]
