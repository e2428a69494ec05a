"""Per-note voices and their frame-rate conditioning, from a note table.

A voice is one note: it sounds from the frame of its onset to ``release_frames`` frames after
its offset frame (or after the pedal's release, when the sustain pedal holds it). Its
conditioning at frame ``f`` (time ``t = f * hop / sample_rate``):
pitch, velocity, decays ``exp(-t_on / tau)`` of the time since onset and (after the note ends)
since release, a released flag, and the piano-roll context (notes sounding in its track).
The instrument (GM program, or 128 + drum key) is embedded by the model.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ostinato.events.table import with_sustain

from ..instruments import DRUM_OFFSET
from .config import DDSPConfig


@dataclass
class Voices:
    """The notes of a table as voices on the model's frame grid (all arrays [n_voices])."""

    instrument: np.ndarray  # int64 index (program, or 128 + drum key), after mapping to trained ones
    pitch: np.ndarray  # int64 MIDI pitch (drum key for drums)
    velocity: np.ndarray  # int64 1..127
    track: np.ndarray  # int64
    is_drum: np.ndarray  # bool
    onset_s: np.ndarray  # float64
    offset_s: np.ndarray  # float64
    onset_sample: np.ndarray  # int64, native rate
    first_frame: np.ndarray  # int64, frame at or before the onset
    end_frame: np.ndarray  # int64, exclusive: last sounding frame + 1 (amplitude 0 there)

    def __len__(self) -> int:
        return int(self.pitch.shape[0])

    def select(self, mask: np.ndarray) -> Voices:
        return Voices(**{k: v[mask] for k, v in self.__dict__.items()})


def voices_of(table, config: DDSPConfig, instrument_map: np.ndarray | None = None) -> Voices:
    """The voices of ``table``; ``instrument_map`` ([256] int64) maps instruments to trained ones.

    Notes held by the sustain pedal sound until it is lifted (:func:`events.table.with_sustain`).
    """
    table = with_sustain(table)
    instrument = np.where(table.is_drum, DRUM_OFFSET + table.pitch.astype(np.int64), table.program.astype(np.int64))
    if instrument_map is not None:
        instrument = instrument_map[instrument]
    sr, hop = config.sample_rate_hz, config.hop_samples
    onset_sample = np.rint(table.onset_s * sr).astype(np.int64)
    offset_sample = np.maximum(np.rint(table.offset_s * sr).astype(np.int64), onset_sample + 1)
    first_frame = onset_sample // hop
    end_frame = -(-offset_sample // hop) + config.release_frames + 1
    return Voices(instrument=instrument, pitch=table.pitch.astype(np.int64), velocity=table.velocity.astype(np.int64),
                  track=table.track.astype(np.int64), is_drum=table.is_drum.astype(bool),
                  onset_s=table.onset_s.astype(np.float64),
                  offset_s=np.maximum(table.offset_s, table.onset_s).astype(np.float64), onset_sample=onset_sample,
                  first_frame=first_frame, end_frame=end_frame)


def n_features(config: DDSPConfig) -> int:
    """Width of the per-frame feature vector (the embedding is added by the model)."""
    return 5 + 2 * len(config.time_scales_s)


def f0_hz(pitch: np.ndarray) -> np.ndarray:
    """Equal-tempered frequency of MIDI pitches (A4 = 69 = 440 Hz); drums use their key's pitch too."""
    return 440.0 * 2.0 ** ((pitch.astype(np.float64) - 69.0) / 12.0)


def active_pairs(voices: Voices, first_frame: int, n_frames: int, config: DDSPConfig
                 ) -> tuple[np.ndarray, np.ndarray]:
    """The (voice, frame) pairs where a voice sounds among frames ``first_frame .. + n_frames - 1``.

    A voice sounds from the first frame at or after its onset sample up to (not including) its
    end frame; elsewhere its amplitude is 0 (so it ramps up from the frame before its onset).
    Returns (voice index [n_pairs] int64, absolute frame [n_pairs] int64).
    """
    sounding_from = -(-voices.onset_sample // config.hop_samples)
    start = np.maximum(sounding_from, first_frame)
    stop = np.minimum(voices.end_frame, first_frame + n_frames)
    counts = np.clip(stop - start, 0, None)
    voice = np.repeat(np.arange(len(voices)), counts)
    offsets = np.arange(counts.sum()) - np.repeat(np.cumsum(counts) - counts, counts)
    return voice, np.repeat(start, counts) + offsets


def pair_features(voices: Voices, voice: np.ndarray, frame: np.ndarray, config: DDSPConfig) -> np.ndarray:
    """Conditioning at (voice, absolute frame) pairs: [n_pairs, n_features(config)] float32."""
    t = frame * (config.hop_samples / config.sample_rate_hz)  # [P] seconds
    t_on = np.clip((frame * config.hop_samples - voices.onset_sample[voice]) / config.sample_rate_hz, 0, None)
    t_off = t - voices.offset_s[voice]
    released = (t_off > 0).astype(np.float64)
    taus = np.asarray(config.time_scales_s)
    decay_on = np.exp(-t_on[:, None] / taus)  # [P, n_taus]
    decay_off = np.exp(-np.clip(t_off, 0, None)[:, None] / taus) * released[:, None]
    polyphony = _pair_polyphony(voices, voice, t)
    columns = [(voices.pitch[voice] - 64.0) / 32.0, voices.velocity[voice] / 127.0, released,
               np.log(t_on + 1e-2) / 4.0, np.log1p(polyphony) / 2.0]
    features = np.concatenate([np.stack(columns, -1), decay_on, decay_off], axis=-1)
    return features.astype(np.float32)


def _pair_polyphony(voices: Voices, voice: np.ndarray, times_s: np.ndarray) -> np.ndarray:
    """Notes of the pair's track sounding (onset <= t < offset) at the pair's time, among ``voices``.

    A note that sounds at a frame of the chunk is always among the chunk's voices, so the count
    does not depend on the chunking.
    """
    out = np.zeros(voice.shape[0])
    track_of_pair = voices.track[voice]
    for track in np.unique(track_of_pair):
        mine = voices.track == track
        on = np.sort(voices.onset_s[mine])
        off = np.sort(voices.offset_s[mine])
        here = track_of_pair == track
        out[here] = np.searchsorted(on, times_s[here], side="right") - np.searchsorted(off, times_s[here], side="right")
    return out


def chunk_voices(voices: Voices, first_frame: int, end_frame: int) -> Voices:
    """The voices that sound in frames ``[first_frame, end_frame)``."""
    return voices.select((voices.first_frame < end_frame) & (voices.end_frame > first_frame))

