"""Composing: controls and an optional primer in, valid pieces out (ABC text or note tables).

    controls = tokenizer.make_controls(meter="6/8", key="G", bars=16)   # AbcControls or MidiControls
    pieces = compose(model, tokenizer, n=4, sampling=SamplingConfig(seed=1), controls=controls)
    controls, prompt = tokenizer.primer("tune.abc", bars=8)             # continue a piece instead
    pieces = compose(model, tokenizer, n=4, controls=controls, prompt=prompt)

Any :class:`symbolic.tokenizers.Tokenizer` works: its grammar (``tokenizer.grammar(controls)``,
:mod:`symbolic.abc_grammar` or :mod:`symbolic.midi_grammar`) masks every token that would make a
piece invalid, and enforces the controls it can (key, meter, unit length, bars; instruments, tempo,
length). The primer's tokens are the start of every sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

from ostinato.events import NoteTable

from .abc_tokens import AbcControls
from .midi_tokens import MidiControls
from .sample import SamplingConfig, context_of, sample

__all__ = ["AbcControls", "Composition", "MidiControls", "check_controls", "compose", "decode"]


@dataclass(frozen=True)
class Composition:
    """One composed piece: its tokens, the ABC text (ABC models) and the notes."""

    ids: list[int]
    text: str | None
    table: NoteTable


def check_controls(tokenizer, controls=None, *, max_tokens: int) -> None:
    """Raise ValueError (one line) when ``controls`` cannot be met by the tokenizer's grammar."""
    tokenizer.grammar(controls, max_tokens=max_tokens)


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
    max_tokens = min(sampling.max_tokens, context_of(model))
    grammars = [tokenizer.grammar(controls, max_tokens=max_tokens) for _ in range(n)]
    if prompt is None:
        prompt = list(grammars[0].prefix_ids())
    else:
        grammars = _fitting(grammars, prompt, tokenizer, controls, max_tokens)
    ids = sample(model, prompt=prompt, n=n, config=sampling, grammars=grammars, eos_id=tokenizer.eos_id,
                 pad_id=tokenizer.pad_id, on_step=on_step)
    return [decode(tokenizer, seq) for seq in ids]


def _fitting(grammars: list, prompt: list[int], tokenizer, controls, max_tokens: int) -> list:
    """Grammars that accept the primer's tokens: a real ABC primer may have irregular bars, so
    its tune is then continued under the tokenizer's primer grammar. Raises ValueError when nothing fits."""
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
    except ValueError as exc:
        raise ValueError(f"the primer cannot be continued: {exc}") from None
    return loose


def _advance_all(grammar, ids: list[int]):
    state = grammar.start()
    for token in ids:
        state = grammar.advance(state, token)
    return state


def decode(tokenizer, ids: list[int]) -> Composition:
    """A finished token sequence as a :class:`Composition` (text and notes for ABC, notes for MIDI)."""
    return Composition(ids, tokenizer.decode_text(ids), tokenizer.decode_notes(ids))
