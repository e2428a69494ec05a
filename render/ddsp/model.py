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
from .performance import Performance


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

    def dry_grouped(self, voices: Voices, first_frame: int, n_frames: int, basis_cache: dict,
                    performance: Performance | None = None) -> torch.Tensor:
        """Inference form of :meth:`dry` (same result without ``performance``): block coefficients only
        where voices sound, summed per (instrument, pitch), whose synthesis basis is computed once and cached.

        With ``performance`` (:class:`render.ddsp.performance.Performance`), each (voice, frame) is
        scaled by its loudness, and panned: blocks whose pan holds over the block are summed per
        (instrument, pitch, pan) and synthesized once for both channels; blocks where the pan moves,
        and voices of bent tracks (on their warped time), are synthesized one block at a time.
        Returns ``[n_frames * hop]``, or ``[n_channels, n_frames * hop]`` with ``performance``; with
        ``reverb_send``, one more row last: the reverb send (mono), so ``[2, n]`` or ``[n_channels + 1, n]``.
        """
        c = self.config
        hop = c.hop_samples
        n_channels = (1 if performance is None else performance.n_channels) + int(c.reverb_send)
        squeeze = performance is None and not c.reverb_send  # [n] out, as :meth:`dry` was
        if len(voices) == 0:
            silence = torch.zeros(n_channels, n_frames * hop)
            return silence[0] if squeeze else silence
        voice, frame, amplitude, power = self.pair_controls(voices, first_frame, n_frames + 1)
        if performance is None:
            loudness, pan = np.ones(len(voice), np.float32), np.ones((1, len(voice)), np.float32)
        else:
            loudness, pan = performance.gains(voices, voice, frame)  # [P], [C, P]
        if c.reverb_send:  # the send bus is one more channel, its gain the instrument's send
            send = self.send(torch.from_numpy(voices.instrument).to(self.device)).cpu().numpy()
            pan = np.concatenate([pan, send[voice][None].astype(np.float32)])
        amplitude = amplitude * torch.from_numpy(loudness).to(amplitude)[:, None]  # [P, K]
        power = power * torch.from_numpy(loudness).to(power)[:, None] ** 2
        offset = torch.from_numpy(frame - first_frame)
        weighted = power[None] * torch.from_numpy(pan).to(power)[:, :, None] ** 2  # [C, P, M]
        noise = power.new_zeros(n_channels, n_frames + 1, c.n_noise_bands).index_add(1, offset, weighted)
        # no 1e-12 floor (it is for gradients in :meth:`dry`): silence stays silent, whatever the chunking
        noise_out = core.filtered_noise(torch.sqrt(noise), first_frame, hop, c.noise_seed
                                        )[:, hop: hop + n_frames * hop]  # [C, n_frames * hop]
        if len(voice) == 0:  # voices that only ring into a later chunk: no sounding frame here
            return noise_out[0] if squeeze else noise_out
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
        # the pairs at the block's two ends (a missing end: the other one; its amplitude is zero)
        lead_index = np.flatnonzero(starts)[lead_keep]
        end_pair = np.concatenate([np.where(next_index[keep] < len(voice), next_index[keep], np.flatnonzero(keep)),
                                   lead_index])
        start_pair = np.concatenate([np.flatnonzero(keep), lead_index])
        a0 = torch.cat([amplitude[torch.from_numpy(keep)], zero.expand(int(lead_keep.sum()), -1)])
        a1 = torch.cat([padded[torch.from_numpy(next_index[keep])], amplitude[torch.from_numpy(lead_index)]])
        frequencies = self.partial_frequencies(voices)  # [V, K] float64
        bent = performance.bent(voices)[block_voice] if performance is not None else np.zeros(len(block_voice), bool)
        elapsed = (block_frame * hop - voices.onset_sample[block_voice]).astype(np.float64)  # [B] samples
        if bent.any():
            track = voices.track[block_voice[bent]]
            elapsed[bent] = (performance.warped(track, block_frame[bent] * hop)
                             - performance.warped(track, voices.onset_sample[block_voice[bent]]))
        theta = core.partial_phases(frequencies[torch.from_numpy(block_voice)],
                                    torch.from_numpy(elapsed)[:, None], c.sample_rate_hz)  # [B, K]
        sin_t, cos_t = torch.sin(theta), torch.cos(theta)
        coefficients = torch.cat([a0 * sin_t, a0 * cos_t, a1 * sin_t, a1 * cos_t], -1)  # [B, 4K], mono
        out = coefficients.new_zeros(n_channels, n_frames, hop)
        steady = ~bent & np.all(pan[:, start_pair] == pan[:, end_pair], axis=0)  # [B]
        if steady.any():
            # one synthesis per (instrument, pitch, pan), scaled into the channels
            # pan classes: the blocks' distinct columns of channel gains
            pans, pan_class = np.unique(pan[:, start_pair[steady]].T, axis=0, return_inverse=True)  # [n_pans, C]
            keys = (voices.instrument * 128 + voices.pitch)[block_voice[steady]]
            unique, group = np.unique(keys * len(pans) + pan_class.reshape(-1), return_inverse=True)
            slot = torch.from_numpy(group.reshape(-1) * n_frames + (block_frame[steady] - first_frame))
            summed = coefficients.new_zeros(len(unique) * n_frames, coefficients.shape[-1]).index_add(
                0, slot, coefficients[torch.from_numpy(steady)])  # [G * F, 4K]
            bases = []
            for key in (unique // len(pans)).tolist():
                if key not in basis_cache:
                    first = int(np.flatnonzero(voices.instrument * 128 + voices.pitch == key)[0])
                    basis_cache[key] = core.block_basis(frequencies[first:first + 1], hop, c.sample_rate_hz)[0]
                bases.append(basis_cache[key])
            blocks = torch.bmm(summed.reshape(len(unique), n_frames, -1), torch.stack(bases))  # [G, F, hop]
            group_pan = torch.from_numpy(pans[unique % len(pans)].T.copy()).to(blocks)  # [C, G]
            out += torch.einsum("cg,gfh->cfh", group_pan, blocks)
        if not steady.all():
            moving = ~steady
            stereo = torch.from_numpy(np.stack([pan[:, start_pair[moving]], pan[:, end_pair[moving]]], -1)
                                      ).to(coefficients)  # [C, B', 2]: gains at the block's start and end
            half = coefficients.shape[-1] // 2  # the a0 terms, then the a1 terms
            panned = coefficients[torch.from_numpy(moving)][None].repeat(n_channels, 1, 1)  # [C, B', 4K]
            panned[..., :half] *= stereo[..., :1]
            panned[..., half:] *= stereo[..., 1:]
            self._block_by_block(out, panned, frequencies, voices, block_voice[moving], block_frame[moving],
                                 first_frame, performance)
        result = out.reshape(n_channels, -1) + noise_out
        return result[0] if squeeze else result

    def _block_by_block(self, out: torch.Tensor, coefficients: torch.Tensor, frequencies: torch.Tensor,
                        voices: Voices, block_voice: np.ndarray, block_frame: np.ndarray, first_frame: int,
                        performance: Performance, batch: int = 256) -> None:
        """Add blocks ``coefficients`` ([C, B, 4K]) into ``out`` ([C, n_frames, hop]), each with its own
        basis at the frame's (bent) frequencies; partials bent past Nyquist are silenced."""
        c = self.config
        ratio = torch.from_numpy(performance.ratio(voices.track[block_voice], block_frame))  # [B] float64
        for a in range(0, len(block_voice), batch):
            part = slice(a, a + batch)
            bent_hz = frequencies[torch.from_numpy(block_voice[part])] * ratio[part, None]  # [b, K]
            basis = core.block_basis(bent_hz, c.hop_samples, c.sample_rate_hz)  # [b, 4K, hop]
            basis = basis * core.below_nyquist(bent_hz, c.sample_rate_hz).repeat(1, 4)[:, :, None]
            blocks = torch.bmm(coefficients[:, part].transpose(0, 1), basis)  # [b, C, hop]
            out.index_add_(1, torch.from_numpy(block_frame[part] - first_frame), blocks.transpose(0, 1))

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

    def mix(self, dry_and_send: torch.Tensor, spectrum_cache: dict | None = None) -> torch.Tensor:
        """Dry plus the reverb of the send: ``[..., 2, n]`` (as :meth:`dry`) -> ``[..., n + n_ir - 1]``."""
        dry, send = dry_and_send[..., 0, :], dry_and_send[..., 1, :]
        wet = self.reverb_wet(send, spectrum_cache)
        return torch.nn.functional.pad(dry, (0, wet.shape[-1] - dry.shape[-1])) + wet

    def reverb(self, dry: torch.Tensor, spectrum_cache: dict | None = None) -> torch.Tensor:
        """Dry plus its convolution with the impulse response: [..., n] -> [..., n + n_ir - 1] (each channel alike).

        ``spectrum_cache`` (inference) keeps the impulse response's FFT per FFT size.
        """
        wet = self.reverb_wet(dry, spectrum_cache)
        return torch.nn.functional.pad(dry, (0, wet.shape[-1] - dry.shape[-1])) + wet

    def side_ir(self) -> torch.Tensor:
        """The reverb's decorrelated twin: the learned impulse response with its short-time phases
        replaced by seeded random ones (``noise_seed``), so it keeps the response's level per
        frequency band and 23 ms step (how each band of the room decays) but not its waveform: [n_ir].

        The engine adds it as the reverb's side (L = dry L + mid + side, R = dry R + mid - side, mid the
        learned reverb of the mono mix), so a stereo render's tail is as wide as a room's while its mono
        mix is exactly what the model was trained to make."""
        c = self.config
        n_fft = 1024
        window = torch.hann_window(n_fft, periodic=True, dtype=torch.float64)
        ir = self.reverb_ir.detach().double().cpu()
        spectrum = torch.stft(ir, n_fft, hop_length=n_fft // 4, window=window, return_complex=True)
        generator = torch.Generator().manual_seed(c.noise_seed + 1)
        phase = 2 * math.pi * torch.rand(spectrum.shape, generator=generator, dtype=torch.float64)
        twin = torch.istft(torch.polar(spectrum.abs(), phase), n_fft, hop_length=n_fft // 4, window=window,
                           length=ir.shape[0])
        twin[0] = 0.0  # like the learned one: no dry path
        # frames of random phase overlap-add incoherently, losing energy: give it back (same energy as the learned)
        twin = twin * torch.sqrt((ir[1:] ** 2).sum() / (twin ** 2).sum().clamp_min(1e-30))
        return twin.float().to(self.device)

    def reverb_wet(self, dry: torch.Tensor, spectrum_cache: dict | None = None) -> torch.Tensor:
        """The reverb alone: ``dry`` convolved with the impulse response, [..., n] -> [..., n + n_ir - 1]."""
        if spectrum_cache is None:
            return core.fft_convolve(dry, self.reverb_ir)
        n = dry.shape[-1] + self.reverb_ir.shape[-1] - 1
        size = 1 << (n - 1).bit_length()
        if size not in spectrum_cache:
            spectrum_cache[size] = torch.fft.rfft(self.reverb_ir, size)
        return torch.fft.irfft(torch.fft.rfft(dry, size) * spectrum_cache[size], size)[..., :n]
