"""MIDI event tokens: miditok (REMI, TSD or MIDILike, with programs) behind MuseNet-style controls.

A sequence is::

    <bos> Style:<collection> Key:<key> Meter:<n/d> Tempo:<bpm> Inst:<program>... <miditok events...> <eos>

The control prefix says what the piece (or window) is: its collection or composer, key,
meter, tempo bucket and the instruments present (GM programs 0-127, ``Inst:drums``). Drums are
an instrument like any other (miditok's program -1). The events are miditok's own tokens for
the chosen scheme, copied into our vocabulary as the block ``events``, so miditok's
quantisation is the only loss (its documented grid: ``beat_res``, ``num_velocities``, ...).

The vocabulary is laid out as named blocks: ``special`` (``<pad> <bos> <eos>``), ``style``,
``key``, ``meter``, ``tempo``, ``instrument``, ``events``. A long piece is cut into training
windows at bar lines (:meth:`MidiTokenizer.encode_windows`); each window carries the tempo and
meter in force where it starts, and the key its own notes are in (:func:`key_of`).

:class:`MidiTokenizer` is the MIDI implementation of :class:`symbolic.tokenizers.Tokenizer`: its
controls are :class:`MidiControls` and its grammar the scheme's :class:`symbolic.midi_grammar.MidiGrammar`.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import symusic

from ostinato.events import NoteTable, from_score, to_score
from ostinato.events.atomic import write_text_atomic
from ostinato.events.errors import InputError
from ostinato.events.instruments import DRUMS, MORE_PARTS
from ostinato.events.theory import (
    MAJOR_MINOR_KEYS,
    PITCH_CLASS_NAMES,
    estimate_key,
    major_minor_key,
    major_minor_name,
    tonic_pc,
)
from ostinato.symbolic.fast_remi import fast_remi_ids

SCHEMES = ("remi", "tsd", "midilike")


def _playable(programs: np.ndarray, pitches: np.ndarray) -> bool:
    """Whether every pitch is within its program's General MIDI range (:data:`events.instruments.GM_RANGES`)."""
    from ostinato.events.instruments import GM_RANGE_TABLE

    low, high = GM_RANGE_TABLE[programs, 0], GM_RANGE_TABLE[programs, 1]
    return bool(((pitches >= low) & (pitches <= high)).all())
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")  # ids 0, 1, 2, as in every ostinato tokenizer
VERSION = 1

KEY_NAMES = MAJOR_MINOR_KEYS    # the Key: control values, "C major" .. "B minor" (one spelling per tonic)
METERS = ("2/4", "3/4", "4/4", "5/4", "6/4", "2/2", "3/2", "4/2", "3/8", "5/8", "6/8", "7/8", "9/8", "12/8")
TEMPO_BUCKETS_BPM = (40, 48, 56, 63, 72, 80, 88, 96, 104, 112, 120, 132, 144, 160, 176, 192, 208, 240)
# The Key: control of a user's key text: one of KEY_NAMES, or None (see events.theory.major_minor_key).
key_name = major_minor_key
# Schemes with a vectorised encoder giving miditok's own ids (the others use miditok's encode).
_FAST_EVENT_IDS = {"remi": fast_remi_ids}

# miditok settings we choose (everything else keeps miditok's defaults); saved with the tokenizer.
DEFAULT_MIDITOK = {
    "use_programs": True, "one_token_stream_for_programs": True, "use_tempos": True,
    "use_time_signatures": True, "use_rests": False, "use_chords": False, "num_velocities": 16,
    "beat_res": {(0, 4): 12, (4, 12): 4}, "special_tokens": ["PAD"],
}


# Caps on what a tokenizer config may ask for (a tokenizer.json is input: beat_res [[0, 100000], 1000]
# alone would make miditok build 10^8 position tokens). Generous beside the defaults above.
MAX_STYLES = 4096
MAX_STYLE_CHARS = 200
MAX_BEATS = 64                  # beat_res / beat_res_rest ranges end at most here
MAX_BEAT_RES = 64               # positions per beat
MAX_POSITIONS = 4096            # sum of (end - start) * res over a beat_res
MAX_VOCAB = 65536               # the miditok vocabulary, checked once built


def _int(name: str, value, low: int, high: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        raise ValueError(f"miditok.{name}: expected a whole number in {low}..{high}, got {value!r}")
    return value


def _number(name: str, value, low: float, high: float) -> float:
    import math

    if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value) \
            or not low <= value <= high:
        raise ValueError(f"miditok.{name}: expected a number in {low}..{high}, got {value!r}")
    return value


def _numbers(name: str, value, bounds: tuple[tuple[float, float], ...], *, whole: bool = False) -> None:
    """``value``: a list of ``len(bounds)`` numbers, each within its bounds."""
    if not isinstance(value, list | tuple) or len(value) != len(bounds):
        raise ValueError(f"miditok.{name}: expected {len(bounds)} numbers, got {_short(value)}")
    for v, (low, high) in zip(value, bounds, strict=True):
        (_int if whole else _number)(name, v, low, high)


def _ints(name: str, value, low: int, high: int, most: int) -> None:
    if not isinstance(value, list | tuple) or len(value) > most:
        raise ValueError(f"miditok.{name}: expected a list of at most {most} whole numbers, got {_short(value)}")
    for v in value:
        _int(name, v, low, high)


def _short(value) -> str:
    text = repr(value)
    return text if len(text) <= 60 else text[:57] + "..."


def _range(name: str, value, low: int, high: int) -> None:
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ValueError(f"miditok.{name}: expected [low, high], got {_short(value)}")
    _int(name, value[0], low, high)
    _int(name, value[1], low, high)
    if value[0] > value[1]:
        raise ValueError(f"miditok.{name}: low {value[0]} is above high {value[1]}")


def _beat_res(name: str, value) -> None:
    if not isinstance(value, dict) or not value or len(value) > MAX_BEATS:
        raise ValueError(f"miditok.{name}: expected 1 to {MAX_BEATS} [[start, end], positions per beat] "
                         f"entries, got {_short(value)}")
    total = 0
    spans = []
    for span, res in value.items():
        if not isinstance(span, tuple) or len(span) != 2:
            raise ValueError(f"miditok.{name}: expected [start, end] beats, got {_short(span)}")
        start, end = (_int(name, beat, 0, MAX_BEATS) for beat in span)
        if start >= end:
            raise ValueError(f"miditok.{name}: beats [{start}, {end}] are empty (start must be below end)")
        total += (end - start) * _int(name, res, 1, MAX_BEAT_RES)
        spans.append((start, end))
    spans.sort()
    for (start, end), (next_start, next_end) in itertools.pairwise(spans):
        if next_start < end:
            raise ValueError(f"miditok.{name}: beats [{next_start}, {next_end}] overlap [{start}, {end}]")
    if total > MAX_POSITIONS:
        raise ValueError(f"miditok.{name}: {total} positions (limit {MAX_POSITIONS})")


def _flag(name: str, value) -> None:
    if not isinstance(value, bool):
        raise ValueError(f"miditok.{name}: expected true or false, got {_short(value)}")


def _time_signatures(name: str, value) -> None:
    if not isinstance(value, dict) or len(value) > 8:
        raise ValueError(f"miditok.{name}: expected at most 8 denominators, got {_short(value)}")
    for denominator, numerators in value.items():
        _int(name, denominator, 1, 64)
        _ints(name, numerators, 1, 128, 128)   # numerators, or miditok's (low, high): within 1..128 either way


def _chord_maps(name: str, value) -> None:
    if not isinstance(value, dict) or len(value) > 64:
        raise ValueError(f"miditok.{name}: expected at most 64 chords, got {_short(value)}")
    for chord, intervals in value.items():
        if not isinstance(chord, str) or len(chord) > 32:
            raise ValueError(f"miditok.{name}: a chord name must be text of at most 32 characters, got {_short(chord)}")
        _ints(name, intervals, 0, 127, 12)


def _special_tokens(name: str, value) -> None:
    if not isinstance(value, list | tuple) or len(value) > 64 or \
            not all(isinstance(t, str) and 0 < len(t) <= 64 for t in value):
        raise ValueError(f"miditok.{name}: expected at most 64 names of 1 to 64 characters, got {_short(value)}")


def _choice(*allowed):
    def check(name: str, value) -> None:
        if value not in allowed:
            raise ValueError(f"miditok.{name}: expected one of {', '.join(map(str, allowed))}, got {_short(value)}")
    return check


_BOUNDED = {
    "pitch_range": lambda n, v: _range(n, v, 0, 127), "drums_pitch_range": lambda n, v: _range(n, v, 0, 127),
    "beat_res": _beat_res, "beat_res_rest": _beat_res,
    "num_velocities": lambda n, v: _int(n, v, 1, 127), "special_tokens": _special_tokens,
    "encode_ids_split": _choice("bar", "beat", "no"),
    "use_note_duration_programs": lambda n, v: _ints(n, v, -1, 127, 129),
    "programs": lambda n, v: _ints(n, v, -1, 127, 129),
    "control_change_numbers": lambda n, v: _ints(n, v, 0, 127, 128),
    "control_change_n_bins": lambda n, v: _int(n, v, 1, 128),
    "default_note_duration": lambda n, v: _number(n, v, 0, MAX_BEATS),
    "chord_maps": _chord_maps,
    "chord_unknown": lambda n, v: None if v is None else _range(n, v, 1, 128),
    "num_tempos": lambda n, v: _int(n, v, 1, 512),
    "tempo_range": lambda n, v: _numbers(n, v, ((1, 1000), (1, 1000))),
    "time_signature_range": _time_signatures,
    "pitch_bend_range": lambda n, v: _numbers(n, v, ((-8192, 8191), (-8192, 8191), (1, 1024)), whole=True),
    "max_pitch_interval": lambda n, v: _int(n, v, 0, 127),
    "pitch_intervals_max_time_dist": lambda n, v: _number(n, v, 0, MAX_BEATS),
    "ac_polyphony_min": lambda n, v: _int(n, v, 0, 128), "ac_polyphony_max": lambda n, v: _int(n, v, 0, 128),
    "ac_note_density_track_min": lambda n, v: _int(n, v, 0, 256),
    "ac_note_density_track_max": lambda n, v: _int(n, v, 0, 256),
    "ac_note_density_bar_max": lambda n, v: _int(n, v, 0, 256),
    "ac_repetition_track_num_bins": lambda n, v: _int(n, v, 1, 256),
    "ac_repetition_track_num_consec_bars": lambda n, v: _int(n, v, 1, 64),
}


def check_miditok_options(options: dict) -> None:
    """Refuse miditok options that are unknown, of the wrong type, or would make a huge vocabulary.

    Every ``miditok.TokenizerConfig`` field is allowed; the ones that size the vocabulary are capped
    (``beat_res``: at most :data:`MAX_POSITIONS` positions over :data:`MAX_BEATS` beats, ...).

    Raises:
        ValueError: ``miditok.<field>: <problem>``, one line.
    """
    import inspect

    import miditok as mt

    known = {name for name, parameter in inspect.signature(mt.TokenizerConfig.__init__).parameters.items()
             if parameter.kind is inspect.Parameter.POSITIONAL_OR_KEYWORD and name != "self"}
    for name, value in options.items():
        if name not in known:
            raise ValueError(f"miditok.{name if isinstance(name, str) else _short(name)}: not a miditok "
                             "TokenizerConfig option")
        if name in _BOUNDED:
            _BOUNDED[name](name, value)
        elif name.startswith(("use_", "ac_")) or name in ("one_token_stream_for_programs", "program_changes",
                                                         "log_tempos", "remove_duplicated_notes",
                                                         "delete_equal_successive_tempo_changes",
                                                         "delete_equal_successive_time_sig_changes",
                                                         "sustain_pedal_duration", "chord_tokens_with_root_note"):
            _flag(name, value)


def check_styles(styles) -> tuple[str, ...]:
    """``styles`` as a tuple of names, or ValueError: at most :data:`MAX_STYLES` names of text."""
    if isinstance(styles, str) or not isinstance(styles, list | tuple | set | frozenset) \
            or len(styles) > MAX_STYLES:
        raise ValueError(f"styles: expected a list of at most {MAX_STYLES} names, got {_short(styles)}")
    for style in styles:
        if not isinstance(style, str) or not 0 < len(style) <= MAX_STYLE_CHARS:
            raise ValueError(f"styles: a style is text of 1 to {MAX_STYLE_CHARS} characters, got {_short(style)}")
    return tuple(styles)


@dataclass(frozen=True)
class Controls:
    """What the control prefix says about a piece. ``None`` means unknown (its ``none`` token)."""

    style: str | None = None
    key: str | None = None          # one of KEY_NAMES, e.g. "F# minor"
    meter: str | None = None        # e.g. "6/8"
    tempo_bpm: float | None = None
    instruments: tuple[int | str, ...] = ()   # GM programs 0-127 and/or "drums"


@dataclass(frozen=True)
class MidiControls:
    """Controls of a MIDI piece: the control prefix plus its length in bars or seconds (None: free).

    ``tracks`` (from :meth:`MidiTokenizer.primer`) keeps a primer's parts apart: one
    ``(token program, program, track name)`` per part, where parts that share a GM program were
    given distinct stand-in programs in the tokens; :meth:`MidiTokenizer.finish` gives each part its
    own track and its own program back.
    """

    controls: Controls = field(default_factory=Controls)
    bars: int | None = None
    seconds: float | None = None
    tracks: tuple[tuple[int, int, str], ...] = ()
    written_key: str | None = None  # the key asked for: composed in a key of its mode the model picks, then moved


def tempo_bucket(bpm: float) -> int:
    """The nearest tempo bucket (beats per minute) to ``bpm``."""
    return min(TEMPO_BUCKETS_BPM, key=lambda b: abs(np.log(b / max(bpm, 1e-3))))


def key_of(table: NoteTable) -> str | None:
    """The ``Key:`` control of a note table: the key its notes are in (one of KEY_NAMES, None: no pitched note).

    Found by the Krumhansl-Schmuckler method on the pitch classes weighted by how long they sound
    (:func:`events.theory.estimate_key`, the same answer as music21's ``analyze("key")``), not read
    from the key signature: Baroque signatures write G minor with one flat and D dorian with none,
    and a control that means the notes is one the model can honour and a listener can hear.
    """
    pitched = ~table.is_drum
    if not pitched.any():
        return None
    length = np.maximum(table.offset_tick[pitched] - table.onset_tick[pitched], 1).astype(np.float64)
    return estimate_key(np.bincount(table.pitch[pitched] % 12, weights=length, minlength=12))


# Stand-in programs for parts that share a GM program (SATB on one piano), highest part first: the
# "mixed" ensemble (flute, violin, horn, cello), then the programs the training pieces' extra parts had.
STAND_INS = MORE_PARTS


def stand_ins(table: NoteTable) -> tuple[NoteTable, tuple[tuple[int, int, str], ...]]:
    """``(table, tracks)``: when pitched parts share a GM program (miditok's one token stream would
    merge them), each pitched part gets a distinct stand-in program, highest part first; ``tracks``
    maps them back (``(stand-in, program, name)``, see :class:`MidiControls`). Otherwise unchanged, ``()``."""
    from ostinato.events.instruments import retrack
    from ostinato.events.table import Track

    pitched = [i for i, t in enumerate(table.tracks) if not t.is_drum and np.any(table.track == i)]
    programs = [table.tracks[i].program for i in pitched]
    if len(set(programs)) == len(programs) or len(pitched) > len(STAND_INS):
        return table, ()
    mean = {i: float(table.pitch[table.track == i].mean()) for i in pitched}
    order = sorted(pitched, key=lambda i: -mean[i])
    tracks, mapping = list(table.tracks), []
    for stand_in, i in zip(STAND_INS, order, strict=False):
        mapping.append((stand_in, tracks[i].program, tracks[i].name))
        tracks[i] = Track(name=tracks[i].name, program=stand_in, is_drum=False)
    return retrack(table, tracks), tuple(mapping)


def _opening(events: list):
    """The last of the events at the first event's tick (or None)."""
    if not events:
        return None
    first = [e for e in events if e.tick == events[0].tick]
    return first[-1]


class MidiTokenizer:
    """MIDI events as tokens: a miditok scheme plus a control prefix.

    Args:
        scheme: ``"remi"`` (default, with ``Bar`` tokens), ``"tsd"`` or ``"midilike"``.
        styles: the collection/composer names the ``Style:`` block knows (``Style:none`` is always there).
        miditok: overrides of :data:`DEFAULT_MIDITOK` (any ``miditok.TokenizerConfig`` field).

    Attributes:
        kind, scheme: the scheme (``kind`` is the name saved in the tokenizer JSON).
        unit: ``"note"``: likelihood is given in bits per note.
        file_format: ``"mid"``: composed pieces are notes, written as MIDI.
    """

    kind: str
    unit = "note"
    file_format = "mid"
    tokens_per_bar = 512   # the sampler's budget a bar (a four-part chorale bar is about 80, a dense piano bar 260)

    @property
    def slides(self) -> bool:
        """Whether :meth:`window` re-encodes a piece shorter (REMI), so it may outgrow the model's context."""
        return self.scheme == "remi"

    def __init__(self, scheme: str = "remi", *, styles: Sequence[str] = (), miditok: dict | None = None):
        import miditok as mt

        if scheme not in SCHEMES:
            raise ValueError(f"scheme: unknown MIDI token scheme {scheme!r} (choose one of {', '.join(SCHEMES)})")
        self.kind = self.scheme = scheme
        self.styles = tuple(sorted(set(check_styles(styles))))
        if miditok is not None and not isinstance(miditok, dict):
            raise ValueError(f"miditok: expected an object of TokenizerConfig options, got {_short(miditok)}")
        options = dict(DEFAULT_MIDITOK)
        options.update(miditok or {})
        check_miditok_options(options)   # before miditok builds anything: a config is input (resource bombs)
        self.miditok_options = options
        cls = {"remi": mt.REMI, "tsd": mt.TSD, "midilike": mt.MIDILike}[scheme]
        self.miditok = cls(mt.TokenizerConfig(**options))
        if len(self.miditok.vocab) > MAX_VOCAB:
            raise ValueError(f"miditok: these options make {len(self.miditok.vocab)} tokens (limit {MAX_VOCAB})")
        events = [token for token, _ in sorted(self.miditok.vocab.items(), key=lambda kv: kv[1])]
        self.vocab: list[str] = []
        self.blocks: dict[str, tuple[int, int]] = {}
        for name, tokens in [
            ("special", list(SPECIAL_TOKENS)),
            ("style", ["Style:none", *(f"Style:{s}" for s in self.styles)]),
            ("key", ["Key:none", *(f"Key:{k}" for k in KEY_NAMES)]),
            ("meter", ["Meter:none", *(f"Meter:{m}" for m in METERS)]),
            ("tempo", [f"Tempo:{b}" for b in TEMPO_BUCKETS_BPM]),
            ("instrument", [*(f"Inst:{p}" for p in range(128)), f"Inst:{DRUMS}"]),
            ("events", events),
        ]:
            self.blocks[name] = (len(self.vocab), len(self.vocab) + len(tokens))
            self.vocab.extend(tokens)
        self.token_to_id = {token: i for i, token in enumerate(self.vocab)}
        self.events_offset = self.blocks["events"][0]
        self.pad_id, self.bos_id, self.eos_id = 0, 1, 2
        pitch_types = ("Pitch_", "PitchDrum_")
        self.note_ids = np.array([self.events_offset + i for i, t in enumerate(events) if t.startswith(pitch_types)])

    def __len__(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return f"MidiTokenizer({self.scheme!r}, styles={len(self.styles)}, vocab={len(self)})"

    def block_of(self, token_id: int) -> str:
        """The name of the block holding ``token_id``."""
        for name, (start, stop) in self.blocks.items():
            if start <= token_id < stop:
                return name
        raise ValueError(f"token id {token_id} out of range 0..{len(self.vocab) - 1}")

    # ------------------------------------------------------------------ controls
    def controls_of(self, table: NoteTable, style: str | None = None) -> Controls:
        """The controls a note table implies: the key of its notes (:func:`key_of`), its opening meter
        and tempo, and its instruments.

        When several events share the first tick (a file may list 2/4 then 4/4 at tick 0), the
        last one wins, as in miditok's own encoding.
        """
        instruments: list[int | str] = sorted(set(table.program[~table.is_drum].tolist()))
        if table.has_drums:
            instruments.append(DRUMS)
        meter = _opening(table.time_signatures)
        tempo = _opening(table.tempos)
        return Controls(
            style=style,
            key=key_of(table),
            meter=meter.text if meter is not None else None,
            tempo_bpm=tempo.qpm if tempo is not None else None,
            instruments=tuple(instruments),
        )

    def control_ids(self, controls: Controls) -> list[int]:
        """The prefix ``<bos> Style Key Meter Tempo Inst...`` for ``controls`` (unknown values -> ``none``;
        instruments in the training pieces' order, programs ascending then drums, whatever order they are asked in)."""
        style = controls.style if controls.style in self.styles else "none"
        meter = controls.meter if controls.meter in METERS else "none"
        key = controls.key if controls.key in KEY_NAMES else "none"
        tempo = tempo_bucket(controls.tempo_bpm or 120.0)
        tokens = ["<bos>", f"Style:{style}", f"Key:{key}", f"Meter:{meter}", f"Tempo:{tempo}"]
        # in the order the training pieces have them (controls_of): programs ascending, then drums
        for instrument in sorted(dict.fromkeys(controls.instruments), key=lambda i: (i == DRUMS, str(i).zfill(3))):
            if instrument != DRUMS and not (isinstance(instrument, int) and 0 <= instrument <= 127):
                raise ValueError(f"instruments: {instrument!r} is not a GM program 0-127 or {DRUMS!r}")
            tokens.append(f"Inst:{instrument}")
        return [self.token_to_id[t] for t in tokens]

    # ------------------------------------------------------------------ encode / decode
    def _event_ids(self, score: symusic.Score) -> list[int]:
        fast = _FAST_EVENT_IDS.get(self.scheme)
        ids = fast(self.miditok, score) if fast is not None else None   # miditok's ids, vectorised (or None)
        if ids is None:
            seq = self.miditok.encode(score)
            ids = seq.ids if not isinstance(seq, list) else [i for s in seq for i in s.ids]
        return [self.events_offset + i for i in ids]

    def encode(self, table: NoteTable, *, style: str | None = None) -> list[int]:
        """The whole piece as one sequence: ``<bos>`` + controls + events + ``<eos>``."""
        return self.control_ids(self.controls_of(table, style)) + self._event_ids(to_score(table)) + [self.eos_id]

    def encode_windows(self, table: NoteTable, *, max_tokens: int, style: str | None = None) -> list[list[int]]:
        """Cut a piece into sequences of at most ``max_tokens`` tokens at bar lines.

        Each window is a piece of its own (controls, events from its first bar, ``<eos>`` only on
        the last window), so it carries the tempo and meter in force where it starts and the key of
        its own notes. A
        window is halved (by bars) until it fits; a single bar that does not fit is cut at beats,
        and only a single beat longer than ``max_tokens`` is truncated.
        """
        score = to_score(table)
        end = max(score.end(), 1)
        bars = [int(t) for t in score.get_downbeats()] if len(table) else [0]
        bars = sorted({0, *(b for b in bars if 0 <= b < end)})
        windows: list[list[int]] = []
        self._split(score, [*bars, end], end, max_tokens, style, windows)
        return windows

    def _split(self, score, bounds: list[int], end: int, max_tokens: int, style, out: list) -> None:
        """Encode ``[bounds[0], bounds[-1])``, halving over ``bounds`` until each part fits."""
        ids = self._window(score, bounds[0], bounds[-1], style, last=bounds[-1] == end)
        if len(ids) <= max_tokens:
            out.append(ids)
            return
        if len(bounds) == 2:   # one bar (or beat) too long: cut it at beats, else truncate
            beats = list(range(bounds[0], bounds[1], score.ticks_per_quarter))
            if len(beats) > 1:
                self._split(score, [*beats, bounds[1]], end, max_tokens, style, out)
            else:
                out.append(ids[:max_tokens])
            return
        mid = len(bounds) // 2
        self._split(score, bounds[:mid + 1], end, max_tokens, style, out)
        self._split(score, bounds[mid:], end, max_tokens, style, out)

    def _window(self, score: symusic.Score, start: int, stop: int, style, last: bool) -> list[int]:
        window = score.clip(start, stop, clip_end=False).shift_time(-start)
        # carry the tempo and meter in force at `start` (clip drops events before it)
        for events, name in ((score.tempos, "tempos"), (score.time_signatures, "time_signatures")):
            before = [e for e in events if e.time <= start]
            target = getattr(window, name)
            if before and not any(e.time == 0 for e in target):
                carried = before[-1].copy()
                carried.time = 0
                target.insert(0, carried)
        ids = self.control_ids(self.controls_of(from_score(window), style)) + self._event_ids(window)
        return [*ids, self.eos_id] if last else ids

    def decode(self, ids: Sequence[int]) -> NoteTable:
        """Tokens back to a note table (controls and specials are skipped; stops at ``<eos>``)."""
        events = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i >= self.events_offset:
                events.append(i - self.events_offset)
        score = self.miditok.decode(events)
        return from_score(score)

    def transpose_ids(self, ids: Sequence[int] | np.ndarray, semitones: int) -> np.ndarray | None:
        """``ids`` with every pitched note moved by ``semitones`` and the ``Key:`` control with them
        (drum notes, other controls and timing as they are): transposition augmentation.

        None when a moved note would leave the vocabulary's pitch range or its instrument's General
        MIDI range (:data:`events.instruments.GM_RANGES`: a part is never taught notes it cannot play),
        or when ``ids`` hold no pitched note.
        """
        ids = np.asarray(ids, np.int64)
        family, value, by_pitch = self._pitch_tables()
        notes, program = self._pitched_notes(ids)
        if len(notes) == 0:
            return None
        out = ids.copy()
        if semitones == 0:
            return out
        moved = value[ids[notes]] + semitones
        if not _playable(program[notes], moved):
            return None
        new = by_pitch[family[ids[notes]], np.clip(moved, 0, 127)]
        if (new < 0).any():     # outside the vocabulary's pitch range
            return None
        out[notes] = new
        for i in np.flatnonzero(family[ids] == -3):
            name = self.vocab[ids[i]].removeprefix("Key:")
            if name in KEY_NAMES:
                tonic, mode = name.split()
                moved_tonic = PITCH_CLASS_NAMES[(tonic_pc(tonic) + semitones) % 12]
                out[i] = self.token_to_id[f"Key:{major_minor_name(moved_tonic, mode == 'minor')}"]
        return out

    def programs_of(self, ids: Sequence[int] | np.ndarray) -> frozenset[int]:
        """The pitched programs of ``ids``' ``Inst:`` controls (drums left out)."""
        start, stop = self.blocks["instrument"]
        ids = np.asarray(ids)
        insts = ids[(ids >= start) & (ids < stop - 1)]   # the block's last token is Inst:drums
        return frozenset(int(self.vocab[i][5:]) for i in insts.tolist())

    def reinstrument_ids(self, ids: Sequence[int] | np.ndarray, programs: dict[int, int]) -> np.ndarray | None:
        """``ids`` with each pitched program ``p`` played by ``programs[p]``: its ``Program_`` tokens and
        its ``Inst:`` control (the controls re-sorted, and merged when two programs become one);
        drums, timing and pitches as they are (ensemble augmentation, :func:`events.instruments.ensemble_maps`).

        None when a note would leave its new instrument's General MIDI range, when two parts merged onto
        one program would begin the same pitch at the same time, or when a program is not mapped.
        """
        ids = np.asarray(ids, np.int64)
        family, value, _ = self._pitch_tables()
        start, stop = self.blocks["instrument"]
        body = int(np.argmax(ids >= self.events_offset)) if (ids >= self.events_offset).any() else len(ids)
        insts = [self.vocab[i][5:] for i in ids[:body] if start <= i < stop]
        try:
            new_insts = sorted({programs[int(p)] for p in insts if p != DRUMS})
        except KeyError:
            return None
        head = [int(i) for i in ids[:body] if not start <= i < stop]
        head += [self.token_to_id[f"Inst:{p}"] for p in new_insts]
        head += [self.token_to_id[f"Inst:{DRUMS}"]] if DRUMS in insts else []
        out = ids[body:].copy()
        for i in np.flatnonzero((family[out] == -2) & (value[out] != -1)):
            new = programs.get(int(value[out[i]]))
            if new is None:
                return None
            out[i] = self.token_to_id[f"Program_{new}"]
        notes, program = self._pitched_notes(out)   # the new programs
        if len(notes):
            pitch = value[out[notes]]
            if not _playable(program[notes], pitch):
                return None
            if len(set(programs.values())) < len(programs):   # merged parts: no unison within one program
                clock = np.cumsum(np.isin(out, self._time_ids()))  # notes at one time share a clock value
                begun = list(zip(clock[notes].tolist(), program[notes].tolist(), pitch.tolist(), strict=True))
                if len(set(begun)) < len(begun):
                    return None
        return np.concatenate([np.asarray(head, np.int64), out])

    def _pitched_notes(self, ids: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(notes, program)``: the indices of ``ids``' pitched note tokens (drums, ``Program_-1``, left
        out) and the ``Program_`` in force at every token of ``ids``."""
        family, value, _ = self._pitch_tables()
        f = family[ids]
        last = np.maximum.accumulate(np.where(f == -2, np.arange(len(ids)), -1))
        program = np.where(last >= 0, value[ids[np.maximum(last, 0)]], 0)
        return np.flatnonzero((f >= 0) & (program != -1)), program

    def _time_ids(self) -> np.ndarray:
        """Ids of the tokens that move time (Bar, Position, TimeShift)."""
        if getattr(self, "_time_id_cache", None) is None:
            self._time_id_cache = np.array([i for i, t in enumerate(self.vocab) if i >= self.events_offset
                                            and t.startswith(("Bar_", "Position_", "TimeShift_"))], np.int64)
        return self._time_id_cache

    def _pitch_tables(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """``(family, value, by_pitch)`` over the vocabulary: ``family`` is the index of a token's pitched
        family (``Pitch_``, ``NoteOn_``, ``NoteOff_``), -2 for a ``Program_`` token, -3 for a ``Key:``
        control, -1 otherwise; ``value`` its pitch or program; ``by_pitch[family, pitch]`` the id (-1: none)."""
        cached = getattr(self, "_transpose_tables", None)
        if cached is None or len(cached[0]) != len(self.vocab):   # (the infill tokens may have been added)
            families = ("Pitch_", "NoteOn_", "NoteOff_")
            family = np.full(len(self.vocab), -1, np.int64)
            value = np.zeros(len(self.vocab), np.int64)
            by_pitch = np.full((len(families), 128), -1, np.int64)
            for i, token in enumerate(self.vocab):
                head, _, number = token.partition("_")
                if i >= self.events_offset and f"{head}_" in families and number.lstrip("-").isdigit():
                    family[i], value[i] = families.index(f"{head}_"), int(number)
                    by_pitch[family[i], value[i]] = i
                elif i >= self.events_offset and head == "Program" and number.lstrip("-").isdigit():
                    family[i], value[i] = -2, int(number)
                elif token.startswith("Key:"):
                    family[i] = -3
            self._transpose_tables = (family, value, by_pitch)
        return self._transpose_tables

    def count_notes(self, ids: Sequence[int] | np.ndarray) -> int:
        """How many notes ``ids`` encode (one Pitch/PitchDrum token per note): the unit of bits per note."""
        return int(np.isin(np.asarray(ids), self.note_ids).sum())

    count_units = count_notes   # the protocol's name: units of bits-per-unit are notes

    def decode_text(self, ids: Sequence[int]) -> None:
        """None: MIDI tokens have no text form (pieces are notes, :meth:`decode_notes`)."""
        return None

    def decode_notes(self, ids: Sequence[int]) -> NoteTable:
        """The notes ``ids`` encode (what :meth:`decode` gives)."""
        return self.decode(ids)

    def encode_item(self, item, *, max_tokens: int, style: str | None = None, instruments: str = "keep",
                    expand_repeats: bool = False) -> list[tuple[str, list[int]]]:
        """``[(f"{item.key}@{i}", ids)]``: the windows (:meth:`encode_windows`) of an :class:`events.sources.Item`.

        ``style`` is the ``Style:`` control (its collection); ``instruments="ensemble"`` gives each part a
        GM program chosen from the piece's key (:func:`events.instruments.assign_instruments`), for
        scores whose parts name none; ``expand_repeats`` plays the score's repeats and endings out, as a
        performance (and a MIDI file of one) has them.

        Raises:
            InputError: the item cannot be read or has no notes.
        """
        table = item.read(expand_repeats=expand_repeats)
        if len(table) == 0:
            raise InputError(item.key, "no notes")
        if instruments == "ensemble":
            from ostinato.events.instruments import assign_instruments

            table = assign_instruments(table, item.key)
        windows = self.encode_windows(table, max_tokens=max_tokens, style=style)
        return [(f"{item.key}@{i}", ids) for i, ids in enumerate(windows)]

    # ------------------------------------------------------------------ controls, grammar, primer
    @staticmethod
    def make_controls(*, key: str | None = None, meter: str | None = None, bars: int | None = None,
                      unit: str | None = None, sections: tuple[int, int] | None = None, style: str | None = None,
                      tempo_bpm: float | None = None, instruments: Sequence[int | str] | None = (),
                      seconds: float | None = None) -> MidiControls:
        """:class:`MidiControls` of plain control values (None: free). ``unit`` and ``sections`` are ABC
        controls: MIDI tokens have none of them, so they are left out.

        A requested key (``written_key``) is composed in the key of its mode that the model picks for
        the other controls (its ``Key:`` token, sampled among that mode's keys: the one it writes best
        in) and the finished piece is moved exactly to the key asked (:meth:`finish`; the grammar
        holds each part to its range moved the other way, :func:`symbolic.midi_grammar.key_shift`).
        """
        name = major_minor_key(key) if key is not None else None
        controls = Controls(style=style, key=key if name is None else None, meter=meter, tempo_bpm=tempo_bpm,
                            instruments=tuple(instruments or ()))   # (a key that is none: the grammar says so)
        return MidiControls(controls, bars=bars, seconds=seconds, written_key=name)

    def grammar(self, controls: MidiControls | None = None, *, max_tokens: int):
        """The scheme's :class:`symbolic.midi_grammar.MidiGrammar` that keeps a sample valid and meets
        ``controls``; ValueError (one line, naming the control) when they cannot be met."""
        from .midi_grammar import MidiGrammar

        c = controls if controls is not None else MidiControls()
        return MidiGrammar(self, controls=c.controls, bars=c.bars, seconds=c.seconds, max_tokens=max_tokens,
                           note_rules=True, move_to_key=c.written_key)

    def window(self, ids: Sequence[int], *, max_tokens: int, bars: int | None = None) -> list[int] | None:
        """What the model is fed to go on with ``ids`` once they fill its context (REMI; None for TSD
        and MIDILike): the control prefix and the most recent whole bars that fit in ``max_tokens``,
        re-encoded as a training window starts (``Bar TimeSig Position_0 Tempo`` then the bars' events),
        ending with the last token of ``ids`` (a note in flight included). When even the current bar
        does not fit, it is cut at the latest ``Position`` that fits. ``bars`` (the piece's, when known)
        changes nothing: the control prefix has no length control.
        """
        if self.scheme != "remi":
            return None
        ids = [int(i) for i in ids]
        body = next((k for k, i in enumerate(ids) if i >= self.events_offset), len(ids))
        prefix = ids[:body]
        vocab = self.vocab
        bar_id = self.token_to_id["Bar_None"]
        timesig = tempo = None
        position = None
        cuts: list[tuple] = []   # (index, TimeSig, Tempo, Position in force there)
        for k in range(body, len(ids)):
            name = vocab[ids[k]]
            if ids[k] == bar_id:
                position = None
            if ids[k] == bar_id or name.startswith(("Position_", "Program_")):
                cuts.append((k, timesig, tempo, position))
            if name.startswith("TimeSig_"):
                timesig = ids[k]
            elif name.startswith("Tempo_"):
                tempo = ids[k]
            elif name.startswith("Position_"):
                position = ids[k]
        position0 = self.token_to_id["Position_0"]
        bars = [c for c in cuts if ids[c[0]] == bar_id]
        others = [c for c in cuts if ids[c[0]] != bar_id]
        for k, ts, tp, pos in [*bars, *others]:   # whole bars first, then from a Position or a note
            if ts is None or tp is None:
                continue
            head = [bar_id, ts, position0, tp]
            if ids[k] == bar_id:   # Bar TimeSig [Position_0 [Tempo]] ... -> Bar TimeSig Position_0 Tempo ...
                if k + 2 >= len(ids):
                    continue
                head[1] = ids[k + 1]
                rest = ids[k + 2:]
            elif ids[k] == pos or pos is None or pos == position0:   # from a Position (or a note at 0)
                rest = ids[k:]
            else:                  # from a note: its Position first
                rest = [pos, *ids[k:]]
            if rest and rest[0] == position0:
                rest = rest[1:]
                if rest and vocab[rest[0]].startswith("Tempo_"):
                    rest = rest[1:]
            if not rest:   # the window must end as the sequence does (the grammar goes on from there)
                continue
            fed = prefix + head + rest
            if len(fed) <= max_tokens:
                return fed
        return None

    def finish(self, table: NoteTable, controls: MidiControls | None, ids: Sequence[int] = ()) -> NoteTable:
        """A decoded piece as the controls asked: the requested tempo exactly (the tokens quantise it:
        96 bpm is written ``Tempo_94.19``; every tempo event at that quantised value becomes the
        requested one, the note times follow), the requested key as a key signature at tick 0 (when the
        piece has none; with no key asked, the key its ``Key:`` token chose, which the grammar held
        it to), a piece composed in the key its ``Key:`` token picked moved exactly to the key asked
        (``controls.written_key``, drums as they are), and a primer's parts on their own tracks with
        their own programs (``controls.tracks``)."""
        if controls is None or len(table) == 0:
            return table
        from ostinato.events.table import Track
        from ostinato.events.theory import MODE_SHARPS, major_sharps

        c = controls.controls
        tempos = [(t.tick, t.qpm) for t in table.tempos]
        bpm = c.tempo_bpm
        if bpm is None and len(ids) > 4 and self.vocab[ids[4]].startswith("Tempo:"):   # the tempo it sampled
            bpm = float(self.vocab[ids[4]].removeprefix("Tempo:"))
        if bpm is not None and tempos:
            quantised = self.miditok_tempo(float(bpm))
            tempos = [(tick, float(bpm) if abs(qpm - quantised) < 0.01 * quantised else qpm)
                      for tick, qpm in tempos]
        keys = [(k.tick, k.sharps, k.mode) for k in table.key_signatures]
        chosen = controls.written_key or c.key
        pitch = table.pitch
        sampled = self.vocab[ids[2]].removeprefix("Key:") if len(ids) > 2 and self.vocab[ids[2]].startswith("Key:") \
            else "none"
        if controls.written_key is not None and sampled != "none":   # moved from the key it picked, drums stay
            from .midi_grammar import key_shift

            moved = table.pitch.astype(np.int16) + key_shift(sampled, controls.written_key)
            pitch = np.where(table.is_drum, table.pitch, moved).astype(table.pitch.dtype)
            keys = []   # the key asked, below
        if chosen is None:   # the key it sampled
            chosen = sampled
        if chosen is not None and chosen != "none" and not keys:
            name = key_name(chosen)
            if name is not None:
                tonic, mode = name.split()
                sharps = major_sharps(tonic) + MODE_SHARPS[mode]
                if -7 <= sharps <= 7:
                    keys = [(0, sharps, mode)]
        tracks, track = list(table.tracks), table.track
        if controls.tracks:   # a primer's parts, in its order
            asked = [token_program for token_program, _, _ in controls.tracks]
        else:   # the instruments asked, in the order asked (the tokens write them in their own order)
            asked = [DRUMS if i == DRUMS else int(i) for i in (c.instruments or ())]
        if asked:
            stand_in = {token_program: (program, name) for token_program, program, name in controls.tracks}
            tracks, index = [], np.zeros(len(table.tracks), dtype=np.int32)

            def place(i: int) -> int:
                played = DRUMS if table.tracks[i].is_drum else table.tracks[i].program
                return asked.index(played) if played in asked else len(asked) + i

            for i in sorted(range(len(table.tracks)), key=place):
                t = table.tracks[i]
                if not t.is_drum and t.program in stand_in:
                    program, name = stand_in[t.program]
                    t = Track(name=name or t.name, program=program, is_drum=False)
                index[i] = len(tracks)
                tracks.append(t)
            track = index[table.track]
        return NoteTable.from_ticks(
            table.onset_tick, table.offset_tick, pitch, table.velocity, track, tracks,
            ticks_per_quarter=table.ticks_per_quarter, tempos=tempos,
            time_signatures=[(t.tick, t.numerator, t.denominator) for t in table.time_signatures],
            key_signatures=keys)

    def miditok_tempo(self, bpm: float) -> float:
        """The ``Tempo`` token value miditok writes for ``bpm`` (its nearest, in microseconds per quarter)."""
        values = np.array([float(t.removeprefix("Tempo_")) for t in self.vocab if t.startswith("Tempo_")])
        return float(values[int(np.argmin(np.abs(6e7 / values - 6e7 / bpm)))])

    def primer_grammar(self, controls: MidiControls | None = None, *, max_tokens: int) -> None:
        """None: a MIDI primer is continued under :meth:`grammar` only (its tokens must meet the controls)."""
        return None

    def primer(self, path: str | os.PathLike, *, bars: int | None = None,
               style: str | None = None) -> tuple[MidiControls, list[int]]:
        """``(controls, prompt ids)`` to continue the piece in ``path`` (MIDI, ABC, MusicXML) for ``bars`` more bars
        (default 8): its controls (``style`` as the ``Style:`` control) and its bars plus ``bars`` (REMI counts its
        ``Bar`` tokens; TSD and MIDILike have none); the prompt is its whole sequence without ``<eos>``.

        Raises:
            InputError: the file cannot be read, holds no notes, or opens at a tempo no piece is composed at.
        """
        from ostinato import events

        from .midi_grammar import TEMPO_RANGE_BPM

        table = events.read(path)
        if not len(table):
            raise InputError(path, "the primer has no notes (nothing to continue)")
        table, tracks = stand_ins(table)
        controls = self.controls_of(table, style)
        low, high = TEMPO_RANGE_BPM
        if controls.tempo_bpm is not None and not low <= controls.tempo_bpm <= high:
            raise InputError(path, f"its tempo is {controls.tempo_bpm:,.1f} quarter notes per minute: a piece is "
                                   f"continued at {low}..{high}")
        ids = self.encode(table, style=style)[:-1]   # without <eos>: the piece goes on
        n_bars = sum(1 for i in ids if self.vocab[i] == "Bar_None")
        return MidiControls(controls, bars=n_bars + (bars or 8), tracks=tracks), ids

    # ------------------------------------------------------------------ JSON
    def to_json(self) -> dict:
        options = {k: ([[list(r), v] for r, v in val.items()] if k == "beat_res" else val)
                   for k, val in self.miditok_options.items()}
        from .fim import infill_json

        return {"kind": self.kind, "version": VERSION, "styles": list(self.styles), "miditok": options,
                "blocks": {name: list(span) for name, span in self.blocks.items()}, "vocab_size": len(self.vocab),
                **infill_json(self)}

    @classmethod
    def from_json(cls, data: dict) -> MidiTokenizer:
        """The tokenizer a :meth:`to_json` dict describes; ValueError names what does not fit."""
        if data.get("kind") not in SCHEMES:
            raise ValueError(f"tokenizer kind is {data.get('kind')!r}, expected one of {', '.join(SCHEMES)}")
        if data.get("version") != VERSION:
            raise ValueError(f"MIDI tokenizer version {data.get('version')!r} is not supported (this is "
                             f"version {VERSION})")
        options = data.get("miditok", {})
        if not isinstance(options, dict):
            raise ValueError(f"miditok: expected an object of TokenizerConfig options, got {_short(options)}")
        options = dict(options)
        for name in ("beat_res", "beat_res_rest"):   # JSON holds [[[start, end], res], ...]
            if name in options:
                pairs = options[name]
                if not isinstance(pairs, list) or len(pairs) > MAX_BEATS or not all(
                        isinstance(p, list) and len(p) == 2 and isinstance(p[0], list) for p in pairs):
                    raise ValueError(f"miditok.{name}: expected [[[start, end], positions per beat], ...], "
                                     f"got {_short(pairs)}")
                options[name] = {tuple(r): v for r, v in pairs}
                if len(options[name]) != len(pairs):
                    raise ValueError(f"miditok.{name}: a [start, end] span is given twice")
        if "time_signature_range" in options and isinstance(options["time_signature_range"], dict):
            options["time_signature_range"] = {int(d) if isinstance(d, str) and d.isascii() and d.isdigit() else d: n
                                               for d, n in options["time_signature_range"].items()}
        tokenizer = cls(data["kind"], styles=data.get("styles", ()), miditok=options)
        from .fim import load_infill

        load_infill(tokenizer, data)   # a model trained to infill: its tokens and their order
        if len(tokenizer) != data.get("vocab_size", len(tokenizer)):
            raise ValueError(f"vocab_size: the saved tokenizer has {data['vocab_size']} tokens but this miditok "
                             f"builds {len(tokenizer)}")
        return tokenizer

    def save(self, path) -> None:
        """Write the tokenizer JSON to ``path`` atomically."""
        import json

        write_text_atomic(path, json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path) -> MidiTokenizer:
        """Read a tokenizer JSON; raises :class:`events.InputError` naming the file and the problem."""
        import json

        try:
            with open(path, encoding="utf-8") as fh:
                return cls.from_json(json.load(fh))
        except FileNotFoundError:
            raise InputError(path, "no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError, ValueError, KeyError, TypeError) as exc:
            raise InputError(path, f"not a MIDI tokenizer: {exc}") from None
