"""Quoting: an infill may repeat the music around it, token for token (issue 20).

Music repeats itself: a chorale played from its MIDI file plays its first Stollen twice, a reel its A
part; a bar inside a repeat has an exact copy elsewhere in the piece. A 4 x 256 transformer does not
learn to copy one in the training a CPU gives it (fine-tuned 1,350 steps on performed chorales, a bar
whose exact copy lies four bars into the suffix still cost it 0.61 bits a token with the suffix in view,
0.78 without; a model that copied would pay ~0.1). The quote does
it outright, as a pointer (the copy mechanism of pointer-generator networks and cache language models):
at each token of a middle, the longest run ``L`` of the last tokens in musical order (the prefix's tail
and the middle so far) that also occurs in the music shown to the infill (its prefix and suffix; never
what the model wrote) proposes the tokens that followed the run there, ``q``; the model's next-token
distribution ``p`` becomes

    (1 - w[L]) * p + w[L] * q

with one weight per band of ``L`` (:data:`BANDS`), fitted on the training split by ``ostinato train
quote`` (:mod:`symbolic.quote_train`; :func:`fit_weights`, EM on the likelihood) and kept in the model
folder's ``quote.json``. A short run is weak evidence (its weight is near 0); a run of 24 tokens or more
(six or more notes: REMI writes a note in 4 tokens) predicts the next token almost surely. A model folder without
``quote.json`` infills as before.

The same mixture scores (:func:`symbolic.infill.middle_token_bits`: with the suffix in view, the prefix
and suffix quoted; without, the prefix alone) and samples (:func:`symbolic.infill.infill_compositions`).
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ostinato.events.errors import InputError

QUOTE_FILE = "quote.json"
BANDS = (1, 4, 8, 12, 16, 24, 32)   # a weight for each band of match lengths: [1, 4), [4, 8), ..., [32, MAX_MATCH]
MAX_MATCH = 48                      # the longest run looked for (tokens)


@dataclass(frozen=True)
class QuoteWeights:
    """The weight of the quote in each band of match lengths (:data:`BANDS`); no match: weight 0."""

    weights: tuple[float, ...]

    def __post_init__(self) -> None:
        if len(self.weights) != len(BANDS):
            raise ValueError(f"weights: expected {len(BANDS)} (one per band {BANDS}), got {len(self.weights)}")
        for w in self.weights:
            if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= w < 1.0 or math.isnan(w):
                raise ValueError(f"weights: expected numbers 0 <= w < 1, got {w!r}")

    def weight(self, length: int) -> float:
        """The weight of a quote whose run is ``length`` tokens long (0: no run)."""
        return float(self.weights_of(np.array([length]))[0])

    def weights_of(self, lengths: np.ndarray) -> np.ndarray:
        """:meth:`weight` of each of ``lengths``."""
        band = band_of(lengths)
        return np.where(band >= 0, np.asarray(self.weights, dtype=np.float64)[np.maximum(band, 0)], 0.0)

    def to_json(self) -> dict:
        return {"bands": list(BANDS), "max_match": MAX_MATCH, "weights": [round(w, 6) for w in self.weights]}


def band_of(lengths: np.ndarray) -> np.ndarray:
    """The index in :data:`BANDS` of each match length (-1: no run)."""
    return np.searchsorted(BANDS, np.asarray(lengths), side="right") - 1


def load_weights(folder: str | Path) -> QuoteWeights | None:
    """The folder's ``quote.json`` (None without one). Nothing in it is executed.

    Raises:
        InputError: the file is not the JSON object :meth:`QuoteWeights.to_json` writes.
    """
    path = Path(folder) / QUOTE_FILE
    if not path.is_file():
        return None
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not JSON ({exc})") from None
    if not isinstance(data, dict) or set(data) != {"bands", "max_match", "weights"}:
        raise InputError(path, 'expected an object with "bands", "max_match" and "weights" (`ostinato train quote` '
                               'writes it)')
    if data["bands"] != list(BANDS) or data["max_match"] != MAX_MATCH:
        raise InputError(path, f"bands {data['bands']!r} / max_match {data['max_match']!r}: this version quotes "
                               f"with bands {list(BANDS)} and max_match {MAX_MATCH} (refit: `ostinato train quote`)")
    if not isinstance(data["weights"], list):
        raise InputError(path, f"weights: expected a list, got {data['weights']!r}")
    try:
        return QuoteWeights(tuple(data["weights"]))
    except ValueError as exc:
        raise InputError(path, str(exc)) from None


class Quoter:
    """The quotes a middle may take from the music shown to it.

    Args:
        shown: the token runs shown (each in musical order: the prefix, the suffix); a quoted run lies
            inside one of them, and so does the token it proposes.
    """

    def __init__(self, shown: Sequence[Sequence[int]]):
        self.shown = [np.asarray(list(run), dtype=np.int64) for run in shown if len(run) >= 2]

    def propose(self, history: Sequence[int]) -> tuple[int, dict[int, int]]:
        """``(L, {token: count})``: the longest ``L <= MAX_MATCH`` such that the last ``L`` tokens of ``history``
        occur in a shown run followed by a token, and how often each following token follows them there
        (``(0, {})`` when not even the last token occurs)."""
        if not len(history):
            return 0, {}
        tail = np.asarray(list(history[-MAX_MATCH:]), dtype=np.int64)[::-1]   # tail[i]: i tokens back from the end
        best, found = 0, []
        for run in self.shown:
            cand = np.arange(1, len(run))      # run[j] follows a match that ends at run[j - 1]
            length = 0
            while length < len(tail):
                deeper = cand[cand - 1 - length >= 0]
                deeper = deeper[run[deeper - 1 - length] == tail[length]]
                if not len(deeper):
                    break
                cand, length = deeper, length + 1
            if length and length > best:
                best, found = length, [run[cand]]
            elif length and length == best:
                found.append(run[cand])
        if best == 0:
            return 0, {}
        tokens, counts = np.unique(np.concatenate(found), return_counts=True)
        return best, dict(zip(tokens.tolist(), counts.tolist(), strict=True))


def quote_probability(proposal: dict[int, int], token: int) -> float:
    total = sum(proposal.values())
    return proposal.get(token, 0) / total if total else 0.0


def quote_terms(middle: Sequence[int], before: Sequence[int],
                shown: Sequence[Sequence[int]]) -> tuple[np.ndarray, np.ndarray]:
    """Per token of ``middle``: the quote's match length and its probability of that token, ``before`` being
    the music left of the middle in musical order and ``shown`` what is quoted."""
    quoter = Quoter(shown)
    history = list(before[-MAX_MATCH:])
    lengths, probs = [], []
    for token in middle:
        length, proposal = quoter.propose(history)
        lengths.append(length)
        probs.append(quote_probability(proposal, token))
        history.append(token)
    return np.array(lengths, dtype=np.int64), np.array(probs, dtype=np.float64)


def mixture_bits(model_bits: np.ndarray, lengths: np.ndarray, quote_probs: np.ndarray,
                 weights: QuoteWeights) -> np.ndarray:
    """Bits per token under the mixture from the model's own, the match lengths and the quote's probabilities
    (:func:`quote_terms`); where no quote has weight, the model's own bits unchanged."""
    model_bits = np.asarray(model_bits, dtype=np.float64)
    w = weights.weights_of(lengths)
    with np.errstate(divide="ignore"):
        mixed = -np.log2((1 - w) * 2.0 ** -model_bits + w * quote_probs)
    return np.where(w > 0, mixed, model_bits)


def quoted_bits(model_bits: np.ndarray, middle: Sequence[int], before: Sequence[int], shown: Sequence[Sequence[int]],
                weights: QuoteWeights) -> np.ndarray:
    """The middle's bits per token under the mixture, from the model's own (``model_bits``, one per token
    of ``middle``): ``before`` is the music left of the middle in musical order, ``shown`` what is quoted."""
    return mixture_bits(model_bits, *quote_terms(middle, before, shown), weights)


def mix_log_probs(log_probs, length: int, proposal: dict[int, int], weights: QuoteWeights):
    """The mixture's log-probabilities from the model's (a torch [V] tensor of log-softmax values)."""
    import torch

    w = weights.weight(length)
    if w <= 0:
        return log_probs
    q = torch.zeros_like(log_probs)
    total = sum(proposal.values())
    for token, count in proposal.items():
        q[token] = count / total
    return torch.log((1 - w) * log_probs.exp() + w * q)


def fit_weights(observations: Sequence[tuple[float, int, float]],
                iterations: int = 200) -> tuple[QuoteWeights, list[int]]:
    """EM for the weights from ``(model probability of the token, match length, quote probability of it)``,
    one per scored token; returns the weights and the tokens counted in each band. A band without tokens
    keeps weight 0."""
    if not observations:
        raise ValueError("no tokens to fit the quote weights on")
    p = np.array([o[0] for o in observations], dtype=np.float64)
    band = band_of(np.array([o[1] for o in observations]))
    q = np.array([o[2] for o in observations], dtype=np.float64)
    weights, counts = [], []
    for b in range(len(BANDS)):
        mask = band == b
        counts.append(int(mask.sum()))
        w = 0.1 if mask.any() else 0.0
        for _ in range(iterations if mask.any() else 0):
            num = w * q[mask]
            w = float(np.mean(num / np.maximum(num + (1 - w) * p[mask], 1e-300)))
        weights.append(min(w, 0.999))
    return QuoteWeights(tuple(weights)), counts

