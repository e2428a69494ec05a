"""The ``ddsp`` engine: a trained :class:`DDSPModel` rendering note tables chunk by chunk.

Per chunk of frames, the notes sounding in it become voices, are synthesized at their absolute
sample positions (so chunk seams are exact), summed, and passed through the reverb, whose tail
is carried into the next chunk. The native-rate mono mix is resampled with soxr (streaming,
"HQ") to the requested rate and copied to both channels.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np
import torch

from ..base import DEFAULT_CHUNK_S, N_CHANNELS, Renderer, check_sample_rate, n_output_samples
from ..instruments import instrument_map
from ..model_folder import load_model_folder
from .config import DDSPConfig
from .features import chunk_voices, voices_of
from .model import DDSPModel

DEFAULT_MODEL = "ddsp-fluidr3"


def load_model(model: str | os.PathLike | None = None) -> DDSPModel:
    """Load a DDSP model folder or shipped model name (default ``ddsp-fluidr3``); nothing is unpickled."""
    return load_model_folder(DEFAULT_MODEL if model is None else model, config_class=DDSPConfig, build=DDSPModel,
                             engine="ddsp")


class DDSPRenderer(Renderer):
    """Render with a DDSP model.

    Args:
        model: a model folder or shipped model name (default: the shipped ``ddsp-fluidr3``),
            or a :class:`DDSPModel` instance.
        chunk_frames: control frames synthesized at once (bounds memory).
    """

    name = "ddsp"

    def __init__(self, model: str | os.PathLike | DDSPModel | None = None, *, chunk_frames: int = 128):
        self.model = model if isinstance(model, DDSPModel) else load_model(model)
        self.model.eval()
        self.config = self.model.config
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        self.chunk_frames = int(chunk_frames)
        self._map = instrument_map(self.config.trained_instruments)

    def native(self, table, *, chunk_s: float = DEFAULT_CHUNK_S) -> Iterator[np.ndarray]:
        """Mono float32 blocks at the model's native rate; they concatenate to
        ``n_output_samples(table.duration_s, native rate)`` samples."""
        c = self.config
        hop = c.hop_samples
        total = n_output_samples(table.duration_s, c.sample_rate_hz, self.tail_s)
        voices = voices_of(table, c, self._map)
        n_frames_total = math.ceil(total / hop)
        step = max(1, min(self.chunk_frames, math.ceil(chunk_s * c.frame_rate_hz)))
        tail = torch.zeros(0)
        produced = 0
        basis_cache: dict[int, torch.Tensor] = {}
        ir_spectra: dict[int, torch.Tensor] = {}
        with torch.inference_mode():
            for a in range(0, n_frames_total, step):
                n = min(step, n_frames_total - a)
                dry = self.model.dry_grouped(chunk_voices(voices, a, a + n + 1), a, n, basis_cache)  # [n * hop]
                wet = self.model.reverb(dry, ir_spectra)  # [n * hop + n_ir - 1]
                wet[: tail.shape[0]] += tail
                tail = wet[n * hop:].clone()
                block = wet[: n * hop].numpy().astype(np.float32)
                keep = min(block.shape[0], total - produced)
                produced += keep
                yield block[:keep]

    def stream(self, table, sample_rate_hz: int = 44100, *, chunk_s: float = DEFAULT_CHUNK_S) -> Iterator[np.ndarray]:
        sample_rate_hz = check_sample_rate(sample_rate_hz)
        native_hz = self.config.sample_rate_hz
        total = n_output_samples(table.duration_s, sample_rate_hz, self.tail_s)
        if sample_rate_hz == native_hz:
            for block in self.native(table, chunk_s=chunk_s):
                yield np.broadcast_to(block, (N_CHANNELS, block.shape[0])).copy()
            return
        import soxr

        resampler = soxr.ResampleStream(native_hz, sample_rate_hz, 1, dtype="float32", quality="HQ")
        produced = 0
        blocks = self.native(table, chunk_s=chunk_s)
        pending = next(blocks, None)
        while pending is not None:
            following = next(blocks, None)
            out = resampler.resample_chunk(pending, last=following is None)
            out = out[: max(0, total - produced)]
            if following is None and produced + out.shape[0] < total:
                out = np.concatenate([out, np.zeros(total - produced - out.shape[0], np.float32)])
            produced += out.shape[0]
            yield np.broadcast_to(out, (N_CHANNELS, out.shape[0])).copy()
            pending = following
