"""Composing: controls and an optional primer in, valid pieces out (ABC text or note tables).

    pieces = compose(model, tokenizer, ComposeRequest(n=4, abc=AbcControls(meter="6/8", bars=16)),
                     sampling=SamplingConfig(seed=1))

The grammar of the tokenizer (``symbolic.abc_grammar`` or ``symbolic.midi_grammar``) masks every
token that would make a piece invalid, and enforces the controls it can (key, meter, unit length,
bars; instruments, tempo, length). The primer's tokens are the start of every sample.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from ostinato.events import NoteTable

from .midi_tokens import Controls
from .sample import SamplingConfig, context_of, sample


@dataclass(frozen=True)
class AbcControls:
    """Controls of an ABC tune (None: the model chooses). ``key`` as in ABC (``"G"``, ``"Ador"``)."""

    key: str | None = None
    meter: str | None = None
    unit: str | None = None
    bars: int | None = None
    sections: tuple[int, int] | None = None   # (sections, bars per section)


@dataclass(frozen=True)
class MidiControls:
    """Controls of a MIDI piece: the control prefix plus its length in bars or seconds."""

    controls: Controls = field(default_factory=Controls)
    bars: int | None = None
    seconds: float | None = None


@dataclass(frozen=True)
class Composition:
    """One composed piece: its tokens, the ABC text (ABC models) and the notes."""

    ids: list[int]
    text: str | None
    table: NoteTable


def abc_grammar(tokenizer, controls: AbcControls, max_tokens: int, *, strict_bars: bool = True):
    from .abc_grammar import AbcGrammar

    return AbcGrammar(tokenizer, meter=controls.meter, unit=controls.unit, key=controls.key, bars=controls.bars,
                      sections=controls.sections, max_tokens=max_tokens, strict_bars=strict_bars)


def midi_grammar(tokenizer, controls: MidiControls, max_tokens: int):
    from .midi_grammar import MidiGrammar

    return MidiGrammar(tokenizer, controls=controls.controls, bars=controls.bars, seconds=controls.seconds,
                       max_tokens=max_tokens)


def check_controls(tokenizer, *, abc: AbcControls | None = None, midi: MidiControls | None = None,
                   max_tokens: int) -> None:
    """Raise ValueError (one line) when the controls cannot be met by this tokenizer's grammar."""
    if tokenizer.kind == "abc":
        abc_grammar(tokenizer, abc or AbcControls(), max_tokens)
    else:
        midi_grammar(tokenizer, midi or MidiControls(), max_tokens)


def compose(model, tokenizer, *, n: int = 1, sampling: SamplingConfig | None = None,
            abc: AbcControls | None = None, midi: MidiControls | None = None, prompt: list[int] | None = None,
            on_step: Callable[[int], None] | None = None) -> list[Composition]:
    """Sample ``n`` pieces under the tokenizer's grammar and decode them.

    ``prompt`` (e.g. from :func:`primer_prompt`) replaces the grammar's own forced prefix.
    """
    sampling = sampling or SamplingConfig()
    max_tokens = min(sampling.max_tokens, context_of(model))
    if tokenizer.kind == "abc":
        grammars = [abc_grammar(tokenizer, abc or AbcControls(), max_tokens) for _ in range(n)]
    else:
        grammars = [midi_grammar(tokenizer, midi or MidiControls(), max_tokens) for _ in range(n)]
    if prompt is None:
        prompt = list(grammars[0].prefix_ids())
    else:
        grammars = _fitting(grammars, prompt, tokenizer, abc, max_tokens)
    ids = sample(model, prompt=prompt, n=n, config=sampling, grammars=grammars, eos_id=tokenizer.eos_id,
                 pad_id=tokenizer.pad_id, on_step=on_step)
    return [decode(tokenizer, seq) for seq in ids]


def _fitting(grammars: list, prompt: list[int], tokenizer, abc: AbcControls | None, max_tokens: int) -> list:
    """Grammars that accept the primer's tokens: a real ABC primer may have irregular bars, so
    its tune is then continued with syntax rules only. Raises ValueError when nothing fits."""
    try:
        _advance_all(grammars[0], prompt)
        return grammars
    except ValueError as exc:
        if tokenizer.kind != "abc":
            raise ValueError(f"the primer does not fit the requested controls: {exc}") from None
    loose = [abc_grammar(tokenizer, abc or AbcControls(), max_tokens, strict_bars=False) for _ in grammars]
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
    if tokenizer.kind == "abc":
        from ostinato.events.abc_read import AbcTune, parse_tune

        text = tokenizer.decode(ids)
        return Composition(ids, text, parse_tune(AbcTune(1, text), "composed.abc"))
    return Composition(ids, None, tokenizer.decode(ids))

