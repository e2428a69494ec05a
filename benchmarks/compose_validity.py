"""Validity of composed pieces: every sample of a model, one seed each, checked as a user would.

    python benchmarks/compose_validity.py --model folk-abc -n 1000        # seeds 0..999
    python benchmarks/compose_validity.py --model chorale-midi -n 200 --batch 8   # 25 batches, seeds 0..24

ABC model: each tune (``compose`` with seed s, the CLI's sampling defaults: temperature 1,
top-p 0.95) must carry ``M:``, ``L:`` and ``K:``, parse in music21, and have every full bar of
the meter's length (music21's measures; the first bar may be a pickup and the last may be
short): ``symbolic.evaluate.check_abc_tune``.

With ``--batch B`` the samples are drawn B at a time (one ``compose -n B``), batch k seeded
with k. MIDI model: batch k requests the instrument set ``SETS[k % len(SETS)]`` (multi-track sets of
GM programs, some with drums); the piece is written as a MIDI file, read back with
``events.read``, and must have notes, at least two tracks, and only the requested programs.

Prints the counts, every failure with its reason, and seconds per piece (median); exits 1 if
any sample fails.
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

# Requested instrument sets for the MIDI model (GM programs; "drums" is the kit).
SETS = (
    (40, 41, 42, 43),        # violin, viola, cello, contrabass
    (0, 32),                 # piano, acoustic bass
    (19, 52),                # church organ, choir
    (73, 71, 70, 60),        # flute, clarinet, bassoon, horn
    (24, 33, "drums"),       # nylon guitar, electric bass, drums
    (48, 56, 57, 58),        # string ensemble, trumpet, trombone, tuba
)


def check_abc(composition) -> str | None:
    """None when the tune is valid, else the reason."""
    from ostinato.symbolic.evaluate import check_abc_tune

    text = composition.text
    missing = [h for h in ("M:", "L:", "K:") if not any(line.startswith(h) for line in text.splitlines())]
    if missing:
        return f"missing {', '.join(missing)}"
    check = check_abc_tune(text)
    if not check.valid:
        return check.problem
    if check.n_bad_bars:
        return f"bars {check.bad_bars} do not have the meter's length"
    return None


def check_midi(composition, requested: tuple, folder: Path, seed: int) -> str | None:
    """None when the piece decodes to non-empty multi-track MIDI with only ``requested`` programs."""
    from ostinato import events
    path = folder / f"sample-{seed:04d}.mid"
    events.write(composition.table, path)
    table = events.read(path)
    if len(table) == 0:
        return "no notes"
    if len(table.tracks) < 2:
        return f"{len(table.tracks)} track(s)"
    allowed = {"drums" if r == "drums" else int(r) for r in requested}
    found = {"drums" if t.is_drum else int(t.program) for t in table.tracks}
    if not found <= allowed:
        return f"programs {sorted(map(str, found - allowed))} were not requested"
    return None


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", required=True, help="a shipped model name or a model folder")
    parser.add_argument("-n", type=int, default=100, help="samples")
    parser.add_argument("--batch", type=int, default=1, help="samples per compose call (default 1: seeds 0..n-1)")
    parser.add_argument("--first-seed", type=int, default=0)
    args = parser.parse_args()

    from ostinato.symbolic.compose import compose
    from ostinato.symbolic.model import load_model_folder
    from ostinato.symbolic.sample import SamplingConfig, context_of
    from ostinato.symbolic.shipped import resolve_model

    model, tokenizer, _ = load_model_folder(resolve_model(args.model))
    failures, seconds = [], []
    with tempfile.TemporaryDirectory() as tmp:
        n_batches = -(-args.n // args.batch)
        for seed in range(args.first_seed, args.first_seed + n_batches):
            sampling = SamplingConfig(top_p=0.95, seed=seed, max_tokens=context_of(model))
            requested = SETS[seed % len(SETS)]
            controls = tokenizer.make_controls(instruments=requested)   # ABC models have no instruments
            started = time.perf_counter()
            pieces = compose(model, tokenizer, n=args.batch, sampling=sampling, controls=controls)
            seconds.append((time.perf_counter() - started) / args.batch)
            for i, piece in enumerate(pieces):
                if piece.text is not None:   # an ABC tune: its own text is checked
                    problem = check_abc(piece)
                else:
                    problem = check_midi(piece, requested, Path(tmp), seed * args.batch + i)
                if problem:
                    failures.append((seed, i, problem))
                    print(f"seed {seed} sample {i}: {problem}", flush=True)
    n = n_batches * args.batch
    print(f"{args.model}: {n - len(failures)}/{n} valid ({n_batches} batches of {args.batch}, seeds "
          f"{args.first_seed}..{args.first_seed + n_batches - 1}); median {statistics.median(seconds):.2f} s "
          f"per piece, mean {statistics.fmean(seconds):.2f} s")
    sys.exit(1 if failures else 0)


if __name__ == "__main__":
    main()
