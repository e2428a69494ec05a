"""``ostinato train quote``: fit an infill model's quote weights (:mod:`symbolic.quote`) on its training split.

    ostinato train quote --model chorale-midi --data music21:bach --instruments ensemble --expand-repeats --out m
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ostinato.events.errors import InputError

from .quote import BANDS, MAX_MATCH, QUOTE_FILE, QuoteWeights, fit_weights, mixture_bits


@dataclass(frozen=True)
class FitReport:
    """What :func:`train_quote` measured: the weights, the tokens per band, the pieces and spans scored, and
    the training spans' bits per token with the suffix in view, the model alone and with the quote."""

    weights: QuoteWeights
    counts: list[int]
    pieces: int
    spans: int
    tokens: int
    bits_model: float
    bits_quoted: float


def train_quote(model: str, data: str, out: str | Path, *, pieces: int = 200, spans: int = 4, seed: int = 0,
                instruments: str = "keep", expand_repeats: bool = False, command: str = "",
                progress: bool = False) -> FitReport:
    """Fit an infill model's quote weights on spans of the training split of ``data`` and write the model,
    with its ``quote.json`` and a section of its card, to the new folder ``out`` (the model's own folder is
    never written). ``pieces`` pieces at most (in the split's order), ``spans`` spans of 1-4 bars each,
    drawn with ``seed``; MIDI: ``instruments="ensemble"`` gives the parts an ensemble as ``train symbolic``
    does, ``expand_repeats`` plays the repeats out (as MIDI files of scores have them).

    Raises:
        InputError: no such model or data, or ``out`` is the model's folder or not empty.
        UsageError: the model was not trained to infill.
    """
    from tqdm import tqdm

    from ostinato.events.errors import UsageError
    from ostinato.events.instruments import assign_instruments
    from ostinato.events.sources import iter_items

    from .data import collection_of
    from .fim import bar_cuts, has_infill, is_abc_tokenizer, split_head
    from .infill import quote_observations, random_span
    from .model import check_new_folder, load_model_folder, write_derived_folder
    from .shipped import resolve_model

    folder = resolve_model(model)
    out = Path(out)
    check_new_folder(folder, out)
    loaded, tokenizer, _config = load_model_folder(folder, inference=True)
    if not has_infill(tokenizer):
        raise UsageError("train quote", f"the model {model} was not trained to infill (its tokenizer has no <fill> "
                                        f"tokens)")
    abc = is_abc_tokenizer(tokenizer)
    rng = np.random.default_rng(seed)
    observations: list[tuple[float, int, float]] = []
    n_pieces = n_spans = 0
    items = iter_items(data, split="train")
    bar = tqdm(total=pieces, desc="quote", unit="piece", disable=not progress, dynamic_ncols=True)
    for item in items:
        if n_pieces >= pieces:
            break
        try:
            if abc:
                piece = tokenizer.normalise(item.abc_text())
                style = None
            else:
                table = item.read(expand_repeats=expand_repeats)
                piece = assign_instruments(table, item.key) if instruments == "ensemble" else table
                style = collection_of(item.key) if collection_of(item.key) in getattr(tokenizer, "styles", ()) else None
            _head, body, _ = split_head(tokenizer, tokenizer.encode(piece) if abc else
                                        tokenizer.encode(piece, style=style))
            n_bars = len(bar_cuts(tokenizer, body)) - 1
        except Exception:   # a piece the model cannot take is no evidence either way
            continue
        if n_bars < 3:
            continue
        n_pieces += 1
        bar.update(1)
        for _ in range(spans):
            try:
                found = quote_observations(loaded, tokenizer, piece, random_span(n_bars, rng), style=style)
            except ValueError:
                continue
            n_spans += bool(found)
            observations.extend(found)
    bar.close()
    if not observations:
        raise InputError(data, "no piece of its training split could be scored (is it the model's kind of music?)")
    weights, counts = fit_weights(observations)
    model_bits, lengths, quoted = (np.array(column) for column in zip(*observations, strict=True))
    model_bits = -np.log2(model_bits)
    report = FitReport(weights, counts, n_pieces, n_spans, len(observations), float(model_bits.mean()),
                       float(mixture_bits(model_bits, lengths, quoted, weights).mean()))
    def fill(staging: Path) -> None:
        (staging / QUOTE_FILE).write_text(json.dumps(weights.to_json()) + "\n", encoding="utf-8")
        card = staging / "model_card.md"
        before = card.read_text(encoding="utf-8") if card.is_file() else f"# {folder.name}\n"
        card.write_text(before.rstrip("\n") + "\n\n" + card_section(report, command, data, expand_repeats),
                        encoding="utf-8")

    write_derived_folder(folder, out, fill)
    return report


def card_section(report: FitReport, command: str, data: str, expand_repeats: bool) -> str:
    """The model card's account of its quote weights."""
    bands = [f"{lo}-{hi - 1}" for lo, hi in zip(BANDS, [*BANDS[1:], MAX_MATCH + 1], strict=True)]
    rows = "\n".join(f"| {b} | {c:,} | {w:.3f} |" for b, c, w in zip(bands, report.counts, report.weights.weights,
                                                                      strict=True))
    gain = 100 * (1 - report.bits_quoted / report.bits_model)
    return (f"## Quotes (infilling)\n\n"
            f"An infill may quote the prefix and suffix shown to it (`symbolic/quote.py`): the weights in "
            f"`quote.json`, fitted on {report.spans:,} spans ({report.tokens:,} middle tokens) of {report.pieces} "
            f"pieces of the training split of {data}"
            f"{' (repeats played out)' if expand_repeats else ''}:\n\n"
            f"    {command or 'ostinato train quote'}\n\n"
            f"| match length (tokens) | middle tokens | weight |\n|---|---|---|\n{rows}\n\n"
            f"On those spans, with the suffix in view: {report.bits_model:.3f} bits per middle token, the model "
            f"alone; {report.bits_quoted:.3f} with the quotes ({gain:.1f}% lower).\n")
