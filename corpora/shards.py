"""Token shards: what ``ostinato convert --to tokens`` writes, laid out for training.

The output folder holds::

    tokenizer.json         the tokenizer that made the ids (symbolic.tokenizers.load_tokenizer reads it)
    train-00000.bin ...    token ids of the training pieces, concatenated, little-endian
    test-00000.bin ...     the held-out pieces (DESIGN.md's split), likewise
    index.jsonl            one line per sequence (a piece, or one window of a long MIDI piece):
                           {"key", "split", "shard", "offset", "length"}; "key" is the piece's split key,
                           which a converted file carries from its source (events.origins)
    meta.json              {"format": "ostinato-token-shards", "version": 1, "dtype": "uint16",
                            "vocab_size", "tokenizer", "tokenizer_kind", "n_pieces", "n_sequences",
                            "n_tokens", "shards"} (counts per split)
    manifest.jsonl         the batch's manifest (corpora.manifest)

``dtype`` is ``uint16`` when the vocabulary fits (up to 65,536 ids), else ``uint32``. Offsets
and lengths count tokens, not bytes. A shard is raw ids with no header, so a trainer can map
it whole (``np.memmap(path, dtype, mode="r")``) and draw windows across pieces, as nanoGPT
does, or cut pieces out by the index (:func:`iter_shard_pieces`). Pieces are appended in the order
they finish, so the order inside a shard is not the source order; the index names each one.
A shard is closed at ``shard_tokens`` tokens (default 2**27) and the next one begun.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path

import numpy as np

from ostinato.events.atomic import write_text_atomic

FORMAT = "ostinato-token-shards"
VERSION = 1
DEFAULT_SHARD_TOKENS = 2**27
SPLIT_NAMES = ("train", "test")


def dtype_for(vocab_size: int) -> np.dtype:
    """The smallest unsigned dtype that holds ids ``0 .. vocab_size - 1`` (uint16 or uint32)."""
    return np.dtype("<u2") if vocab_size <= 2**16 else np.dtype("<u4")


def shard_name(split: str, number: int) -> str:
    return f"{split}-{number:05d}.bin"


class ShardWriter:
    """Appends each piece's ids to the current shard of its split.

    Args:
        folder: the output folder.
        dtype: the id dtype (see :func:`dtype_for`).
        committed: tokens per shard name that the manifest vouches for; every existing shard is
            cut to that length (extra ids are from a run killed before its manifest line), and a
            shard with none is removed.
        shard_tokens: close a shard once it holds this many tokens.
    """

    def __init__(self, folder: str | os.PathLike, *, dtype: np.dtype, committed: dict[str, int],
                 shard_tokens: int = DEFAULT_SHARD_TOKENS):
        if shard_tokens <= 0:
            raise ValueError(f"shard_tokens must be > 0, got {shard_tokens}")
        self.folder = Path(folder)
        self.dtype = np.dtype(dtype)
        self.shard_tokens = shard_tokens
        self._files: dict[str, object] = {}
        self._current: dict[str, tuple[str, int]] = {}  # split -> (shard name, tokens in it)
        for split in SPLIT_NAMES:
            for path in sorted(self.folder.glob(f"{split}-*.bin")):
                keep = committed.get(path.name, 0) * self.dtype.itemsize
                if keep == 0:
                    path.unlink()
                    continue
                if path.stat().st_size > keep:
                    with open(path, "r+b") as f:
                        f.truncate(keep)
                self._current[split] = (path.name, keep // self.dtype.itemsize)

    def append(self, split: str, ids: np.ndarray) -> dict:
        """Append ``ids`` (a piece) to ``split``'s shard; returns ``{"shard", "offset", "length"}``."""
        if split not in SPLIT_NAMES:
            raise ValueError(f"split must be one of {', '.join(SPLIT_NAMES)}, got {split!r}")
        ids = np.asarray(ids)
        if ids.size and (ids.min() < 0 or ids.max() >= np.iinfo(self.dtype).max + 1):
            raise ValueError(f"token ids out of range for {self.dtype.name}: {ids.min()}..{ids.max()}")
        name, used = self._current.get(split, (None, 0))
        if name is None or used >= self.shard_tokens:
            number = int(name.split("-")[1].split(".")[0]) + 1 if name else 0
            name, used = shard_name(split, number), 0
        if name not in self._files:
            self._files[name] = open(self.folder / name, "ab")  # noqa: SIM115 (closed by close())
        f = self._files[name]
        f.write(ids.astype(self.dtype).tobytes())
        f.flush()
        self._current[split] = (name, used + int(ids.size))
        return {"shard": name, "offset": used, "length": int(ids.size)}

    def sync(self) -> None:
        """Flush and fsync every open shard (called before the manifest is fsync'd)."""
        for f in self._files.values():
            f.flush()
            os.fsync(f.fileno())

    def close(self) -> None:
        self.sync()
        for f in self._files.values():
            f.close()
        self._files.clear()


def committed_tokens(records: dict[str, dict], folder: str | os.PathLike, dtype: np.dtype) -> tuple[dict, set]:
    """From the latest manifest records: tokens vouched for per shard, and the keys whose tokens are intact.

    A record's tokens are intact when its shard exists and is long enough; shard lengths are
    the largest end of an intact record.
    """
    folder = Path(folder)
    itemsize = np.dtype(dtype).itemsize
    sizes: dict[str, int] = {}
    ends: dict[str, int] = {}
    intact = set()
    for key, record in records.items():
        if record.get("status") not in ("ok", "skipped"):
            continue
        parts = [o for o in record.get("outputs") or [] if isinstance(o, dict)]
        good = True
        for out in parts:
            name = out.get("shard", "")
            if name not in sizes:
                path = folder / name
                sizes[name] = path.stat().st_size // itemsize if name and path.is_file() else -1
            if out["offset"] + out["length"] > sizes[name]:
                good = False
        if good:
            intact.add(key)
            for out in parts:
                ends[out["shard"]] = max(ends.get(out["shard"], 0), out["offset"] + out["length"])
    return ends, intact


def write_index(folder: str | os.PathLike, records: dict[str, dict], *, dtype: np.dtype, vocab_size: int,
                tokenizer_kind: str | None) -> dict:
    """Write ``index.jsonl`` and ``meta.json`` (atomically) from the latest manifest records; returns meta."""
    folder = Path(folder)
    lines, shards = [], set()
    n_pieces, n_sequences, n_tokens = (dict.fromkeys(SPLIT_NAMES, 0) for _ in range(3))
    for key in sorted(records):
        record = records[key]
        if record.get("status") not in ("ok", "skipped"):
            continue
        splits = set()
        for out in record.get("outputs") or []:
            if not isinstance(out, dict):
                continue
            split = out["shard"].split("-")[0]
            lines.append(json.dumps({"key": key, "split": split, **out}))
            splits.add(split)
            n_sequences[split] += 1   # a long MIDI piece is cut into several windows: one piece, several sequences
            n_tokens[split] += out["length"]
            shards.add(out["shard"])
        for split in splits:
            n_pieces[split] += 1
    write_text_atomic(folder / "index.jsonl", "".join(line + "\n" for line in lines))
    meta = {"format": FORMAT, "version": VERSION, "dtype": np.dtype(dtype).name, "vocab_size": vocab_size,
            "tokenizer": "tokenizer.json", "tokenizer_kind": tokenizer_kind, "n_pieces": n_pieces,
            "n_sequences": n_sequences, "n_tokens": n_tokens, "shards": sorted(shards)}
    write_text_atomic(folder / "meta.json", json.dumps(meta, indent=1) + "\n")
    return meta


def iter_shard_pieces(folder: str | os.PathLike, *, split: str = "train") -> Iterator[tuple[str, np.ndarray]]:
    """Yield ``(key, ids)`` for every piece of ``split`` (``train``, ``test`` or ``all``) in a shard folder."""
    folder = Path(folder)
    meta = json.loads((folder / "meta.json").read_text())
    if meta.get("format") != FORMAT:
        raise ValueError(f"{folder}: not an ostinato token shard folder")
    dtype = np.dtype(meta["dtype"])
    maps: dict[str, np.ndarray] = {}
    with open(folder / "index.jsonl", encoding="utf-8") as f:
        for line in f:
            entry = json.loads(line)
            if split != "all" and entry["split"] != split:
                continue
            name = entry["shard"]
            if name not in maps:
                maps[name] = np.memmap(folder / name, dtype=dtype, mode="r")
            yield entry["key"], maps[name][entry["offset"]:entry["offset"] + entry["length"]]
