"""The ``soundfont`` engine: FluidSynth playing a SoundFont (.sf2/.sf3), kept loaded across files.

It is the reference renderer and the maker of paired training data. Each track of the note
table gets its own MIDI channel (up to 256), with its General MIDI program on bank 0, or the
standard drum kit (bank 128, preset 0) for drum tracks. The table's performance data
(sustain pedal, volume, expression, pan, pitch bend) is sent at its times; a track whose file
sets no pan at its start is panned by :func:`events.table.default_pans` (GM-style seating), so a
multi-track piece is stereo (``default_pans=False`` leaves every channel centred, as the
``fluidsynth`` program does). FluidSynth's default reverb, chorus and gain (0.2) are kept.
"""

from __future__ import annotations

import ctypes
import math
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ostinato.events.table import BEND_RANGE, PAN, PITCH_BEND, default_pans

from .base import DEFAULT_CHUNK_S, N_CHANNELS, Renderer, check_sample_rate, n_output_samples
from .fluidsynth_lib import CHANNEL_TYPE_DRUM, CHANNEL_TYPE_MELODIC

DEBIAN_SOUNDFONT = Path("/usr/share/sounds/sf2/FluidR3_GM.sf2")
N_MIDI_CHANNELS = 256
DRUM_BANK = 128


def default_soundfont() -> Path:
    """FluidR3_GM from Debian's ``fluid-soundfont-gm`` when installed, else pretty_midi's TimGM6mb."""
    if DEBIAN_SOUNDFONT.is_file():
        return DEBIAN_SOUNDFONT
    import pretty_midi

    return Path(pretty_midi.__file__).parent / "TimGM6mb.sf2"


def note_events(table, sample_rate_hz: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Note-on/off events of ``table`` in playing order.

    Returns:
        (sample [n_events] int64, is_on [n_events] bool, channel, pitch, velocity [n_events] int).
        At equal times note-offs come first, so a repeated note is struck again.
    """
    n = len(table)
    start = np.rint(table.onset_s * sample_rate_hz).astype(np.int64)
    end = np.maximum(np.rint(table.offset_s * sample_rate_hz).astype(np.int64), start + 1)
    sample = np.concatenate([end, start])
    is_on = np.concatenate([np.zeros(n, bool), np.ones(n, bool)])
    channel = np.tile(table.track.astype(np.int64) % N_MIDI_CHANNELS, 2)
    pitch = np.tile(table.pitch.astype(np.int64), 2)
    velocity = np.tile(table.velocity.astype(np.int64), 2)
    order = np.lexsort((is_on, sample))
    return sample[order], is_on[order], channel[order], pitch[order], velocity[order]


CONTROL, NOTE_OFF, NOTE_ON = 0, 1, 2  # event kinds, in their order at equal times


def performance_events(table, sample_rate_hz: int, *, pans: bool = True
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Every event of ``table`` for a synth: controllers, pitch bends, note-offs, note-ons, in playing order.

    Returns:
        (sample [n] int64, kind [n] (CONTROL, NOTE_OFF or NOTE_ON), channel [n], a [n], b [n]):
        for notes a = pitch and b = velocity; for controls a = controller number (``PITCH_BEND``
        for a bend, ``BEND_RANGE`` for a bend range) and b = value (a bend's -8192..8191, a range's
        cents). At equal times controls come first (a pedal pressed with a note-off holds it), then
        note-offs (a repeated note is struck again), then note-ons. With ``pans``, tracks get their
        :func:`default_pans` at sample 0, before
        the file's own events.
    """
    sample, is_on, channel, pitch, velocity = note_events(table, sample_rate_hz)
    c = _whole_semitone_ranges(table.controls)
    if pans and table.tracks:
        pan_tracks = np.arange(min(len(table.tracks), N_MIDI_CHANNELS))
        pan_values = np.asarray(default_pans(table.tracks), dtype=np.int64)[pan_tracks]
    else:
        pan_tracks = pan_values = np.zeros(0, dtype=np.int64)
    c_sample = np.concatenate([np.zeros(len(pan_tracks), np.int64),
                               np.rint(c.time_s * sample_rate_hz).astype(np.int64)])
    c_channel = np.concatenate([pan_tracks, c.track.astype(np.int64) % N_MIDI_CHANNELS])
    c_number = np.concatenate([np.full(len(pan_tracks), PAN, np.int64), c.number.astype(np.int64)])
    c_value = np.concatenate([pan_values, c.value.astype(np.int64)])
    all_sample = np.concatenate([c_sample, sample])
    kind = np.concatenate([np.full(len(c_sample), CONTROL), np.where(is_on, NOTE_ON, NOTE_OFF)])
    sequence = np.arange(len(all_sample))  # controls keep their order (the last of a tick wins)
    order = np.lexsort((sequence, kind, all_sample))
    a = np.concatenate([c_number, pitch])
    b = np.concatenate([c_value, velocity])
    return all_sample[order], kind[order], np.concatenate([c_channel, channel])[order], a[order], b[order]


def _whole_semitone_ranges(c):
    """``c`` with each bend range of a fraction of a semitone (which FluidSynth rounds down: it reads no
    cents) as the next whole semitone, and that track's bends scaled to sound as far as they should."""
    import math

    from ostinato.events.table import Controls

    fractional = np.unique(c.track[(c.number == BEND_RANGE) & (c.value % 100 != 0)])
    if len(fractional) == 0:
        return c
    keep = ~np.isin(c.track, fractional) | ~np.isin(c.number, [PITCH_BEND, BEND_RANGE])
    parts = [(c.tick[keep], c.time_s[keep], c.track[keep], c.number[keep], c.value[keep])]
    for track in fractional.tolist():
        mine = (c.track == track) & np.isin(c.number, [PITCH_BEND, BEND_RANGE])
        at = np.unique(c.time_s[mine])
        ticks = np.array([c.tick[mine][c.time_s[mine] == t][0] for t in at], dtype=np.int64)
        cents = c.values_at(track, BEND_RANGE, at)
        whole = np.array([math.ceil(v / 100) * 100 for v in cents.tolist()], dtype=np.int64)
        bend = np.clip(np.rint(c.values_at(track, PITCH_BEND, at) * cents / np.maximum(whole, 1)), -8192, 8191)
        n = len(at)
        parts.append((np.repeat(ticks, 2), np.repeat(at, 2), np.full(2 * n, track),
                      np.tile([BEND_RANGE, PITCH_BEND], n), np.stack([whole, bend.astype(np.int64)], 1).ravel()))
    tick, time_s, track_, number, value = (np.concatenate([p[i] for p in parts]) for i in range(5))
    order = np.lexsort((np.arange(len(tick)), tick, number, track_))
    return Controls(tick=tick[order], time_s=time_s[order], track=track_[order], number=number[order],
                    value=value[order])


class SoundFontRenderer(Renderer):
    """FluidSynth through ctypes; one synth per sample rate, the SoundFont loaded once per synth.

    Args:
        soundfont: a .sf2/.sf3 file (default: :func:`default_soundfont`).
        gain: FluidSynth's master gain (``synth.gain``; the CLI's ``-g``), default 0.2.
        reverb, chorus: FluidSynth's effects (on by default, as in the CLI).
        default_pans: pan tracks whose file sets no pan (see the module); False centres them.
    """

    name = "soundfont"

    def __init__(self, soundfont: str | os.PathLike | None = None, *, gain: float = 0.2,
                 reverb: bool = True, chorus: bool = True, default_pans: bool = True):
        from ostinato.events import InputError

        from .fluidsynth_lib import library

        self._holder = None
        self.soundfont = Path(soundfont) if soundfont is not None else default_soundfont()
        if not self.soundfont.is_file():
            raise InputError(self.soundfont, "SoundFont not found")
        if not 0 < gain <= 10:
            raise ValueError(f"gain must be in (0, 10], got {gain}")
        self.gain, self.reverb, self.chorus = float(gain), bool(reverb), bool(chorus)
        self.default_pans = bool(default_pans)
        self._lib = library()
        self._holder: tuple[int, int, int] | None = self._new_synth(44100)  # keeps the samples loaded

    def _new_synth(self, sample_rate_hz: int) -> tuple[int, int, int]:
        """A fresh synth (settings, synth, SoundFont id): every piece starts from silence, so the
        same notes always give the same samples. FluidSynth shares loaded sample data between
        synths, and the first synth is kept as the holder, so only the first load reads the file."""
        from ostinato.events import InputError

        lib = self._lib
        settings = lib.new_fluid_settings()
        lib.fluid_settings_setnum(settings, b"synth.sample-rate", float(sample_rate_hz))
        lib.fluid_settings_setnum(settings, b"synth.gain", self.gain)
        lib.fluid_settings_setint(settings, b"synth.midi-channels", N_MIDI_CHANNELS)
        lib.fluid_settings_setint(settings, b"synth.reverb.active", int(self.reverb))
        lib.fluid_settings_setint(settings, b"synth.chorus.active", int(self.chorus))
        lib.fluid_settings_setint(settings, b"synth.cpu-cores", 1)
        synth = lib.new_fluid_synth(settings)
        sfont = lib.fluid_synth_sfload(synth, os.fsencode(self.soundfont), 1)
        if sfont < 0:
            lib.delete_fluid_synth(synth)
            lib.delete_fluid_settings(settings)
            raise InputError(self.soundfont, "FluidSynth could not load this SoundFont")
        return settings, synth, sfont

    def _delete(self, settings: int, synth: int) -> None:
        self._lib.delete_fluid_synth(synth)
        self._lib.delete_fluid_settings(settings)

    def stream(self, table, sample_rate_hz: int = 44100, *, chunk_s: float = DEFAULT_CHUNK_S) -> Iterator[np.ndarray]:
        sample_rate_hz = check_sample_rate(sample_rate_hz)
        if self._holder is None:
            raise RuntimeError("this SoundFontRenderer is closed")
        lib = self._lib
        settings, synth, sfont = self._new_synth(sample_rate_hz)
        try:
            for index, track in enumerate(table.tracks[:N_MIDI_CHANNELS]):
                drum = bool(track.is_drum)
                lib.fluid_synth_set_channel_type(synth, index, CHANNEL_TYPE_DRUM if drum else CHANNEL_TYPE_MELODIC)
                lib.fluid_synth_program_select(synth, index, sfont, DRUM_BANK if drum else 0,
                                               0 if drum else int(track.program))
            total = n_output_samples(table.duration_s, sample_rate_hz, self.tail_s)
            sample, kind, channel, a, b = performance_events(table, sample_rate_hz, pans=self.default_pans)
            chunk = max(64, math.ceil(chunk_s * sample_rate_hz))
            fptr = ctypes.POINTER(ctypes.c_float)
            event, n_events, position = 0, len(sample), 0
            while position < total:
                n = min(chunk, total - position)
                out = np.zeros((N_CHANNELS, n), dtype=np.float32)
                done = 0
                while done < n:
                    while event < n_events and sample[event] <= position + done:
                        ch, x, y = int(channel[event]), int(a[event]), int(b[event])
                        if kind[event] == NOTE_ON:
                            lib.fluid_synth_noteon(synth, ch, x, y)
                        elif kind[event] == NOTE_OFF:
                            lib.fluid_synth_noteoff(synth, ch, x)
                        elif x == PITCH_BEND:
                            lib.fluid_synth_pitch_bend(synth, ch, y + 8192)
                        elif x == BEND_RANGE:   # registered parameter 0: semitones, then cents
                            for number, value in ((101, 0), (100, 0), (6, y // 100), (38, y % 100)):
                                lib.fluid_synth_cc(synth, ch, number, value)
                        else:
                            lib.fluid_synth_cc(synth, ch, x, y)
                        event += 1
                    until = n if event >= n_events else min(n, int(sample[event]) - position)
                    left = out[0, done:].ctypes.data_as(fptr)
                    right = out[1, done:].ctypes.data_as(fptr)
                    lib.fluid_synth_write_float(synth, until - done, left, 0, 1, right, 0, 1)
                    done = until
                position += n
                yield out
        finally:
            self._delete(settings, synth)

    def close(self) -> None:
        if self._holder is not None:
            self._delete(*self._holder[:2])
            self._holder = None

    def __del__(self) -> None:
        try:  # noqa: SIM105 (at interpreter exit, modules such as contextlib may be gone already)
            self.close()
        except Exception:
            pass
