"""The fill-in-the-middle training format (issue 20): its tokens, and pieces cut at bar lines.

A piece is cut at bar lines into prefix, middle and suffix and written in one of two orders (the
tokenizer's ``infill_order``, saved with it)::

    spm:  <bos> controls <fill> suffix <mid> prefix middle <endfill>     (what training writes now)
    psm:  <bos> controls prefix <fill> suffix <mid> middle <endfill>     (models trained before it)

In the suffix-prefix-middle order (Bavarian et al. 2022, "Efficient Training of Language Models to Fill
in the Middle") the middle continues the prefix exactly as in the left-to-right form, so what the model
knows about continuing a piece carries over, and the suffix is in view from the start.

``controls`` is the tokenizer's own control prefix (ABC: ``M: L: K: <bars:..>``; MIDI: ``Style Key Meter
Tempo Inst...``); ``prefix``, ``suffix`` and ``middle`` are body tokens as the left-to-right form has them.
The three markers are a block ``infill`` appended to the end of a vocabulary (:func:`add_infill_tokens`),
so every other id keeps its value: a model trained without them loads and composes exactly as before.
Models trained with ``span`` tokens (a block ``span`` after it: ``<span:1>`` .. ``<span:8>``, 8 standing
for 8 or more) have the middle's length in bars written just before the middle::

    spm + span:  <bos> controls <fill> suffix <mid> prefix <span:k> middle <endfill>

so the model knows where the middle begins and which of its bars leads into the suffix (a REMI ``Bar``
has no number: without it, a middle cannot tell its last bar from any other).
Cuts (:func:`bar_cuts`): ABC after a bar line and what belongs to it (touching bar lines, ``[1``/``[2``,
field changes); MIDI (REMI) before each ``Bar`` token. Imports nothing else of ``symbolic`` (the
tokenizers, the data and the trainer use it); sampling an infill is :mod:`symbolic.infill`.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["FIM_ORDER", "INFILL_TOKENS", "INTERIOR_SHARE", "MAX_TRAIN_SPAN", "SPAN_TOKENS", "FimParts",
           "add_infill_tokens", "bar_cuts", "context_weights", "fim_cut", "fim_example", "fim_order", "fim_prompt",
           "from_fim", "grow_embeddings", "has_infill", "has_span", "infill_ids", "infill_json", "load_infill",
           "parse_bars", "plain_json", "span_id", "split_bars", "split_head", "to_fim"]

INFILL_TOKENS = ("<fill>", "<mid>", "<endfill>")
MAX_TRAIN_SPAN = 8   # a training middle has 1..8 bars
INTERIOR_SHARE = 0.8   # training middles with a bar before and after them (when the sequence has 3+ bars)
SPAN_TOKENS = tuple(f"<span:{k}>" for k in range(1, MAX_TRAIN_SPAN + 1))   # the middle's bars (8: 8 or more)
FIM_ORDERS = ("spm", "psm")
FIM_ORDER = "spm"   # the order training writes; a saved tokenizer without ``infill_order`` is "psm"
# body tokens that belong to the bar line before them (ABC): bar lines, endings, field changes
GROUP_BLOCKS = ("bar", "ending", "meter", "unit", "key")


# ---------------------------------------------------------------------------- tokens
def has_infill(tokenizer) -> bool:
    """Whether ``tokenizer`` has the fill-in-the-middle tokens (a model trained with the format)."""
    return "infill" in tokenizer.blocks


def has_span(tokenizer) -> bool:
    """Whether ``tokenizer`` writes the middle's length in bars (``<span:k>``) before the middle."""
    return "span" in tokenizer.blocks


def add_infill_tokens(tokenizer, order: str = FIM_ORDER, *, span: bool = False):
    """Append ``<fill> <mid> <endfill>`` (block ``infill``) to ``tokenizer``'s vocabulary, in place, and set
    its ``infill_order``; with ``span``, also ``<span:1>`` .. ``<span:8>`` (block ``span``) after them.
    Returns the tokenizer.

    Every existing id keeps its value; a tokenizer that has the tokens already keeps them (and takes
    ``order``: a model fine-tuned with ``--infill-share`` learns the order training writes)."""
    if order not in FIM_ORDERS:
        raise ValueError(f"infill_order: expected one of {', '.join(FIM_ORDERS)}, got {order!r}")
    tokenizer.infill_order = order
    if not has_infill(tokenizer):
        _append_block(tokenizer, "infill", INFILL_TOKENS)
    if span and not has_span(tokenizer):
        _append_block(tokenizer, "span", SPAN_TOKENS)
    return tokenizer


def _append_block(tokenizer, name: str, tokens: Sequence[str]) -> None:
    start = len(tokenizer.vocab)
    tokenizer.vocab.extend(tokens)
    tokenizer.blocks[name] = (start, start + len(tokens))
    for i, token in enumerate(tokens):
        tokenizer.token_to_id[token] = start + i


def span_id(tokenizer, n_bars: int) -> int:
    """The id of ``<span:k>`` for a middle of ``n_bars`` bars (``<span:8>`` for 8 or more)."""
    if n_bars < 1:
        raise ValueError(f"a middle has at least one bar, got {n_bars}")
    return tokenizer.blocks["span"][0] + min(n_bars, MAX_TRAIN_SPAN) - 1


def infill_ids(tokenizer) -> tuple[int, int, int]:
    """The ids of ``<fill>``, ``<mid>``, ``<endfill>``; ValueError when the tokenizer has none."""
    if not has_infill(tokenizer):
        raise ValueError("this tokenizer has no infill tokens (train with --infill-share)")
    start = tokenizer.blocks["infill"][0]
    return start, start + 1, start + 2


def fim_order(tokenizer) -> str:
    """The order of ``tokenizer``'s fill-in-the-middle form: ``"spm"`` or ``"psm"``."""
    return getattr(tokenizer, "infill_order", "psm")


def infill_json(tokenizer) -> dict:
    """What a tokenizer's ``to_json`` adds for the infill tokens: ``{"infill_order": ...}``, or ``{}``."""
    return {"infill_order": fim_order(tokenizer)} if has_infill(tokenizer) else {}


def load_infill(tokenizer, data: dict):
    """Add the infill tokens to a tokenizer loaded from ``data`` (a ``to_json`` dict) when it had them, in
    the order it saved (none saved: ``"psm"``, the first models'); returns the tokenizer. ValueError
    for an unknown order."""
    if isinstance(data.get("blocks"), dict) and "infill" in data["blocks"]:
        add_infill_tokens(tokenizer, data.get("infill_order", "psm"), span="span" in data["blocks"])
    return tokenizer


def plain_json(tokenizer) -> dict:
    """``tokenizer.to_json()`` without the infill tokens: what the left-to-right tokens depend on."""
    data = tokenizer.to_json()
    if not has_infill(tokenizer):
        return data
    data = dict(data)
    data.pop("infill_order", None)
    added = len(INFILL_TOKENS) + (len(SPAN_TOKENS) if has_span(tokenizer) else 0)
    data["blocks"] = {k: v for k, v in data["blocks"].items() if k not in ("infill", "span")}
    if "vocab" in data:
        data["vocab"] = data["vocab"][:-added]
    if "vocab_size" in data:
        data["vocab_size"] -= added
    return data


def grow_embeddings(model, size: int, *, seed: int = 0):
    """Resize ``model``'s token embeddings (and output layer) to ``size`` rows, in place; the new rows
    start at the mean of the old ones plus a little noise (seeded), so a fine-tuned model begins where
    it was. Returns the model; one with ``size`` rows already is unchanged."""
    import torch

    old = model.get_input_embeddings().weight
    n_old = int(old.shape[0])
    if n_old >= size:
        return model
    mean_in = old.detach().float().mean(0)
    out_layer = model.get_output_embeddings()
    tied = out_layer is None or out_layer.weight is old
    mean_out = None if tied else out_layer.weight.detach().float().mean(0)
    model.resize_token_embeddings(size)
    generator = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        weight = model.get_input_embeddings().weight
        noise = torch.randn(size - n_old, weight.shape[1], generator=generator) * 0.02
        weight[n_old:] = (mean_in + noise).to(weight.dtype)
        if not tied:
            out = model.get_output_embeddings().weight
            out[n_old:] = mean_out.to(out.dtype)
    model.config.vocab_size = size
    return model


# ---------------------------------------------------------------------------- cutting at bar lines
def token_kinds(tokenizer) -> list[str]:
    kind = [""] * len(tokenizer.vocab)
    for name, (start, stop) in tokenizer.blocks.items():
        kind[start:stop] = [name] * (stop - start)
    return kind


def is_abc_tokenizer(tokenizer) -> bool:
    return tokenizer.kind == "abc"


def split_head(tokenizer, ids: Sequence[int]) -> tuple[list[int], list[int], bool]:
    """``(head, body, ended)``: the control prefix (``<bos>`` included), the body tokens, and whether
    ``ids`` ended with ``<eos>`` (dropped from the body)."""
    ids = [int(i) for i in ids]
    ended = bool(ids) and ids[-1] == tokenizer.eos_id
    if ended:
        ids = ids[:-1]
    if is_abc_tokenizer(tokenizer):
        n = 5   # <bos> M: L: K: <bars:..>
    else:
        off = tokenizer.events_offset
        n = next((k for k, i in enumerate(ids) if i >= off), len(ids))
    return ids[:n], ids[n:], ended


def bar_cuts(tokenizer, body: Sequence[int]) -> list[int]:
    """Where the bars of ``body`` begin: ``cuts[i]`` is the index of bar ``i + 1``'s first token, and a
    last entry where the bar after the last closed one would begin.

    ABC: ``cuts[0]`` follows a leading bar line group; ``cuts[i]`` (i >= 1) follows the bar line group
    closing bar ``i`` (a bar: a segment with a note or rest, as :func:`symbolic.abc_tokens.count_bars`
    counts). A last bar with no closing bar line is not closed (it stays in the suffix).
    MIDI (REMI): the ``Bar`` tokens, then ``len(body)``.
    """
    body = [int(i) for i in body]
    if not is_abc_tokenizer(tokenizer):
        if tokenizer.scheme != "remi":
            raise ValueError(f"infilling cuts MIDI tokens at Bar tokens: the {tokenizer.scheme} scheme has none "
                             f"(use a REMI model)")
        bar = tokenizer.token_to_id["Bar_None"]
        return [k for k, i in enumerate(body) if i == bar] + [len(body)]
    kind = token_kinds(tokenizer)
    n, i = len(body), 0
    while i < n and kind[body[i]] in GROUP_BLOCKS:
        i += 1
    cuts, content = [i], False
    while i < n:
        k = kind[body[i]]
        if k == "bar":
            j = i
            while j < n and kind[body[j]] in GROUP_BLOCKS:
                j += 1
            if content:
                cuts.append(j)
                content = False
            i = j
            continue
        if k in ("pitch", "rest"):
            content = True
        i += 1
    return cuts


def n_closed_bars(tokenizer, body: Sequence[int]) -> int:
    """Bars of ``body`` a span may cover (ABC: closed by a bar line; MIDI: every bar)."""
    cuts = bar_cuts(tokenizer, body)
    return len(cuts) - 1


@dataclass(frozen=True)
class FimParts:
    """A token sequence cut at bar lines: ``head + prefix + middle + suffix`` (+ ``<eos>`` if ``ended``)."""

    head: list[int]
    prefix: list[int]
    middle: list[int]
    suffix: list[int]
    ended: bool

    def joined(self, eos_id: int) -> list[int]:
        """The left-to-right sequence."""
        return [*self.head, *self.prefix, *self.middle, *self.suffix, *([eos_id] if self.ended else [])]


def split_bars(tokenizer, ids: Sequence[int], first: int, last: int) -> FimParts:
    """Cut ``ids`` (a left-to-right sequence) around bars ``first..last`` (1-based, inclusive, closed bars)."""
    head, body, ended = split_head(tokenizer, ids)
    cuts = bar_cuts(tokenizer, body)
    if not 1 <= first <= last <= len(cuts) - 1:
        raise ValueError(f"bars {first}-{last}: the piece has bars 1-{len(cuts) - 1}")
    a, b = cuts[first - 1], cuts[last]
    return FimParts(head, body[:a], body[a:b], body[b:], ended)


def fim_prompt(tokenizer, head: Sequence[int], prefix: Sequence[int], suffix: Sequence[int],
               n_bars: int | None = None) -> list[int]:
    """What comes before the middle, in the tokenizer's order: ``head <fill> suffix <mid> prefix`` (spm)
    or ``head prefix <fill> suffix <mid>`` (psm), then ``<span:n_bars>`` when the tokenizer has span
    tokens (``n_bars``, the middle's bars, is then required)."""
    fill, mid, _end = infill_ids(tokenizer)
    if fim_order(tokenizer) == "spm":
        out = [*head, fill, *suffix, mid, *prefix]
    else:
        out = [*head, *prefix, fill, *suffix, mid]
    if has_span(tokenizer):
        if n_bars is None:
            raise ValueError("this model writes the middle's bars before it: give n_bars")
        out.append(span_id(tokenizer, n_bars))
    return out


def to_fim(tokenizer, parts: FimParts) -> list[int]:
    """The fill-in-the-middle sequence: :func:`fim_prompt`, the middle, ``<endfill>``."""
    n_bars = n_closed_bars(tokenizer, parts.middle) if has_span(tokenizer) else None
    return [*fim_prompt(tokenizer, parts.head, parts.prefix, parts.suffix, n_bars), *parts.middle,
            infill_ids(tokenizer)[2]]


def from_fim(tokenizer, ids: Sequence[int], *, ended: bool = True, n_middle: int | None = None) -> FimParts:
    """The parts of a fill-in-the-middle sequence (what :func:`to_fim` wrote); ValueError if it is not one.

    In the spm order the prefix runs into the middle with no marker between: give ``n_middle``, the
    middle's length in tokens (ValueError without it)."""
    fill, mid, end = infill_ids(tokenizer)
    spm = fim_order(tokenizer) == "spm"
    ids = [int(i) for i in ids]
    if has_span(tokenizer):   # <span:k> marks where the middle begins
        low, high = tokenizer.blocks["span"]
        at = next((k for k, i in enumerate(ids) if low <= i < high), None)
        if at is None or fill not in ids or mid not in ids or not ids.index(fill) < ids.index(mid) < at:
            raise ValueError("not a fill-in-the-middle sequence (no <fill>, <mid> and <span:..> in order)")
        e = ids.index(end) if end in ids else len(ids)
        n_middle = e - at - 1
        ids = ids[:at] + ids[at + 1:]
    if spm and n_middle is None:
        raise ValueError("an spm fill-in-the-middle sequence needs n_middle: the prefix runs into the middle")
    try:
        f, m = ids.index(fill), ids.index(mid)
        e = ids.index(end) if end in ids else len(ids)
    except ValueError:
        raise ValueError("not a fill-in-the-middle sequence (no <fill> or <mid>)") from None
    if not f < m <= e - (n_middle if spm else 0):
        raise ValueError("not a fill-in-the-middle sequence (<fill>, <mid>, <endfill> out of order)")
    if spm:   # head <fill> suffix <mid> prefix middle
        return FimParts(ids[:f], ids[m + 1:e - n_middle], ids[e - n_middle:e], ids[f + 1:m], ended)
    head, prefix, _ = split_head(tokenizer, ids[:f])   # head prefix <fill> suffix <mid> middle
    return FimParts(head, prefix, ids[m + 1:e], ids[f + 1:m], ended)



def context_weights(tokenizer, batch: np.ndarray, weight: float) -> np.ndarray:
    """Loss weights of the targets of ``batch`` (int [b, T+1] windows that each begin at a sequence's
    ``<bos>``, as the trainer draws them): float32 [b, T], ``weight`` for the tokens of a fill-in-the-middle
    sequence after ``<fill>`` up to its middle (spm: the suffix, ``<mid>``, the prefix and ``<span:k>``; psm:
    the suffix and ``<mid>``), 1 for the rest (its controls, its middle and ``<endfill>``, every
    left-to-right sequence).

    With ``weight`` < 1 the infill sequences train the middle, which alone uses the suffix, more than
    the ordinary continuation their context is. The middle begins after ``<span:k>`` (or, in the psm
    order, after ``<mid>``); ValueError for an spm tokenizer without span tokens (its middle has no marker)."""
    batch = np.asarray(batch)
    fill, mid, end = infill_ids(tokenizer)
    if has_span(tokenizer):
        low, high = tokenizer.blocks["span"]
        starts = (batch >= low) & (batch < high)
    elif fim_order(tokenizer) == "psm":
        starts = batch == mid
    else:
        raise ValueError("an spm tokenizer without span tokens has no marker where the middle begins")
    code = np.zeros(batch.shape, np.int8)   # what a token begins: 1 full weight, 2 the infill context
    code[starts | (batch == end) | (batch == tokenizer.bos_id)] = 1
    code[batch == fill] = 2
    at = np.where(code > 0, np.arange(batch.shape[1]), -1)
    last = np.maximum.accumulate(at, axis=1)   # the last marker up to each position
    state = np.where(last >= 0, np.take_along_axis(code, np.maximum(last, 0), axis=1), 1)
    return np.where(state[:, :-1] == 2, np.float32(weight), np.float32(1)).astype(np.float32)


def fim_example(tokenizer, ids: Sequence[int], rng: np.random.Generator, *,
                max_tokens: int | None = None) -> list[int] | None:
    """A random fill-in-the-middle form of the sequence ``ids`` (:func:`fim_cut`), or None when it has no
    closed bar."""
    parts = fim_cut(tokenizer, ids, rng, max_tokens=max_tokens)
    return None if parts is None else to_fim(tokenizer, parts)


def fim_cut(tokenizer, ids: Sequence[int], rng: np.random.Generator, *,
            max_tokens: int | None = None) -> FimParts | None:
    """``ids`` cut around a random middle of 1..8 closed bars, or None when it has no closed bar.

    In a sequence of 3 or more bars, ``INTERIOR_SHARE`` of the middles have at least a bar before and a
    bar after them, as an infill inside a piece has: a middle drawn anywhere in a window of ~5 bars
    (a REMI chorale window) has no suffix half the time, and a model trained so learns little from one.

    With ``max_tokens``, the fill-in-the-middle form of the cut is at most that long: the prefix's first
    bars are left out, then the suffix's last bars (as sampling shows a long piece's neighbourhood of the
    span); None when the middle alone does not fit."""
    head, body, ended = split_head(tokenizer, ids)
    try:
        cuts = bar_cuts(tokenizer, body)
    except ValueError:
        return None
    n = len(cuts) - 1
    if n < 1 or not head:
        return None
    if n >= 3 and rng.random() < INTERIOR_SHARE:   # inside the piece: a bar of prefix and of suffix at least
        k = int(rng.integers(1, min(MAX_TRAIN_SPAN, n - 2) + 1))
        first = int(rng.integers(2, n - k + 1))
    else:   # anywhere: the piece's first bars, or its last (an infill that extends a piece has no suffix)
        k = int(rng.integers(1, min(MAX_TRAIN_SPAN, n) + 1))
        first = int(rng.integers(1, n - k + 2))
    a, b = cuts[first - 1], cuts[first - 1 + k]
    parts = FimParts(head, body[:a], body[a:b], body[b:], ended)
    if max_tokens is not None:
        max_tokens -= int(has_span(tokenizer))   # the <span:k> token
    if max_tokens is None or fim_length(parts) <= max_tokens:
        return parts
    for c in cuts[:first]:   # the prefix from a later bar
        parts = FimParts(head, body[c:a], body[a:b], body[b:], ended)
        if fim_length(parts) <= max_tokens:
            return parts
    for c in reversed(cuts[first - 1 + k:]):   # no prefix, and the suffix up to an earlier bar
        parts = FimParts(head, [], body[a:b], body[b:c], False)
        if fim_length(parts) <= max_tokens:
            return parts
    return None


def fim_length(parts: FimParts) -> int:
    """The length of :func:`to_fim` ``(parts)``: the head, the three markers and the body tokens (and a
    ``<span:k>`` more with span tokens)."""
    return len(parts.head) + len(parts.prefix) + len(parts.middle) + len(parts.suffix) + len(INFILL_TOKENS)


def parse_bars(text: str) -> tuple[int, int]:
    """``"5-8"`` -> (5, 8), ``"5"`` -> (5, 5); ValueError for anything else."""
    try:
        first, _, last = str(text).partition("-")
        span = (int(first), int(last or first))
    except ValueError:
        raise ValueError(f"--infill: expected bars as FIRST-LAST such as 5-8, got {text!r}") from None
    if not 1 <= span[0] <= span[1]:
        raise ValueError(f"--infill: expected 1 <= FIRST <= LAST, got {text!r}")
    return span
