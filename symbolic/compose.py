"""Composing: controls and an optional primer in, valid pieces out (ABC text or note tables).

    controls = tokenizer.make_controls(meter="6/8", key="G", bars=16)   # AbcControls or MidiControls
    pieces = compose(model, tokenizer, n=4, sampling=SamplingConfig(seed=1), controls=controls)
    controls, prompt = tokenizer.primer("tune.abc", bars=8)             # continue a piece instead
    pieces = compose(model, tokenizer, n=4, controls=controls, prompt=prompt)

Any :class:`symbolic.tokenizers.Tokenizer` works: its grammar (``tokenizer.grammar(controls)``,
:mod:`symbolic.abc_grammar` or :mod:`symbolic.midi_grammar`) masks every token that would make a
piece invalid, and enforces the controls it can (key, meter, unit length, bars; instruments, tempo,
length). The primer's tokens are the start of every sample. A model with a memory of its training
tunes (:mod:`symbolic.memory`) samples the mixture of its distribution and the memory's.

Pieces longer than the model's context (any ``bars``/``seconds``, any primer) are sampled with a
sliding window where the tokenizer has one (MIDI REMI: :meth:`symbolic.midi_tokens.MidiTokenizer.window`;
ABC: :meth:`symbolic.abc_tokens.AbcTokenizer.window`): when the context is full the model goes on from the
control prefix (an ABC tune's header, its length control counting the bars still to come) and the most
recent bars, while the grammar keeps following the whole piece.

A key the grammar cannot make the ear hear: a MIDI piece asked for in a key (``--key 'D minor'``) is
held to that key's scale, its tonic triad and a final cadence by the grammar, and yet a piece may
dwell on its subdominant or relative major long enough to be heard there. Each such piece is
sampled ``KEY_CANDIDATES`` times in one batch and the first candidate whose notes are in the key
asked (:func:`symbolic.midi_tokens.key_of`, Krumhansl-Schmuckler) is kept, else the first.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field, replace
from functools import cached_property, partial

from ostinato.events import NoteTable

from .abc_tokens import AbcControls
from .midi_tokens import MidiControls
from .sample import SamplingConfig, context_of, sample

__all__ = ["AbcControls", "Composition", "MidiControls", "check_controls", "compose", "decode", "token_budget"]


@dataclass(frozen=True)
class Composition:
    """One composed piece: its tokens, the ABC text (ABC models) and the notes.

    ``table`` is read from the tokens when first asked for (an ABC tune's notes come from music21,
    which writing the tune as .abc never needs)."""

    ids: list[int]
    text: str | None
    notes: Callable[[], NoteTable] = field(repr=False, compare=False)

    @cached_property
    def table(self) -> NoteTable:
        return self.notes()


# A model's memory of its training tunes (symbolic/memory.py) does not carry a run of this many tokens further
# when composing: past it the network goes on alone. Without the cap 2 of 100 folk-abc tunes shared 24 and 46
# notes in a row with a training tune (v9's network alone: 17 at most); with it, 17 at most.
MEMORY_MAX_RUN = 32

# With a sliding window (tokenizers with ``window``), the grammar's budget for a piece of known length:
# the tokenizer's ``tokens_per_bar`` (this many where it has none) or this many per second, beyond the prompt.
TOKENS_PER_BAR = 512
TOKENS_PER_SECOND = 256
KEY_CANDIDATES = 4   # samples per MIDI piece asked for in a key (one batch); the first heard in the key is kept


def slides(tokenizer) -> bool:
    """Whether ``tokenizer`` re-encodes a sequence shorter (``window``), so pieces may outgrow the context."""
    return callable(getattr(tokenizer, "window", None)) and bool(getattr(tokenizer, "slides", False))


def requested_bars(controls) -> int | None:
    """The bars ``controls`` ask for: ``bars``, or ``sections`` (n x bars each), or None."""
    bars, sections = getattr(controls, "bars", None), getattr(controls, "sections", None)
    if bars is None and sections:
        bars = sections[0] * sections[1]
    return None if bars is None else int(bars)


def token_budget(tokenizer, controls, max_tokens: int, *, prompt_tokens: int = 0) -> int:
    """The longest sequence the grammar plans for: ``max_tokens`` (the context, without a sliding
    window), or with one, enough for the requested bars or seconds after the prompt (at least ``max_tokens``;
    twice the context for a piece of free length)."""
    if not slides(tokenizer) or controls is None:
        return max_tokens
    bars, seconds = requested_bars(controls), getattr(controls, "seconds", None)
    need = prompt_tokens + 64
    if bars is not None:
        need += getattr(tokenizer, "tokens_per_bar", TOKENS_PER_BAR) * bars
    elif seconds is not None:
        need += int(TOKENS_PER_SECOND * float(seconds))
    else:
        need = max(need, 2 * max_tokens)
    return max(max_tokens, need)


def check_controls(tokenizer, controls=None, *, max_tokens: int) -> None:
    """Raise ValueError (one line) when ``controls`` cannot be met by the tokenizer's grammar."""
    tokenizer.grammar(controls, max_tokens=token_budget(tokenizer, controls, max_tokens))


def compose(model, tokenizer, *, n: int = 1, sampling: SamplingConfig | None = None, controls=None,
            prompt: list[int] | None = None, on_step: Callable[[int], None] | None = None) -> list[Composition]:
    """Sample ``n`` pieces under the tokenizer's grammar and decode them.

    Args:
        controls: the tokenizer's controls (``tokenizer.make_controls(...)``), None: all free.
        prompt: the start of every sample (e.g. from ``tokenizer.primer(path)``), replacing the
            grammar's own forced prefix. A primer the controls' grammar refuses is continued under
            ``tokenizer.primer_grammar`` when the tokenizer has one (ABC: syntax only).
        on_step: called with the number of new tokens so far.
    """
    sampling = sampling or SamplingConfig()
    context = context_of(model)
    max_tokens = token_budget(tokenizer, controls, min(sampling.max_tokens, context),
                              prompt_tokens=len(prompt or ()))
    wanted = getattr(controls, "written_key", None) if prompt is None else None
    per_piece = KEY_CANDIDATES if wanted else 1
    grammars = [tokenizer.grammar(controls, max_tokens=max_tokens) for _ in range(n * per_piece)]
    if prompt is None:
        prompt = list(grammars[0].forced_prefix_ids())   # the model samples the controls left free
    else:
        for grammar in grammars:   # the primer is taken as it is; the note rules hold after it
            grammar.free_tokens = len(prompt)
        grammars = _fitting(grammars, prompt, tokenizer, controls, max_tokens)
    window = None
    if slides(tokenizer):
        bars = requested_bars(controls)

        def window(seq: list[int]) -> list[int]:
            fed = tokenizer.window(seq, max_tokens=context // 2, bars=bars)
            if fed is None:
                raise ValueError(f"the piece cannot be cut to fit the model's context of {context} tokens")
            return fed
        sampling = replace(sampling, max_tokens=max_tokens)
    memory = getattr(model, "memory", None)   # the model folder's memory of its training tunes
    ids = sample(model, prompt=prompt, n=n * per_piece, config=sampling, grammars=grammars,
                 eos_id=tokenizer.eos_id, pad_id=tokenizer.pad_id, on_step=on_step, window=window,
                 mix=None if memory is None else [partial(memory.mix, max_run=MEMORY_MAX_RUN)] * (n * per_piece))
    pieces = [decode(tokenizer, seq, controls) for seq in ids]
    if per_piece == 1:
        return pieces
    return [in_key(pieces[i * per_piece:(i + 1) * per_piece], wanted) for i in range(n)]


def in_key(candidates: list[Composition], key: str) -> Composition:
    """The first of ``candidates`` whose notes are heard in ``key`` (e.g. ``"D minor"``), else the first."""
    from .midi_tokens import key_of

    return next((piece for piece in candidates if key_of(piece.table) == key), candidates[0])


def _fitting(grammars: list, prompt: list[int], tokenizer, controls, max_tokens: int) -> list:
    """Grammars that accept the primer's tokens. A real ABC primer may have irregular bars (a short bar
    before ``:|`` answering the pickup, a bar line missing): the tokenizer's primer grammar (syntax only) then
    takes the primer, and the bars after it hold to every rule again (:class:`symbolic.abc_grammar.PrimedGrammar`)
    where the primer ends at a bar line, or from its last bar line on where it stops inside a bar; else the
    whole tune goes on under the primer grammar. A primer with marks the primer grammar refuses (a tie between
    two notes, a slur closing inside a broken rhythm: see :meth:`symbolic.abc_grammar.AbcGrammar.read`) is
    read without them. Raises ValueError when nothing fits."""
    from .abc_grammar import AbcGrammar, PrimedGrammar

    try:
        _advance_all(grammars[0], prompt)
        return grammars
    except ValueError as exc:
        first = tokenizer.primer_grammar(controls, max_tokens=max_tokens)
        if first is None:
            raise ValueError(f"the primer does not fit the requested controls: {exc}") from None
    loose = [first, *(tokenizer.primer_grammar(controls, max_tokens=max_tokens) for _ in grammars[1:])]
    try:
        _advance_all(loose[0], prompt)
        refusal = None
    except ValueError as exc:   # marks the grammar would not write (a tie between two notes): read without them
        refusal = exc
    if isinstance(grammars[0], AbcGrammar):
        for primed in (PrimedGrammar, PrimedGrammar.mid_bar):   # at its end, or at its last bar line
            try:
                return [primed(strict, syntax, prompt) for strict, syntax in zip(grammars, loose, strict=True)]
            except ValueError:   # a tie across its end, a last bar the grammar does not write: syntax only
                pass
    if refusal is None:
        return loose
    try:
        return [PrimedGrammar.read(syntax, prompt) for syntax in loose]
    except ValueError as exc:   # what the tokens as given were refused for, or that no ending fits
        raise ValueError(f"the primer cannot be continued: {exc}") from None


def _advance_all(grammar, ids: list[int]):
    state = grammar.start()
    for token in ids:
        state = grammar.advance(state, token)
    return state


def decode(tokenizer, ids: list[int], controls=None) -> Composition:
    """A finished token sequence as a :class:`Composition` (text and notes for ABC, notes for MIDI).

    A tokenizer with ``finish(table, controls)`` (MIDI) gives the notes what the controls ask for
    that the tokens cannot say exactly (the tempo, the key signature, a primer's tracks)."""
    def notes() -> NoteTable:
        table = tokenizer.decode_notes(ids)
        finish = getattr(tokenizer, "finish", None)
        if finish is not None and controls is not None:
            table = finish(table, controls, ids)
        return table

    return Composition(ids, tokenizer.decode_text(ids), notes)
