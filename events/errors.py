"""The one error type for bad input: its message is a single line that names the file."""

from __future__ import annotations

import os


class InputError(ValueError):
    """A file (or source) that cannot be read as music.

    ``str(error)`` is ``"<path>: <problem>"``, one line, ready to print without a traceback.
    """

    def __init__(self, path: str | os.PathLike, problem: str):
        self.path = os.fspath(path)
        self.problem = " ".join(str(problem).split())  # one line, whatever a library said
        super().__init__(f"{self.path}: {self.problem}")
