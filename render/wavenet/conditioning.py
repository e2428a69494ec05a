"""A piece's local conditioning: the shared piano roll (``events.to_pianoroll``), grouped by instrument.

Each instrument (GM program, or 128 for a drum kit) that plays in the piece gets the three
planes of the piano roll of its notes at the model's frame rate: onset, frame and velocity,
each ``[128 pitches, n_frames]``. The model encodes each instrument's planes with its
embedding and sums the instruments (see :mod:`render.wavenet.model`).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass

import numpy as np

from ostinato.events import NoteTable, Track, to_pianoroll

from ..instruments import DRUM_OFFSET

N_PLANES = 3  # onset, frame, velocity
N_PITCHES = 128


@dataclass
class Conditioning:
    """The planes of a piece, by instrument.

    Attributes:
        instruments: [n_instruments] int64 instrument indices (after mapping to trained ones).
        planes: uint8 [n_instruments, 3, 128, n_frames]: onset (0/1), frame (0/1), velocity (0-127).
    """

    instruments: np.ndarray
    planes: np.ndarray

    @property
    def n_frames(self) -> int:
        return int(self.planes.shape[-1])

    def window(self, first_frame: int, n_frames: int) -> np.ndarray:
        """float32 ``[n_instruments, 3 * 128, n_frames]`` of frames ``first_frame ..`` (silence outside the roll).

        Onset and frame planes are 0/1, velocity is ``velocity / 127``.
        """
        out = np.zeros((len(self.instruments), N_PLANES, N_PITCHES, n_frames), dtype=np.float32)
        a, b = max(first_frame, 0), min(first_frame + n_frames, self.n_frames)
        if b > a:
            out[..., a - first_frame:b - first_frame] = self.planes[..., a:b]
            out[:, 2] /= 127.0
        return out.reshape(len(self.instruments), N_PLANES * N_PITCHES, n_frames)


def instrument_of(table: NoteTable) -> np.ndarray:
    """[n_notes] int64: the note's GM program, or 128 (``DRUM_OFFSET``) for a drum note."""
    return np.where(table.is_drum, DRUM_OFFSET, table.program.astype(np.int64))


def conditioning_of(table: NoteTable, frame_rate_hz: float, instrument_map: np.ndarray | None = None
                    ) -> Conditioning:
    """The conditioning of ``table`` at ``frame_rate_hz``.

    ``instrument_map`` ([256] int64, :func:`render.instruments.instrument_map`) sends each instrument
    to one the model was trained on.
    """
    instrument = instrument_of(table)
    if instrument_map is not None:
        instrument = instrument_map[instrument]
    unique, group = np.unique(instrument, return_inverse=True)
    grouped = dataclasses.replace(table, track=group.reshape(-1).astype(np.int32),
                                  tracks=[Track(str(i), int(i) % 128, bool(i >= DRUM_OFFSET)) for i in unique])
    roll = to_pianoroll(grouped, frame_rate_hz)
    planes = np.stack([roll.onset.astype(np.uint8), roll.frame.astype(np.uint8), roll.velocity], axis=1)
    return Conditioning(instruments=unique.astype(np.int64), planes=planes[: len(unique)])
