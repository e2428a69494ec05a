"""Split keys that travel with converted files: the key a file had before ``convert`` wrote it.

``ostinato convert SRC --to mid -o out`` writes ``out/manifest.jsonl``, one record per item with
its split key and the files it became (``{"key": "bach/bwv66.6.mxl", "outputs":
["bach/bwv66.6.mxl.mid"], "status": "ok", ...}``; :mod:`corpora.manifest`). Read again as a
source, ``out/bach/bwv66.6.mxl.mid`` would be keyed ``out/bach/bwv66.6.mxl.mid`` by its new path
and land on the other side of the held-out split about one time in twenty. :func:`origin_key`
gives it back its recorded key instead, so the split follows the piece through any number of
conversions (each manifest records the key its input carried).

The manifest is looked for in the file's folder and every folder above it (the nearest one that
lists the file wins): a subfolder or a single file of a converted folder keeps its keys too.
"""

from __future__ import annotations

import json
import os
from functools import lru_cache
from pathlib import Path

MANIFEST_NAME = "manifest.jsonl"


def origin_key(path: str | os.PathLike) -> str | None:
    """The split key recorded for ``path`` by the manifest of a convert output folder above it, or None."""
    path = Path(os.path.abspath(path))
    folder = path.parent
    for parent in (folder, *folder.parents):
        manifest = parent / MANIFEST_NAME
        keys = _keys_of(str(manifest), *_stamp(manifest))
        if keys:
            key = keys.get(path.relative_to(parent).as_posix())
            if key is not None:
                return key
    return None


def _stamp(path: Path) -> tuple[int, int]:
    try:
        info = os.stat(path)
    except OSError:
        return (0, 0)
    return (info.st_mtime_ns, info.st_size)


@lru_cache(maxsize=64)
def _keys_of(manifest: str, mtime_ns: int, size: int) -> dict[str, str]:
    """``{output path relative to the manifest's folder: key}`` of the items a manifest lists as ok
    (the last record of each key wins); {} when there is no manifest (``size`` 0) or it is not one."""
    if not size:
        return {}
    latest: dict[str, dict] = {}
    try:
        with open(manifest, "rb") as f:
            for line in f:
                try:
                    record = json.loads(line)
                except ValueError:   # a torn last line, or not JSON at all
                    continue
                if isinstance(record, dict) and isinstance(record.get("key"), str):
                    latest[record["key"]] = record
    except OSError:
        return {}
    keys: dict[str, str] = {}
    for key, record in latest.items():
        outputs = record.get("outputs")
        if record.get("status") != "ok" or not isinstance(outputs, list):
            continue
        for output in outputs:
            if isinstance(output, str):
                keys[Path(output).as_posix()] = key
    return keys
