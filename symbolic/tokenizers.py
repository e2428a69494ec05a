"""One entry point for every tokenizer: build one by kind, save it, load it from JSON.

    tok = build_tokenizer("remi")            # or "tsd", "midilike", "abc"
    ids = tok.encode(table)                  # a NoteTable (MIDI kinds) or ABC tune text ("abc")
    tok.save("tokenizer.json"); tok = load_tokenizer("tokenizer.json")   # any kind

Every tokenizer has ``kind``, ``vocab`` (named blocks), ``pad_id/bos_id/eos_id`` (0, 1, 2),
``encode``, ``decode`` (a NoteTable, or the normalised ABC text) and ``to_json``; the JSON
holds ``kind`` and ``version`` so a file from another version is refused by name.
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from ostinato.events.errors import InputError

from .midi_tokens import SCHEMES, MidiTokenizer

KINDS = ("abc", *SCHEMES)


def build_tokenizer(kind: str, **options: Any):
    """A new tokenizer of ``kind`` (``abc``, ``remi``, ``tsd`` or ``midilike``).

    MIDI kinds take ``styles=[...]`` (collection/composer names) and ``miditok={...}`` overrides.
    """
    if kind == "abc":
        from .abc_tokens import AbcTokenizer

        return AbcTokenizer(**options)
    if kind in SCHEMES:
        return MidiTokenizer(kind, **options)
    raise ValueError(f"unknown tokenizer {kind!r} (choose one of {', '.join(KINDS)})")


def tokenizer_from_json(data: dict):
    """Rebuild a tokenizer from :func:`tokenizer_json` output; ValueError names what is wrong."""
    if not isinstance(data, dict) or "kind" not in data:
        raise ValueError("not an ostinato tokenizer (no 'kind' field)")
    kind = data["kind"]
    if kind == "abc":
        from .abc_tokens import AbcTokenizer

        return AbcTokenizer.from_json(data)
    if kind in SCHEMES:
        return MidiTokenizer.from_json(data)
    raise ValueError(f"unknown tokenizer kind {kind!r} (expected one of {', '.join(KINDS)})")


def save_tokenizer(tokenizer, path: str | os.PathLike) -> None:
    """Write ``tokenizer`` as JSON, atomically."""
    tokenizer.save(path)


def load_tokenizer(path: str | os.PathLike):
    """Load a tokenizer JSON file (or a model folder holding ``tokenizer.json``).

    Raises:
        InputError: the file is missing, not JSON, or not a tokenizer this version reads.
    """
    path = Path(path)
    if path.is_dir():
        path = path / "tokenizer.json"
    try:
        data = json.loads(path.read_text())
        return tokenizer_from_json(data)
    except FileNotFoundError:
        raise InputError(path, "no such tokenizer file") from None
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise InputError(path, f"not a tokenizer JSON file ({exc})") from None
    except (ValueError, KeyError, TypeError) as exc:
        raise InputError(path, f"bad tokenizer: {exc}") from None
