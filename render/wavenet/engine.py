"""The ``wavenet`` engine: a trained :class:`WaveNet` sampling a note table's audio.

The piece is cut into segments generated in parallel by the incremental generator and joined
with crossfades (:func:`render.wavenet.generate.generate_pieces`); the native-rate mono audio is
resampled with soxr (streaming, "HQ") to the requested rate and copied to both channels.
Sampling is seeded: the same model, piece, seed and settings give the same audio on one machine.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Iterator

import numpy as np
import torch

from ..base import DEFAULT_CHUNK_S, N_CHANNELS, Renderer, check_sample_rate, n_output_samples
from ..instruments import instrument_map
from ..model_folder import load_model_folder
from .conditioning import conditioning_of
from .config import WaveNetConfig
from .generate import GenerationSettings, generate_pieces
from .model import WaveNet


def load_model(model: str | os.PathLike | None) -> WaveNet:
    """Load a WaveNet model folder (safetensors + JSON only; nothing is unpickled)."""
    from ostinato.events import InputError

    if model is None:
        raise InputError("wavenet", "no model is shipped: give --model DIR, a folder made by "
                                    "`ostinato train renderer --engine wavenet` (see render/wavenet/MODEL_CARD.md)")
    return load_model_folder(model, config_class=WaveNetConfig, build=WaveNet, engine="wavenet")


class WaveNetRenderer(Renderer):
    """Render with a WaveNet model.

    Args:
        model: a model folder, or a :class:`WaveNet` instance (no model is shipped).
        temperature, segment_s, crossfade_s, warmup_s, max_batch, seed, accelerate: see
            :class:`render.wavenet.generate.GenerationSettings` (``max_batch`` default: 32 on a CPU,
            256 on CUDA).
        device: ``auto`` (CUDA when available), ``cpu`` or ``cuda``.
        announce: print the measured speed and the expected time of each piece on stderr when
            running on a CPU (the ``render`` command does, unless ``-q``).
    """

    name = "wavenet"

    def __init__(self, model: str | os.PathLike | WaveNet | None = None, *, temperature: float = 1.0,
                 segment_s: float = 1.0, crossfade_s: float = 0.05, warmup_s: float = 0.2, max_batch: int | None = None,
                 seed: int = 0, device: str = "auto", accelerate: str = "none", announce: bool = False):
        net = model if isinstance(model, WaveNet) else load_model(model)
        if device == "auto":
            device = "cuda" if torch.cuda.is_available() else "cpu"
        if device not in ("cpu", "cuda"):
            raise ValueError(f"device must be auto, cpu or cuda, got {device!r}")
        self.model = net.to(device).eval()
        if max_batch is None:  # segments sampled together: a GPU wants many rows, a CPU gains little from them
            max_batch = 256 if device == "cuda" else 32
        self.config = self.model.config
        self.settings = GenerationSettings(temperature=temperature, segment_s=segment_s, crossfade_s=crossfade_s,
                                           warmup_s=warmup_s, max_batch=max_batch, seed=seed, accelerate=accelerate)
        self.announce = announce
        self._map = instrument_map(self.config.trained_instruments)

    def _speed_note(self, audio_s: float):
        """A progress callback that prints, once, the measured speed and the expected time (CPU only)."""
        if not self.announce or self.model.device.type != "cpu":
            return None
        marks: list[tuple[int, float]] = []

        def note(info: dict) -> None:
            marks.append((info["done_steps"], info["elapsed_s"]))
            if len(marks) != 2:  # the first block includes setting up; measure the second
                return
            steps_per_s = (marks[1][0] - marks[0][0]) / max(marks[1][1] - marks[0][1], 1e-9)
            total_s = marks[1][1] + (info["total_steps"] - marks[1][0]) / max(steps_per_s, 1e-9)
            print(f"ostinato: wavenet on a CPU generates {steps_per_s * info['segments']:,.0f} samples/s here "
                  f"({info['segments']} segment(s) in parallel, {self.config.sample_rate_hz} Hz): this piece "
                  f"({audio_s:.1f} s) takes about {_duration(total_s)}, {total_s / max(audio_s, 1e-9):.0f}x its "
                  f"length. A CUDA GPU renders far faster.", file=sys.stderr, flush=True)

        return note

    def native_batch(self, tables) -> Iterator[tuple[int, np.ndarray]]:
        """``(table index, mono float32 block)`` at the native rate for several tables, their
        segments generated together; each table's blocks come in order and make
        ``n_output_samples(table.duration_s, native rate)`` samples."""
        c = self.config
        pieces = [(conditioning_of(t, c.frame_rate_hz, self._map),
                   n_output_samples(t.duration_s, c.sample_rate_hz, self.tail_s)) for t in tables]
        audio_s = sum(n for _, n in pieces) / c.sample_rate_hz
        progress = self._speed_note(audio_s)
        yield from generate_pieces(self.model, pieces, self.settings, progress)

    def native(self, table) -> Iterator[np.ndarray]:
        """Mono float32 blocks of one table at the native rate."""
        for _, block in self.native_batch([table]):
            yield block

    def stream(self, table, sample_rate_hz: int = 44100, *, chunk_s: float = DEFAULT_CHUNK_S) -> Iterator[np.ndarray]:
        sample_rate_hz = check_sample_rate(sample_rate_hz)
        total = n_output_samples(table.duration_s, sample_rate_hz, self.tail_s)
        for block in _resampled(self.native(table), self.config.sample_rate_hz, sample_rate_hz, total):
            yield np.broadcast_to(block, (N_CHANNELS, block.shape[0])).copy()

    def render_batch(self, tables, sample_rate_hz: int = 44100) -> list[np.ndarray]:
        """Render several tables at once (their segments share batches): float32 [2, n_samples] each."""
        sample_rate_hz = check_sample_rate(sample_rate_hz)
        parts: list[list[np.ndarray]] = [[] for _ in tables]
        for i, block in self.native_batch(list(tables)):
            parts[i].append(block)
        out = []
        for table, blocks in zip(tables, parts, strict=True):
            total = n_output_samples(table.duration_s, sample_rate_hz, self.tail_s)
            mono = np.concatenate(list(_resampled(iter(blocks), self.config.sample_rate_hz, sample_rate_hz, total)))
            out.append(np.broadcast_to(mono, (N_CHANNELS, mono.shape[0])).copy())
        return out


def _resampled(blocks: Iterator[np.ndarray], native_hz: int, sample_rate_hz: int, total: int) -> Iterator[np.ndarray]:
    """Mono native-rate blocks resampled (soxr, streaming) to exactly ``total`` samples at ``sample_rate_hz``."""
    if sample_rate_hz == native_hz:
        yield from blocks
        return
    import soxr

    resampler = soxr.ResampleStream(native_hz, sample_rate_hz, 1, dtype="float32", quality="HQ")
    produced = 0
    pending = next(blocks, None)
    while pending is not None:
        following = next(blocks, None)
        out = resampler.resample_chunk(pending, last=following is None)
        out = out[: max(0, total - produced)]
        if following is None and produced + out.shape[0] < total:
            out = np.concatenate([out, np.zeros(total - produced - out.shape[0], np.float32)])
        produced += out.shape[0]
        yield out
        pending = following


def _duration(seconds: float) -> str:
    if seconds < 90:
        return f"{math.ceil(seconds)} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"

