"""Pure signal functions of the DDSP renderer (torch, float32 unless said).

Conventions: a voice's controls live on a frame grid of ``hop_samples``; frame ``f`` sits at
absolute sample ``f * hop_samples`` and amplitudes are interpolated linearly between frames.
A partial's phase is computed from the absolute sample index relative to the note's onset in
float64 and reduced modulo one cycle before it becomes float32, so a note stays in tune and
in phase however long it lasts and wherever a chunk boundary falls.
"""

from __future__ import annotations

import math

import torch

from .inference import frame_noise_phases  # NumPy, shared with the torch-free renderer


def harmonic_frequencies(f0_hz: torch.Tensor, n_harmonics: int, inharmonicity: torch.Tensor | float = 0.0
                         ) -> torch.Tensor:
    """Partial frequencies ``k * f0 * sqrt(1 + B k^2)`` for k = 1..n_harmonics (stiff-string model).

    Args:
        f0_hz: [n_voices] fundamental in Hz.
        inharmonicity: B >= 0, scalar or [n_voices].
    Returns:
        [n_voices, n_harmonics] Hz (float64 when ``f0_hz`` is float64).
    """
    k = torch.arange(1, n_harmonics + 1, dtype=f0_hz.dtype, device=f0_hz.device)  # [K]
    b = torch.as_tensor(inharmonicity, dtype=f0_hz.dtype, device=f0_hz.device).reshape(-1, 1)
    return f0_hz[:, None] * k * torch.sqrt(1.0 + b * k**2)


def below_nyquist(frequencies_hz: torch.Tensor, sample_rate_hz: int) -> torch.Tensor:
    """1.0 where a partial is below the Nyquist frequency, 0.0 where it would alias; same shape."""
    return (frequencies_hz < sample_rate_hz / 2).to(torch.float32)


def partial_phases(frequencies_hz: torch.Tensor, elapsed_samples: torch.Tensor, sample_rate_hz: int) -> torch.Tensor:
    """Phase in radians of partials after ``elapsed_samples``, exact to float64 and wrapped to [0, 2pi).

    Args:
        frequencies_hz: [..., K] (promoted to float64).
        elapsed_samples: int64 broadcastable against [..., 1] (samples since the note's onset).
    Returns:
        float32, broadcast shape of ``frequencies_hz`` and ``elapsed_samples``.
    """
    cycles = frequencies_hz.double() * elapsed_samples.double() / sample_rate_hz
    return (2 * math.pi * torch.frac(cycles)).float()


def upsample_linear(frames: torch.Tensor, hop_samples: int) -> torch.Tensor:
    """Linear interpolation of frame values to samples: [..., n_frames] -> [..., (n_frames - 1) * hop]."""
    ramp = torch.arange(hop_samples, dtype=frames.dtype, device=frames.device) / hop_samples  # [hop]
    start, end = frames[..., :-1, None], frames[..., 1:, None]  # [..., n_frames - 1, 1]
    return (start + (end - start) * ramp).flatten(-2)


def oscillator_bank(amplitudes: torch.Tensor, frequencies_hz: torch.Tensor, onset_sample: torch.Tensor,
                    first_frame: int, hop_samples: int, sample_rate_hz: int) -> torch.Tensor:
    """Reference additive synthesis: one sine per partial per sample, summed over partials.

    Args:
        amplitudes: [n_voices, K, n_frames + 1] linear amplitudes at frames first_frame .. first_frame + n_frames.
        frequencies_hz: [n_voices, K] constant partial frequencies.
        onset_sample: [n_voices] int64 absolute sample of each note's onset (phase 0 there).
    Returns:
        [n_voices, n_frames * hop_samples] samples from absolute sample ``first_frame * hop_samples``.
    """
    n_frames = amplitudes.shape[-1] - 1
    n = first_frame * hop_samples + torch.arange(n_frames * hop_samples, device=amplitudes.device)  # [n_samples]
    elapsed = n[None, None, :] - onset_sample[:, None, None]  # [V, 1, n_samples]
    phase = partial_phases(frequencies_hz[..., None], elapsed, sample_rate_hz)  # [V, K, n_samples]
    return (upsample_linear(amplitudes, hop_samples) * torch.sin(phase)).sum(1)


def block_basis(frequencies_hz: torch.Tensor, hop_samples: int, sample_rate_hz: int) -> torch.Tensor:
    """The per-voice synthesis basis of :func:`harmonic_blocks`: [V, 4K, hop].

    Rows are ``cos(w m) (1 - m/hop)``, ``sin(w m) (1 - m/hop)``, ``cos(w m) m/hop``, ``sin(w m) m/hop``
    for the K partials, m = 0 .. hop - 1 and ``w = 2 pi f / sample_rate_hz``.
    """
    m = torch.arange(hop_samples, dtype=torch.float32, device=frequencies_hz.device)  # [hop]
    angle = (2 * math.pi / sample_rate_hz) * frequencies_hz.float()[..., None] * m  # [V, K, hop], < 2 pi hop f / sr
    ramp = m / hop_samples
    cos, sin = torch.cos(angle), torch.sin(angle)
    return torch.cat([cos * (1 - ramp), sin * (1 - ramp), cos * ramp, sin * ramp], dim=1)  # [V, 4K, hop]


def block_coefficients(amplitudes: torch.Tensor, frequencies_hz: torch.Tensor, onset_sample: torch.Tensor,
                       first_frame: int, hop_samples: int, sample_rate_hz: int) -> torch.Tensor:
    """Per-frame coefficients of :func:`harmonic_blocks`: [V, n_frames, 4K] (see there)."""
    n_frames = amplitudes.shape[-1] - 1
    frame_start = (first_frame + torch.arange(n_frames, device=amplitudes.device)) * hop_samples  # [F]
    elapsed = frame_start[None, None, :] - onset_sample[:, None, None]  # [V, 1, F]
    theta = partial_phases(frequencies_hz[..., None], elapsed, sample_rate_hz)  # [V, K, F]
    sin_t, cos_t = torch.sin(theta), torch.cos(theta)
    a0, a1 = amplitudes[..., :-1], amplitudes[..., 1:]  # [V, K, F] each
    return torch.cat([a0 * sin_t, a0 * cos_t, a1 * sin_t, a1 * cos_t], dim=1).transpose(1, 2)  # [V, F, 4K]


def harmonic_blocks(amplitudes: torch.Tensor, frequencies_hz: torch.Tensor, onset_sample: torch.Tensor,
                    first_frame: int, hop_samples: int, sample_rate_hz: int) -> torch.Tensor:
    """Fast additive synthesis, equal to :func:`oscillator_bank` up to float32 rounding.

    Within a frame, ``A(m) sin(theta + w m)`` with linearly interpolated ``A`` expands into four
    products of per-frame coefficients with a fixed per-voice basis (:func:`block_basis`), so a
    block of ``hop_samples`` samples for all partials is one batched matrix product
    ``[V, n_frames, 4K] @ [V, 4K, hop]`` instead of K sines per sample. Phases ``theta`` at
    frame starts come from :func:`partial_phases` (exact, drift-free).

    Args and returns: as :func:`oscillator_bank`.
    """
    coefficients = block_coefficients(amplitudes, frequencies_hz, onset_sample, first_frame, hop_samples,
                                      sample_rate_hz)
    blocks = torch.bmm(coefficients, block_basis(frequencies_hz, hop_samples, sample_rate_hz))  # [V, F, hop]
    return blocks.reshape(blocks.shape[0], -1)


def filtered_noise(band_magnitudes: torch.Tensor, first_frame: int, hop_samples: int, seed: int) -> torch.Tensor:
    """Noise shaped per frame by band magnitudes, overlap-added with a sqrt-Hann window (50%).

    Frame ``f`` spans samples ``[(f - 1) hop, (f + 1) hop)``. Band magnitudes (linear, spread
    evenly from 0 Hz to Nyquist) are interpolated to FFT bins; each frame is a random-phase
    spectrum with those magnitudes.

    Args:
        band_magnitudes: [..., n_frames, n_bands] for frames first_frame .. first_frame + n_frames - 1
            (leading dimensions, e.g. channels, share the same random phases).
    Returns:
        [..., (n_frames + 1) * hop] samples from absolute sample ``(first_frame - 1) * hop``.
    """
    *batch, n_frames, n_bands = band_magnitudes.shape
    if n_frames == 0:
        return band_magnitudes.new_zeros(*batch, hop_samples)
    n_fft = 2 * hop_samples
    n_bins = n_fft // 2 + 1
    mags = torch.nn.functional.interpolate(band_magnitudes.reshape(-1, 1, n_bands), size=n_bins, mode="linear",
                                           align_corners=True).reshape(-1, n_frames, n_bins)  # [B, F, n_bins]
    phase = torch.from_numpy(frame_noise_phases(seed, first_frame, n_frames, n_bins)).to(mags)  # [F, n_bins]
    if mags.shape[0] == 1:
        spectrum = torch.polar(mags, phase)  # [1, F, n_bins]
    else:  # one phasor for all: m * (cos + i sin) is exactly polar(m, phase)
        spectrum = mags * torch.polar(torch.ones_like(phase), phase)
    window = torch.sqrt(torch.hann_window(n_fft, periodic=True, dtype=mags.dtype, device=mags.device))
    frames = torch.fft.irfft(spectrum, n=n_fft) * window * math.sqrt(n_fft)  # [B, F, n_fft]
    # Overlap-add: the first half of frame f and the second half of frame f - 1 share a hop.
    halves = frames.reshape(-1, n_frames, 2, hop_samples)
    out = torch.zeros(halves.shape[0], n_frames + 1, hop_samples, dtype=mags.dtype, device=mags.device)
    out[:, :-1] += halves[:, :, 0]
    out[:, 1:] += halves[:, :, 1]
    return out.reshape(*batch, -1)


def fft_convolve(signal: torch.Tensor, impulse_response: torch.Tensor) -> torch.Tensor:
    """Full linear convolution via FFT: [..., n] * [m] -> [..., n + m - 1]."""
    n = signal.shape[-1] + impulse_response.shape[-1] - 1
    size = 1 << (n - 1).bit_length()
    out = torch.fft.irfft(torch.fft.rfft(signal, size) * torch.fft.rfft(impulse_response, size), size)
    return out[..., :n]
