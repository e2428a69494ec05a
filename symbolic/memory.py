"""Recall: an ABC model's next-token distribution mixed with an n-gram memory of its training tunes (issue 17).

Folk tunes travel: a tune held out of one collection is often in another as a variant, in another
key, with a note changed here and there. A 7 x 256 transformer cannot hold 13,000 tunes in its
weights; a memory of the tokens it was trained on can (the n-gram half of kNN-LM and infini-gram
language models: Khandelwal et al. 2020, Liu et al. 2024). At each token the memory finds the
longest run of the last tokens (up to :data:`MAX_ORDER`) that occurs in the training tunes, and
proposes what followed it there, every shorter run's continuations blended in (Witten-Bell
interpolation, orders 0 to the longest). The model's distribution ``p`` becomes

    (1 - w) * p + w * q

with ``w`` one weight per band of the longest run's length and of how often it occurs
(:data:`ORDER_BANDS` x :data:`COUNT_BANDS`): a short or rare run is weak evidence, a run of 24
tokens seen many times nearly certain. The weights are fitted by EM on the held-out split's
likelihood (``ostinato train memory``, :mod:`symbolic.memory_train`), as ``train calibrate`` fits
its temperature, and reported cross-fitted.

The memory reads notes as **scale degrees**: a pitch token is stored as its distance in letters from
the tonic of the key in force, a ``K:`` field as its mode, so a reel in D and its variant in G are
one run (the other tokens, durations, bar lines, accidentals, as they are). A proposed degree is
written back in the key in force (a degree past the vocabulary's pitches is dropped); a proposed
mode is shared among that mode's keys as the model's own distribution shares them.

The memory lives in the model folder: ``memory.safetensors`` (the training tunes' degree tokens,
one byte each, and the alphabet they are written in; loaded as tensors, nothing executed) and
``memory.json`` (the weights). The search index (a suffix array of the tokens read backwards, so
that a longer run narrows a shorter one's range) is built when first used, about a second.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import NamedTuple

import numpy as np

from ostinato.events.errors import InputError

MEMORY_TENSORS = "memory.safetensors"
MEMORY_WEIGHTS = "memory.json"
MAX_ORDER = 48                    # the longest run looked for (tokens)
ORDER_BANDS = (0, 2, 4, 6, 8, 10, 12, 14, 16, 20, 24, 32)   # a band per [lo, next lo) of the longest run
COUNT_BANDS = (1, 2, 4, 16)       # ... and per band of its count in the memory
_PACKED = 7                       # letters packed into one integer to start the suffix sort (9 bits each)
_CACHED_RANGE = 2048              # a range of this many suffixes or more has its letters and counts kept
SEP = 255                         # the alphabet's separator: between tunes, and any token it has no letter for
_DEGREE, _MODE = 1000, 2000       # canonical codes: a vocabulary id below 1000, a degree, a mode
_DEGREE_OFFSET = 10               # degrees run from -6 (the lowest pitch under a B tonic) up
LETTERS = "CDEFGAB"


def _mode(key_token: str) -> str:
    body = key_token[2:]
    return body[1:].lstrip("#b")


class DegreeCode:
    """The scale-degree reading of an ABC tokenizer's ids (the memory's alphabet before compaction)."""

    def __init__(self, tokenizer):
        self.vocab = list(tokenizer.vocab)
        self.pitch_lo, self.pitch_hi = tokenizer.blocks["pitch"]
        self.key_lo, self.key_hi = tokenizer.blocks["key"]
        keys = self.vocab[self.key_lo:self.key_hi]
        self.modes = sorted({_mode(k) for k in keys})
        self.tonic_of_key = np.array([LETTERS.index(k[2]) for k in keys], np.int64)
        self.mode_of_key = np.array([self.modes.index(_mode(k)) for k in keys], np.int64)

    def codes(self, ids: Sequence[int]) -> np.ndarray:
        """Each id's code: its scale degree under the key in force (pitches), its mode (``K:``), itself (the rest).
        Before any ``K:`` the tonic is C."""
        ids = np.asarray(ids, np.int64)
        is_key = (ids >= self.key_lo) & (ids < self.key_hi)
        where = np.where(is_key, np.arange(len(ids)), -1)
        last = np.maximum.accumulate(where) if len(ids) else where
        tonic = np.where(last >= 0, self.tonic_of_key[np.clip(ids[np.maximum(last, 0)] - self.key_lo, 0,
                                                              len(self.tonic_of_key) - 1)], 0)
        out = ids.copy()
        is_pitch = (ids >= self.pitch_lo) & (ids < self.pitch_hi)
        out[is_pitch] = _DEGREE + ids[is_pitch] - self.pitch_lo - tonic[is_pitch] + _DEGREE_OFFSET
        out[is_key] = _MODE + self.mode_of_key[ids[is_key] - self.key_lo]
        return out

    def tonic_in_force(self, ids: Sequence[int]) -> int:
        for t in reversed(ids):
            if self.key_lo <= t < self.key_hi:
                return int(self.tonic_of_key[t - self.key_lo])
        return 0


def build_alphabet(code: DegreeCode, pieces: Sequence[Sequence[int]]) -> np.ndarray:
    """The codes the pieces use, sorted (at most 255: one byte each with :data:`SEP`)."""
    used = np.unique(np.concatenate([code.codes(ids) for ids in pieces])) if pieces else np.zeros(0, np.int64)
    if len(used) > SEP:
        raise ValueError(f"the tunes use {len(used)} distinct tokens; the memory holds at most {SEP}")
    return used


def encode_stream(code: DegreeCode, alphabet: np.ndarray, pieces: Sequence[Sequence[int]]) -> np.ndarray:
    """The pieces' letters, each tune after a :data:`SEP` (uint8)."""
    parts = []
    for ids in pieces:
        parts.append(np.array([SEP], np.uint8))
        parts.append(_letters(alphabet, code.codes(ids)))
    return np.concatenate(parts) if parts else np.zeros(0, np.uint8)


def _letters(alphabet: np.ndarray, codes: np.ndarray) -> np.ndarray:
    i = np.clip(np.searchsorted(alphabet, codes), 0, max(len(alphabet) - 1, 0))
    found = (alphabet[i] == codes) if len(alphabet) else np.zeros(len(codes), bool)
    return np.where(found, i, SEP).astype(np.uint8)


@dataclass(frozen=True)
class MemoryWeights:
    """The memory's weight in each (run-length band, count band); bands without a run: weight 0."""

    weights: tuple[tuple[float, ...], ...]

    def __post_init__(self) -> None:
        if len(self.weights) != len(ORDER_BANDS) or any(len(row) != len(COUNT_BANDS) for row in self.weights):
            raise ValueError(f"weights: expected {len(ORDER_BANDS)} rows of {len(COUNT_BANDS)}")
        for row in self.weights:
            for w in row:
                if isinstance(w, bool) or not isinstance(w, (int, float)) or not 0.0 <= w < 1.0 or math.isnan(w):
                    raise ValueError(f"weights: expected numbers 0 <= w < 1, got {w!r}")

    def weights_of(self, orders: np.ndarray, counts: np.ndarray) -> np.ndarray:
        table = np.asarray(self.weights, np.float64)
        return np.where(np.asarray(counts) > 0, table[band_of(orders, counts)], 0.0)

    def to_json(self) -> dict:
        return {"order_bands": list(ORDER_BANDS), "count_bands": list(COUNT_BANDS), "max_order": MAX_ORDER,
                "weights": [[round(w, 6) for w in row] for row in self.weights]}


def band_of(orders, counts) -> tuple[np.ndarray, np.ndarray]:
    """The (order band, count band) index of each longest run and its count."""
    o = np.clip(np.searchsorted(ORDER_BANDS, np.asarray(orders), side="right") - 1, 0, len(ORDER_BANDS) - 1)
    c = np.clip(np.searchsorted(COUNT_BANDS, np.asarray(counts), side="right") - 1, 0, len(COUNT_BANDS) - 1)
    return o, c


def _witten_bell(lower: np.ndarray, counts: np.ndarray) -> np.ndarray:
    distinct = int(np.count_nonzero(counts))
    return (counts + distinct * lower) / (int(counts.sum()) + distinct)


def _suffix_array(text: np.ndarray, depth: int) -> np.ndarray:
    """Start positions of ``text``'s suffixes sorted by their first ``depth`` letters (ties in position order):
    the first 7 letters packed into one integer, then prefix doubling (7, 14, 28, ... letters)."""
    n = len(text)
    shifted = np.concatenate([text.astype(np.int64) + 1, np.zeros(_PACKED, np.int64)])   # 0: past the end
    packed = np.zeros(n, np.int64)
    for j in range(_PACKED):
        packed = (packed << 9) | shifted[j:j + n]
    sa = np.argsort(packed, kind="stable")
    rank = _ranks(packed, sa)
    k = _PACKED
    while k < depth:
        after = np.full(n, -1, np.int64)
        if k < n:
            after[:n - k] = rank[k:]
        key = rank * (n + 2) + after + 1
        sa = np.argsort(key, kind="stable")
        rank, k = _ranks(key, sa), 2 * k
    return sa


def _ranks(key: np.ndarray, order: np.ndarray) -> np.ndarray:
    """Each position's rank among the distinct values of ``key`` (``order`` sorts it)."""
    sorted_key = key[order]
    rank = np.empty(len(key), np.int64)
    rank[order] = np.concatenate([[0], np.cumsum(sorted_key[1:] != sorted_key[:-1])]) if len(key) else []
    return rank


class _Index(NamedTuple):
    """The memory's search index: the letters read backwards (``padded``: past the end, :data:`SEP`), their
    suffixes sorted (``sa``), the letter that follows each suffix's run read forwards (``follows``), where
    each first letter's suffixes begin (``first``) and how often each letter occurs (``unigram``)."""

    padded: np.ndarray
    sa: np.ndarray
    follows: np.ndarray
    first: np.ndarray
    unigram: np.ndarray


class Memory:
    """The training tunes' letters and what the model does with them (:meth:`mix`, :meth:`terms`)."""

    def __init__(self, tokenizer, alphabet: np.ndarray, stream: np.ndarray, weights: MemoryWeights | None):
        self.code = DegreeCode(tokenizer)
        self.alphabet = np.asarray(alphabet, np.int64)
        self.stream = np.asarray(stream, np.uint8)
        self.weights = weights
        self.vocab_size = len(self.code.vocab)
        self._cache: dict[tuple, np.ndarray] = {}   # wide ranges' letters and counts (_next_letters, _continuations)
        n_letters = len(self.alphabet)
        # each letter written back in a key whose tonic letter is T: a vocabulary id, or -1 (a degree past the pitches)
        self._to_vocab = np.full((len(LETTERS), n_letters), -1, np.int64)
        n_modes = len(self.code.modes)
        for a, c in enumerate(self.alphabet.tolist()):
            if not (0 <= c < self.vocab_size or _DEGREE <= c < _MODE or _MODE <= c < _MODE + n_modes):
                raise ValueError(f"alphabet: code {c} is no token, degree or mode of this tokenizer")
            for t in range(len(LETTERS)):
                if c < _DEGREE:
                    self._to_vocab[t, a] = c
                elif c < _MODE:
                    pitch = self.code.pitch_lo + c - _DEGREE - _DEGREE_OFFSET + t
                    self._to_vocab[t, a] = pitch if self.code.pitch_lo <= pitch < self.code.pitch_hi else -1
        # the mode letters, and for each the keys of its mode (every mode has keys: checked above)
        self._mode_letters = np.flatnonzero(self.alphabet >= _MODE)
        self._mode_keys = self.code.mode_of_key[None, :] == (self.alphabet[self._mode_letters] - _MODE)[:, None]

    # ---------------------------------------------------------------- the index
    @cached_property
    def _index(self) -> _Index:
        reversed_ = self.stream[::-1].astype(np.int64)
        sa = _suffix_array(reversed_, MAX_ORDER + 1)
        return _Index(padded=np.concatenate([reversed_, np.full(MAX_ORDER + 1, SEP, np.int64)]), sa=sa,
                      follows=np.where(sa > 0, reversed_[np.maximum(sa - 1, 0)], SEP),
                      first=np.searchsorted(reversed_[sa], np.arange(SEP + 2)),
                      unigram=np.bincount(self.stream[self.stream != SEP], minlength=SEP + 1)[:SEP])

    def _next_letters(self, lo: int, hi: int, k: int) -> np.ndarray:
        """The letter k after the start of each suffix in [lo, hi) (a wide range's kept: short runs recur)."""
        index = self._index
        if hi - lo < _CACHED_RANGE:
            return index.padded[index.sa[lo:hi] + k]
        key = (lo, hi, k)
        if key not in self._cache:
            self._cache[key] = index.padded[index.sa[lo:hi] + k].astype(np.uint8)
        return self._cache[key]

    def _continuations(self, lo: int, hi: int) -> np.ndarray:
        """How often each letter follows the run whose suffixes are [lo, hi)."""
        follows = self._index.follows
        if hi - lo < _CACHED_RANGE:
            return np.bincount(follows[lo:hi], minlength=SEP + 1)[:SEP]
        key = (lo, hi)
        if key not in self._cache:
            self._cache[key] = np.bincount(follows[lo:hi], minlength=SEP + 1)[:SEP]
        return self._cache[key]

    def recall(self, history: Sequence[int]) -> tuple[int, int, np.ndarray]:
        """``(L, count, q)``: the longest run ``L <= MAX_ORDER`` of ``history``'s last tokens in the memory, how
        often it occurs followed by a token, and the memory's distribution over the letters (Witten-Bell)."""
        first, unigram = self._index.first, self._index.unigram
        n_letters = len(self.alphabet)
        tail = _letters(self.alphabet, self.code.codes(list(history)))[::-1][:MAX_ORDER]
        q = np.full(SEP, 1.0 / max(n_letters, 1))
        q[n_letters:] = 0.0
        q = _witten_bell(q, unigram)
        order, count = 0, int(unigram.sum())
        lo, hi = 0, len(self._index.sa)
        for k, letter in enumerate(tail.tolist()):   # the run k + 1 tokens long
            if letter == SEP:
                break
            if k == 0:
                lo, hi = int(first[letter]), int(first[letter + 1])
            else:   # the suffixes in [lo, hi) share k letters, sorted by the next
                keys = self._next_letters(lo, hi, k)
                lo, hi = (lo + int(np.searchsorted(keys, letter, "left")),
                          lo + int(np.searchsorted(keys, letter, "right")))
            if hi <= lo:
                break
            counts = self._continuations(lo, hi)
            total = int(counts.sum())
            if total == 0:
                break
            q = _witten_bell(q, counts)
            order, count = k + 1, total
        return order, count, q

    def distribution(self, history: Sequence[int], probs: np.ndarray) -> tuple[int, int, np.ndarray]:
        """``(L, count, q)`` with ``q`` over the vocabulary (:meth:`recall`'s letters, :meth:`in_vocabulary`)."""
        order, count, letters = self.recall(history)
        return order, count, self.in_vocabulary(letters, history, probs)

    def in_vocabulary(self, letters: np.ndarray, history: Sequence[int], probs: np.ndarray) -> np.ndarray:
        """The distribution over the letters written back in the key in force after ``history`` (a degree past the
        vocabulary's pitches dropped; a mode's mass shared among its keys as ``probs``, the model's distribution,
        shares them)."""
        to = self._to_vocab[self.code.tonic_in_force(history)]
        keep = to >= 0
        q = np.zeros(self.vocab_size)
        np.add.at(q, to[keep], letters[:len(self.alphabet)][keep])
        if len(self._mode_letters):
            share = np.asarray(probs[self.code.key_lo:self.code.key_hi], np.float64) * self._mode_keys
            totals = share.sum(1, keepdims=True)
            share = np.where(totals > 0, share / np.where(totals > 0, totals, 1),
                             self._mode_keys / self._mode_keys.sum(1, keepdims=True))
            q[self.code.key_lo:self.code.key_hi] += letters[self._mode_letters] @ share
        total = q.sum()
        return q / total if total > 0 else q

    def mix(self, history: Sequence[int], log_probs, *, max_run: int | None = None):
        """The mixture's log-probabilities (a torch [V] tensor) from the model's, after ``history``; with
        ``max_run``, the model's own where the longest run is that long or longer (composing: the memory
        does not carry a quote further)."""
        import torch

        if self.weights is None:
            return log_probs
        order, count, letters = self.recall(history)
        if max_run is not None and order >= max_run:
            return log_probs
        w = float(self.weights.weights_of(np.array([order]), np.array([count]))[0])
        if w <= 0:
            return log_probs
        probs = log_probs.exp().double().numpy()
        mixed = np.log((1 - w) * probs + w * self.in_vocabulary(letters, history, probs))
        return torch.from_numpy(mixed).to(log_probs.dtype)

    def terms(self, ids: Sequence[int], log_probs: np.ndarray, positions: Sequence[int]):
        """For each of ``positions`` in ``ids`` (the model's log-probabilities there in ``log_probs[j]``, [V]):
        the model's probability of the token, the run length, its count, and the memory's probability."""
        out = []
        for j, pos in enumerate(positions):
            probs = np.exp(np.asarray(log_probs[j], np.float64))
            order, count, q = self.distribution(ids[:pos], probs)
            out.append((float(probs[ids[pos]]), order, count, float(q[ids[pos]])))
        return out


def mixture_bits(model_probs: np.ndarray, orders: np.ndarray, counts: np.ndarray, memory_probs: np.ndarray,
                 weights: MemoryWeights) -> np.ndarray:
    """Bits of each token under the mixture."""
    w = weights.weights_of(orders, counts)
    return -np.log2((1 - w) * np.asarray(model_probs) + w * np.asarray(memory_probs))


def fit_weights(model_probs, orders, counts, memory_probs, *, iterations: int = 100,
                prior: float = 2.0) -> MemoryWeights:
    """EM for the weights on the observed tokens' likelihood; a band's weight is pulled towards 0.1 by
    ``prior`` pseudo-tokens (a band with few tokens stays near it, one with none is 0)."""
    p, q = np.asarray(model_probs, np.float64), np.asarray(memory_probs, np.float64)
    ob, cb = band_of(orders, counts)
    flat = ob * len(COUNT_BANDS) + cb
    n_bands = len(ORDER_BANDS) * len(COUNT_BANDS)
    seen = np.asarray(counts) > 0
    tokens = np.bincount(flat[seen], minlength=n_bands).astype(np.float64)
    w = np.full(n_bands, 0.1)
    for _ in range(iterations):
        wt = w[flat]
        share = wt * q / np.maximum(wt * q + (1 - wt) * p, 1e-300)
        w = (np.bincount(flat[seen], weights=share[seen], minlength=n_bands) + prior * 0.1) / (tokens + prior)
    w = np.where(tokens > 0, np.minimum(w, 0.999), 0.0)
    return MemoryWeights(tuple(tuple(float(x) for x in row) for row in w.reshape(len(ORDER_BANDS),
                                                                                  len(COUNT_BANDS))))


# -------------------------------------------------------------------- the folder
def save_memory(folder: Path, alphabet: np.ndarray, stream: np.ndarray, weights: MemoryWeights) -> None:
    import torch
    from safetensors.torch import save_file

    save_file({"alphabet": torch.from_numpy(np.asarray(alphabet, np.int32)),
               "stream": torch.from_numpy(np.asarray(stream, np.uint8))}, str(folder / MEMORY_TENSORS))
    (folder / MEMORY_WEIGHTS).write_text(json.dumps(weights.to_json()) + "\n", encoding="utf-8")


def load_memory(folder: str | Path, tokenizer) -> Memory | None:
    """The folder's memory (None without ``memory.safetensors``). Nothing in it is executed or unpickled.

    Raises:
        InputError: a file that is not what ``ostinato train memory`` writes, named.
    """
    folder = Path(folder)
    path, wpath = folder / MEMORY_TENSORS, folder / MEMORY_WEIGHTS
    if not path.exists():
        return None
    if getattr(tokenizer, "kind", None) != "abc":
        raise InputError(path, f"a memory is an ABC model's; this model's tokens are {tokenizer.kind}")
    from safetensors.numpy import load_file

    try:
        tensors = load_file(str(path))
    except Exception as exc:  # safetensors raises its own kinds for a torn or foreign file
        raise InputError(path, f"cannot load the memory: {' '.join(str(exc).split())[:300]}") from None
    if set(tensors) != {"alphabet", "stream"} or tensors["alphabet"].dtype != np.int32 \
            or tensors["stream"].dtype != np.uint8 or tensors["alphabet"].ndim != 1 or tensors["stream"].ndim != 1:
        raise InputError(path, "expected int32 'alphabet' and uint8 'stream' vectors (`ostinato train memory` "
                               "writes them)")
    alphabet = tensors["alphabet"].astype(np.int64)
    if len(alphabet) > SEP or np.any(np.diff(alphabet) <= 0) or (len(alphabet) and alphabet[0] < 0):
        raise InputError(path, f"alphabet: expected at most {SEP} increasing codes")
    letters = tensors["stream"][tensors["stream"] != SEP]
    if len(letters) and int(letters.max()) >= len(alphabet):
        raise InputError(path, "stream: a letter past the alphabet")
    try:
        data = json.loads(wpath.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise InputError(wpath, "missing (the memory's weights; `ostinato train memory` writes them)") from None
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(wpath, f"not JSON ({exc})") from None
    expected = {"order_bands": list(ORDER_BANDS), "count_bands": list(COUNT_BANDS), "max_order": MAX_ORDER}
    if not isinstance(data, dict) or set(data) != {*expected, "weights"}:
        raise InputError(wpath, 'expected an object with "order_bands", "count_bands", "max_order" and "weights"')
    if any(data[k] != v for k, v in expected.items()):
        raise InputError(wpath, f"bands {data['order_bands']!r} / {data['count_bands']!r} / max_order "
                                f"{data['max_order']!r}: this version recalls with {expected} (refit: "
                                f"`ostinato train memory`)")
    try:
        weights = MemoryWeights(tuple(tuple(row) for row in data["weights"]))
    except (TypeError, ValueError) as exc:
        raise InputError(wpath, str(exc)) from None
    try:
        return Memory(tokenizer, alphabet, tensors["stream"], weights)
    except ValueError as exc:
        raise InputError(path, str(exc)) from None
