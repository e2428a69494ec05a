"""A table-driven hostile corpus for every entry point: info, compose --primer, render, convert,
train symbolic --data, evaluate nll, evaluate samples --reference, plot.

Every hostile input is built here (:data:`CASES`); every entry point runs as a real subprocess
(``python -m ostinato ...``) with a timeout, over one folder of all of them where it takes a folder,
else once per input. Each run must end with an exit code of the expected set, no traceback on
stderr, every refused input named on its own ``ostinato: `` line, and every file of the corpus
byte for byte as it was (nothing lost or overwritten). :func:`test_totals` prints the counts:
inputs tried, clean, crashes, hangs, data lost.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
import subprocess
import sys
import zipfile
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pytest
from test_hostile import EOT, NOTE, _mthd, _mtrk  # the MIDI chunk builders

TIMEOUT_S = 240


# ---------------------------------------------------------------------------- the hostile inputs
GOOD_MIDI = _mthd() + _mtrk(b"".join(NOTE[:1] + bytes([0x90, p, 0x40]) + b"\x83\x60" + bytes([0x80, p, 0])
                                     for p in (60, 62, 64, 65, 67, 69, 71, 72)) + EOT)
GOOD_ABC = "".join(f"X:{i}\nM:4/4\nL:1/8\nK:G\nGABc dedB|{'ABcd' if i % 2 else 'edcB'} G4|]\n\n" for i in range(1, 9))
XML = """<?xml version="1.0" encoding="UTF-8"?>
<score-partwise version="3.1"><part-list><score-part id="P1"><part-name>P</part-name></score-part></part-list>
<part id="P1"><measure number="1"><attributes><divisions>1</divisions><time><beats>4</beats><beat-type>4</beat-type>
</time>{extra}</attributes><note><pitch><step>C</step><octave>4</octave></pitch><duration>{duration}</duration></note>
</measure></part></score-partwise>
"""


def _bytes(data: bytes) -> Callable[[Path], None]:
    return lambda path: path.write_bytes(data)


def _fifo(path: Path) -> None:
    os.mkfifo(path)


def _dev_zero(path: Path) -> None:
    path.symlink_to("/dev/zero")


def _dangling(path: Path) -> None:
    path.symlink_to(path.parent / "no-such-target.mid")


def _folder(path: Path) -> None:
    path.mkdir()


def _zip_bomb(path: Path) -> None:
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as bomb:
        bomb.writestr("score.musicxml", b" " * (100 * 1024 * 1024))


def _zero_meter(path: Path) -> None:
    import symusic

    score = symusic.Score(480)
    track = symusic.Track("p", 0, False)
    for i, pitch in enumerate((60, 64, 67, 72)):
        track.notes.append(symusic.Note(i * 480, 480, pitch, 90))
    score.tracks.append(track)
    score.time_signatures.append(symusic.TimeSignature(0, 0, 4))
    score.dump_midi(str(path))


def _no_notes_midi(path: Path) -> None:
    import symusic

    score = symusic.Score(480)
    score.tracks.append(symusic.Track("p", 0, False))
    score.dump_midi(str(path))


ENTRY_NAMES = ("info", "convert", "render", "train", "evaluate nll", "evaluate samples", "evaluate samples --folder",
               "compose --primer", "plot")
EVERY = frozenset(ENTRY_NAMES)
NOTHING_TO_HEAR = frozenset({"info", "convert", "render", "plot", "evaluate samples"})


@dataclass(frozen=True)
class Case:
    """One hostile input: its file name, how it is made, and which entry points may read it as music.

    ``music``: the entry points for which it is odd but music (read, perhaps with a warning naming it);
    every other entry point must refuse it, naming it on an ``ostinato:`` line. ``walked``: a folder
    walk gives it as an item (a subfolder named ``x.mid`` is no file, so no item of a folder).
    """

    name: str
    build: Callable[[Path], None]
    music: frozenset[str] = frozenset()
    walked: bool = True
    warning: str = ""   # read with this warning, which must name it (wherever warnings are shown: not under -q)


CASES = (
    Case("empty.mid", _bytes(b"")),
    Case("empty.abc", _bytes(b"")),
    Case("empty.musicxml", _bytes(b"")),
    Case("truncated.mid", _bytes(GOOD_MIDI[:-6])),
    Case("garbage.mid", _bytes(np.random.default_rng(0).bytes(4096))),
    Case("garbage.abc", _bytes(b"\x00\x01\x02X:1\nK:C\n\xff\xfe" + np.random.default_rng(1).bytes(512))),
    Case("garbage.musicxml", _bytes(b"<score-partwise><part><<<not xml")),
    Case("garbage.mxl", _bytes(np.random.default_rng(2).bytes(2048))),
    Case("garbage.krn", _bytes(np.random.default_rng(3).bytes(1024))),
    Case("text named.mid", _bytes(b"hello, I am not music\n")),
    Case("huge chunk.mid", _bytes(_mthd() + _mtrk(NOTE + EOT, declared=0xFFFFFFF0))),
    Case("absurd ticks.mid", _bytes(_mthd(division=1) + _mtrk(b"\x00\x90\x40\x40\xff\xff\xff\x7f\x80\x40\x00" + EOT))),
    Case("fifo.mid", _fifo),
    Case("fifo.abc", _fifo),
    Case("zero.mid", _dev_zero),
    Case("zero.abc", _dev_zero),
    Case("dangling.mid", _dangling),
    Case("folder.mid", _folder, walked=False),
    Case("long line.abc", _bytes(("X:1\nM:4/4\nL:1/8\nK:G\n" + "GABc " * 400_000 + "|]\n").encode())),
    # L:0/0: music21 cannot parse it; abc2midi (convert's and the originality reference's reader) reads it
    Case("zero length.abc", _bytes(b"X:1\nT:broken\nL:0/0\nK:C\nCDE|\n"),
         music=frozenset({"convert", "evaluate samples"})),
    Case("bomb.mxl", _zip_bomb),
    Case("long note.musicxml", _bytes(XML.format(extra="", duration=500_000_000_000).encode())),
    Case("naïve ♪.mid", _bytes(b"RIFF\x24\x00\x00\x00WAVEfmt " + bytes(40))),
    # odd but music: read (a dropped meter, a Unicode X: digit, a music21 warning), never a crash
    Case("zero meter.mid", _zero_meter, music=EVERY, warning="time signature 0/4 at tick 0 is not a meter; dropped"),
    Case("unicode x.abc", _bytes("X:1\nM:4/4\nL:1/8\nK:G\nGABc dedB|G4 G4|]\n\n"
                                 "X:²\nM:4/4\nL:1/8\nK:D\nDEFG ABcd|d4 A4|]\n".encode()), music=EVERY),
    Case("staff warning.musicxml", _bytes(XML.format(
        extra="<staff-details><staff-type>bogus</staff-type></staff-details>", duration=4).encode()), music=EVERY,
         warning="Got an incorrect staff-type in details"),
    # no notes: a piece to summarise, convert, render, draw or pool as a reference (it adds nothing), but
    # nothing to learn from, score, continue, or count as a valid sample
    Case("no notes.mid", _no_notes_midi, music=NOTHING_TO_HEAR),
    Case("no notes.abc", _bytes(b"X:1\nM:4/4\nL:1/8\nK:G\n"), music=NOTHING_TO_HEAR),
)

def build_corpus(folder: Path, cases=CASES, *, good: bool = True) -> Path:
    """Every case of ``cases`` in ``folder`` (made), beside two good pieces when ``good``."""
    folder.mkdir(parents=True, exist_ok=True)
    for case in cases:
        case.build(folder / case.name)
    if good:
        (folder / "good.mid").write_bytes(GOOD_MIDI)
        (folder / "good.abc").write_text(GOOD_ABC)
    return folder


def checksums(folder: Path) -> dict[str, str]:
    """A fingerprint of every entry under ``folder``: regular files by content, the rest by kind and target."""
    found = {}
    for path in sorted(folder.rglob("*")):
        mode = path.lstat().st_mode
        name = path.relative_to(folder).as_posix()
        if stat.S_ISLNK(mode):
            found[name] = "link:" + os.readlink(path)
        elif stat.S_ISREG(mode):
            found[name] = hashlib.sha256(path.read_bytes()).hexdigest()
        else:
            found[name] = "fifo" if stat.S_ISFIFO(mode) else "dir" if stat.S_ISDIR(mode) else oct(mode)
    return found


# ---------------------------------------------------------------------------- the entry points
TINY = {"architecture": "gpt2", "n_layers": 1, "d_model": 32, "n_heads": 2, "context": 64, "dropout": 0.0}


@dataclass(frozen=True)
class Entry:
    """One entry point: ``args(input, work folder)`` is its command line (``input``: the corpus folder,
    or one file of it for an entry point run ``each`` input alone); ``exit_codes``: of a folder run."""

    name: str
    args: Callable[[str, Path], list[str]]
    each: bool = False
    exit_codes: frozenset[int] = frozenset({1})
    lists_files: bool = False   # a folder run sees every name (not only a walk's items): folders named x.mid too
    quiet: bool = False   # run with -q (warnings are not shown)
    suffixes: tuple[str, ...] | None = None   # the only files it reads (None: every music file)

    def sees(self, case: Case) -> bool:
        """Whether a run of this entry point reads ``case`` at all."""
        if self.suffixes is not None and Path(case.name).suffix not in self.suffixes:
            return False
        return self.each or self.lists_files or case.walked


def _compose_args(primer: str, work: Path) -> list[str]:
    suffix = ".abc" if primer.endswith(".abc") else ".mid"   # ABC primers go to the ABC model, the rest to MIDI
    out = work / (hashlib.sha256(primer.encode()).hexdigest()[:12] + suffix)
    return ["compose", "--primer", primer, "-o", str(out), "--bars", "1", "--seed", "0", "-q"]


def _train_args(corpus: str, work: Path) -> list[str]:
    (work / "tiny.json").write_text(json.dumps(TINY))
    return ["train", "symbolic", "--data", corpus, "--tokenizer", "remi", "--config", str(work / "tiny.json"),
            "--out", str(work / "model"), "--steps", "1", "--batch-size", "1", "--eval-every", "1",
            "--checkpoint-every", "1", "-v"]   # -v: every piece that could not be used, by name


ENTRIES = (
    Entry("info", lambda corpus, work: ["info", "--json", *sorted(f"corpus/{p.name}" for p in Path(corpus).iterdir())],
          lists_files=True),
    Entry("convert", lambda corpus, work: ["convert", corpus, "--to", "mid", "-o", str(work / "out"), "-q"],
          quiet=True),
    Entry("render", lambda corpus, work: ["render", corpus, "-o", str(work / "out"), "--engine", "soundfont",
                                          "-r", "16000", "-q"], quiet=True),
    Entry("train", _train_args, exit_codes=frozenset({0})),
    Entry("evaluate nll", lambda corpus, work: ["evaluate", "nll", "--model", "chorale-midi", "--all", "--json",
                                                corpus], exit_codes=frozenset({0})),
    Entry("evaluate samples", lambda corpus, work: [
        "evaluate", "samples", "--model", "chorale-midi", "-n", "1", "--max-tokens", "64", "--reference", corpus],
        exit_codes=frozenset({0})),
    Entry("evaluate samples --folder", lambda corpus, work: [
        "evaluate", "samples", "--folder", corpus, "--reference", str(work / "reference.abc"), "--no-originality"],
        exit_codes=frozenset({0}), lists_files=True, suffixes=(".abc", ".mid")),   # generated pieces: ABC, MIDI
    Entry("compose --primer", _compose_args, each=True, quiet=True),
    Entry("plot", lambda file, work: ["plot", file, "-o", str(work / (hashlib.sha256(file.encode()).hexdigest()[:12]
                                                                       + ".png"))], each=True),
)
assert tuple(e.name for e in ENTRIES) == ENTRY_NAMES


@dataclass
class Outcome:
    """What happened to one input under one entry point."""

    entry: str
    case: str
    status: str   # clean, crash, hang, data lost, unnamed (refused without a line naming it), refused (not expected)
    detail: str = ""


def _run(args: list[str], cwd: Path) -> subprocess.CompletedProcess | None:
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    try:
        return subprocess.run([sys.executable, "-m", "ostinato", *args], capture_output=True, text=True,
                              timeout=TIMEOUT_S, cwd=cwd, env=env, stdin=subprocess.DEVNULL)
    except subprocess.TimeoutExpired:
        return None


def _names(line: str, case: Case) -> bool:
    """True when ``line`` is an ``ostinato:`` line naming ``case``'s file (``corpus/NAME:`` or ``corpus/NAME#X``)."""
    where = f"corpus/{case.name}"
    return line.startswith("ostinato: ") and any(f"{where}{end}" in line for end in (":", "#"))


def _folder_run(entry: Entry, root: Path, work: Path) -> list[Outcome]:
    before = checksums(root / "corpus")
    result = _run(entry.args(str(root / "corpus") if entry.name == "info" else "corpus", work), cwd=root)
    lost = sorted(name for name, digest in checksums(root / "corpus").items() if before.get(name) != digest)
    lost += sorted(set(before) - set(checksums(root / "corpus")))
    outcomes = []
    for case in CASES:
        if entry.sees(case):
            if result is None:
                outcomes.append(Outcome(entry.name, case.name, "hang", f"over {TIMEOUT_S} s"))
            elif "Traceback" in result.stderr or result.returncode not in entry.exit_codes:
                outcomes.append(Outcome(entry.name, case.name, "crash",
                                        f"exit {result.returncode}: {result.stderr[-2000:]}"))
            elif lost:
                outcomes.append(Outcome(entry.name, case.name, "data lost", ", ".join(lost)))
            else:
                named = [line for line in result.stderr.splitlines() if _names(line, case)]
                refused = entry.name not in case.music
                must_name = refused or (case.warning and not entry.quiet)
                status = "clean" if bool(named) or not must_name else "unnamed"
                if not refused and any(not case.warning or case.warning not in line for line in named):
                    status = "refused"   # music, yet named on a line that is not its warning
                if any("Timeout:" in line for line in named):   # a worker killed at its time limit: it hung
                    status = "hang"
                outcomes.append(Outcome(entry.name, case.name, status, "\n".join(named)))
    return outcomes


def _each_run(entry: Entry, case: Case, root: Path, work: Path) -> Outcome:
    path = f"corpus/{case.name}"
    before = checksums(root / "corpus")
    result = _run(entry.args(path, work), cwd=root)
    after = checksums(root / "corpus")
    lost = sorted(name for name in set(before) | set(after) if before.get(name) != after.get(name))
    if result is None:
        return Outcome(entry.name, case.name, "hang", f"over {TIMEOUT_S} s")
    refused = entry.name not in case.music
    if "Traceback" in result.stderr or result.returncode not in ({1} if refused else {0}):
        return Outcome(entry.name, case.name, "crash", f"exit {result.returncode}: {result.stderr[-2000:]}")
    if lost:
        return Outcome(entry.name, case.name, "data lost", ", ".join(lost))
    lines = result.stderr.strip().splitlines()
    if refused and not (len(lines) == 1 and lines[0].startswith(f"ostinato: {path}")):
        return Outcome(entry.name, case.name, "unnamed", result.stderr)
    if not refused and case.warning and not entry.quiet and not any(
            line.startswith(f"ostinato: {path}: ") and case.warning in line for line in lines):
        return Outcome(entry.name, case.name, "unnamed", f"its warning names no file: {result.stderr}")
    return Outcome(entry.name, case.name, "clean", result.stderr.strip())


RESULTS: dict[str, list[Outcome]] = {}


@pytest.fixture(scope="module")
def root(tmp_path_factory):
    root = tmp_path_factory.mktemp("hostile")
    build_corpus(root / "corpus")
    return root


@pytest.mark.parametrize("entry", ENTRIES, ids=[e.name for e in ENTRIES])
def test_every_hostile_input_is_refused_by_name_or_read_and_nothing_is_touched(entry, root, tmp_path):
    (tmp_path / "reference.abc").write_text(GOOD_ABC)
    if entry.each:
        with ThreadPoolExecutor(2) as pool:   # two at a time: each run is one short process
            outcomes = list(pool.map(lambda case: _each_run(entry, case, root, tmp_path), CASES))
    else:
        outcomes = _folder_run(entry, root, tmp_path)
    RESULTS[entry.name] = outcomes
    bad = [f"{o.case}: {o.status}: {o.detail}" for o in outcomes if o.status != "clean"]
    assert not bad, "\n".join(bad)
    assert len(outcomes) == _expected_runs(entry)


def _expected_runs(entry: Entry) -> int:
    return sum(entry.sees(case) for case in CASES)


def test_totals(capsys):
    """The closing count of issue 15: inputs tried, clean, crashes, hangs, data lost (printed)."""
    if set(RESULTS) != set(ENTRY_NAMES):
        pytest.skip("the totals need every entry point's run")
    outcomes = [o for entry in ENTRY_NAMES for o in RESULTS[entry]]
    totals = {status: sum(o.status == status for o in outcomes)
              for status in ("clean", "crash", "hang", "data lost", "unnamed", "refused")}
    with capsys.disabled():
        print(f"\nhostile corpus: {len(CASES)} inputs through {len(ENTRY_NAMES)} entry points (each it reads): "
              f"{len(outcomes)} tried, "
              + ", ".join(f"{n} {status}" for status, n in totals.items()))
    assert totals["clean"] == len(outcomes) == sum(_expected_runs(entry) for entry in ENTRIES)
