"""MIDI reading and writing through symusic: exact note counts and lossless round trips."""

import mido
import numpy as np
import pytest
import symusic
from conftest import fixture_dir

from ostinato.events import NoteTable, Track, from_score, read, read_midi, to_score, write, write_midi
from ostinato.events.midi import midi_bytes, parse_midi


def _fixture_midis():
    return sorted(fixture_dir("midi_one_track").glob("*.mid"))


def test_every_fixture_reads_symusics_note_count():
    files = _fixture_midis()
    assert len(files) == 17  # 16 pieces and empty.mid
    for path in files:
        assert len(read_midi(path)) == symusic.Score(str(path)).note_num(), path.name


def test_fixture_round_trip_through_a_midi_file_keeps_every_note(tmp_path):
    for path in _fixture_midis():
        table = read_midi(path)
        out = tmp_path / path.name
        write_midi(table, out)
        back = read_midi(out)
        assert back.notes_equal(table), path.name  # ticks exact: tolerance 0
        assert back.ticks_per_quarter == table.ticks_per_quarter
        assert [t.qpm for t in back.tempos] == pytest.approx([t.qpm for t in table.tempos], rel=1e-6)
        assert [(s.numerator, s.denominator) for s in back.time_signatures] == \
               [(s.numerator, s.denominator) for s in table.time_signatures]
        np.testing.assert_allclose(back.onset_s, back.tempo_map.to_seconds(back.onset_tick))


def test_music21_pieces_written_by_music21_round_trip(tmp_path):
    from music21 import corpus

    for name in ("bach/bwv66.6", "monteverdi/madrigal.3.1", "palestrina/Agnus_01"):
        midi_path = tmp_path / (name.replace("/", "_") + ".mid")
        corpus.parse(name).write("midi", fp=str(midi_path))
        table = read(midi_path)
        assert len(table) > 50 and table.n_tracks >= 4
        out = tmp_path / ("again_" + midi_path.name)
        write(table, out)
        assert read(out).notes_equal(table), name


def test_score_conversion_is_lossless():
    score = symusic.Score(str(fixture_dir("midi_one_track") / "POP909_008.mid"))
    table = from_score(score)
    again = to_score(table)
    assert again.tpq == score.tpq
    assert [(t.time, t.mspq) for t in again.tempos] == [(t.time, t.mspq) for t in score.tempos]
    assert [(k.time, k.key, k.tonality) for k in again.key_signatures] == \
           [(k.time, k.key, k.tonality) for k in score.key_signatures]
    for a, b in zip(again.tracks, score.tracks, strict=True):
        assert (a.name, a.program, a.is_drum) == (b.name, b.program, b.is_drum)
        assert a.notes.numpy()["time"].tolist() == b.notes.numpy()["time"].tolist()
        assert a.notes.numpy()["duration"].tolist() == b.notes.numpy()["duration"].tolist()
    # seconds agree with symusic's own tick -> second conversion
    seconds = np.sort(np.concatenate([t.notes.numpy()["time"] for t in score.to("second").tracks]))
    np.testing.assert_allclose(np.sort(table.onset_s), seconds, atol=1e-4)


def _multi_track_table() -> NoteTable:
    tracks = [Track("Piano", 0), Track("Strings", 48), Track("Drums", 0, True), Track("Bass", 33)]
    return NoteTable.from_ticks(
        onset_tick=[0, 0, 0, 240, 480], offset_tick=[480, 960, 120, 360, 960], pitch=[60, 55, 36, 42, 36],
        velocity=[90, 70, 110, 80, 100], track=[0, 1, 2, 2, 3], tracks=tracks, ticks_per_quarter=480,
        tempos=[(0, 100.0), (480, 140.0)], time_signatures=[(0, 3, 4)], key_signatures=[(0, -2, "minor")],
    )


def test_writes_type_1_one_track_per_part_drums_on_channel_10(tmp_path):
    out = tmp_path / "band.mid"
    write_midi(_multi_track_table(), out)
    midi = mido.MidiFile(out)
    assert midi.type == 1
    channels = [{m.channel for m in trk if m.type == "note_on"} for trk in midi.tracks]
    channels = [c for c in channels if c]
    assert channels == [{0}, {1}, {9}, {3}]  # symusic: channel = track index, drums on 9
    programs = [m.program for trk in midi.tracks for m in trk if m.type == "program_change"]
    assert programs == [0, 48, 0, 33]
    back = read_midi(out)
    assert back.notes_equal(_multi_track_table())
    assert back.key_signatures[0].name == "G minor" and back.time_signatures[0].text == "3/4"
    assert [t.qpm for t in back.tempos] == pytest.approx([100.0, 140.0], rel=1e-5)  # whole µs per quarter
    assert [t.name for t in back.tracks] == ["Piano", "Strings", "Drums", "Bass"]


def test_write_is_atomic_and_leaves_no_temporary(tmp_path):
    out = tmp_path / "a.mid"
    out.write_bytes(b"old")
    write_midi(_multi_track_table(), out)
    assert [p.name for p in tmp_path.iterdir()] == ["a.mid"]
    assert parse_midi(out.read_bytes()).notes_equal(_multi_track_table())


def test_midi_bytes_from_seconds_table():
    table = NoteTable.from_seconds([0.0, 0.25], [0.25, 1.0], [72, 74], [100, 50], program=73)
    back = parse_midi(midi_bytes(table))
    np.testing.assert_allclose(back.onset_s, [0.0, 0.25])
    assert back.programs == [73]
