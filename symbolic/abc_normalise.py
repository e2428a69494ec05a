"""One ABC tune -> its canonical (normalised) text, the text the ABC tokenizer models.

``normalise_abc(text)`` takes one tune (``events.abc_read.split_tunes(...)[i].text``, file-header
fields and a ``%abc-2.x`` line included) and returns::

    X:1
    M:<meter>
    L:<unit length>
    K:<key>
    <body>

What is **kept**: notes (accidental, pitch with octave, duration), rests ``z``, bar lines
(``|  ||  |]  [|  |:  :|``; ``::`` is written ``:|``, a line break, ``|:``), first and second
endings (``[1  [2``), ties ``-``, slurs ``( )``, tuplets ``(2`` .. ``(9``, grace notes ``{ }``, chords ``[ ]``, broken
rhythm ``> >> >>> < << <<<``, and changes of meter, unit length or key inside the body (``M:``,
``L:``, ``K:`` field lines).

What is **dropped** (none of it carries notes): every header and body field other than
``M: L: K:`` (titles, composer, origin, rhythm, notes, source, transcriber, book, tempo ``Q:``,
parts ``P:``, ``I:`` instructions, lyrics ``w:``/``W:``...), free-text lines in the header,
comments (``% ...``), ``%%`` directives and the ``%abc-`` version line (see accidentals below),
chord symbols and annotations (``"..."``), decorations (``!...!`` and the one-character ones:
``.`` ``~`` and the letters ``H``-``W``, ``h``-``w``), the spacer ``y``, the beaming back-quote,
invisible rests ``x`` (music21 skips them, so the notes it reads do not change), stray
accidentals with no note, a lone ``!`` (an ABC 2.0 line break), line continuations ``\\``,
beaming spaces, the original line breaks, and empty bars (bar lines that touch merge into one:
``| |`` -> ``|``, ``:| ||`` -> ``:|``; a repeat end and start stay two bar lines).

Canonical form: the header is ``X:1``, ``M:``, ``L:``, ``K:``, in that order. A missing ``M:``
is ``M:none`` (free meter, ABC 2.1); a missing ``L:`` is supplied by ABC 2.1's rule (1/16 when
the meter is below 3/4, else 1/8; 1/8 for free meter), which is also what music21 does. The key
is written as tonic plus one of ``'' m mix dor phr lyd`` (``K:Ador``). Pitches use the standard
octave spelling (``C,`` ``C`` ``c`` ``c'``), durations the forms ``2``, ``/2``, ``3/2`` (unit
length implied when absent), tuplets their short form (``(3:2:3`` -> ``(3``). The body has no
spaces; a line ends after each section bar line (``||  |]  :|``) unless an ending follows, a
field change stands on its own line, and the text ends with a newline.

Accidentals: music21 carries an accidental through the bar only when the text has a
``%abc-2.x`` line (ABC 2.1 rule), otherwise it applies to its own note only (ABC 1.x). The
normalised text is written so that both readings agree: a note gets an explicit accidental when
it had one, when any note of the same letter (any octave, grace notes and chords included) had
one earlier in the bar, or when it continues a tie across a bar line from a note with an
explicit accidental. The accidental written is the one the original reading gave the note, so
the version line can be dropped and every reader (music21 in either mode, abc2midi, the
grammar of the sampler) hears the same pitches.

What is **rejected** (:class:`AbcNotAccepted`, with a short reason): several voices (``V:``,
``&``), inline fields (``[K:..]``, which music21 ignores), keys music21 reads differently from
ABC (clef/octave modifiers such as ``bass`` or ``-8va``, locrian, ``K:none``, explicit
accidentals, highland pipes), meters or durations outside the closed vocabulary, multi-bar rests
``Z`` (music21 skips them), bar lines ABC does not define (``|:|``, dotted ``:``), unknown symbols,
and tunes without notes.

The canonical body never puts two bar lines side by side except ``:|`` ``|:``, nor two broken-rhythm
marks, so the tokenizer's longest-match reading of the text gives back exactly the tokens that
were written (``decode(encode(t)) == t``).
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

from ostinato.events.theory import (
    ABC_MODE_SUFFIX,
    LETTERS,
    MODE_SHARPS,
    key_alterations,
    major_sharps,
    mode_name,
    split_key,
)

__all__ = ["BARS", "BAR_BUCKETS", "DURATIONS", "ENDINGS", "KEYS", "KEY_MODES", "METERS", "PITCHES", "SECTION_BARS",
           "UNITS", "AbcNotAccepted", "bar_bucket", "duration_text", "key_sharps", "music21_misreads", "normalise_abc",
           "render_tokens"]


class AbcNotAccepted(ValueError):
    """A tune the normaliser cannot represent; ``str(exc)`` is a short reason (with where in the tune, for
    what a body line holds)."""

    where = ""   # a body line's problem: the text from the place on (set where it is raised)


# Modes the vocabulary carries: canonical suffix -> sharps relative to the tonic's major key
# ({"": 0, "m": -3, "mix": -1, "dor": -2, "phr": -4, "lyd": 1}; no locrian: music21 misreads it).
KEY_MODES = {ABC_MODE_SUFFIX[mode]: MODE_SHARPS[mode]
             for mode in ("major", "minor", "mixolydian", "dorian", "phrygian", "lydian")}
_CLEF_WORDS = frozenset(("bass", "treble", "alto", "tenor", "perc", "none"))
ACCIDENTAL_ALTER = {"^^": 2, "^": 1, "=": 0, "_": -1, "__": -2}
_ALTER_TEXT = {v: k for k, v in ACCIDENTAL_ALTER.items()}
SECTION_BARS = ("||", "|]", ":|")
ENDINGS = ("[1", "[2")
BARS = ("|", "||", "|]", "[|", "|:", ":|")

# Original bar-line spellings -> canonical bar tokens (music21 reads each the same way for notes).
_BAR_MAP = {
    "|": ["|"], "||": ["||"], "|]": ["|]"], "[|": ["[|"], "|:": ["|:"], ":|": [":|"], "::": [":|", "|:"],
    ":|:": [":|", "|:"], ":||:": [":|", "|:"], ":||": [":|"], "||:": ["|:"], "|||": ["||"], "||]": ["|]"],
    "|1": ["|", "[1"], "|2": ["|", "[2"], ":|1": [":|", "[1"], ":|2": [":|", "[2"], "|[1": ["|", "[1"],
    "|[2": ["|", "[2"], ":|[1": [":|", "[1"], ":|[2": [":|", "[2"], "[1": ["[1"], "[2": ["[2"],
    "||[1": ["||", "[1"], "||1": ["||", "[1"], ":||2": [":|", "[2"], "[|]": ["|"], "[|]|]": ["|]"],
    "[|]:|": [":|"], ":[|]|]": [":|"], "[|][|]|]": ["|]"], "[|][|]:|": [":|"], "||[2": ["||", "[2"],
    "::[1": [":|", "|:", "[1"], "::[2": [":|", "|:", "[2"],
}
# ABC 2.1 decorations (``.~``, the user-definable ``H``-``W`` and ``h``-``w``), the spacer ``y`` and the
# beaming back-quote: none of them changes a note.
_DECORATIONS = set(".~y`HIJKLMNOPQRSTUVWhijklmnopqrstuvw")
_NOTE = re.compile(r"(\^\^|\^|__|_|=)?([A-Ga-g])([,']*)(\d*)(/*)(\d*)")
_REST = re.compile(r"([zxZ])(\d*)(/*)(\d*)")
_TUPLET = re.compile(r"\((\d+)(?::(\d*))?(?::(\d*))?")
_BROKEN_TOKENS = frozenset((">", ">>", ">>>", "<", "<<", "<<<"))
_BROKEN = re.compile(r"<{1,3}|>{1,3}")
_CHORD_LENGTH = re.compile(r"(\d*)(/*)(\d*)")
_FIELD = re.compile(r"^([A-Za-z+]):(.*)$")
_COMMENT = re.compile(r"(?<!\\)%.*$")


def _durations() -> dict[str, Fraction]:
    values = [Fraction(n) for n in (*range(2, 17), 24, 32, 48, 64)]
    for den, top in ((2, 15), (4, 15), (8, 15), (16, 7), (32, 3)):
        values += [Fraction(n, den) for n in range(1, top + 1, 2)]
    return {duration_text(v): v for v in sorted(values)}


def _pitches() -> list[str]:
    """Pitch spellings, lowest first: C,,, .. B, c .. b with three apostrophes."""
    return [letter + "," * n for n in (3, 2, 1, 0) for letter in "CDEFGAB"] + [
        letter + "'" * n for n in (0, 1, 2, 3) for letter in "cdefgab"]


def duration_text(length: Fraction) -> str:
    """The canonical spelling of a duration multiplier: ``''`` for 1, ``2``, ``/2``, ``3/2``."""
    if length == 1:
        return ""
    if length.denominator == 1:
        return str(length.numerator)
    if length.numerator == 1:
        return f"/{length.denominator}"
    return f"{length.numerator}/{length.denominator}"


def key_sharps(key: str) -> int:
    """Sharps (negative: flats) of a canonical key text such as ``Ador`` or ``F#m``."""
    tonic, mode = (key[:2], key[2:]) if len(key) > 1 and key[1] in "#b" else (key[:1], key[1:])
    return major_sharps(tonic) + KEY_MODES[mode]


# The closed sets the tokenizer's vocabulary is made of (a tune using anything else is rejected).
DURATIONS: dict[str, Fraction] = _durations()  # duration token -> multiple of the unit length
PITCHES: list[str] = _pitches()
_PITCH_SET = frozenset(PITCHES)
METERS: list[str] = ["none", "C", "C|"] + [f"{n}/{d}" for d in (1, 2, 4, 8, 16) for n in range(1, 17)]
UNITS: list[str] = ["1/1", "1/2", "1/4", "1/8", "1/16", "1/32", "1/64"]
KEYS: list[str] = [t + a + m for m in KEY_MODES for t in LETTERS for a in ("", "#", "b")
                   if -7 <= key_sharps(t + a + m) <= 7]
# Buckets of the length control: (first, last) number of bars; the last is open-ended.
BAR_BUCKETS: tuple[tuple[int, int | None], ...] = (
    (1, 4), (5, 8), (9, 12), (13, 16), (17, 20), (21, 24), (25, 32), (33, 40), (41, 48), (49, 64), (65, 96),
    (97, 128), (129, None),
)


def bucket_token(first: int, last: int | None) -> str:
    """The length control token of the bucket ``(first, last)`` (``<bars:17-20>``, ``<bars:129+>``)."""
    return f"<bars:{first}+>" if last is None else f"<bars:{first}-{last}>"


def bar_bucket(n_bars: int) -> str:
    """The length control token for ``n_bars`` bars (``<bars:17-20>``)."""
    for first, last in BAR_BUCKETS:
        if n_bars >= first and (last is None or n_bars <= last):
            return bucket_token(first, last)
    raise ValueError(f"n_bars must be at least 1, got {n_bars}")


def _strip_comment(value: str) -> str:
    return _COMMENT.sub("", value).strip()


def _parse_meter(value: str) -> str:
    value = "".join(_strip_comment(value).split())
    if value in ("C", "C|", "none"):
        return value
    m = re.fullmatch(r"(\d+)/(\d+)", value)
    if not m or not 1 <= int(m.group(1)) <= 16 or m.group(2) not in ("1", "2", "4", "8", "16"):
        raise AbcNotAccepted(f"meter M:{value} not in the vocabulary")
    return f"{int(m.group(1))}/{int(m.group(2))}"


def _parse_unit(value: str) -> str:
    value = "".join(_strip_comment(value).split())
    if value not in ("1/1", "1", "1/2", "1/4", "1/8", "1/16", "1/32", "1/64"):
        raise AbcNotAccepted(f"unit length L:{value} not in the vocabulary")
    return "1/1" if value == "1" else value


def _parse_key(value: str) -> str:
    """The canonical key text (tonic + one of KEY_MODES' suffixes) of a ``K:`` value."""
    value = _strip_comment(value)
    parts = split_key(value)
    if parts is None or not value[0].isupper():
        raise AbcNotAccepted(f"key K:{value or '(empty)'} not supported")
    tonic, word, rest = parts[0], parts[1], parts[2].split()
    suffix = ABC_MODE_SUFFIX.get(mode_name(word))
    if suffix not in KEY_MODES:
        suffix = None
        if word.lower() in _CLEF_WORDS:
            rest, suffix = [word, *rest], ""
    if suffix is None:
        raise AbcNotAccepted(f"key mode {word!r} not supported")
    if rest:  # music21 moves notes an octave for some (bass, -8va) and not for others
        raise AbcNotAccepted(f"key modifier {rest[0]!r} not supported (clef, octave or explicit accidentals)")
    key = tonic + suffix
    if not -7 <= key_sharps(key) <= 7:
        raise AbcNotAccepted(f"key K:{key} has more than 7 sharps or flats")
    return key


def _default_unit(meter: str) -> str:
    if meter == "none":
        return "1/8"
    num, den = (4, 4) if meter == "C" else (2, 2) if meter == "C|" else map(int, meter.split("/"))
    return "1/16" if Fraction(num, den) < Fraction(3, 4) else "1/8"


def _length(digits: str, slashes: str, divisor: str) -> Fraction:
    num = int(digits) if digits else 1
    if slashes:
        den = int(divisor) if divisor else 2 ** len(slashes)
        if divisor and len(slashes) > 1:
            raise AbcNotAccepted("duration with '//' and a number")
    else:
        den = 1
    if num == 0 or den == 0:
        raise AbcNotAccepted("zero duration")
    return Fraction(num, den)


@functools.lru_cache(maxsize=4096)
def _note_parts(text: str) -> tuple[str, str, str]:
    """(accidental, canonical pitch, canonical duration) of a note's text, checked against the vocabulary."""
    acc, letter, marks, digits, slashes, divisor = _NOTE.fullmatch(text).groups()
    pitch, duration = _pitch_text(letter, marks), duration_text(_length(digits, slashes, divisor))
    if pitch not in _PITCH_SET:
        raise AbcNotAccepted(f"pitch {pitch} out of range")
    if duration and duration not in DURATIONS:
        raise AbcNotAccepted(f"duration {duration} not in the vocabulary")
    return acc or "", pitch, duration


def _pitch_text(letter: str, marks: str) -> str:
    octave = (1 if letter.islower() else 0) + marks.count("'") - marks.count(",")
    if octave >= 1:
        return letter.lower() + "'" * (octave - 1)
    return letter.upper() + "," * (-octave)


class _Note:
    """A note while the body is being read (its accidental is settled in a second pass)."""

    __slots__ = ("accidental", "alter", "duration", "in_chord", "pitch")

    def __init__(self, accidental: str, pitch: str, duration: str, in_chord: bool):
        self.accidental, self.pitch, self.duration, self.in_chord = accidental, pitch, duration, in_chord
        self.alter = 0


def _tune_items(text: str) -> list[str | _Note]:
    """Read one tune into header tokens and body items (``_Note`` objects and token strings)."""
    lines = text.splitlines()
    version = any(line.startswith("%abc-2") for line in lines)
    if version and any(line.startswith("%%propagate-accidentals") for line in lines):
        raise AbcNotAccepted("%%propagate-accidentals directive")
    header: dict[str, str] = {}
    index = 0
    for index, line in enumerate(lines):  # noqa: B007 - index is the header's end
        m = _FIELD.match(line)
        if not m:
            continue
        name, value = m.groups()
        if name == "V":
            raise AbcNotAccepted("several voices (V:)")
        if name in "ML":
            header[name] = value
        elif name == "K":
            header["K"] = value
            break
    else:
        raise AbcNotAccepted("no K: field")
    meter = _parse_meter(header["M"]) if "M" in header else "none"
    unit = _parse_unit(header["L"]) if "L" in header else _default_unit(meter)
    key = _parse_key(header["K"])
    items: list[str | _Note] = [f"M:{meter}", f"L:{unit}", f"K:{key}"]
    for number, line in enumerate(lines[index + 1:], start=index + 2):
        if line.startswith("%"):
            continue
        m = _FIELD.match(line)
        if m and line[2:3] != "|":
            name, value = m.groups()
            if name == "V":
                raise AbcNotAccepted("several voices (V:)")
            if name == "M":
                items.append(f"M:{_parse_meter(value)}")
            elif name == "L":
                items.append(f"L:{_parse_unit(value)}")
            elif name == "K":
                items.append(f"K:{_parse_key(value)}")
            continue
        try:
            _read_body_line(_strip_comment(line), items)
        except AbcNotAccepted as exc:   # where: the tune's line, and the text around the place
            raise AbcNotAccepted(f"{exc} in line {number} of the tune{exc.where}") from None
    body = items[3:]
    if not any(isinstance(item, _Note) for item in body):
        raise AbcNotAccepted("no notes")
    _settle_accidentals(items, version)
    return items


def _read_body_line(line: str, items: list) -> None:
    """Append ``line``'s body items to ``items``; an AbcNotAccepted's ``where`` quotes the line from the place on."""
    i, n = 0, len(line)
    in_chord = in_grace = False
    try:
        while i < n:
            c = line[i]
            if c in " \t\\" or (c in _DECORATIONS and not (c == "." and line[i + 1:i + 2] == "-")):
                i += 1
                continue
            if c == '"':
                end = line.find('"', i + 1)
                if end < 0:
                    raise AbcNotAccepted("unclosed annotation '\"'")
                i = end + 1
                continue
            if c == "!":
                end = line.find("!", i + 1)
                if end >= 20 + i:  # music21 looks 19 characters ahead for the closing '!'
                    raise AbcNotAccepted("decoration '!...!' longer than 20 characters")
                i = end + 1 if end >= 0 else i + 1  # a lone '!' is an ABC 2.0 line break
                continue
            m = _NOTE.match(line, i)
            if not m and c in "^=_":  # an accidental with no note (music21 drops it too)
                i += 1
                continue
            if m:
                acc, pitch, duration = _note_parts(m.group())
                items.append(_Note(acc, pitch, duration, in_chord))
                i = m.end()
                continue
            if c in "zxZ":
                m = _REST.match(line, i)
                if c == "Z":
                    raise AbcNotAccepted("multi-bar rest 'Z'")
                if c == "z":
                    items.append(c)
                dur = duration_text(_length(*m.groups()[1:]))
                if dur and c == "z":
                    if dur not in DURATIONS:
                        raise AbcNotAccepted(f"duration {dur} not in the vocabulary")
                    items.append(dur)
                i = m.end()
                continue
            if c == "[" and not in_chord:
                nxt = line[i + 1:i + 2]
                if re.match(r"[A-Za-z]:", line[i + 1:i + 3]):
                    raise AbcNotAccepted(f"inline field [{line[i + 1]}:]")
                if nxt and (nxt in "^=_" or nxt.isalpha()):
                    items.append("[")
                    in_chord = True
                    i += 1
                    continue
            if c == "]" and in_chord:
                in_chord = False
                m = _CHORD_LENGTH.match(line, i + 1)
                items.append("]")
                dur = duration_text(_length(*m.groups()))
                if dur:
                    if dur not in DURATIONS:
                        raise AbcNotAccepted(f"duration {dur} not in the vocabulary")
                    items.append(dur)
                i = m.end()
                continue
            if c in "|:" or (c == "[" and line[i + 1:i + 2] in ("|", "1", "2")):
                run = _bar_run(line, i)
                if run not in _BAR_MAP:
                    raise AbcNotAccepted(f"bar line {run!r}")
                if in_chord or in_grace:
                    raise AbcNotAccepted("bar line inside a chord or grace group")
                items.extend(_BAR_MAP[run])
                i += len(run)
                continue
            if c == "(":
                m = _TUPLET.match(line, i)
                if m:
                    p = int(m.group(1))
                    q, r = m.group(2), m.group(3)
                    # ABC's q for (p: 3 for 2, 4, 8; 2 for 3, 6; for 5, 7, 9 it depends on the meter
                    default_q = {2: 3, 4: 3, 8: 3, 3: 2, 6: 2}.get(p)
                    if not 2 <= p <= 9 or (q and (default_q is None or int(q) != default_q)) or (r and int(r) != p):
                        raise AbcNotAccepted(f"tuplet {m.group(0)!r}")
                    items.append(f"({p}")
                    i = m.end()
                    continue
                items.append("(")
                i += 1
                continue
            if c in ")-":
                items.append(c)
                i += 1
                continue
            if c == "." and line[i + 1:i + 2] == "-":  # dotted tie: a tie
                i += 1
                continue
            if c in "<>":
                m = _BROKEN.match(line, i)
                if line[m.end():m.end() + 1] in ("<", ">"):
                    raise AbcNotAccepted("broken rhythm longer than 3")
                items.append(m.group(0))
                i = m.end()
                continue
            if c == "{":
                if in_grace or in_chord:
                    raise AbcNotAccepted("nested grace group")
                in_grace = True
                items.append("{")
                i += 2 if line[i + 1:i + 2] == "/" else 1
                continue
            if c == "}" and in_grace:
                in_grace = False
                items.append("}")
                i += 1
                continue
            if c == "&":
                raise AbcNotAccepted("voice overlay '&'")
            raise AbcNotAccepted(f"unexpected symbol {c!r}")
    except AbcNotAccepted as exc:
        exc.where = f", at {line[i:i + 16].rstrip()!r}"
        raise
    if in_chord or in_grace:
        raise AbcNotAccepted("chord or grace group across a line break")


def _bar_run(line: str, i: int) -> str:
    """The bar-line spelling starting at ``line[i]``: ``| : [| |]`` runs, ending digits included."""
    j, n = i, len(line)
    while j < n:
        ch = line[j]
        if ch in "|:" or (ch == "]" and j > i and line[j - 1] == "|") or (ch == "[" and line[j + 1:j + 2] == "|"):
            j += 1
        elif ch == "[" and line[j + 1:j + 2] in ("1", "2") and not line[j + 2:j + 3].isdigit():
            j += 2
            break
        elif ch in "12" and j > i and line[j - 1] == "|" and not line[j + 1:j + 2].isdigit():
            j += 1
            break
        else:
            break
    return line[i:j]


def _settle_accidentals(items: list, version: bool) -> None:
    """Give every note the alteration the original reading gives it, then decide which to write."""
    signature = key_alterations(0)
    carried: dict[str, int] = {}  # letter -> alteration carried in this bar (music21, ABC 2.x)
    marked: set[str] = set()  # letters with any written accidental in this bar (output)
    tie_from: _Note | None = None
    tie_pending = False
    last_note: _Note | None = None
    crossed_bar = False
    for item in items:
        if isinstance(item, str):
            if item.startswith("K:"):
                signature = key_alterations(key_sharps(item[2:]))
            elif item in BARS or item in ENDINGS:
                carried, marked = {}, set()
                crossed_bar = True
            elif item == "-":
                tie_from, tie_pending, crossed_bar = last_note, True, False
            continue
        letter = item.pitch[0].upper()
        if item.accidental:
            item.alter = ACCIDENTAL_ALTER[item.accidental]
            if version and not item.in_chord:
                carried[letter] = max(-1, min(1, item.alter))  # music21 carries ^^ as ^, __ as _
        elif version and not item.in_chord and letter in carried:
            item.alter = carried[letter]
        else:
            item.alter = signature[letter]
        tied_over = (tie_pending and crossed_bar and tie_from is not None and tie_from.pitch == item.pitch
                     and bool(tie_from.accidental))
        if item.accidental or letter in marked or tied_over:
            item.accidental = _ALTER_TEXT[item.alter]
            marked.add(letter)
        tie_pending = False
        last_note = item


def _flatten(items: list) -> list[str]:
    out: list[str] = []
    for item in items:
        if isinstance(item, _Note):
            if item.accidental:
                out.append(item.accidental)
            out.append(item.pitch)
            if item.duration:
                out.append(item.duration)
        else:
            out.append(item)
    return out


def _merge_bars(first: str, second: str) -> list[str]:
    """One bar line for two that touch (an empty bar carries no notes): repeats win, then the later.

    The end and start of repeats together stay two tokens, ``:|`` ``|:`` (not ``::``):
    music21 reads an upper-case note followed by ``::`` as a field line.
    """
    if first == second or second == "|":
        return [first]
    if first == "|":
        return [second]
    end, start = ":|" in (first, second), "|:" in (first, second)
    if end or start:
        return [":|", "|:"] if end and start else [":|"] if end else ["|:"]
    return [second]


def _canonical_body(tokens: list[str]) -> list[str]:
    """Merge bar lines that touch (``| |`` -> ``|``, ``:| ||`` -> ``:|``); drop a trailing invisible rest."""
    out: list[str] = []
    for token in tokens:
        if out and token in _BROKEN_TOKENS and out[-1] in _BROKEN_TOKENS:
            raise AbcNotAccepted("two broken-rhythm marks in a row")
        if out and token in BARS and out[-1] in BARS:
            if len(out) > 1 and out[-2:] == [":|", "|:"]:
                out[-2:] = _merge_bars(":|", _merge_bars("|:", token)[0])
            else:
                out[-1:] = _merge_bars(out[-1], token)
            continue
        out.append(token)
    return out


def render_tokens(tokens: list[str]) -> str:
    """The text of canonical tokens (fields and body, no control or special tokens)."""
    parts = ["X:1\n"]
    at_line_start = True
    for i, token in enumerate(tokens):
        if token[1:2] == ":" and token[0] in "MLK" and len(token) > 2:
            if not at_line_start:
                parts.append("\n")
            parts.append(token + "\n")
            at_line_start = True
            continue
        parts.append(token)
        at_line_start = False
        if token in SECTION_BARS and (i + 1 == len(tokens) or tokens[i + 1] not in ENDINGS):
            parts.append("\n")
            at_line_start = True
    if not at_line_start:
        parts.append("\n")
    return "".join(parts)


_ANNOTATION_OR_COMMENT = re.compile(r'"[^"]*"|![^!\n]*!|%.*')


def music21_misreads(text: str) -> str | None:
    """Why music21 reads different notes from a tune's *original* text than ABC means, or None.

    Four defects of music21 10's ABC reader (the normalised text has none of them): free text in
    the header is read as notes; a note after an annotation starting with ``>`` or marked ``H``
    is dropped; an upper-case letter followed by ``:`` (``A::``) starts a field line that swallows
    the rest of the line; a broken rhythm beside a ``.``/``u``/``v``/``k``/``K``/``M`` decoration is
    ignored. Tunes with these cannot be compared note for note with their normalised text.
    """
    header, _, rest = text.partition("\nK:")
    if any(line.strip() and not re.match(r"[A-Za-z+]:|%", line) for line in header.splitlines()):
        return "free text in the header"
    body = "\n".join(line for line in rest.splitlines()[1:] if not re.match(r"[A-Za-z]:", line))
    if '">' in body:
        return "annotation starting with >"
    bare = _ANNOTATION_OR_COMMENT.sub("", body).replace(" ", "").replace("\\", "")
    if re.search(r"[A-Z]:[^|]", bare):
        return "upper-case letter before ':'"
    if "H" in bare:
        return "H decoration"
    if re.search(r"[.uvkKM][<>]|[<>][.uvkKM]", bare):
        return "decoration beside broken rhythm"
    return None


def normalise_abc(text: str) -> str:
    """The canonical text of one ABC tune (see the module docstring).

    Raises:
        AbcNotAccepted: the tune uses something the canonical form cannot represent.
    """
    items = _tune_items(text)
    return render_tokens(items[:3] + _canonical_body(_flatten(items[3:])))
