"""Render fidelity: ddsp beside FluidSynth with FluidR3_GM (the reference) and TimGM6mb, on GM files with drums.

    python benchmarks/render_fidelity.py [--pieces 4] [--seconds 30] [--rate 44100] [--model DIR]
    python benchmarks/render_fidelity.py --calibrate [--calibration-pieces 12] [--model DIR]

The pieces are held-out Bach chorales with instruments assigned per part and a drum part added
(benchmarks/render_pieces.py, as the shipped model's training data was made), written as
multi-track General MIDI files, cut to ``--seconds``. For each engine and piece it prints:

- ``hf_db``: energy above 11 kHz relative to the FluidR3 render of the same piece, in dB;
- ``lr_corr``: the correlation of the left and right channels (1.0 = mono);
- ``lufs``: integrated loudness (ITU-R BS.1770-4, pyloudnorm) and ``d_lufs``, its difference from FluidR3's;
- ``stft``: the multi-resolution STFT distance to the FluidR3 render (DESIGN.md, mono mix).

Then single hits, each alone (:mod:`render.envelope`): the time a kick (GM key 36) and a snare (38)
take to fall 30 dB below their peak, the spectral flatness of a crash (49) over its first 0.5 s,
and the time from a piano C4's onset to its peak (the first 5 ms window within 3 dB of the loudest,
``attack``; the loudest itself, ``peak``), all at velocity 100, with the targets of the renderer
issue: falls within 2x FluidR3's, flatness within 2x, piano attack within 50 ms.

TimGM6mb is another real SoundFont (pretty_midi's copy; Debian's ``timgm6mb-soundfont`` when
installed): its distance is the bar the neural renderer is held to.

``--calibrate`` first measures the ddsp model's level against FluidR3 on training chorales made
the same way (:mod:`render.ddsp.calibration`: the velocity curve the model lacks, per instrument, a gain
per instrument, then an overall gain) and writes ``velocity_exponent``, ``instrument_velocity_exponent``,
``instrument_gain_db`` and ``output_gain_db`` into the model folder's
config.json (the shipped model's by default), then measures the held-out pieces as above.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

HIGH_BAND_HZ = 11000.0


def timgm6mb() -> Path | None:
    """TimGM6mb.sf2: Debian's package, else pretty_midi's copy; None when neither exists."""
    for path in (Path("/usr/share/sounds/sf2/TimGM6mb.sf2"), Path("/usr/share/sounds/sf2/timgm6mb.sf2")):
        if path.is_file():
            return path
    try:
        import pretty_midi
    except ImportError:
        return None
    path = Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"
    return path if path.is_file() else None


def high_band_energy(audio: np.ndarray, sample_rate_hz: int) -> float:
    """Energy of the mono mix above ``HIGH_BAND_HZ`` (sum of squared FFT magnitudes)."""
    mono = audio.mean(0).astype(np.float64)
    spectrum = np.abs(np.fft.rfft(mono)) ** 2
    freqs = np.fft.rfftfreq(mono.shape[0], 1.0 / sample_rate_hz)
    return float(spectrum[freqs >= HIGH_BAND_HZ].sum())


def lr_correlation(audio: np.ndarray) -> float:
    """Pearson correlation of the two channels (1.0 when identical)."""
    left, right = audio[0].astype(np.float64), audio[1].astype(np.float64)
    left, right = left - left.mean(), right - right.mean()
    return float((left * right).sum() / max(np.sqrt((left**2).sum() * (right**2).sum()), 1e-30))


def integrated_lufs(audio: np.ndarray, sample_rate_hz: int) -> float:
    import pyloudnorm

    return float(pyloudnorm.Meter(sample_rate_hz).integrated_loudness(audio.T.astype(np.float64)))


def pieces(folder: Path, n_pieces: int, seconds: float, split: str = "test") -> list[tuple[str, object]]:
    """(name, table): held-out (or training) chorales with instruments and drums, cut to ``seconds``."""
    import itertools

    from ostinato import events
    from ostinato.render.paired import add_drum_part, assign_instruments, truncate
    from ostinato.render.sources import iter_notes

    out = []
    for key, table, _ in itertools.islice(iter_notes("music21:bach", split=split), n_pieces):
        table = truncate(add_drum_part(assign_instruments(table, key), key), seconds)
        path = folder / (key.replace("/", "_").replace("#", "_") + ".mid")
        events.write_midi(table, path)  # a real GM file, read back as any file would be
        out.append((path.stem, events.read(path)))
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--pieces", type=int, default=4)
    parser.add_argument("--seconds", type=float, default=30.0, help="cut each piece to this length")
    parser.add_argument("--rate", type=int, default=44100)
    parser.add_argument("--model", default=None, help="ddsp model folder (default: the shipped one)")
    parser.add_argument("--calibrate", action="store_true",
                        help="calibrate the ddsp model's level against FluidR3 first and write it into its config.json")
    parser.add_argument("--calibration-pieces", type=int, default=12)
    args = parser.parse_args()

    from ostinato import render

    if args.calibrate:
        calibrate_model(args)

    engines = {"FluidR3": lambda: render.get_renderer("soundfont")}
    tim = timgm6mb()
    if tim is not None:
        engines["TimGM6mb"] = lambda: render.get_renderer("soundfont", soundfont=tim)
    engines["ddsp"] = lambda: render.get_renderer("ddsp", model=args.model)
    rows: dict[str, list[dict]] = {name: [] for name in engines}
    with tempfile.TemporaryDirectory() as tmp:
        tables = pieces(Path(tmp), args.pieces, args.seconds)
    reference: dict[str, np.ndarray] = {}
    for name, make in engines.items():
        with make() as engine:
            for piece, table in tables:
                audio = engine.render(table, args.rate)
                if name == "FluidR3":
                    reference[piece] = audio
                ref = reference[piece]
                n = min(audio.shape[1], ref.shape[1])
                rows[name].append({
                    "piece": piece,
                    "hf_db": 10 * np.log10(max(high_band_energy(audio, args.rate), 1e-30)
                                           / max(high_band_energy(ref, args.rate), 1e-30)),
                    "lr_corr": lr_correlation(audio),
                    "lufs": integrated_lufs(audio, args.rate),
                    "d_lufs": integrated_lufs(audio, args.rate) - integrated_lufs(ref, args.rate),
                    "stft": render.stft_distance(audio[:, :n], ref[:, :n]),
                })
    print(f"render fidelity at {args.rate} Hz: {len(tables)} held-out chorales with GM instruments and drums, "
          f"{args.seconds:g} s each; reference FluidSynth + FluidR3_GM")
    print(f"  {'engine':9s} {'piece':34s} {'hf_db':>7s} {'lr_corr':>8s} {'lufs':>7s} {'d_lufs':>7s} {'stft':>7s}")
    for name, results in rows.items():
        for r in results:
            print(f"  {name:9s} {r['piece'][:34]:34s} {r['hf_db']:7.1f} {r['lr_corr']:8.3f} {r['lufs']:7.2f} "
                  f"{r['d_lufs']:7.2f} {r['stft']:7.3f}")
    print(f"  {'engine':9s} {'mean':34s} {'hf_db':>7s} {'lr_corr':>8s} {'lufs':>7s} {'d_lufs':>7s} {'stft':>7s}")
    for name, results in rows.items():
        mean = {k: float(np.mean([r[k] for r in results])) for k in ("hf_db", "lr_corr", "lufs", "d_lufs", "stft")}
        print(f"  {name:9s} {'':34s} {mean['hf_db']:7.1f} {mean['lr_corr']:8.3f} {mean['lufs']:7.2f} "
              f"{mean['d_lufs']:7.2f} {mean['stft']:7.3f}")
    hit_rows = {name: hit_figures(make, args.rate) for name, make in engines.items()}
    print("single hits at velocity 100 (kick 36, snare 38, crash 49 alone; piano C4 held 1 s)")
    print(f"  {'engine':9s} {'kick fall s':>11s} {'snare fall s':>12s} {'crash flatness':>14s} "
          f"{'piano attack s':>14s} {'piano peak s':>12s}")
    for name, h in hit_rows.items():
        print(f"  {name:9s} {h['kick']:11.3f} {h['snare']:12.3f} {h['crash']:14.4f} {h['piano']:14.3f} "
              f"{h['piano_peak']:12.3f}")
    ref, ddsp = hit_rows["FluidR3"], hit_rows["ddsp"]
    print(f"ddsp / FluidR3: kick fall {ddsp['kick'] / ref['kick']:.2f}, snare fall {ddsp['snare'] / ref['snare']:.2f} "
          f"(target <= 2); crash flatness {ddsp['crash'] / ref['crash']:.2f} (target 0.5..2); "
          f"piano attack {ddsp['piano'] * 1000:.0f} ms (target <= 50)")
    if "TimGM6mb" in rows:
        ddsp_stft = np.mean([r["stft"] for r in rows["ddsp"]])
        tim_stft = np.mean([r["stft"] for r in rows["TimGM6mb"]])
        print(f"ddsp / TimGM6mb STFT distance to FluidR3: {ddsp_stft / tim_stft:.3f} (target <= 1)")


HIT_ONSET_S = 0.1


def hit_figures(make_engine, rate: int) -> dict[str, float]:
    """Kick and snare fall times, crash flatness and piano peak time of one engine (see the module doc)."""
    from ostinato.events import NoteTable
    from ostinato.render.envelope import attack_time_s, fall_time_s, peak_time_s, spectral_flatness

    def alone(pitch: int, program: int, is_drum: bool, length_s: float):
        return NoteTable.from_seconds([HIT_ONSET_S], [HIT_ONSET_S + length_s], [pitch], [100], program, is_drum)

    with make_engine() as engine:
        kick = engine.render(alone(36, 0, True, 0.1), rate)
        snare = engine.render(alone(38, 0, True, 0.1), rate)
        crash = engine.render(alone(49, 0, True, 0.1), rate)
        piano = engine.render(alone(60, 0, False, 1.0), rate)
    return {"kick": fall_time_s(kick, rate, HIT_ONSET_S), "snare": fall_time_s(snare, rate, HIT_ONSET_S),
            "crash": spectral_flatness(crash, rate, HIT_ONSET_S, 0.5), "piano": attack_time_s(piano, rate, HIT_ONSET_S),
            "piano_peak": peak_time_s(piano, rate, HIT_ONSET_S)}


def calibrate_model(args) -> None:
    """Calibrate the ddsp model's gains on training chorales and write them into its config.json."""
    import dataclasses

    from ostinato import render
    from ostinato.events.atomic import write_text_atomic
    from ostinato.render.ddsp.calibration import calibrate, velocity_exponents
    from ostinato.render.ddsp.engine import DEFAULT_MODEL, DDSPRenderer
    from ostinato.render.model_folder import CONFIG_FILE, model_dir

    folder = model_dir(args.model or DEFAULT_MODEL)
    ddsp = DDSPRenderer(folder)
    with tempfile.TemporaryDirectory() as tmp, render.get_renderer("soundfont") as reference:
        exponent, exponents = velocity_exponents(ddsp, reference, ddsp.config.sample_rate_hz)
        tables = [t for _, t in pieces(Path(tmp), args.calibration_pieces, args.seconds, split="train")]
        gains, output_db = calibrate(ddsp, reference, tables, ddsp.config.sample_rate_hz, exponent=exponent,
                                     exponents=exponents)
    config = dataclasses.replace(ddsp.config, instrument_gain_db=gains, output_gain_db=output_db,
                                 velocity_exponent=exponent, instrument_velocity_exponent=exponents)
    write_text_atomic(folder / CONFIG_FILE, config.to_json() + "\n")
    print(f"calibrated on {len(tables)} training chorales ({args.seconds:g} s): velocity_exponent {exponent:.2f} "
          f"({min(exponents.values()):+.2f}..{max(exponents.values()):+.2f} per instrument), "
          f"output_gain_db {output_db:+.2f}, "
          f"instrument_gain_db {min(gains.values()):+.2f}..{max(gains.values()):+.2f} over {len(gains)} instruments; "
          f"written to {folder / CONFIG_FILE}")


if __name__ == "__main__":
    main()
