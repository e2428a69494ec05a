"""MIDI -> tokens: ``ostinato convert --to tokens`` against miditok's ``tokenize_dataset``, same files, same config.

    python benchmarks/convert_tokens.py [--jobs 2] [--rounds 3] [--midi-dir DIR]

The corpus is real MIDI: music21's O'Neill's 1850 tunes made into MIDI files by
``ostinato convert --to mid`` (2,009 files), plus ``../shared/fixtures/midi_one_track``
(piano and pop files from the wild) when present; or the files of ``--midi-dir``.
The tokenizer is ostinato's ``remi`` tokenizer; miditok runs with exactly its miditok
configuration (``tokenizer.miditok``) and its own defaults (``tokenize_dataset`` starts
its process pool with miditok's default number of workers and writes one JSON file per
MIDI file). ostinato runs the real command with ``-j JOBS``. Both run as fresh processes
(imports included), alternately, ``--rounds`` times; the median of each is reported.
"""

from __future__ import annotations

import argparse
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
FIXTURES = REPO.parent / "shared" / "fixtures" / "midi_one_track"

MIDITOK = """
import sys
from pathlib import Path
from ostinato.symbolic.tokenizers import load_tokenizer
tokenizer = load_tokenizer(sys.argv[1]).miditok
tokenizer.tokenize_dataset(sorted(Path(sys.argv[2]).rglob("*.mid")), sys.argv[3], verbose=False)
"""


def timed(command: list[str]) -> tuple[float, str]:
    start = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, cwd=REPO)
    seconds = time.perf_counter() - start
    if done.returncode not in (0, 1):
        sys.exit(f"failed: {' '.join(command)}\n{done.stderr[-2000:]}")
    return seconds, (done.stdout.strip().splitlines() or [""])[-1]


def make_corpus(folder: Path) -> None:
    subprocess.run([sys.executable, "-m", "ostinato", "convert", "music21:oneills1850", "--to", "mid", "-o",
                    str(folder / "oneills"), "-q"], check=False, cwd=REPO, capture_output=True)
    (folder / "oneills" / "manifest.jsonl").unlink(missing_ok=True)
    if FIXTURES.is_dir():
        shutil.copytree(FIXTURES, folder / "fixtures")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--jobs", type=int, default=2)
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--midi-dir", type=Path)
    args = parser.parse_args()
    from ostinato.symbolic.tokenizers import build_tokenizer, save_tokenizer

    with tempfile.TemporaryDirectory(prefix="bench-tokens-") as tmp:
        tmp = Path(tmp)
        corpus = args.midi_dir or tmp / "corpus"
        if args.midi_dir is None:
            make_corpus(corpus)
        files = sorted(p for p in corpus.rglob("*") if p.suffix.lower() in (".mid", ".midi"))
        tokenizer_json = tmp / "tokenizer.json"
        save_tokenizer(build_tokenizer("remi"), tokenizer_json)
        peer, ours, line = [], [], ""
        for n in range(args.rounds):
            peer.append(timed([sys.executable, "-c", MIDITOK, str(tokenizer_json), str(corpus),
                               str(tmp / f"miditok{n}")])[0])
            seconds, line = timed([sys.executable, "-m", "ostinato", "convert", str(corpus), "--to", "tokens",
                                   "--tokenizer", str(tokenizer_json), "-o", str(tmp / f"ours{n}"),
                                   "-j", str(args.jobs)])
            ours.append(seconds)
    peer_s, ours_s = statistics.median(peer), statistics.median(ours)
    print(f"{len(files)} MIDI files, tokenizer remi (same miditok config), median of {args.rounds} rounds")
    print(f"{'tokenizer run':44s} {'files/s':>9s} {'ours/peer':>10s}")
    print(f"{'miditok tokenize_dataset (its default pool)':44s} {len(files) / peer_s:9.1f}")
    print(f"{f'ostinato convert --to tokens -j {args.jobs}':44s} {len(files) / ours_s:9.1f} {peer_s / ours_s:9.2f}x")
    print(f"ostinato: {line}")


if __name__ == "__main__":
    main()
