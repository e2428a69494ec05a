"""Every item of a batch gets its own output, or fails naming the item that already has it.

Batch commands (``convert``, ``render``) map many inputs to files under one folder; two inputs
can map to one output (two source folders of one name, ``x.abc`` tune 1 beside a file named
``x.abc#1.mid``, ``a.mid`` beside ``a.abc``). :class:`OutputClaims` decides, in input order:
the first item keeps the output; a later one is told which earlier item holds it (the batch then
names it in its failure, or picks another name).
Names are compared case-folded, so a case-insensitive file system cannot merge them either.
"""

from __future__ import annotations

import os
from collections.abc import Hashable, Iterable


def output_name(path: str | os.PathLike) -> str:
    """``path`` as compared for collisions: absolute, normalised, case-folded."""
    return os.path.normcase(os.path.abspath(os.fspath(path))).casefold()


class OutputClaims:
    """Names already taken by items of one batch, in the order they were claimed.

        claims = OutputClaims()
        owner = claims.claim([output_name(out)], item)   # None: ``item`` now holds it; else the earlier holder
    """

    def __init__(self) -> None:
        self._owners: dict[Hashable, object] = {}

    def owner(self, names: Iterable[Hashable]):
        """The item holding any of ``names``, or None when all are free."""
        return next((self._owners[name] for name in names if name in self._owners), None)

    def claim(self, names: Iterable[Hashable], item: object) -> object | None:
        """Give ``names`` to ``item`` when all are free (returns None); else return their earlier holder."""
        names = list(names)
        owner = self.owner(names)
        if owner is None:
            self._owners.update(dict.fromkeys(names, item))
        return owner
