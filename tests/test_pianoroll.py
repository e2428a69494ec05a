"""Piano rolls: exact planes on a hand-made table, and back to the same notes."""

import numpy as np
import pytest
from conftest import fixture_dir

from ostinato.events import NoteTable, read_midi, to_pianoroll


def _table() -> NoteTable:
    # At 10 frames/s: C4 frames 0-4, C4 again 5-9 (repeated note), E4 5-14, a drum hit on frame 2.
    return NoteTable.from_seconds(
        [0.0, 0.5, 0.5, 0.2], [0.5, 1.0, 1.5, 0.3], [60, 60, 64, 36], [80, 70, 60, 100],
        program=[0, 0, 0, 0], is_drum=[False, False, False, True],
    )


def test_planes_are_exact():
    roll = to_pianoroll(_table(), frame_rate_hz=10)
    assert roll.frame.shape == roll.onset.shape == roll.velocity.shape == (2, 128, 15)
    assert roll.frame[0, 60].tolist() == [True] * 10 + [False] * 5
    assert np.flatnonzero(roll.onset[0, 60]).tolist() == [0, 5]
    assert roll.velocity[0, 60].tolist() == [80] * 5 + [70] * 5 + [0] * 5
    assert np.flatnonzero(roll.frame[0, 64]).tolist() == list(range(5, 15))
    assert np.flatnonzero(roll.frame[1, 36]).tolist() == [2]
    assert roll.frame.sum() == 10 + 10 + 1
    assert roll.tracks[1].is_drum


def test_back_to_the_same_notes():
    table = _table()
    back = to_pianoroll(table, frame_rate_hz=10).to_notes()
    assert back.notes_equal(table)
    np.testing.assert_allclose(back.sorted().onset_s, table.sorted().onset_s)
    np.testing.assert_allclose(back.sorted().offset_s, table.sorted().offset_s)


def test_a_frame_without_onset_still_starts_a_note():
    roll = to_pianoroll(_table(), frame_rate_hz=10)
    roll.onset[:] = False
    back = roll.to_notes()
    assert sorted(back.pitch.tolist()) == [36, 60, 64]  # the repeated C4 merges without its onset


def test_fixture_round_trip_on_the_frame_grid():
    table = read_midi(fixture_dir("midi_one_track") / "POP909_008.mid")
    rate = 100.0
    start = np.rint(table.onset_s * rate)
    end = np.maximum(np.rint(table.offset_s * rate), start + 1)
    snapped = NoteTable.from_seconds(start / rate, end / rate, table.pitch, table.velocity, program=table.program)
    # keep notes that do not overlap an earlier note of the same pitch (a roll cannot hold both)
    order = np.lexsort((snapped.onset_s, snapped.pitch))
    same_pitch = snapped.pitch[order][1:] == snapped.pitch[order][:-1]
    overlaps = same_pitch & (snapped.onset_s[order][1:] < snapped.offset_s[order][:-1])
    keep = np.ones(len(snapped), bool)
    keep[order[1:][overlaps]] = False
    snapped = snapped.select(keep)
    assert len(snapped) > 1500
    back = to_pianoroll(snapped, rate).to_notes()
    assert back.notes_equal(snapped, tick_tolerance=1)


def test_rejects_bad_rate_and_huge_rolls():
    with pytest.raises(ValueError, match="frame_rate_hz"):
        to_pianoroll(_table(), 0)
    long = NoteTable.from_seconds([0.0], [1e6], [60], [80])
    with pytest.raises(ValueError, match="exceeds"):
        to_pianoroll(long, 1000)
