"""MIDI event tokens: miditok schemes behind our control prefix, round trips, windows, JSON."""

import json
from fractions import Fraction

import numpy as np
import pytest
import symusic
from conftest import fixture_dir

from ostinato import events
from ostinato.events import NoteTable
from ostinato.events.theory import estimate_key, major_minor_key
from ostinato.symbolic.midi_tokens import MidiTokenizer, key_of
from ostinato.symbolic.tokenizers import build_tokenizer, load_tokenizer


def _notes(score: symusic.Score) -> list[tuple]:
    """(program or -1 for drums, pitch, start, duration (in quarters), velocity) of every note, sorted."""
    tpq = score.ticks_per_quarter
    return sorted((-1 if t.is_drum else t.program, n.pitch, Fraction(n.time, tpq), Fraction(n.duration, tpq),
                   n.velocity) for t in score.tracks for n in t.notes)


def _round_trip_matches_miditok_quantisation(tok: MidiTokenizer, table: NoteTable) -> None:
    expected = tok.miditok.preprocess_score(events.to_score(table))   # miditok's documented quantisation
    decoded = tok.decode(tok.encode(table))
    assert _notes(events.to_score(decoded)) == _notes(expected)


def test_round_trip_is_exact_up_to_miditok_quantisation_on_every_fixture():
    tok = build_tokenizer("remi")
    files = sorted(fixture_dir("midi_one_track").glob("*.mid"))
    assert len(files) >= 10
    for path in files:
        _round_trip_matches_miditok_quantisation(tok, events.read(path))


@pytest.mark.parametrize("scheme", ["tsd", "midilike"])
def test_other_schemes_round_trip(scheme):
    tok = build_tokenizer(scheme)
    for path in sorted(fixture_dir("midi_one_track").glob("*.mid"))[:3]:
        _round_trip_matches_miditok_quantisation(tok, events.read(path))


def test_round_trip_on_bach_chorales_with_a_program_per_part():
    from ostinato.events.sources import iter_items

    tok = build_tokenizer("remi", styles=["bach"])
    items = [i for i in iter_items("music21:bach") if i.path.endswith(".mxl")][:8]
    rates = []
    for item in items:
        table = item.read()
        # give each part its own instrument, as a multi-track model sees them
        parts = np.array([40, 41, 42, 43, 71, 72, 73, 74])
        table = NoteTable.from_ticks(
            table.onset_tick, table.offset_tick, table.pitch, table.velocity, table.track,
            [events.Track(t.name, int(parts[i % 8]), False) for i, t in enumerate(table.tracks)],
            ticks_per_quarter=table.ticks_per_quarter, tempos=[(t.tick, t.qpm) for t in table.tempos],
            time_signatures=[(t.tick, t.numerator, t.denominator) for t in table.time_signatures])
        _round_trip_matches_miditok_quantisation(tok, table)
        rates.append(len(tok.encode(table)) / len(table))
    print(f"bach chorales: {len(items)} round trips exact; {np.mean(rates):.2f} tokens per note")


def test_control_prefix_of_a_chorale_names_style_key_meter_tempo_and_instruments():
    tok = build_tokenizer("remi", styles=["bach", "palestrina"])
    ids = tok.encode(events.read("music21:bach/bwv66.6"), style="bach")
    assert [tok.vocab[i] for i in ids[:7]] == ["<bos>", "Style:bach", "Key:F# minor", "Meter:4/4", "Tempo:96",
                                               "Inst:0", "Bar_None"]
    assert ids[-1] == tok.eos_id
    assert tok.count_notes(ids) == 163
    unknown = tok.encode(events.read("music21:bach/bwv66.6"), style="mozart")
    assert tok.vocab[unknown[1]] == "Style:none"


def test_drums_are_an_instrument():
    tracks = [events.Track("kit", 0, True), events.Track("bass", 33, False)]
    table = NoteTable.from_ticks(
        np.array([0, 480, 960, 0]), np.array([120, 600, 1080, 960]), np.array([36, 38, 36, 40]),
        np.array([100, 90, 100, 80]), np.array([0, 0, 0, 1]), tracks, ticks_per_quarter=480)
    tok = build_tokenizer("remi")
    ids = tok.encode(table)
    assert [tok.vocab[i] for i in ids[5:7]] == ["Inst:33", "Inst:drums"]
    back = tok.decode(ids)
    assert sorted(zip(back.is_drum.tolist(), back.pitch.tolist(), strict=True)) == [
        (False, 40), (True, 36), (True, 36), (True, 38)]


def test_windows_cut_at_bars_fit_and_keep_every_note():
    tok = build_tokenizer("remi")
    table = events.read(sorted(fixture_dir("midi_one_track").glob("*.mid"))[0])
    whole = tok.encode(table)
    windows = tok.encode_windows(table, max_tokens=300)
    assert len(windows) > 3
    assert all(len(w) <= 300 for w in windows)
    assert sum(tok.count_notes(w) for w in windows) == tok.count_notes(whole) == len(
        tok.miditok.preprocess_score(events.to_score(table)).tracks[0].notes)
    for w in windows:   # each window: controls, then its first bar
        tokens = [tok.vocab[i] for i in w]
        assert tokens[0] == "<bos>" and tokens[2].startswith("Key:") and tokens[3].startswith("Meter:")
        assert tokens[tokens.index("Bar_None") - 1].startswith("Inst:")
    assert windows[-1][-1] == tok.eos_id and all(w[-1] != tok.eos_id for w in windows[:-1])


def test_a_window_carries_the_tempo_and_meter_in_force_and_the_key_of_its_notes():
    tracks = [events.Track("p", 0, False)]
    onsets = np.arange(16) * 480
    # bars 1-2: a C major scale under a D minor signature; bars 3-4 (3/4): D minor arpeggios and C#
    pitches = [60, 62, 64, 65, 67, 69, 71, 72, 62, 65, 69, 62, 65, 69, 73, 74]
    table = NoteTable.from_ticks(onsets, onsets + 240, np.array(pitches), np.full(16, 80), np.zeros(16, int),
                                 tracks, ticks_per_quarter=480, tempos=[(0, 120.0), (1920 * 2, 60.0)],
                                 time_signatures=[(0, 4, 4), (1920 * 2, 3, 4)],
                                 key_signatures=[(0, -1, "minor")])
    tok = build_tokenizer("remi")
    windows = tok.encode_windows(table, max_tokens=40)
    prefixes = [[tok.vocab[i] for i in w[2:5]] for w in windows]
    assert prefixes[0] == ["Key:C major", "Meter:4/4", "Tempo:120"]
    assert prefixes[-1] == ["Key:D minor", "Meter:3/4", "Tempo:63"]  # 60 bpm: nearest bucket in log tempo


def test_the_key_control_is_the_key_of_the_notes_as_music21_finds_it():
    from music21 import corpus

    from ostinato.events.music21_io import stream_to_table

    for name in ("bach/bwv66.6", "bach/bwv10.7", "bach/bwv1.6"):
        score = corpus.parse(name)
        found = score.analyze("key")
        assert key_of(stream_to_table(score)) == major_minor_key(f"{found.tonic.name.replace('-', 'b')} {found.mode}")
    assert key_of(NoteTable.from_ticks([0], [480], [36], [80], [0], [events.Track("d", 0, True)])) is None
    with pytest.raises(ValueError, match="12 finite weights"):
        estimate_key([1.0] * 11)
    assert estimate_key([0.0] * 12) is None


def test_save_load_json_and_its_errors(tmp_path):
    tok = build_tokenizer("tsd", styles=["bach"], miditok={"num_velocities": 8})
    path = tmp_path / "tok.json"
    tok.save(path)
    data = json.loads(path.read_text())
    assert data["kind"] == "tsd" and data["version"] == 1 and data["miditok"]["num_velocities"] == 8
    assert list(data["blocks"]) == ["special", "style", "key", "meter", "tempo", "instrument", "events"]
    again = load_tokenizer(path)
    table = events.read("music21:bach/bwv66.6")
    assert again.encode(table, style="bach") == tok.encode(table, style="bach")
    data["version"] = 99
    path.write_text(json.dumps(data))
    with pytest.raises(events.InputError, match="version 99 is not supported"):
        load_tokenizer(path)
    path.write_text("{not json")
    with pytest.raises(events.InputError, match="not a tokenizer JSON file"):
        load_tokenizer(path)
    with pytest.raises(ValueError, match="unknown tokenizer 'bpe'"):
        build_tokenizer("bpe")


def _kit_bass_flute(tok):
    """Drums (36, 38), a bass (E2 = 40, whose GM range starts at 28) and a flute (its highest note C7 = 96)."""
    tracks = [events.Track("kit", 0, True), events.Track("bass", 33, False), events.Track("flute", 73, False)]
    table = NoteTable.from_ticks(
        np.array([0, 480, 0, 0]), np.array([120, 600, 960, 480]), np.array([36, 38, 40, 93]),
        np.array([100, 90, 80, 70]), np.array([0, 0, 1, 2]), tracks, ticks_per_quarter=480,
        key_signatures=[(0, -1, "major")])
    return tok.encode(table)


@pytest.mark.parametrize("scheme", ["remi", "tsd", "midilike"])
def test_transposition_moves_pitched_notes_and_the_key_and_leaves_drums(scheme):
    tok = build_tokenizer(scheme)
    ids = _kit_bass_flute(tok)
    assert tok.vocab[ids[2]] == "Key:A major"   # the key of E and A (the signature's F major is not asked)
    up = tok.transpose_ids(ids, 3)
    assert tok.vocab[up[2]] == "Key:C major"
    before, after = tok.decode(ids), tok.decode(up)
    moved = sorted(zip(after.is_drum.tolist(), after.pitch.tolist(), after.onset_tick.tolist(), strict=True))
    assert moved == sorted((d, p + (0 if d else 3), t) for d, p, t in zip(
        before.is_drum.tolist(), before.pitch.tolist(), before.onset_tick.tolist(), strict=True))
    assert sorted(after.pitch[after.is_drum].tolist()) == [36, 38]
    # timing, velocities and every other token as they were
    changed = np.flatnonzero(up != np.asarray(ids))
    assert len(changed) == 1 + (2 if scheme != "midilike" else 4)   # the key, 2 pitches (NoteOn+NoteOff in MIDILike)
    assert np.array_equal(tok.transpose_ids(ids, 0), ids)


def test_transposition_that_takes_a_part_out_of_its_instrument_range_is_refused():
    tok = build_tokenizer("remi")
    ids = _kit_bass_flute(tok)
    assert tok.transpose_ids(ids, 3) is not None and tok.transpose_ids(ids, -12) is not None   # bass 28, flute 81
    assert tok.transpose_ids(ids, 4) is None       # the flute's 93 + 4 = 97 is past its C7
    assert tok.transpose_ids(ids, -13) is None     # the bass's 40 - 13 = 27 is below its E1
    drums_only = [*[i for i in ids if not tok.vocab[i].startswith(("Inst:33", "Inst:73"))][:6], tok.eos_id]
    assert tok.transpose_ids(drums_only, 2) is None   # nothing to move
