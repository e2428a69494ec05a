"""Training data for the token stage: pieces of a source as token arrays, split and packed.

    data = tokenize_source("music21:essenFolksong", tokenizer, max_tokens=512)
    data.train, data.test          # lists of TokenizedPiece (test = the held-out split, DESIGN.md)
    stream = pack(data.train)      # one int32 stream of every training sequence, end to end
    x = sample_blocks(stream, block=513, batch=16, seed=0, step=7)   # [16, 513], the same on every rerun
    train = fim_parts(data.train, tokenizer, share=0.25)   # a quarter in the fill-in-the-middle form (symbolic/fim.py)
    train = augmented(data.train, tokenizer, shifts=range(-5, 7), ensembles=True)   # other keys and ensembles

A piece is one ABC tune (its normalised text) for the ``abc`` tokenizer, or one window of a
MIDI/ABC/MusicXML piece (at most ``max_tokens``, cut at bar lines) for the MIDI tokenizers.
Each carries its unit count: characters of normalised text (ABC) or notes (MIDI), so
held-out likelihood can be given in bits per character or bits per note.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import zlib
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ostinato.events.atomic import atomic_path
from ostinato.events.errors import InputError, one_line

log = logging.getLogger("ostinato")

CACHE_VERSION = 3   # 2: a MIDI window's Key: is the key of its notes; 3: every part its own program (ENSEMBLES)


@dataclass
class TokenizedPiece:
    """One training or evaluation sequence.

    Attributes:
        key: the piece's split key (a window of a MIDI piece adds ``@<n>``).
        ids: token ids, int32 [n_tokens], starting with ``<bos>``.
        n_units: characters (ABC) or notes (MIDI) the sequence encodes.
    """

    key: str
    ids: np.ndarray
    n_units: int

    @property
    def piece(self) -> str:
        """The key of the piece this sequence is from (a MIDI piece's windows share it)."""
        return self.key.split("@")[0]


@dataclass
class TokenData:
    """The tokenized pieces of a source, split by DESIGN.md's held-out rule."""

    train: list[TokenizedPiece] = field(default_factory=list)
    test: list[TokenizedPiece] = field(default_factory=list)
    failures: list[str] = field(default_factory=list)   # one line per piece that could not be used
    unit: str = "note"                                  # "char" (ABC) or "note" (MIDI)

    @property
    def n_train_tokens(self) -> int:
        return sum(len(p.ids) for p in self.train)


def collection_of(key: str) -> str:
    """The collection (first path part) of a split key: the style control of MIDI tokens."""
    return key.split("/", 1)[0]


def tokenize_item(item, tokenizer, *, max_tokens: int, instruments: str = "keep",
                  expand_repeats: bool = False) -> list[TokenizedPiece]:
    """The sequences of one :class:`events.sources.Item` (raises InputError/ValueError if unusable).

    ``tokenizer.encode_item`` makes them (its collection is the style control of MIDI tokens);
    ``instruments="ensemble"`` gives each part a GM program chosen from the piece's key
    (:func:`events.instruments.assign_instruments`), for scores whose parts name none;
    ``expand_repeats`` (MIDI tokens) plays the score's repeats out.
    """
    sequences = tokenizer.encode_item(item, max_tokens=max_tokens, style=collection_of(item.key),
                                      instruments=instruments, expand_repeats=expand_repeats)
    return [TokenizedPiece(key, np.asarray(ids, np.int32), tokenizer.count_units(ids)) for key, ids in sequences]


_WORKER: dict = {}


def _worker_init(tokenizer_json: dict, max_tokens: int, instruments: str, expand_repeats: bool) -> None:
    from .tokenizers import tokenizer_from_json

    _WORKER.update(tokenizer=tokenizer_from_json(tokenizer_json), max_tokens=max_tokens, instruments=instruments,
                   expand_repeats=expand_repeats)


def _tokenize_or_fail(item, tokenizer=None, max_tokens=None, instruments=None, expand_repeats=None):
    """``(item, pieces, None)`` or ``(item, None, one-line error)``: runs in a worker process too."""
    try:
        pieces = tokenize_item(item, tokenizer or _WORKER["tokenizer"], max_tokens=max_tokens or _WORKER["max_tokens"],
                               instruments=instruments or _WORKER["instruments"],
                               expand_repeats=_WORKER["expand_repeats"] if expand_repeats is None else expand_repeats)
        return item, pieces, None
    except Exception as exc:  # one bad piece never stops the data set
        return item, None, one_line(exc, item.key)


def tokenize_items(items: list, tokenizer, *, max_tokens: int, instruments: str = "keep", expand_repeats: bool = False,
                   workers: int = 1, progress: Callable[[Iterable], Iterable] = lambda x: x) -> TokenData:
    """Tokenize every item (in ``workers`` processes); a piece that fails is listed in ``failures``.

    The result is in the order of ``items`` whatever the number of workers.
    """
    data = TokenData(unit=tokenizer.unit)
    if workers > 1:
        from concurrent.futures import ProcessPoolExecutor

        pool = ProcessPoolExecutor(workers, initializer=_worker_init,
                                   initargs=(tokenizer.to_json(), max_tokens, instruments, expand_repeats))
        results = pool.map(_tokenize_or_fail, items, chunksize=16)
    else:
        pool = None
        results = (_tokenize_or_fail(item, tokenizer, max_tokens, instruments, expand_repeats) for item in items)
    try:
        for item, pieces, failure in progress(_Sized(results, len(items))):
            if failure is not None:
                data.failures.append(failure)
            else:
                (data.test if item.held_out else data.train).extend(pieces)
    finally:
        if pool is not None:
            pool.shutdown(cancel_futures=True)
    return data


class _Sized:
    """An iterator with a known length (so a progress bar shows a total and an ETA)."""

    def __init__(self, iterator, length: int):
        self.iterator, self.length = iterator, length

    def __iter__(self):
        return iter(self.iterator)

    def __len__(self) -> int:
        return self.length


def source_items(source: str, *, leave_out: Iterable[str] = ()):
    """Every item of ``source`` (see :mod:`events.sources`) but those of the collections in ``leave_out``
    (a collection kept out of training, to measure how the model does on music it never saw);
    InputError when none is left, or when a collection to leave out is not in the source."""
    from ostinato.events.sources import iter_items

    items = list(iter_items(source, split="all"))
    leave_out = set(leave_out)
    if leave_out:
        found = {collection_of(item.key) for item in items}
        missing = sorted(leave_out - found)
        if missing:
            raise InputError(source, f"has no collection {missing[0]!r} to leave out (it has: "
                                     f"{', '.join(sorted(found))})")
        items = [item for item in items if collection_of(item.key) not in leave_out]
    if not items:
        raise InputError(source, "this source has no pieces")
    return items


def tokenize_source(source: str, tokenizer, *, max_tokens: int, instruments: str = "keep", expand_repeats: bool = False,
                    workers: int = 1, cache_dir: str | os.PathLike | None = None, leave_out: Iterable[str] = (),
                    progress: Callable[[Iterable], Iterable] = lambda x: x) -> TokenData:
    """Tokenize a source, reusing ``cache_dir/tokens-<hash>.npz`` when the same source and tokenizer were done.
    ``leave_out``: collections of the source that are not used at all (:func:`source_items`);
    ``expand_repeats``: as :func:`tokenize_item`.

    Raises:
        InputError: the source has no pieces, or none of them could be tokenized.
    """
    from .fim import plain_json  # the infill tokens change no left-to-right id: runs with and without share

    leave_out = sorted(set(leave_out))
    what = ([CACHE_VERSION, source, plain_json(tokenizer), max_tokens, instruments] + ([leave_out] if leave_out else [])
            + (["expand_repeats"] if expand_repeats else []))
    digest = hashlib.sha256(json.dumps(what, sort_keys=True).encode()).hexdigest()[:16]
    cache = Path(cache_dir) / f"tokens-{digest}.npz" if cache_dir else None
    if cache is not None and cache.is_file():
        return load_token_data(cache)
    data = tokenize_items(source_items(source, leave_out=leave_out), tokenizer, max_tokens=max_tokens,
                          instruments=instruments, expand_repeats=expand_repeats, workers=workers, progress=progress)
    if not data.train:
        first = f" (first problem: {data.failures[0]})" if data.failures else ""
        raise InputError(source, f"no piece could be used for training: {len(data.failures)} failed, "
                                 f"{len(data.test)} held out{first}")
    if cache is not None:
        save_token_data(data, cache)
    return data


def save_token_data(data: TokenData, path: str | os.PathLike) -> None:
    """Store tokenized data as one .npz (no pickle): flat ids plus offsets, keys and units per piece."""
    arrays = {"unit": np.array(data.unit), "failures": np.array(data.failures, dtype=str)}
    for split in ("train", "test"):
        pieces = getattr(data, split)
        lengths = np.array([len(p.ids) for p in pieces], np.int64)
        arrays[f"{split}_ids"] = np.concatenate([p.ids for p in pieces]) if pieces else np.zeros(0, np.int32)
        arrays[f"{split}_offsets"] = np.concatenate([[0], np.cumsum(lengths)])
        arrays[f"{split}_keys"] = np.array([p.key for p in pieces], dtype=str)
        arrays[f"{split}_units"] = np.array([p.n_units for p in pieces], np.int64)
    Path(path).parent.mkdir(parents=True, exist_ok=True)
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez(fh, **arrays)


def load_token_data(path: str | os.PathLike) -> TokenData:
    """Read what :func:`save_token_data` wrote."""
    with np.load(path, allow_pickle=False) as z:
        data = TokenData(unit=str(z["unit"]), failures=[str(f) for f in z["failures"]])
        for split in ("train", "test"):
            ids, offsets = z[f"{split}_ids"], z[f"{split}_offsets"]
            pieces = [TokenizedPiece(str(key), ids[offsets[i]:offsets[i + 1]].astype(np.int32), int(units))
                      for i, (key, units) in enumerate(zip(z[f"{split}_keys"], z[f"{split}_units"], strict=True))]
            setattr(data, split, pieces)
    return data


def augmented(pieces, tokenizer, *, shifts=(), ensembles: bool = False, seed: int = 0) -> list[TokenizedPiece]:
    """``pieces`` and, after each, its augmented copies.

    ``shifts``: transposition augmentation, one copy per shift (semitones) the piece can take
    (``tokenizer.transpose_ids``, MIDI and ABC: a part out of its instrument's range or an ABC key
    beyond 7 sharps or flats leaves that shift out). ``ensembles`` (MIDI): each copy is played by an
    ensemble drawn, seeded by the copy's key, from those its parts can be given
    (:func:`events.instruments.ensemble_maps`, its own among them; ``tokenizer.reinstrument_ids``),
    so a style is heard on every ensemble; with no shifts, each piece gets one copy on another ensemble.
    A copy's key is ``<key>^<shift>[~<ensemble>]`` (``bach/x.mxl@0^+2~brass``), so a
    fill-in-the-middle cut of it (:func:`fim_parts`) is its own.
    """
    if shifts and not hasattr(tokenizer, "transpose_ids"):
        raise ValueError(f"transpose: {tokenizer.kind} tokens cannot be transposed")
    if ensembles and not hasattr(tokenizer, "reinstrument_ids"):
        raise ValueError(f"ensembles: {tokenizer.kind} tokens have no instruments (MIDI tokens only)")
    from ostinato.events.instruments import ensemble_maps

    out = []
    for piece in pieces:
        out.append(piece)
        maps = ensemble_maps(tokenizer.programs_of(piece.ids)) if ensembles else {}
        for shift in [s for s in shifts if s] or ([0] if maps else []):
            ids = tokenizer.transpose_ids(piece.ids, shift) if shift else np.asarray(piece.ids, np.int64)
            if ids is None:
                continue
            key = f"{piece.key}^{shift:+d}"
            if maps:
                rng = np.random.default_rng([seed, zlib.crc32(key.encode()), 21])
                names = [*maps, None] if shift else list(maps)      # None: its own ensemble
                for k in rng.permutation(len(names)):
                    name = names[k]
                    moved = ids if name is None else tokenizer.reinstrument_ids(ids, maps[name])
                    if moved is not None:
                        ids, key = moved, key if name is None else f"{key}~{name}"
                        break
                else:
                    continue
            out.append(TokenizedPiece(key, np.asarray(ids, np.int32), tokenizer.count_units(ids)))
    return out


def fim_parts(pieces, tokenizer, *, share: float, seed: int = 0, max_tokens: int | None = None, epoch: int = 0):
    """``pieces`` (:class:`symbolic.data.TokenizedPiece`) with a ``share`` of them in the fill-in-the-middle
    form (at most ``max_tokens`` long: the prefix's first bars go first); which ones and where they are
    cut depend only on (seed, piece key, epoch): each pass over the data draws its own middles."""
    from .fim import fim_example

    if not 0 <= share <= 1:
        raise ValueError(f"infill_share: expected 0..1, got {share!r}")
    if share == 0:
        return list(pieces)
    out = []
    for piece in pieces:
        rng = np.random.default_rng([seed, zlib.crc32(piece.key.encode()), 20, *([epoch] if epoch else [])])
        if rng.random() < share:
            fim = fim_example(tokenizer, piece.ids, rng, max_tokens=max_tokens)
            if fim is not None:
                out.append(TokenizedPiece(piece.key, np.asarray(fim, np.int32), piece.n_units))
                continue
        out.append(piece)
    return out


def pack(pieces: list[TokenizedPiece]) -> np.ndarray:
    """Every sequence end to end (each starts with ``<bos>`` and whole pieces end with ``<eos>``): int32 [n]."""
    return np.concatenate([p.ids for p in pieces]).astype(np.int32)


def sequence_starts(pieces: list[TokenizedPiece]) -> np.ndarray:
    """Where each sequence of :func:`pack` ``(pieces)`` begins in the stream: int64 [n_pieces]."""
    lengths = np.array([len(p.ids) for p in pieces], dtype=np.int64)
    return np.concatenate([[0], np.cumsum(lengths)[:-1]]) if len(lengths) else lengths


def sample_blocks(stream: np.ndarray, *, block: int, batch: int, seed: int, step: int,
                  starts: np.ndarray | None = None) -> np.ndarray:
    """``batch`` random windows of ``block`` tokens from the packed stream: int64 [batch, block].

    With ``starts`` (:func:`sequence_starts`) every window begins where a sequence begins, at its
    ``<bos>`` and control prefix, as a sampled piece does, and runs on into the sequences after it;
    a fill-in-the-middle sequence that fits the window is then seen whole, its suffix in view of its
    middle (a window from anywhere would mostly cut the suffix off). Without, a window begins anywhere.
    The draw depends only on (seed, step), so a resumed run sees exactly the batches it would have.
    A stream shorter than ``block`` is repeated to fill the window.
    """
    rng = np.random.default_rng([seed, step])
    if starts is not None and len(starts):
        picked = np.asarray(starts)[rng.integers(0, len(starts), size=batch)]
        return np.stack([_wrapped(stream, int(s), block) for s in picked]).astype(np.int64)
    if len(stream) <= block:
        stream = np.tile(stream, block // max(len(stream), 1) + 2)
    begin = rng.integers(0, len(stream) - block + 1, size=batch)
    return np.stack([stream[s:s + block] for s in begin]).astype(np.int64)


def _wrapped(stream: np.ndarray, start: int, block: int) -> np.ndarray:
    """``block`` tokens of ``stream`` from ``start``, going on from its beginning at its end."""
    if start + block <= len(stream):
        return stream[start:start + block]
    tail = stream[start:]
    return np.concatenate([tail, np.resize(stream, block - len(tail))])   # (np.resize repeats a short stream)


def unigram_entropy_bits(stream: np.ndarray, vocab_size: int) -> float:
    """Entropy of the token frequencies of ``stream``, in bits per token: the no-context baseline."""
    counts = np.bincount(stream, minlength=vocab_size).astype(np.float64)
    p = counts[counts > 0] / counts.sum()
    return float(-(p * np.log2(p)).sum())
