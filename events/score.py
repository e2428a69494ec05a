"""Lossless conversion between :class:`NoteTable` and ``symusic.Score`` (tick time).

symusic is the bridge to MIDI files (fast C++ parsing and writing) and to miditok, which
tokenizes a ``symusic.Score`` directly. Ticks, ticks-per-quarter, tempos, meters, keys, track
names, programs, drum flags and the performance data (sustain pedal, volume, expression and
pan controllers, pitch bends: :class:`~events.table.Controls`) all survive
``from_score(to_score(t))`` exactly. What a note table does not represent (other controllers,
lyrics, markers) is not carried.
"""

from __future__ import annotations

import numpy as np
import symusic

from .table import BEND_RANGE, CONTROLLERS, PITCH_BEND, Controls, NoteTable, TempoMap, Track

RPN_MSB, RPN_LSB, DATA_MSB, DATA_LSB = 101, 100, 6, 38   # registered parameter 0,0 = pitch-bend range

_TONALITY_TO_MODE = {0: "major", 1: "minor"}


def from_score(score: symusic.Score) -> NoteTable:
    """A note table holding every note of ``score`` (a tick-time ``symusic.Score``).

    Tracks keep their order, names, programs and drum flags; empty tracks are kept too.
    """
    if score.ttype != symusic.core.Tick():
        score = score.to("tick")
    tracks, arrays, controls = [], [], []
    for index, trk in enumerate(score.tracks):
        tracks.append(Track(name=trk.name, program=int(trk.program), is_drum=bool(trk.is_drum)))
        notes = trk.notes.numpy()  # dict of [n] arrays: time, duration, pitch, velocity
        arrays.append((notes, np.full(len(notes["time"]), index, dtype=np.int32)))
        controls.append(_track_controls(trk, index))
    if arrays:
        time = np.concatenate([a["time"] for a, _ in arrays]).astype(np.int64)
        duration = np.concatenate([a["duration"] for a, _ in arrays]).astype(np.int64)
        pitch = np.concatenate([a["pitch"] for a, _ in arrays])
        velocity = np.concatenate([a["velocity"] for a, _ in arrays])
        track = np.concatenate([t for _, t in arrays])
    else:
        time = duration = pitch = velocity = track = np.zeros(0, dtype=np.int64)
    tempos = [(int(t.time), float(t.qpm)) for t in score.tempos]
    events = [np.concatenate([c[k] for c in controls]) if controls else np.zeros(0, np.int64) for k in range(4)]
    return NoteTable.from_ticks(
        time, time + duration, pitch, velocity, track, tracks,
        ticks_per_quarter=int(score.ticks_per_quarter),
        tempos=tempos,
        time_signatures=[(int(ts.time), int(ts.numerator), int(ts.denominator)) for ts in score.time_signatures],
        key_signatures=[
            (int(k.time), int(k.key), _TONALITY_TO_MODE.get(int(k.tonality), "major")) for k in score.key_signatures
        ],
        controls=Controls.from_ticks(*events, TempoMap(int(score.ticks_per_quarter), tempos)),
    )


def _track_controls(trk, index: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(tick, track, number, value) of the contract's controllers and the pitch bends of one symusic track."""
    cc = trk.controls.numpy() if len(trk.controls) else {"time": [], "number": [], "value": []}
    keep = np.isin(np.asarray(cc["number"], dtype=np.int64), list(CONTROLLERS))
    bends = trk.pitch_bends.numpy() if len(trk.pitch_bends) else {"time": [], "value": []}
    ranges = _bend_ranges(cc)
    tick = np.concatenate([np.asarray(cc["time"], dtype=np.int64)[keep], np.asarray(bends["time"], dtype=np.int64),
                           np.array([t for t, _ in ranges], dtype=np.int64)])
    number = np.concatenate([np.asarray(cc["number"], dtype=np.int64)[keep],
                             np.full(len(bends["time"]), PITCH_BEND, dtype=np.int64),
                             np.full(len(ranges), BEND_RANGE, dtype=np.int64)])
    value = np.concatenate([np.asarray(cc["value"], dtype=np.int64)[keep], np.asarray(bends["value"], dtype=np.int64),
                            np.array([v for _, v in ranges], dtype=np.int64)])
    return tick, np.full(len(tick), index, dtype=np.int64), number, value


def _bend_ranges(cc) -> list[tuple[int, int]]:
    """``(tick, cents)`` of each pitch-bend range a track sets: registered parameter 0,0 (CC101, CC100)
    selected, then data entry CC6 (semitones) and CC38 (cents, optional), in file order."""
    selected, out = (127, 127), []
    for tick, number, value in zip(np.asarray(cc["time"]).tolist(), np.asarray(cc["number"]).tolist(),
                                   np.asarray(cc["value"]).tolist(), strict=True):
        if number == RPN_MSB:
            selected = (value, selected[1])
        elif number == RPN_LSB:
            selected = (selected[0], value)
        elif number == DATA_MSB and selected == (0, 0):
            out.append((tick, 100 * value))
        elif number == DATA_LSB and selected == (0, 0) and out:
            out[-1] = (out[-1][0], 100 * (out[-1][1] // 100) + min(value, 99))
    return out


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
    controls = table.controls
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
        mine = controls.track == index
        cc = mine & (controls.number != PITCH_BEND) & (controls.number != BEND_RANGE)
        bend, bend_range = mine & (controls.number == PITCH_BEND), mine & (controls.number == BEND_RANGE)
        # a bend range as the controllers that set it: RPN 0,0 then data entry (semitones, cents)
        cents = controls.value[bend_range]
        rpn = np.stack([np.full(len(cents), RPN_MSB), np.full(len(cents), RPN_LSB), np.full(len(cents), DATA_MSB),
                        np.full(len(cents), DATA_LSB)], axis=1).ravel()
        rpn_values = np.stack([np.zeros(len(cents), np.int64), np.zeros(len(cents), np.int64), cents // 100,
                               cents % 100], axis=1).ravel()
        times = np.concatenate([controls.tick[cc], np.repeat(controls.tick[bend_range], 4)])
        numbers = np.concatenate([controls.number[cc], rpn])
        values = np.concatenate([controls.value[cc], rpn_values])
        ordered = np.argsort(times, kind="stable")   # in time order, as in a file
        if len(ordered):
            out.controls = symusic.ControlChange.from_numpy(
                time=times[ordered].astype(np.int32), number=numbers[ordered].astype(np.uint8),
                value=values[ordered].astype(np.uint8))
        if bend.any():
            out.pitch_bends = symusic.PitchBend.from_numpy(time=controls.tick[bend].astype(np.int32),
                                                           value=controls.value[bend].astype(np.int32))
        score.tracks.append(out)
    return score
