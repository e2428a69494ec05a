"""Infilling: rewrite bars inside a piece, keeping every other bar exactly (issue 20).

    new = infill(open("tune.abc").read(), bars=(5, 8), model="my-folk-fim")      # ABC text in, ABC text out
    new = infill(events.read("piece.mid"), bars=(5, 8), model="my-chorale-fim")  # NoteTable in, NoteTable out

The training format (fill-in-the-middle, :mod:`symbolic.fim`): a piece cut at bar lines is written as
``<bos> controls <fill> suffix <mid> prefix middle <endfill>`` (models trained before it: ``<bos>
controls prefix <fill> suffix <mid> middle <endfill>``; the tokenizer says which);
``ostinato train symbolic --infill-share 0.25`` trains a share of the sequences in that form (the rest
left to right), and an ``--init-from`` model grows its vocabulary by the three marker tokens. A model
without them is refused by name.

Sampling: the prompt is the format up to the middle; a span grammar (:class:`AbcSpanGrammar`,
:class:`MidiSpanGrammar`) then lets the model write exactly the requested number of bars of the meter
in force and ends them where the suffix begins:

- ABC: every bar of the span holds exactly the meter's length; its bar lines, endings and field
  changes are the input's own (so the repeat structure is the input's), forced where they fall; no tie
  into the suffix and no slur left open that the suffix does not close.
- MIDI (REMI): exactly ``k`` bars of the meter in force (a span across a meter change is filled one
  meter at a time, :func:`meter_runs`), the piece's instruments each within its GM
  range (the note rules of :class:`symbolic.midi_grammar.MidiGrammar`), pitches of the key's scale or
  of the pitch classes the piece itself plays (a minor chorale's natural sevenths), no note sounding past the
  span's end; the notes are placed into the input's own bars (its tempo map) and each goes to the
  input's track of its instrument.

A fill is sampled ``INFILL_CANDIDATES`` times in one batch and the one under which the model finds the
suffix's first bars most likely, read left to right after the prefix and the fill
(:func:`lead_in_scores`), is kept: the fill that leads best into what follows it.

Every bar outside the span is the input's: ABC, the tokens (so the normalised text) of those bars;
MIDI, the input's own notes (pitch, onset, offset, velocity, program, track), untouched.

Quotes (:mod:`symbolic.quote`): with a model folder's ``quote.json`` the sampler and the scoring mix the
model's next-token distribution with what the prefix and suffix shown propose where the fill's last
tokens recur in them, so a span inside a repeat can take its copy from the other side.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field, replace

import numpy as np

from .fim import (
    GROUP_BLOCKS,
    INFILL_TOKENS,
    FimParts,
    add_infill_tokens,
    bar_cuts,
    fim_cut,
    fim_example,
    fim_prompt,
    from_fim,
    grow_embeddings,
    has_infill,
    has_span,
    infill_ids,
    is_abc_tokenizer,
    parse_bars,
    split_bars,
    split_head,
    to_fim,
    token_kinds,
)

__all__ = ["INFILL_TOKENS", "AbcSpanGrammar", "FimParts", "MidiSpanGrammar", "add_infill_tokens", "bar_cuts",
           "fim_cut", "fim_example", "fim_prompt", "from_fim", "grow_embeddings", "has_infill", "has_span", "infill",
           "infill_compositions", "infill_ids", "infill_to_files", "lead_in_scores", "meter_runs", "middle_bits",
           "middle_token_bits", "parse_bars", "quote_observations", "random_span", "read_piece", "split_bars",
           "split_head", "to_fim", "token_log_probs"]

INFILL_CANDIDATES = 4   # fills sampled per fill asked for (one batch): the one that leads best into the suffix is kept
SEAM_BARS = 2           # the suffix's first bars, whose likelihood after a fill scores it


# ---------------------------------------------------------------------------- ABC: the span grammar
_PROMPT, _CONTENT, _GROUP, _CLOSE, _DONE = range(5)


class AbcSpanGrammar:
    """The grammar of an ABC infill: the prompt as given, then ``len(groups)`` bars, then ``<endfill>``.

    Args:
        tokenizer: an :class:`~symbolic.abc_tokens.AbcTokenizer` with the infill tokens.
        prompt: the forced tokens (:func:`symbolic.fim.fim_prompt`: header, prefix and suffix in the
            tokenizer's order, the prefix and suffix possibly shortened).
        tune: the header and prefix of the whole tune (``<bos> M: L: K: <bars:..> prefix``): where the
            span starts (meter, unit, key, repeats, a tie) is read from it.
        groups: per bar of the span, the bar line group that closes it (token ids: a bar line, then any
            touching bar line, ending or field change), forced where the bar is full.
        end_slurs: slurs open where the span ends (the suffix closes them).
        max_tokens: the longest sequence, prompt and ``<endfill>`` included.

    Every bar holds exactly the meter's length (strict bars of :class:`symbolic.abc_grammar.AbcGrammar`).
    Raises ValueError (one line) when the span cannot be filled under these rules.
    """

    def __init__(self, tokenizer, *, prompt: Sequence[int], tune: Sequence[int], groups: list[list[int]],
                 end_slurs: int = 0, max_tokens: int) -> None:
        from .abc_grammar import AbcGrammar, meter_bar_ticks

        self.tok = tokenizer
        self.prompt = [int(i) for i in prompt]
        self.groups = [[int(t) for t in g] for g in groups]
        if not self.groups:
            raise ValueError("the span has no bars")
        self.V = len(tokenizer)
        self.endfill = infill_ids(tokenizer)[2]
        # where the span starts: the tune read with the syntax-only grammar, then held to strict bars
        loose = AbcGrammar(tokenizer, strict_bars=False, max_tokens=1 << 30)
        try:
            (key, bd, _n, note, marked, _fs), _ = loose.read(tune)
        except ValueError as exc:
            raise ValueError(f"the bars before the span are not valid ABC tokens: {exc}") from None
        if key == "DONE" or key[0] == "H":
            raise ValueError("the tune has no body before the span")
        if key.slur < end_slurs:
            raise ValueError("the span ends inside a slur that starts inside it: choose other bars")
        self.end_slurs = end_slurs
        k = len(self.groups)
        self.extra = sum(len(g) - 1 for g in self.groups)   # forced tokens the inner grammar does not plan for
        budget = max_tokens - len(self.prompt) - 1 - self.extra - 16
        if budget < 8:
            raise ValueError(f"max_tokens={max_tokens} leaves no room for {k} bars after a prompt of "
                             f"{len(self.prompt)} tokens")
        self.inner = AbcGrammar(tokenizer, strict_bars=True, form=False, max_tokens=budget)
        lo = hi = bd + k
        strict = key._replace(bar=meter_bar_ticks(key.meter, key.unit), lo=lo, hi=hi, pos=0,
                              cls=self.inner._cls(bd, lo, hi))
        self.inner_start = (strict, bd, 0, note, marked, None)
        if self.inner.cost(self.inner_start) >= budget:
            raise ValueError(f"{k} bars do not fit in the model's context after a prompt of {len(self.prompt)} "
                             f"tokens")
        ids = tokenizer.token_to_id
        kinds = token_kinds(tokenizer)
        self.bar_ids = np.array([i for i, kd in enumerate(kinds) if kd == "bar"])
        self.banned = np.array([i for i, kd in enumerate(kinds) if kd in ("ending", "meter", "unit", "key",
                                                                          "length", "special", "infill")])
        self.tie, self.plain_bar, self.close_slur = ids["-"], ids["|"], ids[")"]
        self._dry_run()

    # -- the sampler's interface -----------------------------------------------------------------
    def start(self) -> tuple:
        return (_PROMPT, 0, None, 0, 0)

    def finished(self, state: tuple) -> bool:
        return state[0] == _DONE

    def prefix_ids(self) -> list[int]:
        return list(self.prompt)

    def allowed(self, state: tuple) -> np.ndarray:
        phase, i, inner, j, g = state
        mask = np.zeros(self.V, dtype=bool)
        if phase == _PROMPT:
            mask[self.prompt[i]] = True
        elif phase == _GROUP:
            mask[self.groups[j][g]] = True
        elif phase == _CLOSE:
            mask[self.endfill] = True
        elif phase == _DONE:
            mask[self.tok.pad_id] = True
        else:
            mask = self._content_mask(inner, j)
        return mask

    def advance(self, state: tuple, token_id: int) -> tuple:
        phase, i, inner, j, g = state
        t = int(token_id)
        if phase == _PROMPT:
            if t != self.prompt[i]:
                raise ValueError(f"token {t} is not the prompt's token {self.prompt[i]} at {i}")
            if i + 1 < len(self.prompt):
                return (_PROMPT, i + 1, None, 0, 0)
            return (_CONTENT, 0, self.inner_start, 0, 0)
        if phase == _CLOSE:
            if t != self.endfill:
                raise ValueError(f"token {self.tok.vocab[t]!r} not allowed: the span is complete (<endfill>)")
            return (_DONE, 0, inner, j, 0)
        if phase == _DONE:
            raise ValueError("the infill has ended")
        if not self.allowed(state)[t]:
            raise ValueError(f"token {self.tok.vocab[t]!r} not allowed here in bar {j + 1} of the span")
        inner = self.inner.advance(inner, t)
        g = g + 1 if phase == _GROUP else (1 if t == self.groups[j][0] else 0)
        if phase == _CONTENT and g == 0:
            return (_CONTENT, 0, inner, j, 0)
        if g < len(self.groups[j]):
            return (_GROUP, 0, inner, j, g)
        if j + 1 < len(self.groups):
            return (_CONTENT, 0, inner, j + 1, 0)
        return (_CLOSE, 0, inner, j + 1, 0)

    # -- rules over the inner grammar ------------------------------------------------------------
    def _content_mask(self, inner: tuple, j: int) -> np.ndarray:
        key = inner[0]
        mask = self.inner.allowed(inner).copy()
        mask[self.banned] = False
        mask[self.bar_ids] = False
        last = j == len(self.groups) - 1
        group = self.groups[j]
        full = key.pos >= key.bar if key.bar else key.pos > 0
        if full and self.inner.allowed(inner)[group[0]] and (not last or key.slur == self.end_slurs):
            mask[group[0]] = True
        if full and (last or group != [self.plain_bar]):
            mask[self.tie] = False   # a tie crosses only a plain bar line inside the span
        if key.slur <= self.end_slurs:
            mask[self.close_slur] = False
        return mask

    def _dry_run(self) -> None:
        """Fill the span with rests (or the tied note) under these rules: a scaffold that cannot be
        completed is refused here, before any sampling."""
        ids = self.tok.token_to_id
        order = [*(ids[d] for d in ("8", "6", "4", "3", "2", "3/2", "/2", "/4", "/8")), ids["z"], self.close_slur]
        state = (_CONTENT, 0, self.inner_start, 0, 0)
        for _ in range(20000):
            if state[0] == _CLOSE:
                return
            mask = self.allowed(state)
            if not mask.any():
                raise ValueError(f"the bars around the span cannot be kept as they are (bar {state[3] + 1})")
            pick = next((t for t in [*self.groups[min(state[3], len(self.groups) - 1)][:1], *order] if mask[t]),
                        int(np.flatnonzero(mask)[0]))
            state = self.advance(state, pick)
        raise ValueError("the span could not be filled")


# ---------------------------------------------------------------------------- MIDI: the span grammar
class MidiSpanGrammar:
    """The grammar of a MIDI (REMI) infill: the prompt as given, then ``Bar TimeSig`` and exactly ``bars``
    bars under the note rules, then ``<endfill>`` (where the inner grammar would end the piece).

    The inner grammar is a :class:`symbolic.midi_grammar.MidiGrammar` of ``bars`` bars with the piece's
    controls (instruments, key, the meter and tempo in force; ``pitch_classes``, those the piece plays, are
    allowed besides the key's scale), walked over a virtual start (its control
    prefix and ``Bar TimeSig Position_0 Tempo``); no note sounds past the span's end.
    """

    def __init__(self, tokenizer, *, prompt: Sequence[int], controls, bars: int, timesig_id: int,
                 max_tokens: int, ranges: dict[int, tuple[int, int]] | None = None,
                 pitch_classes: Sequence[int] = ()) -> None:
        from .midi_grammar import MidiGrammar

        self.tok = tokenizer
        self.prompt = [int(i) for i in prompt]
        self.V = len(tokenizer)
        self.endfill = infill_ids(tokenizer)[2]
        budget = max_tokens - len(self.prompt) - 2
        inner = MidiGrammar(tokenizer, controls=controls, bars=bars, max_tokens=1 << 30, note_rules=True,
                            edge_triads=False, ranges=ranges, pitch_classes=pitch_classes)
        state = inner.start()
        for t in inner.prefix_ids():
            state = inner.advance(state, t)
        head = len(inner.prefix_ids())
        bar = tokenizer.token_to_id["Bar_None"]
        state = inner.advance(state, bar)
        if not inner.allowed(state)[timesig_id]:
            raise ValueError(f"the span's meter ({tokenizer.vocab[timesig_id]}) is not the one the controls give")
        state = inner.advance(state, timesig_id)
        pos0 = tokenizer.token_to_id["Position_0"]
        state = inner.advance(state, pos0)
        state = inner.advance(state, int(np.flatnonzero(inner.allowed(state))[0]))   # the first Tempo
        inner.max_tokens = head + 2 + budget   # model tokens <= inner tokens - 1 (Position_0 and Tempo are virtual)
        if inner._cost(state) > inner.max_tokens - state.n:
            raise ValueError(f"{bars} bars do not fit in the model's context after a prompt of {len(self.prompt)} "
                             f"tokens")
        self.inner, self.inner_start = inner, state
        self.head_ids = [bar, timesig_id]
        self.pos0 = pos0
        self.program_ids = np.array([i for i, v in enumerate(tokenizer.vocab) if v.startswith("Program_")])

    def start(self) -> tuple:
        return (_PROMPT, 0, None, False)

    def finished(self, state: tuple) -> bool:
        return state[0] == _DONE

    def prefix_ids(self) -> list[int]:
        return list(self.prompt)

    def allowed(self, state: tuple) -> np.ndarray:
        phase, i, inner, at_pos0 = state
        mask = np.zeros(self.V, dtype=bool)
        if phase == _PROMPT:
            mask[self.prompt[i]] = True
        elif phase == _GROUP:
            mask[self.head_ids[i]] = True
        elif phase == _DONE:
            mask[self.tok.pad_id] = True
        else:
            inner_mask = self.inner.allowed(inner)
            mask[:len(inner_mask)] = inner_mask
            if mask[self.tok.eos_id]:
                mask[self.tok.eos_id] = False
                mask[self.endfill] = True
            if at_pos0:
                keep = np.zeros(self.V, dtype=bool)
                keep[self.program_ids] = True
                mask &= keep
            elif inner is self.inner_start:   # a Position first (as REMI writes a bar): Position_0 is where
                mask[self.program_ids] = False   # the inner grammar already is
                mask[self.pos0] = True
        return mask

    def advance(self, state: tuple, token_id: int) -> tuple:
        phase, i, inner, at_pos0 = state
        t = int(token_id)
        if not self.allowed(state)[t]:
            raise ValueError(f"token {t} ({self.tok.vocab[t]}) is not allowed here in the span")
        if phase == _PROMPT:
            return (_PROMPT, i + 1, None, False) if i + 1 < len(self.prompt) else (_GROUP, 0, None, False)
        if phase == _GROUP:
            return (_GROUP, 1, None, False) if i == 0 else (_CONTENT, 0, self.inner_start, False)
        if phase == _DONE:
            return state
        if t == self.endfill:
            return (_DONE, 0, inner, False)
        if t == self.pos0 and inner is self.inner_start and not at_pos0:
            return (_CONTENT, 0, inner, True)
        return (_CONTENT, 0, self.inner.advance(inner, t), False)


# ---------------------------------------------------------------------------- the infill itself
@dataclass
class _Plan:
    """One infill, prepared: the prompt, a grammar factory and how to turn a sample into the new piece."""

    prompt: list[int]
    grammar: Callable[[], object]
    finish: Callable[[list[int]], object]   # the middle's tokens -> Composition
    before: list[int] = field(default_factory=list)   # left to right: the head and the prefix shown
    after: list[int] = field(default_factory=list)    # the suffix's first bars shown (empty: the span extends)
    middle: list[int] = field(default_factory=list)   # the input's own tokens for the span (empty: it extends)

    def scored(self, middle: list[int]) -> tuple[list[int], int]:
        """The left-to-right sequence ``before middle after`` and where ``after`` starts in it."""
        return [*self.before, *middle, *self.after], len(self.before) + len(middle)


def _check_model(tokenizer, name: str) -> None:
    if not has_infill(tokenizer):
        raise ValueError(f"--infill: the model {name} was not trained to infill (its tokenizer has no <fill> "
                         f"tokens); fine-tune it with `ostinato train symbolic --init-from {name} "
                         f"--infill-share 0.25 ...`")


def _room(n_middle_estimate: int, context: int) -> int:
    return min(max(64, n_middle_estimate), context - 16)


def _abc_plan(tokenizer, text: str, span: tuple[int, int], context: int) -> _Plan:
    from .abc_tokens import bar_bucket, count_bars

    ids = tokenizer.encode(text)
    head, body, _ended = split_head(tokenizer, ids)
    cuts = bar_cuts(tokenizer, body)
    n_closed = len(cuts) - 1
    first, last = span
    vocab, to_id = tokenizer.vocab, tokenizer.token_to_id
    total_bars = count_bars([vocab[i] for i in body])
    if first > total_bars + 1:
        raise ValueError(f"--infill {first}-{last}: the tune has {total_bars} bars; a span that extends it starts "
                         f"at bar {total_bars + 1} at the latest")
    extends = last > n_closed
    plain, final = to_id["|"], to_id["|]"]
    groups: list[list[int]] = []
    for bar in range(first, last + 1):
        if bar <= n_closed:
            group = body[_group_start(tokenizer, body, cuts[bar]):cuts[bar]]
            if extends and bar == n_closed:
                group = [plain if t == final else t for t in group]
            groups.append(group)
        else:
            groups.append([plain])
    suffix: list[int] = []
    if not extends:
        prefix, suffix = body[:cuts[first - 1]], body[cuts[last]:]
    elif first <= n_closed + 1:
        prefix = body[:cuts[first - 1]]
    else:   # after a last bar with no closing bar line: close it
        prefix = [*body, plain]
    if extends:
        groups[-1] = [final]
        start = _group_start(tokenizer, prefix, len(prefix))
        prefix = [*prefix[:start], *(plain if t == final else t for t in prefix[start:])]
        head = [*head[:4], to_id[bar_bucket(max(total_bars, last))]]
    # slurs open where the span ends, in the input: the suffix closes them
    end_slurs = 0
    for t in body[:cuts[last]] if not extends else []:
        end_slurs += {"(": 1, ")": -1}.get(vocab[t], 0)
    per_bar = max(1, len(body)) / max(1, total_bars)
    room = _room(int(per_bar * 1.6 * (last - first + 1)) + 16, context)
    shown_prefix, shown_suffix = _fit(tokenizer, prefix, suffix, context - room - len(head) - 3)
    shown_head = tokenizer.fields_in_force(head, prefix[:len(prefix) - len(shown_prefix)])   # the key it is in
    prompt = fim_prompt(tokenizer, shown_head, shown_prefix, shown_suffix, len(groups))
    tune = [*head, *prefix]

    def grammar():
        return AbcSpanGrammar(tokenizer, prompt=prompt, tune=tune, groups=groups, end_slurs=end_slurs,
                              max_tokens=context)

    def finish(middle: list[int]):
        from .compose import Composition

        whole = [*head, *prefix, *middle, *suffix, tokenizer.eos_id]
        text = tokenizer.decode_text(whole)
        return Composition(whole, text, lambda: tokenizer.decode_notes(whole))

    middle = [] if extends else body[cuts[first - 1]:cuts[last]]
    return _Plan(prompt, grammar, finish, [*shown_head, *shown_prefix], _lead(tokenizer, shown_suffix), middle)


def _lead(tokenizer, suffix: list[int]) -> list[int]:
    """The first ``SEAM_BARS`` bars of ``suffix`` (what a fill's ending leads into)."""
    cuts = bar_cuts(tokenizer, suffix)
    return suffix[:cuts[SEAM_BARS]] if len(cuts) > SEAM_BARS else list(suffix)


def _group_start(tokenizer, body: list[int], cut: int) -> int:
    """The index where the bar line group ending at ``cut`` begins."""
    kind = token_kinds(tokenizer)
    i = cut
    while i > 0 and kind[body[i - 1]] in GROUP_BLOCKS:
        i -= 1
    return i


def _fit(tokenizer, prefix: list[int], suffix: list[int], room: int) -> tuple[list[int], list[int]]:
    """The prefix's last bars and the suffix's first bars that fit in ``room`` tokens (the suffix at most half)."""
    if len(prefix) + len(suffix) <= room:
        return prefix, suffix
    keep_suffix = min(len(suffix), room // 2 if len(prefix) > room // 2 else room - len(prefix))
    if keep_suffix < len(suffix):
        cuts = [c for c in bar_cuts(tokenizer, suffix) if 0 < c <= keep_suffix]
        suffix = suffix[:cuts[-1]] if cuts else []
    keep_prefix = room - len(suffix)
    if len(prefix) > keep_prefix:
        cuts = [c for c in bar_cuts(tokenizer, prefix) if len(prefix) - c <= keep_prefix]
        prefix = prefix[cuts[0]:] if cuts else []
    return prefix, suffix


def meter_runs(tokenizer, table, span: tuple[int, int], style: str | None = None) -> list[tuple[int, int]]:
    """The span cut where the meter changes (REMI ``TimeSig`` tokens): ``[(first, last), ...]``, one run of
    bars per meter in force (bars past the piece's end keep its last meter)."""
    from .midi_tokens import stand_ins

    if getattr(tokenizer, "scheme", None) != "remi" or len(table) == 0:
        return [span]
    ids = tokenizer.encode(stand_ins(table)[0], style=style)
    _head, body, _ = split_head(tokenizer, ids)
    cuts = bar_cuts(tokenizer, body)
    vocab, meter, meters = tokenizer.vocab, None, []
    for b in range(len(cuts) - 1):
        sig = next((t for t in body[cuts[b]:cuts[b] + 2] if vocab[t].startswith("TimeSig_")), None)
        meter = sig if sig is not None else meter
        meters.append(meter)
    if not meters:
        return [span]

    def meter_of(bar: int):
        return meters[min(bar, len(meters)) - 1]

    first, last = span
    runs = [(first, first)]
    for bar in range(first + 1, last + 1):
        runs[-1:] = [(runs[-1][0], bar)] if meter_of(bar) == meter_of(bar - 1) else [runs[-1], (bar, bar)]
    return runs


def _midi_plan(tokenizer, table, span: tuple[int, int], context: int, style: str | None) -> _Plan:
    from ostinato.events import to_score

    from .midi_grammar import MidiGrammar
    from .midi_tokens import METERS, Controls, stand_ins

    if tokenizer.scheme != "remi":
        raise ValueError(f"--infill: MIDI infilling needs REMI tokens (Bar tokens), not {tokenizer.scheme}")
    if len(table) == 0:
        raise ValueError("--infill: the piece has no notes")
    coded, _tracks = stand_ins(table)
    controls = tokenizer.controls_of(coded, style)
    ids = tokenizer.encode(coded, style=style)
    head, body, _ended = split_head(tokenizer, ids)
    cuts = bar_cuts(tokenizer, body)
    n_bars = len(cuts) - 1
    first, last = span
    if first > n_bars + 1:
        raise ValueError(f"--infill {first}-{last}: the piece has {n_bars} bars; a span that extends it starts at "
                         f"bar {n_bars + 1} at the latest")
    extends = last > n_bars
    prefix = body[:cuts[first - 1]]
    suffix = [] if extends else body[cuts[last]:]
    original_middle = body[cuts[first - 1]:cuts[min(last, n_bars)]]
    vocab = tokenizer.vocab
    if original_middle and vocab[original_middle[1]].startswith("TimeSig_"):
        span_timesig = original_middle[1]
    else:
        span_timesig = [t for t in prefix if vocab[t].startswith("TimeSig_")][-1]
    if len({t for t in original_middle if vocab[t].startswith("TimeSig_")} | {span_timesig}) > 1:
        raise ValueError(f"--infill {first}-{last}: the meter changes inside the span; choose bars of one meter")
    meter = vocab[span_timesig].removeprefix("TimeSig_")
    tempos = [t for t in [*prefix, *original_middle[:4]] if vocab[t].startswith("Tempo_")]
    qpm = float(vocab[tempos[-1]].removeprefix("Tempo_")) if tempos else (controls.tempo_bpm or 120.0)
    inner_meter = meter if meter in METERS else None
    span_controls = Controls(style=controls.style, key=controls.key, meter=inner_meter, tempo_bpm=qpm,
                             instruments=controls.instruments)
    k = last - first + 1
    # bar lines of the input (its own ticks), extended past its end by its last bar's length
    score = to_score(table)
    downbeats = sorted({int(t) for t in score.get_downbeats()} | {0})
    num, den = (int(x) for x in meter.split("/"))
    bar_len = table.ticks_per_quarter * 4 * num // den
    end_tick = max(int(table.offset_tick.max()), downbeats[-1] + 1)
    while len(downbeats) < first + k or downbeats[-1] < end_tick:
        downbeats.append(downbeats[-1] + bar_len)
    starts = downbeats[first - 1:first + k]   # span bar lines in input ticks: k bars, then the end
    per_bar = max(1, len(body)) / max(1, n_bars)
    room = _room(int(per_bar * 1.25 * k) + 16, context)   # the grammar closes the span within it
    shown_prefix, shown_suffix = _fit_midi(tokenizer, prefix, suffix, context - room - len(head) - 3)
    prompt = fim_prompt(tokenizer, head, shown_prefix, shown_suffix, k)
    # the key's scale and every pitch class the piece plays itself (a chorale in A minor has its G naturals)
    own_pcs = sorted({int(p) % 12 for p, drum in zip(table.pitch, table.is_drum, strict=True) if not drum})
    inner_probe = MidiGrammar(tokenizer, controls=span_controls, bars=k, max_tokens=1 << 30, note_rules=True,
                              edge_triads=False, pitch_classes=own_pcs)
    ranges = part_ranges(table, coded)

    def grammar():
        return MidiSpanGrammar(tokenizer, prompt=prompt, controls=span_controls, bars=k, timesig_id=span_timesig,
                               max_tokens=context, ranges=ranges, pitch_classes=own_pcs)

    program_track = {}
    for i, track in enumerate(coded.tracks):
        program_track.setdefault(-1 if track.is_drum else track.program, i)

    def finish(middle: list[int]):
        from .compose import Composition

        notes = _middle_notes(inner_probe, middle)
        scale = table.ticks_per_quarter / tokenizer.miditok.time_division
        keep = (table.onset_tick < starts[0]) | (table.onset_tick >= starts[-1])
        new_on, new_off, new_pitch, new_vel, new_track = [], [], [], [], []
        for bar, tick, program, pitch, velocity, ticks in notes:
            if bar >= k or program not in program_track:
                continue
            onset = starts[bar] + round(tick * scale)
            if onset >= starts[-1]:
                continue
            new_on.append(onset)
            new_off.append(min(onset + max(1, round(ticks * scale)), starts[-1]))   # cut at the span's end
            new_pitch.append(pitch)
            new_vel.append(velocity)
            new_track.append(program_track[program])
        result = _join_notes(table, keep, new_on, new_off, new_pitch, new_vel, new_track)
        whole = [*head, *prefix, *middle, *suffix, tokenizer.eos_id]
        return Composition(whole, None, lambda: result)

    return _Plan(prompt, grammar, finish, [*head, *shown_prefix], _lead(tokenizer, shown_suffix),
                 [] if extends else original_middle)


def part_ranges(table, coded) -> dict[int, tuple[int, int]]:
    """Per token program of ``coded`` (``table`` with stand-in programs): the pitches its part may play in a
    fill, the GM range of the part's own program widened to the notes the part plays in the piece."""
    from ostinato.events.instruments import instrument_range

    ranges = {}
    for i, (track, own) in enumerate(zip(coded.tracks, table.tracks, strict=True)):
        notes = table.pitch[table.track == i]
        if track.is_drum or not len(notes):
            continue
        r = instrument_range(own.program)
        ranges[track.program] = (min(r.low, int(notes.min())), max(r.high, int(notes.max())))
    return ranges


def _fit_midi(tokenizer, prefix: list[int], suffix: list[int], room: int) -> tuple[list[int], list[int]]:
    """The prefix's last bars (re-headed as a window starts) and the suffix's first bars that fit in ``room``:
    the suffix at most half of it, save that the bars at both seams (the prefix's last, the suffix's first)
    are shown whenever the two fit together."""
    if len(prefix) + len(suffix) <= room:
        return prefix, suffix
    half = room // 2
    keep_suffix = half if len(prefix) > half else room - len(prefix)
    if len(suffix) > keep_suffix:
        suffix_ends = [c for c in bar_cuts(tokenizer, suffix) if c > 0]
        prefix_cuts = bar_cuts(tokenizer, prefix) if prefix else [0]
        last_prefix_bar = len(prefix) - prefix_cuts[-2] + 4 if len(prefix_cuts) > 1 else 0   # + a window's head
        if suffix_ends and suffix_ends[0] + min(len(prefix), last_prefix_bar) <= room:
            keep_suffix = max(keep_suffix, suffix_ends[0])
        cuts = [c for c in suffix_ends if c <= keep_suffix]
        suffix = suffix[:cuts[-1]] if cuts else []
    keep_prefix = room - len(suffix)
    if len(prefix) > keep_prefix and prefix:
        fed = tokenizer.window(list(prefix), max_tokens=keep_prefix)
        prefix = list(fed) if fed is not None else []
    return prefix, suffix


def _middle_notes(grammar, middle: list[int]) -> list[tuple[int, int, int, int, int, int]]:
    """``(bar, tick in bar, program, pitch, velocity, ticks)`` of the notes of a REMI middle (miditok ticks)."""
    from .midi_grammar import K_BAR, K_DURATION, K_PITCH, K_PITCHDRUM, K_POSITION, K_PROGRAM, K_TIMESIG, K_VELOCITY

    notes = []
    bar, meter, tick, program, pitch, velocity = -1, None, 0, 0, 0, 64
    for t in middle:
        kind, value = int(grammar.kind[t]) if t < len(grammar.kind) else -1, None
        if 0 <= t < len(grammar.value):
            value = grammar.value[t]
        if kind == K_BAR:
            bar, tick = bar + 1, 0
        elif kind == K_TIMESIG:
            meter = grammar.meters.get(value)
        elif kind == K_POSITION and meter is not None:
            tick = int(value) * meter.ticks_per_pos
        elif kind == K_PROGRAM:
            program = int(value)
        elif kind in (K_PITCH, K_PITCHDRUM):
            pitch = int(value)
        elif kind == K_VELOCITY:
            velocity = int(value)
        elif kind == K_DURATION and meter is not None:
            ticks = int(meter.duration_ticks[t - grammar.ids[K_DURATION][0]])
            notes.append((bar, tick, program, pitch, velocity, ticks))
    return notes


def _join_notes(table, keep: np.ndarray, onset, offset, pitch, velocity, track):
    """``table``'s notes where ``keep`` holds, untouched, and the new ones (ticks), one table."""
    tmap = table.tempo_map
    onset = np.asarray(onset, dtype=np.int64)
    offset = np.asarray(offset, dtype=np.int64)
    track = np.asarray(track, dtype=np.int32)
    programs = np.array([t.program for t in table.tracks] or [0], dtype=np.uint8)
    drums = np.array([t.is_drum for t in table.tracks] or [False], dtype=bool)
    kept = table.select(keep)
    columns = {
        "onset_tick": np.concatenate([kept.onset_tick, onset]),
        "offset_tick": np.concatenate([kept.offset_tick, offset]),
        "onset_s": np.concatenate([kept.onset_s, tmap.to_seconds(onset) if len(onset) else np.zeros(0)]),
        "offset_s": np.concatenate([kept.offset_s, tmap.to_seconds(offset) if len(offset) else np.zeros(0)]),
        "pitch": np.concatenate([kept.pitch, np.asarray(pitch, dtype=kept.pitch.dtype)]),
        "velocity": np.concatenate([kept.velocity, np.asarray(velocity, dtype=kept.velocity.dtype)]),
        "program": np.concatenate([kept.program, programs[track] if len(track) else np.zeros(0, np.uint8)]),
        "is_drum": np.concatenate([kept.is_drum, drums[track] if len(track) else np.zeros(0, bool)]),
        "track": np.concatenate([kept.track, track]),
    }
    return replace(kept, **columns).sorted()


def infill_compositions(model, tokenizer, piece, bars: tuple[int, int], *, n: int = 1, sampling=None,
                        style: str | None = None, name: str = "the model",
                        on_step: Callable[[int], None] | None = None, quote=None) -> list:
    """``n`` new versions of ``piece`` with bars ``bars`` (1-based, inclusive) rewritten by ``model``.

    Args:
        piece: ABC text (ABC models) or a :class:`events.NoteTable` (MIDI models).
        bars: ``(first, last)``; bars past the piece's end extend it.
        quote: the model folder's quote weights (:func:`symbolic.quote.load_weights`): the fill may quote
            the prefix and suffix shown to it; None: the model alone.
    Returns: :class:`symbolic.compose.Composition` objects (ABC text and notes, or notes).
    Raises: ValueError (one line) for a model without infill tokens, a span that cannot be filled, a
        piece of the wrong kind for the model.
    """

    from .sample import SamplingConfig, context_of, sample

    _check_model(tokenizer, name)
    sampling = sampling or SamplingConfig()
    context = min(context_of(model), sampling.max_tokens)
    first, last = bars
    if not 1 <= first <= last:
        raise ValueError(f"--infill: expected 1 <= FIRST <= LAST, got {first}-{last}")
    _check_piece(tokenizer, piece)
    if not is_abc_tokenizer(tokenizer):
        runs = meter_runs(tokenizer, piece, (first, last), style)
        if len(runs) > 1:   # one meter at a time, each later run with the earlier ones' fills before it
            pieces = infill_compositions(model, tokenizer, piece, runs[0], n=n, sampling=sampling, style=style,
                                         name=name, on_step=on_step, quote=quote)
            for k, run in enumerate(runs[1:], start=1):
                pieces = [infill_compositions(model, tokenizer, p.table, run, n=1, style=style, name=name,
                                              sampling=replace(sampling, seed=sampling.seed + 1000 * k + i),
                                              quote=quote)[0]
                          for i, p in enumerate(pieces)]
            return pieces
    plan = _plan(tokenizer, piece, (first, last), context, style)
    per_fill = INFILL_CANDIDATES if plan.after else 1
    grammars = [plan.grammar() for _ in range(n * per_fill)]
    seqs = sample(model, prompt=plan.prompt, n=n * per_fill, config=replace(sampling, max_tokens=context),
                  grammars=grammars, eos_id=infill_ids(tokenizer)[2], pad_id=tokenizer.pad_id, on_step=on_step,
                  mix=None if quote is None else [_quoting(tokenizer, plan, quote)] * (n * per_fill))
    middles = []
    for seq in seqs:
        middle = seq[len(plan.prompt):]
        if not middle or middle[-1] != infill_ids(tokenizer)[2]:
            raise RuntimeError("the infill ran out of tokens before its last bar (a bug: the grammar plans for it)")
        middles.append(middle[:-1])
    if per_fill > 1:
        scores = lead_in_scores(model, [plan.scored(m) for m in middles])
        best = [max(range(i * per_fill, (i + 1) * per_fill), key=scores.__getitem__) for i in range(n)]
        middles = [middles[j] for j in best]
    return [plan.finish(m) for m in middles]


def _shown_suffix(tokenizer, plan: _Plan) -> list[int]:
    """The suffix's tokens the prompt shows (between ``<fill>`` and ``<mid>``; empty when the span extends)."""
    fill, mid, _end = infill_ids(tokenizer)
    return list(plan.prompt[plan.prompt.index(fill) + 1:plan.prompt.index(mid)])


def _quoting(tokenizer, plan: _Plan, quote):
    """The sampler's ``mix`` for ``plan``: the middle so far, after the prefix, may quote the prefix and suffix."""
    from .quote import MAX_MATCH, Quoter, mix_log_probs

    quoter = Quoter([plan.before, _shown_suffix(tokenizer, plan)])
    start, tail = len(plan.prompt), list(plan.before[-MAX_MATCH:])   # a match looks back MAX_MATCH tokens at most

    def mix(sequence: list[int], log_probs):
        length, proposal = quoter.propose([*tail, *sequence[start:][-MAX_MATCH:]])
        return mix_log_probs(log_probs, length, proposal, quote)

    return mix


def _check_piece(tokenizer, piece) -> None:
    """ValueError unless ``piece`` is what the model infills: ABC text (ABC models) or a NoteTable."""
    from ostinato.events import NoteTable

    if is_abc_tokenizer(tokenizer):
        if not isinstance(piece, str):
            raise ValueError("--infill: an ABC model infills ABC tunes (give ABC text or a .abc file)")
    elif not isinstance(piece, NoteTable):
        raise ValueError("--infill: a MIDI model infills a NoteTable (a .mid, .abc or MusicXML file read)")


def _plan(tokenizer, piece, bars: tuple[int, int], context: int, style: str | None) -> _Plan:
    if is_abc_tokenizer(tokenizer):
        return _abc_plan(tokenizer, piece, bars, context)
    return _midi_plan(tokenizer, piece, bars, context, style)


def middle_bits(model, tokenizer, piece, bars: tuple[int, int], *, style: str | None = None,
                name: str = "the model", without: str = "left-to-right", quote=None) -> tuple[float, float, int]:
    """How well ``model`` predicts ``piece``'s own bars ``bars`` with and without the bars after them:
    ``(bits with the suffix in view, bits without, the middle's tokens)``.

    With: the prompt :func:`infill_compositions` gives the model (the prefix's last bars and the
    suffix's first bars that fit its context around the span, in the fill-in-the-middle order);
    without: the same controls and prefix, left to right (``without="left-to-right"``), or the same
    fill-in-the-middle prompt with an empty suffix, as an infill that extends a piece has
    (``"no-suffix"``: the suffix is all that differs). ``bars`` must lie inside the piece (one meter).
    ``quote``: the model folder's quote weights (:func:`symbolic.quote.load_weights`), or None: the model
    alone. With them, the middle may quote the prefix and suffix shown (with) or the prefix (without).
    """
    with_suffix, without_suffix, middle = middle_token_bits(model, tokenizer, piece, bars, style=style, name=name,
                                                            without=without, quote=quote)
    return float(with_suffix.sum()), float(without_suffix.sum()), len(middle)


def middle_token_bits(model, tokenizer, piece, bars: tuple[int, int], *, style: str | None = None,
                      name: str = "the model", without: str | tuple[str, ...] = "left-to-right", quote=None
                      ) -> tuple[np.ndarray, np.ndarray | tuple[np.ndarray, ...], list[int]]:
    """:func:`middle_bits` token by token: ``(bits with the suffix in view, bits without, the middle's ids)``,
    two float64 arrays as long as the middle, so a caller can tell where the suffix helps (its bar lines,
    its notes). ``without`` may be a tuple of both ways (``("left-to-right", "no-suffix")``): the second
    item is then a tuple of arrays in that order, the prompt scored once for all."""
    from .sample import context_of

    _check_model(tokenizer, name)
    _check_piece(tokenizer, piece)
    context = context_of(model)
    plan = _plan(tokenizer, piece, bars, context, style)
    if not plan.middle:
        raise ValueError(f"bars {bars[0]}-{bars[1]} extend the piece: there is nothing of its own to score")
    ways = (without,) if isinstance(without, str) else tuple(without)
    if not ways or any(way not in ("left-to-right", "no-suffix") for way in ways):
        raise ValueError(f"without: expected 'left-to-right' or 'no-suffix', got {without!r}")
    fim = [*plan.prompt, *plan.middle]
    others = []
    for way in ways:
        if way == "no-suffix":
            fill, mid, _end = infill_ids(tokenizer)   # the prompt less what lies between <fill> and <mid>
            at, to = plan.prompt.index(fill), plan.prompt.index(mid)
            others.append([*plan.prompt[:at + 1], *plan.prompt[to:], *plan.middle])
        else:
            others.append([*plan.before, *plan.middle])
    n = len(plan.middle)
    if max(len(fim), *map(len, others)) > context:   # the sampler gives a middle the room it plans
        raise ValueError(f"bars {bars[0]}-{bars[1]} are {n} tokens: after the prompt's {len(plan.prompt)} they do "
                         f"not fit {name}'s context of {context} tokens")
    with_suffix = -token_log_probs(model, fim)[-n:] / math.log(2)
    without_suffix = tuple(-token_log_probs(model, ids)[-n:] / math.log(2) for ids in others)
    if quote is not None:   # the same mixture as the sampler's: with, the prefix and suffix quoted; without, the prefix
        from .quote import quoted_bits

        with_suffix = quoted_bits(with_suffix, plan.middle, plan.before, [plan.before, _shown_suffix(tokenizer, plan)],
                                  quote)
        without_suffix = tuple(quoted_bits(bits, plan.middle, plan.before, [plan.before], quote)
                               for bits in without_suffix)
    return with_suffix, without_suffix[0] if isinstance(without, str) else without_suffix, list(plan.middle)


def lead_in_scores(model, sequences: list[tuple[list[int], int]]) -> list[float]:
    """Per ``(ids, start)``: the log-likelihood (nats) of ``ids[start:]`` given ``ids[:start]``, left to right:
    how well a fill leads into the bars after it."""
    return [float(token_log_probs(model, ids)[start - 1:].sum()) for ids, start in sequences]


def token_log_probs(model, ids: Sequence[int]) -> np.ndarray:
    """``out[t - 1]`` = log p(``ids[t]`` | ``ids[:t]``) in nats, for t = 1 .. len(ids) - 1: float64 [len(ids) - 1]."""
    import torch

    x = torch.tensor([list(ids)], device=next(model.parameters()).device)
    with torch.no_grad():
        logp = torch.log_softmax(model(input_ids=x[:, :-1]).logits.float(), -1)[0]
    return logp[torch.arange(x.shape[1] - 1), x[0, 1:]].double().cpu().numpy()


def infill(piece, bars: tuple[int, int] | str, *, model: str | None = None, n: int | None = None, seed: int = 0,
           temperature: float = 1.0, top_k: int = 0, top_p: float = 0.95, style: str | None = None):
    """Rewrite bars ``bars`` of ``piece`` with an infilling model; every other bar stays exactly as it was.

    Args:
        piece: ABC text (for an ABC model) or a :class:`events.NoteTable` (for a REMI model).
        bars: ``(first, last)`` 1-based and inclusive, or ``"5-8"``; bars past the end extend the piece.
        model: a shipped model name or a model folder trained with ``--infill-share`` (default: the
            shipped model for the piece's kind); its ``quote.json``, if it has one, lets the fill quote
            the music around it (:mod:`symbolic.quote`).
        n: None for one piece, else a list of ``n`` pieces (sampled as one batch).
        seed, temperature, top_k, top_p: as ``ostinato compose``; ``style``: the MIDI style control.
    Returns: the new ABC text (str) or NoteTable, or a list of them.
    """
    from .model import load_model_folder
    from .sample import SamplingConfig
    from .shipped import resolve_model

    span = parse_bars(bars) if isinstance(bars, str) else (int(bars[0]), int(bars[1]))
    name = model or ("folk-abc" if isinstance(piece, str) else "chorale-midi")
    folder = resolve_model(name)
    from .tokenizers import load_tokenizer

    _check_model(load_tokenizer(folder / "tokenizer.json"), name)
    loaded, tokenizer, _config = load_model_folder(folder)
    sampling = SamplingConfig(temperature=temperature, top_k=top_k, top_p=top_p, seed=seed)
    from .quote import load_weights

    pieces = infill_compositions(loaded, tokenizer, piece, span, n=n or 1, sampling=sampling, style=style, name=name,
                                 quote=load_weights(folder))
    results = [p.text if isinstance(piece, str) else p.table for p in pieces]
    return results if n is not None else results[0]


def read_piece(tokenizer, path) -> object:
    """What an infill of ``path`` starts from: the first tune's ABC text (ABC models) or the notes (MIDI models).

    Raises: InputError (the file cannot be read, or is of a kind the model does not infill)."""
    from pathlib import Path

    from ostinato.events.errors import InputError

    if is_abc_tokenizer(tokenizer):
        if Path(path).suffix.lower() != ".abc":
            raise InputError(path, "an ABC model infills ABC tunes: give a .abc file (or a MIDI model)")
        from ostinato.events.abc_read import read_abc_text, split_tunes

        tunes = split_tunes(read_abc_text(path))
        if not tunes:
            raise InputError(path, "no ABC tune found (no X: or K: line)")
        return tunes[0].text
    from ostinato import events

    return events.read(path)


def infill_to_files(request, folder, tokenizer, sampling, *, write: Callable) -> list:
    """``ostinato compose --primer FILE --infill A-B``: ``request.n`` infills written to ``request.outputs``.

    ``write(composition, path, fmt)`` writes one piece. A model without the infill tokens is a
    :class:`UsageError` naming it, before its weights load."""
    import sys

    from tqdm import tqdm

    from ostinato.events.errors import InputError, UsageError

    from .model import load_model_folder

    try:
        _check_model(tokenizer, request.model)
    except ValueError as exc:
        raise UsageError("--infill", str(exc).removeprefix("--infill: ")) from None
    piece = read_piece(tokenizer, request.primer)
    from .quote import load_weights

    quote = load_weights(folder) if request.quote else None   # a broken quote.json: one line before the model loads
    model, tokenizer, _config = load_model_folder(folder)
    bar = tqdm(desc=f"infill x{request.n}", unit="tok", file=sys.stderr, dynamic_ncols=True, mininterval=0.5,
               disable=not (request.show_progress and sys.stderr.isatty()))   # a terminal only, as compose
    try:
        pieces = infill_compositions(model, tokenizer, piece, request.infill, n=request.n, sampling=sampling,
                                     style=request.style, name=request.model,
                                     on_step=lambda step: bar.update(step - bar.n), quote=quote)
    except ValueError as exc:
        raise InputError(request.primer, str(exc).removeprefix("--infill: ")) from None
    finally:
        bar.close()
    for composed, path in zip(pieces, request.outputs, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        write(composed, path, request.fmt)
        if request.show_progress:
            print(f"wrote {path}", file=sys.stderr)
    return pieces


def random_span(n_bars: int, rng: np.random.Generator) -> tuple[int, int] | None:
    """A span of 1-4 bars of a piece of ``n_bars`` bars with at least one bar before and after it (None: the
    piece is too short), drawn from ``rng``."""
    if n_bars < 3:
        return None
    k = int(rng.integers(1, min(4, n_bars - 2) + 1))
    first = int(rng.integers(2, n_bars - k + 1))
    return first, first + k - 1


def quote_observations(model, tokenizer, piece, bars: tuple[int, int], *, style: str | None = None
                       ) -> list[tuple[float, int, float]]:
    """What :func:`symbolic.quote.fit_weights` fits on, for one span of ``piece``: per token of its middle,
    ``(the model's probability of it with the suffix in view, the quote's match length, the quote's
    probability of it)``, the prefix and suffix shown quoted as the sampler quotes them."""
    from .quote import quote_terms
    from .sample import context_of

    plan = _plan(tokenizer, piece, bars, context_of(model), style)
    if not plan.middle or len(plan.prompt) + len(plan.middle) > context_of(model):
        return []
    probs = np.exp(token_log_probs(model, [*plan.prompt, *plan.middle])[-len(plan.middle):])
    lengths, quoted = quote_terms(plan.middle, plan.before, [plan.before, _shown_suffix(tokenizer, plan)])
    return [(float(p), int(n), float(q)) for p, n, q in zip(probs, lengths, quoted, strict=True)]
