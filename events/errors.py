"""The one error type for bad input: its message is a single line that names the file."""

from __future__ import annotations

import os
import sys


class InputError(ValueError):
    """A file (or source) that cannot be read as music.

    ``str(error)`` is ``"<path>: <problem>"``, one line, ready to print without a traceback.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = " ".join(str(problem).split())  # one line, whatever a library said
        super().__init__(f"{self.path}: {self.problem}")

    def __reduce__(self):   # survives pickling (worker processes hand errors back)
        return (type(self), (self.path, self.problem))


class UsageError(ValueError):
    """A bad option or option value, found before any work starts: exit code 2, as argparse's own.

    ``str(error)`` is ``"<option or command>: <problem>"``, one line.
    """

    def __init__(self, where: str, problem: str):
        self.where = where
        self.problem = " ".join(str(problem).split())
        super().__init__(f"{where}: {self.problem}")

    def __reduce__(self):
        return (type(self), (self.where, self.problem))


def one_line(exc: BaseException, source: str | None = None) -> str:
    """The one-line message for ``exc``: ``"<file>: <problem>"``.

    An :class:`InputError` already names its file. Any other exception is prefixed with
    ``source`` (the file or item it happened on) and its class name, so it can still be told apart.
    """
    detail = str(exc) if source is None or isinstance(exc, InputError) else f"{type(exc).__name__}: {exc}"
    where = f"{source}: " if source and not isinstance(exc, InputError) else ""
    return where + " ".join(detail.split())


def report(exc: BaseException, *, debug: bool = False, source: str | None = None) -> None:
    """Print ``ostinato: <one line>`` to stderr (with the traceback first when ``debug``)."""
    if debug:
        import traceback

        traceback.print_exception(exc, file=sys.stderr)
    print(f"ostinato: {one_line(exc, source)}", file=sys.stderr, flush=True)
