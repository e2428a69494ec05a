"""Piano rolls: the frame-level view of a note table that renderers are conditioned on.

Frame ``f`` covers ``[f / frame_rate_hz, (f + 1) / frame_rate_hz)`` seconds. A note that
starts at ``onset_s`` and ends at ``offset_s`` starts in frame ``round(onset_s * rate)``
and sounds up to (not including) frame ``round(offset_s * rate)``, at least one frame.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from .table import NoteTable, Track

N_PITCHES = 128
MAX_ROLL_BYTES = 4 * 1024**3


@dataclass(eq=False)
class PianoRoll:
    """Per-track onset, frame and velocity planes, each of shape ``[n_tracks, 128, n_frames]``.

    Attributes:
        onset: bool, True in the first frame of each note.
        frame: bool, True in every frame where a note sounds.
        velocity: uint8, the velocity (1-127) of the sounding note, 0 where silent.
        frame_rate_hz: frames per second.
        tracks: the tracks (name, program, drum flag) of the planes' first axis.
    """

    onset: np.ndarray
    frame: np.ndarray
    velocity: np.ndarray
    frame_rate_hz: float
    tracks: list[Track]

    @property
    def n_frames(self) -> int:
        return int(self.frame.shape[-1])

    def to_notes(self, ticks_per_quarter: int = 480, tempos: list[tuple[int, float]] | None = None) -> NoteTable:
        """Notes back from the planes: a note starts at each onset (or where a silent pitch
        begins to sound) and lasts until the pitch stops sounding or the next onset.

        Times are frame boundaries in seconds; ticks follow from ``tempos`` (default 120 qpm).
        """
        rate = self.frame_rate_hz
        active = self.frame | self.onset  # [n_tracks, 128, n_frames]
        padded = np.pad(active, ((0, 0), (0, 0), (1, 1)))
        rising = padded[..., 1:-1] & ~padded[..., :-2]  # sounding now, silent before
        begins = np.flatnonzero(rising | (self.onset & active))  # flat [track, pitch, frame] indices, sorted
        lasts = np.flatnonzero(padded[..., 1:-1] & ~padded[..., 2:])  # last sounding frame of each run
        # A note ends after the last frame of its run, or earlier where the next note begins
        # (every run ends inside its own row, so the next begin is in the same row when it is sooner).
        run_end = lasts[np.searchsorted(lasts, begins)] + 1
        next_begin = np.append(begins[1:], np.iinfo(np.int64).max)
        ends = np.minimum(run_end, next_begin)
        tracks, pitches, starts = np.unravel_index(begins, active.shape)
        velocity = self.velocity[tracks, pitches, starts].astype(np.int64)
        return NoteTable.from_seconds(
            starts / rate, (starts + ends - begins) / rate, pitches, np.clip(velocity, 1, 127),
            track=tracks.astype(np.int32), tracks=list(self.tracks), ticks_per_quarter=ticks_per_quarter, tempos=tempos,
        ).sorted()


def to_pianoroll(table: NoteTable, frame_rate_hz: float = 100.0) -> PianoRoll:
    """The piano roll of ``table`` at ``frame_rate_hz`` frames per second.

    Where two notes of one pitch overlap in a track, the later one's onset and velocity win.

    Raises:
        ValueError: the roll would need more than 4 GiB.
    """
    if not frame_rate_hz > 0:
        raise ValueError(f"frame_rate_hz must be > 0, got {frame_rate_hz}")
    n_tracks = max(table.n_tracks, 1)
    start = np.rint(table.onset_s * frame_rate_hz).astype(np.int64)
    end = np.maximum(np.rint(table.offset_s * frame_rate_hz).astype(np.int64), start + 1)
    n_frames = int(end.max()) if len(table) else 0
    if 3 * n_tracks * N_PITCHES * n_frames > MAX_ROLL_BYTES:
        raise ValueError(f"piano roll of {n_tracks} tracks x {n_frames} frames exceeds {MAX_ROLL_BYTES} bytes")
    shape = (n_tracks, N_PITCHES, n_frames)
    onset = np.zeros(shape, dtype=bool)
    frame = np.zeros(shape, dtype=bool)
    velocity = np.zeros(shape, dtype=np.uint8)
    for i in np.argsort(table.onset_tick, kind="stable"):
        trk, pitch = table.track[i], table.pitch[i]
        frame[trk, pitch, start[i]:end[i]] = True
        velocity[trk, pitch, start[i]:end[i]] = table.velocity[i]
    onset[table.track, table.pitch, start] = True
    return PianoRoll(onset=onset, frame=frame, velocity=velocity, frame_rate_hz=float(frame_rate_hz),
                     tracks=list(table.tracks))
