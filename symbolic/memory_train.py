"""``ostinato train memory``: give an ABC model a memory of its training tunes (:mod:`symbolic.memory`).

    ostinato train memory --model runs/folk --data music21:abc-folk --out runs/folk-memory

The memory holds the training split of ``--data`` (less the collections the model was trained
without, its ``metrics.json`` ``left_out``); its weights are fitted by EM on the held-out split's
likelihood, and, as ``train calibrate`` does, the card gives the held-out figure cross-fitted too:
each half of the tunes scored with the weights fitted on the other half. The model's ``metrics.json``
``heldout`` figures (and its card's table of them) become the mixture's when they are of the same tokens.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ostinato.events.errors import InputError


@dataclass(frozen=True)
class MemoryFit:
    """What :func:`train_memory` measured (held-out bits per token: the model alone, with the memory fitted on
    all the held-out tunes, and cross-fitted), and the memory's size."""

    bits_model: float
    bits_memory: float
    bits_crossfit: float
    n_tokens: int
    n_units: int
    n_pieces: int
    memory_tunes: int
    memory_tokens: int
    letters: int

    def per_unit(self, bits_per_token: float) -> float:
        return bits_per_token * self.n_tokens / max(self.n_units, 1)

    def to_json(self) -> dict:
        return {"n_tokens": self.n_tokens, "n_chars": self.n_units, "n_pieces": self.n_pieces,
                "memory_tunes": self.memory_tunes, "memory_tokens": self.memory_tokens, "letters": self.letters,
                **{f"bits_per_{what}_{when}": value
                   for when, bits in (("model", self.bits_model), ("memory", self.bits_memory),
                                      ("crossfit", self.bits_crossfit))
                   for what, value in (("token", bits), ("char", self.per_unit(bits)))}}


def held_out_terms(model, memory, pieces, *, context: int, progress=None) -> tuple[np.ndarray, ...]:
    """Per held-out token (pieces in order): the model's probability, the run length, its count, the memory's
    probability, and the piece's index."""
    from .train import piece_log_probs

    rows = []
    for index, piece in enumerate(pieces):
        positions, log_probs = piece_log_probs(model, piece.ids, context)
        ids = np.asarray(piece.ids, np.int64)
        rows.extend((*term, index) for term in memory.terms(ids, log_probs.double().numpy(), positions))
        if progress is not None:
            progress(index + 1, len(pieces))
    return tuple(np.array(column) for column in zip(*rows, strict=True))


def train_memory(model: str, data: str, out: str | Path, *, command: str = "", quiet: bool = True) -> MemoryFit:
    """Build ``model``'s memory from the training split of ``data``, fit its weights on the held-out split, and
    write the model with them to the new folder ``out`` (the model's own folder is never written).

    Raises:
        InputError: no such model or data, ``out`` is the model's folder or not empty, or no piece to hold.
        UsageError: the model is not an ABC model.
    """
    from ostinato.events.console import progress
    from ostinato.events.errors import UsageError
    from ostinato.events.sources import iter_items

    from .calibrate import table_figures, with_section
    from .data import collection_of, tokenize_items
    from .fim import is_abc_tokenizer
    from .memory import (
        MEMORY_TENSORS,
        MEMORY_WEIGHTS,
        DegreeCode,
        Memory,
        build_alphabet,
        encode_stream,
        fit_weights,
        mixture_bits,
        save_memory,
    )
    from .model import check_new_folder, load_model_folder, read_model_config, write_derived_folder
    from .shipped import resolve_model

    folder = resolve_model(model)
    out = Path(out)
    check_new_folder(folder, out)
    config = read_model_config(folder)
    loaded, tokenizer, _ = load_model_folder(folder, inference=True)
    if not is_abc_tokenizer(tokenizer):
        raise UsageError("train memory", f"the model {model} is not an ABC model (the memory reads scale degrees)")
    metrics_path = folder / "metrics.json"
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    except ValueError as exc:
        raise InputError(metrics_path, f"not JSON: {exc}") from None
    left_out = set(metrics.get("left_out") or ())

    def tokenized(split: str):
        items = [item for item in iter_items(data, split=split) if collection_of(item.key) not in left_out]
        found = tokenize_items(items, tokenizer, max_tokens=config.context, instruments="keep",
                               expand_repeats=False,
                               progress=lambda results: progress(results, desc=f"tokenize {split}", quiet=quiet))
        return [*found.train, *found.test]

    train, test = tokenized("train"), tokenized("test")
    if not train or not test:
        raise InputError(data, f"no {'training' if not train else 'held-out'} tune the model's tokenizer takes")
    code = DegreeCode(tokenizer)
    train_ids = [piece.ids for piece in train]
    alphabet = build_alphabet(code, train_ids)
    stream = encode_stream(code, alphabet, train_ids)
    memory = Memory(tokenizer, alphabet, stream, None)
    with progress(desc="score", unit="tune", quiet=quiet) as bar:
        def advance(done: int, total: int) -> None:
            bar.total = total
            bar.update(done - bar.n)
        p, orders, counts, q, index = held_out_terms(loaded, memory, test, context=config.context, progress=advance)
    weights = fit_weights(p, orders, counts, q)
    folds = index % 2 == 0
    fold_weights = [fit_weights(p[m], orders[m], counts[m], q[m]) for m in (folds, ~folds)]
    crossfit = (mixture_bits(p[~folds], orders[~folds], counts[~folds], q[~folds], fold_weights[0]).sum()
                + mixture_bits(p[folds], orders[folds], counts[folds], q[folds], fold_weights[1]).sum())
    n = len(p)
    fit = MemoryFit(bits_model=float(-np.log2(p).mean()),
                    bits_memory=float(mixture_bits(p, orders, counts, q, weights).mean()),
                    bits_crossfit=float(crossfit / n), n_tokens=n, n_units=sum(piece.n_units for piece in test),
                    n_pieces=len(test), memory_tunes=len(train), memory_tokens=int(sum(len(i) for i in train_ids)),
                    letters=len(alphabet))
    record = {**fit.to_json(), "data": data, "command": command}

    def fill(staging: Path) -> None:
        save_memory(staging, alphabet, stream, weights)
        heldout = metrics.get("heldout")
        if heldout and heldout.get("n_tokens") == fit.n_tokens:   # the same tokens: the figures are the mixture's now
            heldout = {**heldout, "bits_per_token": fit.bits_memory, "bits_per_char": fit.per_unit(fit.bits_memory)}
        else:
            heldout = None
        new_metrics = {**metrics, "memory": record, **({"heldout": heldout} if heldout else {})}
        (staging / "metrics.json").write_text(json.dumps(new_metrics, indent=2) + "\n", encoding="utf-8")
        card = staging / "model_card.md"
        before = card.read_text(encoding="utf-8") if card.is_file() else f"# {folder.name}\n"
        if heldout:
            before = table_figures(before, heldout)
        card.write_text(with_section(before, card_section(fit, record), SECTION), encoding="utf-8")

    write_derived_folder(folder, out, fill, replaced=("metrics.json", MEMORY_TENSORS, MEMORY_WEIGHTS))
    return fit


SECTION = "## Memory"


def card_section(fit: MemoryFit, record: dict) -> str:
    """The model card's account of its memory."""
    rows = "\n".join(f"| {label} | {fit.per_unit(bits):.4f} | {bits:.4f} |"
                     for label, bits in (("the model alone", fit.bits_model),
                                         ("with the memory", fit.bits_memory),
                                         ("with the memory, cross-fitted (each half at the other half's weights)",
                                          fit.bits_crossfit)))
    gain = 100 * (1 - fit.bits_crossfit / fit.bits_model) if fit.bits_model else math.nan
    return (f"{SECTION}\n\n"
            f"The model recalls its training tunes (`symbolic/memory.py`): {fit.memory_tunes:,} tunes of the "
            f"training split of {record['data']} ({fit.memory_tokens:,} tokens, read as scale degrees in "
            f"{fit.letters} letters), mixed into its next-token distribution with weights fitted on the held-out "
            f"split ({fit.n_pieces} tunes, {fit.n_tokens:,} tokens):\n\n"
            f"    {record['command'] or 'ostinato train memory'}\n\n"
            f"| held-out {record['data']} | bits per character | bits per token |\n|---|---|---|\n{rows}\n\n"
            f"Cross-fitted, the memory takes {gain:.1f}% off the model's held-out bits. `compose` and "
            f"`evaluate nll` use it.\n")
