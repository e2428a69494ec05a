"""The DDSP network and synthesizer: per-note controls -> harmonic + noise voices -> mix -> reverb.

One small MLP runs on every (voice, frame) pair; it sees the conditioning of
:mod:`render.ddsp.features` and an embedding of the instrument, and gives the voice's overall
amplitude, harmonic distribution and noise-band magnitudes at that frame.
"""

from __future__ import annotations

import math

import numpy as np
import torch
from torch import nn

from ..instruments import N_INSTRUMENTS
from . import core
from .config import DDSPConfig
from .features import Voices, active_pairs, f0_hz, n_features, pair_features


def exp_sigmoid(x: torch.Tensor, exponent: float = 10.0, max_value: float = 2.0, threshold: float = 1e-7
                ) -> torch.Tensor:
    """DDSP's positive squashing: ``max_value * sigmoid(x) ** log(exponent) + threshold``."""
    return max_value * torch.sigmoid(x) ** math.log(exponent) + threshold


class DDSPModel(nn.Module):
    """Controls network, inharmonicity per instrument, and a trainable reverb impulse response."""

    def __init__(self, config: DDSPConfig):
        super().__init__()
        self.config = config
        c = config
        self.embedding = nn.Embedding(N_INSTRUMENTS, c.embedding_size)
        layers: list[nn.Module] = []
        width = n_features(c) + c.embedding_size
        for _ in range(c.n_layers):
            layers += [nn.Linear(width, c.hidden_size), nn.LayerNorm(c.hidden_size), nn.LeakyReLU(0.1)]
            width = c.hidden_size
        self.mlp = nn.Sequential(*layers)
        self.head = nn.Linear(width, 1 + c.n_harmonics + c.n_noise_bands)
        self.inharmonicity_logit = nn.Parameter(torch.full((N_INSTRUMENTS,), -6.0))
        n_ir = c.reverb_samples
        t = torch.arange(n_ir) / c.sample_rate_hz
        generator = torch.Generator().manual_seed(c.noise_seed)
        ir = torch.randn(n_ir, generator=generator) * torch.exp(-t / 0.08) * 0.02
        ir[0] = 0.0  # the dry path is added separately
        self.reverb_ir = nn.Parameter(ir)
        with torch.no_grad():
            self.head.bias[0] = -2.0
            self.head.bias[1 + c.n_harmonics:] = -4.0

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def inharmonicity(self, instrument: torch.Tensor) -> torch.Tensor:
        """Stiff-string coefficient B in [0, 1e-3] per instrument: [n_voices]."""
        return 1e-3 * torch.sigmoid(self.inharmonicity_logit[instrument])

    def pair_controls(self, voices: Voices, first_frame: int, n_frames: int
                      ) -> tuple[np.ndarray, np.ndarray, torch.Tensor, torch.Tensor]:
        """The network's outputs at the (voice, frame) pairs where voices sound.

        Returns:
            voice [P] int64, frame [P] int64 (absolute; sorted by voice, then frame),
            harmonic amplitudes [P, K] (zero above Nyquist), noise power [P, n_noise_bands].
        """
        voice, frame = active_pairs(voices, first_frame, n_frames, self.config)  # [P], [P]
        amplitude, power = self._outputs(voices, voice, frame)
        return voice, frame, amplitude, power

    def controls(self, voices: Voices, first_frame: int, n_frames: int) -> tuple[torch.Tensor, torch.Tensor]:
        """Per-voice controls at frames ``first_frame .. first_frame + n_frames - 1`` (dense, for training).

        The network runs on every (voice, frame); silent pairs are zeroed by the activity mask.

        Returns:
            harmonic amplitudes [V, K, n_frames] (zero above Nyquist and where the voice is silent),
            noise band magnitudes [n_frames, n_noise_bands], the voices' noises summed in power.
        """
        c = self.config
        v = len(voices)
        voice = np.repeat(np.arange(v), n_frames)
        frame = np.tile(first_frame + np.arange(n_frames), v)
        active = np.zeros(v * n_frames, dtype=np.float32)
        on_voice, on_frame = active_pairs(voices, first_frame, n_frames, c)
        active[on_voice * n_frames + (on_frame - first_frame)] = 1.0
        amplitude, power = self._outputs(voices, voice, frame)  # [V * F, K], [V * F, M]
        mask = torch.from_numpy(active).to(self.device)[:, None]
        harmonics = (amplitude * mask).reshape(v, n_frames, -1).transpose(1, 2)  # [V, K, F]
        noise = (power * mask).reshape(v, n_frames, -1).sum(0)  # [F, M]
        return harmonics, torch.sqrt(noise + 1e-12)

    def _outputs(self, voices: Voices, voice: np.ndarray, frame: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Harmonic amplitudes [P, K] (zero above Nyquist) and noise power [P, M] at (voice, frame) pairs."""
        c = self.config
        features = pair_features(voices, voice, frame, c).to(self.device)  # [P, D]
        voice_t = torch.from_numpy(voice).to(self.device)
        instrument = torch.from_numpy(voices.instrument).to(self.device)[voice_t]
        out = self.head(self.mlp(torch.cat([features, self.embedding(instrument)], -1)))  # [P, 1 + K + M]
        mask = core.below_nyquist(self.partial_frequencies(voices), c.sample_rate_hz)[voice_t]  # [P, K]
        distribution = torch.softmax(out[:, 1:1 + c.n_harmonics], -1) * mask
        distribution = distribution / distribution.sum(-1, keepdim=True).clamp_min(1e-7)
        amplitude = exp_sigmoid(out[:, :1]) * distribution  # [P, K]
        power = exp_sigmoid(out[:, 1 + c.n_harmonics:]) ** 2  # [P, M]
        return amplitude, power

    def dry_grouped(self, voices: Voices, first_frame: int, n_frames: int, basis_cache: dict) -> torch.Tensor:
        """Inference form of :meth:`dry` (same result): block coefficients only where voices sound,
        summed per (instrument, pitch), whose synthesis basis is computed once and cached."""
        c = self.config
        hop = c.hop_samples
        if len(voices) == 0:
            return torch.zeros(n_frames * hop)
        voice, frame, amplitude, power = self.pair_controls(voices, first_frame, n_frames + 1)
        offset = torch.from_numpy(frame - first_frame)
        noise = power.new_zeros(n_frames + 1, c.n_noise_bands).index_add(0, offset, power)
        shaped = core.filtered_noise(torch.sqrt(noise + 1e-12), first_frame, hop, c.noise_seed)
        if len(voice) == 0:  # voices that only ring into a later chunk: no sounding frame here
            return shaped[hop: hop + n_frames * hop]
        # Blocks: frame f of a voice interpolates from its amplitude at f to the one at f + 1.
        zero = amplitude.new_zeros(1, amplitude.shape[1])
        same_next = np.append((voice[1:] == voice[:-1]) & (frame[1:] == frame[:-1] + 1), False)
        next_index = np.where(same_next, np.arange(1, len(voice) + 1), len(voice))  # len -> zero row
        padded = torch.cat([amplitude, zero])
        starts = np.append(True, ~((voice[1:] == voice[:-1]) & (frame[1:] == frame[:-1] + 1)))
        lead_voice, lead_frame = voice[starts], frame[starts] - 1  # ramp up from silence
        keep = frame < first_frame + n_frames
        lead_keep = lead_frame >= first_frame
        block_voice = np.concatenate([voice[keep], lead_voice[lead_keep]])
        block_frame = np.concatenate([frame[keep], lead_frame[lead_keep]])
        a0 = torch.cat([amplitude[torch.from_numpy(keep)], zero.expand(int(lead_keep.sum()), -1)])
        lead_index = torch.from_numpy(np.flatnonzero(starts)[lead_keep])
        a1 = torch.cat([padded[torch.from_numpy(next_index[keep])], amplitude[lead_index]])
        frequencies = self.partial_frequencies(voices)  # [V, K] float64
        elapsed = torch.from_numpy(block_frame * hop - voices.onset_sample[block_voice])[:, None]
        theta = core.partial_phases(frequencies[torch.from_numpy(block_voice)], elapsed, c.sample_rate_hz)  # [B, K]
        sin_t, cos_t = torch.sin(theta), torch.cos(theta)
        coefficients = torch.cat([a0 * sin_t, a0 * cos_t, a1 * sin_t, a1 * cos_t], -1)  # [B, 4K]
        keys = voices.instrument * 128 + voices.pitch
        unique, group = np.unique(keys, return_inverse=True)
        group = group.reshape(-1)
        slot = torch.from_numpy(group[block_voice] * n_frames + (block_frame - first_frame))
        summed = coefficients.new_zeros(len(unique) * n_frames, coefficients.shape[1]).index_add(0, slot, coefficients)
        bases = []
        for key in unique.tolist():
            if key not in basis_cache:
                first = int(np.flatnonzero(keys == key)[0])
                basis_cache[key] = core.block_basis(frequencies[first:first + 1], hop, c.sample_rate_hz)[0]
            bases.append(basis_cache[key])
        blocks = torch.bmm(summed.reshape(len(unique), n_frames, -1), torch.stack(bases))  # [G, F, hop]
        return blocks.sum(0).reshape(-1) + shaped[hop: hop + n_frames * hop]

    def partial_frequencies(self, voices: Voices) -> torch.Tensor:
        """[V, K] float64 partial frequencies (inharmonic for instruments that learned it)."""
        f0 = torch.from_numpy(f0_hz(voices.pitch)).to(self.device)
        b = self.inharmonicity(torch.from_numpy(voices.instrument).to(self.device)).double()
        return core.harmonic_frequencies(f0, self.config.n_harmonics, b)

    def dry(self, voices: Voices, first_frame: int, n_frames: int) -> torch.Tensor:
        """The dry mix of ``voices`` at samples ``[first_frame * hop, (first_frame + n_frames) * hop)``: [n_samples]."""
        c = self.config
        hop = c.hop_samples
        if len(voices) == 0:
            return torch.zeros(n_frames * hop, device=self.device)
        harmonics, noise = self.controls(voices, first_frame, n_frames + 1)  # frames a .. b inclusive
        frequencies = self.partial_frequencies(voices)
        onset = torch.from_numpy(voices.onset_sample).to(self.device)
        harmonic = core.harmonic_blocks(harmonics, frequencies, onset, first_frame, hop, c.sample_rate_hz).sum(0)
        shaped = core.filtered_noise(noise, first_frame, hop, c.noise_seed)
        return harmonic + shaped[hop: hop + n_frames * hop]

    def reverb(self, dry: torch.Tensor, spectrum_cache: dict | None = None) -> torch.Tensor:
        """Dry plus its convolution with the impulse response: [n] -> [n + n_ir - 1].

        ``spectrum_cache`` (inference) keeps the impulse response's FFT per FFT size.
        """
        if spectrum_cache is None:
            wet = core.fft_convolve(dry, self.reverb_ir)
        else:
            n = dry.shape[-1] + self.reverb_ir.shape[-1] - 1
            size = 1 << (n - 1).bit_length()
            if size not in spectrum_cache:
                spectrum_cache[size] = torch.fft.rfft(self.reverb_ir, size)
            wet = torch.fft.irfft(torch.fft.rfft(dry, size) * spectrum_cache[size], size)[:n]
        return torch.nn.functional.pad(dry, (0, wet.shape[-1] - dry.shape[-1])) + wet
