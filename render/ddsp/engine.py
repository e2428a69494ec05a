"""The ``ddsp`` engine: a trained :class:`DDSPModel` rendering note tables chunk by chunk.

Per chunk of frames, the notes sounding in it become voices, are synthesized at their absolute
sample positions (so chunk seams are exact), summed, and passed through the reverb, whose tail
is carried into the next chunk. The file's performance data is honoured: the sustain pedal
lengthens notes, volume and expression scale them, pan places them (the file's CC10, else GM-style
defaults: :mod:`render.ddsp.performance`) and pitch bends bend them. The native-rate stereo mix
is scaled by the model's calibrated ``output_gain_db`` and resampled with soxr (streaming, "HQ")
to the requested rate.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterator

import numpy as np
import torch

from ..base import DEFAULT_CHUNK_S, N_CHANNELS, Renderer, check_sample_rate, n_output_samples
from ..instruments import DRUM_OFFSET, instrument_map
from ..model_folder import load_model_folder
from .config import DDSPConfig
from .features import chunk_voices, voices_of
from .model import DDSPModel
from .performance import Performance

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
        stereo: pan tracks (default); False gives the same mono mix in both channels.
        gain_db: output gain in dB (default: the model's calibrated ``config.output_gain_db``).
    """

    name = "ddsp"

    def __init__(self, model: str | os.PathLike | DDSPModel | None = None, *, chunk_frames: int = 128,
                 stereo: bool = True, gain_db: float | None = None):
        self.model = model if isinstance(model, DDSPModel) else load_model(model)
        self.model.eval()
        self.config = self.model.config
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        self.chunk_frames = int(chunk_frames)
        self._map = instrument_map(self.config.trained_instruments)
        self.stereo = bool(stereo)
        self._side_ir: torch.Tensor | None = None
        self.gain_db = self.config.output_gain_db if gain_db is None else float(gain_db)
        if not (math.isfinite(self.gain_db) and -60.0 <= self.gain_db <= 60.0):
            raise ValueError(f"gain_db must be in -60..60, got {gain_db}")

    def instruments(self, table) -> np.ndarray:
        """The instrument each note of ``table`` is played by (program, or 128 + drum key, mapped to a
        trained one): int64 ``[n_notes]``."""
        played = np.where(table.is_drum, DRUM_OFFSET + table.pitch.astype(np.int64), table.program.astype(np.int64))
        return self._map[played]

    def native(self, table, *, chunk_s: float = DEFAULT_CHUNK_S) -> Iterator[np.ndarray]:
        """The mono mix (no panning) as float32 blocks ``[n]`` at the model's native rate; they
        concatenate to ``n_output_samples(table.duration_s, native rate)`` samples."""
        for block in self.native_channels(table, chunk_s=chunk_s, stereo=False):
            yield block[0]

    def native_channels(self, table, *, chunk_s: float = DEFAULT_CHUNK_S, stereo: bool = True,
                        instrument_gain: np.ndarray | None = None, gain_db: float | None = None
                        ) -> Iterator[np.ndarray]:
        """Float32 blocks ``[N_CHANNELS, n]`` at the model's native rate (panned when ``stereo``; else
        the mono mix twice); they concatenate to ``n_output_samples(table.duration_s, native rate)`` samples.

        ``instrument_gain`` (linear, ``[N_INSTRUMENTS]``) and ``gain_db`` replace the calibrated ones
        (:mod:`render.ddsp.calibration` mutes all instruments but one this way)."""
        c = self.config
        hop = c.hop_samples
        total = n_output_samples(table.duration_s, c.sample_rate_hz, self.tail_s)
        voices = voices_of(table, c, self._map)
        performance = Performance(table, c, stereo=stereo, instrument_gain=instrument_gain)
        n_frames_total = math.ceil(total / hop)
        step = max(1, min(self.chunk_frames, math.ceil(chunk_s * c.frame_rate_hz)))
        tail = torch.zeros(performance.n_channels, 0)
        produced = 0
        scale = 10.0 ** ((self.gain_db if gain_db is None else gain_db) / 20.0)
        basis_cache: dict[int, torch.Tensor] = {}
        ir_spectra: dict[int, torch.Tensor] = {}
        side_spectra: dict[int, torch.Tensor] = {}
        with torch.inference_mode():
            for a in range(0, n_frames_total, step):
                n = min(step, n_frames_total - a)
                dry = self.model.dry_grouped(chunk_voices(voices, a, a + n + 1), a, n, basis_cache,
                                             performance)  # [C, n * hop]
                wet = self._reverb(dry, ir_spectra, side_spectra)  # [C, n * hop + n_ir - 1]
                wet[:, : tail.shape[-1]] += tail
                tail = wet[:, n * hop:].clone()
                block = (wet[:, : n * hop] * scale).numpy().astype(np.float32)
                keep = min(block.shape[-1], total - produced)
                produced += keep
                yield np.broadcast_to(block[:, :keep], (N_CHANNELS, keep)).copy()

    def _reverb(self, dry: torch.Tensor, ir_spectra: dict, side_spectra: dict) -> torch.Tensor:
        """Dry plus reverb: the channels of :meth:`DDSPModel.dry_grouped` -> ``[C, n + n_ir - 1]``.

        A model without ``reverb_send``: each channel through the learned reverb. With it, the last row
        is the send: its learned reverb (the mid) goes to every channel, and in stereo its decorrelated
        twin (:meth:`DDSPModel.side_ir`, the side) is added to the left and taken from the right, so the
        tail is wide, a hard-panned part keeps its place, and the mono mix ``(L + R) / 2`` is the trained
        model's (dry mix plus the reverb of the send).
        """
        if not self.config.reverb_send:
            return self.model.reverb(dry, ir_spectra)
        dry, send = dry[:-1], dry[-1:]
        mid = self.model.reverb_wet(send, ir_spectra)  # [1, n + n_ir - 1]
        out = torch.nn.functional.pad(dry, (0, mid.shape[-1] - dry.shape[-1])) + mid
        if out.shape[0] == 2:
            if self._side_ir is None:
                self._side_ir = self.model.side_ir()
            n = mid.shape[-1]
            size = 1 << (n - 1).bit_length()
            if size not in side_spectra:
                side_spectra[size] = torch.fft.rfft(self._side_ir, size)
            side = torch.fft.irfft(torch.fft.rfft(send, size) * side_spectra[size], size)[0, :n]
            out[0] += side
            out[1] -= side
        return out

    def render_native(self, table, **options) -> np.ndarray:
        """The whole render at the model's native rate, ``[N_CHANNELS, n]``; ``options`` as :meth:`native_channels`."""
        return np.concatenate(list(self.native_channels(table, **options)), axis=1)

    def stream(self, table, sample_rate_hz: int = 44100, *, chunk_s: float = DEFAULT_CHUNK_S) -> Iterator[np.ndarray]:
        sample_rate_hz = check_sample_rate(sample_rate_hz)
        native_hz = self.config.sample_rate_hz
        total = n_output_samples(table.duration_s, sample_rate_hz, self.tail_s)
        if sample_rate_hz == native_hz:
            yield from self.native_channels(table, chunk_s=chunk_s, stereo=self.stereo)
            return
        import soxr

        n_channels = N_CHANNELS if self.stereo else 1  # a mono mix is resampled once
        resampler = soxr.ResampleStream(native_hz, sample_rate_hz, n_channels, dtype="float32", quality="HQ")
        produced = 0
        blocks = self.native_channels(table, chunk_s=chunk_s, stereo=self.stereo)
        pending = next(blocks, None)
        while pending is not None:
            following = next(blocks, None)
            out = resampler.resample_chunk(np.ascontiguousarray(pending[:n_channels].T), last=following is None).T
            out = np.broadcast_to(out, (N_CHANNELS, out.shape[1]))  # [C, m]
            out = out[:, : max(0, total - produced)]
            if following is None and produced + out.shape[1] < total:
                out = np.concatenate([out, np.zeros((N_CHANNELS, total - produced - out.shape[1]), np.float32)], 1)
            produced += out.shape[1]
            yield np.ascontiguousarray(out, dtype=np.float32)
            pending = following
