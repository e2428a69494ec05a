"""The manifest in the output folder, the truth of a batch: a JSON line per item each time it is converted or fails.

Each line (``manifest.jsonl``)::

    {"key": "folk/reels/set.abc#2", "input": "/data/folk/reels/set.abc", "sha256": "9f2c...",
     "status": "ok" | "failed" | "skipped", "error": null | "InputError" | "Timeout" | ...,
     "message": null | "one line", "outputs": ["folk/reels/set.abc#2.mid"], "seconds": 0.0213,
     "target": "mid", "options": {"abc_reader": "abc2midi", ...}, "time": "2026-11-21T19:40:00Z",
     "versions": {"ostinato": "0.1.0", ...}}

``options`` are the conversion options that shape the output (a rerun with other options
redoes the items). ``outputs`` are paths relative to the output folder; for the ``tokens`` target each output is
``{"shard": "train-00000.bin", "offset": 1234, "length": 56}`` (offset and length in tokens).
``skipped`` means nothing to convert (an empty piece). An item that an earlier run finished is
skipped without a new line (a rerun does not grow the manifest). The file is only ever
appended to; the last line of a key is its state. A line is written after the item's outputs
are complete on disk, so after a kill or power cut the manifest never claims an unfinished
output (a torn last line is dropped when the next run opens the file).

The keys travel with the data: read again as a source (``convert out --to tokens``, ``train
symbolic --data out``), each output file is keyed by its record's ``key``, not by its new path
(:mod:`events.origins`), so a held-out piece stays held out.
"""

from __future__ import annotations

import json
import os
import time
from importlib import metadata
from pathlib import Path

from ostinato.events.origins import MANIFEST_NAME  # events re-keys converted files by their manifest

__all__ = ["MANIFEST_NAME", "ManifestWriter", "latest", "read_manifest", "versions"]

FSYNC_EVERY_S = 1.0


def versions(*packages: str) -> dict[str, str]:
    """Installed versions of ostinato and ``packages`` (those installed)."""
    out = {}
    for name in ("ostinato", *packages):
        try:
            out[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            continue
    return out


def read_manifest(path: str | os.PathLike, *, repair: bool = False) -> list[dict]:
    """Every complete record of a manifest (none if it does not exist).

    A last line without its newline (a write cut short by a kill) is ignored, and with
    ``repair`` cut off the file so that the next record starts on a line of its own.
    """
    path = Path(path)
    if not path.is_file():
        return []
    data = path.read_bytes()
    end = data.rfind(b"\n") + 1
    if repair and end < len(data):
        with open(path, "r+b") as f:
            f.truncate(end)
    records = []
    for line in data[:end].splitlines():
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError:
            continue
        if isinstance(record, dict) and "key" in record:
            records.append(record)
    return records


def latest(records: list[dict]) -> dict[str, dict]:
    """The last record of each key (its current state)."""
    return {record["key"]: record for record in records}


class ManifestWriter:
    """Appends records; flushes each line, fsyncs at most once a second and on :meth:`sync`/:meth:`close`.

    With ``outputs_unsynced`` (outputs written under :func:`events.atomic.deferred_fsync`) lines are
    held back until :meth:`sync`, which first flushes the whole file system (the outputs they
    claim) and only then writes and fsyncs them: a line on disk still means its outputs are.
    """

    def __init__(self, path: str | os.PathLike, *, target: str, versions: dict[str, str], options: dict | None = None,
                 outputs_unsynced: bool = False):
        self.path = Path(path)
        self.target = target
        self.options = options or {}
        self.versions = versions
        self.outputs_unsynced = outputs_unsynced
        self._pending: list[str] = []
        self._file = open(self.path, "a", encoding="utf-8")  # noqa: SIM115 (closed by close())
        self._synced = time.monotonic()

    def write(self, **fields) -> dict:
        record = {"key": fields.pop("key"), **fields, "target": self.target, "options": self.options,
                  "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "versions": self.versions}
        line = json.dumps(record, ensure_ascii=False) + "\n"
        if self.outputs_unsynced:
            self._pending.append(line)
        else:
            self._file.write(line)
            self._file.flush()
        if time.monotonic() - self._synced > FSYNC_EVERY_S:
            self.sync()
        return record

    def sync(self) -> None:
        if self._pending:
            from ostinato.events.atomic import sync_filesystem

            sync_filesystem(self.path.parent)   # the outputs the pending lines claim reach the disk first
            self._file.write("".join(self._pending))
            self._pending.clear()
        self._file.flush()
        os.fsync(self._file.fileno())
        self._synced = time.monotonic()

    def close(self) -> None:
        if not self._file.closed:
            self.sync()
            self._file.close()
