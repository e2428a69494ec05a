"""The shape of one sound, as a listener judges a drum hit or a piano attack: when it peaks, how fast it
falls, how noise-like it is. Used by ``benchmarks/render_fidelity.py`` to put one engine's single hits
beside another's.

    envelope = envelope_db(audio, 44100)          # level in dB per 5 ms window
    fall_time_s(audio, 44100, onset_s=0.1)        # onset -> 30 dB below the peak, for good
    peak_time_s(audio, 44100, onset_s=0.1)        # onset -> loudest window
    attack_time_s(audio, 44100, onset_s=0.1)      # onset -> first window within 3 dB of the loudest
    spectral_flatness(audio, 44100, 0.1, 0.5)     # 1.0 white noise, near 0 a few partials
"""

from __future__ import annotations

import numpy as np

WINDOW_S = 0.005


def _mono(audio: np.ndarray) -> np.ndarray:
    audio = np.asarray(audio, dtype=np.float64)
    return audio.mean(0) if audio.ndim == 2 else audio


def envelope_db(audio: np.ndarray, sample_rate_hz: int, window_s: float = WINDOW_S) -> np.ndarray:
    """RMS level of the mono mix in consecutive windows of ``window_s``, in dB (floor -200): ``[n_windows]``."""
    mono = _mono(audio)
    size = max(1, round(window_s * sample_rate_hz))
    n = len(mono) // size
    power = (mono[: n * size].reshape(n, size) ** 2).mean(1)
    return 10 * np.log10(np.maximum(power, 1e-20))


def peak_time_s(audio: np.ndarray, sample_rate_hz: int, onset_s: float = 0.0) -> float:
    """Seconds from ``onset_s`` to the middle of the loudest 5 ms window after it."""
    env = envelope_db(audio, sample_rate_hz)
    first = int(onset_s / WINDOW_S)
    return (first + int(np.argmax(env[first:])) + 0.5) * WINDOW_S - onset_s


def attack_time_s(audio: np.ndarray, sample_rate_hz: int, onset_s: float = 0.0, within_db: float = 3.0) -> float:
    """Seconds from ``onset_s`` to the middle of the first 5 ms window within ``within_db`` of the loudest
    after it: when a sound has reached its peak level, however its sustained level wobbles afterwards
    (a SoundFont piano's chorus makes its loudest window come 70 ms late, 2 dB above its attack)."""
    env = envelope_db(audio, sample_rate_hz)
    first = int(onset_s / WINDOW_S)
    after = env[first:]
    return (first + int(np.flatnonzero(after >= after.max() - within_db)[0]) + 0.5) * WINDOW_S - onset_s


def fall_time_s(audio: np.ndarray, sample_rate_hz: int, onset_s: float = 0.0, drop_db: float = 30.0) -> float:
    """Seconds from ``onset_s`` until the level is ``drop_db`` below its peak and stays there
    (the end of the last window above that line); the whole length when it never falls so far."""
    env = envelope_db(audio, sample_rate_hz)
    first = int(onset_s / WINDOW_S)
    after = env[first:]
    above = np.flatnonzero(after > after.max() - drop_db)
    return (first + int(above[-1]) + 1) * WINDOW_S - onset_s


def spectral_flatness(audio: np.ndarray, sample_rate_hz: int, start_s: float = 0.0, length_s: float = 0.5,
                      n_fft: int = 2048) -> float:
    """Wiener entropy of the power spectrum of ``[start_s, start_s + length_s)``: the geometric over the
    arithmetic mean of Welch's estimate (Hann, 50% overlap) over all bins but DC; 1.0 for white noise."""
    from scipy.signal import welch

    mono = _mono(audio)
    a = int(start_s * sample_rate_hz)
    segment = mono[a: a + int(length_s * sample_rate_hz)]
    _, power = welch(segment, fs=sample_rate_hz, nperseg=min(n_fft, len(segment)))
    power = np.maximum(power[1:], 1e-30)
    return float(np.exp(np.mean(np.log(power))) / np.mean(power))
