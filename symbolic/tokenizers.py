"""One interface for every tokenizer (:class:`Tokenizer`), and building, saving and loading one by kind.

    tok = build_tokenizer("remi")            # or "tsd", "midilike", "abc"
    ids = tok.encode(table)                  # a NoteTable (MIDI kinds) or ABC tune text ("abc")
    tok.save("tokenizer.json"); tok = load_tokenizer("tokenizer.json")   # any kind

The two implementations are :class:`symbolic.abc_tokens.AbcTokenizer` (``abc``) and
:class:`symbolic.midi_tokens.MidiTokenizer` (``remi``, ``tsd``, ``midilike``); callers use the
protocol's methods and never test ``kind``, which only names the tokenizer in files and messages.
The JSON holds ``kind`` and ``version`` so a file from another version is refused by name.
"""

from __future__ import annotations

import functools
import json
import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any, Protocol

from ostinato.events.errors import InputError
from ostinato.events.table import NoteTable

from .abc_tokens import AbcTokenizer
from .midi_tokens import SCHEMES, MidiTokenizer

KINDS = ("abc", *SCHEMES)
MAX_TOKENIZER_BYTES = 16 * 1024 * 1024   # a tokenizer.json is a few kB; a larger one is refused unread


class Tokenizer(Protocol):
    """What the token stage needs of a tokenizer (MidiTok's ``MusicTokenizer`` is the model).

    Attributes:
        kind: its name in ``tokenizer.json`` and in messages (``"abc"``, ``"remi"``, ...).
        unit: what bits-per-unit counts: ``"char"`` (characters of normalised ABC) or ``"note"``.
        file_format: the file format its pieces are written in as they are: ``"abc"`` or ``"mid"``.
        vocab: token strings, the id is the index; ``blocks``: block name -> ``(start, stop)`` ids.
        token_to_id: token string -> id. ``pad_id``, ``bos_id``, ``eos_id``: 0, 1, 2.
        slides: whether :meth:`window` re-encodes a piece shorter, so it may outgrow the model's context.
        tokens_per_bar: the sampler's budget a bar for a piece of known length, when it slides.
    """

    kind: str
    unit: str
    file_format: str
    vocab: list[str]
    blocks: dict[str, tuple[int, int]]
    token_to_id: dict[str, int]
    pad_id: int
    bos_id: int
    eos_id: int
    slides: bool
    tokens_per_bar: int

    def __len__(self) -> int:
        """The vocabulary size."""
        ...

    # pieces and primers -> ids
    def encode_item(self, item, *, max_tokens: int, style: str | None = None, instruments: str = "keep",
                    expand_repeats: bool = False) -> list[tuple[str, list[int]]]:
        """The training sequences ``(split key, ids)`` of an :class:`events.sources.Item` (at most
        ``max_tokens`` each; ``style`` is the collection, for tokens that carry one; ``expand_repeats``
        plays a score's repeats out, for MIDI tokens)."""
        ...

    def primer(self, path: str | os.PathLike, *, bars: int | None = None,
               style: str | None = None) -> tuple[Any, list[int]]:
        """``(controls, prompt ids)`` to continue the piece in ``path`` for ``bars`` more bars (default 8)."""
        ...

    def count_units(self, ids: Sequence[int]) -> int:
        """How many units (:attr:`unit`) ``ids`` encode: the denominator of bits per unit."""
        ...

    # controls and their grammar
    def make_controls(self, *, key: str | None = None, meter: str | None = None, bars: int | None = None,
                      unit: str | None = None, sections: tuple[int, int] | None = None, style: str | None = None,
                      tempo_bpm: float | None = None, instruments: Sequence[int | str] | None = (),
                      seconds: float | None = None) -> Any:
        """This tokenizer's controls object from plain values (None: free); values it has no control for
        are left out (ABC: ``style``, ``tempo_bpm``, ``instruments``, ``seconds``; MIDI: ``unit``, ``sections``)."""
        ...

    def grammar(self, controls: Any = None, *, max_tokens: int) -> Any:
        """The constrained-sampling grammar (``start/allowed/advance/finished/prefix_ids/
        forced_prefix_ids``) that keeps every
        sample valid and meets ``controls`` (None: all free) within ``max_tokens``; ValueError when it cannot."""
        ...

    def primer_grammar(self, controls: Any = None, *, max_tokens: int) -> Any:
        """A looser grammar for a primer that :meth:`grammar` refuses, or None when there is none."""
        ...

    # pieces longer than the model's context (where ``slides``; the sampler's budget ``tokens_per_bar`` a bar)
    def window(self, ids: Sequence[int], *, max_tokens: int, bars: int | None = None) -> list[int] | None:
        """What the model is fed to go on with ``ids`` once they fill its context: the piece's control prefix
        and its most recent bars in at most ``max_tokens``, ending as ``ids`` ends (``bars``: the piece's, when
        known); None when nothing fits."""
        ...

    # ids -> piece
    def decode_text(self, ids: Sequence[int]) -> str | None:
        """The piece as text (ABC), or None for tokens with no text form."""
        ...

    def decode_notes(self, ids: Sequence[int]) -> NoteTable:
        """The notes of the piece ``ids`` encode."""
        ...

    # persistence
    def to_json(self) -> dict:
        """Everything needed to rebuild it (:func:`tokenizer_from_json`), with ``kind`` and ``version``."""
        ...

    def save(self, path: str | os.PathLike) -> None:
        """Write :meth:`to_json` to ``path`` atomically."""
        ...


# kind -> a function building a new tokenizer of that kind from options, and one reading its JSON
_BUILD: dict[str, Callable[..., Tokenizer]] = {
    "abc": AbcTokenizer, **{scheme: functools.partial(MidiTokenizer, scheme) for scheme in SCHEMES}}
_FROM_JSON: dict[str, Callable[[dict], Tokenizer]] = {
    "abc": AbcTokenizer.from_json, **dict.fromkeys(SCHEMES, MidiTokenizer.from_json)}


def build_tokenizer(kind: str, **options: Any) -> Tokenizer:
    """A new tokenizer of ``kind`` (``abc``, ``remi``, ``tsd`` or ``midilike``).

    MIDI kinds take ``styles=[...]`` (collection/composer names) and ``miditok={...}`` overrides.
    """
    if kind not in _BUILD:
        raise ValueError(f"unknown tokenizer {kind!r} (choose one of {', '.join(KINDS)})")
    return _BUILD[kind](**options)


def tokenizer_from_json(data: dict) -> Tokenizer:
    """Rebuild a tokenizer from its ``to_json()`` dict; ValueError names what is wrong."""
    if not isinstance(data, dict) or "kind" not in data:
        raise ValueError("not an ostinato tokenizer (no 'kind' field)")
    kind = data["kind"]
    if kind not in _FROM_JSON:
        raise ValueError(f"unknown tokenizer kind {kind!r} (expected one of {', '.join(KINDS)})")
    return _FROM_JSON[kind](data)


def save_tokenizer(tokenizer: Tokenizer, path: str | os.PathLike) -> None:
    """Write ``tokenizer`` as JSON, atomically."""
    tokenizer.save(path)


def load_tokenizer(path: str | os.PathLike) -> Tokenizer:
    """Load a tokenizer JSON file (or a model folder holding ``tokenizer.json``).

    Raises:
        InputError: the file is missing, not a regular file of at most 16 MB, not JSON, or not a
            tokenizer this version reads (a MIDI tokenizer's miditok options are checked and capped
            before anything is built: :func:`symbolic.midi_tokens.check_miditok_options`).
    """
    from ostinato.events.limits import ReadLimits, read_file_bytes

    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    if not path.exists() and not path.is_symlink():
        raise InputError(path, "no such tokenizer file")
    try:   # a regular file of at most 16 MB (a FIFO or /dev/zero would hang or fill memory)
        data = json.loads(read_file_bytes(path, ReadLimits(max_file_bytes=MAX_TOKENIZER_BYTES)).decode("utf-8"))
        return tokenizer_from_json(data)
    except InputError:
        raise
    except FileNotFoundError:
        raise InputError(path, "no such tokenizer file") from None
    except RecursionError:
        raise InputError(path, "not a tokenizer JSON file (nested too deeply)") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a tokenizer JSON file ({exc})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"bad tokenizer: {exc}") from None


def check_expand_repeats(tokenizer, expand_repeats: bool) -> None:
    """UsageError (``--expand-repeats``) when repeats are to be played out for ABC tokens: a tune's text keeps
    its repeat signs, which are tokens of their own (``train symbolic`` and ``evaluate nll`` both ask)."""
    if expand_repeats and tokenizer.kind == "abc":
        from ostinato.events.errors import UsageError

        raise UsageError("--expand-repeats", "ABC tokens keep a tune's text, repeat signs included: it is for MIDI "
                                             "tokens")
