"""The ABC tokenizer (folk-rnn style): a closed vocabulary of musical tokens over normalised ABC.

A tune is first normalised (:func:`symbolic.abc_normalise.normalise_abc`: titles, comments and
decorations dropped, canonical header and spacing), then cut into tokens, one per musical
concept::

    <bos> M:6/8 L:1/8 K:G <bars:17-20> |: G 2 A B c d | ... :| <eos>

so ``G2`` is the pitch token ``G`` and the duration token ``2``, ``^f'/2`` is ``^`` ``f'`` ``/2``.
The vocabulary is fixed (not learned from data) and laid out in named blocks (``blocks``:
name -> ``[start, stop)`` ids): ``special`` (``<pad> <bos> <eos>`` at 0, 1, 2), ``length`` (the
number of bars, bucketed), ``meter`` (``M:..``), ``unit`` (``L:..``), ``key`` (``K:..``), ``bar``,
``ending``, ``accidental``, ``pitch``, ``rest``, ``duration``, ``tuplet``, ``broken``, ``tie``,
``slur``, ``grace``, ``chord``. The ``meter``, ``unit`` and ``key`` tokens are the header fields
(the first three tokens) and, later in a tune, field changes on their own lines.

The length control token follows the header: it is the number of bars (bar-line separated
segments holding at least one note or rest, as written, repeats not played out) put in the
bucket ``BAR_BUCKETS`` names. ``decode`` drops it (the text implies it).

``decode(encode(t, normalised=True)) == t`` for every normalised text ``t``. Bits per
character are computed on ``len(normalised_text)`` (:meth:`AbcTokenizer.count_units`): the
trainer divides the total nats by ln 2 and by the characters of the normalised texts.

:class:`AbcTokenizer` is the ABC implementation of :class:`symbolic.tokenizers.Tokenizer`: its
controls are :class:`AbcControls` and its grammar :class:`symbolic.abc_grammar.AbcGrammar`.
"""

from __future__ import annotations

import json
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, replace
from fractions import Fraction

from ostinato.events.atomic import write_text_atomic
from ostinato.events.errors import InputError
from ostinato.events.table import NoteTable
from ostinato.events.theory import bar_length

from .abc_normalise import (
    BAR_BUCKETS,
    BARS,
    DURATIONS,
    ENDINGS,
    KEYS,
    METERS,
    PITCHES,
    UNITS,
    AbcNotAccepted,
    bar_bucket,
    bucket_token,
    normalise_abc,
    render_tokens,
)

_ALTER_TOKEN = {2: "^^", 1: "^", 0: "=", -1: "_", -2: "__"}

__all__ = ["BAR_BUCKETS", "AbcControls", "AbcNotAccepted", "AbcTokenizer", "bar_bucket", "count_bars"]


@dataclass(frozen=True)
class AbcControls:
    """Controls of an ABC tune (None: the model chooses). ``key`` as in ABC (``"G"``, ``"Ador"``)."""

    key: str | None = None
    meter: str | None = None
    unit: str | None = None
    bars: int | None = None
    sections: tuple[int, int] | None = None   # (sections, bars per section)


def _blocks() -> list[tuple[str, list[str]]]:
    return [
        ("special", ["<pad>", "<bos>", "<eos>"]),
        ("length", [bucket_token(first, last) for first, last in BAR_BUCKETS]),
        ("meter", [f"M:{m}" for m in METERS]),
        ("unit", [f"L:{u}" for u in UNITS]),
        ("key", [f"K:{k}" for k in KEYS]),
        ("bar", list(BARS)),
        ("ending", list(ENDINGS)),
        ("accidental", ["^^", "^", "=", "_", "__"]),
        ("pitch", list(PITCHES)),
        ("rest", ["z"]),
        ("duration", list(DURATIONS)),
        ("tuplet", [f"({p}" for p in range(2, 10)]),
        ("broken", [">", ">>", ">>>", "<", "<<", "<<<"]),
        ("tie", ["-"]),
        ("slur", ["(", ")"]),
        ("grace", ["{", "}"]),
        ("chord", ["[", "]"]),
    ]


_BODY_TOKEN = re.compile(
    r"\^\^|\^|__|_|=|[A-G],*|[a-g]'*|z|\d*/\d+|\d+|\|\]|\|\||\|:|\||\[\||\[[12]|\[|\]|:\||"
    r"\(\d|\(|\)|-|\{|\}|>{1,3}|<{1,3}"
)
_FIELD_LINE = re.compile(r"[MLK]:\S+")
_CONTENT = frozenset(PITCHES) | {"z"}
_BAR_SET = frozenset(BARS)
_FIELD_KINDS = ("meter", "unit", "key")   # the header's blocks, in its order after <bos>


def count_bars(tokens: list[str]) -> int:
    """Bars of a tune: bar-line separated segments holding at least one note or rest."""
    bars, content = 0, False
    for token in tokens:
        if token in _BAR_SET:
            bars += content
            content = False
        elif token in _CONTENT:
            content = True
    return bars + content


class AbcTokenizer:
    """Normalised ABC text <-> token ids over a closed vocabulary (see the module docstring).

    Attributes:
        kind: ``"abc"``.
        unit: ``"char"``: likelihood is given in bits per character of normalised text.
        file_format: ``"abc"``: composed tunes are written as their own text.
        slides, tokens_per_bar: tunes longer than the context are sampled on :meth:`window`, the grammar's
            budget this many tokens a bar.
        VERSION: the vocabulary's version; saved files carry it.
        vocab: token strings, the id is the index.
        blocks: block name -> ``(start, stop)`` ids, stop exclusive.
        pad_id, bos_id, eos_id: 0, 1, 2.
    """

    kind = "abc"
    unit = "char"
    file_format = "abc"
    slides = True           # :meth:`window` re-heads a tune's last bars: a tune may outgrow the model's context
    tokens_per_bar = 32     # the sampler's budget a bar (the corpus: median 8, 99th percentile of a tune's 18)
    VERSION = 1

    def __init__(self) -> None:
        self.vocab: list[str] = []
        self.blocks: dict[str, tuple[int, int]] = {}
        for name, tokens in _blocks():
            self.blocks[name] = (len(self.vocab), len(self.vocab) + len(tokens))
            self.vocab.extend(tokens)
        self.token_to_id: dict[str, int] = {token: i for i, token in enumerate(self.vocab)}
        if len(self.token_to_id) != len(self.vocab):
            raise AssertionError("duplicate ABC tokens")  # a bug in the block lists, never input
        self.pad_id, self.bos_id, self.eos_id = 0, 1, 2
        self._length_ids = frozenset(range(*self.blocks["length"]))
        self._token_set = frozenset(self.vocab)

    def __len__(self) -> int:
        return len(self.vocab)

    def __repr__(self) -> str:
        return f"AbcTokenizer(version={self.VERSION}, vocab={len(self)})"

    # -- text -------------------------------------------------------------------------------

    @staticmethod
    def normalise(text: str) -> str:
        """The normalised text of one tune; raises :class:`AbcNotAccepted` with a reason."""
        return normalise_abc(text)

    @staticmethod
    def n_chars(normalised_text: str) -> int:
        """Characters bits-per-character is measured on: ``len(normalised_text)``."""
        return len(normalised_text)

    def count_units(self, ids: Sequence[int]) -> int:
        """Characters of the normalised text ``ids`` encode (``len(decode(ids))``): the unit of bits per character."""
        return len(self.decode(ids))

    def transpose_ids(self, ids: Sequence[int], semitones: int):
        """``ids`` moved by ``semitones``: every ``K:`` field to the key that many semitones away
        (same mode, its tonic letter moved by one diatonic step count for the whole tune), every
        note moved as many letters (``G`` -> ``A`` for +2 from G to A), and every written accidental
        re-spelled so each note sounds exactly ``semitones`` away (transposition augmentation).

        int64 array, or None when the tune cannot be written there: a key beyond 7 sharps or
        flats, a note past the vocabulary's pitches, or an accidental beyond a double one.
        """
        import numpy as np

        from ostinato.events.theory import LETTERS, NATURAL_PC, key_alterations, tonic_pc

        from .abc_normalise import ACCIDENTAL_ALTER, KEYS, key_sharps

        ids = np.asarray(ids, np.int64)
        out = ids.copy()
        if semitones == 0:
            return out
        key_ids = [i for i, t in enumerate(ids) if self.vocab[t].startswith("K:")]
        if not key_ids:
            return None

        def split(key: str) -> tuple[str, str]:
            n = 2 if len(key) > 1 and key[1] in "#b" else 1
            return key[:n], key[n:]

        tonic, mode = split(self.vocab[ids[key_ids[0]]][2:])
        target = (tonic_pc(tonic) + semitones) % 12
        spellings = [t + a for t in LETTERS for a in ("", "#", "b")
                     if tonic_pc(t + a) == target and f"{t}{a}{mode}" in KEYS]
        if not spellings:
            return None
        new_tonic = min(spellings, key=lambda t: abs(key_sharps(t + mode)))
        steps = (LETTERS.index(new_tonic[0]) - LETTERS.index(tonic[0])) % 7
        if semitones < 0 and steps:
            steps -= 7                                             # down: letters move down too

        def moved_key(key: str) -> str | None:
            old, mode_ = split(key)
            letter = LETTERS[(LETTERS.index(old[0]) + steps) % 7]
            for acc in ("", "#", "b"):
                if tonic_pc(letter + acc) == (tonic_pc(old) + semitones) % 12 and f"{letter}{acc}{mode_}" in KEYS:
                    return f"{letter}{acc}{mode_}"
            return None

        pitch_lo = self.blocks["pitch"][0]
        acc_lo, acc_hi = self.blocks["accidental"]
        n_pitches = self.blocks["pitch"][1] - pitch_lo

        def natural(index: int) -> int:                            # semitones of a pitch token's natural note
            return 12 * (index // 7) + NATURAL_PC[LETTERS[index % 7]]

        old_sig = new_sig = None
        for i, t in enumerate(ids):
            token = self.vocab[t]
            if token.startswith("K:"):
                new_key = moved_key(token[2:])
                if new_key is None:
                    return None
                out[i] = self.token_to_id[f"K:{new_key}"]
                old_sig, new_sig = key_alterations(key_sharps(token[2:])), key_alterations(key_sharps(new_key))
                continue
            index = int(t) - pitch_lo
            if not 0 <= index < n_pitches or old_sig is None:
                continue
            moved = index + steps
            if not 0 <= moved < n_pitches:
                return None
            out[i] = pitch_lo + moved
            written = i > 0 and acc_lo <= ids[i - 1] < acc_hi
            alter = ACCIDENTAL_ALTER[self.vocab[ids[i - 1]]] if written else old_sig[LETTERS[index % 7]]
            new_alter = natural(index) + alter + semitones - natural(moved)
            if written:
                if not -2 <= new_alter <= 2:
                    return None
                out[i - 1] = self.token_to_id[_ALTER_TOKEN[new_alter]]
            elif new_alter != new_sig[LETTERS[moved % 7]]:       # the key signature no longer gives it
                return None
        return out

    def tokenize(self, normalised_text: str) -> list[str]:
        """The tokens of a normalised tune: ``M: L: K:`` header, length control, body (no bos/eos).

        Raises:
            ValueError: the text is not in normalised form (normalise it first).
        """
        lines = normalised_text.split("\n")
        if len(lines) < 5 or lines[0] != "X:1" or lines[-1] != "":
            raise ValueError("not normalised ABC: expected X:1, M:, L:, K: lines and a final newline")
        header = lines[1:4]
        if not (header[0].startswith("M:") and header[1].startswith("L:") and header[2].startswith("K:")):
            raise ValueError("not normalised ABC: the header must be M:, L:, K: in that order")
        tokens = list(header)
        for line in lines[4:-1]:
            if _FIELD_LINE.fullmatch(line):
                tokens.append(line)
                continue
            found = _BODY_TOKEN.findall(line)
            if sum(map(len, found)) != len(line) or not line:  # matches never overlap: equal length, no gap
                raise ValueError(f"not normalised ABC: unexpected characters in {line!r}")
            tokens.extend(found)
        if not self._token_set.issuperset(tokens):
            unknown = next(t for t in tokens if t not in self._token_set)
            raise ValueError(f"not in the ABC vocabulary: {unknown!r}")
        tokens.insert(3, bar_bucket(max(1, count_bars(tokens[3:]))))
        return tokens

    def encode(self, text: str, *, normalised: bool = False) -> list[int]:
        """Token ids ``[bos, ..., eos]`` of one tune (normalised first unless ``normalised``).

        Raises:
            AbcNotAccepted: the normaliser rejects the tune.
            ValueError: ``normalised=True`` but the text is not in normalised form.
        """
        if not normalised:
            text = normalise_abc(text)
        ids = self.token_to_id
        return [self.bos_id, *(ids[t] for t in self.tokenize(text)), self.eos_id]

    def decode(self, ids) -> str:
        """The normalised text of token ``ids``: skips pad, bos and length tokens, stops at eos."""
        tokens = []
        for i in ids:
            i = int(i)
            if i == self.eos_id:
                break
            if i in (self.pad_id, self.bos_id) or i in self._length_ids:
                continue
            if not 0 <= i < len(self.vocab):
                raise ValueError(f"token id {i} out of range 0..{len(self.vocab) - 1}")
            tokens.append(self.vocab[i])
        return render_tokens(tokens)

    def decode_text(self, ids: Sequence[int]) -> str:
        """The tune ``ids`` encode, as normalised ABC text (what :meth:`decode` gives)."""
        return self.decode(ids)

    def decode_notes(self, ids: Sequence[int]) -> NoteTable:
        """The notes of the tune ``ids`` encode (its text read by music21)."""
        from ostinato.events.abc_read import AbcTune, parse_tune

        return parse_tune(AbcTune(1, self.decode(ids)), "composed.abc")

    def encode_item(self, item, *, max_tokens: int, style: str | None = None, instruments: str = "keep",
                    expand_repeats: bool = False) -> list[tuple[str, list[int]]]:
        """``[(item.key, ids)]``: the one training sequence of an :class:`events.sources.Item`, its tune's
        normalised text. ``max_tokens``, ``style`` and ``instruments`` are for MIDI tokens (a tune is never cut).

        Raises:
            AbcNotAccepted: the normaliser rejects the tune. InputError: the item cannot be read.
            ValueError: ``expand_repeats`` (the text keeps its repeat signs, which are tokens of their own).
        """
        if expand_repeats:
            raise ValueError("ABC tokens keep a tune's text, repeat signs included: expand_repeats is for MIDI tokens")
        text = self.normalise(item.abc_text())
        return [(item.key, self.encode(text, normalised=True))]

    # -- controls, grammar, primer ------------------------------------------------------------

    @staticmethod
    def make_controls(*, key: str | None = None, meter: str | None = None, bars: int | None = None,
                      unit: str | None = None, sections: tuple[int, int] | None = None, style: str | None = None,
                      tempo_bpm: float | None = None, instruments: Sequence[int | str] | None = (),
                      seconds: float | None = None) -> AbcControls:
        """:class:`AbcControls` of plain control values (None: free). ``style``, ``tempo_bpm``, ``instruments``
        and ``seconds`` are MIDI controls: an ABC tune has none of them, so they are left out."""
        return AbcControls(key=key, meter=meter, unit=unit, bars=bars, sections=sections)

    def grammar(self, controls: AbcControls | None = None, *, max_tokens: int):
        """The :class:`symbolic.abc_grammar.AbcGrammar` that keeps a sample valid and meets ``controls``
        (strict bars, and the form rules: a closing ``|]`` or ``:|`` with nothing after it, no third
        identical bar in a row, sections and the tune ending on the tonic where another valid token
        remains); ValueError (one line, naming the control) when they cannot be met."""
        return self._grammar(controls, max_tokens, strict_bars=True, form=True)

    def primer_grammar(self, controls: AbcControls | None = None, *, max_tokens: int):
        """The grammar a primer that :meth:`grammar` refuses is read with (and continued under, when it
        ends mid-bar): ABC syntax only, since a real tune may have irregular bars, and the tune's own key and
        unit changes (``K:`` and ``L:`` lines in its body) read as written, whatever ``controls`` fix."""
        c = controls if controls is not None else AbcControls()
        return self._grammar(replace(c, key=None, unit=None), max_tokens, strict_bars=False)

    def _grammar(self, controls: AbcControls | None, max_tokens: int, *, strict_bars: bool, form: bool = False):
        from .abc_grammar import AbcGrammar

        c = controls if controls is not None else AbcControls()
        return AbcGrammar(self, meter=c.meter, unit=c.unit, key=c.key, bars=c.bars, sections=c.sections,
                          max_tokens=max_tokens, strict_bars=strict_bars, form=form)

    def primer(self, path: str | os.PathLike, *, bars: int | None = None,
               style: str | None = None) -> tuple[AbcControls, list[int]]:
        """``(controls, prompt ids)`` to continue the first tune of the ABC file ``path`` for ``bars`` more bars
        (default 8): its header's key, meter and unit, its bars plus ``bars``; the prompt is ``<bos>``, the
        header, the length control and the body without a final ``|]``. ``style`` is for MIDI tokens.

        Raises:
            InputError: the file cannot be read, or the normaliser rejects its first tune.
        """
        from ostinato.events.abc_read import read_abc_text, split_tunes

        tunes = split_tunes(read_abc_text(path))
        if not tunes:
            raise InputError(path, "no ABC tune found (no X: or K: line)")
        try:
            tokens = self.tokenize(self.normalise(tunes[0].text))
        except AbcNotAccepted as exc:   # named by file and tune, as every primer problem
            raise InputError(f"{path}#{tunes[0].number}", f"cannot continue this tune: {exc}") from None
        header = {t[:2]: t[2:] for t in tokens[:3]}
        body = tokens[4:]
        if body and body[-1] == "|]":   # the tune goes on after the primer
            body = [*body[:-1], "|"]
        total = count_bars(body) + (bars or 8)
        controls = AbcControls(key=header["K:"], meter=header["M:"], unit=header["L:"], bars=total)
        prompt = [self.bos_id, *(self.token_to_id[t] for t in [*tokens[:3], bar_bucket(total), *body])]
        return controls, prompt

    def window(self, ids: Sequence[int], *, max_tokens: int, bars: int | None = None) -> list[int] | None:
        """What the model is fed to go on with the tune ``ids`` once they fill its context: the tune re-headed
        as a tune starts (``<bos>``, the meter, unit and key in force where the window begins, a length
        control) and its most recent whole bars that fit in ``max_tokens``, ending with the last token of
        ``ids``; None when nothing fits.

        A window begins after a bar line (at ``|:``, so an open repeat shows), not before an ending or
        inside a slur where another bar line fits; a bar too long for any window (free meter) is cut
        before a note, not inside a chord, grace group or tuplet where it can be. ``bars``: the tune's bars
        when known (the grammar's), so the length control counts the window's bars and those still to come
        (``ids`` written 40 of 48 bars and the window shows 12: ``<bars:17-20>``, as a tune of 20 bars that
        has 8 to go); None keeps the tune's own. Fed so, folk-abc predicts the held-out tunes' tokens past
        its context 8% better than from windows without the header (1.3352 against 1.4582 bits a token).
        """
        from .fim import token_kinds

        ids = [int(i) for i in ids]
        if len(ids) < 6 or ids[0] != self.bos_id or ids[4] not in self._length_ids:
            return None
        vocab, kinds = self.vocab, token_kinds(self)
        # where a window may begin (the first index of its body), best first: after a bar line; the same inside
        # a slur or before an ending; before a note (a bar longer than any window: free meter), then before one
        # inside a slur; last, anywhere (a tuplet longer than a window)
        cuts: list[list[int]] = [[5], [], [], [], []]   # the whole tune first
        slurs, group, tuplet, previous = 0, False, 0, ids[4]
        for k in range(5, len(ids)):
            kind, text = kinds[ids[k]], vocab[ids[k]]
            starts = not group and not tuplet and kinds[previous] not in ("accidental", "broken", "tuplet") \
                and vocab[previous] != "("
            cuts[4].append(k)
            if kind == "bar":
                cut = k if text == "|:" else k + 1
                if cut < len(ids):
                    cuts[1 if slurs or kinds[ids[cut]] == "ending" else 0].append(cut)
            elif (kind in ("accidental", "pitch", "rest", "tuplet") or text in ("(", "[", "{")) and starts:
                cuts[3 if slurs else 2].append(k)
            if text in ("[", "{"):
                group = True
            elif text in ("]", "}"):
                group = False
                tuplet = max(0, tuplet - (text == "]"))   # a chord is one of a tuplet's notes
            elif kind == "tuplet":
                tuplet = int(text[1:])
            elif kind in ("pitch", "rest") and not group:
                tuplet = max(0, tuplet - 1)
            elif text == "(":
                slurs += 1
            elif text == ")":
                slurs = max(0, slurs - 1)
            previous = ids[k]
        for cut in (c for ranked in cuts for c in ranked):
            while cut < len(ids) - 1 and kinds[ids[cut]] in _FIELD_KINDS:
                cut += 1   # a field line the window begins with: in its header
            if 5 + len(ids) - cut > max_tokens:
                continue
            head = self.fields_in_force(ids[:5], ids[5:cut])
            if bars is not None:
                shown, written = (count_bars([vocab[i] for i in part]) for part in (ids[cut:], ids[5:]))
                head[4] = self.token_to_id[bar_bucket(max(1, shown + bars - written))]
            return [*head, *ids[cut:]]
        return None

    def fields_in_force(self, head: Sequence[int], tokens: Sequence[int]) -> list[int]:
        """``head`` (``<bos> M: L: K: <bars:..>``) with the meter, unit and key that ``tokens`` (the tune's
        body up to some point) change to: the header a part of the tune that begins there is in."""
        from .fim import token_kinds

        head, kinds = [int(i) for i in head], token_kinds(self)
        for t in tokens:
            if kinds[t] in _FIELD_KINDS:
                head[1 + _FIELD_KINDS.index(kinds[t])] = int(t)
        return head

    # -- values the grammar needs -------------------------------------------------------------

    def block_of(self, token_id: int) -> str:
        """The name of the block holding ``token_id``."""
        for name, (start, stop) in self.blocks.items():
            if start <= token_id < stop:
                return name
        raise ValueError(f"token id {token_id} out of range 0..{len(self.vocab) - 1}")

    @staticmethod
    def duration_value(token: str) -> Fraction:
        """A duration token's length in unit lengths (``"3/2"`` -> 3/2)."""
        return DURATIONS[token]

    @staticmethod
    def meter_value(token: str) -> Fraction | None:
        """A meter token's bar length in whole notes (``"M:6/8"`` -> 3/4, ``"M:C"`` -> 1); None for ``M:none``."""
        return bar_length(token.removeprefix("M:"))

    @staticmethod
    def unit_value(token: str) -> Fraction:
        """A unit-length token's length in whole notes (``"L:1/8"`` -> 1/8)."""
        num, den = token.removeprefix("L:").split("/")
        return Fraction(int(num), int(den))

    # -- persistence --------------------------------------------------------------------------

    def to_json(self) -> dict:
        """``{"kind", "version", "vocab", "blocks"}``: everything needed to check a saved model."""
        from .fim import infill_json

        return {"kind": self.kind, "version": self.VERSION, "vocab": list(self.vocab),
                "blocks": {name: list(span) for name, span in self.blocks.items()}, **infill_json(self)}

    @classmethod
    def from_json(cls, data: dict) -> AbcTokenizer:
        """The tokenizer a :meth:`to_json` dict describes; raises ValueError naming the mismatch."""
        if not isinstance(data, dict):
            raise ValueError(f"tokenizer JSON must be an object, got {type(data).__name__}")
        if data.get("kind") != cls.kind:
            raise ValueError(f"tokenizer kind is {data.get('kind')!r}, expected {cls.kind!r}")
        if data.get("version") != cls.VERSION:
            raise ValueError(f"ABC tokenizer version {data.get('version')!r} is not supported (this is "
                             f"version {cls.VERSION})")
        tok = cls()
        from .fim import load_infill

        load_infill(tok, data)   # a model trained to infill: its tokens and their order
        if "vocab" in data and data["vocab"] != tok.vocab:
            raise ValueError("ABC tokenizer vocabulary differs from version "
                             f"{cls.VERSION}'s ({len(data['vocab'])} tokens vs {len(tok)})")
        if "blocks" in data and {k: tuple(v) for k, v in data["blocks"].items()} != tok.blocks:
            raise ValueError(f"ABC tokenizer blocks differ from version {cls.VERSION}'s")
        return tok

    def save(self, path: str | os.PathLike) -> None:
        """Write the tokenizer JSON to ``path`` atomically."""
        write_text_atomic(path, json.dumps(self.to_json(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike) -> AbcTokenizer:
        """Read a tokenizer JSON; raises :class:`events.InputError` naming the file and the problem."""
        try:
            with open(path, encoding="utf-8") as f:
                data = json.load(f)
        except FileNotFoundError:
            raise InputError(path, "no such file") from None
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise InputError(path, f"not a tokenizer JSON file: {exc}") from None
        try:
            return cls.from_json(data)
        except ValueError as exc:
            raise InputError(path, str(exc)) from None
