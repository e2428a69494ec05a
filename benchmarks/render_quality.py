"""Render quality: multi-resolution STFT distance to the FluidSynth reference, ddsp vs pretty_midi's sines.

    python benchmarks/render_quality.py [--pieces 6] [--rate 22050] [--model DIR]

On held-out multi-track pieces (benchmarks/render_pieces.py), the reference is the soundfont
engine (FluidSynth + FluidR3_GM). The baseline is ``pretty_midi.PrettyMIDI.synthesize`` (a sine
per note; it is silent for drums), scaled to the reference's RMS level so that its distance is
not inflated by loudness alone. Prints the distance of each per piece, the means and the ratio.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", type=int, default=6)
    parser.add_argument("--rate", type=int, default=22050)
    parser.add_argument("--model", default=None)
    args = parser.parse_args()

    import pretty_midi
    from render_pieces import heldout_midis

    from ostinato import events, render
    reference_engine = render.get_renderer("soundfont")
    ddsp = render.get_renderer("ddsp", model=args.model)
    rows = []
    with tempfile.TemporaryDirectory() as tmp:
        for f in heldout_midis(Path(tmp), args.pieces):
            table = events.read(f)
            reference = reference_engine.render(table, args.rate).mean(0)
            ours = ddsp.render(table, args.rate).mean(0)
            sine = pretty_midi.PrettyMIDI(str(f)).synthesize(fs=args.rate).astype(np.float32)
            sine *= np.sqrt(np.mean(reference**2) / max(np.mean(sine**2), 1e-12))
            rows.append((f.stem, render.stft_distance(ours, reference), render.stft_distance(sine, reference)))
    print(f"STFT distance to the FluidSynth reference at {args.rate} Hz (lower is better)")
    print(f"  {'piece':28s} {'ddsp':>8s} {'sine':>8s}")
    for name, ours, sine in rows:
        print(f"  {name:28s} {ours:8.3f} {sine:8.3f}")
    mean_ours, mean_sine = np.mean([r[1] for r in rows]), np.mean([r[2] for r in rows])
    print(f"  {'mean':28s} {mean_ours:8.3f} {mean_sine:8.3f}")
    print(f"ratio ddsp / sine baseline: {mean_ours / mean_sine:.3f} (target <= 0.5)")


if __name__ == "__main__":
    main()
