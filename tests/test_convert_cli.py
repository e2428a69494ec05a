"""``ostinato convert`` for real: a hostile corpus, every target, resume after kill -9, the flags."""

import json
import os
import signal
import subprocess
import sys
import time
from collections import Counter

import numpy as np
import pytest
import symusic
from conftest import REPO, run_cli
from test_hostile import EOT, HOSTILE, _mthd, _mtrk

from ostinato import events
from ostinato.corpora.manifest import read_manifest
from ostinato.corpora.shards import iter_shard_pieces
from ostinato.events.sources import is_held_out, iter_items

# Good ABC tunes, and one that sends music21 into a practically endless loop: every "(" opens
# a slur that never closes, and music21 adds each later note to every open slur (200 take
# about 20 s; 3000 would take hours).
GOOD_TUNES = ["X:1\nT:one\nM:4/4\nL:1/8\nK:G\nGABc d2B2|c2A2 G4|]\n",
              "X:2\nT:two\nM:3/4\nL:1/4\nK:D\nd f a|g2 e|d3|]\n"]
LOOP_TUNE = "X:3\nT:endless slurs\nM:4/4\nL:1/8\nK:C\n" + " ".join(["(C"] * 3000) + "|\n"
EXPECTED_FAILURES = {  # key -> text in the reason
    "corpus/truncated.mid": "truncated",
    "corpus/random_bytes.mid": "not a MIDI file",
    "corpus/empty_file.mid": "empty file",
    "corpus/zero_tpq.mid": "0 ticks per quarter",
    "corpus/smpte.mid": "SMPTE",
    "corpus/huge_chunk.mid": "declares 4294967280 bytes",
    "corpus/missing_tracks.mid": "header declares 3 tracks",
    "corpus/running_status_garbage.mid": "invalid MIDI",
    "corpus/unknown_status.mid": "invalid MIDI",
    "corpus/absurd_ticks.mid": "absurd tick values",
    "corpus/bad_header_length.mid": "not a MIDI file",
    "corpus/format_7.mid": "unknown MIDI format 7",
    "corpus/wave_named.mid": "no MThd header",
    "corpus/text_named.mid": "no MThd header",
    "corpus/binary.abc": "binary data",
    "corpus/no_tune.abc": "no ABC tune found",
    "corpus/zero_length.abc#1": "cannot parse ABC",
    "corpus/garbage.musicxml": "cannot parse musicxml",
    "corpus/tunes.abc#3": "Timeout: took longer than 20 s",
}


def _midi(path, pitches, n_repeat=1):
    body = b"".join(b"\x00\x90" + bytes([p, 64]) + b"\x83\x60\x80" + bytes([p, 0]) for p in pitches) * n_repeat
    path.write_bytes(_mthd() + _mtrk(body + EOT))


def _million_notes(path):
    n = 1_000_000
    score = symusic.Score(480)
    track = symusic.Track(program=0)
    track.notes = symusic.Note.from_numpy(
        time=(np.arange(n) * 30).astype(np.int32), duration=np.full(n, 60, np.int32),
        pitch=(40 + np.arange(n) % 48).astype(np.int8), velocity=np.full(n, 80, np.int8))
    score.tracks.append(track)
    path.write_bytes(score.dumps_midi())


@pytest.fixture(scope="module")
def hostile_corpus(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile") / "corpus"
    root.mkdir()
    for name, (data, _) in HOSTILE.items():
        (root / name).write_bytes(data)
    _midi(root / "good_a.mid", [60, 62, 64])
    (root / "sub").mkdir()
    _midi(root / "sub" / "good_b.mid", [67, 65])
    _million_notes(root / "million.mid")
    (root / "tunes.abc").write_text("%abc-2.1\n\n" + "\n".join(GOOD_TUNES) + "\n" + LOOP_TUNE)
    events.write(events.read(root / "good_a.mid"), root / "score.musicxml")
    return root


GOOD_KEYS = ["corpus/good_a.mid", "corpus/million.mid", "corpus/score.musicxml", "corpus/sub/good_b.mid",
             "corpus/tunes.abc#1", "corpus/tunes.abc#2"]


def test_hostile_corpus_converts_every_good_file_and_lists_every_bad_one(hostile_corpus, tmp_path):
    before = {p: p.read_bytes() for p in hostile_corpus.rglob("*") if p.is_file()}
    out = tmp_path / "out"
    result = run_cli("convert", str(hostile_corpus), "--to", "mid", "-o", str(out), "-j", "2", "--time-limit", "20",
                     "--abc-reader", "music21")
    assert result.returncode == 1, result.stderr
    assert "Traceback" not in result.stderr
    total = len(GOOD_KEYS) + len(EXPECTED_FAILURES)
    assert result.stdout.strip().splitlines()[-1] == (
        f"converted {len(GOOD_KEYS)}/{total}, failed {len(EXPECTED_FAILURES)}, skipped 0 "
        f"(manifest: {out / 'manifest.jsonl'})")
    # every bad item: one stderr line naming it, and a manifest record with the reason
    lines = result.stderr.strip().splitlines()
    assert len(lines) == len(EXPECTED_FAILURES)
    records = {r["key"]: r for r in read_manifest(out / "manifest.jsonl")}
    assert sorted(records) == sorted([*GOOD_KEYS, *EXPECTED_FAILURES])
    for key, reason in EXPECTED_FAILURES.items():
        record = records[key]
        assert record["status"] == "failed" and record["outputs"] == []
        assert reason in f"{record['error']}: {record['message']}", record
        assert any(line.startswith(f"ostinato: {key}: ") and reason.split(": ")[-1] in line for line in lines), key
    assert records["corpus/tunes.abc#3"]["error"] == "Timeout"
    # every good item: a valid MIDI file with exactly the notes of its source
    for key in GOOD_KEYS:
        record = records[key]
        assert record["status"] == "ok" and record["error"] is None
        assert record["versions"]["ostinato"] and len(record["sha256"]) == 64
        (output,) = record["outputs"]
        item = next(i for i in iter_items(hostile_corpus) if i.key == key)
        converted = events.read(out / output)
        assert converted.notes_equal(item.read(abc_reader="music21")), key
    assert len(events.read(out / "corpus" / "million.mid")) == 1_000_000
    assert {p: p.read_bytes() for p in hostile_corpus.rglob("*") if p.is_file()} == before  # inputs untouched
    assert not [p for p in out.rglob(".*tmp*")]


def test_memory_limit_fails_the_item_not_the_batch(hostile_corpus, tmp_path):
    out = tmp_path / "out"
    result = run_cli("convert", str(hostile_corpus / "million.mid"), str(hostile_corpus / "good_a.mid"), "--to", "mid",
                     "-o", str(out), "-j", "2", "--memory-limit", "64")
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].startswith("converted 1/2, failed 1, skipped 0")
    records = {r["key"]: r for r in read_manifest(out / "manifest.jsonl")}
    assert records["corpus/million.mid"]["error"] == "MemoryError"
    assert result.stderr.startswith("ostinato: corpus/million.mid: MemoryError: ")
    assert events.read(out / "corpus" / "good_a.mid").pitch.tolist() == [60, 62, 64]


def test_abc2midi_reader_is_the_default_and_plays_tunes_as_performed(tmp_path):
    src = tmp_path / "abc"
    src.mkdir()
    (src / "tunes.abc").write_text("%abc-2.1\n\n" + "\n".join(GOOD_TUNES) + "\n" + LOOP_TUNE + "\n"
                                   "X:4\nT:repeats\nM:2/4\nL:1/4\nK:C\n|:C D:|E2|]\n\n"
                                   "X:5\nT:no such key\nK:H\nCDE|\n")
    for name in ("binary.abc", "no_tune.abc"):
        (src / name).write_bytes(HOSTILE[name][0])
    out = tmp_path / "out"
    result = run_cli("convert", str(src), "--to", "mid", "-o", str(out), "-j", "2")
    assert result.returncode == 1
    assert result.stdout.splitlines()[-1].startswith("converted 4/7, failed 3, skipped 0")
    records = {r["key"]: r for r in read_manifest(out / "manifest.jsonl")}
    assert records["abc/binary.abc"]["message"] == "not an ABC file (binary data)"
    assert records["abc/no_tune.abc"]["message"].startswith("no ABC tune found")
    assert records["abc/tunes.abc#5"]["message"] == ("abc2midi: Error in line-char 4-0 : First K: field must "
                                                     "specify key signature")
    assert len(events.read(out / "abc" / "tunes.abc#3.mid")) == 3000  # no music21, no loop
    repeats = events.read(out / "abc" / "tunes.abc#4.mid")
    assert repeats.pitch.tolist() == [60, 62, 60, 62, 64]  # played out
    assert repeats.onset_tick.tolist() == [1, 481, 961, 1441, 1921]  # abc2midi's articulation
    assert repeats.velocity.tolist() == [105, 80, 105, 80, 105]  # its beat-stress model
    first = events.read(out / "abc" / "tunes.abc#1.mid")
    assert first.pitch.tolist() == events.read(src / "tunes.abc", tune=1).pitch.tolist()


def test_rerun_skips_what_is_done_and_overwrite_redoes_it(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for n in range(4):
        _midi(src / f"m{n}.mid", [60 + n])
    (src / "bad.mid").write_bytes(b"nope")
    out = tmp_path / "out"
    first = run_cli("convert", str(src), "--to", "json", "-o", str(out), "-j", "1")
    assert first.returncode == 1
    assert first.stdout.splitlines()[-1].startswith("converted 4/5, failed 1, skipped 0")
    stamp = (out / "src" / "m0.mid.json").stat().st_mtime_ns
    (src / "bad.mid").write_bytes((src / "m0.mid").read_bytes())  # fixed: retried, and now ok
    _midi(src / "m1.mid", [72, 74])  # changed input: redone
    second = run_cli("convert", str(src), "--to", "json", "-o", str(out), "-j", "1")
    assert second.returncode == 0, second.stderr
    assert second.stdout.splitlines()[-1].startswith("converted 2/5, failed 0, skipped 3")
    assert (out / "src" / "m0.mid.json").stat().st_mtime_ns == stamp
    assert json.loads((out / "src" / "m1.mid.json").read_text())["notes"]["pitch"] == [72, 74]
    lines = (out / "manifest.jsonl").read_text().count("\n")
    again = run_cli("convert", str(src), "--to", "json", "-o", str(out), "-j", "1")
    assert again.stdout.splitlines()[-1].startswith("converted 0/5, failed 0, skipped 5")
    assert (out / "manifest.jsonl").read_text().count("\n") == lines   # a rerun does not grow the manifest
    third = run_cli("convert", str(src), "--to", "json", "-o", str(out), "-j", "1", "--overwrite")
    assert third.stdout.splitlines()[-1].startswith("converted 5/5, failed 0, skipped 0")
    other = run_cli("convert", str(src), "--to", "json", "-o", str(out), "-j", "1", "--expand-repeats")
    assert other.stdout.splitlines()[-1].startswith("converted 5/5, failed 0, skipped 0")  # other options: redone
    statuses = Counter((r["key"], r["status"]) for r in read_manifest(out / "manifest.jsonl"))
    assert statuses[("src/m0.mid", "ok")] == 3 and statuses[("src/m0.mid", "skipped")] == 0
    assert statuses[("src/bad.mid", "failed")] == 1 and statuses[("src/bad.mid", "ok")] == 3


def test_fail_fast_max_failures_and_split(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    for n in range(40):
        _midi(src / f"m{n:02d}.mid", [40 + n])
    for n in range(3):
        (src / f"bad{n}.mid").write_bytes(b"")
    fast = run_cli("convert", str(src), "--to", "mid", "-o", str(tmp_path / "fast"), "-j", "1", "--fail-fast")
    assert fast.returncode == 1
    assert "stopped at the first failure (--fail-fast)" in fast.stderr
    assert fast.stdout.splitlines()[-1].startswith("converted 0/43, failed 1, skipped 0")  # bad0 sorts first
    most = run_cli("convert", str(src), "--to", "mid", "-o", str(tmp_path / "most"), "-j", "1", "--max-failures", "2")
    assert "stopped after 2 failures (--max-failures 2)" in most.stderr
    assert most.stdout.splitlines()[-1].startswith("converted 0/43, failed 2, skipped 0")
    keys = [i.key for i in iter_items(src)]
    for split, expected in (("test", [k for k in keys if is_held_out(k)]),
                            ("train", [k for k in keys if not is_held_out(k)])):
        out = tmp_path / split
        result = run_cli("convert", str(src), "--to", "mid", "-o", str(out), "--split", split, "-j", "1")
        assert sorted(r["key"] for r in read_manifest(out / "manifest.jsonl")) == sorted(expected)
        assert result.stdout.splitlines()[-1].split(",")[0] == (
            f"converted {sum(not k.startswith('src/bad') for k in expected)}/{len(expected)}")


def test_usage_errors_exit_2(tmp_path):
    missing = run_cli("convert", str(tmp_path / "nowhere"), "--to", "mid", "-o", str(tmp_path / "o"))
    assert missing.returncode == 2
    assert missing.stderr.strip() == f"ostinato: convert: {tmp_path / 'nowhere'}: no such file, folder or music21: " \
                                     "collection"
    assert run_cli("convert", "x.mid", "--to", "wav", "-o", "o").returncode == 2
    bad_tok = run_cli("convert", "music21:bach/bwv66.6", "--to", "tokens", "--tokenizer", str(tmp_path / "t.json"),
                      "-o", str(tmp_path / "o"))
    assert bad_tok.returncode == 2 and "no such tokenizer file" in bad_tok.stderr


def test_targets_write_what_they_promise(tmp_path):
    src = tmp_path / "src"
    src.mkdir()
    _midi(src / "a.mid", [60, 64, 67])
    (src / "t.abc").write_text(GOOD_TUNES[0])
    table = events.read(src / "a.mid")
    for target in ("abc", "musicxml", "pianoroll", "json"):
        out = tmp_path / target
        result = run_cli("convert", str(src), "--to", target, "-o", str(out), "-j", "1", "--frame-rate", "50")
        assert result.returncode == 0, result.stderr
        assert result.stdout.splitlines()[-1].startswith("converted 2/2, failed 0, skipped 0")
    assert events.read(tmp_path / "abc" / "src" / "a.mid.abc", tune=1).pitch.tolist() == [60, 64, 67]
    assert events.read(tmp_path / "musicxml" / "src" / "a.mid.musicxml").pitch.tolist() == [60, 64, 67]
    assert events.read(tmp_path / "abc" / "src" / "t.abc#1.abc").pitch.tolist() == \
        events.read(src / "t.abc").pitch.tolist()
    with np.load(tmp_path / "pianoroll" / "src" / "a.mid.npz") as npz:
        roll = events.to_pianoroll(table, frame_rate_hz=50)
        assert np.array_equal(npz["frame"], roll.frame) and np.array_equal(npz["velocity"], roll.velocity)
        assert float(npz["frame_rate_hz"]) == 50.0 and npz["programs"].tolist() == [0]
    data = json.loads((tmp_path / "json" / "src" / "a.mid.json").read_text())
    assert data["key"] == "src/a.mid" and data["notes"]["pitch"] == [60, 64, 67]
    assert data["notes"]["onset_tick"] == table.onset_tick.tolist() and data["ticks_per_quarter"] == 480


def test_audio_target_renders_with_a_real_engine(tmp_path):
    render = pytest.importorskip("render")
    src = tmp_path / "src"
    src.mkdir()
    _midi(src / "a.mid", [60, 64])
    (src / "t.abc").write_text(GOOD_TUNES[1])
    out = tmp_path / "audio"
    try:
        renderer = render.get_renderer("soundfont")
    except Exception as exc:  # no FluidSynth or SoundFont on this machine
        pytest.skip(f"soundfont engine unavailable: {exc}")
    result = run_cli("convert", str(src), "--to", "audio", "-o", str(out), "-j", "2", "--sample-rate", "16000",
                     "--audio-format", "flac", "--render-option", "gain=0.3")
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines()[-1].startswith("converted 2/2, failed 0, skipped 0")
    import soundfile

    for key in ("src/a.mid", "src/t.abc#2"):
        audio, rate = soundfile.read(out / f"{key}.flac", dtype="float32", always_2d=True)
        item = next(i for i in iter_items(src) if i.key == key)
        with render.get_renderer("soundfont", gain=0.3) as engine:
            expected = engine.render(item.read(abc_reader="abc2midi"), 16000)
        assert rate == 16000 and audio.shape == expected.T.shape
        np.testing.assert_allclose(audio, np.clip(expected.T, -1, 1), atol=2 / 32768)
    renderer.close()
    bad = run_cli("convert", str(src), "--to", "audio", "-o", str(out), "--soundfont", str(tmp_path / "no.sf2"))
    assert bad.returncode == 2 and "SoundFont not found" in bad.stderr


def _start(*args, cwd=REPO):
    return subprocess.Popen([sys.executable, "-m", "ostinato", *args], cwd=cwd,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, start_new_session=True)


def _lines(path):
    try:
        return path.read_bytes().count(b"\n")
    except FileNotFoundError:
        return 0


def _kill_half_way(args, manifest, n_items):
    process = _start(*args)
    while _lines(manifest) < n_items // 3 and process.poll() is None:
        time.sleep(0.02)
    assert process.poll() is None, "the batch ended before it could be killed"
    os.killpg(process.pid, signal.SIGKILL)  # the parent and its workers, as a power cut would
    process.wait()
    process.stdout.close()
    process.stderr.close()
    done_before = {r["key"] for r in read_manifest(manifest) if r["status"] == "ok"}
    assert 0 < len(done_before) < n_items
    return done_before


BOOK_TUNES = 600   # enough tunes that a batch spans several manifest flushes (about 1 s each) before the kill


@pytest.fixture()
def tune_book(tmp_path):
    src = tmp_path / "book"
    src.mkdir()
    tunes = []
    for x in range(1, BOOK_TUNES + 1):
        notes = " ".join("CDEFGABc"[(x + i) % 8] + "DEFG"[(x * i) % 4] for i in range(12))
        tunes.append(f"X:{x}\nT:tune {x}\nM:4/4\nL:1/8\nK:{'GDAC'[x % 4]}\n{notes}|]\n")
    (src / "book.abc").write_text("\n".join(tunes))
    return src


def test_sigkill_half_way_then_rerun_finishes_every_token_piece_once(tune_book, tmp_path):
    from ostinato.symbolic.tokenizers import load_tokenizer

    out = tmp_path / "tokens"
    args = ("convert", str(tune_book), "--to", "tokens", "--tokenizer", "remi", "-o", str(out), "-j", "2",
            "--abc-reader", "music21")
    done_before = _kill_half_way(args, out / "manifest.jsonl", BOOK_TUNES)
    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.splitlines()[-1] == (f"converted {BOOK_TUNES - len(done_before)}/{BOOK_TUNES}, "
                                             f"failed 0, "
                                             f"skipped {len(done_before)} (manifest: {out / 'manifest.jsonl'})")
    oks = Counter(r["key"] for r in read_manifest(out / "manifest.jsonl") if r["status"] == "ok")
    assert len(oks) == BOOK_TUNES and set(oks.values()) == {1}  # every piece done, none twice
    tokenizer = load_tokenizer(out / "tokenizer.json")
    items = {i.key: i for i in iter_items(tune_book)}
    pieces = dict(iter_shard_pieces(out, split="all"))
    assert sorted(pieces) == sorted(items)
    for key, ids in pieces.items():
        assert ids.tolist() == tokenizer.encode(items[key].read(abc_reader="music21")), key
    shard_tokens = sum(os.path.getsize(p) // 2 for p in out.glob("*-*.bin"))
    assert shard_tokens == sum(len(ids) for ids in pieces.values())  # no stray ids from the killed run
    meta = json.loads((out / "meta.json").read_text())
    assert meta["dtype"] == "uint16" and meta["n_pieces"]["test"] == sum(is_held_out(k) for k in items)


def test_sigkill_half_way_then_rerun_finishes_every_file_once(tune_book, tmp_path):
    out = tmp_path / "mid"
    args = ("convert", str(tune_book), "--to", "mid", "-o", str(out), "-j", "2", "--abc-reader", "music21")
    done_before = _kill_half_way(args, out / "manifest.jsonl", BOOK_TUNES)
    stamps = {key: (out / f"{key}.mid").stat().st_mtime_ns for key in done_before}
    rerun = run_cli(*args)
    assert rerun.returncode == 0, rerun.stderr
    assert rerun.stdout.splitlines()[-1].startswith(f"converted {BOOK_TUNES - len(done_before)}/{BOOK_TUNES}, "
                                                    f"failed 0, "
                                                    f"skipped {len(done_before)}")
    oks = Counter(r["key"] for r in read_manifest(out / "manifest.jsonl") if r["status"] == "ok")
    assert len(oks) == BOOK_TUNES and set(oks.values()) == {1}
    assert {key: (out / f"{key}.mid").stat().st_mtime_ns for key in done_before} == stamps
    for item in iter_items(tune_book):
        assert events.read(out / f"{item.key}.mid").notes_equal(item.read(abc_reader="music21")), item.key
    assert sorted(p.name for p in (out / "book").iterdir()) == sorted(f"book.abc#{x}.mid"
                                                                      for x in range(1, BOOK_TUNES + 1))
