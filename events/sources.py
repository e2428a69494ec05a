"""Sources: what a batch reads, as a stream of :class:`Item` (one per piece), each with its split key.

A source is one of

==============================  =========================================================
``song.mid``, ``tunes.abc``     one file (an ABC file gives one item per tune)
``data/midi``                   a folder, recursively: every file with a readable suffix
                                (``events.READ_SUFFIXES``); hidden files are skipped
``'data/**/*.mid'``             a glob (quote it; ``**`` recurses)
``music21:bach``                a collection (a folder) of music21's corpus
``music21:abc-folk``            music21's ABC folk collections: airdsAirs, essenFolksong,
                                miscFolk, nottingham-dataset, oneills1850, ryansMammoth
                                (about 13,000 tunes)
``music21:abc``                 every ABC collection of music21's corpus (the folk ones and josquin)
``music21:polyphonic``          music21's part-writing collections: bach, palestrina, monteverdi,
                                trecento, ciconia, luca, lusitano, haydn, mozart, beethoven,
                                corelli, handel, cpebach
``music21:bach/bwv66.6``        one piece of music21's corpus, by its corpus name
==============================  =========================================================

Keys (DESIGN.md, "Held-out split") are ``<collection>/<path relative to the collection>``,
with ``#<X number>`` for each tune of an ABC file (every ABC tune is keyed this way, even
in a file with one tune). The collection is

- for ``music21:`` sources, the corpus folder: ``music21:essenFolksong`` tune X:3 of
  ``altdeu10.abc`` is ``essenFolksong/altdeu10.abc#3``; ``music21:bach/bwv66.6`` is
  ``bach/bwv66.6.mxl`` (the same key as when it comes through ``music21:bach``);
- for a folder, the folder's own name: ``~/data/folk`` holding ``reels/a.abc`` gives
  ``folk/reels/a.abc#1``;
- for a glob, the name of the last folder before the first wildcard:
  ``data/midi/**/*.mid`` gives ``midi/<relative path>``;
- for a single file, the name of the folder holding it: ``data/midi/x.mid`` is ``midi/x.mid``.

Paths in keys use ``/`` on every system. A key is held out (the test split) when the first
byte of ``sha256(key)`` is below 13: about 5% of pieces, the same on every machine.

Enumerating a source never parses music: ABC files are split into tunes once (cheap text
work) and each tune's text travels with its item; MIDI, MusicXML and kern are read only
when :meth:`Item.read` is called, so one broken piece fails only when it is read. A folder
that cannot be listed, and a broken link, are named in a :class:`SourceWarning` (what they hold is
skipped); nothing is skipped silently. ``exclude`` keeps a batch's own output folder out of a
source that contains it.
"""

from __future__ import annotations

import glob
import hashlib
import os
import warnings
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path

from .abc_read import ABC_SUFFIXES
from .errors import InputError
from .io import READ_SUFFIXES
from .table import NoteTable

MUSIC21_PREFIX = "music21:"
HELD_OUT_BELOW = 13  # first byte of sha256(key) below this: held out (DESIGN.md)
SPLITS = ("train", "test", "all")
ABC_READERS = ("music21", "abc2midi")
ABC_FOLK_COLLECTIONS = ("airdsAirs", "essenFolksong", "miscFolk", "nottingham-dataset", "oneills1850", "ryansMammoth")
ABC_COLLECTIONS = (*ABC_FOLK_COLLECTIONS, "josquin")
# Part-writing: chorales, masses and madrigals, the trecento, string quartets and trio sonatas.
POLYPHONIC_COLLECTIONS = ("bach", "palestrina", "monteverdi", "trecento", "ciconia", "luca", "lusitano", "haydn",
                          "mozart", "beethoven", "corelli", "handel", "cpebach")
COLLECTION_GROUPS = {"abc-folk": ABC_FOLK_COLLECTIONS, "abc": ABC_COLLECTIONS, "polyphonic": POLYPHONIC_COLLECTIONS}
_GLOB_CHARS = frozenset("*?[")


class SourceWarning(UserWarning):
    """Part of a source could not be looked at (a folder that cannot be listed, a broken link): named, skipped."""


def is_held_out(key: str) -> bool:
    """True when ``key`` is in the held-out (test) split: first byte of sha256(key, UTF-8) < 13."""
    return hashlib.sha256(key.encode("utf-8")).digest()[0] < HELD_OUT_BELOW


def check_split(split: str) -> str:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {', '.join(SPLITS)}, got {split!r}")
    return split


@dataclass(frozen=True)
class Item:
    """One piece of a source, not yet parsed.

    Attributes:
        key: the split key, ``<collection>/<relative path>[#X]`` (see the module docstring).
        path: the real file path (music21 corpus names resolved).
        tune: the ``X:`` number of one tune of an ABC file, else None.
        audio: the aligned audio file, for paired layouts (see :mod:`render.datasets`), else None.
        text: the tune's own ABC text (header inherited from the file), for ABC tunes; else None.
    """

    key: str
    path: str
    tune: int | None = None
    audio: str | None = None
    text: str | None = field(default=None, repr=False, compare=False)

    @property
    def held_out(self) -> bool:
        """True when this piece is in the held-out (test) split."""
        return is_held_out(self.key)

    @property
    def split(self) -> str:
        """``"test"`` when held out, else ``"train"``."""
        return "test" if self.held_out else "train"

    @property
    def is_abc(self) -> bool:
        return Path(self.path).suffix.lower() in ABC_SUFFIXES

    def read(self, *, expand_repeats: bool = False, abc_reader: str = "music21") -> NoteTable:
        """Parse the piece into a note table.

        Args:
            expand_repeats: play ABC/MusicXML repeats out (music21 reader).
            abc_reader: for ABC, ``"music21"`` (events' reader: as written, measures kept) or
                ``"abc2midi"`` (as performed, about 20x faster; see :mod:`events.abc2midi`).

        Raises:
            events.InputError: the piece cannot be read (one line, naming the file or tune).
        """
        from . import io as events
        if abc_reader not in ABC_READERS:
            raise ValueError(f"abc_reader must be one of {', '.join(ABC_READERS)}, got {abc_reader!r}")
        if self.is_abc and abc_reader == "abc2midi":
            from .abc2midi import read_abc_abc2midi

            return read_abc_abc2midi(self.abc_text(), self.key)
        if self.is_abc and self.tune is not None:
            from .abc_read import AbcTune, parse_tune

            return parse_tune(AbcTune(self.tune, self.abc_text()), self.path, expand_repeats=expand_repeats)
        return events.read(self.path, expand_repeats=expand_repeats)

    def abc_text(self) -> str:
        """The tune's own ABC text: its lines, with the file header's fields and version line.

        Raises:
            events.InputError: the item is not ABC, or the file cannot be read as ABC.
        """
        if not self.is_abc:
            raise InputError(self.path, "not an ABC file (the abc tokenizer needs ABC text)")
        if self.text is not None:
            return self.text
        from .abc_read import read_abc_text, split_tunes

        tunes = split_tunes(read_abc_text(self.path))
        if not tunes:
            raise InputError(self.path, "no ABC tune found (no X: or K: line)")
        if self.tune is None:
            return tunes[0].text
        for tune in tunes:
            if tune.number == self.tune:
                return tune.text
        raise InputError(self.path, f"no tune X:{self.tune}")


# ---------------------------------------------------------------------------- enumeration
def _file_items(path: Path, key: str) -> Iterator[Item]:
    """The items of one file: one per ABC tune (keyed ``key#X``), else one keyed ``key``.

    An ABC file that cannot be read or split gives one item (no tune) whose ``read()``
    raises the reason, so a batch lists it as failed instead of stopping. A file that ``convert``
    wrote keeps the key its manifest records for it (:func:`events.origins.origin_key`), so the
    held-out split follows the piece, not its new file name.
    """
    from .origins import origin_key

    origin = origin_key(path)
    key = origin or key
    if path.suffix.lower() not in ABC_SUFFIXES:
        yield Item(key=key, path=str(path))
        return
    from .abc_read import read_abc_text, split_tunes, tune_keys

    try:
        tunes = split_tunes(read_abc_text(path))
    except InputError:
        tunes = []
    if not tunes:
        yield Item(key=key, path=str(path))
        return
    if origin is not None and len(tunes) == 1:   # a converted tune: its recorded key already names the tune
        yield Item(key=key, path=str(path), tune=tunes[0].number, text=tunes[0].text)
        return
    for tune, suffix in zip(tunes, tune_keys(tunes), strict=True):
        yield Item(key=f"{key}#{suffix}", path=str(path), tune=tune.number, text=tune.text)


def _folder_id(path: str | os.PathLike) -> tuple[int, int] | None:
    try:
        info = os.stat(path)
    except OSError:
        return None
    return (info.st_dev, info.st_ino)


def _walk(folder: Path, skip: frozenset[tuple[int, int]] = frozenset()) -> Iterator[Path]:
    """Readable files under ``folder``, recursively, in sorted order; hidden names skipped.

    Symbolic links to folders are followed, each real folder once (a link loop ends there).
    Folders in ``skip`` (``(st_dev, st_ino)``: an output folder inside the source) are not entered.
    A folder that cannot be listed, and a broken link, are warned about by name (their files,
    if any, are not read); nothing is skipped silently.
    """
    seen: set[tuple[int, int]] = set(skip)

    def unlistable(error: OSError) -> None:
        where = error.filename or folder
        warnings.warn(f"{where}: cannot list this folder ({error.strerror or error}); its files are skipped",
                      SourceWarning, stacklevel=2)

    for dirpath, dirnames, filenames in os.walk(folder, followlinks=True, onerror=unlistable):
        ident = _folder_id(dirpath)
        if ident is None or ident in seen:
            dirnames[:] = []
            continue
        seen.add(ident)
        dirnames[:] = sorted(d for d in dirnames if not d.startswith("."))
        for name in sorted(filenames):
            if name.startswith("."):
                continue
            path = Path(dirpath) / name
            if Path(name).suffix.lower() in READ_SUFFIXES:
                yield path
            elif path.is_symlink() and not path.exists():
                warnings.warn(f"{path}: a broken link (to {os.readlink(path)}); skipped", SourceWarning, stacklevel=2)


def _relative_key(collection: str, base: Path, path: Path) -> str:
    return f"{collection}/{path.relative_to(base).as_posix()}"


def _folder_items(folder: Path, collection: str, source: str, exclude: tuple[str, ...] = ()) -> Iterator[Item]:
    skip = set()
    for path in exclude:   # an output folder that is this folder holds its outputs under <collection>/
        ident = _folder_id(path)
        if ident is not None:
            skip.add(_folder_id(Path(path) / collection) if ident == _folder_id(folder) else ident)
    found = False
    for path in _walk(folder, frozenset(skip - {None})):
        found = True
        yield from _file_items(path, _relative_key(collection, folder, path))
    if not found:
        raise InputError(source, f"no music files in this folder (looked for {', '.join(READ_SUFFIXES)})")


def _inside(path: Path, folders: tuple[str, ...]) -> bool:
    real = os.path.realpath(path)
    return any(os.path.commonpath([real, os.path.realpath(folder)]) == os.path.realpath(folder) for folder in folders)


def _glob_items(pattern: str, exclude: tuple[str, ...] = ()) -> Iterator[Item]:
    parts = Path(pattern).parts
    fixed = next((i for i, part in enumerate(parts) if _GLOB_CHARS & set(part)), len(parts))
    base = Path(*parts[:fixed]) if fixed else Path(".")
    collection = base.resolve().name or "root"
    matches = sorted(Path(p) for p in glob.glob(pattern, recursive=True))
    files = [p for p in matches if p.is_file() and not p.name.startswith(".") and not _inside(p, exclude)]
    if not files:
        raise InputError(pattern, "no file matches this pattern")
    root = Path(os.path.normpath(base))
    for path in files:
        real = Path(os.path.normpath(path))   # no ".." in a key: keys become output paths
        try:
            key = _relative_key(collection, root, real)
        except ValueError:   # the pattern climbed out of its fixed folder: keyed as a lone file
            key = f"{real.resolve().parent.name or 'root'}/{real.name}"
        yield from _file_items(path, key)


def music21_corpus_root() -> Path:
    """The folder of music21's own corpus (installed with the music21 package)."""
    import music21

    return Path(music21.__file__).parent / "corpus"


def _music21_items(source: str) -> Iterator[Item]:
    name = source[len(MUSIC21_PREFIX):].strip("/")
    root = music21_corpus_root()
    if name in COLLECTION_GROUPS:
        for collection in COLLECTION_GROUPS[name]:
            if (root / collection).is_dir():
                yield from _folder_items(root / collection, collection, source)
        return
    target = root / name
    if name and target.is_dir() and not name.startswith(("_", ".")):
        yield from _folder_items(target, target.relative_to(root).parts[0], source)
        return
    if name and target.is_file():
        path = target
    else:
        from .music21_io import corpus_path

        path = corpus_path(source)  # raises InputError naming the source
    try:
        key = path.resolve().relative_to(root.resolve()).as_posix()
    except ValueError:  # a corpus registered outside the package folder
        key = f"{path.parent.name}/{path.name}"
    yield from _file_items(path, key)


def iter_items(source: str | os.PathLike, *, split: str = "all",
               exclude: Iterable[str | os.PathLike] = ()) -> Iterator[Item]:
    """The items of one source (a file, folder, glob or ``music21:`` name), in a stable order.

    Args:
        source: see the module docstring.
        split: ``"train"`` (not held out), ``"test"`` (held out) or ``"all"``.
        exclude: folders whose files are never items (an output folder inside a source folder, so that
            a rerun does not read its own outputs); when one is the source folder itself, its
            ``<collection>/`` subfolder (where a batch writes that source's outputs) is left out.

    Raises:
        events.InputError: the source does not exist or holds no music files (raised when
            iteration starts).

    Warns:
        SourceWarning: a folder that cannot be listed, or a broken link, naming it (its files are skipped).
    """
    check_split(split)
    for item in _iter_all(os.fspath(source), tuple(os.fspath(folder) for folder in exclude)):
        if split == "all" or item.held_out == (split == "test"):
            yield item


def _iter_all(source: str, exclude: tuple[str, ...] = ()) -> Iterator[Item]:
    if source.startswith(MUSIC21_PREFIX):
        yield from _music21_items(source)
        return
    path = Path(source).expanduser()
    if path.is_dir():
        collection = path.resolve().name or "root"
        yield from _folder_items(path, collection, source, exclude)
    elif path.is_file():
        collection = path.resolve().parent.name or "root"
        yield from _file_items(path, f"{collection}/{path.name}")
    elif _GLOB_CHARS & set(source):
        yield from _glob_items(str(path), exclude)
    else:
        raise InputError(source, "no such file, folder or music21: collection")


def iter_sources(sources: Iterable[str | os.PathLike], *, split: str = "all",
                 exclude: Iterable[str | os.PathLike] = ()) -> Iterator[Item]:
    """The items of every source in turn; the same piece of the same file is given once.

    Two different files can still share a key (two folders of the same name); both are given,
    and the consumer decides (``convert`` fails the second, naming the first). ``exclude``: as
    :func:`iter_items`.
    """
    exclude = tuple(exclude)
    seen: set[tuple[str, str, int | None]] = set()
    for source in sources:
        for item in iter_items(source, split=split, exclude=exclude):
            identity = (item.key, os.path.realpath(item.path), item.tune)
            if identity not in seen:
                seen.add(identity)
                yield item
