"""The `ostinato` command, run for real in a subprocess."""

import json

import pytest
import symusic
from conftest import fixture_dir, run_cli

INFO_KEYS = {"path", "n_notes", "n_tracks", "duration_s", "programs", "has_drums", "tempo_bpm", "time_signature", "key"}


def test_info_json_on_every_fixture_matches_symusic_and_survives_the_corrupted_one():
    good = sorted(fixture_dir("midi_one_track").glob("*.mid"))
    corrupted = fixture_dir("midi_corrupted") / "ValueError_Control168.mid"
    files = [str(p) for p in good[:8]] + [str(corrupted)] + [str(p) for p in good[8:]]
    result = run_cli("info", "--json", *files)
    assert result.returncode == 1
    assert result.stderr.strip() == f"ostinato: {corrupted}: invalid MIDI: Get control_value=168"
    records = [json.loads(line) for line in result.stdout.splitlines()]
    assert [r["path"] for r in records] == [str(p) for p in good]
    for record, path in zip(records, good, strict=True):
        assert set(record) >= INFO_KEYS
        assert record["n_notes"] == symusic.Score(str(path)).note_num()


def test_info_json_values_for_a_corpus_piece():
    result = run_cli("info", "--json", "music21:bach/bwv66.6")
    assert result.returncode == 0, result.stderr
    record = json.loads(result.stdout)
    assert record["n_notes"] == 163 and record["n_tracks"] == 4
    assert record["programs"] == [0] and record["has_drums"] is False
    assert record["time_signature"] == "4/4" and record["key"] == "F# minor"
    assert record["tempo_bpm"] == 96.0 and record["duration_s"] == pytest.approx(22.5)


def test_info_readable_and_tune_choice(tmp_path):
    path = tmp_path / "two.abc"
    path.write_text("X:1\nM:3/4\nL:1/4\nK:D\nDFA|d3|]\n\nX:2\nM:6/8\nL:1/8\nK:Ador\nABc ABc|]\n")
    result = run_cli("info", str(path))
    assert result.returncode == 0, result.stderr
    assert f"{path}#1\n  4 notes in 1 track, 0:03.0, 120 bpm, meter 3/4, key D major" in result.stdout
    assert f"{path}#2\n  6 notes in 1 track" in result.stdout and "key A dorian" in result.stdout
    only = run_cli("info", "--json", "--tune", "2", str(path))
    assert [json.loads(line)["path"] for line in only.stdout.splitlines()] == [f"{path}#2"]
    missing = run_cli("info", "--tune", "9", str(path))
    assert missing.returncode == 1 and missing.stderr.strip() == f"ostinato: {path}: no tune X:9"


@pytest.mark.parametrize("command", ["info", "compose", "render", "convert", "train", "evaluate"])
def test_every_subcommand_has_help_and_common_options(command):
    result = run_cli(command, "--help")
    assert result.returncode == 0
    for option in ("-q", "-v", "--debug"):
        assert option in result.stdout


def test_usage_errors_exit_2():
    assert run_cli().returncode == 2
    assert run_cli("info").returncode == 2
    assert run_cli("frobnicate").returncode == 2
    assert run_cli("train").returncode == 2  # train what?
