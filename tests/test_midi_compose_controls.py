"""The shipped chorale-midi honours its controls (issue 16): exact tempo, the key asked for with its
key signature, no duplicate notes, every note in its instrument's range, no empty bar past the
context, and a whole chorale as primer continued with its four tracks."""

from __future__ import annotations

import numpy as np
import pytest

from ostinato.events.instruments import GM_RANGES, instrument_range
from ostinato.symbolic.midi_grammar import MidiGrammar
from ostinato.symbolic.midi_tokens import Controls

pytest.importorskip("music21")


@pytest.fixture(scope="module")
def shipped():
    from ostinato.symbolic.model import load_model_folder
    from ostinato.symbolic.shipped import resolve_model

    model, tokenizer, _ = load_model_folder(resolve_model("chorale-midi"))
    return model, tokenizer


def _compose(shipped, *, seed: int, n: int = 1, prompt=None, controls=None, **kw):
    from ostinato.symbolic.compose import compose
    from ostinato.symbolic.sample import SamplingConfig

    model, tokenizer = shipped
    controls = controls if controls is not None else tokenizer.make_controls(**kw)
    sampling = SamplingConfig(temperature=1.0, top_p=0.95, max_tokens=512, seed=seed)
    return compose(model, tokenizer, n=n, sampling=sampling, controls=controls, prompt=prompt)


def _check_notes(table, bars: int | None = None) -> None:
    """No exact duplicate, every pitch in its instrument's range, at most its polyphony sounding."""
    keys = list(zip(table.track.tolist(), table.onset_tick.tolist(), table.pitch.tolist(), strict=True))
    assert len(keys) == len(set(keys)), "duplicate notes"
    for program, pitch in zip(table.program.tolist(), table.pitch.tolist(), strict=True):
        r = instrument_range(program)
        assert r.low <= pitch <= r.high, (program, pitch)
    for program in set(table.program.tolist()):
        notes = table.select(table.program == program)
        for tick in np.unique(notes.onset_tick):
            sounding = np.sum((notes.onset_tick <= tick) & (notes.offset_tick > tick))
            assert sounding <= instrument_range(program).polyphony, (program, tick, sounding)
    if bars is not None:
        meter = table.time_signatures[0]
        bar_ticks = 4 * table.ticks_per_quarter * meter.numerator // meter.denominator
        played = set((table.onset_tick // bar_ticks).tolist())
        assert played == set(range(bars)), f"empty bars: {sorted(set(range(bars)) - played)}"


def test_the_range_table_covers_every_gm_program():
    assert len(GM_RANGES) == 128
    assert all(0 <= r.low < r.high <= 127 and r.high - r.low >= 12 and r.polyphony >= 1 for r in GM_RANGES)
    assert (instrument_range(40).low, instrument_range(42).low, instrument_range(73).polyphony) == (55, 36, 1)
    assert instrument_range("drums") == instrument_range(-1)
    with pytest.raises(ValueError, match="program"):
        instrument_range(128)


def test_note_rules_refuse_range_duplicates_empty_bars_and_tempo_changes(shipped):
    _, tok = shipped
    grammar = MidiGrammar(tok, controls=Controls(key="C major", meter="4/4", tempo_bpm=120, instruments=(40,)),
                          bars=4, max_tokens=1024, note_rules=True)
    state = grammar.start()
    for token in [*grammar.prefix_ids(), *(tok.token_to_id[t] for t in
                                            ("Bar_None", "TimeSig_4/4", "Position_0", "Tempo_121.29", "Program_40"))]:
        state = grammar.advance(state, token)
    allowed = {tok.vocab[i] for i in np.flatnonzero(grammar.allowed(state))}
    assert allowed == {"Pitch_55", "Pitch_60", "Pitch_64", "Pitch_67", "Pitch_72", "Pitch_76", "Pitch_79", "Pitch_84",
                       "Pitch_88", "Pitch_91", "Pitch_96", "Pitch_100", "Pitch_103"}   # C triad in violin range
    for t in ("Pitch_64", "Velocity_87", "Duration_4.0.4", "Program_40"):
        state = grammar.advance(state, tok.token_to_id[t])
    assert "Pitch_64" not in {tok.vocab[i] for i in np.flatnonzero(grammar.allowed(state))}   # no duplicate
    for t in ("Pitch_67", "Velocity_87", "Duration_0.6.12"):
        state = grammar.advance(state, tok.token_to_id[t])
    allowed = {tok.vocab[i] for i in np.flatnonzero(grammar.allowed(state))}
    assert "Program_40" not in allowed   # two notes sound: a violin's double stop is its most
    assert not any(a.startswith("Tempo_") for a in allowed)   # no tempo change
    state = grammar.advance(state, tok.token_to_id["Bar_None"])   # the held note sounds through bar 1
    state = grammar.advance(state, tok.token_to_id["TimeSig_4/4"])
    assert not grammar.allowed(state)[tok.token_to_id["Bar_None"]]   # bar 2 would be empty
    # real pieces break these rules: without note_rules (and for a primer's tokens) they are taken as they are
    loose = MidiGrammar(tok, controls=Controls(key="C major", meter="4/4", tempo_bpm=120, instruments=(40,)),
                        bars=4, max_tokens=1024)
    state = loose.start()
    for token in [*loose.prefix_ids(), *(tok.token_to_id[t] for t in
                                          ("Bar_None", "TimeSig_4/4", "Position_0", "Tempo_121.29", "Program_40"))]:
        state = loose.advance(state, token)
    assert loose.allowed(state)[tok.token_to_id["Pitch_30"]]


def test_window_ends_as_the_sequence_and_fits(shipped):
    from ostinato.events.sources import iter_items

    _, tok = shipped
    item = next(iter(iter_items("music21:bach", split="test")))
    ids = tok.encode(item.read())[:-1]
    assert len(ids) > 600
    for end in (300, 451, 600, len(ids)):
        fed = tok.window(ids[:end], max_tokens=256)
        assert fed is not None and len(fed) <= 256
        assert fed[:6] == ids[:6]   # the control prefix
        assert [tok.vocab[i] for i in fed[6:10]][::2] == ["Bar_None", "Position_0"]
        tail = fed[10:]
        assert ids[end - len(tail):end] == tail   # ends with the sequence's own tokens


def test_tempo_key_signature_and_notes_are_as_requested(shipped, tmp_path):
    from ostinato import events
    from ostinato.symbolic.evaluate import estimate_key

    pieces = _compose(shipped, seed=1, n=2, key="D minor", tempo_bpm=96, instruments=(40, 41, 42), bars=8,
                      meter="4/4")
    for piece in pieces:
        table = piece.table
        assert [t.qpm for t in table.tempos] == [96.0]
        assert [k.name for k in table.key_signatures] == ["D minor"]
        assert estimate_key(table) == "D minor"
        assert set(table.program.tolist()) == {40, 41, 42}
        _check_notes(table, bars=8)
    path = tmp_path / "piece.mid"
    events.write(pieces[0].table, path)
    back = events.read(path)
    assert [t.qpm for t in back.tempos] == [96.0] and back.key_signatures[0].name == "D minor"


def test_another_key_and_tempo(shipped):
    from ostinato.symbolic.evaluate import estimate_key

    (piece,) = _compose(shipped, seed=3, key="Eb major", tempo_bpm=80, instruments=(0, 32), bars=8)
    assert [t.qpm for t in piece.table.tempos] == [80.0]
    assert [k.name for k in piece.table.key_signatures] == ["Eb major"]
    assert estimate_key(piece.table) == "Eb major"
    _check_notes(piece.table, bars=8)


def test_32_bars_outgrow_the_context_with_no_empty_bar(shipped):
    (piece,) = _compose(shipped, seed=0, tempo_bpm=96, instruments=(40, 42), bars=32, meter="4/4")
    assert len(piece.ids) > 512   # past the model's context: the window slid
    _check_notes(piece.table, bars=32)
    (again,) = _compose(shipped, seed=0, tempo_bpm=96, instruments=(40, 42), bars=32, meter="4/4")
    assert again.ids == piece.ids   # the same seed, the same tokens, window and all


def test_a_whole_chorale_as_primer_goes_on_for_8_bars_with_its_4_tracks(shipped):
    _, tok = shipped
    controls, prompt = tok.primer("music21:bach/bwv66.6", bars=8)
    assert len(prompt) > 512
    (piece,) = _compose(shipped, seed=0, controls=controls, prompt=prompt)
    table = piece.table
    assert piece.ids[:len(prompt)] == prompt
    assert [(t.name, t.program) for t in table.tracks] == [("Soprano", 0), ("Alto", 0), ("Tenor", 0), ("Bass", 0)]
    bar_ticks = 4 * table.ticks_per_quarter
    n_primer_bars = controls.bars - 8
    assert int(table.offset_tick.max()) <= controls.bars * bar_ticks
    for track in range(4):   # every part goes on into the new bars
        onsets = table.onset_tick[table.track == track]
        assert np.any(onsets >= n_primer_bars * bar_ticks), table.tracks[track].name
