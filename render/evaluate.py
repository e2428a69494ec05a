"""Evaluating a renderer: spectral distance to reference audio, speed, and note F1 of a transcription.

    request = EvaluateRenderRequest(files=("a.mid",), engine="ddsp", reference="soundfont")
    record = evaluate_render(request)      # the figures ``ostinato evaluate render`` prints

- ``stft_distance``: :func:`render.spectral.stft_distance` (DESIGN.md "Measuring") between the
  render and the reference (a FluidSynth render of the same notes, or a recording).
- ``realtime_factor``: seconds of audio made per second of wall time (above 1: faster than real time).
- ``note_f1``: mir_eval's note F1 (onset within 50 ms; and onset + offset) of the notes that
  basic-pitch's ONNX model transcribes from the render, against the input notes. Needs the
  optional ``[eval]`` extra (basic-pitch without TensorFlow, onnxruntime, mir_eval).
"""

from __future__ import annotations

import logging
import os
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ostinato.events import AUDIO_SUFFIXES
from ostinato.events.errors import InputError, UsageError

EXTRA_MISSING = ("note F1 needs the optional [eval] extra: pip install 'ostinato[eval]' "
                 "(basic-pitch --no-deps, onnxruntime, mir_eval); or pass --no-f1")
SOUNDFONT_REFERENCE = "soundfont"


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


def _cause(exc: BaseException) -> str:
    """Why an import failed, in one short line (``No module named 'pkg_resources'``)."""
    return " ".join(str(exc).split())[:200] or type(exc).__name__


def _import(name: str):
    """``importlib.import_module(name)``; an ImportError says which of ours was wanted and why it failed."""
    import importlib

    try:
        return importlib.import_module(name)
    except ImportError as exc:
        raise ImportError(f"{name}: {_cause(exc)}", name=name) from exc


def resample(x: np.ndarray, sr_orig: float, sr_new: float, axis: int = -1, **_options) -> np.ndarray:
    """``resampy.resample``'s signature over scipy's polyphase resampler (for basic-pitch, see :func:`basic_pitch`)."""
    from fractions import Fraction

    from scipy.signal import resample_poly

    ratio = Fraction(round(sr_new), round(sr_orig))
    return resample_poly(np.asarray(x), ratio.numerator, ratio.denominator, axis=axis)


def _resampy_or_stand_in() -> None:
    """Make ``import resampy`` work for basic-pitch, which imports it at the top of a module but only
    uses it to sonify notes (never here). resampy before 0.4.3 imports ``pkg_resources``, which
    setuptools 80 and later no longer ship: then a stand-in module whose ``resample`` is scipy's."""
    import sys
    import types

    try:
        import resampy  # noqa: F401
    except Exception as exc:   # ImportError, or whatever its own imports raise
        log = logging.getLogger("ostinato")
        log.debug("resampy cannot be imported (%s); basic-pitch gets scipy's resampler instead", _cause(exc))
        stand_in = types.ModuleType("resampy")
        stand_in.resample = resample
        stand_in.__ostinato_stand_in__ = True
        sys.modules["resampy"] = stand_in


def basic_pitch():
    """basic-pitch's ``predict`` and ``Model`` and its ONNX model path (its import warns about every
    backend it lacks, TensorFlow included: silenced, as only onnxruntime is used).

    Raises:
        RuntimeError: the ``[eval]`` extra is missing (the message says how to install it, and what
            failed to import).
    """
    previous = logging.root.manager.disable
    logging.disable(logging.WARNING)
    try:
        _resampy_or_stand_in()
        _import("onnxruntime")
        model_path = _import("basic_pitch").ICASSP_2022_MODEL_PATH
        inference = _import("basic_pitch.inference")
        model_class, predict = inference.Model, inference.predict
    except ImportError as exc:
        raise RuntimeError(f"{EXTRA_MISSING} (cannot import {exc})") from exc
    finally:
        logging.disable(previous)
    if not str(model_path).endswith(".onnx"):
        raise RuntimeError(f"basic-pitch chose {model_path}, not its ONNX model: {EXTRA_MISSING}")
    return predict, model_class, model_path


def check_eval_extra() -> None:
    """Raise RuntimeError(:data:`EXTRA_MISSING` and the cause) unless note F1 can be measured (mir_eval,
    basic-pitch, onnxruntime)."""
    try:
        _import("mir_eval")
    except ImportError as exc:
        raise RuntimeError(f"{EXTRA_MISSING} (cannot import {exc})") from exc
    basic_pitch()


class Transcriber:
    """basic-pitch's ONNX model, loaded once, transcribing any number of renders (see :func:`transcribe`)."""

    def __init__(self):
        self.predict, model_class, model_path = basic_pitch()
        self.model = model_class(model_path)

    def __call__(self, audio: np.ndarray, sample_rate_hz: int) -> tuple[np.ndarray, np.ndarray]:
        import contextlib
        import io
        import tempfile

        from .audio_io import write_audio

        mono = np.asarray(audio, np.float32)
        mono = mono.mean(0) if mono.ndim == 2 else mono
        with tempfile.TemporaryDirectory(prefix="ostinato-transcribe-") as tmp:
            path = os.path.join(tmp, "audio.wav")
            write_audio(mono, sample_rate_hz, path)
            with contextlib.redirect_stdout(io.StringIO()):   # it prints "Predicting MIDI for ..."
                _, _, notes = self.predict(path, self.model)
        notes = sorted(notes, key=lambda e: (e[0], e[2]))
        if not notes:
            return np.zeros((0, 2)), np.zeros(0)
        return np.array([[e[0], e[1]] for e in notes], np.float64), np.array([e[2] for e in notes], np.float64)


def transcribe(audio: np.ndarray, sample_rate_hz: int) -> tuple[np.ndarray, np.ndarray]:
    """Notes of ``audio`` ([n_channels, n_samples] or [n_samples]) by basic-pitch's ONNX model
    (basic-pitch's default thresholds; the audio is mixed to mono and resampled to 22050 Hz by it).
    For many renders, make one :class:`Transcriber` and call it instead (the model loads once).

    Returns:
        ``(intervals_s [n, 2], pitches_midi [n])``, sorted by onset.

    Raises:
        RuntimeError: the ``[eval]`` extra is missing (the message says how to install it).
    """
    return Transcriber()(audio, sample_rate_hz)


# ---------------------------------------------------------------------------- the request
@dataclass(frozen=True)
class EvaluateRenderRequest:
    """What ``ostinato evaluate render`` measures (validated: a bad value is a :class:`UsageError`).

    Attributes:
        files: MIDI/ABC/MusicXML files to render.
        engine: the engine measured; model: its model folder (ddsp, wavenet); soundfont: its
            SoundFont (soundfont engine).
        reference: ``"soundfont"`` (FluidSynth's default SoundFont renders the same notes),
            ``"soundfont:PATH.sf2"``, or a folder of audio files named like the inputs.
        sample_rate_hz: the rate of the renders (and of the reference audio).
        measure_note_f1: also transcribe each render and measure its note F1 (the ``[eval]`` extra).
    """

    files: tuple[str, ...]
    engine: str
    reference: str
    model: str | None = None
    soundfont: str | None = None
    sample_rate_hz: int = 44100
    measure_note_f1: bool = True

    def __post_init__(self) -> None:
        from .base import ENGINES, check_sample_rate

        object.__setattr__(self, "files", tuple(os.fspath(f) for f in self.files))

        def usage(problem: str) -> UsageError:
            return UsageError("evaluate render", problem)

        if self.engine not in ENGINES:
            raise usage(f"unknown engine {self.engine!r} (choose {', '.join(sorted(ENGINES))})")
        if self.soundfont and self.engine != "soundfont":
            raise usage("--soundfont needs --engine soundfont")
        if self.model and self.engine == "soundfont":
            raise usage("--model is for the ddsp/wavenet engines")
        try:
            check_sample_rate(self.sample_rate_hz)
        except ValueError as exc:
            raise usage(str(exc)) from None
        if not (self.reference == SOUNDFONT_REFERENCE or self.reference.startswith(SOUNDFONT_REFERENCE + ":")
                or Path(self.reference).is_dir()):
            raise usage(f"--reference must be 'soundfont', 'soundfont:PATH' or a folder of audio files, "
                        f"got {self.reference!r}")

    def engine_options(self) -> dict:
        """The keyword arguments of ``get_renderer(self.engine, ...)``."""
        options = {}
        if self.model:
            options["model"] = self.model
        if self.soundfont:
            options["soundfont"] = self.soundfont
        return options


class ReferenceAudio:
    """The reference of each piece: a FluidSynth render of its notes (the renderer built once), or
    the audio file of the same name in a folder."""

    def __init__(self, reference: str, sample_rate_hz: int):
        self.reference, self.sample_rate_hz = reference, sample_rate_hz
        self.renderer = None

    def __call__(self, path: str, table) -> np.ndarray:
        """float32 ``[n_channels, n_samples]`` audio of the piece read from ``path`` (as ``table``)."""
        if self.reference == SOUNDFONT_REFERENCE or self.reference.startswith(SOUNDFONT_REFERENCE + ":"):
            if self.renderer is None:
                from . import get_renderer

                sf = self.reference.split(":", 1)[1] if ":" in self.reference else None
                self.renderer = get_renderer("soundfont", **({"soundfont": sf} if sf else {}))
            return self.renderer.render(table, self.sample_rate_hz)
        folder = Path(self.reference)
        for suffix in AUDIO_SUFFIXES:
            candidate = folder / (Path(path).stem + suffix)
            if candidate.is_file():
                import soundfile

                try:
                    audio, rate = soundfile.read(candidate, dtype="float32", always_2d=True)
                except Exception as exc:
                    raise InputError(candidate, f"cannot read audio: {exc}") from None
                if rate != self.sample_rate_hz:
                    raise InputError(candidate, f"sample rate {rate} Hz, but the render is at {self.sample_rate_hz} "
                                                f"Hz (pass --sample-rate {rate})")
                return audio.T
        raise InputError(path, f"no reference audio {Path(path).stem}{{{','.join(AUDIO_SUFFIXES)}}} in {folder}")

    def close(self) -> None:
        if self.renderer is not None:
            self.renderer.close()
            self.renderer = None


def evaluate_render(request: EvaluateRenderRequest, *,
                    on_error: Callable[[str, Exception], None] | None = None, quiet: bool = False) -> dict:
    """Render every file, measure it against its reference; the record ``evaluate render`` prints.

    The record: ``engine``, ``reference``, ``n_pieces`` (measured), ``n_failed``, the means of
    ``stft_distance``, ``note_f1`` and ``note_f1_offset`` (None without ``measure_note_f1``, or when no piece
    was measured), ``realtime_factor`` (all audio over all render time) and ``pieces`` (each one's figures).

    Args:
        on_error: called with (file, exception) for a file that fails; it is counted in ``n_failed``
            and the others go on (raised without one).
        quiet: no progress bar (there is one on a terminal otherwise: files, ETA).
    Raises:
        events.InputError: note F1 was asked for without the ``[eval]`` extra (checked before the
            renderer loads), or the engine's model cannot be loaded.
    """
    from ostinato import events
    from ostinato.events.console import progress

    from . import get_renderer
    from .spectral import stft_distance

    if request.measure_note_f1:
        try:
            check_eval_extra()
        except RuntimeError as exc:   # the message names what failed to import
            raise InputError("evaluate render", str(exc)) from None
    if request.engine != "soundfont":   # as `render` does: one thread renders faster than many on a busy machine
        import torch

        torch.set_num_threads(1)
    renderer = get_renderer(request.engine, **request.engine_options())
    transcriber = Transcriber() if request.measure_note_f1 else None
    reference = ReferenceAudio(request.reference, request.sample_rate_hz)
    results, failed, rate = [], 0, request.sample_rate_hz
    bar = progress(request.files, desc="evaluate render", unit="file", quiet=quiet)
    with renderer:
        for path in bar:
            try:
                table = events.read(path)
                audio, seconds = timed_render(renderer, table, rate)
                result = RenderResult(str(path), stft_distance(audio, reference(path, table)),
                                      realtime_factor(audio.shape[-1], rate, seconds), audio.shape[-1] / rate, seconds)
                if transcriber is not None:
                    estimated = transcriber(audio, rate)
                    result.note_f1 = note_f1(table, estimated)
                    result.note_f1_offset = note_f1(table, estimated, with_offsets=True)
                results.append(result)
            except Exception as exc:  # a batch survives a bad file
                if on_error is None:
                    raise
                failed += 1
                bar.clear()
                on_error(str(path), exc)
    bar.close()
    reference.close()

    def mean(values) -> float | None:
        return float(np.mean(values)) if results else None

    return {
        "engine": request.engine, "reference": request.reference, "n_pieces": len(results), "n_failed": failed,
        "stft_distance": mean([r.stft_distance for r in results]),
        "realtime_factor": (sum(r.audio_s for r in results) / max(sum(r.render_s for r in results), 1e-9)
                            if results else None),
        "note_f1": mean([r.note_f1 for r in results]) if request.measure_note_f1 else None,
        "note_f1_offset": mean([r.note_f1_offset for r in results]) if request.measure_note_f1 else None,
        "pieces": [{"path": r.key, "stft_distance": r.stft_distance, "realtime_factor": r.realtime_factor,
                    "note_f1": r.note_f1, "note_f1_offset": r.note_f1_offset} for r in results],
    }
