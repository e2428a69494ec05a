"""Evaluating a renderer: spectral distance to reference audio, speed, and note F1 of a transcription.

    result = evaluate_piece(renderer, table, reference_audio, sample_rate_hz=44100)
    result.stft_distance, result.realtime_factor

- ``stft_distance``: :func:`render.spectral.stft_distance` (DESIGN.md "Measuring") between the
  render and the reference (a FluidSynth render of the same notes, or a recording).
- ``realtime_factor``: seconds of audio made per second of wall time (above 1: faster than real time).
- ``note_f1``: mir_eval's note F1 (onset within 50 ms; and onset + offset) of the notes that
  basic-pitch's ONNX model transcribes from the render, against the input notes. Needs the
  optional ``[eval]`` extra (basic-pitch without TensorFlow, onnxruntime, mir_eval).
"""

from __future__ import annotations

import argparse
import logging
import time
from dataclasses import dataclass

import numpy as np

log = logging.getLogger("ostinato")

EXTRA_MISSING = ("note F1 needs the optional [eval] extra: pip install 'ostinato[eval]' "
                 "(basic-pitch --no-deps, onnxruntime, mir_eval); or pass --no-f1")
AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")


@dataclass
class RenderResult:
    """Figures of one rendered piece."""

    key: str
    stft_distance: float
    realtime_factor: float
    audio_s: float
    render_s: float
    note_f1: float | None = None
    note_f1_offset: float | None = None


def timed_render(renderer, table, sample_rate_hz: int) -> tuple[np.ndarray, float]:
    """``(audio float32 [2, n_samples], wall seconds)`` of one render."""
    start = time.perf_counter()
    audio = renderer.render(table, sample_rate_hz)
    return audio, time.perf_counter() - start


def realtime_factor(n_samples: int, sample_rate_hz: int, render_s: float) -> float:
    """Seconds of audio per second of wall time."""
    return (n_samples / sample_rate_hz) / max(render_s, 1e-9)


# ---------------------------------------------------------------------------- note F1
def note_f1(reference, estimated, *, onset_tolerance_s: float = 0.05, with_offsets: bool = False) -> float:
    """mir_eval note F1 of estimated notes against reference notes.

    Args:
        reference, estimated: a NoteTable, or ``(intervals_s [n, 2], pitches_midi [n])``.
        with_offsets: also require the offset within 20% of the note (or 50 ms), as mir_eval does.
    """
    import mir_eval

    def arrays(notes):
        if hasattr(notes, "onset_s"):
            keep = ~notes.is_drum
            intervals = np.stack([notes.onset_s[keep], np.maximum(notes.offset_s[keep], notes.onset_s[keep] + 1e-3)], 1)
            return intervals.astype(np.float64), notes.pitch[keep].astype(np.float64)
        intervals, pitches = notes
        return np.asarray(intervals, np.float64).reshape(-1, 2), np.asarray(pitches, np.float64)

    ref_i, ref_p = arrays(reference)
    est_i, est_p = arrays(estimated)
    if len(ref_p) == 0 and len(est_p) == 0:
        return 1.0
    if len(ref_p) == 0 or len(est_p) == 0:
        return 0.0
    hz = mir_eval.util.midi_to_hz
    _, _, f1, _ = mir_eval.transcription.precision_recall_f1_overlap(
        ref_i, hz(ref_p), est_i, hz(est_p), onset_tolerance=onset_tolerance_s,
        offset_ratio=0.2 if with_offsets else None)
    return float(f1)


def _basic_pitch():
    """basic-pitch's ``predict`` and its ONNX model path (its import warns about every backend it
    lacks, TensorFlow included: silenced, as only onnxruntime is used)."""
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        import onnxruntime  # noqa: F401
        from basic_pitch import ICASSP_2022_MODEL_PATH
        from basic_pitch.inference import Model, predict
    except ImportError:
        raise RuntimeError(EXTRA_MISSING) from None
    finally:
        logging.disable(previous)
    if not str(ICASSP_2022_MODEL_PATH).endswith(".onnx"):
        raise RuntimeError(f"basic-pitch chose {ICASSP_2022_MODEL_PATH}, not its ONNX model: {EXTRA_MISSING}")
    return predict, Model, ICASSP_2022_MODEL_PATH


_MODEL: dict = {}


def transcribe(audio: np.ndarray, sample_rate_hz: int) -> tuple[np.ndarray, np.ndarray]:
    """Notes of ``audio`` ([n_channels, n_samples] or [n_samples]) by basic-pitch's ONNX model
    (basic-pitch's default thresholds; the audio is mixed to mono and resampled to 22050 Hz by it).

    Returns:
        ``(intervals_s [n, 2], pitches_midi [n])``, sorted by onset.

    Raises:
        RuntimeError: the ``[eval]`` extra is missing (the message says how to install it).
    """
    import contextlib
    import io
    import os
    import tempfile

    from .audio_io import write_audio

    predict, Model, model_path = _basic_pitch()
    if "model" not in _MODEL:
        _MODEL["model"] = Model(model_path)
    mono = np.asarray(audio, np.float32)
    mono = mono.mean(0) if mono.ndim == 2 else mono
    with tempfile.TemporaryDirectory(prefix="ostinato-transcribe-") as tmp:
        path = os.path.join(tmp, "audio.wav")
        write_audio(mono, sample_rate_hz, path)
        with contextlib.redirect_stdout(io.StringIO()):   # it prints "Predicting MIDI for ..."
            _, _, events = predict(path, _MODEL["model"])
    events = sorted(events, key=lambda e: (e[0], e[2]))
    if not events:
        return np.zeros((0, 2)), np.zeros(0)
    return (np.array([[e[0], e[1]] for e in events], np.float64), np.array([e[2] for e in events], np.float64))


# ---------------------------------------------------------------------------- the command
def add_render_parser(what, common: argparse.ArgumentParser) -> None:
    """Add ``evaluate render``."""
    p = what.add_parser(
        "render", parents=[common], help="spectral distance, speed and note F1 of a renderer",
        description="Render MIDI files with an engine and measure the multi-resolution STFT distance to reference "
                    "audio (a FluidSynth render of the same notes, or the files of the same name in a folder), "
                    "the real-time factor, and the note F1 of a basic-pitch transcription of the render against "
                    "the input notes (the optional [eval] extra).")
    p.add_argument("files", nargs="+", metavar="FILES", help="MIDI/ABC/MusicXML files")
    p.add_argument("--engine", required=True, help="ddsp, soundfont, ...")
    p.add_argument("--model", metavar="DIR", help="the engine's model folder (ddsp)")
    p.add_argument("--soundfont", metavar="SF2", help="the SoundFont of the soundfont engine")
    p.add_argument("--reference", required=True, metavar="soundfont|DIR",
                   help="'soundfont' (render the same notes with FluidSynth's default SoundFont), "
                        "'soundfont:PATH.sf2', or a folder of audio files named like the inputs")
    p.add_argument("--sample-rate", type=int, default=44100, metavar="HZ")
    p.add_argument("--no-f1", action="store_true", help="skip the transcription (no [eval] extra needed)")
    p.add_argument("--json", action="store_true", help="one JSON object on the last line of stdout")
    p.set_defaults(run=run_render_eval)


def _reference_audio(reference: str, path, table, sample_rate_hz: int, cache: dict) -> np.ndarray:
    from pathlib import Path

    from ostinato.events.errors import InputError

    if reference == "soundfont" or reference.startswith("soundfont:"):
        if "renderer" not in cache:
            from . import get_renderer

            sf = reference.split(":", 1)[1] if ":" in reference else None
            cache["renderer"] = get_renderer("soundfont", **({"soundfont": sf} if sf else {}))
        return cache["renderer"].render(table, sample_rate_hz)
    folder = Path(reference)
    if not folder.is_dir():
        raise InputError(reference, "--reference must be 'soundfont', 'soundfont:PATH' or a folder of audio files")
    for suffix in AUDIO_SUFFIXES:
        candidate = folder / (Path(path).stem + suffix)
        if candidate.is_file():
            import soundfile

            try:
                audio, rate = soundfile.read(candidate, dtype="float32", always_2d=True)
            except Exception as exc:
                raise InputError(candidate, f"cannot read audio: {exc}") from None
            if rate != sample_rate_hz:
                raise InputError(candidate, f"sample rate {rate} Hz, but the render is at {sample_rate_hz} Hz "
                                            f"(pass --sample-rate {rate})")
            return audio.T
    raise InputError(path, f"no reference audio {Path(path).stem}{{{','.join(AUDIO_SUFFIXES)}}} in {folder}")


def run_render_eval(args: argparse.Namespace) -> int:
    from ostinato import events
    from ostinato.events.console import print_json, print_table
    from ostinato.events.errors import InputError, report

    from . import get_renderer
    from .spectral import stft_distance

    if not args.no_f1:
        try:
            import mir_eval  # noqa: F401

            _basic_pitch()
        except (ImportError, RuntimeError):
            raise InputError("evaluate render", EXTRA_MISSING) from None
    options = {}
    if args.model:
        options["model"] = args.model
    if args.soundfont:
        options["soundfont"] = args.soundfont
    try:
        renderer = get_renderer(args.engine, **options)
    except (ValueError, TypeError) as exc:
        raise InputError("--engine", str(exc)) from None
    results, failed, cache = [], 0, {}
    rate = args.sample_rate
    with renderer:
        for path in args.files:
            try:
                table = events.read(path)
                audio, seconds = timed_render(renderer, table, rate)
                reference = _reference_audio(args.reference, path, table, rate, cache)
                result = RenderResult(str(path), stft_distance(audio, reference),
                                      realtime_factor(audio.shape[-1], rate, seconds), audio.shape[-1] / rate, seconds)
                if not args.no_f1:
                    estimated = transcribe(audio, rate)
                    result.note_f1 = note_f1(table, estimated)
                    result.note_f1_offset = note_f1(table, estimated, with_offsets=True)
                results.append(result)
            except Exception as exc:  # a batch survives a bad file
                failed += 1
                report(exc, debug=args.debug, source=str(path))
    if "renderer" in cache:
        cache["renderer"].close()
    if not results:
        return 1
    audio_s = sum(r.audio_s for r in results)
    record = {
        "engine": args.engine, "reference": args.reference, "n_pieces": len(results), "n_failed": failed,
        "stft_distance": float(np.mean([r.stft_distance for r in results])),
        "realtime_factor": audio_s / max(sum(r.render_s for r in results), 1e-9),
        "note_f1": None if args.no_f1 else float(np.mean([r.note_f1 for r in results])),
        "note_f1_offset": None if args.no_f1 else float(np.mean([r.note_f1_offset for r in results])),
        "pieces": [{"path": r.key, "stft_distance": r.stft_distance, "realtime_factor": r.realtime_factor,
                    "note_f1": r.note_f1, "note_f1_offset": r.note_f1_offset} for r in results],
    }
    if args.quiet == 0 or not args.json:
        rows = [(k, v) for k, v in record.items() if k != "pieces" and v is not None]
        print_table(f"render quality of {args.engine} against {args.reference}", rows)
    if args.json:
        print_json(record)
    return 1 if failed else 0
