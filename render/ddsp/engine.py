"""The ``ddsp`` engine: a trained DDSP model rendering note tables chunk by chunk, in NumPy (no torch).

Per chunk of frames, the notes sounding in it become voices, are synthesized at their absolute
sample positions (so chunk seams are exact), summed, and passed through the reverb, whose tail
is carried into the next chunk (:class:`render.ddsp.inference.Synth`). The file's performance
data is honoured: the sustain pedal lengthens notes, volume and expression scale them, pan places
them (the file's CC10, else GM-style defaults: :mod:`render.ddsp.performance`) and pitch bends
bend them. The native-rate stereo mix is scaled by the model's calibrated ``output_gain_db`` and
resampled with soxr (streaming, "HQ") to the requested rate.
"""

from __future__ import annotations

import itertools
import math
import os
from collections.abc import Iterator

import numpy as np

from ..base import DEFAULT_CHUNK_S, N_CHANNELS, Renderer, check_sample_rate, n_output_samples
from ..instruments import DRUM_OFFSET, instrument_map
from .features import chunk_voices, voices_of
from .inference import Synth, load_synth
from .performance import Performance

DEFAULT_MODEL = "ddsp-fluidr3"


def available_cores() -> int:
    """The CPU cores this process may run on."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else (os.cpu_count() or 1)


def in_order(function, items, threads: int) -> Iterator:
    """``function(item)`` for each of ``items``, in order, with one BLAS thread (the same sums whatever the
    machine); with ``threads > 1`` computed that many at once, a few ahead of the consumer, on threads
    (NumPy lets go of the GIL in its products, FFTs and array loops)."""
    from collections import deque
    from concurrent.futures import ThreadPoolExecutor

    from threadpoolctl import threadpool_limits

    items = iter(items)
    with threadpool_limits(1):
        if threads <= 1:
            yield from map(function, items)
            return
        with ThreadPoolExecutor(max_workers=threads) as pool:
            pending = deque(pool.submit(function, item) for _, item in zip(range(2 * threads), items))
            while pending:
                result = pending.popleft().result()
                for item in itertools.islice(items, 1):
                    pending.append(pool.submit(function, item))
                yield result


def load_model(model: str | os.PathLike | None = None):
    """The torch :class:`render.ddsp.model.DDSPModel` of a model folder or shipped name (default
    ``ddsp-fluidr3``), for training or inspection; nothing is unpickled. Rendering needs no torch
    (:func:`render.ddsp.inference.load_synth`)."""
    from ..model_folder import load_model_folder
    from .config import DDSPConfig
    from .model import DDSPModel

    return load_model_folder(DEFAULT_MODEL if model is None else model, config_class=DDSPConfig, build=DDSPModel,
                             engine="ddsp")


class DDSPRenderer(Renderer):
    """Render with a DDSP model, in NumPy (:class:`render.ddsp.inference.Synth`: torch is not imported).

    Args:
        model: a model folder or shipped model name (default: the shipped ``ddsp-fluidr3``), a
            :class:`~render.ddsp.inference.Synth`, or a torch :class:`~render.ddsp.model.DDSPModel`
            (its weights as they are now; kept as ``self.model``).
        chunk_frames: control frames synthesized at once (bounds memory).
        stereo: pan tracks (default); False gives the same mono mix in both channels.
        gain_db: output gain in dB (default: the model's calibrated ``config.output_gain_db``).
        threads: chunks synthesized at once, each on its own thread with one BLAS thread (default:
            the cores this process may use; 1 in ``render -j`` pool processes, which share the cores).
            The audio is the same for any number.
    """

    name = "ddsp"

    def __init__(self, model=None, *, chunk_frames: int = 256, stereo: bool = True, gain_db: float | None = None,
                 threads: int | None = None):
        self.model = None
        if isinstance(model, Synth):
            self.synth = model
        elif hasattr(model, "state_dict"):  # a torch DDSPModel
            self.model = model
            self.synth = Synth.from_torch(model)
        else:
            self.synth = load_synth(DEFAULT_MODEL if model is None else model)
        self.config = self.synth.config
        if chunk_frames < 1:
            raise ValueError(f"chunk_frames must be >= 1, got {chunk_frames}")
        self.chunk_frames = int(chunk_frames)
        self._map = instrument_map(self.config.trained_instruments)
        self.stereo = bool(stereo)
        self.gain_db = self.config.output_gain_db if gain_db is None else float(gain_db)
        if not (math.isfinite(self.gain_db) and -60.0 <= self.gain_db <= 60.0):
            raise ValueError(f"gain_db must be in -60..60, got {gain_db}")
        self.threads = available_cores() if threads is None else int(threads)
        if self.threads < 1:
            raise ValueError(f"threads must be >= 1, got {threads}")

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
        tail = np.zeros((performance.n_channels, 0), np.float32)
        produced = 0
        scale = np.float32(10.0 ** ((self.gain_db if gain_db is None else gain_db) / 20.0))
        basis_cache: dict[int, np.ndarray] = {}

        def chunk(a: int) -> np.ndarray:  # [C, n * hop + n_ir - 1]: the chunk's dry mix and its reverb
            n = min(step, n_frames_total - a)
            return self.synth.reverb(self.synth.dry(chunk_voices(voices, a, a + n + 1), a, n, basis_cache,
                                                    performance))

        for a, wet in zip(range(0, n_frames_total, step), in_order(chunk, range(0, n_frames_total, step),
                                                                    self.threads), strict=True):
            n = min(step, n_frames_total - a)
            wet[:, : tail.shape[-1]] += tail
            tail = wet[:, n * hop:].copy()
            block = wet[:, : n * hop] * scale
            keep = min(block.shape[-1], total - produced)
            produced += keep
            yield np.broadcast_to(block[:, :keep], (N_CHANNELS, keep)).astype(np.float32)

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
