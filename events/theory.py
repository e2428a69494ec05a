"""Key and meter theory every stage shares: key names, key signatures, tonic pitch classes, bar lengths.

Pure functions over plain values (strings, ints, fractions), no note tables::

    parse_key("F#m")             -> ("F#", "minor")
    parse_key("A Dorian")        -> ("A", "dorian")
    major_minor_key("Db major")  -> "C# major"      (one of MAJOR_MINOR_KEYS)
    tonic_pc("Eb")               -> 3
    major_sharps("Eb")           -> -3              (+ MODE_SHARPS[mode] for other modes)
    key_alterations(-3)          -> {"C": 0, "D": 0, "E": -1, "F": 0, "G": 0, "A": -1, "B": -1}
    bar_length("6/8")            -> Fraction(3, 4)  (whole notes)
    beat_length("6/8")           -> Fraction(3, 8)  (the beat a player counts: dotted in compound meters)
    estimate_key(histogram)      -> "D minor"       (Krumhansl-Schmuckler, Aarden-Essen weights)
    BROKEN_RHYTHM[">"]           -> (Fraction(3, 2), Fraction(1, 2))

A key name is written once here for every reader: a tonic (a letter ``A``-``G`` in either case,
then an optional ``#`` or ``b``), then a mode word: nothing (major), ``m`` (minor), or a mode
name or its first three letters in any case (``maj``, ``min``, ``Dorian``, ``mix``, ``aeolian``),
as ABC 2.1 writes modes: ``"D minor"``, ``"Dm"``, ``"Ador"``, ``"F#m"``, ``"Eb major"``.
Modes are named by :data:`MODES` (ionian reads as major, aeolian as minor).
"""

from __future__ import annotations

import functools
import re
from fractions import Fraction

LETTERS = "CDEFGAB"
NATURAL_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}   # pitch class of each natural
SHARP_ORDER = "FCGDAEB"          # the order a key signature sharpens; flats go the other way
PITCH_CLASS_NAMES = ("C", "C#", "D", "Eb", "E", "F", "F#", "G", "Ab", "A", "Bb", "B")   # one spelling per class

MODES = ("major", "minor", "dorian", "phrygian", "lydian", "mixolydian", "locrian")
# Sharps a mode adds to the key signature of the major key on the same tonic (A dorian: A major - 2).
MODE_SHARPS = {"major": 0, "ionian": 0, "dorian": -2, "phrygian": -4, "lydian": 1, "mixolydian": -1,
               "minor": -3, "aeolian": -3, "locrian": -5}
MINOR_MODES = ("minor", "aeolian", "dorian", "phrygian", "locrian")   # modes with a minor third
# The ABC mode suffix of each mode (``K:Ador``, ``K:F#m``, ``K:G``).
ABC_MODE_SUFFIX = {"major": "", "ionian": "", "minor": "m", "aeolian": "m", "dorian": "dor", "phrygian": "phr",
                   "lydian": "lyd", "mixolydian": "mix", "locrian": "loc"}
# A mode word's first three letters (lower case) -> its mode.
_MODE_WORDS = {"maj": "major", "ion": "major", "min": "minor", "aeo": "minor", "dor": "dorian", "phr": "phrygian",
               "lyd": "lydian", "mix": "mixolydian", "loc": "locrian"}
_KEY = re.compile(r"\s*([A-Ga-g])([#b]?)\s*([A-Za-z]*)(.*)", re.DOTALL)

MAJOR_MINOR_KEYS = [f"{name} {mode}" for mode in ("major", "minor") for name in PITCH_CLASS_NAMES]   # 24 names

# Key profiles of the Krumhansl-Schmuckler key finder: the Aarden-Essen weights (music21's default
# ``analyze("key")``), scale degree 0-11 above the tonic.
KEY_PROFILES = {
    "major": (17.7661, 0.145624, 14.9265, 0.160186, 19.8049, 11.3587, 0.291248, 22.062, 0.145624, 8.15494,
              0.232998, 4.95122),
    "minor": (18.2648, 0.737619, 14.0499, 16.8599, 0.702494, 14.4362, 0.702494, 18.6161, 4.56621, 1.93186,
              7.37619, 1.75623),
}

# ABC broken rhythm: a mark between two notes -> (factor of the first note, factor of the second).
BROKEN_RHYTHM = {">": (Fraction(3, 2), Fraction(1, 2)), ">>": (Fraction(7, 4), Fraction(1, 4)),
                 ">>>": (Fraction(15, 8), Fraction(1, 8)), "<": (Fraction(1, 2), Fraction(3, 2)),
                 "<<": (Fraction(1, 4), Fraction(7, 4)), "<<<": (Fraction(1, 8), Fraction(15, 8))}


def split_key(text: str) -> tuple[str, str, str] | None:
    """``(tonic, mode word, rest)`` of a key text, or None when it does not start with a tonic.

    ``tonic`` is the letter in upper case plus its ``#``/``b`` (``"bb minor"`` -> ``"Bb"``); the
    mode word is as written (``"Dorian"``, ``"m"``, ``""``); ``rest`` is whatever follows it
    (ABC clefs and modifiers, e.g. ``" bass"``), unstripped.
    """
    match = _KEY.fullmatch(text)
    if match is None:
        return None
    return match.group(1).upper() + match.group(2), match.group(3), match.group(4)


def mode_name(word: str) -> str | None:
    """The mode (one of :data:`MODES`) a mode word names, or None.

    ``""`` is major and ``m`` (any case) minor; any other word is read by its first three
    letters, case ignored (``"Dorian"``, ``"dor"``, ``"min"``, ``"aeolian"`` -> minor).
    """
    word = word.lower()
    if word == "":
        return "major"
    if word == "m":
        return "minor"
    return _MODE_WORDS.get(word[:3]) if len(word) > 1 else None


def parse_key(text: str) -> tuple[str, str] | None:
    """``(tonic, mode)`` of a key name (``"D minor"``, ``"Dm"``, ``"Ador"``, ``"F#m"``, ``"Eb major"``), or None.

    ``tonic`` as :func:`split_key` gives it, ``mode`` one of :data:`MODES`; None when the text is
    not a tonic and a mode word with nothing after them.
    """
    parts = split_key(text)
    if parts is None or parts[2].strip():
        return None
    mode = mode_name(parts[1])
    return None if mode is None else (parts[0], mode)


def tonic_pc(tonic: str) -> int:
    """Pitch class 0-11 of a tonic spelled letter (upper case) plus ``#``/``b`` signs (``"Eb"`` -> 3)."""
    return (NATURAL_PC[tonic[0]] + tonic[1:].count("#") - tonic[1:].count("b")) % 12


def major_sharps(tonic: str) -> int:
    """Sharps (negative: flats) of the major key on ``tonic`` (``"Eb"`` -> -3, ``"F#"`` -> 6).

    Add ``MODE_SHARPS[mode]`` for another mode; a result outside -7..7 has no key signature.
    """
    return SHARP_ORDER.index(tonic[0]) - 1 + 7 * (tonic[1:].count("#") - tonic[1:].count("b"))


def key_alterations(sharps: int) -> dict[str, int]:
    """Letter (upper case, C to B) -> alteration (+1 sharp, -1 flat, 0) under a key signature of ``sharps``."""
    alterations = dict.fromkeys(LETTERS, 0)
    for letter in SHARP_ORDER[:max(sharps, 0)]:
        alterations[letter] = 1
    for letter in SHARP_ORDER[::-1][:max(-sharps, 0)]:
        alterations[letter] = -1
    return alterations


def major_minor_name(tonic: str, minor: bool) -> str:
    """The one of :data:`MAJOR_MINOR_KEYS` on ``tonic``'s pitch class (``"Db"``, False -> ``"C# major"``)."""
    return f"{PITCH_CLASS_NAMES[tonic_pc(tonic)]} {'minor' if minor else 'major'}"


def major_minor_key(text: str) -> str | None:
    """One of :data:`MAJOR_MINOR_KEYS` for a major or minor key name (``"D minor"``, ``"Dm"``, ``"Eb"``,
    ``"Db major"`` -> ``"C# major"``, ``"D-minor"``), or None (not a key, or another mode).

    Enharmonic tonics map to the one spelling the list uses (``Db`` -> ``C#``, ``D#`` -> ``Eb``).
    """
    parsed = parse_key(text.replace("-", " "))
    if parsed is None or parsed[1] not in ("major", "minor"):
        return None
    return major_minor_name(parsed[0], parsed[1] == "minor")


def bar_length(meter: str) -> Fraction | None:
    """Length of one bar of ``meter`` in whole notes (``"6/8"`` -> 3/4, ``"C"`` and ``"C|"`` -> 1).

    None for ``"none"`` (free meter). ValueError for text that is not a meter.
    """
    if meter == "none":
        return None
    if meter in ("C", "C|"):
        return Fraction(1)
    num, den = meter.split("/")
    return Fraction(int(num), int(den))


def beat_length(meter: str) -> Fraction | None:
    """Length of one beat of ``meter`` in whole notes, the beat a player counts: a dotted one in a compound
    meter (``"6/8"``, ``"9/8"``, ``"12/8"``, ``"6/4"`` -> three of the denominator), a half in ``"C|"``, else
    one of the denominator (``"C"``, ``"3/4"`` -> 1/4; ``"3/8"`` -> 1/8).

    None for ``"none"`` (free meter). ValueError for text that is not a meter.
    """
    if meter == "none":
        return None
    if meter in ("C", "C|"):
        return Fraction(1, 4 if meter == "C" else 2)
    num, den = (int(v) for v in meter.split("/"))
    return Fraction(3 if num in (6, 9, 12, 15) else 1, den)


def estimate_key(histogram) -> str | None:
    """The key of a pitch-class histogram (12 weights, C first: each pitch class's sounding time) by the
    Krumhansl-Schmuckler method: the one of :data:`MAJOR_MINOR_KEYS` whose :data:`KEY_PROFILES` profile,
    turned to its tonic, correlates best with it (Pearson). The same answer as music21's
    ``Stream.analyze("key")``; None for an empty or flat histogram.
    """
    import numpy as np

    hist = np.asarray(histogram, np.float64)
    if hist.shape != (12,) or not np.isfinite(hist).all():
        raise ValueError(f"a pitch-class histogram has 12 finite weights, not {hist.shape}")
    centred = hist - hist.mean()
    if not centred.any():
        return None
    r = _centred_profiles() @ centred / np.sqrt((centred ** 2).sum())   # [24]: C..B major, C..B minor
    return MAJOR_MINOR_KEYS[int(np.argmax(r))]


@functools.cache
def _centred_profiles():
    """[24, 12]: :data:`KEY_PROFILES` turned to each tonic (major then minor, as MAJOR_MINOR_KEYS), centred
    and scaled to unit length, so a dot product with a centred histogram over its length is Pearson's r."""
    import numpy as np

    rows = [np.roll(np.asarray(KEY_PROFILES[mode]), tonic) for mode in ("major", "minor") for tonic in range(12)]
    rows = np.stack(rows) - np.mean(rows, axis=1, keepdims=True)
    return rows / np.linalg.norm(rows, axis=1, keepdims=True)
