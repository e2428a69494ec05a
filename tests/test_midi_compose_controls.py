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

    pieces = _compose(shipped, seed=1, n=2, key="D minor", tempo_bpm=96, instruments=(40, 41, 42), bars=8,
                      meter="4/4")
    for piece in pieces:
        table = piece.table
        assert [t.qpm for t in table.tempos] == [96.0]
        assert [k.name for k in table.key_signatures] == ["D minor"]
        _check_key(table, "D minor", 8, bass_track=[t.program for t in table.tracks].index(42))
        assert set(table.program.tolist()) == {40, 41, 42}
        _check_notes(table, bars=8)
    path = tmp_path / "piece.mid"
    events.write(pieces[0].table, path)
    back = events.read(path)
    assert [t.qpm for t in back.tempos] == [96.0] and back.key_signatures[0].name == "D minor"


def test_a_piece_in_a_key_is_the_first_of_its_candidates_heard_in_it(shipped):
    """compose samples KEY_CANDIDATES pieces per piece asked for in a key and keeps the first heard in it."""
    from ostinato import events
    from ostinato.symbolic.compose import KEY_CANDIDATES, Composition, in_key
    from ostinato.symbolic.midi_tokens import key_of

    def piece(pitches):   # one whole note (2 s at 120 qpm) per pitch
        n = len(pitches)
        table = events.NoteTable.from_seconds(2.0 * np.arange(n), 2.0 * np.arange(1, n + 1), pitches, [80] * n)
        return Composition([], None, lambda: table)

    g_minor, d_minor = piece([55, 58, 62, 55, 60, 63, 62, 55]), piece([62, 65, 69, 62, 61, 64, 69, 62])
    assert (key_of(g_minor.table), key_of(d_minor.table)) == ("G minor", "D minor")
    assert in_key([g_minor, d_minor, g_minor], "D minor") is d_minor
    assert in_key([g_minor, g_minor], "D minor") is g_minor   # none in the key: the first
    assert KEY_CANDIDATES >= 2
    pieces = _compose(shipped, seed=4, n=3, key="A minor", tempo_bpm=96, instruments=(73, 40, 60, 42), bars=8)
    assert [key_of(p.table) for p in pieces] == ["A minor"] * 3
    again = _compose(shipped, seed=4, n=3, key="A minor", tempo_bpm=96, instruments=(73, 40, 60, 42), bars=8)
    assert [p.ids for p in again] == [p.ids for p in pieces]   # the same seed, the same pieces


def _check_key(table, key: str, bars: int, bass_track: int | None) -> None:
    """Every pitch in the key's scale (harmonic minor), the first and last bar's onsets on its tonic
    triad, and a melodic bass's first and last notes on the tonic: what the grammar guarantees (how
    often a key estimator agrees is benchmarks/compose_quality.py's measure)."""
    from ostinato.events.theory import tonic_pc
    from ostinato.symbolic.midi_grammar import SCALE_PCS, TRIAD_PCS

    tonic, mode = key.split()
    root = tonic_pc(tonic)
    pcs = table.pitch % 12
    assert set(pcs.tolist()) <= {(root + d) % 12 for d in SCALE_PCS[mode == "minor"]}
    meter = table.time_signatures[0]
    bar_ticks = 4 * table.ticks_per_quarter * meter.numerator // meter.denominator
    edge = (table.onset_tick < bar_ticks) | (table.onset_tick >= (bars - 1) * bar_ticks)
    assert set(pcs[edge].tolist()) <= {(root + d) % 12 for d in TRIAD_PCS[mode == "minor"]}
    if bass_track is not None:
        bass = np.flatnonzero(table.track == bass_track)
        order = bass[np.argsort(table.onset_tick[bass], kind="stable")]
        assert pcs[order[0]] == root and pcs[order[-1]] == root


def test_another_key_and_tempo(shipped):
    (piece,) = _compose(shipped, seed=3, key="Eb major", tempo_bpm=80, instruments=(0, 32), bars=8)
    assert [t.qpm for t in piece.table.tempos] == [80.0]
    assert [k.name for k in piece.table.key_signatures] == ["Eb major"]
    _check_key(piece.table, "Eb major", 8, bass_track=None)   # the piano reaches lowest: no melodic bass
    _check_notes(piece.table, bars=8)


def test_the_tracks_come_in_the_order_the_instruments_were_asked(shipped):
    for asked in ((42, 73, "drums", 40), ("drums", 40, 42)):   # the tokens write programs ascending, drums last
        (piece,) = _compose(shipped, seed=1, instruments=asked, bars=2)
        played = [("drums" if t.is_drum else t.program) for t in piece.table.tracks]
        assert played == list(asked)


def test_64_bars_outgrow_the_context_with_no_empty_bar(shipped):
    from ostinato.symbolic.sample import context_of

    (piece,) = _compose(shipped, seed=0, tempo_bpm=96, instruments=(40, 42), bars=64, meter="4/4")
    assert len(piece.ids) > context_of(shipped[0])   # past the model's context: the window slid
    _check_notes(piece.table, bars=64)
    (again,) = _compose(shipped, seed=0, tempo_bpm=96, instruments=(40, 42), bars=64, meter="4/4")
    assert again.ids == piece.ids   # the same seed, the same tokens, window and all


def test_a_whole_chorale_as_primer_goes_on_for_8_bars_with_its_4_tracks(shipped):
    from ostinato.symbolic.sample import context_of

    model, tok = shipped
    controls, prompt = tok.primer("music21:bach/bwv340", bars=8)   # 1,809 tokens: longer than the context
    assert len(prompt) > context_of(model)
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


def _advance(grammar, tok, state, names: str):
    for name in names.split():
        state = grammar.advance(state, tok.token_to_id[name])
    return state


def _prefix(grammar):
    state = grammar.start()
    for token in grammar.prefix_ids():
        state = grammar.advance(state, token)
    return state


def _allowed(grammar, tok, state) -> set[str]:
    return {tok.vocab[i] for i in np.flatnonzero(grammar.allowed(state))}


def test_no_whole_beat_is_silent(shipped):
    _, tok = shipped
    grammar = MidiGrammar(tok, controls=Controls(key="C major", meter="4/4", tempo_bpm=120, instruments=(40,)),
                          bars=4, max_tokens=1024, note_rules=True)
    state = _prefix(grammar)
    # a one-beat note at the downbeat: the next onset comes by beat 2 (Position_12), no later
    state = _advance(grammar, tok, state, "Bar_None TimeSig_4/4 Position_0 Tempo_121.29 Program_40 Pitch_72 "
                                          "Velocity_87 Duration_1.0.12")
    positions = sorted(int(a.removeprefix("Position_")) for a in _allowed(grammar, tok, state)
                       if a.startswith("Position_"))
    assert positions == list(range(1, 13))
    assert "Bar_None" not in _allowed(grammar, tok, state)
    # a rest inside a beat is allowed: a note ending at Position_13 may be followed at Position_24
    state = _advance(grammar, tok, state, "Position_12 Program_40 Pitch_76 Velocity_87 Duration_0.2.12")
    positions = sorted(int(a.removeprefix("Position_")) for a in _allowed(grammar, tok, state)
                       if a.startswith("Position_"))
    assert positions == list(range(13, 25))


def test_a_held_note_plays_in_the_next_bar_but_a_bar_needs_an_onset(shipped):
    _, tok = shipped
    controls = Controls(key="C major", meter="4/4", tempo_bpm=120, instruments=(40, 42))
    grammar = MidiGrammar(tok, controls=controls, bars=4, max_tokens=1024, note_rules=True)
    state = _prefix(grammar)
    state = _advance(grammar, tok, state, "Bar_None TimeSig_4/4 Position_0 Tempo_121.29 Program_42")
    # the cello is the bass: it opens on the tonic (C within its range), the violin on the tonic triad
    assert {a for a in _allowed(grammar, tok, state) if a.startswith("Pitch_")} == {
        "Pitch_36", "Pitch_48", "Pitch_60", "Pitch_72", "Pitch_84"}
    # the cello holds a note for two bars; the violin plays one bar
    held = _advance(grammar, tok, state, "Pitch_48 Velocity_87 Duration_8.0.4 Program_40 Pitch_72 Velocity_87 "
                                         "Duration_4.0.4 Bar_None TimeSig_4/4")
    assert "Bar_None" not in _allowed(grammar, tok, held)   # nothing begins in bar 2 yet
    after = _advance(grammar, tok, held, "Position_0 Program_40 Pitch_76 Velocity_87 Duration_4.0.4")
    assert "Bar_None" in _allowed(grammar, tok, after)       # the cello's held note plays in bar 2
    # both parts held through bar 2: the bar has no onset, so it cannot close
    both = _advance(grammar, tok, state, "Pitch_48 Velocity_87 Duration_8.0.4 Program_40 Pitch_72 Velocity_87 "
                                         "Duration_8.0.4 Bar_None TimeSig_4/4")
    assert "Bar_None" not in _allowed(grammar, tok, both)


def test_a_free_key_is_chosen_held_and_written(shipped):
    from ostinato.events.theory import tonic_pc
    from ostinato.symbolic.midi_grammar import SCALE_PCS

    _, tok = shipped
    pieces = _compose(shipped, seed=2, n=2, instruments=(40, 41, 42, 43), bars=8, tempo_bpm=96)
    for piece in pieces:
        chosen = tok.vocab[piece.ids[2]].removeprefix("Key:")
        assert chosen != "none"   # the model chose a key: the prompt stopped before the free Key token
        table = piece.table
        assert [k.name for k in table.key_signatures] == [chosen]
        tonic, mode = chosen.split()
        scale = {(tonic_pc(tonic) + d) % 12 for d in SCALE_PCS[mode == "minor"]}
        assert set((table.pitch % 12).tolist()) <= scale
        _check_notes(table, bars=8)


def test_the_default_midi_piece_is_16_bars_in_the_key_and_tempo_it_chose(tmp_path):
    import subprocess
    import sys

    from ostinato import events

    out = tmp_path / "piece.mid"
    result = subprocess.run([sys.executable, "-m", "ostinato", "compose", "-o", str(out), "--seed", "4", "-q"],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    table = events.read(out)
    meter = table.time_signatures[0]
    bar_ticks = 4 * table.ticks_per_quarter * meter.numerator // meter.denominator
    assert int(table.onset_tick.max()) // bar_ticks == 15 and int(table.offset_tick.max()) <= 16 * bar_ticks
    assert len(table.key_signatures) == 1
    buckets = (40, 48, 56, 63, 72, 80, 88, 96, 104, 112, 120, 132, 144, 160, 176, 192, 208, 240)
    (qpm,) = [t.qpm for t in table.tempos]   # its Tempo: control, to the microsecond a quarter a MIDI file holds
    assert any(round(60e6 / b) == round(60e6 / qpm) for b in buckets), qpm   # 72 is 833,333 us: 72.0000288


def test_a_key_is_composed_in_a_key_of_its_mode_the_model_picks_and_moved_exactly(shipped):
    from ostinato.symbolic.midi_grammar import key_shift

    _, tok = shipped
    controls = tok.make_controls(key="F# minor", instruments=(40, 41, 42, 43), bars=8, tempo_bpm=96)
    assert (controls.controls.key, controls.written_key) == (None, "F# minor")
    assert key_shift("A minor", "F# minor") == -3 and key_shift("C major", "G major") == -5
    assert key_shift("G major", "C major") == 5 and key_shift("C major", "F# major") == 6
    moved = set()
    for seed in (5, 6, 7):
        (piece,) = _compose(shipped, seed=seed, controls=controls)
        picked = tok.vocab[piece.ids[2]].removeprefix("Key:")
        assert picked.endswith(" minor")   # the tokens are in a minor key the model picked
        table = piece.table
        assert [k.name for k in table.key_signatures] == ["F# minor"]
        _check_key(table, "F# minor", 8, bass_track=[t.program for t in table.tracks].index(43))
        _check_notes(table, bars=8)   # in range once moved
        shift = key_shift(picked, "F# minor")
        decoded = tok.decode_notes(piece.ids)   # the tokens' own notes, moved by the shift
        assert sorted((decoded.pitch.astype(int) + shift).tolist()) == sorted(table.pitch.astype(int).tolist())
        moved.add(shift)
    assert moved != {0}


def test_an_infills_grammar_allows_the_pitch_classes_its_piece_plays(shipped):
    _, tok = shipped
    controls = Controls(key="A minor", meter="4/4", tempo_bpm=120, instruments=(40,))

    def pitches(**extra):
        grammar = MidiGrammar(tok, controls=controls, bars=4, max_tokens=1024, note_rules=True, edge_triads=False,
                              **extra)
        state = _advance(grammar, tok, _prefix(grammar), "Bar_None TimeSig_4/4 Position_0 Tempo_121.29 Program_40")
        return {int(a.removeprefix("Pitch_")) for a in _allowed(grammar, tok, state) if a.startswith("Pitch_")}

    scale = pitches()   # A harmonic minor: G sharp, no G natural, no F sharp
    assert {p % 12 for p in scale} == {9, 11, 0, 2, 4, 5, 8}
    # a chorale in A minor with G naturals and F sharps (its melodic minor): its infill may play them too
    assert {p % 12 for p in pitches(pitch_classes=[7, 6, 19])} == {9, 11, 0, 2, 4, 5, 8, 7, 6}
    assert pitches(pitch_classes=[9, 0]) == scale   # its own scale's: nothing new
