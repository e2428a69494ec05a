"""``ostinato train calibrate``: fit a model's logit temperature on held-out music and bake it into its weights.

    ostinato train calibrate --model runs/folk --data music21:abc-folk --out runs/folk-calibrated

A model trained to the end on a small corpus is overconfident on music it has not seen: its
next-token distributions are sharper than its errors warrant (folk-abc's were by about 15%).
One temperature ``T`` for the logits (``softmax(logits / T)``; Guo et al. 2017, "On calibration of
modern neural networks") is fitted by maximum likelihood on the held-out split of ``--data``,
never trained on, less the collections the model was trained without (its ``metrics.json``
``left_out``, music kept for measuring it). The negative log-likelihood is convex in ``1 / T``, so
Newton's method finds the optimum exactly in a few steps.

``T`` is then baked into the weights: the final layer norm's weight and bias (GPT-2; Llama's
RMSNorm has a weight only) are divided by it, and the logits, a linear map of that norm's output,
are divided with them. The new folder is an ordinary model folder (every tool reads it as before),
its ``metrics.json`` holds the temperature with the figures before and after, and its card says
how it was fitted. Because the temperature is fitted on the held-out split that the card's
held-out figure is also measured on, the card gives the figure cross-fitted as well: each half of
the pieces scored with the temperature fitted on the other half, an estimate that never scores a
piece with a temperature it helped choose.

Sampling: ``compose --temperature t`` divides the calibrated logits by ``t``, so ``t = 1`` samples the
calibrated distribution.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path

from ostinato.events.errors import InputError

FINAL_NORMS = {"gpt2": ("transformer.ln_f.weight", "transformer.ln_f.bias"), "llama": ("model.norm.weight",)}
BETA_RANGE = (0.1, 10.0)   # 1 / T: a fit outside it is a model or data problem, not a calibration


@dataclass(frozen=True)
class Calibration:
    """What :func:`calibrate` fitted and measured (bits per token and per unit: character or note).

    Attributes:
        temperature: the fitted ``T`` (the logits are divided by it).
        bits_before, bits_after: bits per token of the calibration tokens at ``T = 1`` and at the fitted ``T``.
        bits_crossfit: each half of the pieces scored at the ``T`` fitted on the other half.
        fold_temperatures: the two halves' ``T``.
        n_tokens, n_units, n_pieces: what was scored; ``unit``: ``"char"`` or ``"note"``.
    """

    temperature: float
    bits_before: float
    bits_after: float
    bits_crossfit: float
    fold_temperatures: tuple[float, float]
    n_tokens: int
    n_units: int
    n_pieces: int
    unit: str

    def per_unit(self, bits_per_token: float) -> float:
        return bits_per_token * self.n_tokens / max(self.n_units, 1)

    def to_json(self) -> dict:
        name = "char" if self.unit == "char" else "note"
        return {"temperature": self.temperature, "fold_temperatures": list(self.fold_temperatures),
                "n_tokens": self.n_tokens, f"n_{name}s": self.n_units, "n_pieces": self.n_pieces,
                **{f"bits_per_{what}_{when}": value
                   for when, bits in (("before", self.bits_before), ("after", self.bits_after),
                                      ("crossfit", self.bits_crossfit))
                   for what, value in (("token", bits), (name, self.per_unit(bits)))}}


def _nll_terms(logits, targets, beta: float):
    """``(nll, gradient, curvature)`` in ``beta = 1 / T`` summed over the rows of ``logits`` [N, V]."""
    import torch

    scaled = logits * beta
    log_p = torch.log_softmax(scaled, dim=-1)
    p = log_p.exp()
    mean = (p * logits).sum(-1)                         # E_p[z]
    variance = (p * logits.square()).sum(-1) - mean.square()
    target = logits.gather(1, targets[:, None])[:, 0]
    return (float(-log_p.gather(1, targets[:, None]).sum()), float((mean - target).sum()),
            float(variance.clamp_min(0).sum()))


def nll_at(parts, beta: float) -> float:
    """Total negative log-likelihood (nats) of ``parts`` (``(logits, targets)`` pairs) at ``1 / T = beta``."""
    return sum(_nll_terms(logits, targets, beta)[0] for logits, targets in parts)


def fit_beta(parts) -> float:
    """The ``beta = 1 / T`` that minimises :func:`nll_at` (convex in ``beta``: Newton's method, clamped to
    :data:`BETA_RANGE`)."""
    beta = 1.0
    for _ in range(50):
        gradient = curvature = 0.0
        for logits, targets in parts:
            _, g, c = _nll_terms(logits, targets, beta)
            gradient, curvature = gradient + g, curvature + c
        if curvature <= 0:
            break
        step = gradient / curvature
        beta = min(max(beta - step, BETA_RANGE[0]), BETA_RANGE[1])
        if abs(step) < 1e-9:
            break
    return beta


def collect_logits(model, pieces, *, context: int, pad_id: int, device, batch_size: int = 16):
    """Two folds (pieces in turn, a MIDI piece's windows together) of ``(logits [N, V], targets [N])`` pairs:
    the scored positions of :func:`symbolic.train.scored_batches`, on the CPU."""
    from .train import scored_batches

    folds: tuple[list, list] = ([], [])
    fold_of: dict[str, int] = {}   # a MIDI piece's windows are one piece, in one fold
    for piece in pieces:
        fold_of.setdefault(piece.piece, len(fold_of) % 2)
    for logits, targets, rows in scored_batches(model, pieces, context=context, pad_id=pad_id, device=device,
                                                batch_size=batch_size):
        for row, index in enumerate(rows):
            keep = targets[row] != -100
            if keep.any():
                fold = folds[fold_of[pieces[index].piece]]
                fold.append((logits[row][keep].cpu(), targets[row][keep].cpu()))
    return folds


def fit_calibration(model, pieces, *, context: int, pad_id: int, unit: str, device="cpu") -> Calibration:
    """Fit ``T`` on ``pieces`` (tokenized held-out pieces) and measure it (:class:`Calibration`)."""
    import torch

    folds = collect_logits(model, pieces, context=context, pad_id=pad_id, device=torch.device(device))
    everything = [*folds[0], *folds[1]]
    n_tokens = sum(len(targets) for _, targets in everything)
    if not n_tokens:
        raise ValueError("no token to calibrate on")
    beta = fit_beta(everything)
    fold_betas = (fit_beta(folds[0]) if folds[0] else beta, fit_beta(folds[1]) if folds[1] else beta)
    crossfit = nll_at(folds[0], fold_betas[1]) + nll_at(folds[1], fold_betas[0])
    bits = 1 / (math.log(2) * n_tokens)
    n_pieces = len({piece.piece for piece in pieces})
    return Calibration(temperature=1 / beta, bits_before=nll_at(everything, 1.0) * bits,
                       bits_after=nll_at(everything, beta) * bits, bits_crossfit=crossfit * bits,
                       fold_temperatures=(1 / fold_betas[0], 1 / fold_betas[1]), n_tokens=n_tokens,
                       n_units=sum(piece.n_units for piece in pieces), n_pieces=n_pieces, unit=unit)


def scaled_weights(path: Path, architecture: str, temperature: float) -> tuple[dict, dict]:
    """The tensors of ``model.safetensors`` with the final norm divided by ``temperature``, and the file's
    metadata."""
    from safetensors import safe_open
    from safetensors.torch import load_file

    state = load_file(path)
    with safe_open(path, framework="pt") as handle:
        metadata = handle.metadata() or {}
    for name in FINAL_NORMS[architecture]:
        state[name] = (state[name].double() / temperature).to(state[name].dtype)
    return state, metadata


def calibrate(model: str, data: str, out: str | Path, *, command: str = "", device: str = "cpu",
              quiet: bool = True) -> Calibration:
    """Fit ``model``'s logit temperature on the held-out split of ``data`` (less the collections it was trained
    without) and write the calibrated model to the new folder ``out`` (the model's own folder is never
    written): weights with the temperature baked in, ``metrics.json`` with ``calibration`` and the held-out
    figures at the new temperature, and a "Calibration" section in the card.

    Raises:
        InputError: no such model or data, ``out`` is the model's folder or not empty, or ``data`` has no
            held-out piece the model's tokenizer takes.
    """
    from safetensors.torch import save_file

    from ostinato.events.console import progress
    from ostinato.events.sources import iter_items

    from .data import collection_of, tokenize_items
    from .model import check_new_folder, load_model_folder, read_model_config, write_derived_folder
    from .shipped import resolve_model, trained_expand_repeats, trained_instruments

    folder = resolve_model(model)
    out = Path(out)
    check_new_folder(folder, out)
    config = read_model_config(folder)
    metrics_path = folder / "metrics.json"
    try:
        metrics = json.loads(metrics_path.read_text(encoding="utf-8")) if metrics_path.is_file() else {}
    except ValueError as exc:
        raise InputError(metrics_path, f"not JSON: {exc}") from None
    loaded, tokenizer, _ = load_model_folder(folder, device=device, inference=True)
    left_out = set(metrics.get("left_out") or ())
    items = [item for item in iter_items(data, split="test") if collection_of(item.key) not in left_out]
    tokens = tokenize_items(items, tokenizer, max_tokens=config.context, instruments=trained_instruments(folder),
                            expand_repeats=trained_expand_repeats(folder),
                            progress=lambda results: progress(results, desc="tokenize", quiet=quiet))
    if not tokens.test:
        first = f" (first problem: {tokens.failures[0]})" if tokens.failures else ""
        raise InputError(data, f"no held-out piece to calibrate on: {len(items)} held out, "
                               f"{len(tokens.failures)} failed{first}")
    fitted = fit_calibration(loaded, tokens.test, context=config.context, pad_id=tokenizer.pad_id,
                             unit=tokens.unit, device=device)
    previous = (metrics.get("calibration") or {}).get("total_temperature", 1.0)
    record = {**fitted.to_json(), "data": data, "command": command,
              "total_temperature": previous * fitted.temperature}

    def fill(staging: Path) -> None:
        state, metadata = scaled_weights(folder / "model.safetensors", config.architecture, fitted.temperature)
        save_file(state, staging / "model.safetensors", metadata=metadata)
        figures = _heldout_after(fitted, metrics.get("heldout"))
        new_metrics = {**metrics, "calibration": record, **({"heldout": figures} if figures else {})}
        (staging / "metrics.json").write_text(json.dumps(new_metrics, indent=2) + "\n", encoding="utf-8")
        card = staging / "model_card.md"
        before = card.read_text(encoding="utf-8") if card.is_file() else f"# {folder.name}\n"
        if figures:
            before = table_figures(before, figures)
        card.write_text(with_section(before, card_section(fitted, record)), encoding="utf-8")

    write_derived_folder(folder, out, fill, replaced=("model.safetensors", "metrics.json"))
    return fitted


def _heldout_after(fitted: Calibration, heldout: dict | None) -> dict | None:
    """The training's held-out figures (``metrics.json`` ``heldout``) at the fitted temperature, when they are
    of the same tokens as the calibration's; None otherwise (they are then left as they were)."""
    if not heldout or heldout.get("n_tokens") != fitted.n_tokens:
        return None
    unit = "bits_per_char" if fitted.unit == "char" else "bits_per_note"
    return {**heldout, "bits_per_token": fitted.bits_after, unit: fitted.per_unit(fitted.bits_after)}


SECTION = "## Calibration"


def table_figures(card: str, figures: dict) -> str:
    """``card`` with the values of its held-out table's ``| bits_per_... | value |`` rows set to ``figures``'."""
    import re

    card = card.replace("## Held-out figures (final step)\n", "## Held-out figures (final step, calibrated)\n", 1)
    for name in ("bits_per_token", "bits_per_char", "bits_per_note"):
        if name in figures:
            card = re.sub(rf"^\| {name} \| [0-9.]+ \|$", f"| {name} | {figures[name]:.4f} |", card, flags=re.M)
    return card


def with_section(card: str, section: str, heading: str = SECTION) -> str:
    """``card`` with its section ``heading`` (the calibration's) replaced by ``section`` (or ``section`` appended)."""
    head, found, rest = card.partition(heading)
    if found:
        after = rest.find("\n## ")
        card = head.rstrip("\n") + ("\n" + rest[after:] if after >= 0 else "")
    return card.rstrip("\n") + "\n\n" + section


def card_section(fitted: Calibration, record: dict) -> str:
    """The model card's account of its temperature."""
    unit = "character" if fitted.unit == "char" else "note"
    rows = "\n".join(f"| {label} | {fitted.per_unit(bits):.4f} | {bits:.4f} |"
                     for label, bits in (("T = 1 (as trained)", fitted.bits_before),
                                         (f"T = {fitted.temperature:.3f}", fitted.bits_after),
                                         ("cross-fitted (each half at the other half's T)", fitted.bits_crossfit)))
    total = record["total_temperature"]
    earlier = f" (with an earlier calibration, {total:.3f} in all)" if abs(total - fitted.temperature) > 1e-9 else ""
    return (f"{SECTION}\n\n"
            f"The logits are divided by a temperature T = {fitted.temperature:.3f}{earlier}, "
            f"fitted by maximum likelihood on the held-out split of {record['data']} ({fitted.n_pieces} pieces, "
            f"{fitted.n_tokens:,} tokens; never trained on) and baked into the final layer norm "
            f"(`symbolic/calibrate.py`):\n\n"
            f"    {record['command'] or 'ostinato train calibrate'}\n\n"
            f"| held-out {record['data']} | bits per {unit} | bits per token |\n|---|---|---|\n{rows}\n\n"
            f"The halves' temperatures: {fitted.fold_temperatures[0]:.3f} and {fitted.fold_temperatures[1]:.3f}. "
            f"`compose --temperature 1` samples the calibrated distribution.\n")
