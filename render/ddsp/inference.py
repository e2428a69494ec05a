"""A trained DDSP model run without torch: the network and the synthesizer in NumPy (float32 BLAS products).

Rendering a file should not wait for torch to import (about 1 s, a third of what the ``fluidsynth``
program takes for a whole 6-minute file), nor for ``scipy.fft`` (0.28 s: it imports ``scipy.special`` and
an array-API layer); so :class:`DDSPRenderer` runs a :class:`Synth`: the weights of a model folder read
with ``safetensors.numpy`` (strictly: every tensor the config implies, with its shape, and nothing else),
the per-frame network, and the grouped synthesis below, its transforms ducc0's (the successor of the
pocketfft that scipy and numpy carry: imported in 5 ms, and on this synth's sizes 1.4-2x faster than
``scipy.fft``). Training keeps
the differentiable torch model (:mod:`render.ddsp.model`); a test holds the two to the same audio.

Synthesis (:meth:`Synth.dry`): the network runs only at the (voice, frame) pairs where voices sound.
Within a frame, ``A(m) sin(theta + w m)`` with linearly interpolated ``A`` is four products of
per-frame coefficients with a fixed per-(instrument, pitch) basis (:func:`block_basis`), so the
blocks of every voice of one instrument and pitch that share a pan are summed first and synthesized
by one matrix product; partials that stay below -90 dB of their group's loudest over the chunk are
left out of it (a trained model puts most of its partials there).
"""

from __future__ import annotations

import itertools
import math
import os

import ducc0
import numpy as np

from ..instruments import N_INSTRUMENTS
from .config import DDSPConfig
from .features import Voices, active_pairs, f0_hz, n_features, pair_features
from .performance import Performance


def rfft(x: np.ndarray, n: int) -> np.ndarray:
    """The real FFT of ``x`` zero-padded (or cut) to ``n`` samples along its last axis (as ``numpy.fft.rfft``;
    float32 in, complex64 out)."""
    if x.shape[-1] != n:
        padded = np.zeros((*x.shape[:-1], n), x.dtype)
        padded[..., :min(n, x.shape[-1])] = x[..., :n]
        x = padded
    return ducc0.fft.r2c(x, axes=(x.ndim - 1,))


def irfft(spectrum: np.ndarray, n: int) -> np.ndarray:
    """The inverse of :func:`rfft`: ``n`` real samples along the last axis (as ``numpy.fft.irfft``)."""
    return ducc0.fft.c2r(spectrum, axes=(spectrum.ndim - 1,), lastsize=n, forward=False, inorm=2)


def fast_length(n: int) -> int:
    """The smallest length >= ``n`` whose real FFT is fast (a product of 2, 3, 5, 7, 11)."""
    return int(ducc0.fft.good_size(n, True))


LAYER_NORM_EPS = 1e-5  # torch.nn.LayerNorm's
LEAKY_SLOPE = 0.1
PARTIAL_FLOOR = 10 ** (-90 / 20)  # partials quieter than this, relative to the group's loudest, are left out
PARTIAL_STEP = 8  # partials kept per group: a multiple of this (groups of one size share a product)


def weight_shapes(config: DDSPConfig) -> dict[str, tuple[int, ...]]:
    """Every tensor a model of ``config`` has, with its shape (the torch module's ``state_dict``)."""
    c = config
    shapes: dict[str, tuple[int, ...]] = {"embedding.weight": (N_INSTRUMENTS, c.embedding_size)}
    width = n_features(c) + c.embedding_size
    for i in range(c.n_layers):
        shapes[f"mlp.{3 * i}.weight"] = (c.hidden_size, width)
        shapes[f"mlp.{3 * i}.bias"] = (c.hidden_size,)
        shapes[f"mlp.{3 * i + 1}.weight"] = (c.hidden_size,)
        shapes[f"mlp.{3 * i + 1}.bias"] = (c.hidden_size,)
        width = c.hidden_size
    shapes["head.weight"] = (1 + c.n_harmonics + c.n_noise_bands, width)
    shapes["head.bias"] = (1 + c.n_harmonics + c.n_noise_bands,)
    shapes["inharmonicity_logit"] = (N_INSTRUMENTS,)
    shapes["reverb_ir"] = (c.reverb_samples,)
    if c.reverb_send:
        shapes["send_logit"] = (N_INSTRUMENTS,)
    return shapes


def _sigmoid(x: np.ndarray) -> np.ndarray:
    return 1.0 / (1.0 + np.exp(-x))


def exp_sigmoid(x: np.ndarray, exponent: float = 10.0, max_value: float = 2.0, threshold: float = 1e-7) -> np.ndarray:
    """DDSP's positive squashing (as :func:`render.ddsp.model.exp_sigmoid`)."""
    return (max_value * _sigmoid(x) ** np.float32(math.log(exponent)) + threshold).astype(np.float32)


def block_basis(frequencies_hz: np.ndarray, hop_samples: int, sample_rate_hz: int) -> np.ndarray:
    """``[V, 4K, hop]`` float32: rows ``cos(w m)(1 - m/hop)``, ``sin(w m)(1 - m/hop)``, ``cos(w m) m/hop``,
    ``sin(w m) m/hop`` for the K partials (as :func:`render.ddsp.core.block_basis`)."""
    m = np.arange(hop_samples, dtype=np.float32)
    angle = np.float32(2 * math.pi / sample_rate_hz) * frequencies_hz.astype(np.float32)[..., None] * m
    ramp = m / np.float32(hop_samples)
    cos, sin = np.cos(angle), np.sin(angle)
    return np.concatenate([cos * (1 - ramp), sin * (1 - ramp), cos * ramp, sin * ramp], axis=-2)


def frame_noise_phases(seed: int, first_frame: int, n_frames: int, n_bins: int) -> np.ndarray:
    """Uniform random phases for noise frames, a function of (seed, absolute frame index) only.

    Frame ``f`` always gets the same values, however the piece is chunked (Philox counter jumps).
    Returns [n_frames, n_bins] float64 in [0, 2 pi).
    """
    per_frame = 4 * math.ceil(n_bins / 4)  # Philox advances in blocks of four 64-bit draws
    bits = np.random.Philox(key=seed)
    bits.advance(first_frame * per_frame // 4)
    draws = np.random.Generator(bits).random((n_frames, per_frame))
    return 2 * math.pi * draws[:, :n_bins]


def filtered_noise(band_magnitudes: np.ndarray, first_frame: int, hop_samples: int, seed: int) -> np.ndarray:
    """Noise shaped per frame by band magnitudes ``[C, n_frames, n_bands]`` -> ``[C, (n_frames + 1) * hop]``
    from sample ``(first_frame - 1) * hop`` (as :func:`render.ddsp.core.filtered_noise`; channels share phases)."""
    n_channels, n_frames, n_bands = band_magnitudes.shape
    if n_frames == 0:
        return np.zeros((n_channels, hop_samples), np.float32)
    n_fft = 2 * hop_samples
    n_bins = n_fft // 2 + 1
    low, high, frac = _band_to_bins(n_bands, n_bins)
    mags = band_magnitudes[..., low] * (1 - frac) + band_magnitudes[..., high] * frac  # [C, F, n_bins]
    phase = frame_noise_phases(seed, first_frame, n_frames, n_bins).astype(np.float32)
    spectrum = np.empty((n_frames, n_bins), np.complex64)
    spectrum.real, spectrum.imag = np.cos(phase), np.sin(phase)
    window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft)).astype(np.float32)
    frames = irfft(mags * spectrum, n_fft) * (window * np.float32(math.sqrt(n_fft)))
    halves = frames.reshape(n_channels, n_frames, 2, hop_samples)
    out = np.zeros((n_channels, n_frames + 1, hop_samples), np.float32)
    out[:, :-1] += halves[:, :, 0]
    out[:, 1:] += halves[:, :, 1]
    return out.reshape(n_channels, -1)


def _band_to_bins(n_bands: int, n_bins: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(low, high, frac)`` per FFT bin: the bin's value is ``band[low] (1 - frac) + band[high] frac``, linear
    interpolation of band values with the ends aligned (as ``torch.nn.functional.interpolate(mode="linear",
    align_corners=True)``)."""
    position = np.arange(n_bins) * ((n_bands - 1) / max(n_bins - 1, 1))
    low = np.minimum(np.floor(position).astype(np.int64), n_bands - 1)
    return low, np.minimum(low + 1, n_bands - 1), (position - low).astype(np.float32)


def sum_runs(values: np.ndarray, starts: np.ndarray) -> np.ndarray:
    """The rows of ``values`` summed over the runs that begin at ``starts`` (increasing, the first 0):
    ``[len(starts), *values.shape[1:]]``, as ``np.add.reduceat(values, starts, axis=0)`` but in one
    vectorized pass per position within a run (10x faster for many short runs of wide rows)."""
    out = values[starts]
    if len(starts) == len(values):
        return out
    lengths = np.diff(np.append(starts, len(values)))
    run = np.repeat(np.arange(len(starts)), lengths)
    position = np.arange(len(values)) - starts[run]  # 0 for a run's first row
    by_position = np.argsort(position, kind="stable")
    bounds = np.cumsum(np.bincount(position))
    for a, b in itertools.pairwise(bounds.tolist()):  # the runs' second rows, then their third, ...
        rows = by_position[a:b]
        out[run[rows]] += values[rows]
    return out


def scatter_add(n_rows: int, index: np.ndarray, values: np.ndarray) -> np.ndarray:
    """``out[index[i]] += values[i]`` for all i, into ``n_rows`` zero rows (a sort and :func:`sum_runs`,
    much faster than ``np.add.at`` for many rows): ``[n_rows, *values.shape[1:]]``."""
    out = np.zeros((n_rows, *values.shape[1:]), values.dtype)
    if len(index) == 0:
        return out
    order = np.argsort(index, kind="stable")
    sorted_index = index[order]
    starts = np.flatnonzero(np.r_[True, sorted_index[1:] != sorted_index[:-1]])
    out[sorted_index[starts]] = sum_runs(values[order], starts)
    return out


def pan_classes(pan: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The distinct columns of ``pan`` ([C, P] channel gains) and each column's: ``([n, C], [P] int64)``."""
    rows = np.ascontiguousarray(pan.T)
    classes, index = np.unique(rows.view(np.dtype((np.void, rows.dtype.itemsize * rows.shape[1]))).reshape(-1),
                               return_inverse=True)
    return classes.view(rows.dtype).reshape(len(classes), rows.shape[1]), index.reshape(-1)


def fft_convolve(signal: np.ndarray, impulse_spectrum: np.ndarray, n_out: int, size: int) -> np.ndarray:
    """``signal`` ([..., n]) convolved with an impulse response given as its ``rfft(ir, size)``: [..., n_out]."""
    return irfft(rfft(signal, size) * impulse_spectrum, size)[..., :n_out].astype(np.float32)


class Synth:
    """A DDSP model's network, synthesizer and reverb, in NumPy.

    Args:
        config: the model's config.
        weights: its tensors by name (as ``DDSPModel.state_dict()``), checked against
            :func:`weight_shapes` (a missing, extra or misshapen tensor is a ValueError).
    """

    def __init__(self, config: DDSPConfig, weights: dict[str, np.ndarray]):
        expected = weight_shapes(config)
        if set(weights) != set(expected):
            missing, extra = sorted(set(expected) - set(weights)), sorted(set(weights) - set(expected))
            raise ValueError(f"weights do not match the config: missing {missing}, unexpected {extra}")
        for name, shape in expected.items():
            if tuple(weights[name].shape) != shape:
                raise ValueError(f"weight {name} has shape {tuple(weights[name].shape)}, the config implies {shape}")
        self.config = config
        w = {name: np.ascontiguousarray(value, dtype=np.float32) for name, value in weights.items()}
        self.embedding = w["embedding.weight"]
        self.layers = [(w[f"mlp.{3 * i}.weight"].T.copy(), w[f"mlp.{3 * i}.bias"], w[f"mlp.{3 * i + 1}.weight"],
                        w[f"mlp.{3 * i + 1}.bias"]) for i in range(config.n_layers)]
        self.head = (w["head.weight"].T.copy(), w["head.bias"])
        n_in = self.layers[0][0].shape[0] - self.embedding.shape[1]  # the first layer: [features, embedding]
        self.first_layer_instrument = self.embedding @ self.layers[0][0][n_in:] + self.layers[0][1]  # [N_INST, H]
        self.inharmonicity = np.float32(1e-3) * _sigmoid(w["inharmonicity_logit"])  # [N_INSTRUMENTS] B
        self.reverb_ir = w["reverb_ir"]
        self.send_share = _sigmoid(w["send_logit"]) if config.reverb_send else np.ones(N_INSTRUMENTS, np.float32)
        self._ir_spectra: dict[tuple[int, str], np.ndarray] = {}
        self._side_spectra: dict[int, np.ndarray] = {}
        self.side_ir: np.ndarray | None = None  # made on first use (:func:`side_impulse_response`)

    @classmethod
    def from_torch(cls, model) -> Synth:
        """The synth of a :class:`render.ddsp.model.DDSPModel` (its current weights)."""
        return cls(model.config, {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()})

    # -- the network ---------------------------------------------------------------------------

    def partial_frequencies(self, voices: Voices) -> np.ndarray:
        """``[V, K]`` float64 partial frequencies ``k f0 sqrt(1 + B k^2)``."""
        k = np.arange(1, self.config.n_harmonics + 1, dtype=np.float64)
        b = self.inharmonicity[voices.instrument].astype(np.float64)[:, None]
        return f0_hz(voices.pitch)[:, None] * k * np.sqrt(1.0 + b * k**2)

    def outputs(self, voices: Voices, voice: np.ndarray, frame: np.ndarray, frequencies: np.ndarray
                ) -> tuple[np.ndarray, np.ndarray]:
        """Harmonic amplitudes ``[P, K]`` (zero above Nyquist) and noise power ``[P, M]`` at (voice, frame) pairs."""
        c = self.config
        features = pair_features(voices, voice, frame, c)
        x = features @ self.layers[0][0][:features.shape[1]]
        x += self.first_layer_instrument[voices.instrument[voice]]  # the embedding's share, once per instrument
        for i, (weight, bias, gain, shift) in enumerate(self.layers):
            if i > 0:
                x = x @ weight
                x += bias
            x -= x.mean(-1, keepdims=True)
            scale = np.float32(1 / x.shape[1]) * np.einsum("ij,ij->i", x, x)
            scale += np.float32(LAYER_NORM_EPS)
            x *= (1 / np.sqrt(scale))[:, None]
            x *= gain
            x += shift
            np.maximum(x, np.float32(LEAKY_SLOPE) * x, out=x)  # leaky ReLU
        out = x @ self.head[0]  # [P, 1 + K + M]
        out += self.head[1]
        logits = out[:, 1:1 + c.n_harmonics]
        distribution = np.exp(logits - logits.max(-1, keepdims=True))
        distribution *= (frequencies < c.sample_rate_hz / 2)[voice]
        distribution /= np.maximum(distribution.sum(-1, keepdims=True), np.float32(1e-7))
        amplitude = exp_sigmoid(out[:, :1]) * distribution
        power = exp_sigmoid(out[:, 1 + c.n_harmonics:]) ** 2
        return amplitude.astype(np.float32), power.astype(np.float32)

    # -- synthesis -----------------------------------------------------------------------------

    def dry(self, voices: Voices, first_frame: int, n_frames: int, basis_cache: dict,
            performance: Performance | None = None) -> np.ndarray:
        """The dry mix at samples ``[first_frame * hop, (first_frame + n_frames) * hop)``: ``[C, n]`` float32,
        one row per channel of ``performance`` (one without it), and with ``reverb_send`` as many rows
        more, the channels' reverb sends (each voice panned and scaled by its instrument's share).
        ``basis_cache`` keeps each (instrument, pitch)'s basis across chunks.

        With ``performance`` (:class:`render.ddsp.performance.Performance`), each (voice, frame) is scaled by
        its loudness and panned; blocks whose pan holds over the block are summed per (instrument, pitch,
        pan) and synthesized once; blocks where the pan moves, and voices of bent tracks (on their warped
        time), one block at a time.
        """
        c = self.config
        hop = c.hop_samples
        n_channels = (1 if performance is None else performance.n_channels) * (1 + int(c.reverb_send))
        if len(voices) == 0:
            return np.zeros((n_channels, n_frames * hop), np.float32)
        frequencies = self.partial_frequencies(voices)  # [V, K]
        voice, frame = active_pairs(voices, first_frame, n_frames + 1, c)
        amplitude, power = self.outputs(voices, voice, frame, frequencies)
        if performance is None:
            loudness, pan = np.ones(len(voice), np.float32), np.ones((1, len(voice)), np.float32)
        else:
            loudness, pan = performance.gains(voices, voice, frame)  # [P], [C, P]
        if c.reverb_send:  # the send buses are more channels: each channel's pan times the instrument's share
            pan = np.concatenate([pan, pan * self.send_share[voices.instrument[voice]][None]]).astype(np.float32)
        amplitude *= loudness[:, None]
        power *= (loudness**2)[:, None]
        pans, pan_class = pan_classes(pan)  # [n_pans, C], [P]
        if 0 < len(pans) * (n_frames + 1) <= len(voice):  # each channel's noise power per frame: summed per pan first
            per_pan = scatter_add(len(pans) * (n_frames + 1), pan_class * (n_frames + 1) + frame - first_frame, power)
            noise = ((pans.T ** 2) @ per_pan.reshape(len(pans), -1)).reshape(len(pan), n_frames + 1, -1)
        else:  # pans that move every frame
            noise = scatter_add(n_frames + 1, frame - first_frame,
                                power[:, None] * (pan.T ** 2)[..., None]).transpose(1, 0, 2)  # [C, F + 1, M]
        out = filtered_noise(np.sqrt(noise), first_frame, hop, c.noise_seed)[:, hop: hop + n_frames * hop]
        if len(voice) == 0:  # voices that only ring into a later chunk
            return out
        # Blocks: frame f of a voice interpolates from its amplitude at f to the one at f + 1.
        follows = (voice[1:] == voice[:-1]) & (frame[1:] == frame[:-1] + 1)
        next_index = np.where(np.append(follows, False), np.arange(1, len(voice) + 1), len(voice))  # len: zero row
        padded = np.concatenate([amplitude, np.zeros((1, amplitude.shape[1]), np.float32)])
        starts = np.append(True, ~follows)
        lead_voice, lead_frame = voice[starts], frame[starts] - 1  # ramp up from silence
        keep = frame < first_frame + n_frames
        lead_keep = lead_frame >= first_frame
        lead_index = np.flatnonzero(starts)[lead_keep]
        block_voice = np.concatenate([voice[keep], lead_voice[lead_keep]])
        block_frame = np.concatenate([frame[keep], lead_frame[lead_keep]])
        kept = np.flatnonzero(keep)
        end_pair = np.concatenate([np.where(next_index[keep] < len(voice), next_index[keep], kept), lead_index])
        start_pair = np.concatenate([kept, lead_index])
        a0 = np.concatenate([amplitude[keep], np.zeros((len(lead_index), amplitude.shape[1]), np.float32)])
        a1 = np.concatenate([padded[next_index[keep]], amplitude[lead_index]])
        bent = performance.bent(voices)[block_voice] if performance is not None else np.zeros(len(block_voice), bool)
        elapsed = (block_frame * hop - voices.onset_sample[block_voice]).astype(np.float64)  # [B] samples
        if bent.any():
            track = voices.track[block_voice[bent]]
            elapsed[bent] = (performance.warped(track, block_frame[bent] * hop)
                             - performance.warped(track, voices.onset_sample[block_voice[bent]]))
        cycles = frequencies[block_voice] * (elapsed / c.sample_rate_hz)[:, None]
        theta = (2 * math.pi * (cycles - np.floor(cycles))).astype(np.float32)  # [B, K], exact phase at the block
        sin_t, cos_t = np.sin(theta), np.cos(theta)
        coefficients = np.concatenate([a0 * sin_t, a0 * cos_t, a1 * sin_t, a1 * cos_t], -1)  # [B, 4K]
        blocks_out = np.zeros((n_channels, n_frames, hop), np.float32)
        steady = ~bent & np.all(pan[:, start_pair] == pan[:, end_pair], axis=0)
        if steady.any():
            peak = np.maximum(a0[steady], a1[steady])
            self._steady(blocks_out, coefficients[steady], peak, pans, pan_class[start_pair[steady]], voices,
                         frequencies, block_voice[steady], block_frame[steady] - first_frame, basis_cache)
        if not steady.all():
            moving = ~steady
            gains = np.stack([pan[:, start_pair[moving]], pan[:, end_pair[moving]]], -1)  # [C, B', 2]
            self._block_by_block(blocks_out, coefficients[moving], gains, frequencies, voices, block_voice[moving],
                                 block_frame[moving], first_frame, performance)
        return out + blocks_out.reshape(n_channels, -1)

    def _steady(self, out: np.ndarray, coefficients: np.ndarray, peak: np.ndarray, pans: np.ndarray,
                pan_class: np.ndarray, voices: Voices, frequencies: np.ndarray, block_voice: np.ndarray,
                offset: np.ndarray, basis_cache: dict) -> None:
        """Add blocks whose pan holds (``coefficients`` [B, 4K], each partial's ``peak`` amplitude [B, K],
        the pan ``pans[pan_class]``, ``pans`` [n_pans, C]) into ``out`` ([C, F, hop]): summed per (instrument,
        pitch, pan) and frame, each group's frames synthesized by one product with its basis (only the
        frames where it sounds)."""
        c = self.config
        n_frames, k = out.shape[1], c.n_harmonics
        keys = voices.instrument * 128 + voices.pitch
        group_key = (keys[block_voice] * len(pans) + pan_class) * n_frames + offset
        order = np.argsort(group_key, kind="stable")
        sorted_key = group_key[order]
        single = np.r_[True, sorted_key[1:] != sorted_key[:-1]]  # one row per (group, frame)
        starts = np.flatnonzero(single)
        summed = coefficients[order[starts]]
        if len(starts) < len(order):  # voices doubled on one pitch: add the others in
            np.add.at(summed, np.cumsum(single)[~single] - 1, coefficients[order[~single]])
        summed = summed.reshape(len(starts), 4, k)
        row_key, row_frame = sorted_key[starts] // n_frames, sorted_key[starts] % n_frames
        group_starts = np.flatnonzero(np.r_[True, row_key[1:] != row_key[:-1]])
        group_ends = np.r_[group_starts[1:], len(starts)]
        # partials worth synthesizing per group: up to the last one above the floor, in steps of PARTIAL_STEP
        level = np.maximum.reduceat(peak[order], starts[group_starts], axis=0)  # [G, K], over each group's blocks
        audible = level > level.max(-1, keepdims=True) * PARTIAL_FLOOR
        n_kept = np.where(audible.any(-1), k - np.argmax(audible[:, ::-1], -1), 0)
        n_kept = np.minimum(-(-n_kept // PARTIAL_STEP) * PARTIAL_STEP, k)
        mixes = np.zeros((len(pans), n_frames, c.hop_samples), np.float32)  # per pan class, then panned at once
        for a, b, size, group in zip(group_starts.tolist(), group_ends.tolist(), n_kept.tolist(),
                                     row_key[group_starts].tolist(), strict=True):
            if size == 0:
                continue
            key, mix = group // len(pans), mixes[group % len(pans)]
            if (key, size) not in basis_cache:
                if key not in basis_cache:
                    first = int(np.flatnonzero(keys == key)[0])
                    basis_cache[key] = block_basis(frequencies[first:first + 1], c.hop_samples,
                                                   c.sample_rate_hz)[0].reshape(4, k, c.hop_samples)
                basis_cache[key, size] = np.ascontiguousarray(basis_cache[key][:, :size]).reshape(4 * size, -1)
            blocks = summed[a:b, :, :size].reshape(b - a, 4 * size) @ basis_cache[key, size]  # [n, hop]
            first_frame, last_frame = int(row_frame[a]), int(row_frame[b - 1])
            if last_frame - first_frame == b - a - 1:  # frames in a row (they are distinct and sorted)
                mix[first_frame:last_frame + 1] += blocks
            else:
                mix[row_frame[a:b]] += blocks
        out += (pans.T @ mixes.reshape(len(pans), -1)).reshape(out.shape)

    def _block_by_block(self, out: np.ndarray, coefficients: np.ndarray, gains: np.ndarray, frequencies: np.ndarray,
                        voices: Voices, block_voice: np.ndarray, block_frame: np.ndarray, first_frame: int,
                        performance: Performance, batch: int = 256) -> None:
        """Add blocks ``coefficients`` ([B, 4K]) with channel gains at their start and end (``gains``
        [C, B, 2]) into ``out`` ([C, F, hop]), each with its own basis at the frame's (bent) frequencies;
        partials bent past Nyquist are silenced."""
        c = self.config
        k = c.n_harmonics
        ratio = performance.ratio(voices.track[block_voice], block_frame)  # [B] float64
        for a in range(0, len(block_voice), batch):
            part = slice(a, a + batch)
            bent_hz = frequencies[block_voice[part]] * ratio[part, None]  # [b, K]
            basis = block_basis(bent_hz, c.hop_samples, c.sample_rate_hz)  # [b, 4K, hop]
            basis *= np.tile(bent_hz < c.sample_rate_hz / 2, 4)[:, :, None]
            panned = coefficients[part][None].repeat(out.shape[0], 0)  # [C, b, 4K]
            panned[..., :2 * k] *= gains[:, part, :1]
            panned[..., 2 * k:] *= gains[:, part, 1:]
            blocks = np.matmul(panned.transpose(1, 0, 2), basis)  # [b, C, hop]
            out += scatter_add(out.shape[1], block_frame[part] - first_frame, blocks).transpose(1, 0, 2)

    # -- reverb --------------------------------------------------------------------------------

    def ir_spectrum(self, size: int, part: str = "all") -> np.ndarray:
        """``rfft`` of the learned response (``part``: ``all``, ``body``, the first ``body_s``, or ``room``)."""
        if (size, part) not in self._ir_spectra:
            ir = self.reverb_ir.copy()
            split = self.config.body_samples
            if part == "body":
                ir[split:] = 0.0
            elif part == "room":
                ir[:split] = 0.0
            self._ir_spectra[size, part] = rfft(ir, size)
        return self._ir_spectra[size, part]

    def reverb(self, dry: np.ndarray) -> np.ndarray:
        """Dry plus reverb: the rows of :meth:`dry` -> ``[C, n + n_ir - 1]``.

        Without ``reverb_send``: each channel through the learned response. With it, the second half of
        the rows are the channels' sends: each channel's dry mix goes through the response's body and its
        send through the room, into that channel (so a hard-panned part keeps its place); in stereo the
        room also gets a decorrelated twin (:func:`side_impulse_response`, the side), fed the mono send,
        added to the left and taken from the right: the tail is as wide as a room's, and the mono mix
        ``(L + R) / 2`` is the trained model's.
        """
        n = dry.shape[-1] + self.reverb_ir.shape[0] - 1
        size = fast_length(n)
        if not self.config.reverb_send:
            wet = fft_convolve(dry, self.ir_spectrum(size), n, size)
            wet[:, : dry.shape[-1]] += dry
            return wet
        half = dry.shape[0] // 2
        spectra = rfft(dry, size)  # [2C, bins]: the channels, then their sends
        dry, send_spectrum = dry[:half], spectra[half:]
        spectrum = spectra[:half] * self.ir_spectrum(size, "body") + send_spectrum * self.ir_spectrum(size, "room")
        if half == 2:
            if size not in self._side_spectra:
                if self.side_ir is None:
                    self.side_ir = side_impulse_response(self.reverb_ir, self.config.noise_seed,
                                                         self.config.body_samples)
                self._side_spectra[size] = rfft(self.side_ir, size)
            side = send_spectrum.mean(0) * self._side_spectra[size]
            spectrum += np.stack([side, -side])
        out = irfft(spectrum, size)[:, :n].astype(np.float32)
        out[:, : dry.shape[-1]] += dry
        return out


def side_impulse_response(ir: np.ndarray, seed: int, start: int = 0, n_fft: int = 1024) -> np.ndarray:
    """The decorrelated twin of the reverb's late part: ``ir`` from sample ``start`` on (zero before, where
    the response is the instruments' body rather than a room), with its short-time phases replaced by
    seeded random ones, so it keeps the level per frequency band and 23 ms step (how each band of the
    room decays) but not the waveform; the same energy as that late part: ``[n_ir]`` float32.

    The short-time transform is ``scipy.signal.stft``/``istft``'s (periodic Hann window, hop ``n_fft / 4``,
    zero boundaries, padded; a test holds them equal), written out so that rendering does not import
    ``scipy.signal`` (a third of a second)."""
    late = np.asarray(ir, dtype=np.float64).copy()
    late[:max(start, 1)] = 0.0
    hop, half = n_fft // 4, n_fft // 2
    window = 0.5 - 0.5 * np.cos(2 * math.pi * np.arange(n_fft) / n_fft)
    padded = np.pad(late, half)
    n_frames = -(-(padded.shape[0] - n_fft) // hop) + 1
    padded = np.pad(padded, (0, (n_frames - 1) * hop + n_fft - padded.shape[0]))
    frames = np.lib.stride_tricks.sliding_window_view(padded, n_fft)[::hop][:n_frames]
    spectrum = rfft(frames * window, n_fft).T  # [bins, frames], as stft's
    phase = np.random.default_rng(seed + 1).uniform(0, 2 * math.pi, spectrum.shape)
    grains = irfft((np.abs(spectrum) * np.exp(1j * phase)).T, n_fft) * window  # [frames, n_fft]
    length = (n_frames - 1) * hop + n_fft
    twin, norm = np.zeros(length), np.zeros(length)
    for i in range(n_frames):
        twin[i * hop:i * hop + n_fft] += grains[i]
        norm[i * hop:i * hop + n_fft] += window**2
    twin = np.where(norm > 1e-10, twin / np.where(norm > 1e-10, norm, 1.0), twin)[half:length - half]
    twin = np.pad(twin, (0, max(0, late.shape[0] - twin.shape[0])))[: late.shape[0]]
    twin[:max(start, 1)] = 0.0
    # frames of random phase overlap-add incoherently, losing energy: give it back
    twin *= math.sqrt((late**2).sum() / max((twin**2).sum(), 1e-30))
    return twin.astype(np.float32)


def load_synth(folder: str | os.PathLike) -> Synth:
    """The :class:`Synth` of a DDSP model folder: config.json and safetensors (read as NumPy), nothing unpickled.

    Raises:
        events.InputError: not a ddsp model folder, or its config or weights do not load (the reason given).
    """
    from safetensors.numpy import load_file

    from ostinato.events import InputError

    from ..model_folder import CONFIG_FILE, WEIGHTS_FILE, model_dir

    path = model_dir(folder)
    weights, config_path = path / WEIGHTS_FILE, path / CONFIG_FILE
    if not weights.is_file() or not config_path.is_file():
        raise InputError(path, f"not a ddsp model folder (needs {WEIGHTS_FILE} and {CONFIG_FILE})")
    try:
        return Synth(DDSPConfig.from_json(config_path.read_text()), load_file(weights))
    except (ValueError, TypeError, OSError) as exc:
        raise InputError(path, f"cannot load ddsp model: {exc}") from exc
