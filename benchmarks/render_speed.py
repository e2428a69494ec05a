"""Rendering speed: the ddsp and soundfont engines against the ``fluidsynth`` program, same files, same run.

    python benchmarks/render_speed.py [--pieces 6] [--rate 22050] [--threads 1] [MIDI ...]

Default input: held-out multi-track pieces (benchmarks/render_pieces.py). Each engine's time
per file includes reading the MIDI and loading its model or SoundFont (a fresh renderer per
file, as the ``fluidsynth`` program loads its SoundFont per run). Prints the real-time factor
(seconds of audio per second of wall time) of each, and the ratios to fluidsynth.
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("midi", nargs="*", type=Path)
    parser.add_argument("--pieces", type=int, default=6)
    parser.add_argument("--rate", type=int, default=22050)
    parser.add_argument("--threads", type=int, default=1, help="torch threads for ddsp (fluidsynth uses one)")
    parser.add_argument("--model", default=None, help="ddsp model folder (default: the shipped model)")
    args = parser.parse_args()

    import torch
    from render_pieces import heldout_midis

    from ostinato import events, render
    from ostinato.render.soundfont import default_soundfont

    torch.set_num_threads(args.threads)
    program = shutil.which("fluidsynth")
    if program is None:
        sys.exit("the fluidsynth program is not installed (apt-get install fluidsynth)")
    soundfont = default_soundfont()
    with tempfile.TemporaryDirectory() as tmp:
        files = args.midi or heldout_midis(Path(tmp) / "midi", args.pieces)
        audio_s = sum(events.read(f).duration_s + 1.0 for f in files)  # every engine renders a 1 s tail
        times = {"fluidsynth program": 0.0, "soundfont engine": 0.0, "ddsp engine": 0.0}
        render.get_renderer("ddsp", model=args.model)  # warm the file cache and imports, not timed
        for f in files:
            out = Path(tmp) / "fs.wav"
            start = time.perf_counter()
            subprocess.run([program, "-ni", "-q", "-g", "0.2", "-r", str(args.rate), "-F", str(out), str(soundfont),
                            str(f)], check=True, capture_output=True)
            times["fluidsynth program"] += time.perf_counter() - start

            start = time.perf_counter()
            with render.get_renderer("soundfont", soundfont=soundfont) as engine:
                engine.render(events.read(f), args.rate)
            times["soundfont engine"] += time.perf_counter() - start

            start = time.perf_counter()
            engine = render.get_renderer("ddsp", model=args.model)
            engine.render(events.read(f), args.rate)
            times["ddsp engine"] += time.perf_counter() - start

    print(f"{len(files)} files, {audio_s:.1f} s of audio at {args.rate} Hz; ddsp with {args.threads} torch thread(s)")
    peer = audio_s / times["fluidsynth program"]
    for name, seconds in times.items():
        rtf = audio_s / seconds
        print(f"  {name:20s} {seconds:7.2f} s  real-time factor {rtf:7.1f}x  ratio to fluidsynth {rtf / peer:5.2f}")


if __name__ == "__main__":
    main()
