"""The DDSP network and synthesizer in torch, as training differentiates it: per-note controls -> harmonic +
noise voices -> dry mix and reverb send -> reverb.

One small MLP runs on every (voice, frame) pair; it sees the conditioning of
:mod:`render.ddsp.features` and an embedding of the instrument, and gives the voice's overall
amplitude, harmonic distribution and noise-band magnitudes at that frame. Rendering runs the same
model without torch (:mod:`render.ddsp.inference`).
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
        if c.reverb_send:  # the share of each instrument sent to the reverb: sigmoid(logit), 0.5 to start
            self.send_logit = nn.Parameter(torch.zeros(N_INSTRUMENTS))
        with torch.no_grad():
            self.head.bias[0] = -2.0
            self.head.bias[1 + c.n_harmonics:] = -4.0

    @property
    def device(self) -> torch.device:
        return self.head.weight.device

    def send(self, instrument: torch.Tensor) -> torch.Tensor:
        """Share of each voice sent to the reverb, by instrument index: [n] (1.0 without ``reverb_send``)."""
        if not self.config.reverb_send:
            return torch.ones(instrument.shape, device=self.device)
        return torch.sigmoid(self.send_logit[instrument])

    def inharmonicity(self, instrument: torch.Tensor) -> torch.Tensor:
        """Stiff-string coefficient B in [0, 1e-3] per instrument: [n_voices]."""
        return 1e-3 * torch.sigmoid(self.inharmonicity_logit[instrument])

    def controls(self, voices: Voices, first_frame: int, n_frames: int
                 ) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        """Per-voice controls at frames ``first_frame .. first_frame + n_frames - 1`` (dense, for training).

        The network runs on every (voice, frame); silent pairs are zeroed by the activity mask.

        Returns:
            harmonic amplitudes [V, K, n_frames] (zero above Nyquist and where the voice is silent),
            noise band magnitudes [n_frames, n_noise_bands], the voices' noises summed in power, and the
            same for the reverb send (each voice's noise scaled by its :meth:`send`).
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
        noise = (power * mask).reshape(v, n_frames, -1)  # [V, F, M]
        send = self.send(torch.from_numpy(voices.instrument).to(self.device))  # [V]
        return (harmonics, torch.sqrt(noise.sum(0) + 1e-12),
                torch.sqrt((noise * send[:, None, None] ** 2).sum(0) + 1e-12))

    def _outputs(self, voices: Voices, voice: np.ndarray, frame: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Harmonic amplitudes [P, K] (zero above Nyquist) and noise power [P, M] at (voice, frame) pairs."""
        c = self.config
        features = torch.from_numpy(pair_features(voices, voice, frame, c)).to(self.device)  # [P, D]
        voice_t = torch.from_numpy(voice).to(self.device)
        instrument = torch.from_numpy(voices.instrument).to(self.device)[voice_t]
        out = self.head(self.mlp(torch.cat([features, self.embedding(instrument)], -1)))  # [P, 1 + K + M]
        mask = core.below_nyquist(self.partial_frequencies(voices), c.sample_rate_hz)[voice_t]  # [P, K]
        distribution = torch.softmax(out[:, 1:1 + c.n_harmonics], -1) * mask
        distribution = distribution / distribution.sum(-1, keepdim=True).clamp_min(1e-7)
        amplitude = exp_sigmoid(out[:, :1]) * distribution  # [P, K]
        power = exp_sigmoid(out[:, 1 + c.n_harmonics:]) ** 2  # [P, M]
        return amplitude, power

    def partial_frequencies(self, voices: Voices) -> torch.Tensor:
        """[V, K] float64 partial frequencies (inharmonic for instruments that learned it)."""
        f0 = torch.from_numpy(f0_hz(voices.pitch)).to(self.device)
        b = self.inharmonicity(torch.from_numpy(voices.instrument).to(self.device)).double()
        return core.harmonic_frequencies(f0, self.config.n_harmonics, b)

    def dry(self, voices: Voices, first_frame: int, n_frames: int) -> torch.Tensor:
        """The dry mix of ``voices`` and the reverb send, at samples ``[first_frame * hop, (first_frame + n_frames)
        * hop)``: [2, n_samples] (row 1 equals row 0 without ``reverb_send``); :meth:`mix` makes the output."""
        c = self.config
        hop = c.hop_samples
        if len(voices) == 0:
            return torch.zeros(2, n_frames * hop, device=self.device)
        harmonics, noise, noise_send = self.controls(voices, first_frame, n_frames + 1)  # frames a .. b inclusive
        frequencies = self.partial_frequencies(voices)
        onset = torch.from_numpy(voices.onset_sample).to(self.device)
        per_voice = core.harmonic_blocks(harmonics, frequencies, onset, first_frame, hop, c.sample_rate_hz)  # [V, n]
        send = self.send(torch.from_numpy(voices.instrument).to(self.device))
        harmonic = torch.stack([per_voice.sum(0), (per_voice * send[:, None]).sum(0)])
        shaped = core.filtered_noise(torch.stack([noise, noise_send]), first_frame, hop, c.noise_seed)
        return harmonic + shaped[:, hop: hop + n_frames * hop]

    def mix(self, dry_and_send: torch.Tensor) -> torch.Tensor:
        """The output of :meth:`dry`'s ``[..., 2, n]`` -> ``[..., n + n_ir - 1]``: the dry mix, plus the dry mix
        through the response's body (its first ``body_s``) and the send through its room (the rest); without
        ``reverb_send`` (the send is the dry mix), the dry mix plus it through the whole response."""
        dry, send = dry_and_send[..., 0, :], dry_and_send[..., 1, :]
        if not self.config.reverb_send:
            wet = core.fft_convolve(send, self.reverb_ir)
        else:
            split = self.config.body_samples
            body = torch.cat([self.reverb_ir[:split], torch.zeros_like(self.reverb_ir[split:])])
            room = torch.cat([torch.zeros_like(self.reverb_ir[:split]), self.reverb_ir[split:]])
            n = dry.shape[-1] + self.reverb_ir.shape[-1] - 1
            size = 1 << (n - 1).bit_length()
            spectrum = (torch.fft.rfft(dry, size) * torch.fft.rfft(body, size)
                        + torch.fft.rfft(send, size) * torch.fft.rfft(room, size))
            wet = torch.fft.irfft(spectrum, size)[..., :n]
        return torch.nn.functional.pad(dry, (0, wet.shape[-1] - dry.shape[-1])) + wet


def fit_state(state: dict[str, torch.Tensor], old: DDSPConfig, new: DDSPConfig) -> dict[str, torch.Tensor]:
    """A model's weights (``state_dict`` of a model of ``old``) as the start of a model of ``new``, which
    may have another number of partials (the head's rows for the first ``min`` partials are kept; more
    partials start silent, their logits 10 below the quietest kept one) or another hop (the weights do
    not depend on it: the network's features are in seconds). Every other size must be the same.

    Raises:
        ValueError: ``new`` differs from ``old`` in another size.
    """
    for name in ("sample_rate_hz", "n_noise_bands", "hidden_size", "n_layers", "embedding_size", "time_scales_s",
                 "reverb_s", "reverb_send"):
        if getattr(new, name) != getattr(old, name):
            raise ValueError(f"cannot start a model with {name} {getattr(new, name)} from one with "
                             f"{getattr(old, name)}")
    kept = min(old.n_harmonics, new.n_harmonics)
    noise = 1 + old.n_harmonics
    rows = torch.cat([torch.arange(1 + kept), torch.arange(noise, noise + old.n_noise_bands)])
    out = dict(state)
    weight, bias = state["head.weight"][rows].clone(), state["head.bias"][rows].clone()
    extra = new.n_harmonics - kept
    if extra > 0:
        at = 1 + kept
        weight = torch.cat([weight[:at], torch.zeros(extra, weight.shape[1], dtype=weight.dtype), weight[at:]])
        silent = torch.full((extra,), float(bias[1:at].min()) - 10.0, dtype=bias.dtype)
        bias = torch.cat([bias[:at], silent, bias[at:]])
    out["head.weight"], out["head.bias"] = weight, bias
    return out
