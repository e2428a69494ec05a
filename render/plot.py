"""Log-mel spectrograms of audio files, with the notes of a MIDI file overlaid (``ostinato plot``).

    fig = spectrogram_figure(audio, 44100, notes=table)   # audio float [n_channels, n_samples] or [n_samples]
    plot_spectrogram("out.wav", "out.png", notes=table)

The mel filterbank is the HTK one (``mel = 2595 log10(1 + f / 700)``), triangular, over
``N_MELS`` bands from 0 Hz to Nyquist; the picture is 10 log10 of the mel power (dB). Notes are
drawn as outlined boxes at the mel height of their fundamental.
"""

from __future__ import annotations

import os

import numpy as np

N_FFT = 2048
HOP = 512
N_MELS = 128
MAX_PLOT_SECONDS = 3600            # longer audio is refused (its samples would fill memory for one picture)
MAX_AUDIO_BYTES = 4 * 1024 ** 3


def hz_to_mel(f_hz):
    return 2595.0 * np.log10(1.0 + np.asarray(f_hz, np.float64) / 700.0)


def mel_to_hz(mel):
    return 700.0 * (10.0 ** (np.asarray(mel, np.float64) / 2595.0) - 1.0)


def mel_filterbank(sample_rate_hz: int, n_fft: int = N_FFT, n_mels: int = N_MELS) -> np.ndarray:
    """Triangular HTK mel filters: float64 [n_mels, n_fft // 2 + 1]."""
    bins_hz = np.linspace(0, sample_rate_hz / 2, n_fft // 2 + 1)
    edges = mel_to_hz(np.linspace(0, hz_to_mel(sample_rate_hz / 2), n_mels + 2))
    lower, centre, upper = edges[:-2, None], edges[1:-1, None], edges[2:, None]
    rising = (bins_hz[None] - lower) / np.maximum(centre - lower, 1e-9)
    falling = (upper - bins_hz[None]) / np.maximum(upper - centre, 1e-9)
    return np.maximum(0.0, np.minimum(rising, falling))


def log_mel(audio: np.ndarray, sample_rate_hz: int) -> tuple[np.ndarray, np.ndarray]:
    """``(db [n_mels, n_frames], frame_times_s [n_frames])`` of mono-mixed ``audio``."""
    from scipy.signal import stft

    mono = np.asarray(audio, np.float64)
    mono = mono.mean(0) if mono.ndim == 2 else mono
    _, times, spec = stft(mono, fs=sample_rate_hz, window="hann", nperseg=N_FFT, noverlap=N_FFT - HOP)
    power = np.abs(spec) ** 2   # [n_fft // 2 + 1, n_frames]
    mel = mel_filterbank(sample_rate_hz) @ power
    return 10.0 * np.log10(np.maximum(mel, 1e-10)), times


def mel_band_of_pitch(pitch: int, sample_rate_hz: int) -> tuple[float, float]:
    """The y extent (in mel-band units, as drawn) of a note's fundamental: +-half a semitone."""
    top = hz_to_mel(sample_rate_hz / 2)

    def band(midi):
        return float(hz_to_mel(440.0 * 2 ** ((midi - 69) / 12)) / top * (N_MELS + 1) - 1)

    return band(pitch - 0.5), band(pitch + 0.5)


def spectrogram_figure(audio: np.ndarray, sample_rate_hz: int, *, notes=None, title: str = ""):
    """A matplotlib Figure: the log-mel spectrogram (seconds across, mel bands up), notes outlined."""
    from matplotlib.figure import Figure

    db, times = log_mel(audio, sample_rate_hz)
    duration = max(float(times[-1]) if len(times) else 0.0, 1.0)
    fig = Figure(figsize=(min(max(6.0, duration * 0.6), 24.0), 5.0), dpi=100)
    ax = fig.add_subplot()
    top = db.max()
    ax.imshow(db, origin="lower", aspect="auto", cmap="magma", vmin=top - 80, vmax=top,
              extent=(0, float(times[-1]) if len(times) else 1.0, -0.5, N_MELS - 0.5))
    if notes is not None and len(notes):
        from ostinato.events.plot import draw_notes

        draw_notes(ax, notes, y_of_pitch=lambda p: mel_band_of_pitch(p, sample_rate_hz), filled=False)
    ax.set_xlim(0, float(times[-1]) if len(times) else 1.0)
    top_mel = hz_to_mel(sample_rate_hz / 2)
    ticks_hz = [f for f in (100, 250, 500, 1000, 2000, 4000, 8000, 16000) if f < sample_rate_hz / 2]
    ax.set_yticks([float(hz_to_mel(f) / top_mel * (N_MELS + 1) - 1) for f in ticks_hz],
                  [f"{f // 1000}k" if f >= 1000 else str(f) for f in ticks_hz])
    ax.set_xlabel("time (s)")
    ax.set_ylabel("frequency (Hz, mel scale)")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def plot_spectrogram(path: str | os.PathLike, out: str | os.PathLike, *, notes=None):
    """Read the audio file ``path`` and draw its log-mel spectrogram into the PNG ``out``; returns the Figure.

    Raises:
        events.InputError: not a regular audio file, shorter than ``N_FFT`` samples, longer than
            ``MAX_PLOT_SECONDS``, or holding NaN/infinite samples (one line naming the file).
    """
    import soundfile

    from ostinato.events.errors import InputError
    from ostinato.events.limits import ReadLimits, check_regular_file
    from ostinato.events.plot import save_png

    check_regular_file(path, ReadLimits(max_file_bytes=MAX_AUDIO_BYTES))   # no FIFO, device or huge file
    try:
        info = soundfile.info(path)
        if info.frames > MAX_PLOT_SECONDS * info.samplerate:
            raise InputError(path, f"{info.frames / info.samplerate / 60:.0f} minutes of audio is too long to draw "
                                   f"(limit {MAX_PLOT_SECONDS // 60} minutes)")
        audio, rate = soundfile.read(path, dtype="float32", always_2d=True)
    except InputError:
        raise
    except Exception as exc:
        raise InputError(path, f"cannot read audio: {' '.join(str(exc).split())}") from None
    if len(audio) < N_FFT:
        raise InputError(path, f"too short to draw: {len(audio)} sample{'s' if len(audio) != 1 else ''} "
                               f"(a spectrogram needs at least {N_FFT})")
    if not np.isfinite(audio).all():
        raise InputError(path, "holds samples that are not numbers (NaN or infinity)")
    fig = spectrogram_figure(audio.T, rate, notes=notes, title=os.path.basename(path))
    save_png(fig, out)
    return fig
