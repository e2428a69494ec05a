"""NoteTable, TempoMap and the metadata types: exact values on small hand-made inputs."""

import numpy as np
import pytest

from ostinato.events import KeySignature, NoteTable, TempoMap, TimeSignature, Track


def test_tempo_map_converts_both_ways_across_changes():
    tmap = TempoMap(480, [(0, 120.0), (960, 60.0)])
    np.testing.assert_allclose(tmap.to_seconds([0, 480, 960, 1440, 1920]), [0.0, 0.5, 1.0, 2.0, 3.0])
    np.testing.assert_array_equal(tmap.to_ticks([0.0, 0.5, 1.0, 2.0, 3.0]), [0, 480, 960, 1440, 1920])


def test_tempo_map_defaults_to_120_and_moves_a_late_first_tempo_to_zero():
    assert TempoMap(96).to_seconds(96) == pytest.approx(0.5)
    late = TempoMap(100, [(400, 60.0)])
    assert late.to_seconds(100) == pytest.approx(1.0)  # 60 qpm from tick 0


@pytest.mark.parametrize(
    ("sharps", "mode", "name"),
    [(0, "major", "C major"), (3, "minor", "F# minor"), (-3, "major", "Eb major"), (2, "dorian", "E dorian"),
     (1, "mixolydian", "D mixolydian"), (-1, "minor", "D minor"), (7, "major", "C# major"), (-7, "minor", "Ab minor")],
)
def test_key_signature_names(sharps, mode, name):
    assert KeySignature(0, 0.0, sharps, mode).name == name


def test_key_signature_rejects_out_of_range():
    with pytest.raises(ValueError, match="sharps"):
        KeySignature(0, 0.0, 8)
    with pytest.raises(ValueError, match="mode"):
        KeySignature(0, 0.0, 0, "blues")


def test_time_signature_text_and_bar_length():
    assert TimeSignature(0, 0.0, 6, 8).text == "6/8"
    assert TimeSignature(0, 0.0, 6, 8).bar_quarters == 3


def test_from_seconds_groups_tracks_by_program_and_fills_ticks():
    table = NoteTable.from_seconds([0.0, 0.5, 1.0], [0.5, 1.0, 2.0], [60, 62, 36], [80, 90, 100],
                                   program=[0, 0, 0], is_drum=[False, False, True])
    assert table.tracks == [Track("", 0, False), Track("", 0, True)]
    np.testing.assert_array_equal(table.track, [0, 0, 1])
    np.testing.assert_array_equal(table.onset_tick, [0, 480, 960])
    np.testing.assert_array_equal(table.offset_tick, [480, 960, 1920])
    assert table.has_drums and table.programs == [0]
    assert table.duration_s == 2.0


def test_from_ticks_derives_seconds_programs_and_drums():
    tracks = [Track("Violin", 40), Track("Kit", 0, True)]
    table = NoteTable.from_ticks([0, 240], [240, 480], [67, 38], [64, 100], [0, 1], tracks, ticks_per_quarter=240,
                                 tempos=[(0, 60.0)], time_signatures=[(0, 3, 4)], key_signatures=[(0, 1, "major")])
    np.testing.assert_allclose(table.onset_s, [0.0, 1.0])
    np.testing.assert_array_equal(table.program, [40, 0])
    np.testing.assert_array_equal(table.is_drum, [False, True])
    assert table.time_signatures[0].text == "3/4" and table.key_signatures[0].name == "G major"
    assert table.programs == [40]


@pytest.mark.parametrize(
    ("change", "message"),
    [(dict(pitch=[128]), "pitch must be in 0..127, got 128"),
     (dict(velocity=[0]), "velocity must be in 1..127, got 0"),
     (dict(offset_tick=[-5]), "offset_tick must be >= onset_tick"),
     (dict(track=[3]), "track must index tracks"),
     (dict(pitch=[60, 61]), r"pitch must have shape \(1,\)")],
)
def test_constructor_names_the_bad_column(change, message):
    columns = dict(onset_tick=[0], offset_tick=[10], onset_s=[0.0], offset_s=[0.1], pitch=[60], velocity=[64],
                   program=[0], is_drum=[False], track=[0])
    columns.update(change)
    with pytest.raises(ValueError, match=message):
        NoteTable(**columns, tracks=[Track()])


def test_sorted_and_notes_equal():
    a = NoteTable.from_seconds([1.0, 0.0], [2.0, 1.0], [64, 60], [80, 80])
    b = NoteTable.from_seconds([0.0, 1.0], [1.0, 2.0], [60, 64], [80, 80])
    assert a.notes_equal(b)
    np.testing.assert_array_equal(a.sorted().pitch, [60, 64])
    c = NoteTable.from_seconds([0.0, 1.0], [1.0, 2.0], [60, 64], [81, 80])
    assert not a.notes_equal(c)


def test_empty_table():
    table = NoteTable.empty()
    assert len(table) == 0 and table.duration_s == 0.0 and table.programs == [] and not table.has_drums
