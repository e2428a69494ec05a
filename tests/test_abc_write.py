"""Tests for events.abc_write: ABC text from a NoteTable, checked by parsing it back with music21."""

from __future__ import annotations

import warnings
from fractions import Fraction
from pathlib import Path

import pytest

music21 = pytest.importorskip("music21")
from music21 import converter, harmony  # noqa: E402

from ostinato.events.abc_write import table_to_abc, write_abc  # noqa: E402
from ostinato.events.table import NoteTable, Track  # noqa: E402

TPQ = 480
FLOWERS = Path("/work/shared/fixtures/abc/flowers_of_edinburgh.abc")


def make_table(notes, *, tracks=None, **kwargs) -> NoteTable:
    """A table from ``(onset_ql, length_ql, pitch[, track])`` tuples (quarter lengths, any Fraction)."""
    rows = [(Fraction(n[0]), Fraction(n[1]), n[2], n[3] if len(n) > 3 else 0) for n in notes]
    return NoteTable.from_ticks(
        [int(on * TPQ) for on, _, _, _ in rows],
        [int((on + ql) * TPQ) for on, ql, _, _ in rows],
        [p for _, _, p, _ in rows],
        [80] * len(rows),
        [t for _, _, _, t in rows],
        tracks if tracks is not None else [Track("melody", 0)],
        ticks_per_quarter=TPQ,
        **kwargs,
    )


def expected_notes(table: NoteTable) -> list[tuple[int, Fraction, Fraction]]:
    """``(midi pitch, offset, quarterLength)`` of every note of ``table``, sorted."""
    tpq = table.ticks_per_quarter
    return sorted(
        (int(p), Fraction(int(on), tpq), Fraction(int(off - on), tpq))
        for p, on, off in zip(table.pitch, table.onset_tick, table.offset_tick)
    )


def parse(text: str):
    return converter.parse(text, format="abc")


def parts_of(score) -> list:
    return list(score.parts) or [score]


def parsed_notes(text: str) -> list[tuple[int, Fraction, Fraction]]:
    """``(midi pitch, offset, quarterLength)`` of every note music21 reads, chords expanded, ties stripped."""
    out = []
    for part in parts_of(parse(text)):
        for n in part.stripTies().flatten().notes:
            if isinstance(n, harmony.Harmony):
                continue
            out += [(p.midi, Fraction(n.offset), Fraction(n.quarterLength)) for p in n.pitches]
    return sorted(out)


def body(text: str) -> list[str]:
    """The lines after ``K:``."""
    lines = text.splitlines()
    return lines[next(i for i, line in enumerate(lines) if line.startswith("K:")) + 1:]


def music(text: str) -> str:
    """The music lines (no V: or %% lines) joined with newlines."""
    return "\n".join(line for line in body(text) if not line.startswith(("V:", "%")))


def assert_round_trip(table: NoteTable, **kwargs) -> str:
    text = table_to_abc(table, **kwargs)
    assert parsed_notes(text) == expected_notes(table), text
    return text


# ----------------------------------------------------------------------------- header


def test_header_fields_in_order():
    table = make_table([(0, 1, 60)], tempos=[(0, 96.4)], time_signatures=[(0, 3, 4)],
                       key_signatures=[(0, 2, "major")])
    text = table_to_abc(table, title="A  tune", reference_number=7)
    assert text.splitlines()[:7] == ["%abc-2.1", "X:7", "T:A tune", "M:3/4", "L:1/8", "Q:1/4=96", "K:D"]
    assert text.endswith("|]\n")


def test_header_defaults():
    table = NoteTable.from_ticks([0], [TPQ], [60], [80], [0], [Track()], ticks_per_quarter=TPQ)
    head = table_to_abc(table).splitlines()[:6]
    assert head == ["%abc-2.1", "X:1", "M:4/4", "L:1/8", "Q:1/4=120", "K:C"]


def test_unit_length_validated():
    with pytest.raises(ValueError, match="unit_length"):
        table_to_abc(make_table([(0, 1, 60)]), unit_length=Fraction(0))


# ----------------------------------------------------------------------------- notes


def test_c_major_scale():
    scale = [60, 62, 64, 65, 67, 69, 71, 72]
    table = make_table([(i, 1, p) for i, p in enumerate(scale)], time_signatures=[(0, 4, 4)])
    text = assert_round_trip(table)
    assert music(text) == "C2 D2 E2 F2 | G2 A2 B2 c2 |]"


def test_octaves():
    pitches = [36, 48, 60, 72, 84, 96, 47, 59, 71, 83]
    table = make_table([(i, 1, p) for i, p in enumerate(pitches)])
    text = assert_round_trip(table)
    assert music(text).split("|")[0].split() == ["C,,2", "C,2", "C2", "c2"]


def test_accidentals_carry_within_bar_and_reset_at_bar_line():
    # C major: F#4 F#4 F4 F#4 | F#4 F4 F4 F4
    notes = [(0, 1, 66), (1, 1, 66), (2, 1, 65), (3, 1, 66), (4, 1, 66), (5, 1, 65), (6, 1, 65), (7, 1, 65)]
    text = assert_round_trip(make_table(notes))
    assert music(text) == "^F2 F2 =F2 ^F2 | ^F2 =F2 F2 F2 |]"


def test_natural_in_sharp_key():
    # G major: F4 F4 F#4 | F4 F#4
    notes = [(0, 1, 65), (1, 1, 65), (2, 2, 66), (4, 2, 65), (6, 2, 66)]
    text = assert_round_trip(make_table(notes, key_signatures=[(0, 1, "major")]))
    assert music(text) == "=F2 F2 ^F4 | =F4 ^F4 |]"


def test_accidental_in_other_octave_gets_courtesy_sign():
    # ABC 2.1 carries F#4 only to F4; music21 carries it to every F, so F5 gets an explicit natural.
    text = assert_round_trip(make_table([(0, 2, 66), (2, 2, 77), (4, 2, 65), (6, 2, 78)]))
    assert music(text) == "^F4 =f4 | F4 ^f4 |]"


def test_flat_spelling_in_flat_key():
    # F major: Bb4 and Eb4 (not in F major's scale: spelled as a flat, not D#)
    text = assert_round_trip(make_table([(0, 2, 70), (2, 2, 63), (4, 2, 71), (6, 2, 70)],
                                        key_signatures=[(0, -1, "major")]))
    assert music(text) == "B4 _E4 | =B4 _B4 |]"


def test_sharp_spelling_in_c_major():
    text = assert_round_trip(make_table([(0, 4, 61), (4, 4, 70)]))
    assert music(text) == "^C8 | ^A8 |]"


def test_tie_across_bar_line():
    table = make_table([(0, 3, 60), (3, 3, 67), (6, 2, 64)], time_signatures=[(0, 4, 4)])
    text = assert_round_trip(table)
    assert music(text) == "C6 G2- | G4 E4 |]"


def test_long_note_over_several_bars_keeps_its_accidental():
    text = assert_round_trip(make_table([(1, 10, 66)], time_signatures=[(0, 4, 4)]))
    assert music(text) == "z2 ^F6- | ^F8- | ^F6 z2 |]"


def test_rests_fill_gaps():
    text = assert_round_trip(make_table([(Fraction(1, 2), Fraction(1, 2), 60), (3, Fraction(3, 2), 62)]))
    assert music(text) == "zC z4 D2- | Dz7 |]"


def test_tied_natural_repeats_its_courtesy_sign():
    # F#5 makes music21 carry the sharp to F4, so F4 gets a courtesy natural; the tied
    # continuations repeat it, or music21 would not join the tie (it compares accidentals).
    text = assert_round_trip(make_table([(0, 1, 78), (1, 10, 65)]))
    assert music(text) == "^f2 =F6- | =F8- | =F6 z2 |]"


def test_chords():
    notes = [(0, 1, 60), (0, 1, 64), (0, 1, 67), (1, 1, 62), (1, 1, 65), (1, 1, 69), (2, 2, 59), (2, 2, 67)]
    text = assert_round_trip(make_table(notes))
    assert music(text) == "[CEG]2 [DFA]2 [B,G]4 |]"
    chords = [c for c in parse(text).flatten().notes if c.isChord]
    assert [len(c.pitches) for c in chords] == [3, 3, 2]


def test_chord_accidentals_are_explicit():
    # F#4 then a chord with F#4: ABC 2.1 would carry the sharp, music21 does not into chords.
    text = assert_round_trip(make_table([(0, 1, 66), (1, 1, 66), (1, 1, 69), (2, 2, 65)]))
    assert music(text) == "^F2 [^FA]2 =F4 |]"


def test_chord_tied_across_bar_line():
    # Written with a tie on every chord note; music21 does not read ties inside chords,
    # so check the text and that the two halves add up.
    table = make_table([(3, 2, 60), (3, 2, 64)])
    text = table_to_abc(table)
    assert music(text) == "z6 [C-E-]2 | [CE]2 z6 |]"
    chords = [c for c in parse(text).flatten().notes if c.isChord]
    assert [(Fraction(c.offset), Fraction(c.quarterLength)) for c in chords] == [(3, 1), (4, 1)]


def test_two_overlapping_voices():
    # a held bass note under a moving melody: two voices of one track
    notes = [(0, 4, 48), (0, 1, 64), (1, 1, 65), (2, 1, 67), (3, 2, 69), (5, 3, 67)]
    text = assert_round_trip(make_table(notes, tracks=[Track("piano", 0)]))
    lines = body(text)
    assert lines == [
        'V:1 name="piano"', "%%MIDI program 0", "E2 F2 G2 A2- | A2 G6 |]",
        'V:2 name="piano"', "%%MIDI program 0", "C,8 | z8 |]",
    ]
    assert len(parse(text).parts) == 2
    # our reader takes the two voices of one name and instrument as the one track they came from
    from ostinato.events.abc_read import AbcTune, parse_tune

    back = parse_tune(AbcTune(1, text))
    assert back.tracks == [Track("piano", 0)] and len(back) == len(notes)


def test_same_onset_different_length_goes_to_new_voice():
    notes = [(0, 2, 72), (0, 4, 60), (2, 2, 74)]
    text = assert_round_trip(make_table(notes))
    assert [line for line in body(text) if not line.startswith("%")] == ["V:1 name=\"melody\"", "c4 d4 |]",
                                                                         "V:2 name=\"melody\"", "C8 |]"]


def test_several_tracks_and_programs():
    tracks = [Track("flute", 73), Track("cello", 42)]
    notes = [(0, 2, 72, 0), (2, 2, 74, 0), (0, 4, 48, 1)]
    text = assert_round_trip(make_table(notes, tracks=tracks))
    assert body(text) == ['V:1 name="flute"', "%%MIDI program 73", "c4 d4 |]",
                          'V:2 name="cello"', "%%MIDI program 42", "C,8 |]"]


def test_all_voices_span_the_same_bars():
    notes = [(0, 1, 72, 0), (9, 1, 48, 1)]
    text = assert_round_trip(make_table(notes, tracks=[Track("a", 0), Track("b", 0)]))
    for part in parse(text).parts:
        assert len(part.getElementsByClass("Measure")) == 3


def test_drum_track_warns_and_uses_channel_10():
    table = make_table([(0, 1, 36), (1, 1, 38)], tracks=[Track("drums", 0, True)])
    with pytest.warns(UserWarning, match="no standard drum notation"):
        text = table_to_abc(table)
    assert "%%MIDI channel 10" in body(text)
    assert parsed_notes(text) == expected_notes(table)


def test_no_warning_without_drums():
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        table_to_abc(make_table([(0, 1, 60)]))


# ----------------------------------------------------------------------------- time


def test_triplets_and_sixteenths():
    third, sixth = Fraction(1, 3), Fraction(1, 6)
    notes = [(i * third, third, 60 + 2 * i) for i in range(3)]  # eighth triplets
    notes += [(1 + i * sixth, sixth, 67 + i) for i in range(6)]  # sixteenth triplets
    notes += [(2 + i * Fraction(1, 4), Fraction(1, 4), 72 + i) for i in range(4)]  # sixteenths
    notes += [(3, Fraction(3, 4), 64), (Fraction(15, 4), Fraction(1, 4), 65)]  # dotted eighth + sixteenth
    text = assert_round_trip(make_table(notes))
    assert music(text).split()[:3] == ["(3CDE", "(3:2:6G/^G/A/^A/B/c/", "c/^c/d/^d/"]
    assert music(text).split()[3:] == ["E3/2F/", "|]"]


def test_odd_triplet_lengths_are_tuplets_abc2midi_plays_exactly():
    """Lengths on the 1/12-quarter grid that are no plain multiple of the unit (thirds, sixths) are written as
    ``(3:2:r`` tuplets of plain lengths (abc2midi refuses ``/3`` and ``/6``: "3 b is not a power of 2"); one no
    tuplet note can have (5/12 of a quarter) is tied pieces."""
    from ostinato.events.abc2midi import read_abc_abc2midi

    twelfth = Fraction(1, 12)
    notes = [(0, 5 * twelfth, 60), (5 * twelfth, 7 * twelfth, 62)]  # 5 + 7 twelfths: one beat
    notes += [(1, Fraction(2, 3), 64), (Fraction(5, 3), Fraction(1, 3), 65)]  # a triplet quarter and eighth
    notes += [(2 + twelfth, Fraction(23, 12), 67)]  # after a rest of a twelfth, to the bar's end
    table = make_table(notes)
    text = assert_round_trip(table)
    assert "/3" not in text and "/6" not in text
    # C: 3 twelfths (C/) and 2 in a tuplet; D: 1 in the tuplet and 6 (D); the rest and G's first 2 in a tuplet
    assert music(text) == "C/-(3:2:2C/D/4-D (3:2:2E2F (3:2:2z/4G/-G7/2 |]"
    played = read_abc_abc2midi(text, "odd.abc")
    per = Fraction(12, played.ticks_per_quarter)
    assert sorted((int(p), round(int(a) * per), round(int(b) * per)) for p, a, b in
                  zip(played.pitch, played.onset_tick, played.offset_tick, strict=True)) == [
        (p, int(on * 12), int((on + ql) * 12)) for on, ql, p in notes]


def test_other_unit_length():
    notes = [(0, Fraction(1, 3), 60), (Fraction(1, 3), Fraction(2, 3), 62), (1, 3, 64)]
    text = assert_round_trip(make_table(notes), unit_length=Fraction(1, 16))
    assert "L:1/16" in text
    assert music(text) == "(3:2:2C2D4 E12 |]"


def test_quantisation_to_twelfths_of_a_quarter():
    # 481 ticks rounds to 480; a zero-length note keeps one grid step (1/12 quarter)
    table = NoteTable.from_ticks([0, 481, 960], [479, 961, 960], [60, 62, 64], [80] * 3, [0] * 3, [Track()],
                                 ticks_per_quarter=TPQ)
    text = table_to_abc(table)
    assert parsed_notes(text) == [(60, 0, 1), (62, 1, 1), (64, 2, Fraction(1, 12))]


def test_other_ticks_per_quarter():
    table = NoteTable.from_ticks([0, 96, 192], [96, 192, 384], [60, 62, 64], [80] * 3, [0] * 3, [Track()],
                                 ticks_per_quarter=96)
    assert parsed_notes(table_to_abc(table)) == expected_notes(table)


def test_meter_change():
    # 4/4 bar, two 3/4 bars, a 4/4 bar; a note crossing the 3/4 bar line is tied
    notes = [(0, 4, 60), (4, 2, 62), (6, 2, 64), (8, 2, 65), (10, 4, 67)]
    table = make_table(notes, time_signatures=[(0, 4, 4), (4 * TPQ, 3, 4), (10 * TPQ, 4, 4)])
    text = assert_round_trip(table)
    assert music(text) == "C8 | [M:3/4] D4 E2- | E2 F4 | [M:4/4] G8 |]"
    # music21 takes its bars from the bar lines (it does not read inline meter fields)
    measures = parts_of(parse(text))[0].getElementsByClass("Measure")
    assert [Fraction(m.offset) for m in measures] == [0, 4, 7, 10]


def test_lines_break_every_four_bars():
    table = make_table([(i, 1, 60 + i % 12) for i in range(4 * 9)], time_signatures=[(0, 4, 4)])
    lines = music(assert_round_trip(table)).splitlines()
    assert len(lines) == 3
    assert [line.count("|") for line in lines] == [4, 4, 1]
    assert lines[-1].endswith("|]") and not lines[0].endswith("|]")


# ----------------------------------------------------------------------------- keys


@pytest.mark.parametrize(
    ("sharps", "mode", "k_line", "pitches"),
    [
        (-3, "major", "K:Eb", [63, 65, 67, 68, 70, 72, 74, 75]),
        (1, "minor", "K:Em", [64, 66, 67, 69, 71, 72, 74, 76]),
        (-1, "minor", "K:Dm", [62, 64, 65, 67, 69, 70, 73, 74]),
        (0, "dorian", "K:Ddor", [62, 64, 65, 67, 69, 71, 72, 74]),
        (1, "mixolydian", "K:Dmix", [62, 64, 66, 67, 69, 71, 72, 74]),
        (3, "minor", "K:F#m", [66, 68, 69, 71, 73, 74, 77, 78]),
    ],
)
def test_keys(sharps, mode, k_line, pitches):
    table = make_table([(i, 1, p) for i, p in enumerate(pitches)], key_signatures=[(0, sharps, mode)])
    text = assert_round_trip(table)
    assert k_line in text.splitlines()
    keys = parse(text).flatten().getElementsByClass("KeySignature")
    assert keys[0].sharps == sharps
    # scale notes need no accidentals; harmonic minor's leading tone is spelled as one (C#, E#)
    signs = sum(music(text).count(c) for c in "^_=")
    assert signs == (1 if mode == "minor" and sharps != 1 else 0)


def test_locrian_is_written_as_major_with_the_same_signature():
    # music21 does not read K:Bloc; B locrian has C major's signature
    table = make_table([(0, 2, 71), (2, 2, 72), (4, 2, 74), (6, 2, 77)], key_signatures=[(0, 0, "locrian")])
    text = assert_round_trip(table)
    assert "K:C" in text.splitlines()
    assert music(text) == "B4 c4 | d4 f4 |]"


def test_enharmonic_spelling_in_seven_sharps():
    # C# major: MIDI 60 is B#3, MIDI 65 is E#4; both diatonic, so no accidentals
    table = make_table([(0, 2, 60), (2, 2, 65)], key_signatures=[(0, 7, "major")])
    text = assert_round_trip(table)
    assert music(text) == "B,4 E4 |]"


# ----------------------------------------------------------------------------- files


def test_empty_table():
    text = table_to_abc(NoteTable.empty())
    assert text.splitlines() == ["%abc-2.1", "X:1", "M:4/4", "L:1/8", "Q:1/4=120", "K:C", "z8 |]"]
    assert parsed_notes(text) == []


def test_empty_table_keeps_meter():
    table = NoteTable.from_ticks([], [], [], [], [], [], time_signatures=[(0, 6, 8)])
    assert music(table_to_abc(table)) == "z6 |]"


def test_write_abc(tmp_path):
    table = make_table([(0, 1, 60), (1, 1, 64)])
    path = tmp_path / "out" / "tune.abc"
    write_abc(table, path)
    assert path.read_text(encoding="utf-8") == table_to_abc(table)
    write_abc(table, tmp_path / "titled.abc", title="Two notes", unit_length=Fraction(1, 4))
    assert (tmp_path / "titled.abc").read_text(encoding="utf-8") == table_to_abc(
        table, title="Two notes", unit_length=Fraction(1, 4))
    read_back = converter.parse(path).flatten().notes  # music21 reads the file itself
    assert [(n.pitch.midi, Fraction(n.offset), Fraction(n.quarterLength)) for n in read_back] == expected_notes(table)


def test_round_trip_real_tune():
    if not FLOWERS.exists():
        pytest.skip(f"{FLOWERS} is absent")
    original = converter.parse(FLOWERS)
    notes = [n for n in original.stripTies().flatten().notes if not isinstance(n, harmony.Harmony)]
    onsets = [int(Fraction(n.offset) * TPQ) for n in notes]
    offsets = [int((Fraction(n.offset) + Fraction(n.quarterLength)) * TPQ) for n in notes]
    key = original.flatten().getElementsByClass("KeySignature")[0]
    table = NoteTable.from_ticks(
        onsets, offsets, [n.pitch.midi for n in notes], [80] * len(notes), [0] * len(notes), [Track("fiddle", 40)],
        ticks_per_quarter=TPQ, time_signatures=[(0, 2, 4)], key_signatures=[(0, key.sharps, "major")],
    )
    assert len(table) > 100
    for unit in (Fraction(1, 8), Fraction(1, 16)):
        text = assert_round_trip(table, title="Flowers of Edinburgh", unit_length=unit)
        assert "K:G" in text.splitlines()
        assert parse(text).metadata.title == "Flowers of Edinburgh"
