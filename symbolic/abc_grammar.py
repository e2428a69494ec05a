"""Constrained decoding for the ABC tokenizer: a grammar mask so that every sampled tune is valid.

``AbcGrammar(tokenizer, meter=..., unit=..., key=..., bars=..., sections=..., max_tokens=...)`` walks a
tune token by token::

    state = grammar.start()                     # before <bos>
    mask = grammar.allowed(state)               # np.ndarray bool [len(tokenizer)], never all False
    state = grammar.advance(state, token_id)    # ValueError naming the token if it is not allowed
    grammar.finished(state)                     # True after <eos>

A state is a small immutable tuple ``(key, bars_done, n_tokens, last_note, marked_letters, form_state)``
(``form_state`` None without ``form``): copying it is free, and one per sequence of a batch costs nothing.

What a tune must be (the tokenizer's canonical form, :mod:`symbolic.abc_normalise`):

- ``<bos> M: L: K: <bars:..>`` first (restricted to the requested values), then the body, then ``<eos>``.
- Notes ``[accidental] pitch [duration]``, rests ``z [duration]``, chords ``[`` notes ``]`` ``[duration]``,
  tuplets ``(p`` followed by exactly ``p`` notes, rests or chords (q as music21 reads it, see
  :func:`tuplet_ratio`; only durations music21 can put in a tuplet), grace groups ``{`` notes ``}`` before
  a note or chord or at the end of a bar (not inside tuplets: music21 counts grace notes as tuplet notes),
  slurs ``( )`` balanced around notes and chords (no rests inside a slur, at most ``MAX_SLURS`` deep),
  ties ``-`` from a note to the same note (same accidental) or from a chord to a chord, broken rhythm
  ``> >> >>> < << <<<`` directly between a note or chord (with its duration) and the next note or chord
  (music21 ignores it anywhere else; not inside tuplets, no chains). At most ``MAX_CHORD_NOTES`` notes in
  a chord or grace group; durations inside them only with ``strict_bars=False`` (music21 takes the first
  note's).
- Accidentals are written as the normaliser writes them: once a letter has an accidental in a bar,
  every later note of that letter in the bar carries one (so ``normalise_abc(text) == text``).
- ``strict_bars=True`` (the default, what the sampler uses): every bar holds exactly the meter's
  length in unit lengths (exact: positions are integers of ``TICKS_PER_UNIT`` per unit length, so
  tuplets and broken rhythm count exactly); the first bar may be shorter (a pickup) and so may the
  last (after it only ``<eos>``); a tuplet or a broken-rhythm pair ends on the 1/32-unit grid.
  ``strict_bars=False`` only checks the syntax (real tunes have irregular bars).
- Bar lines: ``| || |] [| |: :|``; ``|:`` only when no repeat is open, ``:|`` closes one (or repeats from
  the start/the last section, as ABC allows); ``[1`` after a bar line opens a first ending that ``:|``
  closes, after which ``[2`` must follow; two bar lines touch only as ``:|`` ``|:``; a leading bar line
  may open the body.
- Field changes (``M:`` ``L:`` ``K:`` lines, in that order) after a bar line, only for the fields the
  caller left free; no ``M:`` change with ``strict_bars`` (music21 keeps bar lines of the first meter).
- ``<eos>`` only after a bar line (``final_bar_line=False``: also after the last note) with nothing open
  (repeat, first ending, slur, tie, tuplet), with a number of bars in the chosen ``<bars:..>`` bucket
  (exactly ``bars``, or ``n_sections * bars_per_section`` with ``||``, ``:|`` or ``|]`` ending each
  section and ``|`` or ``|:`` inside one, no pickup, no shorter final bar, no endings, when given).
- The whole sequence, ``<bos>`` and ``<eos>`` included, is at most ``max_tokens`` long: a token is
  allowed only if a valid ending still fits after it (the cost of a fixed completion policy, exact per
  state), so the grammar never dead-ends.

Form (``form=True``, what ``AbcTokenizer.grammar`` gives the sampler; issue 17). Rules, hard (the mask
and ``advance`` refuse, the completion costs know them, so validity is as without form):

- The tune closes with ``|]`` or ``:|`` and nothing after it: ``<eos>`` only after one of them; ``|]`` only
  where the tune may end (its bars in the requested number or bucket, no slur open), and after ``|]`` only
  ``<eos>``; the last section of ``sections`` ends with ``|]`` or ``:|`` (not ``||``). Sections already have
  exactly ``bars_per_section`` full bars each (no pickup, no shorter bar).

Style rules (:meth:`AbcGrammar._style_ban`): they only narrow the valid mask, and never to nothing (when
every valid token is refused by them, the valid mask is kept), so they cannot lower validity; ``advance``
accepts what they refuse (a primer or a real tune may break them):

- No loops: the token completing a bar that would make the same 1..``MAX_LOOP_PERIOD`` bars three times in
  a row is refused (no third identical bar in a row, no ``X Y X Y X Y``), and so is one that would make them
  three times nearly the same (:func:`nearly_same_bars`: each bar at most one edit in four from its
  counterpart, an accidental counted with its note: a phrase played three times with a note changed,
  added or left out). That bar may not close: its bar line is refused, so a last note that would make it
  is shortened and the bar goes on (``G3z2D/2E/2``), and a chord is no way out (its brackets alone would
  take the bar far enough from the other without changing a note). This rule is the first to give way when
  the rules together would leave no token, and it is not applied within ``ENDING_HORIZON`` tokens of the
  budget; so it is with the next two.
- No echoes: a loop by ear, which the token rule does not see (a note split in two changes three tokens):
  the same group of bars a third time with nearly the same melodies (:func:`bar_melody`: the pitches
  struck, in order, a repeated pitch once, whatever the rhythm; :func:`near_melodies`: at most one in four
  of them changed, added or left out), ``G2G2G2B2|G4GGB2|G2GGG2B2``. Such a bar may not close near its
  counterpart, and where it follows it with only the room left for the pitches that would take it away,
  each pitch must take it further (:meth:`AbcGrammar._echo_ban`): the model begins the bar, the rule
  varies its end; in a bar that must close, before the held tonic's beat the cadence rule keeps
  (``c2c2A2`` a third time becomes ``c2ceA2``, not ``c2c2AA``).
- No note struck more than ``STYLE_REPEATS`` times in a row (rests between them do not count, a tie holds a
  note without striking it again): the low-temperature ``A2A2A2A2|A2A2A2A2``.
- No note shorter than a quarter of the unit length (``STYLE_SHORTEST``; none of the held-out tunes has one: where
  a tune must close and the model would rather go on, it otherwise halves its last note again and again,
  ``F/2<F/8F/16|]``); so in a bar that must close, where less than two such notes' time is left, the next
  note is the tonic (which holds on to the bar's end or leaves a beat: the cadence rule below, so no
  ``d/2d/2|]``), and no duration or broken rhythm leaves less than such a note's time (but some) to the bar's
  end (a broken rhythm: with any length of its right note); broken rhythm follows a note at least a unit
  long (as 99.6% of the collections' do). These give way second, after the loop rules, before the others.
- Chords as the corpus writes them: a chord names each note once (the same letter and octave is refused,
  whatever the accidental) and has at most ``STYLE_CHORD_NOTES`` notes (music21's folk collections: 2 to 4).
- Grace notes ornament the note after them (:meth:`AbcGrammar._grace_ban`): between a grace group and its
  note no slur ends and no other grace group begins, so no slur holds only grace notes. Grace notes take no
  time, and the model, once it wrote ``({de})``, wrote grace groups again and again (24 in one bar), until
  the budget left it whole-bar notes for the rest of the tune; no held-out tune has either.
- Tonic endings (from the ``K:`` field, also a free one the model wrote): ``|]``, ``||``, ``:|`` (except the
  one closing a first ending) and ``<eos>`` after ``:|`` are refused after a last note that is not the
  tonic; in a bar that must close a section or the tune, a token that would fill the bar after a note that
  is not the tonic (or start one that would) is refused; so it is in every bar once the tune is within
  ``ENDING_HORIZON`` tokens of its budget (any bar may then be the last one that fits), where also a token
  after which the budget leaves no room for another note must leave the tonic as the last note (a tie
  or a chord may not end it). Where, when and with what rhythm the tune reaches its tonic, and which
  valid ending it writes, the model chooses.
- A meter with bars (:meth:`AbcGrammar._meter_style`): when the meter is the model's to choose, not free meter
  (``M:none``), in which no bar rule can hold (the model's free-meter tunes ran unbarred to the budget).
- Free-meter bars (``M:none``, asked for with ``meter="none"``) as the corpus writes them: a bar of
  ``STYLE_FREE_BAR_TOKENS`` tokens begins no element but the tonic, and no tie, so it closes (or the tune
  ends) there; the loop and echo rules, which refuse what would fill a bar near its counterpart, refuse a
  free-meter bar's bar line while it is near (it has no length to fill). The model's free-meter bars had run
  on where its length control allowed no more bar lines (a tune's longest bar, median, about 200 units).
- Tune lengths the budget can hold (:meth:`AbcGrammar._bucket_style`): the header's bar buckets are those whose
  fewest bars fit ``max_tokens`` at the collections' density (``STYLE_BAR_TOKENS`` tokens per unit of a bar and
  its bar line), so a tune is not driven to reach its bars with the completion's whole-bar notes at the end.
- Cadences (:meth:`AbcGrammar._cadence_ban`, with the short-note rules): the tune's last note, and a section's
  that must close, lasts a beat or more (:func:`cadence_ticks`; a dotted one in compound meters, the unit
  ``L:`` where that is longer): where the tune may end, ``|]`` and ``:|`` wait for such a last note; in a bar
  that must close no element begins in its last beat, no length leaves less than a beat but some, and the note
  that can only be the last is the tonic, so the model reaches a held tonic (``A8A2B2G4|]``, not
  ``A8A2B2B2AG:|``).

Masks are cached per state class (module-level, shared by grammars with the same options); a cached
``allowed`` + ``advance`` is a few numpy operations (about 20 us, ``benchmarks/abc_grammar_speed.py``);
a state class seen for the first time costs about a millisecond.

The completion cost of a state is the length of a fixed policy's completion (close what is open, fill the
bar with rests of greedy lengths, write the bars still needed): it is exact for that policy, so a state
reached within budget always has an allowed token (the policy's), and ``allowed`` is never all False.
"""

from __future__ import annotations

import functools
import itertools
import math
from collections.abc import Sequence
from fractions import Fraction
from typing import NamedTuple

import numpy as np

from ostinato.events.theory import BROKEN_RHYTHM, LETTERS, bar_length, beat_length

from .abc_normalise import ACCIDENTAL_ALTER, BAR_BUCKETS, BARS, DURATIONS, KEYS, METERS, PITCHES, UNITS, bar_bucket

__all__ = ["GRID_TICKS", "MAX_CHORD_NOTES", "MAX_SLURS", "STYLE_BAR_TOKENS", "STYLE_CHORD_NOTES",
           "STYLE_FREE_BAR_TOKENS", "STYLE_REPEATS", "STYLE_SHORTEST", "TICKS_PER_UNIT", "AbcGrammar", "PrimedGrammar",
           "bar_melody", "bar_units", "cadence_ticks", "clear_caches", "edit_distance", "near_melodies",
           "near_tolerance", "nearly_same_bars", "open_ornaments", "strikes", "tuplet_ratio", "without_ornaments"]

TICKS_PER_UNIT = 80640  # 32 * 2520: 1/32 unit durations, tuplets of 2..9 and broken rhythm are exact
GRID_TICKS = TICKS_PER_UNIT // 32  # the 1/32-unit grid plain durations move on
MAX_SLURS = 3
MAX_CHORD_NOTES = 8  # notes in a chord or a grace group
STYLE_CHORD_NOTES = 4  # the style rule's cap on a chord's notes (the corpus's chords have 2-4)
STYLE_REPEATS = 5  # the style rule's most strikes of one pitch in a row (95% of the held-out tunes; 98%: 6)
STYLE_SHORTEST = Fraction(1, 4)  # the style rule's shortest note, in unit lengths (none shorter in the corpus)
# the style rule's tokens per unit of a bar (each bar also takes its bar line) when it picks the bar buckets a
# budget can hold: the 90th percentile of the held-out tunes (median 0.99: a note of a unit or more costs at most
# a token a unit, one shorter more)
STYLE_BAR_TOKENS = Fraction(135, 100)
# the style rule's longest free-meter (M:none) bar, in tokens: 95% of the Essen free-meter tunes' bars have 32 or fewer
# (median 8); the model's ran on to the budget (a median tune's longest bar 456 units) where no bar line could follow
STYLE_FREE_BAR_TOKENS = 48
_SHORTEST_TICKS = TICKS_PER_UNIT * STYLE_SHORTEST.numerator // STYLE_SHORTEST.denominator
_INF = 10**9
_NO_LIMIT = 10**6

# contexts (where in the tune a state is)
(START, LEAD, BAR, FINAL, FIELD, ENDING, ACC, NOTE, REST, CHO, CH_ACC, CH_NOTE, CHORD_END, GRACE, GR_ACC,
 GR_NOTE, GRACE_END, EL_DONE, TIE, BROKEN, SLUR_OPEN, TUPLET, SLUR_CLOSED, DONE) = range(24)
_AFTER_EL = frozenset((NOTE, REST, CHORD_END, EL_DONE, SLUR_CLOSED))
_CLOSABLE = _AFTER_EL | {TIE}  # where a full bar may take its bar line
_DUR_OK = frozenset((NOTE, REST, CHORD_END))
_BAR_START = frozenset((START, LEAD, BAR, FIELD, ENDING))
_ELEMENT_CTX = _BAR_START | _AFTER_EL | {TIE, BROKEN, SLUR_OPEN, TUPLET, GRACE_END}
_FIELD_BIT = {"M": 1, "L": 2, "K": 4}
_COMPOUND = frozenset((6, 9, 12, 15))
_CLOSING = ("|]", ":|")  # bar lines a tune may end with under the form rules
_FORM_START = (None, False, (), ())  # form state: tonic, last note is the tonic, this bar, the bars before
MAX_LOOP_PERIOD = 4  # form: no group of 1..4 bars three times in a row


class _Bad(Exception):
    """A token the grammar refuses here; the message says why."""


class _Key(NamedTuple):
    """The part of a body state that decides which tokens are allowed (cached by value)."""

    ctx: int
    meter: str  # "6/8", "C", "none"...
    unit: str  # "1/8"...
    bar: int  # bar length in ticks when bars are tracked (strict, meter not free), else 0
    lo: int  # bars the tune must have: lo <= bars <= hi
    hi: int
    pos: int  # ticks into the bar (untracked: 1 if the bar has content, else 0)
    tie: str | None  # pending tie from: "n" note, "na" note with accidental, "c" chord
    last: str | None  # kind of the last element: "n", "na", "c", "r"
    slur: int
    tup: tuple[int, int] | None  # (ticks per unit inside the tuplet, elements still to start)
    brk: int  # ticks per unit of the pending right element of a broken rhythm, 0 if none
    right: bool  # the last element was the right one of a broken rhythm
    el_start: int  # the current element's start and ticks per unit (while its duration may change)
    el_unit: int
    cn: int  # notes in the open chord or grace group
    rep: int  # 1 while a |: repeat is open
    ending: int  # 0 none, 1 in a first ending, 2 a [2 must follow, 3 in a second ending
    lb: str | None  # the last bar line
    fields: int  # field changes since the last bar line (bits M=1 L=2 K=4)
    cls: tuple | None  # what the number of bars done allows (see AbcGrammar._cls)


_KEY_INDEX = {name: i for i, name in enumerate(_Key._fields)}


def bar_units(bar, accidentals) -> tuple:
    """A bar's tokens as units: each accidental joined to the pitch after it (``("_", "B")``), every other
    token one unit; a trailing accidental is a unit of its own (``("_",)``). ``accidentals``: the set of
    accidental tokens (strings or ids, as ``bar`` has them)."""
    out, pending = [], None
    for t in bar:
        if t in accidentals:
            pending = t
        else:
            out.append(t if pending is None else (pending, t))
            pending = None
    if pending is not None:
        out.append((pending,))
    return tuple(out)


def bar_melody(bar, pitches, accidentals, brackets) -> tuple:
    """A bar as the ear follows its tune: the pitches it strikes, in order, each repeated pitch once (a note
    split in two, ``D2`` as ``DD``, is the same melody), with an accidental joined to its pitch, a chord by
    its first note; grace notes, rests, durations, ties and slurs left out. ``G2G2G2B2`` and ``G4GGB2`` are
    both ``(G, B)``. ``pitches``, ``accidentals``: the sets of those tokens; ``brackets``: the tokens
    ``{``, ``}``, ``[``, ``]`` (strings or ids, as ``bar`` has them)."""
    return tuple(unit for unit, _ in itertools.groupby(strikes(bar, pitches, accidentals, brackets, tie=None)))


def strikes(tokens, pitches, accidentals, brackets, tie) -> list:
    """The melody notes ``tokens`` strike, in order, as :func:`bar_melody` names them (an accidental joined to
    its pitch, a chord by its first note, grace notes and rests left out), repeats kept, and a note a tie
    holds on (``c2-c``, also over a bar line) not struck again. ``tie``: the tie token (None: ties not read)."""
    grace_open, grace_close, chord_open, chord_close = brackets
    out: list = []
    acc = None
    in_grace = in_chord = tied = False
    first = True
    for t in tokens:
        if t == grace_open:
            in_grace = True
        elif t == grace_close:
            in_grace = False
        elif t == chord_open:
            in_chord, first = True, True
        elif t == chord_close:
            in_chord = False
        elif t == tie:
            tied = True
        elif t in accidentals:
            acc = t
        elif t in pitches:
            unit = t if acc is None else (acc, t)
            acc = None
            if in_grace or (in_chord and not first):
                continue
            first = False
            if tied:
                tied = False
                continue
            out.append(unit)
    return out


def near_melodies(a: tuple, b: tuple) -> bool:
    """Two bars' melodies (:func:`bar_melody`) are nearly the same: equal, or at most one edit in four of the
    shorter one's pitches apart (:func:`near_tolerance`: a pitch changed, added or left out in four; a
    melody does not come near another by growing longer)."""
    return a == b or edit_distance(a, b) <= near_tolerance(min(len(a), len(b)))


def edit_distance(a, b) -> int:
    """Levenshtein distance between two sequences: insertions, deletions and substitutions."""
    return _edit_row(a, b)[-1]


def _edit_row(a, b) -> list[int]:
    """The edit distances from ``a`` to each prefix of ``b`` (the last row of the Levenshtein table)."""
    row = list(range(len(b) + 1))
    for i, x in enumerate(a, 1):
        row = _next_row(row, i, b, x)
    return row


def _next_row(row: list[int], i: int, b, x) -> list[int]:
    """The table's row for ``a + [x]`` (``i = len(a) + 1``) from the row for ``a``; ``x`` None: a unit
    that equals nothing in ``b``."""
    out = [i]
    for j, y in enumerate(b, 1):
        out.append(min(row[j] + 1, out[j - 1] + 1, row[j - 1] + (x is None or x != y)))
    return out


def near_tolerance(n_units: int) -> int:
    """How many edits a bar of ``n_units`` units takes and stays nearly the same: one in four (none in a
    bar of 2 or 3 units, where one unit is the whole of a note: ``G6`` and ``B6`` differ)."""
    return n_units // 4


def nearly_same_bars(a, b, accidentals=frozenset(ACCIDENTAL_ALTER)) -> bool:
    """Two bars (token sequences) are nearly the same: their units (:func:`bar_units`) are at most one
    edit in four apart (:func:`edit_distance`; a note changed, added or left out, an accidental counted
    with its note). Identical bars are nearly the same."""
    a, b = bar_units(a, accidentals), bar_units(b, accidentals)
    return a == b or edit_distance(a, b) <= near_tolerance(max(len(a), len(b)))


def _key_replace(self: _Key, **changes) -> _Key:
    """``_Key._replace`` without namedtuple's checks (the grammar's hot path)."""
    values = list(self)
    for name, value in changes.items():
        values[_KEY_INDEX[name]] = value
    return tuple.__new__(_Key, values)


_Key._replace = _key_replace  # type: ignore[method-assign]


def without_ornaments(vocab: Sequence[str], ids: Sequence[int]) -> list[int]:
    """``ids`` without slurs (``(`` ``)``), ties (``-``) and grace groups (``{`` .. ``}``): a tune's notes,
    rests, durations, bar lines and fields as they are, without the marks that change none of them."""
    out, grace = [], False
    for token in ids:
        text = vocab[int(token)]
        if text in ("{", "}"):
            grace = text == "{"
        elif not grace and text not in ("(", ")", "-"):
            out.append(int(token))
    return out


def open_ornaments(vocab: Sequence[str], ids: Sequence[int]) -> tuple[int, bool]:
    """``(slurs left open, a tie left open)`` at the end of ``ids``, counted on the tokens (a ``)`` without
    its ``(`` closes nothing; a tie is open when ``-`` is the last token but bar lines)."""
    slurs, tie = 0, False
    for token in ids:
        text = vocab[int(token)]
        if text == "(":
            slurs += 1
        elif text == ")":
            slurs = max(slurs - 1, 0)
        if text not in BARS:
            tie = text == "-"
    return slurs, tie


def tuplet_ratio(p: int, meter: str) -> Fraction:
    """The length factor q/p of a tuplet ``(p`` as music21 reads it (q for 5, 7, 9: 3 in compound meters)."""
    compound = meter not in ("none", "C", "C|") and int(meter.split("/")[0]) in _COMPOUND
    q = {2: 3, 3: 2, 4: 3, 6: 2, 8: 3}.get(p, 3 if compound else 2)
    return Fraction(q, p)


def meter_bar_ticks(meter: str, unit: str) -> int:
    """Ticks in one bar (0 for free meter)."""
    value = bar_length(meter)
    if value is None:
        return 0
    units = value / Fraction(unit) * TICKS_PER_UNIT
    if units.denominator != 1:
        raise AssertionError(f"bar of M:{meter} L:{unit} off the tick grid")  # never: units >= 1/64
    return int(units)


@functools.cache
def cadence_ticks(meter: str, unit: str) -> int:
    """Ticks of the shortest last note of a tune or section under the cadence rule: one beat of the meter
    (:func:`events.theory.beat_length`, a dotted one in compound meters), or the unit ``L:`` where that is
    longer (never more than a bar); 0 for free meter."""
    beat = beat_length(meter)
    if beat is None:
        return 0
    bar = bar_length(meter)
    return int(min(max(beat, Fraction(unit)), bar) / Fraction(unit) * TICKS_PER_UNIT)


_DUR_N = {token: int(value * 32) for token, value in DURATIONS.items()}  # duration token -> 1/32 units
_DG_ASC = sorted({*_DUR_N.values(), 32})  # every length a note can have, in 1/32 units (32: no token)
_DG_ARRAY = np.array(_DG_ASC, dtype=np.int64)


@functools.cache
def _simple_length(n: int) -> bool:
    """A length (1/32 units) music21 can put in a tuplet: one note type with up to three dots."""
    num = Fraction(n, 32).numerator
    return num // (num & -num) in (1, 3, 7, 15)


_TUPLET_N = [n for n in _DG_ASC if _simple_length(n)]


@functools.cache
def _min_sum(count: int, modulus: int, residue: int) -> int:
    """The smallest sum of ``count`` note lengths (1/32 units) that is ``residue`` modulo ``modulus``."""
    best = {0: 0}
    for _ in range(count):
        nxt: dict[int, int] = {}
        for r, s in best.items():
            for n in _TUPLET_N[:24]:
                rr = (r + n) % modulus
                if s + n < nxt.get(rr, _INF):
                    nxt[rr] = s + n
        best = nxt
    return best.get(residue % modulus, _INF)


@functools.cache
def _fill_tokens(ticks: int) -> int:
    """Tokens the policy's greedy rests take to fill ``ticks`` (a multiple of the grid)."""
    count = 0
    while ticks > 0:
        n = max(v for v in _DG_ASC if v * GRID_TICKS <= ticks)
        count += 1 if n == 32 else 2
        ticks -= n * GRID_TICKS
    return count


_FILL: list[int] = [0]


def _fill_array(n_grid: int) -> np.ndarray:
    """``_fill_tokens`` for 0..n_grid grid steps, as an array."""
    while len(_FILL) <= n_grid:
        _FILL.append(_fill_tokens(len(_FILL) * GRID_TICKS))
    return np.array(_FILL[:n_grid + 1])


class _Cache:
    """Per-option caches shared by grammars: masks per key, completion costs."""

    def __init__(self) -> None:
        self.entries: dict = {}
        self.local: dict = {}
        self.tail: dict = {}
        self.header: dict = {}
        self.bar_end: dict = {}


_CACHES: dict[tuple, _Cache] = {}
_MAX_CACHED = 300_000  # memo entries per kind before a cache is dropped (it refills deterministically)
# tokens before the end of the budget from which every bar ends on the tonic (about two bars as a model writes
# them): a tune that runs out of room then still ends on its tonic
ENDING_HORIZON = 24


def _union(a: np.ndarray | None, b: np.ndarray | None) -> np.ndarray | None:
    """Two optional bans together (None: no ban)."""
    return b if a is None else a if b is None else a | b


def clear_caches() -> None:
    """Drop every cached mask and cost (they are recomputed on demand, identically)."""
    _CACHES.clear()


class _Entry:
    """A cached key: per token, the policy's tokens to the next bar-start signature (``loc``, ``_INF`` if
    refused) and that signature's index (``sidx`` into ``sigs``); next keys; tails per bars done."""

    __slots__ = ("loc", "next", "sidx", "sigs", "tails")

    def __init__(self, loc, sidx, sigs, nxt):
        self.loc, self.sidx, self.sigs, self.next = loc, sidx, sigs, nxt
        self.tails: dict[int, np.ndarray] = {}


class AbcGrammar:
    """The ABC grammar mask (see the module docstring).

    Args:
        tokenizer: the :class:`symbolic.abc_tokens.AbcTokenizer` whose ids the masks are over.
        meter, unit, key: requested header values (``"6/8"`` or ``"M:6/8"``, ``"1/8"``, ``"Ador"``), or None.
        bars: the exact number of bars, or None.
        sections: ``(n_sections, bars_per_section)``: that many bars, a section bar line after each section.
        max_tokens: the longest sequence, ``<bos>`` and ``<eos>`` included.
        strict_bars: every bar holds the meter's length (a pickup and a final bar may be shorter).
        final_bar_line: ``<eos>`` only after a bar line; False also lets a tune end after its last note
            (as most of the Essen tunes in music21's corpus do; not with ``sections``).
        form: the form rules of a composed tune (what the sampler uses, ``AbcTokenizer.grammar``; see
            "Form" in the module docstring): hard rules on the closing bar line, and style rules (no
            loops, tonic endings) that narrow the mask only where another valid token remains.

    Raises:
        ValueError: a control outside the vocabulary, or a tune with these controls cannot fit in
            ``max_tokens`` (the message names the parameter).
    """

    def __init__(self, tokenizer, *, meter: str | None = None, unit: str | None = None,
                 key: str | None = None, bars: int | None = None, sections: tuple[int, int] | None = None,
                 max_tokens: int = 512, strict_bars: bool = True, final_bar_line: bool = True,
                 form: bool = False) -> None:
        self.tok = tokenizer
        self.meter = self._control("meter", meter, "M:", METERS)
        self.unit = self._control("unit", unit, "L:", UNITS)
        self.key = self._control("key", key, "K:", KEYS)
        if sections is not None:
            if (not isinstance(sections, tuple | list) or len(sections) != 2
                    or not all(isinstance(v, int) and v >= 1 for v in sections)):
                raise ValueError(f"sections must be (n_sections, bars_per_section), both >= 1, got {sections!r}")
            sections = (int(sections[0]), int(sections[1]))
            total = sections[0] * sections[1]
            if bars is not None and bars != total:
                raise ValueError(f"bars={bars} disagrees with sections={sections} ({total} bars)")
            bars = total
        if bars is not None and (not isinstance(bars, int) or bars < 1):
            raise ValueError(f"bars must be at least 1, got {bars!r}")
        if not isinstance(max_tokens, int) or max_tokens < 8:
            raise ValueError(f"max_tokens must be at least 8, got {max_tokens!r}")
        self.bars, self.sections, self.max_tokens, self.strict = bars, sections, max_tokens, bool(strict_bars)
        self.final_bar_line = bool(final_bar_line)
        self.form = bool(form)
        self.vocab = tokenizer.vocab
        config = (self.strict, self.final_bar_line, self.form, sections, self.meter, self.unit, self.key, bars,
                  len(self.vocab))   # masks are as long as the vocabulary (the infill tokens add three)
        self._c = _CACHES.setdefault(config, _Cache())
        self._build_tables()
        cost = self._header_cost(("H", 0, None, None))
        if cost > max_tokens:
            raise ValueError(f"max_tokens={max_tokens} is too small: the shortest tune with these controls "
                             f"needs {cost} tokens" if cost < _INF else
                             "no valid tune satisfies these controls")

    @staticmethod
    def _control(name: str, value: str | None, prefix: str, allowed: list[str]) -> str | None:
        if value is None:
            return None
        value = str(value).removeprefix(prefix)
        if value not in allowed:
            raise ValueError(f"{name} {value!r} is not in the ABC vocabulary")
        return value

    # -- token tables ----------------------------------------------------------------------------

    def _build_tables(self) -> None:
        ids = self.tok.token_to_id
        self.V = len(self.vocab)
        self.bos, self.eos = self.tok.bos_id, self.tok.eos_id
        kind: list[str] = [""] * self.V
        for name, (start, stop) in self.tok.blocks.items():
            for i in range(start, stop):
                kind[i] = name
        self.kind = kind
        self.pitch_letter = {ids[p]: LETTERS.index(p[0].upper()) for p in PITCHES}
        self.letter_pitch = [ids[letter.lower()] for letter in LETTERS]  # representative pitch per letter
        self.letter_ids = [np.array([ids[p] for p in PITCHES if p[0].upper() == letter]) for letter in LETTERS]
        self.acc_ids = np.arange(*self.tok.blocks["accidental"])
        self._acc_set = frozenset(self.acc_ids.tolist())
        self._unit_cache: dict[tuple, tuple] = {}  # bar of ids -> its units (the near-loop rule)
        self._near_cache: dict[tuple, bool] = {}  # (bar, bar) -> nearly the same
        self._near_melody_cache: dict[tuple, bool] = {}  # (melody, melody) -> nearly the same
        self._melody_cache: dict[tuple, tuple] = {}  # bar of ids -> its melody (the echo rule)
        self._brackets = (ids["{"], ids["}"], ids["["], ids["]"])
        self._pitch_set = frozenset(ids[p] for p in PITCHES)
        self.pitch_ids = np.arange(*self.tok.blocks["pitch"])
        self.dur_id = {n: ids[t] for t, n in _DUR_N.items()}
        self.dur_n = {ids[t]: n for t, n in _DUR_N.items()}
        self.rest = ids["z"]
        self.marked_ok = np.ones((128, self.V), dtype=bool)  # marked letters -> pitches still allowed bare
        for marked in range(128):
            for letter in range(7):
                if marked >> letter & 1:
                    self.marked_ok[marked, self.letter_ids[letter]] = False
        self.eq = ids["="]
        # representatives: token id -> the ids that behave the same in the body
        reps: list[tuple[int, np.ndarray]] = []
        reps.append((self.letter_pitch[0], self.pitch_ids))  # pitches behave alike (ties and marked letters
        # are applied on top of the cached masks)
        reps.append((self.eq, self.acc_ids))
        for name in ("bar", "ending", "rest", "duration", "tuplet", "broken", "tie", "slur", "grace", "chord"):
            reps.extend((i, np.array([i])) for i in range(*self.tok.blocks[name]))
        reps.append((self.eos, np.array([self.eos])))
        if self.meter is None and not self.strict:
            reps.extend((i, np.array([i])) for i in range(*self.tok.blocks["meter"]))
        if self.unit is None:
            reps.extend((i, np.array([i])) for i in range(*self.tok.blocks["unit"]))
        if self.key is None:
            k0, k1 = self.tok.blocks["key"]
            reps.append((k0, np.arange(k0, k1)))
        self.reps = reps
        dur_block = set(range(*self.tok.blocks["duration"]))
        by_kind = {}
        for r, group in reps:
            by_kind.setdefault(self.kind[r], []).append((r, group))
        plain = [(r, g) for r, g in reps if r not in dur_block]
        notes = by_kind["accidental"] + by_kind["pitch"]
        chord = [(r, g) for r, g in by_kind["chord"] if self.vocab[r] == "]"]
        grace = [(r, g) for r, g in by_kind["grace"] if self.vocab[r] == "}"]
        durs = by_kind["duration"]
        self.ctx_reps = {c: plain for c in range(DONE)}
        self.ctx_reps.update({ACC: by_kind["pitch"], CH_ACC: by_kind["pitch"], GR_ACC: by_kind["pitch"],
                              CHO: notes + chord, CH_NOTE: notes + chord + durs, GRACE: notes + grace,
                              GR_NOTE: notes + grace + durs, FINAL: [(self.eos, np.array([self.eos]))]})
        self.dur_ids = np.array([r for r, _ in durs])
        self.dur_lengths = np.array([self.dur_n[r] for r, _ in durs])
        self.rep_of = np.full(self.V, -1, dtype=np.int64)
        for rep, group in reps:
            self.rep_of[group] = rep
        self._filling = np.zeros(self.V, dtype=bool)  # tokens that may end an element (form's tonic rule)
        self._is_pitch = np.zeros(self.V, dtype=bool)
        self._is_pitch[self.pitch_ids] = True
        self._tie, self._chord = ids["-"], ids["["]
        self._grace_close = ids["}"]
        self._grace_pending = np.zeros(self.V, dtype=bool)  # what may not come between a grace group and its note
        self._grace_pending[[ids[")"], ids["{"]]] = True
        self._grace_pending.flags.writeable = False
        kinds = np.array(self.kind)
        self._is_duration, self._broken, self._bar_line = (kinds == "duration"), (kinds == "broken"), (kinds == "bar")
        self._is_tuplet = kinds == "tuplet"
        self._filling |= self._is_duration
        self._filling[[self.rest, ids["]"], ids[")"]]] = True
        self._length_open = np.zeros(self.V, dtype=bool)  # a duration may still follow and change the length
        self._length_open[[self.rest, ids["]"]]] = True
        self._sets_length = self._is_duration | self._broken  # what fixes the length of the element before it
        self._too_short = self._is_duration & np.array([DURATIONS.get(t, 1) < STYLE_SHORTEST for t in self.vocab])
        self._too_short.flags.writeable = False
        self._starts = self._is_pitch.copy()  # tokens that begin an element (the cadence rule)
        self._starts[self.acc_ids] = True
        self._starts[self._is_tuplet] = True
        self._starts[[self.rest, ids["["], ids["{"], ids["("]]] = True
        self._short_cache: dict[_Key, np.ndarray] = {}  # state -> its _short_ban

    # -- public interface ------------------------------------------------------------------------

    def start(self) -> tuple:
        """The state before ``<bos>``."""
        return (("H", 0, None, None), 0, 0, None, 0, _FORM_START if self.form else None)

    def finished(self, state: tuple) -> bool:
        """True after ``<eos>``."""
        return state[0] == "DONE"

    def prefix_ids(self) -> list[int]:
        """The forced ids up front: ``<bos>`` and the header tokens the controls fix."""
        out = [self.bos]
        for value, prefix in ((self.meter, "M:"), (self.unit, "L:"), (self.key, "K:")):
            if value is None:
                return out
            out.append(self.tok.token_to_id[prefix + value])
        if self.bars is not None:
            out.append(self.tok.token_to_id[bar_bucket(self.bars)])
        return out


    forced_prefix_ids = prefix_ids   # the forced ids up front (what sampling starts from)
    def allowed(self, state: tuple) -> np.ndarray:
        """Tokens that keep the tune valid and finishable within ``max_tokens``: bool ``[len(tokenizer)]``."""
        key, bd, n, note, marked, fs = state
        budget = self.max_tokens - n
        if key == "DONE":
            mask = np.zeros(self.V, dtype=bool)
            mask[self.tok.pad_id] = True  # after <eos> the sampler only pads
            return mask
        if key[0] == "H":
            costs = self._header_costs(key)
            mask = costs < budget
            if fs is not None and key[1] == 4 and self.bars is None:
                mask = self._bucket_style(key, mask, budget)
            if fs is not None and key[1] == 1 and self.meter is None:
                mask = self._meter_style(mask)
            return mask
        e = self._entry(key)
        costs = e.loc + self._tails(e, bd)[e.sidx]  # the fewest tokens a tune takes from here with each token
        mask = costs < budget
        if marked and key.ctx not in (ACC, CH_ACC, GR_ACC):
            mask &= self.marked_ok[marked]
        if key.tie in ("n", "na") and key.ctx in (TIE, BAR, ACC):
            self._restrict_tie(mask, key, note)
        if fs is not None:
            # near the end of the budget, any bar may be the last one the budget lets the tune write
            closing = self.cost(state) > budget - ENDING_HORIZON
            banned = self._style_ban(key, bd, note, fs, mask, closing)
            if closing:  # a token after which the tune can only close at once is its last note: the tonic
                last = mask & (costs >= budget - 1)
                last[self._tie] = mask[self._tie]  # (a tie's cost does not count the note it forces)
                banned = self._last_note_ban(key, note, fs, last, banned)
            # (not where the budget may end the tune: the tokens its ending needs are not to spare)
            near = None
            if not closing:  # the loop rules: near loops, echoes, one note struck again and again
                # the held tonic's beat (_cadence_ban) in a bar that must close (_must_close checks bar and class)
                must = fs[0] is not None and self._must_close(key, bd, closing)
                reserve = cadence_ticks(key.meter, key.unit) if must else 0
                near = _union(self._near_loop_ban(key, fs, mask), self._echo_ban(key, fs, mask, reserve))
                near = _union(near, self._repeat_ban(key, fs))
            short = _union(self._short_ban(key), self._held_tonic_ban(key, bd, fs, closing))
            short = _union(short, self._cadence_ban(key, bd, note, fs, mask, closing))
            core = short if banned is None else banned | short
            # all the rules; without the near-loop one; without the shortest note's either; none
            for ban in (core if near is None else core | near, core, banned):
                if ban is not None:
                    narrowed = mask & ~ban
                    if narrowed.any():  # a style rule never takes the last valid token away
                        mask = narrowed
                        break
        return mask

    def advance(self, state: tuple, token_id: int) -> tuple:
        """The state after ``token_id``; raises ValueError naming the token if it is not allowed."""
        key, bd, n, note, marked, fs = state
        token_id = int(token_id)
        if not 0 <= token_id < self.V:
            raise ValueError(f"token id {token_id} out of range 0..{self.V - 1}")
        if key == "DONE":
            raise ValueError(f"token {self.vocab[token_id]!r} not allowed: the tune has ended")
        budget = self.max_tokens - n
        if key[0] == "H":
            costs = self._header_costs(key)
            if costs[token_id] >= budget:
                raise ValueError(self._refusal(key, token_id, token_id in self._header_options(key),
                                               int(costs[token_id])))
            if fs is not None and self.kind[token_id] == "key":
                fs = (self._tonic_of(self.vocab[token_id][2:]), *fs[1:])
            return (self._header_step(key, token_id), 0, n + 1, None, 0, fs)
        e = self._entry(key)
        rep = int(self.rep_of[token_id])
        if rep < 0 or e.loc[token_id] >= _INF:
            raise ValueError(self._refusal(key, token_id, False))
        step = e.next.get(rep)
        if step is None:
            step = e.next[rep] = self._step(key, rep)
        cost = int(e.loc[token_id]) + int(self._tails(e, bd)[e.sidx[token_id]])
        if cost >= budget:
            raise ValueError(self._refusal(key, token_id, True, int(cost)))
        refusal = self._tie_refusal(key, token_id, note)
        if refusal:
            raise ValueError(refusal)
        kind = self.kind[token_id]
        if kind == "pitch":
            bit = 1 << self.pitch_letter[token_id]
            if key.ctx in (ACC, CH_ACC, GR_ACC):
                marked |= bit
            elif marked & bit:
                raise ValueError(f"token {self.vocab[token_id]!r} not allowed: "
                                 f"{LETTERS[self.pitch_letter[token_id]]} had an accidental earlier in the bar "
                                 "(write one)")
        elif kind in ("bar", "ending"):
            marked = 0
        nxt, inc = step
        if nxt == "DONE":
            return ("DONE", bd, n + 1, None, 0, fs)
        if inc:
            bd += 1
            nxt = nxt._replace(cls=self._cls(bd, nxt.lo, nxt.hi))
        if kind == "accidental" and key.ctx not in (CHO, CH_NOTE, GRACE, GR_NOTE):
            note = (self.vocab[token_id], note[1] if note else None)
        elif kind == "pitch" and (key.ctx == ACC or key.ctx in _ELEMENT_CTX):
            note = (note[0] if key.ctx == ACC else "", token_id)
        if fs is not None:
            fs = self._form_step(fs, key, token_id, note)
        return (nxt, bd, n + 1, note, marked, fs)

    def _tails(self, e: _Entry, bd: int) -> np.ndarray:
        """Tokens after each of ``e``'s bar-start signatures, with ``bd`` bars done before them."""
        tails = e.tails.get(bd)
        if tails is None:
            tails = e.tails[bd] = np.array([self._tail(bd + 1, s) for s in e.sigs], dtype=np.int64)
        return tails

    def cost(self, state: tuple) -> int:
        """Tokens the completion policy still needs from ``state`` (``<eos>`` included); a large number if none."""
        key, bd, _n, _note, _marked, _fs = state
        if key == "DONE":
            return 0
        if key[0] == "H":
            return self._header_cost(key)
        steps, sig = self._local(key)
        return min(_INF, steps + self._tail(bd + 1, sig))

    def read(self, ids: Sequence[int], *, fold=None, init=None) -> tuple[tuple, object]:
        """The state after a real tune's tokens ``ids`` (``<bos>`` first), for a syntax-only grammar
        (``strict_bars=False``) reading a primer or the bars before an infill.

        A real tune may carry marks that this grammar would not write, each of which music21 reads on
        its own terms: a tie between two different notes (``D-E``, O'Neill's "slurs"), a slur that closes or
        opens between the two notes of a broken rhythm (``a>)b``), a grace group there, a rest inside a slur.
        When the tokens as given are refused, they are read again without their slurs, ties and grace groups
        (:func:`without_ornaments`), which change no note's pitch or length, no bar and no field: the state
        is that of the bare tune, with the slurs the tokens leave open and their number of tokens.

        Returns ``(state, value)``: ``value`` is ``init`` folded over the tokens read (the bare ones when
        those were read), ``value = fold(value, key_before, token, state_after)``; None without ``fold``.

        Raises:
            ValueError: the tokens as given are refused (their message) and either the bare tune is too,
                or a tie is left open at the end (the bare tune does not know the note it continues); or no
                tune finishes within ``max_tokens`` after them.
        """
        def walk(tokens: Sequence[int], grammar: AbcGrammar = self) -> tuple[tuple, object]:
            state, value = grammar.start(), init
            for token in tokens:
                before = state[0]
                state = grammar.advance(state, token)
                if fold is not None:
                    value = fold(value, before, int(token), state)
            return state, value

        try:
            return walk(ids)
        except ValueError as exc:
            refusal = exc
        bare = without_ornaments(self.vocab, ids)
        slurs, tie = open_ornaments(self.vocab, ids)
        if len(bare) == len(ids) or tie or slurs > MAX_SLURS:
            raise refusal
        try:   # with no budget: the bare tune is shorter, the whole one's budget is checked below
            (key, bd, _n, note, marked, fs), value = walk(bare, self._with_budget(_NO_LIMIT))
        except ValueError:
            raise refusal from None
        if key != "DONE" and key[0] != "H":
            key = key._replace(slur=slurs)
        state = (key, bd, len(ids), note, marked, fs)
        if self.cost(state) > self.max_tokens - len(ids):   # the bare tune was walked with a looser budget
            raise ValueError(f"no tune of these controls finishes within {self.max_tokens} tokens after it")
        return state, value

    def _with_budget(self, max_tokens: int) -> AbcGrammar:
        """This grammar with another ``max_tokens`` (the same controls and rules; its mask caches are shared)."""
        return AbcGrammar(self.tok, meter=self.meter, unit=self.unit, key=self.key, bars=self.bars,
                          sections=self.sections, max_tokens=max_tokens, strict_bars=self.strict,
                          final_bar_line=self.final_bar_line, form=self.form)

    def resume(self, loose: AbcGrammar, prompt: Sequence[int]) -> tuple:
        """The state in which this grammar takes up a tune whose opening ``prompt`` (``<bos>``, the header and
        whole bars, to a bar line) it may refuse but ``loose`` (the same controls, ``strict_bars=False``)
        accepts: a real tune's bars may be irregular (a short bar before ``:|`` answering the pickup, a bar line
        missing), or marks this grammar would not write (:meth:`read`). From there every rule of this grammar
        holds (bar lengths, form; the loop rule sees the primer's bars, the tonic rules its key). A slur the
        primer leaves open stays as written (real tunes have unclosed slurs; music21 ignores them): the bars
        after it neither close nor count it. ValueError when the prompt does not end at a bar line with no tie
        across it, or no tune of this grammar can finish from there within ``max_tokens``."""
        def form_step(fs: tuple | None, before, token: int, after: tuple) -> tuple | None:
            if fs is not None and before != "DONE":
                if before[0] != "H":
                    return self._form_step(fs, before, token, after[3])
                if self.kind[token] == "key":
                    return (self._tonic_of(self.vocab[token][2:]), *fs[1:])
            return fs

        state, fs = loose.read(prompt, fold=form_step, init=_FORM_START if self.form else None)
        key, bd, n, note, _marked, _ = state
        if key == "DONE" or key[0] == "H" or key.ctx not in (BAR, LEAD, FIELD) or key.tie:
            raise ValueError("the primer does not end at a bar line with no tie across it")
        bar = meter_bar_ticks(key.meter, key.unit) if self.strict else 0
        state = (key._replace(bar=bar, pos=0, slur=0, cls=self._cls(bd, key.lo, key.hi)), bd, n, note, 0, fs)
        if self.cost(state) >= self.max_tokens - n:
            raise ValueError(f"no tune of these controls finishes within {self.max_tokens} tokens after the primer")
        return state

    # -- form: style rules over the valid tokens ---------------------------------------------------

    def _tonic_of(self, key_name: str) -> tuple[int, str]:
        """(letter index, accidental token of the tonic: ``""``, ``"^"`` or ``"_"``) of a key (``"F#m"``)."""
        return LETTERS.index(key_name[0]), {"#": "^", "b": "_"}.get(key_name[1:2], "")

    def _is_tonic(self, tonic: tuple[int, str] | None, note) -> bool:
        """The note ``(accidental, pitch id)`` is the tonic: its letter, bare (the key signature gives the
        tonic's accidental) or with the tonic's own accidental."""
        if tonic is None or note is None:
            return False
        acc, pitch = note
        return self.pitch_letter[pitch] == tonic[0] and (acc in ("", tonic[1]) or (acc == "=" and not tonic[1]))

    def _form_step(self, fs: tuple, key: _Key, token_id: int, note) -> tuple:
        """The form state after ``token_id``: (tonic, last note is the tonic, this bar's tokens, the tokens of
        the last ``3 * MAX_LOOP_PERIOD - 1`` bars)."""
        tonic, last_tonic, cur, hist = fs
        kind = self.kind[token_id]
        if kind == "bar":
            if any(self.kind[t] in ("pitch", "rest") for t in cur):
                hist = (*hist[2 - 3 * MAX_LOOP_PERIOD:], cur)
            return (tonic, last_tonic, (), hist)
        if kind == "key":
            return (self._tonic_of(self.vocab[token_id][2:]), last_tonic, cur, hist)
        if kind in ("ending", "meter", "unit"):
            return fs
        if kind == "pitch" and (key.ctx == ACC or key.ctx in _ELEMENT_CTX):
            last_tonic = self._is_tonic(tonic, note)
        elif self.vocab[token_id] == "[" and key.ctx in _ELEMENT_CTX:
            last_tonic = False  # a chord is not a tonic ending (the rule is about the melody note)
        return (tonic, last_tonic, (*cur, token_id), hist)

    def _short_ban(self, key: _Key) -> np.ndarray:
        """Bool [V] (read-only, cached per state): the durations shorter than ``STYLE_SHORTEST`` units and, in a
        tracked bar, every duration or broken rhythm that would make the element shorter than that (in a
        tuplet, after ``<``) or leave less than that, but something, to the bar's end, a broken rhythm whose
        right note no length could leave so, and broken rhythm after a note shorter than its unit."""
        if not key.bar or key.ctx not in _AFTER_EL:
            return self._too_short
        ban = self._short_cache.get(key)
        if ban is not None:
            return ban
        ban = self._too_short.copy()
        if key.pos - key.el_start < key.el_unit:  # no broken rhythm after a note shorter than its unit (0.4% of
            ban |= self._broken  # the collections' broken rhythms; at a tune's close the model halved on with it)
        for t in np.flatnonzero(self._sets_length & ~ban):
            nxt = self._next_key(key, int(self.rep_of[t]))
            if nxt is not None and nxt.bar:
                gap = nxt.bar - nxt.pos
                ban[t] = nxt.pos - key.el_start < _SHORTEST_TICKS or 0 < gap < _SHORTEST_TICKS
                if self._broken[t] and nxt.brk and not ban[t]:  # and some length of its right note leaves none
                    right = _DG_ARRAY * (nxt.brk // 32)  # (``c<B/4A/8|``: after ``c<`` half a unit was left,
                    rest = gap - right  # which no right note three halves of a length fills)
                    ban[t] = not ((right >= _SHORTEST_TICKS) & ((rest == 0) | (rest >= _SHORTEST_TICKS))).any()
        ban.flags.writeable = False
        if len(self._short_cache) > _MAX_CACHED:
            self._short_cache.clear()
        self._short_cache[key] = ban
        return ban

    def _chord_ban(self, key: _Key, cur: tuple) -> np.ndarray | None:
        """Inside a chord: the pitches it already has (the same letter and octave, whatever the accidental) and,
        once it has ``STYLE_CHORD_NOTES`` notes, every further pitch and accidental (None outside a chord)."""
        if key.ctx not in (CHO, CH_NOTE, CH_ACC):
            return None
        start = len(cur) - 1 - cur[::-1].index(self._chord)
        notes = [t for t in cur[start + 1:] if self.kind[t] == "pitch"]
        if not notes:
            return None
        ban = np.zeros(self.V, dtype=bool)
        ban[notes] = True
        if len(notes) >= STYLE_CHORD_NOTES:
            ban[self.pitch_ids] = True
            ban[self.acc_ids] = True
        return ban

    def _grace_ban(self, key: _Key, cur: tuple) -> np.ndarray | None:
        """Between a grace group and the note it ornaments (``{g}(3``, ``{g}(``): the slur's end and a new grace
        group (None elsewhere). The bar's tokens since its last ``}`` hold no pitch outside braces yet."""
        if key.ctx not in (GRACE_END, SLUR_OPEN, TUPLET) or self._grace_close not in cur:
            return None
        last = len(cur) - 1 - cur[::-1].index(self._grace_close)
        if self._is_pitch[list(cur[last + 1:])].any():
            return None
        return self._grace_pending.copy()  # (the caller adds to it)

    def _last_note_ban(self, key: _Key, note, fs: tuple, last: np.ndarray, ban: np.ndarray | None) -> np.ndarray:
        """``ban`` (a new one if None) with the tokens of ``last`` (after which the budget leaves no room
        for another note) refused where they would leave the tune's last note off the tonic: a pitch that
        is not the tonic, a chord, and, after a note that is not, what would lengthen it or follow it (a
        duration, a tie, a rest, a closing bracket)."""
        tonic, last_tonic, _cur, _hist = fs
        if ban is None:
            ban = np.zeros(self.V, dtype=bool)
        if tonic is None or not last.any():
            return ban
        acc = note[0] if key.ctx == ACC and note else ""
        ban[self.pitch_ids] |= last[self.pitch_ids] & ~self._tonic_pitches(tonic, acc)[self.pitch_ids]
        if not last_tonic:
            ban |= last & self._filling & ~self._is_pitch
            ban[self._tie] |= last[self._tie]  # a tie holds the note that is not the tonic
        ban[self._chord] |= last[self._chord]  # a chord is not a tonic ending
        return ban

    def _must_close(self, key: _Key, bd: int, closing: bool) -> bool:
        """This bar must close a section or the tune (so it ends on the tonic): the last bar of ``bars`` or
        of a section, or any bar when ``closing`` (the budget may end the tune in it)."""
        if not key.bar or key.cls is None:
            return False
        boundary = key.cls[4]
        return closing or (boundary if self.sections else bd + 1 == key.hi)

    def _near_loop_ban(self, key: _Key, fs: tuple, mask: np.ndarray) -> np.ndarray | None:
        """Bool [V]: the valid tokens that would close a bar making a group of ``p`` bars (1..``MAX_LOOP_PERIOD``)
        three times in a row nearly the same (:func:`nearly_same_bars`), None if none. A softer rule than
        the others: the caller drops it first when the rules together leave nothing.

        The bar is compared by edit distance over units with the bar ``p`` before it (one dynamic-programming
        row for the bar so far, one more for a token). A bar is closed by its bar line, and a note, rest or
        chord that fills it may still be shortened by the duration after it, so they pass: once the bar is
        full, its bar lines are refused while it is near its counterpart, and so is every other token that
        would keep it full and near (a tie, a slur's end): what is left is a shorter last note, which varies
        the bar (``G3z2D|`` after two ``G3z2D`` bars can become ``G3z2D/2E/2|``). Before that, a duration or
        slur end that would fill the bar near its counterpart is refused, and so is a chord where any one
        unit more would end the bar near it (its brackets alone would take the bar far enough from the other
        without changing a note)."""
        _tonic, _last_tonic, cur, hist = fs
        units = bar_units(cur, self._acc_set)
        if units and isinstance(units[-1], tuple) and len(units[-1]) == 1:
            return None  # an accidental waiting for its pitch: nothing here closes the bar
        full = bool(key.bar) and key.pos == key.bar and key.ctx in _CLOSABLE  # (past it: a duration must follow)
        free = key.meter == "none"   # no bar length: any element may be a bar's last, and only its bar line ends it
        if free and key.ctx not in _CLOSABLE:
            return None
        ban = enders = None
        n = len(units) + 1
        for p in range(1, MAX_LOOP_PERIOD + 1):
            if len(hist) < 3 * p - 1:
                break
            if not all(self._near_ids(hist[-j], hist[-j - p]) for j in range(1, 2 * p)):
                continue
            target = self._units(hist[-p])  # the bar that would continue the period-p loop
            row = _edit_row(units, target)  # the bar so far against the target's prefixes
            one_more_near = _next_row(row, n, target, None)[-1] <= near_tolerance(max(n, len(target)))
            if full or free:
                if row[-1] > near_tolerance(max(len(units), len(target))):
                    continue
                hit = mask & self._bar_line
                if one_more_near and not free:  # a tie or a slur's end would keep it near: only a new length varies it
                    hit |= mask & ~self._is_duration
            else:
                tolerance = near_tolerance(max(n, len(target)))
                if min(row) > tolerance:
                    continue  # one unit more cannot bring it back near
                if enders is None:
                    enders = self._bar_enders(key, mask)
                if one_more_near:  # any ending is near: refuse them all, and a chord
                    hit = enders.copy()
                    hit[self._chord] |= mask[self._chord]
                else:
                    hit = np.zeros(self.V, dtype=bool)
                    for unit in set(target):
                        if (not isinstance(unit, tuple) and enders[unit]
                                and _next_row(row, n, target, unit)[-1] <= tolerance):
                            hit[unit] = True
            if hit.any():
                ban = hit if ban is None else ban | hit
        return ban

    def _echo_ban(self, key: _Key, fs: tuple, mask: np.ndarray, reserve: int = 0) -> np.ndarray | None:
        """Bool [V]: the valid tokens that would let a bar close with its counterpart's melody, or nearly
        (:func:`bar_melody`, :func:`near_melodies`), where a group of ``p`` bars (1..``MAX_LOOP_PERIOD``)
        has already come twice with nearly the same melodies (a third time, whatever the rhythm:
        ``G2G2G2B2|G4GGB2|G2GGG2B2``, or ``B2AG2D|B2AG2B|B2AG2D``); None if none. Dropped with
        :meth:`_near_loop_ban` when the rules together leave nothing.

        While the bar so far would be near its counterpart if it closed, nothing that keeps it so may close
        it or go on (a duration or slur end that fills the bar, a bar line, a tie, a rest, a chord; a full
        bar may only shorten its last note). A bar that follows its counterpart's melody (within the
        tolerance of some beginning of it) may do so until only as many units are left as it needs pitches
        to leave it; from there each pitch must take it further away (not the last one again). The bar's
        beginning is the model's; its end varies the phrase. ``reserve``: the ticks at the bar's end that are not
        the model's to vary (in a bar that must close, the held tonic's beat): the pitches that leave the
        counterpart come before them."""
        _tonic, _last_tonic, cur, hist = fs
        melody = self._melody(cur)
        melodies = [self._melody(bar) for bar in hist]
        targets = []
        for p in range(1, MAX_LOOP_PERIOD + 1):
            if len(hist) < 3 * p - 1:
                break
            if all(melodies[-j] and self._near_melodies(melodies[-j], melodies[-j - p]) for j in range(1, 2 * p)):
                targets.append(melodies[-p])
        if not targets:
            return None
        if not key.bar:   # free meter: a bar near its counterpart's melody may not take its bar line yet
            if key.meter != "none" or key.ctx not in _CLOSABLE or not melody:
                return None
            near = any(_edit_row(melody, t)[-1] <= near_tolerance(min(len(melody), len(t))) for t in targets)
            return mask & self._bar_line if near else None
        full = key.pos == key.bar and key.ctx in _CLOSABLE
        room = max(key.bar - key.pos - reserve, 0)
        ban, diverge = None, []
        for target in targets:
            row = _edit_row(melody, target)
            tolerance = near_tolerance(len(target))
            if melody and row[-1] <= near_tolerance(min(len(melody), len(target))):  # near if it closed now
                if full:  # only a shorter last note
                    return mask & ~self._is_duration
                if ban is None:
                    ban = self._bar_enders(key, mask)
                    ban[[self._tie, self.rest, self._chord]] = True
                diverge.append((row, target))
            elif min(row) <= tolerance and room <= (tolerance + 1 - min(row)) * TICKS_PER_UNIT:
                diverge.append((row, target))  # following it with little room left
        if not diverge:
            return ban
        if ban is None:  # (a rest or a tie may end the bar: it is not near now)
            ban = np.zeros(self.V, dtype=bool)
            ban[self._chord] = True  # (its first note would follow unchecked)
        # the pitches still needed to leave every counterpart followed: half a unit at least for each
        need = max(near_tolerance(len(target)) + 1 - min(row) for row, target in diverge)
        for t in np.flatnonzero(mask & self._sets_length).tolist():
            nxt = self._next_key(key, int(self.rep_of[t]))
            if nxt is not None and nxt.bar and nxt.bar - nxt.pos - reserve < need * TICKS_PER_UNIT // 2:
                ban[t] = True
        if key.ctx in _ELEMENT_CTX or key.ctx == ACC:
            pending = cur[-1] if key.ctx == ACC else None
            n = len(melody) + 1
            close = np.zeros(self.V, dtype=bool)
            for x in np.flatnonzero(mask & self._is_pitch).tolist():
                unit = x if pending is None else (pending, x)
                if melody and unit == melody[-1]:
                    close[x] = True  # the same pitch again leaves the melody as it is
                    continue
                for row, target in diverge:  # a pitch must take the bar further from each one it follows
                    if min(row) <= near_tolerance(len(target)) and min(_next_row(row, n, target, unit)) <= min(row):
                        close[x] = True
                        break
            if (mask & self._is_pitch & ~close).any():
                ban |= close
            elif melody and not isinstance(melody[-1], tuple) and pending is None:
                ban[melody[-1]] = True  # no one pitch takes it away: a new one at least
        return ban & mask

    def _repeat_ban(self, key: _Key, fs: tuple) -> np.ndarray | None:
        """Bool [V]: the pitch that would strike the same note a ``STYLE_REPEATS + 1``-th time in a row (rests
        between them do not count; a tie holds a note without striking it again), None if none. Dropped with
        :meth:`_near_loop_ban` when the rules together leave nothing."""
        if key.tie is not None or not (key.ctx in _ELEMENT_CTX or key.ctx == ACC):
            return None
        _tonic, _last_tonic, cur, hist = fs
        melody = self._melody(cur)
        if len(melody) > 1:
            tokens = cur
        else:  # the run may go back over bars that strike one pitch (or none)
            start = len(hist)
            while start > 0 and len(self._melody(hist[start - 1])) <= 1 and len(hist) - start < STYLE_REPEATS:
                start -= 1
            tokens = [t for bar in hist[max(0, start - 1):] for t in bar] + list(cur)
        struck = strikes(tokens, self._pitch_set, self._acc_set, self._brackets, self._tie)
        if len(struck) < STYLE_REPEATS or any(u != struck[-1] for u in struck[-STYLE_REPEATS:]):
            return None
        last = struck[-1]
        ban = np.zeros(self.V, dtype=bool)
        if key.ctx == ACC:
            if isinstance(last, tuple) and cur and cur[-1] == last[0]:
                ban[last[1]] = True
        elif not isinstance(last, tuple):
            ban[last] = True
        return ban

    def _near_melodies(self, a: tuple, b: tuple) -> bool:
        """:func:`near_melodies` (cached)."""
        near = self._near_melody_cache.get((a, b))
        if near is None:
            if len(self._near_melody_cache) > _MAX_CACHED:
                self._near_melody_cache.clear()
            near = self._near_melody_cache[a, b] = near_melodies(a, b)
        return near

    def _melody(self, bar: tuple) -> tuple:
        """:func:`bar_melody` of a bar of ids (cached)."""
        melody = self._melody_cache.get(bar)
        if melody is None:
            if len(self._melody_cache) > _MAX_CACHED:
                self._melody_cache.clear()
            melody = self._melody_cache[bar] = bar_melody(bar, self._pitch_set, self._acc_set, self._brackets)
        return melody

    def _units(self, bar: tuple) -> tuple:
        """:func:`bar_units` of a bar of ids (cached)."""
        units = self._unit_cache.get(bar)
        if units is None:
            units = self._unit_cache[bar] = bar_units(bar, self._acc_set)
        return units

    def _near_ids(self, a: tuple, b: tuple) -> bool:
        """:func:`nearly_same_bars` of two bars of ids (cached)."""
        near = self._near_cache.get((a, b))
        if near is None:
            ua, ub = self._units(a), self._units(b)
            near = self._near_cache[a, b] = ua == ub or edit_distance(ua, ub) <= near_tolerance(max(len(ua), len(ub)))
        return near

    def _bar_enders(self, key: _Key, mask: np.ndarray) -> np.ndarray:
        """Bool [V]: the tokens of ``mask`` after which the bar is full for good (a duration or a slur's end
        that ends an element exactly at the bar's end; a note, rest or chord may still be shortened)."""
        out = np.zeros(self.V, dtype=bool)
        for t in np.flatnonzero(mask & self._filling & ~self._length_open):
            out[t] = self._full_after(key, int(self.rep_of[t]))
        return out & mask

    def _next_key(self, key: _Key, rep: int) -> _Key | None:
        """The body state after the token ``rep`` (cached in ``key``'s entry), None if it is refused or ends the
        tune."""
        e = self._entry(key)
        if e.loc[rep] >= _INF:
            return None
        step = e.next.get(rep)
        if step is None:
            try:
                step = e.next[rep] = self._step(key, rep)
            except _Bad:
                return None
        return step[0] if isinstance(step[0], _Key) else None

    def _full_after(self, key: _Key, rep: int) -> bool:
        """The bar is full after the token ``rep`` (an element that ends exactly at the bar's end)."""
        nxt = self._next_key(key, rep)
        return nxt is not None and nxt.bar > 0 and nxt.pos >= nxt.bar and nxt.ctx in _AFTER_EL

    def _tonic_pitches(self, tonic: tuple[int, str], acc: str) -> np.ndarray:
        """Bool [V]: the pitch tokens that are the tonic after the accidental ``acc`` (``""``: none)."""
        mask = np.zeros(self.V, dtype=bool)
        if acc in ("", tonic[1]) or (acc == "=" and not tonic[1]):
            mask[self.letter_ids[tonic[0]]] = True
        return mask

    def _style_ban(self, key: _Key, bd: int, note, fs: tuple, mask: np.ndarray, closing: bool = False
                   ) -> np.ndarray | None:
        """Bool [V]: the valid tokens the style rules of ``form`` take away here (None: none). The caller
        keeps them when nothing else is allowed, so validity never depends on these rules.

        Rules (the grammar decides these; the model chooses among what remains):

        - No loops: the token that would complete a bar making the same group of ``p`` bars (``p`` from 1 to
          ``MAX_LOOP_PERIOD``; same tokens) three times in a row is refused: no third identical bar in a row
          (``p = 1``), no ``X Y X Y X Y`` (``p = 2``), and so on. (Nearly the same three times: the softer
          :meth:`_near_loop_ban`.)
        - Chords: a chord's notes are distinct (letter and octave) and at most ``STYLE_CHORD_NOTES``
          (:meth:`_chord_ban`).
        - Tonic endings: a section or tune ends on its tonic (``K:``'s tonic pitch class; a chord does not
          count). Where the tune may end or a section may close by choice, ``|]``, ``||`` and ``:|`` (not
          the ``:|`` closing a first ending) and ``<eos>`` after ``:|`` are refused after a last note that is
          not the tonic (``|`` carries on). In a bar that must close the tune or a section (the last bar of
          ``bars``/``sections``, every section's last bar), every note, rest, chord or duration token that
          would fill the bar after a note that is not the tonic is refused (so the bar's last note is the
          tonic, at a place and with a rhythm the model chooses). ``closing`` (the policy's completion is
          within ``ENDING_HORIZON`` tokens of the budget, so the budget may force any bar from here to be
          the last) makes every bar one that must close.
        - Free-meter bars: at ``STYLE_FREE_BAR_TOKENS`` tokens no element begins but the tonic (while the last
          note is not the tonic), and no tie: the bar closes, or the tune ends, there.
        """
        tonic, last_tonic, cur, hist = fs
        ban = _union(self._chord_ban(key, cur), self._grace_ban(key, cur))
        for p in range(1, MAX_LOOP_PERIOD + 1):
            if len(hist) < 3 * p - 1:
                break
            target = hist[-p]  # the bar that would continue the period-p loop
            if (len(cur) + 1 == len(target) and target[:-1] == cur
                    and all(hist[-j] == hist[-j - p] for j in range(1, 2 * p))):
                if ban is None:
                    ban = np.zeros(self.V, dtype=bool)
                ban[target[-1]] = True
        if tonic is None:
            return ban
        if ban is None:
            ban = np.zeros(self.V, dtype=bool)
        ids = self.tok.token_to_id
        if not last_tonic:
            ban[ids["|]"]] = ban[ids["||"]] = True
            if key.ending != 1:
                ban[ids[":|"]] = True
            if key.ctx == BAR and key.lb == ":|":
                ban[self.eos] = True
        if key.meter == "none" and len(cur) >= STYLE_FREE_BAR_TOKENS and key.ctx in _AFTER_EL \
                and key.tup is None and not key.brk:
            # a free-meter bar as long as the corpus's longest closes: no element begins, nor a tie (whose
            # note would), but the tonic where the last note is not the tonic (so the tune may end there)
            stop = self._starts | self._broken
            stop[self._tie] = True
            if not last_tonic:
                stop[self.pitch_ids] &= ~self._tonic_pitches(tonic, "")[self.pitch_ids]
                for a in self.acc_ids:
                    stop[a] = not self._tonic_pitches(tonic, self.vocab[a]).any()
            ban |= stop
        if not self._must_close(key, bd, closing):
            return ban
        # a bar that must close a section or the tune: refuse what would fill it after a non-tonic note
        if (key.ctx in _ELEMENT_CTX or key.ctx == ACC) and (self._full_after(key, self.letter_pitch[0])
                                                            or key.bar - key.pos < 2 * _SHORTEST_TICKS):
            # the next note fills the bar, or one after it could not be as long as the shortest: the tonic
            self._ban_but_tonic(ban, key, note, tonic)
        for t in np.flatnonzero(mask & self._filling):
            after_tonic = last_tonic and self.kind[t] != "chord"
            if not after_tonic and self._full_after(key, int(self.rep_of[t])):
                ban[t] = True
        return ban

    def _held_tonic_ban(self, key: _Key, bd: int, fs: tuple, closing: bool) -> np.ndarray | None:
        """Bool [V]: in a bar that must close, a tuplet's start (one begun there could leave no length the rules
        allow, and every rule gave way: ``c(3B=G/4A/16(3=G/8=G/32D/32|]``; 7 of the 640 held-out tunes have one
        in their last bar) and a tie after a note that is not the tonic (``C-C/2-C/4-C/8F/8|]``); None if
        none. (The held tonic's own length is the cadence rule's, :meth:`_cadence_ban`.) With the short-note
        rules: they give way before the tonic endings."""
        tonic, last_tonic, _cur, _hist = fs
        if tonic is None or not self._must_close(key, bd, closing):
            return None
        ban = np.zeros(self.V, dtype=bool)
        ban[self._is_tuplet] = True  # no tuplet: one begun there may leave no length the rules allow (1% of tunes)
        if not last_tonic:  # no tie holding a note that is not the tonic: its next part could not be the tonic
            ban[self._tie] = True  # either, and the model tied on in ever shorter parts (C-C/2-C/4-C/8F/8|])
        return ban

    def _meter_style(self, mask: np.ndarray) -> np.ndarray:
        """The header's meters without ``M:none`` when the meter is the model's to choose: the bar rules
        (loops, sections, cadences) need bars, and the model's free-meter tunes (10 of 256 plain ``compose``
        tunes, 4%; the corpus: 218 of 12,856 Essen tunes) ran unbarred to the budget, each with a bar of
        108-249 characters (the corpus's free-meter tunes: median 15). ``meter="none"`` still writes one."""
        narrowed = mask.copy()
        narrowed[self.tok.token_to_id["M:none"]] = False
        return narrowed if narrowed.any() else mask

    def _bucket_style(self, key, mask: np.ndarray, budget: int) -> np.ndarray:
        """The header's bar buckets narrowed to those whose fewest bars fit the budget as the corpus writes
        bars: ``STYLE_BAR_TOKENS`` tokens per unit of the bar, plus its bar line (a free meter: all). A
        bucket that only the fixed completion's whole-bar notes could reach was the model's road to
        ``|:d16|d16|d16|...`` at the budget's end (``<bars:33-40>`` in 4/4 with ``L:1/16``, 17 tokens a bar
        as the collections write one). Where not even the smallest fits so, the rule gives way (all stay)."""
        _, _phase, meter, unit = key
        bar = bar_length(meter) if meter else None
        if bar is None or unit is None:
            return mask
        per_bar = STYLE_BAR_TOKENS * (bar / Fraction(unit) + 1)
        first = self.tok.blocks["length"][0]
        narrowed = mask.copy()
        for t in np.flatnonzero(mask):
            lo = BAR_BUCKETS[t - first][0]
            narrowed[t] = lo * per_bar <= budget - 2  # room for the bars, the closing bar line and <eos>
        return narrowed if narrowed.any() else mask

    def _cadence_ban(self, key: _Key, bd: int, note, fs: tuple, mask: np.ndarray, closing: bool
                     ) -> np.ndarray | None:
        """Bool [V]: the tokens that would leave a tune's last note (or, with ``sections``, a section's) shorter
        than a beat (:func:`cadence_ticks`); None if none. Two thirds of the held-out tunes end on a note of a
        beat or more, nine in ten on half a beat or more; the model, stopped where the rules close the tune,
        ended on a quarter of a beat in four tunes of ten (``A8A2B2B2AG:|``).

        Where the tune may end (its bars in the bucket) ``|]`` and ``:|`` (not one closing a first ending) are
        refused after a last element shorter than that. In a bar that must close, so that the model reaches
        the held tonic itself: no element begun within the bar's last beat, no length or broken rhythm that
        would leave less than a beat (but something) to the bar's end, no tie whose next part would begin
        there; where the next element can only be the last (less than a beat and a shortest note left), it
        is the tonic (a pitch), and no rest.
        """
        tonic, _last_tonic, _cur, _hist = fs
        if tonic is None or not key.bar or key.cls is None:
            return None
        must = self._must_close(key, bd, closing)
        if not (must or key.cls[1]):
            return None
        m = cadence_ticks(key.meter, key.unit)
        ids = self.tok.token_to_id
        ban = np.zeros(self.V, dtype=bool)
        if key.ctx in _AFTER_EL and key.tup is None and key.el_unit and key.pos - key.el_start < m:
            ban[ids["|]"]] = True
            if key.ending != 1:
                ban[ids[":|"]] = True
            if must:
                ban[ids["||"]] = True
        if not must:
            return ban
        late = key.bar - m  # the last place a final note may begin
        if key.ctx in _ELEMENT_CTX and key.pos > late:
            ban |= self._starts
        if key.ctx in _AFTER_EL and 0 < key.bar - key.pos < m:  # the element so far leaves less than a beat that
            ban |= mask & ~self._sets_length  # nothing could fill: only a length may follow (not a slur's end)
        if key.ctx in _AFTER_EL and key.pos > late:
            ban[self._tie] = True
        if key.ctx in _AFTER_EL:
            for t in np.flatnonzero(mask & self._sets_length & ~ban):
                nxt = self._next_key(key, int(self.rep_of[t]))
                if nxt is None or not nxt.bar:
                    continue
                end = nxt.pos + nxt.brk if self._broken[t] else nxt.pos  # a broken rhythm's right note too
                ban[t] = 0 < nxt.bar - nxt.pos < m or (bool(self._broken[t]) and end > late)
        if (key.ctx in _ELEMENT_CTX or key.ctx == ACC) and key.bar - key.pos < m + _SHORTEST_TICKS:
            self._ban_but_tonic(ban, key, note, tonic)
            ban[self.rest] = True
        return ban

    def _ban_but_tonic(self, ban: np.ndarray, key: _Key, note, tonic: tuple[int, str]) -> None:
        """Refuse in ``ban`` the pitches that are not the tonic (after the accidental just written, if any)
        and, before a note, the accidentals no tonic can follow."""
        acc = note[0] if key.ctx == ACC and note else ""
        ban[self.pitch_ids] |= ~self._tonic_pitches(tonic, acc)[self.pitch_ids]
        if key.ctx != ACC:
            for a in self.acc_ids:
                ban[a] |= not self._tonic_pitches(tonic, self.vocab[a]).any()

    # -- helpers ---------------------------------------------------------------------------------

    def _refusal(self, key, token_id: int, syntax_ok: bool, cost: int = 0) -> str:
        token = self.vocab[token_id]
        if syntax_ok and cost >= _INF:
            return (f"token {token!r} not allowed: no valid tune continues with it (a bar that cannot be filled "
                    "exactly, a tuplet or broken rhythm off the 1/32 grid, or too many bars)")
        if syntax_ok:
            return f"token {token!r} not allowed: the tune could not end validly within max_tokens={self.max_tokens}"
        if key[0] == "H":
            return f"token {token!r} not allowed in the header here"
        try:
            self._step(key, int(self.rep_of[token_id]) if self.rep_of[token_id] >= 0 else token_id)
        except _Bad as exc:
            return f"token {token!r} not allowed: {exc}"
        return self._refusal(key, token_id, True, _INF)

    def _restrict_tie(self, mask: np.ndarray, key: _Key, note) -> None:
        """A pending tie continues to the same pitch with the same accidental (``note``)."""
        acc, pitch = note
        if key.tie == "n" or key.ctx == ACC:
            keep = bool(mask[pitch])
            mask[self.pitch_ids] = False
            mask[pitch] = keep
        else:
            acc_id = self.tok.token_to_id[acc]
            keep = bool(mask[acc_id])
            mask[self.acc_ids] = False
            mask[acc_id] = keep

    def _tie_refusal(self, key: _Key, token_id: int, note) -> str | None:
        if not (key.tie in ("n", "na") and key.ctx in (TIE, BAR, ACC)):
            return None
        kind = self.kind[token_id]
        if kind == "pitch" and token_id != note[1]:
            return f"token {self.vocab[token_id]!r} not allowed: a tie continues {self.vocab[note[1]]!r}"
        if kind == "accidental" and self.vocab[token_id] != note[0]:
            return f"token {self.vocab[token_id]!r} not allowed: a tie continues the accidental {note[0]!r}"
        return None

    def _cls(self, bd: int, lo: int, hi: int) -> tuple:
        """What ``bd`` bars done allows: (first, next bar may end the tune, eos ok, room for a bar,
        next bar line ends a section, next bar line ends the last section)."""
        nb = bd + 1
        if self.sections:
            per = self.sections[1]
            boundary, last = nb % per == 0, nb == lo
        else:
            boundary = last = False
        return (bd == 0, nb >= lo, lo <= bd <= hi, nb <= hi, boundary, last)

    # -- header ----------------------------------------------------------------------------------

    def _header_options(self, key) -> list[int]:
        _, phase, _meter, _unit = key
        ids = self.tok.token_to_id
        if phase == 0:
            return [self.bos]
        if phase == 1:
            return [ids["M:" + self.meter]] if self.meter else list(range(*self.tok.blocks["meter"]))
        if phase == 2:
            return [ids["L:" + self.unit]] if self.unit else list(range(*self.tok.blocks["unit"]))
        if phase == 3:
            return [ids["K:" + self.key]] if self.key else list(range(*self.tok.blocks["key"]))
        if self.bars is not None:
            return [ids[bar_bucket(self.bars)]]
        return list(range(*self.tok.blocks["length"]))

    def _header_step(self, key, token_id: int):
        _, phase, meter, unit = key
        token = self.vocab[token_id]
        if phase == 1:
            meter = token[2:]
        elif phase == 2:
            unit = token[2:]
        if phase < 4:
            return ("H", phase + 1, meter, unit)
        if self.bars is not None:
            lo = hi = self.bars
        else:
            lo, last = BAR_BUCKETS[token_id - self.tok.blocks["length"][0]]
            hi = _NO_LIMIT if last is None else last
        bar = meter_bar_ticks(meter, unit) if self.strict else 0
        return _Key(START, meter, unit, bar, lo, hi, 0, None, None, 0, None, 0, False, 0, 0, 0, 0, 0, None, 0,
                    self._cls(0, lo, hi))

    def _header_costs(self, key) -> np.ndarray:
        cache = self._c.header
        costs = cache.get(("costs", key))
        if costs is None:
            costs = np.full(self.V, _INF, dtype=np.int64)
            for t in self._header_options(key):
                costs[t] = self._next_cost(self._header_step(key, t))
            cache[("costs", key)] = costs
        return costs

    def _next_cost(self, nxt) -> int:
        if nxt[0] == "H":
            return self._header_cost(nxt)
        steps, sig = self._local(nxt)
        return min(_INF, steps + self._tail(1, sig))

    def _header_cost(self, key) -> int:
        """Tokens to finish from a header state: the cheapest choice (the lowest bar bucket)."""
        cache = self._c.header
        if key in cache:
            return cache[key]
        options = self._header_options(key)
        if key[1] == 3:  # the key signature changes nothing that costs tokens
            options = options[:1]
        if key[1] == 4:
            best = _INF
            for t in options:  # lowest buckets first; the first finite one is the cheapest
                best = self._next_cost(self._header_step(key, t))
                if best < _INF:
                    break
        else:
            best = min(self._next_cost(self._header_step(key, t)) for t in options)
        cache[key] = min(_INF, 1 + best)
        return cache[key]

    # -- body: masks and costs -------------------------------------------------------------------

    def _entry(self, key: _Key) -> _Entry:
        e = self._c.entries.get(key)
        if e is not None:
            return e
        loc = np.full(self.V, _INF, dtype=np.int32)  # 2 * _INF still fits
        sidx = np.zeros(self.V, dtype=np.int16)
        sigs: list = []
        sig_index: dict = {}
        nxt: dict = {}

        def index(sig) -> int:
            j = sig_index.get(sig)
            if j is None:
                j = sig_index[sig] = len(sigs)
                sigs.append(sig)
            return j

        reps = self.ctx_reps[key.ctx]
        if key.ctx in _DUR_OK:
            reps = reps + self.ctx_reps[CH_NOTE][-len(self.dur_ids):]
            if key.bar and key.tup is None and key.el_unit == TICKS_PER_UNIT and key.tie is None:
                reps = self.ctx_reps[key.ctx]  # plain element: every duration at once
                sig = self._bar_end_sig(key)
                if sig is not None:
                    ends = key.el_start + self.dur_lengths * GRID_TICKS
                    ok = ends <= key.bar
                    fill = _fill_array((key.bar - key.el_start) // GRID_TICKS)
                    ids = self.dur_ids[ok]
                    loc[ids] = key.slur + fill[(key.bar - ends[ok]) // GRID_TICKS] + 1
                    sidx[ids] = index(sig)
        for rep, group in reps:
            try:
                n, inc = self._step(key, rep)
            except _Bad:
                continue
            if n == "DONE":
                steps, sig = 0, None
            elif inc:
                steps, sig = 0, n[:-1]
            else:
                steps, sig = self._local(n)
            if steps >= _INF:
                continue
            loc[group] = steps
            sidx[group] = index(sig)
            nxt[rep] = (n, inc)
        e = _Entry(loc, sidx, sigs, nxt)
        if len(self._c.entries) > _MAX_CACHED // 10:
            self._c.entries.clear()
        if len(self._c.local) > _MAX_CACHED:
            self._c.local.clear()
        if len(self._c.tail) > _MAX_CACHED:
            self._c.tail.clear()
        self._c.entries[key] = e
        return e

    def _local(self, key: _Key) -> tuple[int, tuple | None]:
        """(tokens, bar-start signature): the policy's tokens from ``key`` to the next completed bar line
        (included; the signature is the key after it without ``cls``) or to ``<eos>`` (signature None)."""
        memo = self._c.local
        got = memo.get(key)
        if got is not None:
            return got
        fast = self._fast_local(key)
        if fast is not None:
            memo[key] = fast
            return fast
        path = []
        cur = key
        result: tuple[int, tuple | None] = (_INF, None)
        while True:
            got = memo.get(cur)
            if got is not None:
                result = got
                break
            path.append(cur)
            if len(path) > 20000:
                break
            t = self._policy(cur)
            if t is None:
                break
            try:
                n, inc = self._step(cur, t)
            except _Bad:
                break
            if n == "DONE":
                result = (0, None)
                break
            if inc:
                result = (0, n[:-1])
                break
            cur = n
            fast = self._fast_local(cur)
            if fast is not None:
                memo[cur] = result = fast
                break
        steps, sig = result
        for k in reversed(path):
            steps = min(_INF, steps + 1)
            memo[k] = (steps, sig if steps < _INF else None)
        return memo[key]

    def _fast_local(self, k: _Key) -> tuple[int, tuple | None] | None:
        """``_local`` in closed form where the policy only finishes the current element, tuplet or broken
        rhythm, closes slurs, fills the bar with rests of greedy lengths and writes its bar line (None
        where it does more). Follows ``_policy`` step for step, counting instead of stepping."""
        c = k.ctx
        if k.tie is not None or k.cn or c not in (EL_DONE, SLUR_CLOSED, NOTE, REST, CHORD_END, TUPLET, BROKEN):
            return None
        bar, pos, slur, last, steps = k.bar, k.pos, k.slur, k.last, 0
        rem = k.tup[1] if k.tup is not None else 0
        fail = (_INF, None)
        if c in _DUR_OK and bar:
            n = self._policy_length(k)
            if n is None:
                return fail
            steps += n != 32
            pos = k.el_start + n * (k.el_unit // 32)
        elif c == BROKEN:
            steps += 2  # "=" and a pitch: the right element
            last = "na"
            if bar:
                g1 = k.brk // 32
                n = next((n for n in _DG_ASC if (pos + n * g1) % GRID_TICKS == 0), None)
                if n is None or pos + n * g1 > bar:
                    return fail
                steps += n != 32
                pos += n * g1
        if rem:
            g1 = k.tup[0] // 32
            limit = self._tuplet_limit(k.unit)
            while rem:
                steps += 1 if not slur else 2  # a rest, or "=" and a pitch inside a slur
                last = "r" if not slur else "na"
                rem -= 1
                if bar:
                    n = next((n for n in _TUPLET_N if n <= limit
                              and self._tuplet_feasible(k, rem, pos + n * g1, g1)), None)
                    if n is None:
                        return fail
                    steps += n != 32
                    pos += n * g1
        if bar and (pos > bar or ((k.tup is not None or k.right or c == BROKEN) and pos % GRID_TICKS)):
            return fail
        if slur:
            if last not in ("n", "na", "c"):
                return None
            steps += slur
        if bar:
            if (bar - pos) % GRID_TICKS:
                return fail
            steps += _fill_tokens(bar - pos)
        sig = self._bar_end_sig(k)
        return (steps + 1, sig) if sig is not None else fail

    def _bar_end_sig(self, k: _Key) -> tuple | None:
        """The bar-start signature after the policy's bar line once ``k``'s bar is full (None: no valid one)."""
        end = k._replace(ctx=EL_DONE, pos=k.bar or 1, slur=0, last="n", el_start=0, el_unit=0, tup=None,
                         right=False, brk=0, tie=None, cn=0)
        memo = self._c.bar_end
        if end in memo:
            return memo[end]
        try:
            nxt, _inc = self._step(end, self._id(self._policy_bar(end)))
            sig = nxt[:-1]
        except _Bad:
            sig = None
        memo[end] = sig
        return sig

    def _tail(self, bd: int, sig) -> int:
        """Tokens the policy needs from the bar-start state ``sig`` with ``bd`` bars done (0 for None)."""
        if sig is None:
            return 0
        memo = self._c.tail
        got = memo.get((bd, sig))
        if got is not None:
            return got
        chain = []
        total = 0
        while sig is not None:
            got = memo.get((bd, sig))
            if got is not None:
                total = got
                break
            key = _Key(*sig, self._cls(bd, sig[4], sig[5]))
            steps, nsig = self._local(key)
            chain.append(((bd, sig), steps))
            if steps >= _INF or len(chain) > 5000:
                total = _INF
                break
            bd, sig = bd + 1, nsig
        for k, steps in reversed(chain):
            total = min(_INF, total + steps)
            memo[k] = total
        return memo[chain[0][0]] if chain else total

    # -- the completion policy -------------------------------------------------------------------

    def _filler(self, k: _Key) -> int:
        """The first token of a filling element: a rest where one may stand, else ``=`` (a note with an
        accidental, which any letter may take), or the tied pitch."""
        if k.tie == "n":
            return self.letter_pitch[0]
        if k.tie is None and not k.slur and k.ctx in _ELEMENT_CTX and k.ctx not in (BROKEN, SLUR_OPEN, GRACE_END):
            return self.rest
        return self.eq

    def _policy(self, k: _Key) -> int | None:
        """The token a fixed completion takes from ``k`` (rests never; notes of greedy lengths)."""
        c = k.ctx
        if c == FINAL:
            return self.eos
        if c == BAR:
            if k.tie:
                return self._filler(k) if k.tie != "c" else self._id("[")
            if k.ending == 2:
                return self._id("[2")
            if self._eos_ok(k):
                return self.eos
            return self._filler(k)
        if c in (START, LEAD, FIELD, ENDING, GRACE_END, BROKEN, SLUR_OPEN, TUPLET):
            return self._filler(k)
        if c == TIE:
            if k.bar and k.pos >= k.bar:
                return self._id("|")
            return self._filler(k) if k.tie != "c" else self._id("[")
        if c in (ACC, CH_ACC, GR_ACC):
            return self.letter_pitch[0]
        if c == CHO:
            return self.eq if k.cn == 0 else self._id("]")
        if c == CH_NOTE:
            return self._id("]")
        if c == GRACE:
            return self.eq if k.cn == 0 else self._id("}")
        if c == GR_NOTE:
            return self._id("}")
        if c in _DUR_OK and k.bar:
            n = self._policy_length(k)
            if n is None:
                return None
            if n != 32:
                return self.dur_id[n]
        # after a complete element
        if k.tup is not None and k.tup[1] > 0:
            return self._filler(k)
        if k.slur and k.last in ("n", "na", "c"):
            return self._id(")")
        if k.bar and k.pos < k.bar:
            return self._filler(k)
        return self._id(self._policy_bar(k))

    def _policy_length(self, k: _Key) -> int | None:
        """The length (1/32 units) the policy gives the element in ``k`` (tracked bars)."""
        g1 = k.el_unit // 32
        if k.tup is not None:
            rem = k.tup[1]
            limit = self._tuplet_limit(k.unit)
            for n in _TUPLET_N:
                if n > limit:
                    break
                if self._tuplet_feasible(k, rem, k.el_start + n * g1, g1):
                    return n
            return None
        if k.el_unit != TICKS_PER_UNIT:  # the right note of a broken rhythm
            for n in _DG_ASC:
                end = k.el_start + n * g1
                if end > k.bar:
                    return None
                if end % GRID_TICKS == 0:
                    return n
            return None
        best = None
        for n in _DG_ASC:
            if k.el_start + n * g1 > k.bar:
                break
            best = n
        return best

    @staticmethod
    @functools.cache
    def _tuplet_limit(unit: str) -> int:
        """The longest note (1/32 units) music21 reads inside a tuplet: 24 whole notes."""
        return int(24 / Fraction(unit) * 32)

    @staticmethod
    def _tuplet_feasible(k: _Key, rem: int, pos: int, g1: int) -> bool:
        if pos > k.bar:
            return False
        if rem == 0:
            return pos % GRID_TICKS == 0
        modulus = GRID_TICKS // math.gcd(g1, GRID_TICKS)
        for r in range(modulus):
            if (pos + r * g1) % GRID_TICKS == 0:
                return pos + _min_sum(rem, modulus, r) * g1 <= k.bar
        return False

    def _policy_bar(self, k: _Key) -> str:
        _first, final_next, _eos, _room, boundary, last = k.cls
        if self.sections:
            if boundary:
                return ":|" if k.rep else ("|]" if last else "||")
            return "|"
        if k.ending == 1:
            return ":|"
        if final_next:
            return ":|" if k.rep else "|]"
        return "|"

    def _id(self, token: str) -> int:
        return self.tok.token_to_id[token]

    def _eos_ok(self, k: _Key) -> bool:
        return (k.tie is None and k.rep == 0 and k.ending in (0, 3) and k.slur == 0 and k.cls[2]
                and k.lb is not None and (not self.form or k.lb in _CLOSING))

    # -- the transition function -----------------------------------------------------------------

    def _finalize(self, k: _Key) -> _Key:
        """Close the element just completed (before a token that is not its duration)."""
        if k.ctx not in _AFTER_EL:
            return k
        tracked = k.bar > 0
        if tracked and k.pos > k.bar:
            raise _Bad("the bar would be longer than the meter")
        tup, right = k.tup, k.right
        if tup is not None and tup[1] == 0:
            if tracked and k.pos % GRID_TICKS:
                raise _Bad("the tuplet would end off the 1/32-unit grid")
            tup = None
        if right:
            if tracked and k.pos % GRID_TICKS:
                raise _Bad("the broken rhythm would end off the 1/32-unit grid")
            right = False
        return k._replace(tup=tup, right=right, el_start=0, el_unit=0)

    def _start_element(self, k: _Key, ctx: int, **changes) -> _Key:
        """``k`` (finalized) with a new element begun: its start and ticks per unit."""
        tup, unit, right, brk = k.tup, TICKS_PER_UNIT, False, k.brk
        if tup is not None:
            if tup[1] <= 0:
                raise _Bad("the tuplet already has all its notes")
            unit = tup[0]
            tup = (tup[0], tup[1] - 1)
        if brk:
            unit, right, brk = brk, True, 0
        if not k.bar:
            unit = 0
        return k._replace(ctx=ctx, tup=tup, el_start=k.pos if k.bar else 0, el_unit=unit, right=right, brk=brk,
                          **changes)

    def _step(self, k: _Key, t: int):
        """(next key, 1 if a bar was completed else 0), or raise _Bad with the reason."""
        c = k.ctx
        kind = self.kind[t]
        if c == FINAL and t != self.eos:
            raise _Bad("only <eos> may follow a shorter final bar")
        if k.tie and c in (TIE, BAR) and not (
                (k.tie == "c" and self.vocab[t] == "[") or (k.tie == "n" and kind == "pitch")
                or (k.tie == "na" and kind == "accidental") or (c == TIE and self.vocab[t] == "|")):
            raise _Bad("a tie must continue to the same note or chord")
        if t == self.eos:
            if c in (BAR, FINAL) and self._eos_ok(k):
                return "DONE", 0
            if not self.final_bar_line and c in _AFTER_EL and not self.sections and not self.form:
                k = self._finalize(k)
                if (k.tup is None and not k.slur and k.rep == 0 and k.ending in (0, 3) and k.cls[1]
                        and k.cls[3]):
                    return "DONE", 0
            raise _Bad("the tune cannot end here (a bar line with nothing open and the right number of bars)")
        token = self.vocab[t]
        if c == BAR and k.ending == 2 and token != "[2":
            raise _Bad("'[2' must follow the ':|' that closes a first ending")
        if kind == "pitch":
            return self._step_pitch(k, t), 0
        if kind == "accidental":
            if c in (CHO, CH_NOTE):
                return k._replace(ctx=CH_ACC), 0
            if c in (GRACE, GR_NOTE):
                return k._replace(ctx=GR_ACC), 0
            self._element_ok(k, "note")
            if k.tie == "n":
                raise _Bad("a tie must continue to the same note")
            return self._start_element(self._finalize(k), ACC), 0
        if kind == "rest":
            self._element_ok(k, "rest")
            if k.slur:
                raise _Bad("no rests inside a slur")
            k = self._start_element(self._finalize(k), REST, last="r")
            return k._replace(pos=k.el_start + k.el_unit if k.bar else 1), 0
        if kind == "duration":
            return self._step_duration(k, t), 0
        if kind == "chord":
            if token == "[":
                self._element_ok(k, "chord")
                return self._start_element(self._finalize(k), CHO, cn=0, tie=None), 0
            if c not in (CH_NOTE,) and not (c == CHO and k.cn > 0):
                raise _Bad("']' closes a chord with notes")
            return k._replace(ctx=CHORD_END, pos=k.el_start + k.el_unit if k.bar else 1, last="c", cn=0), 0
        if kind == "grace":
            if token == "{":
                if c not in _ELEMENT_CTX or c in (TIE, BROKEN, GRACE_END):
                    raise _Bad("a grace group starts where a note may")
                k = self._finalize(k)
                if k.tup is not None:
                    raise _Bad("no grace notes inside a tuplet (music21 counts them as tuplet notes)")
                return k._replace(ctx=GRACE, cn=0), 0
            if c not in (GR_NOTE,) and not (c == GRACE and k.cn > 0):
                raise _Bad("'}' closes a grace group with notes")
            return k._replace(ctx=GRACE_END, cn=0), 0
        if kind == "tuplet":
            if c not in _ELEMENT_CTX or c in (TIE, BROKEN, TUPLET):
                raise _Bad("a tuplet starts where a note may")
            k = self._finalize(k)
            if k.tup is not None:
                raise _Bad("no tuplet inside a tuplet")
            p = int(token[1:])
            ratio = tuplet_ratio(p, k.meter)
            return k._replace(ctx=TUPLET, tup=(int(TICKS_PER_UNIT * ratio) if k.bar else 0, p)), 0
        if kind == "slur":
            if token == "(":
                if c not in _ELEMENT_CTX or c in (TIE, BROKEN):
                    raise _Bad("a slur starts where a note may")
                if k.slur >= MAX_SLURS:
                    raise _Bad(f"at most {MAX_SLURS} slurs open")
                return self._finalize(k)._replace(ctx=SLUR_OPEN, slur=k.slur + 1), 0
            if c == GRACE_END and k.slur and k.last in ("n", "na", "c"):  # (B4{AB}): a grace group ends a slur
                return k._replace(slur=k.slur - 1), 0
            if c not in _AFTER_EL or not k.slur or k.last not in ("n", "na", "c"):
                raise _Bad("')' closes an open slur after a note or chord")
            # (the element it closes on keeps its start and unit: the cadence rule reads the last note's length)
            return self._finalize(k)._replace(ctx=SLUR_CLOSED, slur=k.slur - 1, el_start=k.el_start,
                                              el_unit=k.el_unit), 0
        if kind == "tie":
            if c not in _AFTER_EL or c == SLUR_CLOSED or k.last not in ("n", "na", "c"):
                raise _Bad("a tie follows a note or chord")
            k = self._finalize(k)
            return k._replace(ctx=TIE, tie=k.last), 0
        if kind == "broken":
            return self._step_broken(k, token), 0
        if kind == "bar":
            return self._step_bar(k, token)
        if kind == "ending":
            if c != BAR or k.tie:
                raise _Bad("an ending follows a bar line")
            if token == "[1":
                if self.sections or k.ending != 0 or k.lb not in ("|", "||", ":|"):
                    raise _Bad("'[1' follows '|', '||' or ':|' outside an ending" if not self.sections else
                               "no endings with sections")
                return k._replace(ctx=ENDING, ending=1), 0
            if k.ending != 2:
                raise _Bad("'[2' follows the ':|' that closes a first ending")
            return k._replace(ctx=ENDING, ending=3), 0
        if kind in ("meter", "unit", "key"):
            return self._step_field(k, token), 0
        raise _Bad("not a body token")

    def _element_ok(self, k: _Key, what: str) -> None:
        c = k.ctx
        if c not in _ELEMENT_CTX:
            raise _Bad(f"a {what} cannot start here")
        if c == BROKEN and what == "rest":
            raise _Bad("broken rhythm joins two notes or chords")
        if c in (SLUR_OPEN, GRACE_END) and what == "rest":
            raise _Bad(f"a rest cannot follow {'a slur start' if c == SLUR_OPEN else 'a grace group'}")
        if k.ending == 2:
            raise _Bad("'[2' must follow")
        if k.tie and (what == "rest" or (what == "chord") != (k.tie == "c")):
            raise _Bad("a tie must continue to the same note or chord")

    def _step_pitch(self, k: _Key, t: int) -> _Key:
        c = k.ctx
        if c in (CHO, CH_NOTE, CH_ACC, GRACE, GR_NOTE, GR_ACC) and k.cn >= MAX_CHORD_NOTES:
            raise _Bad(f"at most {MAX_CHORD_NOTES} notes in a chord or grace group")
        if c in (CHO, CH_NOTE, CH_ACC):
            return k._replace(ctx=CH_NOTE, cn=k.cn + 1)
        if c in (GRACE, GR_NOTE, GR_ACC):
            return k._replace(ctx=GR_NOTE, cn=k.cn + 1)
        if c == ACC:
            last = "na"
        else:
            self._element_ok(k, "note")
            if k.tie == "na":
                raise _Bad("a tie must continue to the same note and accidental")
            k = self._start_element(self._finalize(k), NOTE)
            last = "n"
        return k._replace(ctx=NOTE, last=last, tie=None,
                          pos=k.el_start + k.el_unit if k.bar else 1)

    def _step_duration(self, k: _Key, t: int) -> _Key:
        c = k.ctx
        if c in (CH_NOTE, GR_NOTE):
            if self.strict:
                raise _Bad("no durations inside chords or grace groups (write the chord's after ']')")
            return k._replace(ctx=CHO if c == CH_NOTE else GRACE)
        if c not in _DUR_OK:
            raise _Bad("a duration follows a note, rest or chord")
        n = self.dur_n[t]
        if k.tup is not None and (not _simple_length(n) or n > self._tuplet_limit(k.unit)):
            raise _Bad("music21 cannot read this duration inside a tuplet")
        if not k.bar:
            return k._replace(ctx=EL_DONE)
        pos = k.el_start + n * (k.el_unit // 32)
        if pos > k.bar:
            raise _Bad("the duration would overfill the bar")
        return k._replace(ctx=EL_DONE, pos=pos)

    def _step_broken(self, k: _Key, token: str) -> _Key:
        if k.ctx not in _AFTER_EL or k.ctx == SLUR_CLOSED or k.last not in ("n", "na", "c"):
            raise _Bad("broken rhythm follows a note or chord")
        if k.right:
            raise _Bad("no chains of broken rhythm")
        if k.tup is not None:
            raise _Bad("no broken rhythm inside a tuplet")
        left, right = BROKEN_RHYTHM[token]
        if not k.bar:
            return k._replace(ctx=BROKEN, brk=1, el_start=0, el_unit=0)
        pos = k.el_start + (k.pos - k.el_start) * left.numerator // left.denominator  # exact: lengths are
        # multiples of GRID_TICKS, which 8 divides
        if pos > k.bar:
            raise _Bad("the broken rhythm would overfill the bar")
        return k._replace(ctx=BROKEN, pos=pos, brk=int(TICKS_PER_UNIT * right), el_start=0, el_unit=0)

    def _step_bar(self, k: _Key, token: str):
        c = k.ctx
        if c == START:
            if token not in ("|", "|:", "[|"):
                raise _Bad("the body may open with '|', '|:' or '[|'")
            return k._replace(ctx=LEAD, rep=1 if token == "|:" else 0, lb=token), 0
        if c in (FIELD, BAR):
            if token != "|:" or k.rep or k.tie or (c == BAR and k.lb != ":|"):
                raise _Bad("two bar lines touch only as ':|' '|:' (or '|:' after a field change)")
            return k._replace(ctx=LEAD, rep=1, lb=token), 0
        if c == TIE:
            if token != "|":
                raise _Bad("a tie crosses only a plain bar line '|'")
        elif c == GRACE_END and k.last in ("n", "na", "c", "r") and k.pos:
            pass  # grace notes may end a bar (c4{Bc}|)
        elif c not in _AFTER_EL:
            raise _Bad("a bar line follows a note, rest or chord")
        k = self._finalize(k)
        if k.tup is not None:
            raise _Bad("the tuplet is not complete")
        first, _final_next, _eos, room, boundary, last = k.cls
        if not room:
            raise _Bad(f"the tune would have more than {k.hi} bars")
        ctx = BAR
        if k.bar and k.pos < k.bar:
            if self.sections:
                raise _Bad("every bar holds the meter's length (sections: no pickup or short final bar)")
            if not first:
                if c == TIE:
                    raise _Bad("a tie cannot end a shorter final bar")
                ctx = FINAL
        if self.sections:
            if boundary:
                if token not in ("||", ":|", "|]") or (token == "|]" and not last) or (k.rep and token != ":|"):
                    raise _Bad("a section ends with '||' or ':|' ('|]' at the end; ':|' closes an open repeat)")
                if self.form and last and token == "||":
                    raise _Bad("the last section ends with '|]' or ':|'")
            elif token not in ("|", "|:"):
                raise _Bad("inside a section only '|' or '|:'")
        if self.form:  # form: '|]' is the tune's last bar line, and the last bar line is '|]' or ':|'
            if token == "|]":
                if not _final_next:
                    raise _Bad("'|]' ends the tune: only once it has its bars")
                if k.slur:
                    raise _Bad("'|]' ends the tune: no slur may stay open")
                ctx = FINAL
            elif ctx == FINAL and token != ":|":
                raise _Bad("a shorter final bar ends with '|]' or ':|'")
        rep, ending = k.rep, k.ending
        if token == "|":
            pass
        elif token in ("||", "|]", "[|"):
            if ending == 1:
                raise _Bad("a first ending closes with ':|'")
            if token == "|]" and rep:
                raise _Bad("'|]' with a repeat open")
            ending = 0
        elif token == "|:":
            if rep:
                raise _Bad("a repeat is already open")
            if ending == 1:
                raise _Bad("a first ending closes with ':|'")
            rep, ending = 1, 0
        elif token == ":|":
            if ending == 3:
                raise _Bad("':|' inside a second ending")
            ending = 2 if ending == 1 else 0
            rep = 0
        if ctx == FINAL and (rep or ending in (1, 2)):
            raise _Bad("a shorter final bar cannot leave a repeat or ending open")
        return k._replace(ctx=ctx, pos=0, last=None, rep=rep, ending=ending, lb=token, fields=0,
                          el_start=0, el_unit=0, cls=None), 1

    def _step_field(self, k: _Key, token: str) -> _Key:
        c = k.ctx
        if c not in (START, BAR, FIELD, LEAD) or k.tie or k.ending == 2:
            raise _Bad("a field change stands after a bar line")
        name, value = token[0], token[2:]
        fixed = {"M": self.meter, "L": self.unit, "K": self.key}[name]
        if fixed is not None:
            raise _Bad(f"the {dict(M='meter', L='unit length', K='key')[name]} is fixed by the controls")
        if name == "M" and self.strict:
            raise _Bad("no meter changes with strict_bars (music21 keeps the first meter's bar length)")
        bit = _FIELD_BIT[name]
        if k.fields & ~(bit - 1):
            raise _Bad("field changes come in the order M:, L:, K:, once each")
        fields = k.fields | bit
        if name == "K":
            return k._replace(ctx=FIELD, fields=fields)
        meter, unit = (value, k.unit) if name == "M" else (k.meter, value)
        bar = meter_bar_ticks(meter, unit) if self.strict else 0
        return k._replace(ctx=FIELD, fields=fields, meter=meter, unit=unit, bar=bar)


class PrimedGrammar:
    """``grammar`` (strict bars, form) after a primer it cannot take itself: the primer's tokens exactly as
    given, then ``grammar`` from :meth:`AbcGrammar.resume`, so the bars composed after an irregular primer
    hold to every rule that bars composed from scratch do (:meth:`mid_bar`: a primer that stops inside a bar;
    :meth:`read`: a syntax-only grammar after a primer it reads only without its marks). The sampler's
    interface: ``start``, ``advance``, ``allowed``, ``finished``. ValueError (from ``resume``) when the primer
    cannot be taken up so."""

    def __init__(self, grammar: AbcGrammar, loose: AbcGrammar, prompt: Sequence[int], *,
                 resumed: tuple | None = None) -> None:
        self.grammar, self.prompt = grammar, [int(t) for t in prompt]
        self.tokenizer, self.max_tokens = grammar.tok, grammar.max_tokens
        self._resumed = resumed if resumed is not None else grammar.resume(loose, self.prompt)

    @classmethod
    def mid_bar(cls, grammar: AbcGrammar, loose: AbcGrammar, prompt: Sequence[int]) -> PrimedGrammar:
        """``grammar`` after a primer that stops inside a bar (an irregular tune whose closing ``|]`` the
        tokenizer's ``primer`` took off, or one with no final bar line): taken up at its last bar line
        (:meth:`AbcGrammar.resume`), then the bar it stops in walked under ``grammar``'s own rules, so that
        the model completes that bar to the meter's length and every rule holds after it. A note tied across
        that bar line (``e8-|e8``, which the syntax grammar's reading cannot take up) is taken up a bar line
        earlier, the bar before it walked too. ValueError when the primer has no bar line to take it up at, or
        its last bars are not ones ``grammar`` writes."""
        prompt = [int(t) for t in prompt]
        cuts = [i + 1 for i, t in enumerate(prompt) if grammar.vocab[t] in BARS]
        if not cuts or cuts[-1] == len(prompt):
            raise ValueError("the primer does not stop inside a bar after a bar line")
        tied = [c for c in cuts if grammar.vocab[prompt[c - 2]] == "-"]   # a tie before the bar line
        cut = cuts[-1] if cuts[-1] not in tied or len(cuts) < 2 or cuts[-2] in tied else cuts[-2]
        state = grammar.resume(loose, prompt[:cut])
        for token in prompt[cut:]:
            state = grammar.advance(state, token)
        return cls(grammar, loose, prompt, resumed=state)

    @classmethod
    def read(cls, grammar: AbcGrammar, prompt: Sequence[int]) -> PrimedGrammar:
        """The syntax-only ``grammar`` after a primer it takes only without its marks
        (:meth:`AbcGrammar.read`), where neither :meth:`AbcGrammar.resume` nor :meth:`mid_bar` can take it
        up under the strict grammar. ValueError as from :meth:`AbcGrammar.read`."""
        state, _ = grammar.read(prompt)
        return cls(grammar, grammar, prompt, resumed=state)

    def start(self) -> tuple:
        return ("primer", 0)

    def advance(self, state: tuple, token_id: int) -> tuple:
        if state[0] != "primer":
            return self.grammar.advance(state, token_id)
        i = state[1]
        if int(token_id) != self.prompt[i]:
            raise ValueError(f"token {self.grammar.vocab[int(token_id)]!r} not allowed: the primer's token {i} is "
                             f"{self.grammar.vocab[self.prompt[i]]!r}")
        return ("primer", i + 1) if i + 1 < len(self.prompt) else self._resumed

    def allowed(self, state: tuple) -> np.ndarray:
        if state[0] != "primer":
            return self.grammar.allowed(state)
        mask = np.zeros(self.grammar.V, dtype=bool)
        mask[self.prompt[state[1]]] = True
        return mask

    def finished(self, state: tuple) -> bool:
        return state[0] != "primer" and self.grammar.finished(state)
