"""DDSP signal functions against NumPy references; phase drift; Nyquist; chunk invariance."""

from __future__ import annotations

import math

import numpy as np
import pytest
import torch

from ostinato.render.ddsp import core

SR, HOP = 22050, 245


def numpy_oscillator_bank(amplitudes, frequencies, onset, first_frame, hop, sr):
    """sum_k A_k(n) sin(2 pi f_k (n - onset) / sr), A linear between frames (float64 throughout)."""
    n_frames = amplitudes.shape[-1] - 1
    n = first_frame * hop + np.arange(n_frames * hop)
    frame_pos = n / hop - first_frame
    out = np.zeros((amplitudes.shape[0], n.shape[0]))
    for v in range(amplitudes.shape[0]):
        for k in range(amplitudes.shape[1]):
            amp = np.interp(frame_pos, np.arange(n_frames + 1), amplitudes[v, k])
            out[v] += amp * np.sin(2 * np.pi * frequencies[v, k] * (n - onset[v]) / sr)
    return out


@pytest.fixture
def voices():
    rng = np.random.default_rng(1)
    f0 = torch.tensor([55.0, 440.0, 3000.0], dtype=torch.float64)
    freqs = core.harmonic_frequencies(f0, 12, torch.tensor([0.0, 2e-4, 0.0], dtype=torch.float64))
    amps = rng.random((3, 12, 9)) * core.below_nyquist(freqs, SR).numpy()[..., None]
    onset = np.array([0, 1234, -98765])
    return torch.from_numpy(amps).float(), freqs, torch.from_numpy(onset)


def test_harmonic_frequencies_stiff_string():
    f = core.harmonic_frequencies(torch.tensor([100.0], dtype=torch.float64), 3, 1e-3)
    expected = [k * 100 * math.sqrt(1 + 1e-3 * k * k) for k in (1, 2, 3)]
    np.testing.assert_allclose(f[0].numpy(), expected, rtol=1e-12)


@pytest.mark.parametrize("synth", [core.oscillator_bank, core.harmonic_blocks])
def test_additive_synthesis_matches_numpy(voices, synth):
    amps, freqs, onset = voices
    ours = synth(amps, freqs, onset, 17, HOP, SR).numpy()
    reference = numpy_oscillator_bank(amps.double().numpy(), freqs.numpy(), onset.numpy(), 17, HOP, SR)
    assert ours.shape == reference.shape == (3, 8 * HOP)
    np.testing.assert_allclose(ours, reference, atol=2e-4 * np.abs(reference).max())


def test_no_partial_above_nyquist():
    freqs = core.harmonic_frequencies(torch.tensor([3000.0], dtype=torch.float64), 8)
    mask = core.below_nyquist(freqs, SR)
    assert mask[0].tolist() == [1, 1, 1, 0, 0, 0, 0, 0]  # 3k, 6k, 9k < 11025 <= 12k


def test_fast_path_has_no_aliases():
    """A bright high note: all energy sits at harmonics below Nyquist, none at alias frequencies."""
    f0 = 2637.02  # E7
    freqs = core.harmonic_frequencies(torch.tensor([f0], dtype=torch.float64), 16)
    amps = torch.ones(1, 16, 91) * core.below_nyquist(freqs, SR)[..., None]
    audio = core.harmonic_blocks(amps, freqs, torch.tensor([0]), 0, HOP, SR)[0].double().numpy()
    spectrum = np.abs(np.fft.rfft(audio * np.hanning(audio.size))) ** 2
    hz = np.fft.rfftfreq(audio.size, 1 / SR)
    near = np.zeros_like(hz, dtype=bool)
    for k in range(1, 5):
        near |= np.abs(hz - k * f0) < 30
    assert spectrum[~near].sum() < 1e-8 * spectrum[near].sum()


def test_ten_minute_note_stays_in_tune():
    """Phase at the end of a 10-minute note equals the exact phase: drift far below 1 cent."""
    f0 = 440.0
    freqs = torch.tensor([[f0]], dtype=torch.float64)
    first_frame = (600 * SR) // HOP
    amps = torch.ones(1, 1, 91)
    audio = core.harmonic_blocks(amps, freqs, torch.tensor([0]), first_frame, HOP, SR)[0].double().numpy()
    n = first_frame * HOP + np.arange(audio.size)
    ideal = 2 * np.pi * ((f0 * n / SR) % 1.0)
    # Least-squares phase of the rendered sine relative to the exact one.
    c, s = np.sum(audio * np.sin(ideal)), np.sum(audio * np.cos(ideal))
    phase_error = math.atan2(s, c)
    elapsed_s = n[0] / SR
    drift_cents = 1200 * math.log2(1 + abs(phase_error) / (2 * np.pi * f0 * elapsed_s))
    assert drift_cents < 1e-3
    assert abs(phase_error) < 1e-3


def test_filtered_noise_matches_numpy_and_chunks():
    rng = np.random.default_rng(0)
    mags = rng.random((12, 8)).astype(np.float32)
    whole = core.filtered_noise(torch.from_numpy(mags), 40, HOP, seed=3).numpy()
    # NumPy reference: random-phase spectra with interpolated magnitudes, sqrt-Hann, 50% overlap-add.
    n_fft, n_bins = 2 * HOP, HOP + 1
    phases = core.frame_noise_phases(3, 40, 12, n_bins)
    grid = np.linspace(0, 7, n_bins)
    ref = np.zeros(13 * HOP)
    window = np.sqrt(0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n_fft) / n_fft))
    for f in range(12):
        spectrum = np.interp(grid, np.arange(8), mags[f]) * np.exp(1j * phases[f])
        ref[f * HOP:f * HOP + n_fft] += np.fft.irfft(spectrum, n_fft) * window * math.sqrt(n_fft)
    np.testing.assert_allclose(whole, ref, atol=1e-5)
    # Frames depend on their absolute index only: rendering in two pieces overlap-adds to the same.
    a = core.filtered_noise(torch.from_numpy(mags[:5]), 40, HOP, seed=3).numpy()
    b = core.filtered_noise(torch.from_numpy(mags[5:]), 45, HOP, seed=3).numpy()
    joined = np.zeros(13 * HOP)
    joined[: 6 * HOP] += a
    joined[5 * HOP:] += b
    np.testing.assert_allclose(joined, whole, atol=1e-6)


def test_filtered_noise_follows_band_magnitudes():
    mags = torch.zeros(200, 16)
    mags[:, :4] = 1.0  # only the lowest quarter of the spectrum
    audio = core.filtered_noise(mags, 0, HOP, seed=0).numpy()
    spectrum = np.abs(np.fft.rfft(audio)) ** 2
    quarter = spectrum.size // 4
    assert spectrum[: quarter].sum() > 100 * spectrum[quarter + quarter // 2:].sum()


def test_fft_convolve_matches_numpy():
    rng = np.random.default_rng(0)
    x, h = rng.standard_normal(1000), rng.standard_normal(77)
    ours = core.fft_convolve(torch.from_numpy(x), torch.from_numpy(h)).numpy()
    np.testing.assert_allclose(ours, np.convolve(x, h), atol=1e-9)


def test_upsample_linear():
    out = core.upsample_linear(torch.tensor([0.0, 1.0, 3.0]), 4)
    np.testing.assert_allclose(out.numpy(), [0, 0.25, 0.5, 0.75, 1, 1.5, 2, 2.5])


def test_scatter_add_and_pan_classes_are_exact():
    from ostinato.render.ddsp.inference import pan_classes, scatter_add, sum_runs

    rng = np.random.default_rng(0)
    index = rng.integers(0, 40, 500)  # runs of up to ~30 rows per target
    values = rng.standard_normal((500, 7)).astype(np.float32)
    expected = np.zeros((45, 7), np.float32)
    np.add.at(expected, index, values)  # in row order, as scatter_add adds
    np.testing.assert_array_equal(scatter_add(45, index, values), expected)
    starts = np.array([0, 1, 4, 9, 10])
    np.testing.assert_allclose(sum_runs(values[:12], starts), np.add.reduceat(values[:12], starts, axis=0), rtol=1e-6)
    pan = np.array([[1.0, 0.5, 1.0, 0.5], [0.0, 0.5, 0.0, 0.5], [0.2, 0.2, 0.2, 0.3]], np.float32)  # [C, P]
    classes, which = pan_classes(pan)
    assert len(classes) == 3 and which[0] == which[2] and len(set(which.tolist())) == 3
    np.testing.assert_array_equal(classes[which].T, pan)
