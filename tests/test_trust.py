"""Trust: nothing under -o that ostinato did not create is deleted; outputs never land on inputs."""

import hashlib

import numpy as np
from conftest import run_cli

from ostinato import events
from ostinato.events import NoteTable, Track
from ostinato.events.atomic import atomic_path, temporary_target


def _piece(path):
    table = NoteTable.from_ticks(np.array([0, 480]), np.array([480, 960]), np.array([60, 64]), np.array([90, 90]),
                                 np.array([0, 0]), [Track("p", 0, False)])
    events.write(table, path)


def _checksums(folder):
    return {p.relative_to(folder).as_posix(): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


def test_our_temporaries_are_named_so_and_nothing_else_is_taken_for_one(tmp_path):
    with atomic_path(tmp_path / "song.mid") as tmp:
        assert temporary_target(tmp.name) == "song.mid" and tmp.suffix == ".mid"
        tmp.write_bytes(b"x")
    assert [p.name for p in tmp_path.iterdir()] == ["song.mid"]
    for name in (".draft.tmp.abc", ".session.tmp", ".vimrc.tmpl", ".song.mid.tmp.mid", ".a.mid.abcd1234.tmp.mid",
                 ".a.mid.abcd1234.ostinato-tmp.abc", "a.mid.abcd1234.ostinato-tmp.mid"):
        assert temporary_target(name) is None, name
    assert temporary_target(".a.mid.abcd1234.ostinato-tmp.mid") == "a.mid"


def test_convert_removes_only_its_own_stale_temporaries(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _piece(src / "a.mid")
    out = tmp_path / "out"
    (out / "src").mkdir(parents=True)
    users = {".draft.tmp.abc": b"a draft", "src/.session.tmp": b"session", ".vimrc.tmpl": b"set nu",
             "src/.b.mid.abcd1234.ostinato-tmp.mid": b"not a planned output of this batch"}
    for name, data in users.items():
        (out / name).write_bytes(data)
    stale = out / "src" / ".a.mid.abcd1234.ostinato-tmp.mid"   # a killed run's half-written a.mid
    stale.write_bytes(b"half")
    before = _checksums(out)
    result = run_cli("convert", str(src), "--to", "mid", "-o", str(out), "-j", "0")
    assert result.returncode == 0, result.stderr
    assert not stale.exists()
    after = _checksums(out)
    assert {name: after[name] for name in users} == {name: before[name] for name in users}
    assert events.read(out / "src" / "a.mid").pitch.tolist() == [60, 64]


def test_an_output_that_is_an_input_is_refused_and_the_input_kept(tmp_path):
    tune = tmp_path / "tune.abc"
    tune.write_text("X:1\nM:4/4\nL:1/8\nK:G\nGABc dedB|G4 G4|]\n")
    midi = tmp_path / "piece.mid"
    _piece(midi)
    link = tmp_path / "link.abc"
    link.symlink_to(tune)
    before = _checksums(tmp_path)
    for args in (["plot", str(tune), "-o", str(tune)],
                 ["plot", str(tune), "-o", str(link)],                                  # the same file by a link
                 ["plot", str(midi), "-o", str(tmp_path / ".." / tmp_path.name / "piece.mid")],   # and by ..
                 ["compose", "--primer", str(tune), "-o", str(tune)],
                 ["compose", "--primer", str(midi), "-o", str(midi), "--bars", "1"],
                 ["compose", "--primer", str(midi), "-o", str(tmp_path / "new.mid"), "--render", str(midi)]):
        result = run_cli(*args)
        assert result.returncode == 2, (args, result.stderr)
        assert result.stderr.count("\n") == 1 and "is an input of this command" in result.stderr, result.stderr
        assert _checksums(tmp_path) == before, args


def test_convert_gives_every_item_its_own_output_or_fails_it_naming_the_other(tmp_path):
    c = tmp_path / "c"
    c.mkdir()
    (c / "x.abc").write_text("X:1\nM:4/4\nL:1/8\nK:G\nGABc dedB|G4 G4|]\n")
    for name in ("x.abc#1.mid", "song.midi", "song.midi.mid", "UP.MID", "UP.MID.mid"):
        _piece(c / name)
    for folder in ("a/music", "b/music"):
        (tmp_path / folder).mkdir(parents=True)
        _piece(tmp_path / folder / "p.mid")
    out = tmp_path / "out"
    before = _checksums(tmp_path)
    result = run_cli("convert", str(c), str(tmp_path / "a" / "music"), str(tmp_path / "b" / "music"), "--to", "mid",
                     "-o", str(out), "-j", "0")
    assert result.returncode == 1
    lines = sorted(result.stderr.strip().splitlines())
    assert lines == sorted([
        f"ostinato: c/x.abc#1.mid: OutputCollision: its output c/x.abc#1.mid is also c/x.abc#1's (from {c / 'x.abc'}); "
        f"rename one of them or convert them into separate folders",
        f"ostinato: c/song.midi.mid: OutputCollision: its output c/song.midi.mid is also c/song.midi's (from "
        f"{c / 'song.midi'}); rename one of them or convert them into separate folders",
        f"ostinato: c/UP.MID.mid: OutputCollision: its output c/UP.MID.mid is also c/UP.MID's (from {c / 'UP.MID'}); "
        f"rename one of them or convert them into separate folders",
        f"ostinato: music/p.mid: OutputCollision: its key is also music/p.mid's (from "
        f"{tmp_path / 'a' / 'music' / 'p.mid'}); rename one of them or convert them into separate folders",
    ])
    assert "converted 4/8, failed 4, skipped 0" in result.stdout
    assert events.read(out / "c" / "x.abc#1.mid").pitch.tolist() == [67, 69, 71, 72, 74, 76, 74, 71, 67, 67]
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*.mid")) == [
        "c/UP.MID.mid", "c/song.midi.mid", "c/x.abc#1.mid", "music/p.mid"]
    assert {k: v for k, v in _checksums(tmp_path).items() if not k.startswith("out/")} == before


def test_a_glob_that_climbs_out_cannot_write_outside_o(tmp_path):
    (tmp_path / "src" / "sub").mkdir(parents=True)
    (tmp_path / "victim").mkdir()
    _piece(tmp_path / "victim" / "a.mid")
    out = tmp_path / "work" / "out"
    before = _checksums(tmp_path)
    result = run_cli("convert", "src/*/../../victim/*.mid", "--to", "mid", "-o", str(out), "-j", "0", cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    written = [p for p in tmp_path.rglob("*") if p.is_file() and p.relative_to(tmp_path).as_posix() not in before]
    assert written and all(out in p.parents for p in written), written
    assert events.read(out / "victim" / "a.mid").pitch.tolist() == [60, 64]
    assert {k: v for k, v in _checksums(tmp_path).items() if k in before} == before


def test_a_key_with_dots_fails_instead_of_writing_outside(tmp_path):
    from ostinato.corpora import BatchOptions, ConvertSpec, PoolLimits, run_batch
    from ostinato.events.sources import Item

    _piece(tmp_path / "a.mid")
    out = tmp_path / "out"
    item = Item(key="../escaped/a.mid", path=str(tmp_path / "a.mid"))
    summary = run_batch([item], ConvertSpec(to="mid", out_dir=str(out)), BatchOptions(limits=PoolLimits(n_workers=0)))
    assert summary.failed == 1 and summary.converted == 0
    assert not (tmp_path / "escaped").exists()


def test_a_unicode_digit_x_number_costs_nothing(tmp_path):
    from ostinato.events.abc_read import split_tunes

    text = "X:1\nM:4/4\nL:1/8\nK:G\nGABc dedB|]\n\nX:²\nM:4/4\nL:1/8\nK:D\nDEFG ABcd|]\n"
    assert [t.number for t in split_tunes(text)] == [1, 2]
    tunes = tmp_path / "odd.abc"
    tunes.write_text(text)
    result = run_cli("info", "--json", str(tunes))
    assert result.returncode == 0, result.stderr
    assert [line.split('"path": ')[1].split(",")[0] for line in result.stdout.splitlines()] == [
        f'"{tunes}#1"', f'"{tunes}#2"']


# ---------------------------------------------------------------------------- bombs and nonsense from options
def _tiny(tmp_path):
    import json

    path = tmp_path / "tiny.json"
    path.write_text(json.dumps({"architecture": "gpt2", "n_layers": 1, "d_model": 32, "n_heads": 2, "context": 64,
                                "dropout": 0.0}))
    return str(path)


def _tunes(tmp_path):
    path = tmp_path / "tunes.abc"
    path.write_text("".join(f"X:{i}\nM:4/4\nL:1/8\nK:G\nGABc dedB|{'ABcd' if i % 2 else 'edcB'} G4|]\n\n"
                            for i in range(1, 41)))
    return str(path)


def test_options_that_make_nonsense_or_bombs_are_usage_errors(tmp_path):
    for args, message in (
            (["compose", "-o", str(tmp_path / "x.wav")],
             "compose writes .mid, .abc, .musicxml, .xml or .mxl, not .wav"),
            (["compose", "-n", "100000", "-o", str(tmp_path / "many")], "-n must be 1 to 256"),
            (["train", "symbolic", "--data", _tunes(tmp_path), "--tokenizer", "abc", "--out", str(tmp_path / "m"),
              "--config", _tiny(tmp_path), "--lr", "inf"], "learning_rate: expected > 0, got inf")):
        result = run_cli(*args)
        assert result.returncode == 2 and message in result.stderr, (args, result.stderr)
        assert len(result.stderr.strip().splitlines()) == 1
    assert sorted(p.name for p in tmp_path.iterdir()) == ["tiny.json", "tunes.abc"]


def test_a_diverging_run_stops_and_writes_no_nan_model(tmp_path):
    out = tmp_path / "run"
    result = run_cli("train", "symbolic", "--data", _tunes(tmp_path), "--tokenizer", "abc", "--out", str(out),
                     "--config", _tiny(tmp_path), "--lr", "1e30", "--warmup", "0", "--steps", "20",
                     "--checkpoint-every", "1000", "--eval-every", "1000", "--batch-size", "4", "-q")
    assert result.returncode == 1 and "TrainingDiverged: the loss is nan" in result.stderr, result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert not (out / "model.safetensors").exists()


def test_a_torn_last_log_line_does_not_block_resume(tmp_path):
    import json

    out = tmp_path / "run"
    common = ["train", "symbolic", "--data", _tunes(tmp_path), "--tokenizer", "abc", "--out", str(out), "--config",
              _tiny(tmp_path), "--batch-size", "4", "--checkpoint-every", "2", "--eval-every", "1000", "-q"]
    assert run_cli(*common, "--steps", "4").returncode == 0
    with open(out / "train_log.jsonl", "a") as log:
        log.write('{"step": 5, "loss": 2.')   # killed mid-line
    result = run_cli(*common, "--steps", "6", "--resume")
    assert result.returncode == 0, result.stderr
    records = [json.loads(line) for line in (out / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in records if "loss" in r] == [1, 2, 3, 4, 5, 6]


# ---------------------------------------------------------------------------- hangs and memory outside MIDI
XML_LONG_NOTE = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1"><part-list><score-part id="P1"><part-name>P</part-name></score-part></part-list>
<part id="P1"><measure number="1"><attributes><divisions>1</divisions><time><beats>4</beats><beat-type>4</beat-type>
</time></attributes><note><pitch><step>C</step><octave>4</octave></pitch><duration>{duration}</duration></note>
</measure></part></score-partwise>
"""


def test_only_regular_files_within_limits_are_read(tmp_path):
    import os
    import subprocess
    import sys
    import zipfile

    good = tmp_path / "good.mid"
    _piece(good)
    hostile = []
    for name in ("fifo.abc", "fifo.mid", "fifo.musicxml"):
        os.mkfifo(tmp_path / name)
        hostile.append((name, "not a regular file"))
    for name in ("zero.mid", "zero.abc", "zero.krn"):
        (tmp_path / name).symlink_to("/dev/zero")
        hostile.append((name, "not a regular file"))
    (tmp_path / "long.abc").write_text("X:1\nM:4/4\nL:1/8\nK:G\n" + "GABc " * 400_000 + "|]\n")
    hostile.append(("long.abc", "a line of 2000002 characters (limit 20000)"))
    with zipfile.ZipFile(tmp_path / "bomb.mxl", "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("score.musicxml", b" " * (100 * 1024 * 1024))
    hostile.append(("bomb.mxl", "uncompresses to 104857600 bytes (limit 67108864)"))
    (tmp_path / "long.musicxml").write_text(XML_LONG_NOTE.format(duration=500_000_000_000))
    hostile.append(("long.musicxml", "absurd note times"))
    files = [str(tmp_path / name) for name, _ in hostile]
    result = subprocess.run([sys.executable, "-m", "ostinato", "info", "--json", *files, str(good)],
                            capture_output=True, text=True, timeout=300)
    assert result.returncode == 1
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(hostile), result.stderr
    for (name, problem), line in zip(hostile, lines, strict=True):
        assert line.startswith(f"ostinato: {tmp_path / name}") and problem in line, line
    assert str(good) in result.stdout   # the good file after them is still reported


def test_a_time_signature_that_is_no_meter_is_dropped_at_read(tmp_path):
    import symusic

    score = symusic.Score(480)
    track = symusic.Track("p", 0, False)
    track.notes.append(symusic.Note(0, 480, 60, 90))
    score.tracks.append(track)
    score.time_signatures.append(symusic.TimeSignature(0, 0, 4))
    path = tmp_path / "zero.mid"
    score.dump_midi(str(path))
    table = events.read(path)
    assert table.time_signatures == [] and len(table) == 1
    plot = run_cli("plot", str(path), "-o", str(tmp_path / "roll.png"))
    assert plot.returncode == 0, plot.stderr
    assert plot.stderr.splitlines()[0] == f"ostinato: {path}: time signature 0/4 at tick 0 is not a meter; dropped"
    assert (tmp_path / "roll.png").stat().st_size > 1000


def test_render_refuses_a_gain_that_is_no_number(tmp_path):
    midi = tmp_path / "piece.mid"
    _piece(midi)
    for gain in ("nan", "inf", "0", "-1"):
        result = run_cli("render", str(midi), "-o", str(tmp_path / "out.wav"), "-g", gain, "--engine", "soundfont")
        assert result.returncode == 2 and "--gain must be a finite number above 0" in result.stderr, result.stderr
        assert not (tmp_path / "out.wav").exists()


# ---------------------------------------------------------------------------- render: every input its own output
def _notes(path, pitches):
    n = len(pitches)
    table = NoteTable.from_ticks(np.arange(n) * 480, np.arange(1, n + 1) * 480, np.array(pitches), np.full(n, 90),
                                 np.zeros(n, int), [Track("p", 0, False)])
    events.write(table, path)


def test_render_gives_every_input_its_own_output_and_skips_what_exists(tmp_path):
    import soundfile

    (tmp_path / "dup.abc").write_text("".join(f"X:1\nM:4/4\nL:1/8\nK:{k}\n{body}|]\n\n" for k, body in
                                              (("G", "GABc"), ("D", "DEFG ABcd"), ("A", "ABcd efga abc'd'"))))
    for folder, pitches in (("a/music", [60]), ("b/music", [60, 62]), ("d/music", [60, 62, 64])):
        (tmp_path / folder).mkdir(parents=True)
        _notes(tmp_path / folder / "p.mid", pitches)
    (tmp_path / "c").mkdir()
    _notes(tmp_path / "c" / "a.mid", [60, 62, 64, 65])
    (tmp_path / "c" / "a.abc").write_text("X:1\nM:4/4\nL:1/8\nK:G\nGABc dedB|G4 G4|]\n")
    before = _checksums(tmp_path)
    args = ["render", "dup.abc", "a/music", "b/music", "d/music", "c", "-o", "out", "--engine", "soundfont",
            "-r", "16000"]
    result = run_cli(*args, cwd=tmp_path)
    assert result.returncode == 1 and "Traceback" not in result.stderr
    collision = ("ostinato: d/music/p.mid: OutputCollision: its output out/music/p.wav is also a/music/p.mid's; "
                 "rename one of them or render them into separate folders")
    assert result.stderr.splitlines() == [
        collision,
        "ostinato: b/music/p.mid: its output out/music/p.wav is also a/music/p.mid's; written as p.mid.wav",
        "ostinato: c/a.mid: its output out/c/a.wav is also c/a.abc#1's; written as a.mid.wav"]
    out = tmp_path / "out"
    assert sorted(p.relative_to(out).as_posix() for p in out.rglob("*") if p.is_file()) == [
        "c/a.mid.wav", "c/a.wav", "dup-1.2.wav", "dup-1.3.wav", "dup-1.wav", "music/p.mid.wav", "music/p.wav"]
    seconds = {name: soundfile.info(out / name).duration for name in ("music/p.wav", "music/p.mid.wav")}
    assert seconds["music/p.wav"] < seconds["music/p.mid.wav"]   # a/music's one note, b/music's two
    assert {k: v for k, v in _checksums(tmp_path).items() if not k.startswith("out/")} == before
    rendered = _checksums(out)
    again = run_cli(*args, cwd=tmp_path)   # a rerun skips every output that exists, tune by tune
    assert again.returncode == 1 and _checksums(out) == rendered
    assert sorted(again.stderr.splitlines()) == sorted([
        "ostinato: b/music/p.mid: its output out/music/p.wav is also a/music/p.mid's; written as p.mid.wav",
        collision,
        "ostinato: c/a.mid: its output out/c/a.wav is also c/a.abc#1's; written as a.mid.wav",
        *(f"ostinato: out/{name}: exists, skipped (use --overwrite to replace it)" for name in rendered)])


# ---------------------------------------------------------------------------- tokenizer configs are input
def test_a_tokenizer_config_that_would_build_a_huge_vocabulary_is_refused(tmp_path):
    import json
    import shutil

    from ostinato.symbolic.midi_tokens import MidiTokenizer
    from ostinato.symbolic.shipped import resolve_model

    base = MidiTokenizer("remi").to_json()
    del base["vocab_size"]
    bombs = {
        "beat_res.json": ({"beat_res": [[[0, 100000], 1000]]},
                          "miditok.beat_res: expected a whole number in 0..64, got 100000"),
        "overlap.json": ({"beat_res": [[[0, 64], 64], [[32, 64], 32]]},
                         "miditok.beat_res: beats [32, 64] overlap [0, 64]"),
        "twice.json": ({"beat_res": [[[0, 64], 64], [[0, 64], 32]]},
                       "miditok.beat_res: a [start, end] span is given twice"),
        "velocities.json": ({"num_velocities": 10 ** 9},
                            "miditok.num_velocities: expected a whole number in 1..127, got 1000000000"),
        "unknown.json": ({"exec": "import os"}, "miditok.exec: not a miditok TokenizerConfig option"),
        "styles.json": ({}, "styles: expected a list of at most 4096 names, got"),
    }
    for name, (options, _) in bombs.items():
        data = json.loads(json.dumps(base))
        data["miditok"].update(options)
        if name == "styles.json":
            data["styles"] = [f"s{i}" for i in range(100_000)]
        (tmp_path / name).write_text(json.dumps(data))
    (tmp_path / "zero.json").symlink_to("/dev/zero")
    bombs["zero.json"] = ({}, "not a regular file")
    _piece(tmp_path / "good.mid")
    before = _checksums(tmp_path)
    for name, (_, message) in bombs.items():
        result = run_cli("convert", "good.mid", "--to", "tokens", "--tokenizer", name, "-o", "out", cwd=tmp_path)
        assert result.returncode == 2, (name, result.stderr)
        line = result.stderr.strip()
        assert "\n" not in line and line.startswith(f"ostinato: convert: {name}: ") and message in line, line
        assert not (tmp_path / "out").exists()
    folder = tmp_path / "model"   # the same bombs in a model folder: refused before the model loads
    shutil.copytree(resolve_model("chorale-midi"), folder)
    for name, expected in (("beat_res.json", "ostinato: model/tokenizer.json: bad tokenizer: miditok.beat_res: "
                                             "expected a whole number in 0..64, got 100000"),
                           ("zero.json", "ostinato: model/tokenizer.json: not a regular file")):
        (folder / "tokenizer.json").unlink()
        if name == "zero.json":   # a link to a device is no tokenizer file
            (folder / "tokenizer.json").symlink_to("/dev/zero")
        else:
            shutil.copy(tmp_path / name, folder / "tokenizer.json")
        result = run_cli("compose", "--model", "model", "-o", "x.mid", "-q", cwd=tmp_path)
        assert result.returncode == 1 and result.stderr == expected + "\n", result.stderr
        assert not (tmp_path / "x.mid").exists()
    assert {k: v for k, v in _checksums(tmp_path).items() if not k.startswith("model/")} == before


# ---------------------------------------------------------------------------- enumeration hides nothing
def test_a_folder_that_cannot_be_listed_and_a_broken_link_are_named(tmp_path):
    import os
    import re

    src = tmp_path / "src"
    src.mkdir()
    _piece(src / "a.mid")
    (src / "gone").symlink_to(tmp_path / "no-such-folder")
    fd = os.open(src, os.O_RDONLY)   # folders nested past PATH_MAX: no one, root included, can list the deepest
    for _ in range(24):
        os.mkdir("d" * 200, dir_fd=fd)
        deeper = os.open("d" * 200, os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = deeper
    with open(os.open("lost.mid", os.O_WRONLY | os.O_CREAT, 0o644, dir_fd=fd), "wb") as f:
        f.write(b"MThd")
    os.close(fd)
    expected = [re.compile(re.escape(f"ostinato: src/gone: a broken link (to {tmp_path / 'no-such-folder'}); skipped")),
                re.compile(r"ostinato: src(/d{200})+: cannot list this folder \(File name too long\); its files are "
                           r"skipped")]
    if os.geteuid() != 0:   # root reads a folder of mode 000; anyone else cannot
        (src / "locked").mkdir()
        _piece(src / "locked" / "b.mid")
        (src / "locked").chmod(0)
        expected.append(re.compile(r"ostinato: src/locked: cannot list this folder \(Permission denied\); its files "
                                   r"are skipped"))
    before = hashlib.sha256((src / "a.mid").read_bytes()).hexdigest()
    try:
        result = run_cli("convert", "src", "--to", "mid", "-o", "out", "-j", "0", cwd=tmp_path)
    finally:
        if (src / "locked").exists():
            (src / "locked").chmod(0o755)
    assert result.returncode == 0 and "converted 1/1, failed 0, skipped 0" in result.stdout, result.stderr
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(expected), result.stderr
    for pattern in expected:
        assert sum(bool(pattern.fullmatch(line)) for line in lines) == 1, (pattern.pattern, lines)
    assert hashlib.sha256((src / "a.mid").read_bytes()).hexdigest() == before


def test_an_output_folder_inside_the_source_is_never_read_as_source(tmp_path):
    for out in ("src1/out", "src2"):   # a subfolder of the source, and the source folder itself
        src = tmp_path / out.split("/")[0]
        src.mkdir()
        _piece(src / "a.mid")
        (src / "b.abc").write_text("X:1\nM:4/4\nL:1/8\nK:G\nGABc dedB|G4 G4|]\n")
        inputs = _checksums(src)
        first = run_cli("convert", src.name, "--to", "mid", "-o", out, "-j", "0", cwd=tmp_path)
        assert first.returncode == 0 and "converted 2/2, failed 0, skipped 0" in first.stdout, first.stderr
        manifest = (tmp_path / out / "manifest.jsonl").read_text()
        written = _checksums(tmp_path / out)
        again = run_cli("convert", src.name, "--to", "mid", "-o", out, "-j", "0", cwd=tmp_path)
        assert again.returncode == 0 and "converted 0/2, failed 0, skipped 2" in again.stdout, again.stderr
        assert _checksums(tmp_path / out) == written and (tmp_path / out / "manifest.jsonl").read_text() == manifest
        outputs = sorted(k for k in written if k.startswith(f"{src.name}/"))   # <-o>/<collection>/...
        assert outputs == [f"{src.name}/a.mid", f"{src.name}/b.abc#1.mid"]
        assert {k: v for k, v in _checksums(src).items() if k in inputs} == inputs


# ---------------------------------------------------------------------------- messages name the file
def test_messages_name_the_file_not_the_command(tmp_path):
    import soundfile
    import symusic

    score = symusic.Score(480)
    score.tracks.append(symusic.Track("p", 0, False))
    score.dump_midi(str(tmp_path / "empty.mid"))
    (tmp_path / "empty.abc").write_text("X:1\nM:4/4\nL:1/8\nK:G\n")
    soundfile.write(tmp_path / "one.wav", np.zeros(1), 16000)
    (tmp_path / "staff.musicxml").write_text(XML_LONG_NOTE.format(duration=4).replace(
        "</time>", "</time><staff-details><staff-type>bogus</staff-type></staff-details>"))
    before = _checksums(tmp_path)
    for args, line in (
            (["compose", "--primer", "empty.mid", "-o", "c.mid", "-q"],
             "ostinato: empty.mid: the primer has no notes (nothing to continue)"),
            (["compose", "--primer", "empty.abc", "-o", "c.abc", "-q"],
             "ostinato: empty.abc#1: cannot continue this tune: no notes"),
            (["plot", "one.wav", "-o", "one.png"],
             "ostinato: one.wav: too short to draw: 1 sample (a spectrogram needs at least 2048)")):
        result = run_cli(*args, cwd=tmp_path)
        assert result.returncode == 1 and result.stderr == line + "\n", (args, result.stderr)
    info = run_cli("info", "staff.musicxml", cwd=tmp_path)   # music21's warnings: our prefix, the file's name
    assert info.returncode == 0 and info.stdout.startswith("staff.musicxml\n  1 notes")
    assert info.stderr.startswith("ostinato: staff.musicxml: Got an incorrect staff-type in details: <Element ")
    assert len(info.stderr.splitlines()) == 1
    assert _checksums(tmp_path) == before


def test_music21_messages_are_collected_and_named(capsys):
    import sys
    import warnings

    import pytest

    from ostinato.events.music21_io import Music21Warning, music21_messages

    with pytest.warns(Music21Warning) as caught, music21_messages("x.abc#3"):
        sys.stderr.write("music21.abcFormat: WARNING: Could not get pitch information from note: Q, assuming C\n")
        sys.stderr.write("music21.abcFormat: WARNING: Could not get pitch information from note: Q, assuming C\n")
        warnings.warn("Line <bracket> stop without start", UserWarning, stacklevel=1)
    assert [str(w.message) for w in caught] == [
        "x.abc#3: Line <bracket> stop without start",
        "x.abc#3: Could not get pitch information from note: Q, assuming C (2 times)"]
    assert capsys.readouterr().err == ""
