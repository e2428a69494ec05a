"""Constrained decoding for :class:`~symbolic.midi_tokens.MidiTokenizer` (REMI, TSD, MIDILike).

A :class:`MidiGrammar` (``MidiGrammar(tokenizer, ...)`` is the grammar of the tokenizer's scheme:
:class:`RemiGrammar`, :class:`TsdGrammar` or :class:`MidiLikeGrammar`, each only what its scheme
does differently) says, token by token, which ids keep a sequence a valid piece that
decodes: the control prefix ``<bos> Style Key Meter Tempo Inst...`` (forced from the controls,
or free where a control is ``None``), then miditok's events in the scheme's canonical order
(the orders miditok's own encoder writes, a subset of ``miditok.tokens_types_graph``), then
``<eos>``::

    grammar = MidiGrammar(tokenizer, controls=Controls(meter="3/4", tempo_bpm=100, instruments=(0, 40)),
                          bars=16, max_tokens=1024)
    state = grammar.start()
    while not grammar.finished(state):
        mask = grammar.allowed(state)          # bool [len(tokenizer)], never all False
        state = grammar.advance(state, pick(logits, mask))

What it enforces:

* notes are whole: REMI/TSD ``Program Pitch Velocity Duration``; MIDILike ``Program NoteOn
  Velocity`` and later ``Program NoteOff`` for a note of that program that is sounding (begun
  before the current tick), every note closed before ``<eos>``; drums (program -1, ``PitchDrum``,
  ``DrumOn/DrumOff``) only when ``"drums"`` is an instrument;
* time only goes forward: REMI ``Bar TimeSig`` then ``Position`` strictly increasing within the
  bar; TSD/MIDILike ``TimeShift`` (always positive);
* programs only from the instrument tokens of the prefix, and each of them plays at least once;
* meter: every ``TimeSig`` is the requested meter (2/2 and 3/2, absent from miditok's default
  time signatures, are written as 4/4 and 6/4: the same bar); tempo: the first event block sets
  the tempo (``Tempo`` nearest the requested bpm, as miditok quantises it), later changes stay
  within 10 % of it (none with ``seconds``, so the length is exact);
* length: ``bars=N``: the last onset lies in bar N and no note sounds past its end;
  ``seconds=S``: no note sounds past S seconds and the last onset lies in the last bar before
  S; ``<eos>`` only after a complete note;
* the budget: a token is allowed only if the piece can still be closed within ``max_tokens``
  (the grammar knows the fewest tokens that finish from any state), so it never dead-ends.

Controls: a given field is forced (``prefix_ids()`` is exactly ``MidiTokenizer.control_ids``); a
``None`` field is free (any token of its block; with no instruments given, one or more ``Inst``
tokens in ascending order, drums last) and what is sampled there then binds the events. A meter
the events cannot write raises ValueError (miditok's default time signatures: 1/4 2/4 3/4 4/4 5/4
6/4 3/8 6/8 12/8, plus the aliases 2/2 and 3/2). ``allow_changes=True`` (free length only) also
takes meter changes and any tempo change, as real pieces have them (for primers).

States are small immutable-by-convention objects (:class:`GrammarState`); :meth:`allowed`
builds the mask from prebuilt id arrays and caches it on the state for :meth:`advance`;
``min_tokens`` is the shortest piece the controls and length allow.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Iterable
from dataclasses import dataclass, replace

import numpy as np

from ostinato.events.instruments import DRUMS, ENSEMBLES, MORE_PARTS, ensemble_programs, instrument_range
from ostinato.events.theory import major_minor_key, tonic_pc

TEMPO_RANGE_BPM = (10, 400)   # the tempi a piece may be composed at, in quarter notes per minute

# Meters of the Meter block that miditok's default time signatures lack, written as the same bar.
METER_ALIASES = {"2/2": "4/4", "3/2": "6/4"}
LATER_TEMPO_TOLERANCE = 0.10    # later Tempo tokens: within 10 % of the requested bpm
MAX_FREE_INSTRUMENTS = 16       # with free instruments, at most this many Inst tokens
_SLACK = 12                     # a token raises the fewest-tokens-to-finish by less than this

# phases: what the last token was
(PREFIX, BAR, TIMESIG, POSITION, TEMPO, PROGRAM, PITCH, VELOCITY, DURATION, TIMESHIFT, NOTEON,
 NOTEOFF, DONE) = range(13)
# event kinds (our classification of miditok token types)
(K_OTHER, K_BAR, K_TIMESIG, K_POSITION, K_TEMPO, K_PROGRAM, K_PITCH, K_PITCHDRUM, K_VELOCITY, K_DURATION,
 K_TIMESHIFT, K_NOTEON, K_NOTEOFF, K_DRUMON, K_DRUMOFF) = range(15)
_KINDS = {"Bar": K_BAR, "TimeSig": K_TIMESIG, "Position": K_POSITION, "Tempo": K_TEMPO, "Program": K_PROGRAM,
          "Pitch": K_PITCH, "PitchDrum": K_PITCHDRUM, "Velocity": K_VELOCITY, "Duration": K_DURATION,
          "TimeShift": K_TIMESHIFT, "NoteOn": K_NOTEON, "NoteOff": K_NOTEOFF, "DrumOn": K_DRUMON,
          "DrumOff": K_DRUMOFF}
_PENDING = {PROGRAM: 3, PITCH: 2, VELOCITY: 1}   # REMI/TSD tokens left to finish the note in flight
# Pitch classes (from the tonic) a requested key allows: the major scale, the harmonic minor scale
# (its raised seventh is what tells a minor key from its relative major), and the tonic triads
# the first and the last bar are held to, so the piece opens and closes in its key.
SCALE_PCS = {False: (0, 2, 4, 5, 7, 9, 11), True: (0, 2, 3, 5, 7, 8, 11)}
TRIAD_PCS = {False: (0, 4, 7), True: (0, 3, 7)}
DOMINANT_PCS = (7, 11, 2)   # the dominant triad, major in both modes (harmonic minor's leading tone)


def key_shift(from_key: str, to_key: str) -> int:
    """Semitones from the tonic of ``from_key`` to that of ``to_key`` (``"A minor"``, ``"D minor"`` -> 5),
    the nearer way: -5..6."""
    shift = (tonic_pc(to_key.split()[0]) - tonic_pc(from_key.split()[0])) % 12
    return shift - 12 if shift > 6 else shift


@functools.lru_cache(maxsize=256)
def bass_of(insts: tuple[int, ...]) -> int | None:
    """The bass of several instruments, when it is melodic (a string, a wind, a bass, a voice: at most two
    notes at once); None for one instrument or a keyboard bass. With a key, the note rules hold it to
    the tonic in the first and the last bar.

    The parts of an ensemble the training pieces were given (:func:`events.instruments.ensemble_programs`)
    have their bass where those pieces had it, its lowest part (the cello of flute, violin, horn and
    cello, though the horn reaches a semitone lower); other instruments, the lowest-reaching.
    """
    pitched = [p for p in insts if p != -1]
    if len(pitched) < 2:
        return None
    for name in ENSEMBLES:
        own = ensemble_programs(name, len(pitched)) if len(pitched) <= len(MORE_PARTS) else ()
        if len(set(own)) == len(own) and set(own) == set(pitched):
            low = own[-1]
            break
    else:
        low = min(pitched, key=lambda p: instrument_range(p).low)
    return low if instrument_range(low).polyphony <= 2 else None


@dataclass(frozen=True)
class _Meter:
    """Tick arithmetic of one time signature in miditok's own ticks (``time_division`` per quarter)."""

    num: int
    den: int
    timesig_id: int
    ticks_per_beat: int
    bar_ticks: int
    ticks_per_pos: int
    n_positions: int
    duration_ticks: np.ndarray     # [n Duration tokens], ticks, in id order
    shift_ticks: np.ndarray        # [n TimeShift tokens], ticks, in id order
    min_ticks: int                 # smallest Duration / TimeShift
    max_shift: int                 # largest TimeShift


class GrammarState:
    """Where a sequence is in the grammar. Treat as immutable: :meth:`MidiGrammar.advance` copies it.

    Times are miditok ticks from the start of the events; ``end_tick``/``window_tick`` are the
    length limits (``None`` when the length is free): every note ends by ``end_tick`` and the
    last onset is at or after ``window_tick``.
    """

    def __init__(self) -> None:
        self.n = 0                  # tokens so far
        self.phase = PREFIX
        self.stage = 0              # prefix tokens so far
        self.meter: _Meter | None = None
        self.target_bpm: float | None = None
        self.qpm: float | None = None
        self.tempo_done = False
        self.insts: tuple[int, ...] = ()   # miditok programs of the Inst tokens (-1 = drums)
        self.played = 0             # bit (program + 1) set once the program has a note
        self.program = 0
        self.tick = 0
        self.bar = -1               # REMI: bars so far - 1
        self.bar_start = 0          # REMI: tick of the current bar line
        self.pos = -1               # REMI: position in the bar (-1: none yet)
        self.last_onset = -1
        self.n_notes = 0
        self.end_tick: int | None = None
        self.window_tick: int | None = None
        self.sounding: dict[tuple[int, int], tuple[int, ...]] = {}   # MIDILike: (program, pitch) -> onset ticks
        self.n_sounding = 0
        self.n_fresh = 0            # MIDILike: sounding notes begun at the current tick
        self.here: frozenset = frozenset()   # (program, pitch) of the notes begun at the current tick
        self.ends: tuple = ()       # (program, pitch, end tick) of the REMI/TSD notes that may still sound
        self.bar_played = 0         # bit (program + 1) set once the program has a note in the current bar
        self.bar_begun = False      # a note begins in the current bar
        self.pitch = 0              # the pitch of the note in flight (REMI, TSD)
        self.relaxed = False        # the note rules were dropped to avoid a dead end (a piece at its budget)
        self.key_pcs = None         # (scale, triad, tonic, dominant) of the Key token sampled when the key is free
        self.shift = 0              # semitones the finished piece moves by (move_to_key: from the sampled key)
        self.mask: np.ndarray | None = None

    def copy(self) -> GrammarState:
        new = GrammarState.__new__(GrammarState)
        new.__dict__.update(self.__dict__)
        new.mask = None
        return new

    @property
    def unplayed(self) -> int:
        """How many requested instruments have no note yet."""
        return sum(1 for p in self.insts if not self.played >> (p + 1) & 1)


class MidiGrammar:
    """The token grammar of a :class:`~symbolic.midi_tokens.MidiTokenizer` scheme with controls and a length.

    ``MidiGrammar(tokenizer, ...)`` builds the grammar of ``tokenizer.scheme`` (:data:`GRAMMARS`); this
    base class holds what the schemes share (the control prefix, meters, tempo, the budget), each
    subclass its body: the masks (:meth:`_body_mask`), how a Program token counts
    (:meth:`_on_program`) and the fewest tokens to finish (:meth:`_body_cost`).

    Args:
        tokenizer: the MIDI tokenizer (REMI, TSD or MIDILike, programs in one stream).
        controls: forced prefix values; a ``None`` field (or ``controls=None``) is free: any token of
            its block (Meter: only meters the events can write; Inst: one or more, ascending, drums last).
        bars: the piece is exactly this many bars (int >= 1), or ``None``.
        seconds: the piece lasts at most this long and ends in its last bar (float >= 1), or ``None``.
        max_tokens: every sequence ends with ``<eos>`` within this many tokens (prefix included).
        allow_changes: also allow meter changes (REMI at bar lines, TSD/MIDILike after a TimeShift) and
            tempo changes to any tempo, as real pieces have them; only with a free length. The controls
            then say how the piece starts.
        note_rules: also hold composed notes to what the instruments and the key allow (what
            :meth:`MidiTokenizer.grammar` asks for; real pieces break these rules): each pitch within
            its GM instrument's playable range (:data:`events.instruments.GM_RANGES`), no note
            begun twice at one tick, at most the instrument's polyphony sounding, every instrument
            in every bar (REMI: a note begun in it or one held into it), no whole beat where nothing
            sounds (REMI: the next onset comes by the beat after the sound ends), no tempo change
            after the first Tempo, and with a key, pitches of its scale (harmonic minor for minor
            keys) and its tonic triad in the first and the last bar (notes begun on the beat before the
            last bar: the dominant triad, an authentic cadence), a melodic bass (:func:`bass_of`)
            on the tonic itself there (on the dominant on that beat; REMI, TSD: it holds no other note
            into the last bar), so the piece opens and ends on its tonic; with no key asked, the key of the
            ``Key:`` token sampled (``edge_triads``: the first/last bar rules; False for the
            bars inside a piece that an infill writes: the scale only; ``ranges`` replaces a program's
            GM range, e.g. by a part's own; ``pitch_classes`` (0-11) are allowed besides the key's
            scale, e.g. those a piece being infilled plays itself: its G natural in A minor). The first
            ``free_tokens`` tokens (a primer) are exempt.
        move_to_key: the key (``"D minor"``) the finished piece is moved to: the ``Key:`` control is
            sampled among the keys of its mode (the model picks the one it writes best in for the
            style) and holds the piece as a requested one, and each part's range is its instrument's
            moved the other way (:func:`key_shift`), so every note is playable once moved.

    Raises ValueError naming the parameter when a control cannot be written or the budget is too small.
    """

    scheme = ""         # the MidiTokenizer scheme a subclass is the grammar of
    BODY_HEAD = 2       # tokens from the body's start to its first Tempo (TSD/MIDILike: TimeSig Tempo)

    def __new__(cls, *args, **kwargs):
        if cls is MidiGrammar:   # the grammar of the tokenizer's scheme
            tokenizer = args[0] if args else kwargs["tokenizer"]
            if tokenizer.scheme not in GRAMMARS:
                raise ValueError(f"tokenizer: no grammar for the MIDI token scheme {tokenizer.scheme!r}")
            cls = GRAMMARS[tokenizer.scheme]
        return super().__new__(cls)

    def __init__(self, tokenizer, *, controls=None, bars: int | None = None,
                 seconds: float | None = None, max_tokens: int = 1024, allow_changes: bool = False,
                 note_rules: bool = False, edge_triads: bool = True,
                 ranges: dict[int, tuple[int, int]] | None = None, move_to_key: str | None = None,
                 pitch_classes: Iterable[int] = ()):
        if bars is not None and seconds is not None:
            raise ValueError("bars, seconds: give at most one length")
        if bars is not None and (not isinstance(bars, int | np.integer) or bars < 1):
            raise ValueError(f"bars: must be a whole number >= 1, got {bars!r}")
        if seconds is not None and not (isinstance(seconds, int | float) and seconds >= 1.0):
            raise ValueError(f"seconds: must be a number >= 1, got {seconds!r}")
        if allow_changes and (bars is not None or seconds is not None):
            raise ValueError("allow_changes: meter and tempo changes only go with a free length (no bars or seconds)")
        if not isinstance(max_tokens, int | np.integer) or max_tokens < 1:
            raise ValueError(f"max_tokens: must be a whole number >= 1, got {max_tokens!r}")
        if tokenizer.scheme != self.scheme:
            raise ValueError(f"tokenizer: {type(self).__name__} is the grammar of {self.scheme} tokens, not "
                             f"{tokenizer.scheme}")
        self.tokenizer = tokenizer
        self.controls = controls if controls is not None else tokenizer.make_controls().controls
        self.bars = None if bars is None else int(bars)
        self.seconds = None if seconds is None else float(seconds)
        self.max_tokens = int(max_tokens)
        self.allow_changes = bool(allow_changes)
        self.note_rules = bool(note_rules)
        self.edge_triads = bool(edge_triads)
        self.ranges = dict(ranges or {})   # program -> (low, high) in place of its GM range (an infill's parts)
        self.pitch_classes = frozenset(int(pc) % 12 for pc in pitch_classes)   # besides the key's scale
        self.move_to = None
        if move_to_key is not None:
            self.move_to = major_minor_key(move_to_key)
            if self.move_to is None:
                raise ValueError(f"key: {move_to_key!r} is not a key (write a tonic and major or minor, e.g. "
                                 f"'D minor', 'Eb major', 'F#m')")
        self.vocab_size = len(tokenizer)
        mt = tokenizer.miditok
        if not (mt.config.use_programs and mt.config.one_token_stream_for_programs and mt.config.use_time_signatures
                and mt.config.use_tempos and mt.config.use_velocities):
            raise ValueError("tokenizer: the grammar needs miditok programs in one stream, time signatures, "
                             "tempos and velocities")
        self.time_division = int(mt.time_division)
        self._index_vocab()
        self._index_meters()
        self._resolve_controls()
        self._body_cost_cache: dict = {}
        self._tempo_cache: dict = {}
        self._pitch_cache: dict = {}
        # the first ``free_tokens`` tokens (a primer) are taken as they are: the note rules (range,
        # key, duplicates, polyphony, every part in every bar, one tempo) hold from there on
        self.free_tokens = 0
        need = self._cost(self.start())
        self.min_tokens = need   # the shortest piece these controls and this length allow, in tokens
        if math.isinf(need):
            raise ValueError("seconds: too short for a note at this tempo")
        if need > self.max_tokens:
            raise ValueError(f"max_tokens: {self.max_tokens} is too few; these controls and length need at least "
                             f"{need} tokens")

    # ------------------------------------------------------------------ vocabulary
    def _index_vocab(self) -> None:
        tok = self.tokenizer
        off = tok.events_offset
        V = self.vocab_size
        self.kind = np.full(V, K_OTHER, dtype=np.int8)
        self.value: list = [None] * V
        ids: dict[int, list[int]] = {k: [] for k in _KINDS.values()}
        for i in range(off, V):
            typ, _, val = tok.vocab[i].partition("_")
            k = _KINDS.get(typ, K_OTHER)
            self.kind[i] = k
            if k in (K_POSITION, K_PROGRAM, K_PITCH, K_PITCHDRUM, K_NOTEON, K_NOTEOFF, K_DRUMON, K_DRUMOFF):
                self.value[i] = int(val)
            elif k == K_TEMPO:
                self.value[i] = float(val)
            elif k == K_TIMESIG:
                num, den = val.split("/")
                self.value[i] = (int(num), int(den))
            else:
                self.value[i] = val
            if k != K_OTHER:
                ids[k].append(i)
        self.ids = {k: np.array(v, dtype=np.int64) for k, v in ids.items()}
        self.bar_id = int(self.ids[K_BAR][0]) if len(self.ids[K_BAR]) else None
        self.position_of = {self.value[i]: i for i in self.ids[K_POSITION]}
        self.program_id = {self.value[i]: i for i in self.ids[K_PROGRAM]}
        self.tempo_values = np.array([self.value[i] for i in self.ids[K_TEMPO]])
        self.pitch_values = np.array([self.value[i] for i in self.ids[K_PITCH]], dtype=np.int64)
        self.noteon_values = np.array([self.value[i] for i in self.ids[K_NOTEON]], dtype=np.int64)
        # MIDILike note-on/off ids by pitch, per drum-ness
        self.noteoff_id = {(False, self.value[i]): i for i in self.ids[K_NOTEOFF]}
        self.noteoff_id.update({(True, self.value[i]): i for i in self.ids[K_DRUMOFF]})
        self.block_ids = {name: np.arange(*span) for name, span in tok.blocks.items()}

    def _index_meters(self) -> None:
        mt = self.tokenizer.miditok
        self.meters: dict[tuple[int, int], _Meter] = {}
        dur_vals = [self.value[i] for i in self.ids[K_DURATION]]
        shift_vals = [self.value[i] for i in self.ids[K_TIMESHIFT]]
        for i in self.ids[K_TIMESIG]:
            num, den = self.value[i]
            tpb = int(mt._tpb_per_ts[den])
            table = mt._tpb_tokens_to_ticks[tpb]
            durations = np.array([table[v] for v in dur_vals], dtype=np.int64)
            shifts = np.array([table[v] for v in shift_vals], dtype=np.int64)
            steps = np.concatenate([durations, shifts])
            tpp = max(tpb // mt.config.max_num_pos_per_beat, 1)
            bar_ticks = tpb * num
            self.meters[(num, den)] = _Meter(
                num, den, int(i), tpb, bar_ticks, tpp, bar_ticks // tpp, durations, shifts,
                int(steps.min()), int(shifts.max()) if len(shifts) else 0)

    def meter_of(self, text: str) -> _Meter | None:
        """The time signature the events write for a meter ``"n/d"`` (aliases included), or None."""
        text = METER_ALIASES.get(text, text)
        try:
            num, den = (int(x) for x in text.split("/"))
        except (ValueError, AttributeError):
            return None
        return self.meters.get((num, den))

    def _resolve_controls(self) -> None:
        c = self.controls
        tok = self.tokenizer
        low, high = TEMPO_RANGE_BPM
        if c.tempo_bpm is not None and not (isinstance(c.tempo_bpm, int | float) and low <= c.tempo_bpm <= high):
            raise ValueError(f"tempo_bpm: must be a number of beats per minute in {low}..{high}, got {c.tempo_bpm!r}")
        # a requested key or style must be one the tokens can write (the training prefixes write
        # unknown ones as Key:none / Style:none)
        if c.key is not None:
            name = major_minor_key(c.key)
            if name is None:
                raise ValueError(f"key: {c.key!r} is not a key (write a tonic and major or minor, e.g. 'D minor', "
                                 f"'Eb major', 'F#m')")
            c = self.controls = replace(c, key=name)
        if c.style is not None and c.style not in tok.styles:
            raise ValueError(f"style: {c.style!r} is not a style of this model (choose one of "
                             f"{', '.join(tok.styles) or 'none: it was trained without styles'})")
        self.forced_meter = None
        if c.meter is not None:
            self.forced_meter = self.meter_of(c.meter)
            if self.forced_meter is None:
                known = sorted({f"{m.num}/{m.den}" for m in self.meters.values()} | set(METER_ALIASES))
                raise ValueError(f"meter: {c.meter!r} cannot be written by this tokenizer (choose one of "
                                 f"{', '.join(known)})")
        seen = set()
        self.forced_insts: tuple[int, ...] = ()
        for inst in c.instruments:
            if inst == DRUMS:
                prog = -1
            elif isinstance(inst, int | np.integer) and not isinstance(inst, bool) and 0 <= inst <= 127:
                prog = int(inst)
            else:
                raise ValueError(f"instruments: {inst!r} is not a GM program 0-127 or {DRUMS!r}")
            if prog in seen:
                raise ValueError(f"instruments: {inst!r} is given twice")
            if prog not in self.program_id:
                raise ValueError(f"instruments: {inst!r} has no Program token in this tokenizer")
            seen.add(prog)
            self.forced_insts += (prog,)
        # in the training pieces' order (MidiTokenizer.control_ids): programs ascending, then drums
        self.forced_insts = tuple(sorted(self.forced_insts, key=lambda p: (p == -1, p)))
        self._prefix = tok.control_ids(c)
        # pitch classes 0-11 the key allows (None: any); with no key asked, the sampled Key token's
        self.key_pcs = self._allowed_pcs(c.key)
        # prefix masks, one per prefix position 1..4
        meter_texts = {i: tok.vocab[i].removeprefix("Meter:") for i in range(*tok.blocks["meter"])
                       if tok.vocab[i] != "Meter:none"}
        meter_block = [tok.token_to_id["Meter:none"]] + [i for i, m in meter_texts.items()
                                                         if self.meter_of(m) is not None]
        free = {1: self.block_ids["style"], 2: self.block_ids["key"], 3: np.array(meter_block),
                4: self.block_ids["tempo"]}
        if self.move_to is not None and c.key is None:   # the model picks a key of the mode; the piece moves from it
            mode = self.move_to.split()[1]
            free[2] = np.array([i for i in self.block_ids["key"] if tok.vocab[i].endswith(f" {mode}")])
        given = {1: c.style, 2: c.key, 3: c.meter, 4: c.tempo_bpm}
        self._prefix_masks = {0: self._mask_of([tok.bos_id])}
        for stage in (1, 2, 3, 4):
            self._prefix_masks[stage] = self._mask_of([self._prefix[stage]] if given[stage] is not None
                                                      else free[stage])
        self.inst_token_program = {tok.token_to_id[f"Inst:{p}"]: p for p in range(128)}
        self.inst_token_program[tok.token_to_id[f"Inst:{DRUMS}"]] = -1
        self.inst_ids_sorted = np.array([tok.token_to_id[f"Inst:{p}"] for p in range(128)]
                                        + [tok.token_to_id[f"Inst:{DRUMS}"]])
        self.meter_token_meter = {i: self.meter_of(m) for i, m in meter_texts.items()}
        self.bucket_of_token = {i: float(tok.vocab[i].removeprefix("Tempo:")) for i in range(*tok.blocks["tempo"])}

    @staticmethod
    def _key_pcs(name: str | None) -> tuple[frozenset, frozenset, int, frozenset] | None:
        """(scale, tonic triad, tonic, dominant triad) pitch classes of a key name ``"D minor"``; None for no key."""
        if name is None or name == "none":
            return None
        tonic, mode = name.split()
        root = tonic_pc(tonic)
        return (frozenset((root + d) % 12 for d in SCALE_PCS[mode == "minor"]),
                frozenset((root + d) % 12 for d in TRIAD_PCS[mode == "minor"]), root,
                frozenset((root + d) % 12 for d in DOMINANT_PCS))

    def _allowed_pcs(self, name: str | None):
        """:meth:`_key_pcs` with :attr:`pitch_classes` added to the scale."""
        pcs = self._key_pcs(name)
        return pcs if pcs is None or not self.pitch_classes else (pcs[0] | self.pitch_classes, *pcs[1:])

    def _mask_of(self, ids) -> np.ndarray:
        mask = np.zeros(self.vocab_size, dtype=bool)
        mask[np.asarray(ids, dtype=np.int64)] = True
        return mask

    # ------------------------------------------------------------------ public interface
    def prefix_ids(self) -> list[int]:
        """The prefix :meth:`symbolic.midi_tokens.MidiTokenizer.control_ids` writes for the controls (a valid start).

        Where a control is ``None`` the grammar also allows other tokens at that place (and with no
        instruments given, it needs at least one ``Inst`` token that this prefix lacks).
        """
        return list(self._prefix)

    def forced_prefix_ids(self) -> list[int]:
        """The ids the controls force up front: :meth:`prefix_ids` up to the first free control.

        Sampling starts from these, so the model chooses what the controls leave free (its style, its
        key, which the note rules then hold the piece to, its meter and tempo) instead of ``none``.
        """
        c = self.controls
        given = (True, c.style is not None, c.key is not None, c.meter is not None, c.tempo_bpm is not None)
        n = given.index(False) if False in given else len(self._prefix)
        return list(self._prefix[:n])

    def start(self) -> GrammarState:
        """The state before ``<bos>``."""
        return GrammarState()

    def finished(self, state: GrammarState) -> bool:
        """True once ``<eos>`` is taken."""
        return state.phase == DONE

    def allowed(self, state: GrammarState) -> np.ndarray:
        """Bool mask [len(tokenizer)] of the tokens that may come next (never all False).

        After ``<eos>`` only ``<pad>`` is allowed, so a finished sequence can ride along in a batch.
        The mask is cached on ``state``; do not modify it.
        """
        if state.mask is not None:
            return state.mask
        mask = self._grammar_mask(state)
        remaining = self.max_tokens - state.n
        # tokens before the meter and first tempo are fixed can change the length by a lot: always check them
        unsettled = state.phase == PREFIX or state.meter is None or not state.tempo_done
        if state.phase != DONE and (unsettled or (remaining - 1 - self._cost_ceiling(state) < _SLACK
                                                  and remaining - 1 - self._cost(state) < _SLACK)):
            mask = self._budget_filter(state, mask, remaining)
        if not mask.any() and not state.relaxed:   # the note rules closed every way: drop them from here on
            import warnings

            warnings.warn(f"MidiGrammar: the note rules are dropped after {state.n} tokens (they closed every "
                          f"way on in phase {state.phase})", RuntimeWarning, stacklevel=2)
            state.relaxed = True
            return self.allowed(state)
        if not mask.any():   # a bug, not a user error: say where
            raise RuntimeError(f"MidiGrammar dead end in phase {state.phase} after {state.n} tokens")
        state.mask = mask
        return mask

    def allowed_batch(self, states: list[GrammarState]) -> np.ndarray:
        """Bool masks [len(states), len(tokenizer)] for a batch (rows as :meth:`allowed`)."""
        return np.stack([self.allowed(s) for s in states])

    def advance(self, state: GrammarState, token_id: int) -> GrammarState:
        """The state after ``token_id``; ValueError naming the token if the grammar does not allow it."""
        token_id = int(token_id)
        if not 0 <= token_id < self.vocab_size or not self.allowed(state)[token_id]:
            name = self.tokenizer.vocab[token_id] if 0 <= token_id < self.vocab_size else "out of range"
            raise ValueError(f"token {token_id} ({name}) is not allowed here (after {state.n} tokens)")
        return self._step(state, token_id)

    # ------------------------------------------------------------------ masks
    def _grammar_mask(self, s: GrammarState) -> np.ndarray:
        if s.phase == DONE:
            return self._mask_of([self.tokenizer.pad_id])
        if s.phase == PREFIX:
            return self._prefix_mask(s)
        return self._body_mask(s)

    def _body_mask(self, s: GrammarState) -> np.ndarray:
        """The mask of a body state (after the prefix, before ``<eos>``): the scheme's token order."""
        raise NotImplementedError

    def _prefix_mask(self, s: GrammarState) -> np.ndarray:
        if s.stage <= 4:
            return self._prefix_masks[s.stage]
        k = s.stage - 5
        if self.forced_insts:
            if k < len(self.forced_insts):
                return self._mask_of([self._prefix[5 + k]])
            return self._body_start_mask(s)
        mask = np.zeros(self.vocab_size, dtype=bool)
        if len(s.insts) < MAX_FREE_INSTRUMENTS:
            last = s.insts[-1] if s.insts else None
            start = 0 if last is None else (128 if last == -1 else last + 1)
            if last != -1:
                mask[self.inst_ids_sorted[start:]] = True
        if s.insts:
            mask |= self._body_start_mask(s)
        return mask

    def _body_start_mask(self, s: GrammarState) -> np.ndarray:
        """The first event: the TimeSig (REMI: a Bar)."""
        return self._timesig_mask(s)

    def _timesig_mask(self, s: GrammarState) -> np.ndarray:
        if s.meter is not None and not (self.allow_changes and s.tempo_done):
            return self._mask_of([s.meter.timesig_id])
        return self._mask_of(self.ids[K_TIMESIG])

    def _tempo_ids(self, s: GrammarState, first: bool) -> np.ndarray:
        key = (s.target_bpm, first)
        if key not in self._tempo_cache:
            self._tempo_cache[key] = self._tempo_ids_for(s.target_bpm, first)
        return self._tempo_cache[key]

    def _tempo_ids_for(self, target: float, first: bool) -> np.ndarray:
        mspq = 6e7 / self.tempo_values
        nearest = int(np.argmin(np.abs(mspq - 6e7 / target)))   # miditok quantises tempos in mspq
        if first:
            return self.ids[K_TEMPO][[nearest]]
        if self.allow_changes:
            return self.ids[K_TEMPO]
        near = np.abs(self.tempo_values / target - 1.0) <= LATER_TEMPO_TOLERANCE
        near[nearest] = True
        return self.ids[K_TEMPO][near]

    def _later_tempo_ok(self, s: GrammarState) -> bool:
        """Tempo changes: none once the primer (if any) is over, unless ``allow_changes`` (not even where
        the note rules were dropped to avoid a dead end: the tempo asked for holds to the end)."""
        return s.tempo_done and self.seconds is None and (
            self.allow_changes or not self.note_rules or s.n < self.free_tokens)

    def _ruled(self, s: GrammarState) -> bool:
        """Whether the note rules hold at ``s`` (past the primer, not relaxed)."""
        return self.note_rules and s.n >= self.free_tokens and not s.relaxed

    def _n_sounding(self, s: GrammarState, program: int) -> int:
        return sum(1 for p, _, end in s.ends if p == program and end > s.tick)

    def _program_ids(self, s: GrammarState) -> list[int]:
        """The instruments that may begin a note here: those below their polyphony (all when none is)."""
        if not self._ruled(s):
            return [self.program_id[p] for p in s.insts]
        return [self.program_id[p] for p in s.insts if self._n_sounding(s, p) < instrument_range(p).polyphony
                and (p == -1 or self._pitch_ok(s, p, self.pitch_values).any())]   # and a pitch is left to it

    def _bar_complete(self, s: GrammarState) -> bool:
        """A note begins in the current bar, and every instrument has one in it or held into it (REMI)."""
        if not self._ruled(s) or s.meter is None:
            return True
        return s.bar_begun and not self._bar_lacks(s)

    @staticmethod
    def _sounds_until(s: GrammarState) -> dict[int, int]:
        """Each instrument's latest sounding note's end tick (0: none sounds)."""
        until = dict.fromkeys(s.insts, 0)
        for p, _, end in s.ends:
            until[p] = max(until.get(p, 0), end)
        return until

    def _bar_lacks(self, s: GrammarState) -> list[int]:
        """The instruments with no note begun in the current bar nor held into it (REMI)."""
        bar_end = s.bar_start + s.meter.bar_ticks
        return [p for p in s.insts if not s.bar_played >> (p + 1) & 1
                and not any(q == p and end > bar_end for q, _, end in s.ends)]

    def _bar_missing(self, s: GrammarState) -> int:
        """The notes the current bar still needs before its bar line or the end (REMI, with the note rules):
        one for each instrument with none begun in it or held into it, and one when no note begins in it
        (:meth:`_bar_complete` is True at 0)."""
        if not self._ruled(s) or s.meter is None or s.bar < 0:
            return 0
        return max(len(self._bar_lacks(s)), 0 if s.bar_begun else 1)

    def _pitch_ok(self, s: GrammarState, program: int, values: np.ndarray) -> np.ndarray:
        """Bool [len(values)]: the pitches ``program`` may play at ``s`` (its range; the key's scale, the
        tonic triad in the first and the last bar; not one it already began at this tick, nor one it still
        sounds: a part never strikes a pitch it holds)."""
        if not self.edge_triads:
            region = 0
        elif s.tick < s.meter.bar_ticks or (s.window_tick is not None and s.tick >= s.window_tick):
            region = 1   # the tonic triad
        elif s.window_tick is not None and s.tick >= s.window_tick - s.meter.ticks_per_beat:
            region = 2   # the last beat before the last bar: the dominant (an authentic cadence)
        else:
            region = 0
        scale, triad, tonic, dominant = (self.key_pcs if self.key_pcs is not None
                                         else (s.key_pcs or (None, None, None, None)))
        bass = program == bass_of(s.insts)   # it opens and closes on the tonic, comes to it from the dominant
        key = (program, region, len(values), scale, bass, s.shift)
        if key not in self._pitch_cache:
            r = instrument_range(program)   # (a piece to be moved: in range once moved)
            low, high = self.ranges.get(program, (r.low - s.shift, r.high - s.shift))
            ok = (values >= low) & (values <= high)
            pcs = (scale, triad, dominant)[region] if scale is not None else None
            if pcs is not None and region and bass:
                pcs = {tonic} if region == 1 else {(tonic + 7) % 12}
            if pcs is not None:
                ok &= np.isin(values % 12, list(pcs))
            self._pitch_cache[key] = ok
        ok = self._pitch_cache[key]
        used = [pitch for q, pitch in s.here if q == program]
        used += [pitch for q, pitch, end in s.ends if q == program and end > s.tick]
        used += [pitch for q, pitch in s.sounding if q == program]   # MIDILike: begun and not yet off
        if used:
            ok = ok & ~np.isin(values, used)
        return ok

    def _can_finish(self, s: GrammarState) -> bool:
        return (s.n_notes > 0 and s.unplayed == 0
                and (s.window_tick is None or s.last_onset >= s.window_tick)
                and (s.window_tick is None or self._bar_complete(s)))   # every part in the last bar too

    def _duration_end(self, s: GrammarState) -> int | None:
        """The latest tick the note in flight may sound to (None: no limit); before its Pitch, the latest
        any pitch it may take allows."""
        key = self.key_pcs or s.key_pcs
        if (key is not None and s.window_tick is not None and s.tick < s.window_tick and self._ruled(s)
                and s.program == bass_of(s.insts)):
            if s.phase not in (PITCH, VELOCITY):   # its pitch not chosen yet
                pitches = self.pitch_values[self._pitch_ok(s, s.program, self.pitch_values)]
                tonic = bool(np.any(pitches % 12 == key[2]))
            else:
                tonic = s.pitch % 12 == key[2]
            if not tonic:
                return s.window_tick   # a melodic bass holds only its tonic into the last bar: the piece ends on it
        return s.end_tick

    def _duration_mask(self, s: GrammarState, mask: np.ndarray) -> None:
        ids = self.ids[K_DURATION]
        end = self._duration_end(s)
        if end is None:
            mask[ids] = True
        else:
            mask[ids[s.tick + s.meter.duration_ticks <= end]] = True

    def _note_mask(self, s: GrammarState, mask: np.ndarray) -> None:
        """Inside a note (REMI, TSD): Program -> Pitch/PitchDrum -> Velocity -> Duration."""
        ph = s.phase
        if ph == PROGRAM:
            if s.program == -1:
                mask[self.ids[K_PITCHDRUM]] = True
            elif self._ruled(s):
                mask[self.ids[K_PITCH][self._pitch_ok(s, s.program, self.pitch_values)]] = True
            else:
                mask[self.ids[K_PITCH]] = True
        elif ph == PITCH:
            mask[self.ids[K_VELOCITY]] = True
        elif ph == VELOCITY:
            self._duration_mask(s, mask)

    # ------------------------------------------------------------------ transitions
    def _set_meter(self, s: GrammarState, meter: _Meter) -> None:
        s.meter = meter
        self._set_limits(s)

    def _set_limits(self, s: GrammarState) -> None:
        if s.meter is None:
            return
        if self.bars is not None:
            s.end_tick = self.bars * s.meter.bar_ticks
        elif self.seconds is not None and s.qpm is not None:
            s.end_tick = math.floor(self.seconds * s.qpm / 60.0 * self.time_division + 1e-9)
        else:
            return
        s.window_tick = max(0, s.end_tick - s.meter.bar_ticks)

    def _step(self, state: GrammarState, t: int) -> GrammarState:
        s = state.copy()
        s.n += 1
        tok = self.tokenizer
        if s.phase == DONE:
            return s
        if t == tok.eos_id:
            s.phase = DONE
            return s
        if s.phase == PREFIX and t < tok.events_offset:
            stage = s.stage
            s.stage += 1
            if stage == 2:
                chosen = self.tokenizer.vocab[t].removeprefix("Key:")
                if self.controls.key is None:   # a key the model chose holds as a requested one
                    s.key_pcs = self._allowed_pcs(chosen)
                if self.move_to is not None and chosen != "none":
                    s.shift = key_shift(chosen, self.move_to)
            if stage == 3:
                meter = self.forced_meter if self.forced_meter is not None else self.meter_token_meter.get(t)
                if meter is not None:
                    s.meter = meter
            elif stage == 4:
                s.target_bpm = (float(self.controls.tempo_bpm) if self.controls.tempo_bpm is not None
                                else self.bucket_of_token[t])
            elif stage >= 5:
                s.insts = (*s.insts, self.inst_token_program[t])
            return s
        kind = self.kind[t]
        val = self.value[t]
        if kind == K_BAR:
            s.phase = BAR
            if s.bar >= 0:   # the bar line after a bar of the meter in force (a TimeSig follows)
                s.bar_start += s.meter.bar_ticks
            s.bar += 1
            s.pos = -1
            s.tick = s.bar_start
            s.bar_played = 0
            s.bar_begun = False
            self._moved(s)
            for p, _, _ in s.ends:   # a note held over the bar line sounds in this bar too
                s.bar_played |= 1 << (p + 1)
        elif kind == K_TIMESIG:
            s.phase = TIMESIG
            if s.meter is None or self.allow_changes:
                self._set_meter(s, self.meters[val])
            else:
                self._set_limits(s)
        elif kind == K_POSITION:
            s.phase = POSITION
            s.pos = val
            s.tick = s.bar_start + val * s.meter.ticks_per_pos
            self._moved(s)
        elif kind == K_TEMPO:
            s.phase = TEMPO
            s.qpm = val
            if not s.tempo_done:
                s.tempo_done = True
                self._set_limits(s)
        elif kind == K_PROGRAM:
            s.phase = PROGRAM
            s.program = val
            self._on_program(s, val)
        elif kind in (K_PITCH, K_PITCHDRUM):
            s.phase = PITCH
            s.pitch = val
            s.here = s.here | {(s.program, val)}
        elif kind == K_VELOCITY:
            s.phase = VELOCITY
        elif kind == K_DURATION:
            s.phase = DURATION
            ticks = int(s.meter.duration_ticks[t - self.ids[K_DURATION][0]])
            s.ends = (*s.ends, (s.program, s.pitch, s.tick + ticks))
        elif kind == K_TIMESHIFT:
            s.phase = TIMESHIFT
            s.tick += int(s.meter.shift_ticks[t - self.ids[K_TIMESHIFT][0]])
            s.n_fresh = 0
            self._moved(s)
        elif kind in (K_NOTEON, K_DRUMON):
            s.phase = NOTEON
            self._note_on(s, s.program)
            key = (s.program, val)
            s.sounding = {**s.sounding, key: (*s.sounding.get(key, ()), s.tick)}
            s.n_sounding += 1
            s.n_fresh += 1
        elif kind in (K_NOTEOFF, K_DRUMOFF):
            s.phase = NOTEOFF
            key = (s.program, val)
            onsets = s.sounding[key][1:]
            s.sounding = {k: v for k, v in s.sounding.items() if k != key}
            if onsets:
                s.sounding[key] = onsets
            s.n_sounding -= 1
        else:   # pragma: no cover - the masks never allow other event types
            raise ValueError(f"token {t} ({tok.vocab[t]}) has a type the grammar does not handle")
        return s

    @staticmethod
    def _moved(s: GrammarState) -> None:
        """Time moved to ``s.tick``: forget the notes begun before it and those that ended."""
        s.here = frozenset()
        if s.ends:
            s.ends = tuple(e for e in s.ends if e[2] > s.tick)

    @staticmethod
    def _note_on(s: GrammarState, program: int) -> None:
        s.played |= 1 << (program + 1)
        s.bar_played |= 1 << (program + 1)
        s.bar_begun = True
        s.last_onset = s.tick
        s.n_notes += 1

    def _on_program(self, s: GrammarState, program: int) -> None:
        """A Program token was taken: REMI and TSD notes begin there (MIDILike at the NoteOn)."""
        self._note_on(s, program)

    # ------------------------------------------------------------------ budget
    def _cost_ceiling(self, s: GrammarState) -> float:
        """A cheap upper bound of :meth:`_cost` (``inf``: none): far from the budget, the exact cost is not needed."""
        return math.inf

    def _budget_filter(self, s: GrammarState, mask: np.ndarray, remaining: int) -> np.ndarray:
        """Keep the tokens after which the piece can still close within ``remaining - 1`` tokens."""
        out = np.zeros_like(mask)
        memo: dict = {}
        value_kinds = (K_POSITION, K_TIMESHIFT, K_PROGRAM, K_TIMESIG, K_BAR)
        ruled = self._ruled(s)
        if ruled and s.phase == VELOCITY:   # how long the note sounds: the longer, the fewer tokens it leaves
            ids = np.flatnonzero(mask & (self.kind == K_DURATION))   # to do (no silent beat, parts held over),
            if len(ids):                                            # so the ones kept are the longest: bisect
                ticks = s.meter.duration_ticks[ids - self.ids[K_DURATION][0]]
                ids = ids[np.argsort(ticks, kind="stable")]
                lo, hi = 0, len(ids)   # the first one short enough to fit is at lo
                while lo < hi:
                    mid = (lo + hi) // 2
                    if self._cost(self._step(s, int(ids[mid]))) <= remaining - 1:
                        hi = mid
                    else:
                        lo = mid + 1
                out[ids[lo:]] = True
                mask = mask & (self.kind != K_DURATION)
        key_pcs = self.key_pcs or s.key_pcs
        tonic_counts = (ruled and s.phase == PROGRAM and key_pcs is not None and s.window_tick is not None
                        and s.tick < s.window_tick and s.program == bass_of(s.insts))
        # once no window is left to reach, how far a Position/TimeShift goes does not change the cost
        timeless = s.window_tick is None or s.last_onset >= s.window_tick
        for t in np.flatnonzero(mask):
            t = int(t)
            kind = int(self.kind[t])
            if kind == K_PITCH and tonic_counts:   # a bass holds only its tonic into the last bar
                key = ("pitch", self.value[t] % 12 == key_pcs[2])
            elif timeless and kind in (K_POSITION, K_TIMESHIFT) and s.tempo_done and s.meter is not None:
                key = kind
            elif s.phase == PREFIX and t < self.tokenizer.events_offset:
                key = ("prefix", t if s.stage in (3, 4) else (t in self.inst_token_program))
            elif kind in value_kinds or t < self.tokenizer.events_offset:
                key = t
            elif kind in (K_NOTEOFF, K_DRUMOFF):
                key = ("off",)
            else:
                key = kind
            if key not in memo:
                memo[key] = self._cost(self._step(s, t))
            out[t] = memo[key] <= remaining - 1
        return out

    def _cost(self, s: GrammarState) -> float:
        """The fewest tokens (``<eos>`` included) that finish the piece from ``s``; ``inf`` if none can."""
        if s.phase == DONE:
            return 0
        if s.phase == PREFIX:
            return self._prefix_cost(s)
        if s.meter is None:   # free meter, not chosen yet: the best meter
            best = math.inf
            for meter in self.meters.values():
                t = s.copy()
                self._set_meter(t, meter)
                best = min(best, self._cost(t))
            return best
        return self._body_cost(s)

    def _body_cost(self, s: GrammarState) -> float:
        """:meth:`_cost` of a body state whose meter is known."""
        raise NotImplementedError

    def _prefix_cost(self, s: GrammarState) -> float:
        left = max(0, 5 - s.stage)
        if self.forced_insts:
            left += len(self.forced_insts) - max(0, s.stage - 5)
            n_insts = len(self.forced_insts)
        else:
            n_insts = max(len(s.insts), 1)
            left += 1 if not s.insts else 0
        if s.meter is not None:
            meters = [s.meter]
        elif s.stage <= 3 and self.forced_meter is not None:
            meters = [self.forced_meter]
        else:
            meters = list(self.meters.values())
        if s.target_bpm is not None:
            targets = [s.target_bpm]
        elif self.controls.tempo_bpm is not None:
            targets = [float(self.controls.tempo_bpm)]
        else:
            targets = list(self.bucket_of_token.values()) if self.seconds is not None else [120.0]
        return left + min(self._body_start_cost(m, b, n_insts) for m in meters for b in targets)

    def _body_start_cost(self, meter: _Meter, target_bpm: float, n_insts: int) -> float:
        key = (meter.num, meter.den, target_bpm, n_insts)
        if key not in self._body_cost_cache:
            s = GrammarState()
            s.target_bpm = target_bpm
            s.insts = tuple(range(n_insts))
            s.meter = meter
            nearest = self._tempo_ids(s, first=True)[0]
            s.qpm = self.value[nearest]
            s.tempo_done = True
            s.phase = TEMPO
            s.tick = 0
            self._at_first_tempo(s)
            self._set_limits(s)
            self._body_cost_cache[key] = self.BODY_HEAD + self._cost(s)
        return self._body_cost_cache[key]

    def _at_first_tempo(self, s: GrammarState) -> None:
        """Set what the scheme's body start (:data:`BODY_HEAD` tokens) leaves in ``s`` besides the tempo."""

    def _after_first_tempo(self, s: GrammarState) -> GrammarState:
        """A copy of ``s`` as if the forced first Tempo token were taken (its length limits set)."""
        t = s.copy()
        t.qpm = self.value[int(self._tempo_ids(s, first=True)[0])]
        t.tempo_done = True
        t.phase = TEMPO
        self._set_limits(t)
        return t

    def _moves_to_window(self, s: GrammarState) -> tuple[bool, int]:
        win = s.window_tick is not None and s.last_onset < s.window_tick
        if not win or s.tick >= s.window_tick:
            return win, 0
        return win, -(-(s.window_tick - s.tick) // s.meter.max_shift)


class RemiGrammar(MidiGrammar):
    """REMI: ``Bar TimeSig`` opens each bar, ``Position`` moves forward within it, notes are
    ``Program Pitch Velocity Duration``."""

    scheme = "remi"
    BODY_HEAD = 4       # Bar TimeSig Position_0 Tempo

    def _body_start_mask(self, s: GrammarState) -> np.ndarray:
        return self._mask_of([self.bar_id])

    def _at_first_tempo(self, s: GrammarState) -> None:
        s.bar, s.pos = 0, 0

    def _body_mask(self, s: GrammarState) -> np.ndarray:
        ph = s.phase
        mask = np.zeros(self.vocab_size, dtype=bool)
        if ph == BAR:
            return self._timesig_mask(s)
        if ph == TIMESIG:
            if not s.tempo_done:
                mask[self.position_of[0]] = True
                return mask
            self._remi_positions(s, mask)
            if self._remi_bar_ok(s):
                mask[self.bar_id] = True
        elif ph == POSITION:
            if not s.tempo_done:
                mask[self._tempo_ids(s, first=True)] = True
                return mask
            # a Position needs a note: when every instrument is at its polyphony, one goes over it
            mask[self._program_ids(s) or [self.program_id[p] for p in s.insts]] = True
            if self._later_tempo_ok(s):
                mask[self._tempo_ids(s, first=False)] = True
        elif ph in (TEMPO, DURATION):
            mask[self._program_ids(s)] = True
            self._remi_positions(s, mask)
            if self._remi_bar_ok(s):
                mask[self.bar_id] = True
            if ph == DURATION and self._can_finish(s):
                mask[self.tokenizer.eos_id] = True
        else:
            self._note_mask(s, mask)
        return mask

    def _remi_positions(self, s: GrammarState, mask: np.ndarray) -> None:
        m = s.meter
        bar_start = s.bar_start
        first = s.pos + 1
        last = m.n_positions - 1
        if s.end_tick is not None:
            last = min(last, (s.end_tick - m.min_ticks - bar_start) // m.ticks_per_pos)
        if s.tempo_done and self._ruled(s):   # no silent beat: the next onset comes by the beat after the sound
            last = min(last, (self._sound_reach(s) - bar_start) // m.ticks_per_pos)
        if first <= last:
            positions = range(first, last + 1)
            if s.ends and self._ruled(s):   # only where some instrument is below its polyphony
                ticks = bar_start + np.arange(first, last + 1) * m.ticks_per_pos
                free = np.zeros(len(ticks), dtype=bool)
                for p in s.insts:
                    ends = np.array([end for q, _, end in s.ends if q == p], dtype=np.int64)
                    n_sounding = (ends[None, :] > ticks[:, None]).sum(axis=1) if len(ends) else 0
                    free |= n_sounding < instrument_range(p).polyphony
                # none free: after a note, end or go to the next bar instead; at a bar's start, go over
                positions = [p for p, ok in zip(positions, free, strict=True) if ok] or (
                    [] if s.phase in (TEMPO, DURATION) else positions)
            mask[[self.position_of[p] for p in positions]] = True

    def _remi_bar_ok(self, s: GrammarState) -> bool:
        bar_end = s.bar_start + s.meter.bar_ticks
        return ((s.end_tick is None or bar_end + s.meter.min_ticks <= s.end_tick)
                and (s.bar < 0 or self._bar_complete(s))
                and (s.bar < 0 or not self._ruled(s) or self._sound_reach(s) >= bar_end))

    @staticmethod
    def _sound_reach(s: GrammarState) -> int:
        """The beat line at or after the last sounding note's end (the current tick when none sounds):
        with the note rules, no onset is later, so no whole beat is silent (a rest inside a beat is)."""
        reach = max((end for _, _, end in s.ends), default=s.tick)
        beat = s.meter.ticks_per_beat
        return max(s.tick, -(-reach // beat) * beat)

    def _body_cost(self, s: GrammarState) -> float:
        ph = s.phase
        if ph == BAR:
            t = s.copy()
            t.phase = TIMESIG
            return 1 + self._body_cost(t)
        if ph == TIMESIG:
            if not s.tempo_done:
                t = self._after_first_tempo(s)
                t.pos, t.tick = 0, s.bar_start
                return 2 + self._remi_point(t, must_note=True, can_place=True)
            return self._remi_point(s, must_note=True, can_place=False)
        if ph == POSITION and not s.tempo_done:
            return 1 + self._remi_point(self._after_first_tempo(s), must_note=True, can_place=True)
        if ph == POSITION:   # a note here (one an unplayed part or one the bar lacks needs, else the part whose
            t = s.copy()     # sound ends first), or Tempo and move on
            free = set(self._program_ids(s)) or {self.program_id[p] for p in s.insts}   # as the mask allows
            parts = [p for p in s.insts if self.program_id[p] in free]
            unplayed = [p for p in parts if not s.played >> (p + 1) & 1]
            lacks = [p for p in self._bar_lacks(s) if p in parts]
            until = self._sounds_until(s)
            t.program = (unplayed or lacks or [min(parts, key=until.get)])[0]
            self._note_on(t, t.program)
            best = 4 + self._remi_point(t, must_note=False, can_place=True, pending=True)
            if self._later_tempo_ok(s):
                best = min(best, 1 + self._remi_point(s, must_note=True, can_place=True))
            return best
        if ph == TEMPO:
            return self._remi_point(s, must_note=True, can_place=True)
        if ph in _PENDING:
            return _PENDING[ph] + self._remi_point(s, must_note=False, can_place=True, pending=True)
        return self._remi_point(s, must_note=False, can_place=True)   # DURATION

    def _cost_ceiling(self, s: GrammarState) -> float:
        """:meth:`_body_cost` is at most: the note in flight and its Position, this bar's notes, then Bar
        TimeSig Position and a note per part in each bar up to the last (the window's), and <eos>."""
        if s.phase in (PREFIX, DONE) or s.meter is None or s.window_tick is None:
            return math.inf
        n = len(s.insts)
        bars = max(0, -(-(s.window_tick - s.bar_start) // s.meter.bar_ticks)) + 1
        return 4 * n + 10 + bars * (3 + 4 * n)

    def _remi_point(self, s: GrammarState, *, must_note: bool, can_place: bool, pending: bool = False) -> float:
        """:meth:`_body_cost` from a point where a note, a Position or a Bar may come (``pending``: the note
        in flight has no Duration yet, so it may still sound up to the bar line)."""
        m = s.meter
        U = s.unplayed
        win = s.window_tick is not None and s.last_onset < s.window_tick
        # with the note rules a bar is left (or a piece of a given length ended) only once every part is in
        # it: the current bar's missing notes (each unplayed part is one of them) come first. (A piece of
        # free length has no window, never crosses a bar line here, and may end in an incomplete bar.)
        missing = self._bar_missing(s) if s.window_tick is not None else 0
        if not must_note and U == 0 and missing == 0 and not win:
            return 1
        note_cost = 4 * max(U, missing, 1) + 1
        bar_start = s.bar_start
        if can_place and (not win or s.tick >= s.window_tick):
            return note_cost
        target = s.window_tick if win else -1
        end = s.end_tick
        # a later position in this bar
        p = max(s.pos + 1, -(-(target - bar_start) // m.ticks_per_pos))
        if p < m.n_positions and (end is None or bar_start + p * m.ticks_per_pos + m.min_ticks <= end):
            return 1 + note_cost
        # the first later bar that reaches the target
        k = 1 if not win else max(1, -(-(target - bar_start - (m.n_positions - 1) * m.ticks_per_pos) // m.bar_ticks))
        new_start = bar_start + k * m.bar_ticks
        p = max(0, -(-(target - new_start) // m.ticks_per_pos))
        if end is not None and new_start + p * m.ticks_per_pos + m.min_ticks > end:
            return math.inf
        if not self._ruled(s):
            return 2 * k + 1 + note_cost
        # The note rules: a bar line comes once every part is in the bar and the sound reaches it (no silent
        # beat), and every bar after it has a note begun in it and every part in it, begun or held over.
        # A lower bound of what that takes: this bar's missing notes (or one to sound up to its bar line),
        # then Bar TimeSig Position in each of the k bars, and in each the notes of the parts whose sound
        # does not reach into it (one at least), each begun as late and held as long as a note can be; <eos>.
        lacks = self._bar_lacks(s)
        fill = missing or int(not pending and self._sound_reach(s) < bar_start + m.bar_ticks)
        longest = int(m.duration_ticks.max())
        reach = self._sounds_until(s)
        if pending:   # the note in flight: as long as its Duration may be
            limit = self._duration_end(s)
            held = s.tick + longest
            reach[s.program] = max(reach[s.program], held if limit is None else min(held, limit))

        def later_notes(onset: int) -> int:
            """The notes the k bars need when this bar's missing ones begin at ``onset``."""
            r = dict(reach)
            for q in lacks:
                r[q] = onset + longest
            if fill > len(lacks):   # the note that sounds up to the bar line: the part it helps most
                r[min(r, key=r.get)] = onset + longest
            n = 0
            for j in range(1, k + 1):
                start_j = bar_start + j * m.bar_ticks
                begun = [q for q in s.insts if r[q] <= start_j] or [min(r, key=r.get)]
                for q in begun:
                    r[q] = start_j + (m.n_positions - 1) * m.ticks_per_pos + longest   # as late as a bar allows
                n += len(begun)
            return n

        # this bar's notes here (where a note may come now), or at its last position (held the furthest)
        late = bar_start + (m.n_positions - 1) * m.ticks_per_pos
        options = [4 * fill + 1 + 4 * later_notes(late)] if fill else []
        if can_place or not fill:
            options.append(4 * fill + 4 * later_notes(s.tick))
        return min(options) + 3 * k + 1


class TsdGrammar(MidiGrammar):
    """TSD: ``TimeShift`` moves forward, notes are ``Program Pitch Velocity Duration``."""

    scheme = "tsd"

    def _body_mask(self, s: GrammarState) -> np.ndarray:
        ph = s.phase
        mask = np.zeros(self.vocab_size, dtype=bool)
        if ph == TIMESIG and not s.tempo_done:
            mask[self._tempo_ids(s, first=True)] = True
        elif ph in (TEMPO, TIMESHIFT, DURATION, TIMESIG):
            mask[self._program_ids(s)] = True
            self._shift_mask(s, mask)
            if ph in (TIMESHIFT, TIMESIG) and self._later_tempo_ok(s):
                mask[self._tempo_ids(s, first=False)] = True
            if ph == TIMESHIFT and self.allow_changes:
                mask[self.ids[K_TIMESIG]] = True
            if ph == DURATION and self._can_finish(s):
                mask[self.tokenizer.eos_id] = True
        else:
            self._note_mask(s, mask)
        return mask

    def _shift_mask(self, s: GrammarState, mask: np.ndarray) -> None:
        """The TimeShifts after which a note still fits before the end."""
        ids = self.ids[K_TIMESHIFT]
        if s.end_tick is None:
            mask[ids] = True
            return
        new = s.tick + s.meter.shift_ticks
        mask[ids[new + s.meter.min_ticks <= s.end_tick]] = True

    def _body_cost(self, s: GrammarState) -> float:
        ph = s.phase
        if ph == TIMESIG and not s.tempo_done:
            return 1 + self._tsd_point(self._after_first_tempo(s), must_note=True)
        if ph in (TEMPO, TIMESHIFT, TIMESIG):
            return self._tsd_point(s, must_note=True)
        if ph in _PENDING:
            return _PENDING[ph] + self._tsd_point(s, must_note=False)
        return self._tsd_point(s, must_note=False)

    def _tsd_point(self, s: GrammarState, *, must_note: bool) -> float:
        U = s.unplayed
        win, k = self._moves_to_window(s)
        if not must_note and U == 0 and not win:
            return 1
        return k + 4 * max(U, 1) + 1


class MidiLikeGrammar(MidiGrammar):
    """MIDILike: ``TimeShift`` moves forward, a note is ``Program NoteOn Velocity`` and later
    ``Program NoteOff`` (a note begins at its NoteOn, not at its Program)."""

    scheme = "midilike"

    def _on_program(self, s: GrammarState, program: int) -> None:
        """A note begins at its NoteOn: the Program token alone changes nothing."""

    def _body_mask(self, s: GrammarState) -> np.ndarray:
        ph = s.phase
        mask = np.zeros(self.vocab_size, dtype=bool)
        if ph == TIMESIG and not s.tempo_done:
            mask[self._tempo_ids(s, first=True)] = True
        elif ph in (TEMPO, TIMESHIFT, VELOCITY, NOTEOFF, TIMESIG):
            onset_ok = self._midi_onset_ok(s)
            for p in s.insts:
                if onset_ok or self._closable(s, p):
                    mask[self.program_id[p]] = True
            if s.end_tick is None:
                mask[self.ids[K_TIMESHIFT]] = True
            else:   # a shift to where no note may begin only when all that is left is closing notes
                closing_only = s.n_sounding > 0 and self._can_finish(s)
                new = s.tick + s.meter.shift_ticks
                ok = (new <= s.end_tick) & ((new + s.meter.min_ticks <= s.end_tick) | closing_only)
                mask[self.ids[K_TIMESHIFT][ok]] = True
            if ph in (TIMESHIFT, TIMESIG) and self._later_tempo_ok(s):
                mask[self._tempo_ids(s, first=False)] = True
            if ph == TIMESHIFT and self.allow_changes:
                mask[self.ids[K_TIMESIG]] = True
            if ph == NOTEOFF and s.n_sounding == 0 and self._can_finish(s):
                mask[self.tokenizer.eos_id] = True
        elif ph == PROGRAM:
            drum = s.program == -1
            if self._midi_onset_ok(s):
                if drum:
                    mask[self.ids[K_DRUMON]] = True
                elif self._ruled(s):
                    mask[self.ids[K_NOTEON][self._pitch_ok(s, s.program, self.noteon_values)]] = True
                else:
                    mask[self.ids[K_NOTEON]] = True
            closable = self._closable(s, s.program)
            if closable:
                mask[[self.noteoff_id[(drum, p)] for p in closable]] = True
        elif ph == NOTEON:
            mask[self.ids[K_VELOCITY]] = True
        return mask

    def _closable(self, s: GrammarState, program: int) -> list[int]:
        """MIDILike: pitches of ``program`` whose oldest sounding note began before the current tick."""
        return [pitch for (prog, pitch), onsets in s.sounding.items() if prog == program and onsets[0] < s.tick]

    def _midi_onset_ok(self, s: GrammarState) -> bool:
        return s.end_tick is None or s.tick + s.meter.min_ticks <= s.end_tick

    def _body_cost(self, s: GrammarState) -> float:
        ph = s.phase
        if ph == TIMESIG and not s.tempo_done:
            return 1 + self._midi_point(self._after_first_tempo(s), prev_off=False)
        if ph == NOTEON:
            return 1 + self._midi_point(s, prev_off=False)
        if ph == PROGRAM:
            best = math.inf
            if self._midi_onset_ok(s):
                t = s.copy()
                self._note_on(t, s.program)
                t.n_sounding += 1
                t.n_fresh += 1
                best = 2 + self._midi_point(t, prev_off=False)
            if self._closable(s, s.program):
                t = s.copy()
                t.n_sounding -= 1
                best = min(best, 1 + self._midi_point(t, prev_off=True))
            return best
        return self._midi_point(s, prev_off=ph == NOTEOFF)

    def _midi_point(self, s: GrammarState, *, prev_off: bool) -> float:
        U = s.unplayed
        S = s.n_sounding
        win, k = self._moves_to_window(s)
        if U == 0 and not win:
            if S == 0:
                if prev_off:
                    return 1
                return 7 if self._midi_onset_ok(s) else math.inf
            return (1 if s.n_fresh > 0 else 0) + 2 * S + 1
        n = max(U, 1)
        return k + 3 * n + 1 + 2 * (S + n) + 1


# The grammar class of each MidiTokenizer scheme (what MidiGrammar(tokenizer) builds).
GRAMMARS: dict[str, type[MidiGrammar]] = {"remi": RemiGrammar, "tsd": TsdGrammar, "midilike": MidiLikeGrammar}
