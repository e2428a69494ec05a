"""Rendering speed: the ddsp and soundfont engines against the ``fluidsynth`` program, same files, same run.

    python benchmarks/render_speed.py [--pieces 6] [--rate 44100] [--threads 1] [MIDI ...]

Default input: held-out multi-track pieces (benchmarks/render_pieces.py). Each engine's time
per file includes reading the MIDI and loading its model or SoundFont (a fresh renderer per
file, as the ``fluidsynth`` program loads its SoundFont per run). Prints the real-time factor
(seconds of audio per second of wall time) of each, and the ratios to fluidsynth.

    python benchmarks/render_speed.py --long 6 [--rate 44100]

Whole processes instead (issue 18's measure): one General MIDI file of 6 minutes or more (held-out
pieces one after another, 12 programs and drums: ``render_pieces.long_midi``) rendered by
``ostinato render FILE -o out.wav`` and by ``fluidsynth -ni -F out.wav FluidR3_GM.sf2 FILE``, loading and
imports included, alternating, median of 3 each; prints the speed ratio (fluidsynth's time over ours).
``ostinato render`` synthesizes chunks on as many threads as the process has cores (``fluidsynth``: one);
the line printed says how many.
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
    parser.add_argument("--rate", type=int, default=44100, help="output rate (default 44100: the ddsp model's own)")
    parser.add_argument("--threads", type=int, default=1,
                        help="ddsp: chunks synthesized at once, one thread each (fluidsynth uses one thread)")
    parser.add_argument("--model", default=None, help="ddsp model folder (default: the shipped model)")
    parser.add_argument("--long", type=float, metavar="MINUTES",
                        help="time whole processes on one file of this many minutes instead")
    parser.add_argument("--runs", type=int, default=3, help="with --long: runs of each (the median is kept)")
    args = parser.parse_args()
    if args.long:
        whole_processes(args.long, args.rate, args.runs, args.model)
        return

    from render_pieces import heldout_midis

    from ostinato import events, render
    from ostinato.render.soundfont import default_soundfont

    program = shutil.which("fluidsynth")
    if program is None:
        sys.exit("the fluidsynth program is not installed (apt-get install fluidsynth)")
    soundfont = default_soundfont()
    with tempfile.TemporaryDirectory() as tmp:
        files = args.midi or heldout_midis(Path(tmp) / "midi", args.pieces)
        audio_s = sum(events.read(f).duration_s + 1.0 for f in files)  # every engine renders a 1 s tail
        times = {"fluidsynth program": 0.0, "soundfont engine": 0.0, "ddsp engine": 0.0}
        render.get_renderer("ddsp", model=args.model, threads=args.threads)  # warm the file cache and imports
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
            engine = render.get_renderer("ddsp", model=args.model, threads=args.threads)
            engine.render(events.read(f), args.rate)
            times["ddsp engine"] += time.perf_counter() - start

    print(f"{len(files)} files, {audio_s:.1f} s of audio at {args.rate} Hz; ddsp on {args.threads} thread(s)")
    peer = audio_s / times["fluidsynth program"]
    for name, seconds in times.items():
        rtf = audio_s / seconds
        print(f"  {name:20s} {seconds:7.2f} s  real-time factor {rtf:7.1f}x  ratio to fluidsynth {rtf / peer:5.2f}")


def whole_processes(minutes: float, rate: int, runs: int, model: str | None = None) -> None:
    """``ostinato render`` against the ``fluidsynth`` program on one long file, whole processes."""
    import statistics

    from render_pieces import long_midi

    from ostinato import events
    from ostinato.render.soundfont import default_soundfont

    program = shutil.which("fluidsynth")
    if program is None:
        sys.exit("the fluidsynth program is not installed (apt-get install fluidsynth)")
    with tempfile.TemporaryDirectory() as tmp:
        midi = long_midi(Path(tmp) / "long.mid", minutes)
        table = events.read(midi)
        outputs = {"fluidsynth program": Path(tmp) / "fs.wav", "ostinato render": Path(tmp) / "ours.wav"}
        commands = {
            "fluidsynth program": [program, "-ni", "-q", "-g", "0.2", "-r", str(rate), "-F",
                                   str(outputs["fluidsynth program"]), str(default_soundfont()), str(midi)],
            "ostinato render": [sys.executable, "-m", "ostinato", "render", str(midi), "-o",
                                str(outputs["ostinato render"]), "-q", "--sample-rate", str(rate),
                                *(["--model", model] if model else [])],
        }
        times: dict[str, list[float]] = {name: [] for name in commands}
        for _ in range(runs):
            for name, command in commands.items():
                outputs[name].unlink(missing_ok=True)   # (render skips an output that exists)
                start = time.perf_counter()
                subprocess.run(command, check=True, capture_output=True)
                times[name].append(time.perf_counter() - start)
    n_programs = len({int(p) for p in table.program[~table.is_drum]})
    from ostinato.render.ddsp.engine import available_cores

    print(f"{midi.name}: {table.duration_s / 60:.1f} minutes, {len(table):,} notes, {n_programs} programs and drums, "
          f"{rate} Hz; whole processes, median of {runs}; ostinato render on {available_cores()} core(s)")
    median = {name: statistics.median(values) for name, values in times.items()}
    for name, seconds in median.items():
        print(f"  {name:20s} {seconds:6.2f} s  ({', '.join(f'{v:.2f}' for v in times[name])})")
    print(f"  ostinato render is {median['fluidsynth program'] / median['ostinato render']:.2f}x as fast as the "
          f"fluidsynth program (target >= 1.5x)")


if __name__ == "__main__":
    main()
