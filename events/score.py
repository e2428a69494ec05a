"""Lossless conversion between :class:`NoteTable` and ``symusic.Score`` (tick time).

symusic is the bridge to MIDI files (fast C++ parsing and writing) and to miditok, which
tokenizes a ``symusic.Score`` directly. Ticks, ticks-per-quarter, tempos, meters, keys, track
names, programs and drum flags all survive ``from_score(to_score(t))`` exactly. What a note
table does not represent (controllers, pedals, pitch bends, lyrics, markers) is not carried.
"""

from __future__ import annotations

import numpy as np
import symusic

from .table import NoteTable, Track

_TONALITY_TO_MODE = {0: "major", 1: "minor"}


def from_score(score: symusic.Score) -> NoteTable:
    """A note table holding every note of ``score`` (a tick-time ``symusic.Score``).

    Tracks keep their order, names, programs and drum flags; empty tracks are kept too.
    """
    if score.ttype != symusic.core.Tick():
        score = score.to("tick")
    tracks, arrays = [], []
    for index, trk in enumerate(score.tracks):
        tracks.append(Track(name=trk.name, program=int(trk.program), is_drum=bool(trk.is_drum)))
        notes = trk.notes.numpy()  # dict of [n] arrays: time, duration, pitch, velocity
        arrays.append((notes, np.full(len(notes["time"]), index, dtype=np.int32)))
    if arrays:
        time = np.concatenate([a["time"] for a, _ in arrays]).astype(np.int64)
        duration = np.concatenate([a["duration"] for a, _ in arrays]).astype(np.int64)
        pitch = np.concatenate([a["pitch"] for a, _ in arrays])
        velocity = np.concatenate([a["velocity"] for a, _ in arrays])
        track = np.concatenate([t for _, t in arrays])
    else:
        time = duration = pitch = velocity = track = np.zeros(0, dtype=np.int64)
    return NoteTable.from_ticks(
        time, time + duration, pitch, velocity, track, tracks,
        ticks_per_quarter=int(score.ticks_per_quarter),
        tempos=[(int(t.time), float(t.qpm)) for t in score.tempos],
        time_signatures=[(int(ts.time), int(ts.numerator), int(ts.denominator)) for ts in score.time_signatures],
        key_signatures=[
            (int(k.time), int(k.key), _TONALITY_TO_MODE.get(int(k.tonality), "major")) for k in score.key_signatures
        ],
    )


def to_score(table: NoteTable) -> symusic.Score:
    """A tick-time ``symusic.Score`` with one track per table track.

    Church modes (ABC's ``Dmix``) are written as their key signature with the major flag,
    since MIDI key signatures know only major and minor.
    """
    score = symusic.Score(table.ticks_per_quarter)
    for tempo in table.tempos:
        score.tempos.append(symusic.Tempo(tempo.tick, tempo.qpm))
    for ts in table.time_signatures:
        score.time_signatures.append(symusic.TimeSignature(ts.tick, ts.numerator, ts.denominator))
    for ks in table.key_signatures:
        score.key_signatures.append(symusic.KeySignature(ks.tick, ks.sharps, 1 if ks.mode == "minor" else 0))
    order = np.argsort(table.track, kind="stable")
    bounds = np.searchsorted(table.track[order], np.arange(len(table.tracks) + 1))
    for index, trk in enumerate(table.tracks):
        rows = order[bounds[index]:bounds[index + 1]]
        rows = rows[np.lexsort((table.pitch[rows], table.onset_tick[rows]))]
        out = symusic.Track(name=trk.name, program=trk.program, is_drum=trk.is_drum)
        out.notes = symusic.Note.from_numpy(
            time=table.onset_tick[rows].astype(np.int32),
            duration=(table.offset_tick[rows] - table.onset_tick[rows]).astype(np.int32),
            pitch=table.pitch[rows].astype(np.int8),
            velocity=table.velocity[rows].astype(np.int8),
        )
        score.tracks.append(out)
    return score
