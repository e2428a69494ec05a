"""What a MIDI file says beyond its notes, on the DDSP model's frame grid: loudness, pan and pitch bend
(and the model's calibrated gains: per instrument, and the velocity curve it did not learn).

The sustain pedal is turned into note lengths before voices are made
(:func:`events.table.with_sustain`); the rest lives here, as per-track step curves sampled at
frame starts (frame ``f`` at sample ``f * hop``; the synthesizer interpolates linearly between
frames, so a step becomes a one-frame ramp):

- loudness: ``(volume * expression / (100 * 127)) ** 2`` on the voice's amplitude, the
  General MIDI curve (40 log10 of each controller, in dB) relative to a channel's defaults
  (volume 100, expression 127), which is what the model was trained on; 1.0 without events.
- pan: the track's CC10, else :func:`events.table.default_pans`, plus a fixed offset per drum
  key (a kit is wider than one point), as constant-power gains normalised so that the centre
  is 1.0 in each channel (a centred mono model's output is unchanged).
- pitch bend: a frequency ratio ``2 ** (semitones / 12)`` per frame, ±2 semitones at full
  bend. A bent voice's phase runs on warped time ``W(n) = sum of ratios of samples < n``, so
  it stays continuous across frames, chunks and bends.
"""

from __future__ import annotations

import math

import numpy as np

from ostinato.events.table import (
    BEND_RANGE,
    DEFAULT_VALUES,
    EXPRESSION,
    PAN,
    PITCH_BEND,
    VOLUME,
    default_pans,
)

from .config import DDSPConfig

#: Pan offsets (-1 left .. +1 right) of GM drum keys around the kit's pan, audience view.
DRUM_KEY_PANS = {
    42: 0.3, 44: 0.3, 46: 0.3,  # hi-hats
    49: -0.35, 57: 0.35, 52: -0.45, 55: -0.2,  # crashes, china, splash
    51: 0.4, 53: 0.4, 59: 0.4,  # rides
    50: -0.35, 48: -0.2, 47: -0.05, 45: 0.1, 43: 0.25, 41: 0.35,  # toms, high to low
}
_DRUM_OFFSETS = np.zeros(128)
for _key, _pan in DRUM_KEY_PANS.items():
    _DRUM_OFFSETS[_key] = _pan


def pan_gains(position: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Constant-power (left, right) gains of pan positions in -1..1, 1.0 each at the centre; same shapes."""
    angle = (np.clip(position, -1.0, 1.0) + 1.0) * (math.pi / 4)
    return math.sqrt(2) * np.cos(angle), math.sqrt(2) * np.sin(angle)


def cc_pan_position(value: np.ndarray) -> np.ndarray:
    """CC10 values (0..127, 64 = centre) as pan positions in -1..1."""
    return np.clip((np.asarray(value, dtype=np.float64) - 64.0) / 63.0, -1.0, 1.0)


class Performance:
    """The per-track curves of one table on the frame grid of ``config``.

    Args:
        table: the note table (its ``controls`` and ``tracks`` are used).
        config: the model's config (sample rate and hop).
        stereo: False gives a single channel with gain 1.0 (loudness only).
        instrument_gain: linear gain per (mapped) instrument, ``[N_INSTRUMENTS]`` (default: the
            config's calibrated ``instrument_gain``).
    """

    def __init__(self, table, config: DDSPConfig, *, stereo: bool = True, instrument_gain: np.ndarray | None = None):
        self.controls = table.controls
        self.hop = config.hop_samples
        self.frame_s = config.hop_samples / config.sample_rate_hz
        self.stereo = stereo
        self.instrument_gain = config.instrument_gain if instrument_gain is None else np.asarray(instrument_gain)
        self.velocity_exponents = config.velocity_exponents  # [N_INSTRUMENTS]
        self.pans = np.asarray(default_pans(table.tracks) or [64], dtype=np.int64)
        self._bends: dict[int, tuple[np.ndarray, np.ndarray, np.ndarray]] = {}
        self._curves: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}  # (track, number) -> times, values
        c = self.controls
        for track in np.unique(c.track[c.number == PITCH_BEND]).tolist():
            _, time_s, value = c.events(track, PITCH_BEND)
            if np.any(value != 0):   # a bend times the range in force (RPN 0; 2 semitones by default)
                times = np.union1d(time_s, c.events(track, BEND_RANGE)[1])
                semitones = (c.values_at(track, PITCH_BEND, times) / 8192.0
                             * c.values_at(track, BEND_RANGE, times) / 100.0)
                self._bends[track] = self._segments(times, semitones)

    @property
    def n_channels(self) -> int:
        return 2 if self.stereo else 1

    def _segments(self, time_s: np.ndarray, semitones: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """(first frame [S], ratio [S], warped samples at the first frame [S]) of a track's constant-bend runs
        (``semitones``: the bend from each of ``time_s`` on)."""
        start = np.concatenate([[0], np.ceil(time_s / self.frame_s - 1e-9).astype(np.int64)])
        semitones = np.concatenate([[0.0], semitones])
        last = np.append(start[1:] != start[:-1], True)  # of several bends before one frame, the last counts
        start, ratio = start[last], 2.0 ** (semitones[last] / 12.0)
        warped = np.concatenate([[0.0], np.cumsum(np.diff(start) * ratio[:-1] * self.hop)])
        return start, ratio, warped

    def gains(self, voices, voice: np.ndarray, frame: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Gains of (voice, frame) pairs: loudness ``[P]`` (volume, expression, instrument calibration)
        and pan ``[n_channels, P]`` (ones without stereo), both float32."""
        loudness = self.instrument_gain[voices.instrument[voice]].astype(np.float64)
        if self.velocity_exponents.any():
            loudness *= (voices.velocity[voice] / 127.0) ** self.velocity_exponents[voices.instrument[voice]]
        pan = np.ones((self.n_channels, len(voice)), dtype=np.float64)
        if not len(voice):
            return loudness.astype(np.float32), pan.astype(np.float32)
        times = frame * self.frame_s
        track_of_pair = voices.track[voice]
        drum_offset = np.where(voices.is_drum[voice], _DRUM_OFFSETS[voices.pitch[voice] % 128], 0.0)
        for track in np.unique(track_of_pair).tolist():
            here = track_of_pair == track
            t = times[here]
            volume = self._values_at(track, VOLUME, t, DEFAULT_VALUES[VOLUME])
            expression = self._values_at(track, EXPRESSION, t, DEFAULT_VALUES[EXPRESSION])
            loudness[here] *= (volume * expression / (100.0 * 127.0)) ** 2
            if self.stereo:
                default = int(self.pans[track]) if track < len(self.pans) else 64
                position = cc_pan_position(self._values_at(track, PAN, t, default)) + drum_offset[here]
                pan[0, here], pan[1, here] = pan_gains(position)
        return loudness.astype(np.float32), pan.astype(np.float32)

    def _values_at(self, track: int, number: int, times_s: np.ndarray, default: int) -> np.ndarray:
        """As :meth:`events.table.Controls.values_at`, with each track's events looked up once per piece."""
        if (track, number) not in self._curves:
            self._curves[track, number] = self.controls.events(track, number)[1:]
        time_s, value = self._curves[track, number]
        i = np.searchsorted(time_s, times_s, side="right") - 1
        return np.where(i >= 0, np.append(value, 0)[i], default).astype(np.float64)

    def bent(self, voices) -> np.ndarray:
        """[n_voices] bool: the voice's track bends at some time (such voices take the exact slow path)."""
        return np.isin(voices.track, list(self._bends)) if self._bends else np.zeros(len(voices), dtype=bool)

    def ratio(self, track: np.ndarray, frame: np.ndarray) -> np.ndarray:
        """Frequency ratio (1.0 = no bend) of ``track`` at ``frame`` (int arrays of one shape): float64."""
        out = np.ones(np.shape(frame), dtype=np.float64)
        for t, (start, ratio, _) in self._bends.items():
            here = track == t
            out[here] = ratio[np.searchsorted(start, frame[here], side="right") - 1]
        return out

    def warped(self, track: np.ndarray, sample: np.ndarray) -> np.ndarray:
        """Warped time ``W`` (in samples, float64) of ``track`` at absolute ``sample`` (int arrays, one shape)."""
        out = np.asarray(sample, dtype=np.float64).copy()
        for t, (start, ratio, warped) in self._bends.items():
            here = track == t
            s = sample[here]
            i = np.searchsorted(start, s // self.hop, side="right") - 1
            out[here] = warped[i] + (s - start[i] * self.hop) * ratio[i]
        return out
