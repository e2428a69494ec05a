"""Performance data in the contract: sustain pedal, volume, expression, pan and pitch bend, read from
real MIDI files (made here with mido), written back, kept through symusic, and shown by `info --json`."""

import json

import mido
import numpy as np
import pytest
import symusic
from conftest import fixture_dir, run_cli

from ostinato.events import NoteTable, Track, from_score, read_midi, to_score, write_midi
from ostinato.events.table import (
    BEND_RANGE,
    EXPRESSION,
    PAN,
    PITCH_BEND,
    SUSTAIN,
    VOLUME,
    Controls,
    TempoMap,
    default_pan,
    default_pans,
    with_sustain,
)

TPQ = 480


def performance_file(path):
    """Two tracks: piano with volume, expression, pedal and bends; drums with pan; a tempo change at tick 960.

    Returns the expected events: (track, tick, number, value), in playing order per (track, number).
    """
    mid = mido.MidiFile(ticks_per_beat=TPQ)
    meta = mido.MidiTrack()
    meta.append(mido.MetaMessage("set_tempo", tempo=500000, time=0))  # 120 qpm
    meta.append(mido.MetaMessage("set_tempo", tempo=250000, time=960))  # 240 qpm from tick 960
    piano, drums = mido.MidiTrack(), mido.MidiTrack()
    piano_events = [  # absolute tick, message
        (0, mido.Message("program_change", program=0, channel=0)),
        (0, mido.Message("control_change", control=7, value=90, channel=0)),
        (0, mido.Message("control_change", control=11, value=110, channel=0)),
        (0, mido.Message("control_change", control=91, value=40, channel=0)),  # reverb send: not in the contract
        (10, mido.Message("control_change", control=64, value=127, channel=0)),
        (10, mido.Message("note_on", note=60, velocity=80, channel=0)),
        (200, mido.Message("pitchwheel", pitch=-8192, channel=0)),
        (480, mido.Message("note_off", note=60, velocity=0, channel=0)),
        (700, mido.Message("pitchwheel", pitch=8191, channel=0)),
        (1200, mido.Message("control_change", control=64, value=0, channel=0)),
        (1200, mido.Message("pitchwheel", pitch=0, channel=0)),
        (1440, mido.Message("control_change", control=7, value=127, channel=0)),
        (1440, mido.Message("note_on", note=62, velocity=70, channel=0)),
        (1920, mido.Message("note_off", note=62, velocity=0, channel=0)),
    ]
    drum_events = [
        (0, mido.Message("control_change", control=10, value=20, channel=9)),
        (0, mido.Message("note_on", note=36, velocity=100, channel=9)),
        (120, mido.Message("note_off", note=36, velocity=0, channel=9)),
        (960, mido.Message("control_change", control=10, value=100, channel=9)),
        (960, mido.Message("note_on", note=38, velocity=100, channel=9)),
        (1080, mido.Message("note_off", note=38, velocity=0, channel=9)),
    ]
    for track, messages in ((piano, piano_events), (drums, drum_events)):
        previous = 0
        for tick, message in messages:
            track.append(message.copy(time=tick - previous))
            previous = tick
    mid.tracks += [meta, piano, drums]
    mid.save(path)
    return [
        (0, 0, VOLUME, 90), (0, 1440, VOLUME, 127), (0, 0, EXPRESSION, 110),
        (0, 10, SUSTAIN, 127), (0, 1200, SUSTAIN, 0),
        (0, 200, PITCH_BEND, -8192), (0, 700, PITCH_BEND, 8191), (0, 1200, PITCH_BEND, 0),
        (1, 0, PAN, 20), (1, 960, PAN, 100),
    ]


def event_tuples(controls: Controls):
    return sorted(zip(controls.track.tolist(), controls.tick.tolist(), controls.number.tolist(),
                      controls.value.tolist()), key=lambda e: (e[0], e[2], e[1]))


def seconds(tick):
    """Seconds at ``tick`` under 120 qpm to tick 960, then 240 qpm (by hand)."""
    return tick / TPQ * 0.5 if tick <= 960 else 1.0 + (tick - 960) / TPQ * 0.25


def test_controls_are_read_with_ticks_and_seconds(tmp_path):
    expected = performance_file(tmp_path / "perf.mid")
    table = read_midi(tmp_path / "perf.mid")
    assert event_tuples(table.controls) == sorted(expected, key=lambda e: (e[0], e[2], e[1]))
    assert table.controls.time_s.tolist() == pytest.approx([seconds(t) for t in table.controls.tick.tolist()],
                                                           abs=1e-12)
    assert 91 not in table.controls.number.tolist()
    assert table.controls.values_at(1, PAN, [0.0, 0.99, 1.0, 5.0]).tolist() == [20, 20, 100, 100]
    assert table.controls.values_at(0, EXPRESSION, [-1.0]).tolist() == [127]  # before any event: the GM default


def test_controls_round_trip_exactly_through_midi_files_and_symusic(tmp_path):
    expected = performance_file(tmp_path / "perf.mid")
    table = read_midi(tmp_path / "perf.mid")
    write_midi(table, tmp_path / "again.mid")
    back = read_midi(tmp_path / "again.mid")
    assert back.notes_equal(table) and back.controls.equals(table.controls)
    np.testing.assert_array_equal(back.controls.time_s, table.controls.time_s)
    bridged = from_score(to_score(table))
    assert bridged.controls.equals(table.controls)
    np.testing.assert_array_equal(bridged.controls.time_s, table.controls.time_s)
    # what a third program (mido) reads in the written file: the same events at the same ticks
    found = []
    for index, track in enumerate(mido.MidiFile(tmp_path / "again.mid").tracks):
        tick = 0
        for message in track:
            tick += message.time
            if message.type == "control_change":
                found.append((index, tick, message.control, message.value))
            elif message.type == "pitchwheel":
                found.append((index, tick, PITCH_BEND, message.pitch))
    tracks_with_notes = sorted({e[0] for e in found})
    renumbered = [(tracks_with_notes.index(t), tick, n, v) for t, tick, n, v in found]
    assert sorted(renumbered, key=lambda e: (e[0], e[2], e[1])) == sorted(expected, key=lambda e: (e[0], e[2], e[1]))


def test_real_piano_files_keep_their_pedal_through_a_round_trip(tmp_path):
    pedalled = 0
    for path in sorted(fixture_dir("midi_one_track").glob("*.mid")):
        table = read_midi(path)
        score = symusic.Score(str(path))
        n_contract = sum(int(np.isin(t.controls.numpy()["number"], [7, 10, 11, 64]).sum()) + len(t.pitch_bends)
                         for t in score.tracks if len(t.controls) or len(t.pitch_bends))
        assert len(table.controls) == n_contract, path.name
        pedalled += int((table.controls.number == SUSTAIN).any())
        write_midi(table, tmp_path / path.name)
        assert read_midi(tmp_path / path.name).controls.equals(table.controls), path.name
    assert pedalled >= 10  # the MAESTRO performances all use the pedal


def test_with_sustain_holds_notes_until_the_pedal_lifts_or_the_key_is_struck_again():
    tracks = [Track("piano", 0), Track("other", 40)]
    #          held to 1920   restruck at 960   after the pedal  other track (no pedal)  ends at the pedal-up tick
    onset = [0, 480, 960, 2000, 0, 100]
    offset = [240, 600, 1100, 2100, 240, 1920]
    pitch = [60, 64, 64, 67, 60, 72]
    track = [0, 0, 0, 0, 1, 0]
    controls = Controls.from_ticks([0, 1920], [0, 0], [SUSTAIN, SUSTAIN], [127, 0], TempoMap(TPQ))
    table = NoteTable.from_ticks(onset, offset, pitch, [80] * 6, track, tracks, controls=controls)
    held = with_sustain(table)
    assert held.offset_tick.tolist() == [1920, 960, 1920, 2100, 240, 1920]
    assert held.onset_tick.tolist() == onset
    np.testing.assert_allclose(held.offset_s, held.tempo_map.to_seconds(held.offset_tick))
    assert len(held.controls) == 0 and with_sustain(held).offset_tick.tolist() == held.offset_tick.tolist()
    # a pedal that never lifts holds to the end of the piece
    down = Controls.from_ticks([0], [0], [SUSTAIN], [100], TempoMap(TPQ))
    table = NoteTable.from_ticks([0, 0], [100, 2000], [60, 61], [80, 80], [0, 0], tracks, controls=down)
    assert with_sustain(table).offset_tick.tolist() == [2000, 2000]


def test_controls_are_validated_and_survive_select():
    with pytest.raises(ValueError, match=r"Controls\.number"):
        Controls.from_ticks([0], [0], [91], [3], TempoMap(TPQ))
    with pytest.raises(ValueError, match="pitch bend"):
        Controls.from_ticks([0], [0], [PITCH_BEND], [8192], TempoMap(TPQ))
    with pytest.raises(ValueError, match="CC7"):
        Controls.from_ticks([0], [0], [VOLUME], [128], TempoMap(TPQ))
    controls = Controls.from_ticks([0], [1], [VOLUME], [3], TempoMap(TPQ))
    with pytest.raises(ValueError, match=r"controls\.track"):
        NoteTable.from_ticks([0], [10], [60], [80], [0], [Track()], controls=controls)
    table = NoteTable.from_ticks([0, 5], [10, 20], [60, 62], [80, 80], [0, 1], [Track(), Track()], controls=controls)
    assert table.select([1]).controls.equals(controls) and table.sorted().controls.equals(controls)


def test_default_pans_follow_the_family_and_spread_parts_that_share_a_program():
    assert default_pan(0, True) == 64 and default_pan(33) == 64  # drums and bass in the middle
    assert default_pan(40) < 64 < default_pan(43)  # violins left, basses right
    pans = default_pans([Track(program=52), Track(program=52), Track(program=52), Track(is_drum=True)])
    assert pans == [default_pan(52) - 25, default_pan(52), default_pan(52) + 25, 64]


def test_info_json_shows_the_performance_data(tmp_path):
    performance_file(tmp_path / "perf.mid")
    result = run_cli("info", "--json", str(tmp_path / "perf.mid"))
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["controls"] == {"expression": 1, "pan": 2, "sustain": 2, "volume": 2, "pitch_bend": 3,
                                  "bend_range": 0}
    assert [t["controls"]["pan"] for t in record["tracks"]] == [0, 2]
    assert [t["controls"]["pitch_bend"] for t in record["tracks"]] == [3, 0]


def test_the_bend_range_is_read_from_rpn_0_and_written_back_as_it(tmp_path):
    """RPN 0,0 with data entry 12 semitones (and, later, 7 semitones 50 cents) sets a track's bend range;
    RPN 1 (fine tuning) and data entry without RPN 0 selected are not a bend range."""
    mid = mido.MidiFile(ticks_per_beat=TPQ)
    track = mido.MidiTrack()
    messages = [(0, 101, 0), (0, 100, 0), (0, 6, 12), (240, 101, 0), (240, 100, 1), (240, 6, 70),
                (480, 101, 0), (480, 100, 0), (480, 6, 7), (480, 38, 50), (600, 101, 127), (600, 100, 127),
                (600, 6, 3)]
    previous = 0
    for tick, control, value in messages:
        track.append(mido.Message("control_change", control=control, value=value, time=tick - previous))
        previous = tick
    track.append(mido.Message("note_on", note=60, velocity=80, time=0))
    track.append(mido.Message("note_off", note=60, velocity=0, time=480))
    mid.tracks.append(track)
    mid.save(tmp_path / "rpn.mid")
    table = read_midi(tmp_path / "rpn.mid")
    assert event_tuples(table.controls) == [(0, 0, BEND_RANGE, 1200), (0, 480, BEND_RANGE, 750)]
    assert table.controls.values_at(0, BEND_RANGE, [-1.0, 0.0, 0.49, 0.5]).tolist() == [200, 1200, 1200, 750]
    write_midi(table, tmp_path / "again.mid")
    assert read_midi(tmp_path / "again.mid").controls.equals(table.controls)
    written = [(m.control, m.value) for m in mido.MidiFile(tmp_path / "again.mid").tracks[-1]
               if m.type == "control_change"]
    assert written == [(101, 0), (100, 0), (6, 12), (38, 0), (101, 0), (100, 0), (6, 7), (38, 50)]
    with pytest.raises(ValueError, match="bend range out of range"):
        Controls.from_ticks([0], [0], [BEND_RANGE], [12800], table.tempo_map)
