"""render.envelope: fall, attack and peak times and spectral flatness, on signals whose answers are known."""

from __future__ import annotations

import numpy as np
import pytest

from ostinato.render.envelope import attack_time_s, envelope_db, fall_time_s, peak_time_s, spectral_flatness

RATE = 20000  # 100 samples per 5 ms window


def test_fall_time_of_an_exponential_decay_is_exact():
    t = np.arange(RATE) / RATE
    onset = 0.1
    # 60 dB per second from the onset: 30 dB down after 0.5 s
    signal = np.where(t >= onset, np.sin(2 * np.pi * 1000 * t) * 10 ** (-3 * (t - onset)), 0.0)
    assert fall_time_s(signal, RATE, onset) == pytest.approx(0.5, abs=0.005)
    assert fall_time_s(signal, RATE, onset, drop_db=12) == pytest.approx(0.2, abs=0.005)
    assert fall_time_s(np.stack([signal, signal]), RATE, onset) == fall_time_s(signal, RATE, onset)


def test_attack_and_peak_times_of_a_ramp():
    t = np.arange(RATE) / RATE
    onset = 0.1
    level = np.clip((t - onset) / 0.2, 0, 1)  # linear ramp over 200 ms, then held
    level[t > 0.5] *= 1.1  # a louder moment later: the peak, not the attack
    signal = level * np.sin(2 * np.pi * 1000 * t)
    # within 3 dB of the held level (1.0 of 1.1 max): amplitude 1.1 / sqrt(2) at 155.6 ms into the ramp
    assert attack_time_s(signal, RATE, onset) == pytest.approx(0.2 * 1.1 / np.sqrt(2), abs=0.006)
    assert peak_time_s(signal, RATE, onset) > 0.4
    assert envelope_db(signal, RATE).shape == (200,)


def test_spectral_flatness_tells_noise_from_tones():
    rng = np.random.default_rng(0)
    noise = rng.standard_normal(RATE)
    tone = np.sin(2 * np.pi * 440 * np.arange(RATE) / RATE)
    assert spectral_flatness(noise, RATE, 0, 1.0) > 0.5
    assert spectral_flatness(tone, RATE, 0, 1.0) < 1e-3
