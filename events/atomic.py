"""Atomic output: write to a temporary file beside the target, then ``os.replace`` it.

A reader never sees a half-written file, and a crash leaves the previous file intact.
"""

from __future__ import annotations

import contextlib
import os
import re
import tempfile
from collections.abc import Iterator
from pathlib import Path

# Our temporaries, and only ours, are named ``.<target name>.<8 random characters>.ostinato-tmp<suffix>``.
TMP_MARK = ".ostinato-tmp"
_TMP_NAME = re.compile(r"^\.(?P<target>.+)\.[a-z0-9_]{8}" + re.escape(TMP_MARK) + r"(?P<suffix>\.[^./]*)?$")


def temporary_target(name: str) -> str | None:
    """The file name a temporary of :func:`atomic_path` was to become (``None``: not one of ours)."""
    match = _TMP_NAME.match(name)
    if match is None or (match["suffix"] or "") != os.path.splitext(match["target"])[1]:
        return None
    return match["target"]


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path in the target's folder; on success it replaces ``path``.

    The temporary name keeps the target's suffix so that libraries choosing a format by
    extension (music21, soundfile) still choose right. On error the temporary is removed.
    """
    target = Path(path)
    target.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=f"{TMP_MARK}{target.suffix}", dir=target.parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, output_mode())   # mkstemp makes 0600; outputs get the usual mode
        os.replace(tmp_path, target)
    except BaseException:
        tmp_path.unlink(missing_ok=True)
        raise


def output_mode() -> int:
    """The mode of a new output file: 0666 less the umask (0644 under the usual umask 022)."""
    return 0o666 & ~_umask()


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


_deferred = False   # True inside deferred_fsync(): the caller makes outputs durable itself


@contextlib.contextmanager
def deferred_fsync() -> Iterator[None]:
    """Within this block (and in processes forked inside it) :func:`write_bytes_atomic` does not fsync
    each file: the caller calls :func:`sync_filesystem` before it records them as done (``convert``'s
    manifest does, at most once a second). An fsync per small file costs more than converting it."""
    global _deferred
    previous, _deferred = _deferred, True
    try:
        yield
    finally:
        _deferred = previous


def sync_filesystem(path: str | os.PathLike) -> None:
    """Flush everything written to the file system holding ``path`` to disk (Linux ``syncfs``, else ``sync``)."""
    import ctypes

    fd = os.open(path, os.O_RDONLY)
    try:
        syncfs = getattr(ctypes.CDLL(None, use_errno=True), "syncfs", None)
        if syncfs is None or syncfs(fd) != 0:
            os.sync()
    finally:
        os.close(fd)


def write_bytes_atomic(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to ``path`` atomically (fsync'd before the rename, unless in :func:`deferred_fsync`)."""
    with atomic_path(path) as tmp, open(tmp, "wb") as f:
        f.write(data)
        f.flush()
        if not _deferred:
            os.fsync(f.fileno())


def write_text_atomic(path: str | os.PathLike, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` atomically."""
    write_bytes_atomic(path, text.encode("utf-8"))
