"""Sample metrics against hand-computed values: validity and bars, control adherence, the
Yang & Lerch histograms with overlap area and KL, originality; and `evaluate samples --folder`."""

import json
import math

import numpy as np
import pytest
from conftest import run_cli

from ostinato.events import NoteTable, Track
from ostinato.events.sources import iter_items
from ostinato.symbolic.evaluate import (
    KL_FLOOR,
    MAX_INTERVAL,
    SampleCheck,
    TrainingIndex,
    adherence,
    check_abc_tune,
    check_file,
    distribution_similarity,
    normalise_key,
    normalise_meter,
    note_sequence,
    overlap_and_kl,
    piece_features,
    sample_summary,
)

GOOD = "X:1\nM:3/4\nL:1/8\nK:G\nD2|G2 B2 d2|c2 A2 F2|G4 B2|d4|]\n"        # pickup + 3 bars + short last bar
WRONG_BAR = "X:1\nM:3/4\nL:1/8\nK:G\nD2|G2 B2 d2|c2 A2|B6|]\n"          # bar 3 (of 4) holds 2 beats
LONG_BAR = "X:1\nM:2/4\nL:1/8\nK:D\nD2 F2 A2|d4|]\n"                      # bar 1 holds 3 beats in 2/4


# ---------------------------------------------------------------------------- validity and bars
def test_a_tune_with_a_wrong_bar_has_exactly_that_bar_bad():
    check = check_abc_tune(WRONG_BAR, "wrong.abc")
    assert check.valid and check.n_bars == 4 and check.bad_bars == [3] and check.n_bad_bars == 1
    assert check.key_name == "G" and check.meter == "3/4" and check.programs == [0]
    assert check.bars_written == 4   # bar-line separated segments with notes, the pickup too (as compose counts)
    assert sample_summary([check])["bad_bar_fraction"] == 1 / 4


def test_pickup_and_short_last_bar_are_fine_but_a_long_bar_is_not():
    good = check_abc_tune(GOOD, "good.abc")
    assert good.valid and good.n_bars == 5 and good.bad_bars == []
    long = check_abc_tune(LONG_BAR, "long.abc")
    assert long.bad_bars == [1]   # the first bar may be short (an anacrusis), never long
    summary = sample_summary([good, long])
    assert summary["n_bars"] == 7 and summary["n_bad_bars"] == 1 and summary["bad_bar_fraction"] == 1 / 7


def test_headers_are_required_and_bad_files_are_invalid(tmp_path):
    no_x = check_abc_tune("M:3/4\nK:G\nG2 B2 d2|\n", "nox.abc")
    assert not no_x.valid and no_x.problem == "missing header X:"
    no_mk = check_abc_tune("X:1\nL:1/8\nGABc|\n", "nomk.abc")
    assert not no_mk.valid and no_mk.problem == "missing header M:, K:"
    garbage = tmp_path / "broken.mid"
    garbage.write_bytes(b"MThd\x00\x00\x00\x06 garbage")
    [check] = check_file(garbage)
    assert not check.valid and check.key == str(garbage) and "broken.mid" not in check.problem   # named once
    two = tmp_path / "two.abc"
    two.write_text(GOOD + "\n" + WRONG_BAR.replace("X:1", "X:2"))
    checks = check_file(two)
    assert [c.key for c in checks] == [f"{two}#1", f"{two}#2"] and [c.n_bad_bars for c in checks] == [0, 1]
    assert sample_summary([*checks, check])["valid_fraction"] == 2 / 3


# ---------------------------------------------------------------------------- controls
def test_control_adherence_counts_the_valid_pieces_that_meet_each_control():
    checks = [SampleCheck("a", True, key_name="G", meter="3/4", n_bars=9, bars_written=8, programs=[0]),
              SampleCheck("b", True, key_name="Gmaj", meter="C", n_bars=8, bars_written=None, programs=[0, 40]),
              SampleCheck("c", True, key_name="Em", meter="3/4", n_bars=7, bars_written=7, programs=[40, 0]),
              SampleCheck("d", False, problem="x")]
    assert adherence(checks, key="G major", meter="3/4", bars=8, instruments=[40, 0]) == {
        "key": 2 / 3, "meter": 2 / 3, "bars": 2 / 3, "instruments": 2 / 3}
    assert adherence(checks, meter="4/4") == {"meter": 1 / 3}
    assert adherence(checks) == {}
    assert normalise_key("Ador") == "A dorian" and normalise_key("F#m") == "F# minor"
    assert normalise_key("Bb") == "Bb major" == normalise_key("Bb major")
    assert normalise_meter("C|") == "2/2" and normalise_meter(" 6/8") == "6/8"


# ---------------------------------------------------------------------------- distributions
def _melody() -> NoteTable:
    """C4 E4 (quarters), G4 (half), C4 (quarter) in track 0, a drum hit in track 1; 480 ticks a quarter."""
    return NoteTable.from_ticks(
        onset_tick=[0, 480, 960, 1920, 0], offset_tick=[480, 960, 1920, 2400, 240],
        pitch=[60, 64, 67, 60, 36], velocity=[80] * 5, track=[0, 0, 0, 0, 1],
        tracks=[Track("melody", 0), Track("drums", 0, True)], ticks_per_quarter=480)


def test_feature_histograms_of_a_known_melody():
    c = piece_features(_melody()).counts
    assert c["pitch_class"].tolist() == [2, 0, 0, 0, 1, 0, 0, 1, 0, 0, 0, 0]   # C C E G; the drum is left out
    assert np.flatnonzero(c["pitch_range"]).tolist() == [7] and c["pitch_range"].sum() == 1
    assert {i - MAX_INTERVAL: n for i, n in enumerate(c["interval"]) if n} == {4: 1, 3: 1, -7: 1}
    assert {i: n for i, n in enumerate(c["ioi"]) if n} == {12: 2, 24: 1}           # twelfths of a quarter
    assert {i: n for i, n in enumerate(c["note_length"]) if n} == {12: 3, 24: 1}


def test_overlap_area_and_kl_by_hand():
    overlap, kl = overlap_and_kl([2, 2], [1, 3])          # p = (.5, .5), q = (.25, .75)
    assert overlap == 0.75
    assert kl == pytest.approx(0.5 * math.log(0.5 / 0.25) + 0.5 * math.log(0.5 / 0.75), abs=1e-15)
    overlap, kl = overlap_and_kl([1, 0], [0, 1])          # disjoint: the floor bounds the KL
    assert overlap == 0.0 and kl == pytest.approx(math.log(1 / KL_FLOOR))
    assert overlap_and_kl([0, 0], [1, 1]) == (0.0, math.inf)


def test_a_set_against_itself_is_identical_and_against_a_transposition_is_not():
    same = distribution_similarity([_melody()], [_melody()])
    assert all(v == {"overlap": 1.0, "kl": 0.0} for v in same.values())
    up = _melody()
    up.pitch[:4] += 1   # C# F G# C#: no pitch class in common, the same intervals and rhythm
    moved = distribution_similarity([up], [_melody()])
    assert moved["pitch_class"]["overlap"] == 0.0
    # reference C: 1/2, E: 1/4, G: 1/4, each against the floor
    assert moved["pitch_class"]["kl"] == pytest.approx(0.5 * math.log(0.5 / KL_FLOOR) + 0.5 * math.log(0.25 / KL_FLOOR))
    for name in ("pitch_range", "interval", "ioi", "note_length"):
        assert moved[name] == {"overlap": 1.0, "kl": 0.0}


# ---------------------------------------------------------------------------- originality
def test_longest_shared_run_by_hand():
    index = TrainingIndex({"a": (60, 62, 64, 65, 67), "b": (1, 2, 3), "c": (62, 64)})
    assert index.longest_shared_run((0, 62, 64, 65, 9)) == (3, "a")
    assert index.longest_shared_run((60, 62, 64, 65, 67, 69)) == (5, "a")
    assert index.longest_shared_run((3, 2, 1)) == (1, "b")
    assert index.longest_shared_run((99, 98)) == (0, None)
    assert note_sequence(_melody()) == (60, 64, 67, 60)


# ---------------------------------------------------------------------------- the command
REFERENCE_TUNES = [
    "M:3/4\nL:1/8\nK:G\nD2|G2 B2 d2|c2 A2 F2|G4 B2|d4|]",
    "M:2/4\nL:1/8\nK:D\nDF AF|dc BA|FA dA|F4|]",
    "M:6/8\nL:1/8\nK:Em\nE2G B2e|d2B A2F|E3 E3|]",
    "M:4/4\nL:1/8\nK:A\nA2c2 e2c2|d2f2 e2c2|B2A2 A4|]",
]


def test_evaluate_samples_on_a_folder(tmp_path):
    reference = tmp_path / "ref"
    reference.mkdir()
    (reference / "tunes.abc").write_text("".join(f"X:{i}\n{t}\n\n" for i, t in enumerate(REFERENCE_TUNES * 3, 1)))
    training = {item.key: item for item in iter_items(str(reference), split="train")}
    copied = next(iter(training.values()))
    samples = tmp_path / "samples"
    samples.mkdir()
    (samples / "001.abc").write_text(copied.abc_text())      # a training tune, copied whole
    (samples / "002.abc").write_text(WRONG_BAR)
    (samples / "003.mid").write_bytes(b"not midi")
    result = run_cli("evaluate", "samples", "--folder", str(samples), "--reference", str(reference),
                     "--meter", "3/4", "--json")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout.strip().splitlines()[-1])
    assert record["n_pieces"] == 3 and record["valid_fraction"] == 2 / 3
    invalid = [line for line in result.stderr.splitlines() if "003.mid" in line]
    assert len(invalid) == 1 and invalid[0].startswith(f"ostinato: invalid: {samples / '003.mid'}: ")
    assert invalid[0].count("003.mid") == 1   # named once
    copied_check = check_file(samples / "001.abc")[0]
    assert record["n_bars"] == copied_check.n_bars + 4 and record["n_bad_bars"] == 1
    assert record["bad_bar_fraction"] == 1 / (copied_check.n_bars + 4)
    assert record["adherence"] == {"meter": (copied_check.meter == "3/4") * 0.5 + 0.5}
    assert record["n_training_pieces"] == len(training)
    assert record["longest_shared_notes"] == len(note_sequence(copied_check.table))
    assert set(record["similarity"]) == {"pitch_class", "pitch_range", "interval", "ioi", "note_length"}
    if record["n_reference_pieces"] >= 2:
        assert set(record["yang_lerch"]) == set(record["similarity"])
        assert all(0.0 <= v["overlap"] <= 1.0 + 1e-9 for v in record["yang_lerch"].values())
    assert "valid_fraction" in result.stdout.splitlines()[1] or "valid_fraction" in result.stdout


def test_bar_lengths_count_tuplets_broken_rhythm_chords_and_grace_notes():
    from fractions import Fraction as F

    from ostinato.symbolic.evaluate import abc_bar_lengths

    text = "X:1\nM:6/8\nL:1/8\nK:G\n(3ABc d>e f2|[GB]3 {g}a3|(2ab c4|]\n"
    # (3 in 6/8: three eighths in the time of two; d>e = 3/16 + 1/16; a chord lasts 3 eighths, the grace
    # note none; (2: two eighths in the time of three, so the last bar holds 7 eighths
    assert abc_bar_lengths(text) == [(F(3, 4), F(3, 4)), (F(3, 4), F(3, 4)), (F(7, 8), F(3, 4))]
    assert check_abc_tune(text).bad_bars == [3]


def test_a_midi_file_without_a_key_signature_gets_the_key_of_its_notes(tmp_path):
    from ostinato import events
    scale = [62, 64, 65, 67, 69, 70, 72, 74, 62, 65, 69]   # D minor: the scale, then its triad
    table = NoteTable.from_seconds([i * 0.25 for i in range(11)], [i * 0.25 + 0.25 for i in range(11)], scale,
                                   [90] * 11)
    path = tmp_path / "dminor.mid"
    events.write(table, path)
    check = check_file(path)[0]
    # 11 eighths at 120 bpm = 5.5 quarters: two bars of 4/4 (no meter given), none of them checked as bad
    assert check.valid and check.key_name == "D minor" and check.n_bars == 2 == check.bars_written
    assert check.meter is None and check.n_bad_bars == 0 and check.programs == [0]
    assert adherence([check], key="D minor", bars=2, instruments=[0]) == {"key": 1.0, "bars": 1.0, "instruments": 1.0}


# ---------------------------------------------------------------------------- Yang & Lerch
def test_yang_lerch_distances_and_vectors_by_hand():
    from ostinato.symbolic.evaluate import inter_distances, intra_distances, piece_vectors

    ref = [np.array([0.0]), np.array([2.0]), np.array([4.0])]
    assert intra_distances(ref).tolist() == [2.0, 4.0, 2.0]
    assert inter_distances([np.array([1.0])], ref).tolist() == [1.0, 1.0, 3.0]
    assert intra_distances([np.array([0.0, 0.0]), np.array([3.0, 4.0])]).tolist() == [5.0]
    v = piece_vectors(_melody())
    assert v["pitch_class"].tolist() == [0.5, 0, 0, 0, 0.25, 0, 0, 0.25, 0, 0, 0, 0]
    assert v["pitch_range"].tolist() == [7.0] and v["ioi"].tolist() == [pytest.approx(4 / 3)]  # (1 + 1 + 2) / 3


def test_kde_overlap_matches_two_gaussians():
    from scipy.stats import norm

    from ostinato.symbolic.evaluate import kde_overlap_and_kl

    rng = np.random.default_rng(0)
    a, b = rng.normal(0, 1, 4000), rng.normal(1, 1, 4000)
    overlap, kl = kde_overlap_and_kl(a, b)
    assert overlap == pytest.approx(2 * norm.cdf(-0.5), abs=0.03)   # 0.617 for N(0,1) against N(1,1)
    assert kl == pytest.approx(0.5, abs=0.08)                       # KL(N(0,1) || N(1,1)) = 1/2
    same_overlap, same_kl = kde_overlap_and_kl(a, a)
    assert same_kl == 0.0 and same_overlap > 0.99
    far_overlap, far_kl = kde_overlap_and_kl(a, a + 20)
    assert far_overlap < 1e-3 and far_kl > 10
