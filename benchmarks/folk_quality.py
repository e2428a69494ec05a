"""Folk quality of composed ABC tunes, side by side with real held-out tunes (issue 17).

    python benchmarks/folk_quality.py                 # 100 tunes per setting (12 settings), shipped folk-abc
    python benchmarks/folk_quality.py --n 20          # a smaller run
    python benchmarks/folk_quality.py --quick         # 5 tunes per setting, 30 real tunes

Settings: defaults, 6/8 jigs in G, 4/4 reels in D, 3/4 waltzes in Ador with ``--sections 2x8``, 4/4 reels
in D with ``--sections 4x8`` (32 bars written out, about 330 tokens: longer than folk-abc's context of 256,
sampled on the sliding window), free meter (``--meter none``), each at temperatures 0.5, 0.8 and 1.0
(top-p 0.95, the CLI's default), seeds 0.. one per batch (``--only reel`` runs the settings whose name has
``reel``). The real tunes are an evenly spread sample of the held-out split of ``music21:abc-folk``
(DESIGN.md); ``real, 24+ bars`` and ``real, 4/4`` are those of them with 24 bars or more and in 4/4;
``real, free meter`` every held-out tune in free meter.

Columns (per tune, read from the normalised ABC tokens, so real and generated tunes are read alike):

- ``tonic end``: the last note's pitch class is the tonic of the ``K:`` field.
- ``sect tonic``: the last note before each section bar line (``||``, ``:|``, ``|]``, and the tune's end)
  is the tonic, pooled over all section ends.
- ``3+ same``: share of tunes with 3 or more identical consecutive bars (same tokens); ``run max``: the
  longest such run over the set; ``near loop``: share of tunes where a group of 1-4 bars comes three
  times in a row nearly the same (each bar as many tokens as its counterpart, all but one in four equal);
  ``echo loop``: share of tunes where a group of 1-4 bars comes three times in a row with nearly the same
  melody, whatever the rhythm (the pitches struck, in order, a repeated pitch once: ``G2G2G2B2`` and
  ``G4GGB2`` alike; at most one in four changed, added or left out), which a near loop by tokens does not
  see (a note split in two changes three tokens);
  ``6+ strikes``: share of tunes that strike one note 6 or more times in a row (rests between them not
  counted, a tied note struck once: ``A2A2A2A2|A2A2``), the low-temperature degeneration.
- ``closed``: the tune ends with ``|]`` or ``:|`` (nothing after it); ``sections ok``: the requested
  sections (``2x8``: 16 bars, section bar lines after bars 8 and 16 only), else ``-``.
- ``range``: median pitch range (semitones); ``notes/bar``: median notes a bar (melody notes: grace
  notes and a chord's other notes left out); ``longest bar``: median of each tune's longest bar in units
  (``L:``; free meter has no bar length: the model's bars ran on where no bar line could follow);
  ``out key``: share of notes outside the key signature's pitch classes; ``|int|``: mean absolute interval
  between consecutive notes (semitones); ``steps``: share of intervals of 1-2 semitones; ``leaps``: share of 5
  semitones or more.
- ``tiny``: share of tunes with a note shorter than a quarter of the unit length (``L:``), as none of the
  held-out tunes has.
- ``split end``: share of tunes whose last two notes are one pitch, each shorter than the unit (``d/2d/2|]``:
  a last note split where the tune had to close; none of the held-out tunes ends so).
- ``end >= beat``: share of tunes whose last note lasts a beat or more (a dotted one in 6/8; the grammar's
  cadence rule, :func:`symbolic.abc_grammar.cadence_ticks`); two thirds of the held-out tunes end so.
- ``chords``: share of tunes with a chord (``[...]``; the folk collections' tunes are melodies, a chord
  in one of a hundred).
- ``YL ovl``: Yang-Lerch overlap (mean over ``symbolic.evaluate`` features) with the real tunes
  (real row: one half of the real sample against the other).
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import sys
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

SETTINGS = (  # (name, controls)
    ("defaults", {}),
    ("jig 6/8 G", {"meter": "6/8", "key": "G"}),
    ("reel 4/4 D", {"meter": "4/4", "key": "D"}),
    ("waltz 3/4 Ador 2x8", {"meter": "3/4", "key": "Ador", "sections": (2, 8)}),
    ("reel 4/4 D 4x8", {"meter": "4/4", "key": "D", "sections": (4, 8)}),   # longer than the context
    ("free meter", {"meter": "none"}),
)
TEMPERATURES = (0.5, 0.8, 1.0)
_SECTION_END = ("||", ":|", "|]")
_SHARP_ORDER = "FCGDAEB"
_PC = {"C": 0, "D": 2, "E": 4, "F": 5, "G": 7, "A": 9, "B": 11}
_ACC = {"^^": 2, "^": 1, "=": 0, "_": -1, "__": -2}


@dataclass
class TuneStats:
    tonic_end: bool
    section_ends: list[bool]
    longest_run: int
    near_loop: bool
    echo_loop: bool
    strike_run: int
    closed: bool
    sections_ok: bool | None
    n_chords: int
    tiny: bool
    split_end: bool
    end_beats: Fraction  # the last note's length in beats of the meter
    pitch_range: int
    n_notes: int
    n_outside: int
    intervals: list[int]
    n_bars: int
    longest_bar: Fraction  # in units (L:), tuplets and broken rhythm read as written


def _key_alter(key: str) -> dict[str, int]:
    """Letter -> semitones the key signature of ``key`` (``"Ador"``) alters it by."""
    from ostinato.symbolic.abc_normalise import key_sharps

    sharps = key_sharps(key)
    order = _SHARP_ORDER if sharps >= 0 else _SHARP_ORDER[::-1]
    return {letter: (1 if sharps > 0 else -1) for letter in order[:abs(sharps)]}


def _tonic_pc(key: str) -> int:
    pc = _PC[key[0]]
    if len(key) > 1 and key[1] in "#b":
        pc += 1 if key[1] == "#" else -1
    return pc % 12


def _midi(token: str) -> tuple[str, int]:
    """(letter, MIDI pitch without accidentals) of a pitch token (``C`` is 60, ``c`` 72)."""
    letter = token[0].upper()
    pitch = _PC[letter] + (72 if token[0].islower() else 60)
    return letter, pitch + 12 * token.count("'") - 12 * token.count(",")


def tune_stats(tokens: list[str], sections: tuple[int, int] | None = None) -> TuneStats | None:
    """Statistics of one tune's tokens (header ``M: L: K:``, length token, body); None without notes."""
    from ostinato.symbolic.abc_normalise import BARS, DURATIONS, PITCHES

    pitch_set, bar_set = frozenset(PITCHES), frozenset(BARS)
    key = tokens[2][2:]
    if key not in _KEYS:
        return None
    alter, tonic = _key_alter(key), _tonic_pc(key)
    scale = {(_PC[letter] + alter.get(letter, 0)) % 12 for letter in _PC}
    body = tokens[4:]
    notes: list[int] = []
    section_ends: list[bool] = []
    bars: list[tuple[str, ...]] = []
    closing: list[str] = []
    cur: list[str] = []
    bar_acc: dict[tuple[str, int], int] = {}
    pending_acc: int | None = None
    in_grace = in_chord = False
    chord_notes = n_chords = 0
    outside = 0
    for t in body:
        if t in bar_set:
            if any(x in pitch_set or x == "z" for x in cur):
                bars.append(tuple(cur))
                closing.append(t)
            cur = []
            bar_acc = {}
            if t in _SECTION_END and notes:
                section_ends.append(notes[-1] % 12 == tonic)
            continue
        if t.startswith(("M:", "L:", "K:")) or t in ("[1", "[2"):
            continue
        cur.append(t)
        if t == "{":
            in_grace = True
        elif t == "}":
            in_grace = False
        elif t == "[":
            in_chord, chord_notes = True, 0
            n_chords += 1
        elif t == "]":
            in_chord = False
        elif t in _ACC:
            pending_acc = _ACC[t]
        elif t in pitch_set:
            letter, base = _midi(t)
            if pending_acc is not None:
                bar_acc[(letter, base)] = pending_acc
                pending_acc = None
            pitch = base + bar_acc.get((letter, base), alter.get(letter, 0))
            if in_chord:
                chord_notes += 1
            if in_grace or (in_chord and chord_notes > 1):
                continue  # grace notes and all but a chord's first note are not melody notes
            notes.append(pitch)
            outside += pitch % 12 not in scale
    if any(x in pitch_set or x == "z" for x in cur):
        bars.append(tuple(cur))
        closing.append("")
    if not notes:
        return None
    closed = bool(body) and body[-1] in ("|]", ":|")
    if not closed:
        section_ends.append(notes[-1] % 12 == tonic)
    longest = run = 1
    for a, b in itertools.pairwise(bars):
        run = run + 1 if a == b else 1
        longest = max(longest, run)
    near_loop = _near_loop(bars)
    echo_loop = _echo_loop(bars)
    sections_ok = None
    if sections:
        n, per = sections
        sections_ok = (len(bars) == n * per and closed
                       and all((c in _SECTION_END) == (j % per == 0) for j, c in enumerate(closing, 1)))
    intervals = [b - a for a, b in itertools.pairwise(notes)]
    return TuneStats(notes[-1] % 12 == tonic, section_ends, longest, near_loop, echo_loop, _longest_strikes(body),
                     closed, sections_ok, n_chords,
                     any(DURATIONS.get(t, 1) < Fraction(1, 4) for t in body), _split_end(body),
                     _end_beats(tokens), max(notes) - min(notes), len(notes), outside, intervals, len(bars),
                     max(map(_bar_units, bars)))


def _bar_units(bar: tuple[str, ...]) -> Fraction:
    """A bar's length in units (``L:``): each note, rest or chord one, or its duration token's; grace notes none;
    tuplets and broken rhythm read as written (a bar in free meter has no length to check it against)."""
    from ostinato.symbolic.abc_normalise import DURATIONS, PITCHES

    total, element, group = Fraction(0), False, None
    for t in bar:
        if t in ("{", "["):
            group = t
        elif t in ("}", "]"):
            element = group == "["
            total += element
            group = None
        elif group is None and (t in PITCHES or t == "z"):
            total += 1
            element = True
        elif group is None and t in DURATIONS and element:
            total += DURATIONS[t] - 1
            element = False
    return total


def _near_loop(bars: list[tuple], max_period: int = 4) -> bool:
    """A group of 1..max_period bars played three times in a row nearly the same: each bar at most one edit
    in four from its counterpart (a note changed, added or left out; the grammar's ``nearly_same_bars``)."""
    from ostinato.symbolic.abc_grammar import nearly_same_bars

    return any(i + 1 >= 3 * p and all(nearly_same_bars(bars[i - j], bars[i - j - p]) for j in range(2 * p))
               for i in range(len(bars)) for p in range(1, max_period + 1))


def _split_end(body: list[str]) -> bool:
    """The tune's last two notes are one pitch, each shorter than the unit (``d/2d/2|]``): a last note split
    where the tune had to close and the model would rather have gone on."""
    from ostinato.symbolic.abc_normalise import DURATIONS, PITCHES

    pitch_set = frozenset(PITCHES)
    notes = [(t, DURATIONS.get(body[i + 1], 1) if i + 1 < len(body) else 1)
             for i, t in enumerate(body) if t in pitch_set]
    return len(notes) >= 2 and notes[-1][0] == notes[-2][0] and notes[-1][1] < 1 and notes[-2][1] < 1


def _end_beats(tokens: list[str]) -> Fraction:
    """The last melody note's length in beats of the meter (:func:`events.theory.beat_length`): its duration
    token, the right note of a broken rhythm scaled, a tuplet's ratio applied; ties not followed back."""
    from ostinato.events.theory import BROKEN_RHYTHM, beat_length
    from ostinato.symbolic.abc_grammar import tuplet_ratio
    from ostinato.symbolic.abc_normalise import ACCIDENTAL_ALTER, DURATIONS, PITCHES

    meter, unit, body = tokens[0][2:], Fraction(tokens[1][2:]), tokens[4:]
    depth, last, tuplet, open_tuplet = 0, None, None, 0
    for i, t in enumerate(body):
        if t in ("[", "{"):
            depth += 1
        elif t in ("]", "}"):
            depth -= 1
        elif t.startswith("(") and t[1:2].isdigit():
            tuplet, open_tuplet = tuplet_ratio(int(t[1]), meter), int(t[1])
        elif t in PITCHES and not depth:
            length = Fraction(DURATIONS.get(body[i + 1], 1)) if i + 1 < len(body) else Fraction(1)
            j = i - 1
            while j >= 0 and body[j] in ACCIDENTAL_ALTER:
                j -= 1
            if j >= 0 and body[j] in BROKEN_RHYTHM:
                length *= BROKEN_RHYTHM[body[j]][1]
            if open_tuplet:
                length *= tuplet
                open_tuplet -= 1
            last = length
    beat = beat_length(meter)
    if last is None or beat is None:
        return Fraction(0)
    return last * unit / beat


def _longest_strikes(body: list[str]) -> int:
    """The most strikes of one note in a row (the grammar's ``strikes``: rests between them not counted, a
    tied note struck once)."""
    from ostinato.symbolic.abc_grammar import strikes
    from ostinato.symbolic.abc_normalise import ACCIDENTAL_ALTER, PITCHES

    struck = strikes(body, frozenset(PITCHES), frozenset(ACCIDENTAL_ALTER), ("{", "}", "[", "]"), "-")
    return max((len(list(g)) for _, g in itertools.groupby(struck)), default=0)


def _echo_loop(bars: list[tuple], max_period: int = 4) -> bool:
    """A group of 1..max_period bars three times in a row with nearly the same melody in every bar (the
    grammar's ``bar_melody`` and ``near_melodies``: the pitches struck in order, whatever the rhythm, at
    most one in four changed, added or left out)."""
    from ostinato.symbolic.abc_grammar import bar_melody, near_melodies
    from ostinato.symbolic.abc_normalise import ACCIDENTAL_ALTER, PITCHES

    tunes = [bar_melody(b, frozenset(PITCHES), frozenset(ACCIDENTAL_ALTER), ("{", "}", "[", "]")) for b in bars]
    return any(i + 1 >= 3 * p
               and all(tunes[i - j] and near_melodies(tunes[i - j], tunes[i - j - p]) for j in range(2 * p))
               for i in range(len(tunes)) for p in range(1, max_period + 1))


def _row(name: str, stats: list[TuneStats], overlap: float | None) -> str:
    from ostinato.symbolic.abc_grammar import STYLE_REPEATS

    n = len(stats)
    ends = [e for s in stats for e in s.section_ends]
    ints = [abs(i) for s in stats for i in s.intervals]
    sec = [s.sections_ok for s in stats if s.sections_ok is not None]
    cells = [
        name, str(n),
        f"{sum(s.tonic_end for s in stats) / n:.0%}",
        f"{sum(ends) / max(1, len(ends)):.0%}",
        f"{sum(s.longest_run >= 3 for s in stats) / n:.0%}",
        str(max(s.longest_run for s in stats)),
        f"{sum(s.near_loop for s in stats) / n:.0%}",
        f"{sum(s.echo_loop for s in stats) / n:.0%}",
        f"{sum(s.strike_run > STYLE_REPEATS for s in stats) / n:.0%}",
        f"{sum(s.closed for s in stats) / n:.0%}",
        f"{sum(sec) / len(sec):.0%}" if sec else "-",
        f"{statistics.median(s.pitch_range for s in stats):.0f}",
        f"{statistics.median(s.n_notes / max(1, s.n_bars) for s in stats):.1f}",
        f"{float(statistics.median(s.longest_bar for s in stats)):.0f}",
        f"{sum(s.n_outside for s in stats) / max(1, sum(s.n_notes for s in stats)):.1%}",
        f"{statistics.fmean(ints):.2f}" if ints else "-",
        f"{sum(1 <= i <= 2 for i in ints) / max(1, len(ints)):.0%}",
        f"{sum(i >= 5 for i in ints) / max(1, len(ints)):.0%}",
        f"{sum(s.tiny for s in stats) / n:.0%}",
        f"{sum(s.split_end for s in stats) / n:.0%}",
        f"{sum(s.end_beats >= 1 for s in stats) / n:.0%}",
        f"{sum(s.n_chords > 0 for s in stats) / n:.0%}",
        f"{overlap:.2f}" if overlap is not None else "-",
    ]
    return "| " + " | ".join(cells) + " |"


_HEADER = ("| set | tunes | tonic end | sect tonic | 3+ same | run max | near loop | echo loop | 6+ strikes | closed "
           "| sections ok | range | notes/bar | longest bar | out key | \\|int\\| | steps | leaps | tiny | split end "
           "| end >= beat | chords | YL ovl |\n|" + "---|" * 23)


def _overlap(generated: list, reference: list) -> float | None:
    from ostinato.symbolic.evaluate import yang_lerch

    result = yang_lerch([t for t in generated if len(t)], [t for t in reference if len(t)])
    if not result:
        return None
    return statistics.fmean(v["overlap"] for v in result.values())


def real_tunes(n: int | None, tok, meter: str | None = None) -> list[tuple[list[str], object]]:
    """``n`` held-out tunes spread evenly over the split (None: all of them; ``meter``: those with that ``M:``
    token only): (tokens, note table)."""
    from ostinato.events.sources import iter_items

    items = list(iter_items("music21:abc-folk", split="test"))
    out = []
    step = max(1, len(items) // n) if n else 1
    for item in items[::step]:
        if n is not None and len(out) >= n:
            break
        try:
            text = tok.normalise(item.abc_text())
            if meter is not None and text.split("\n")[1] != meter:
                continue
            ids = tok.encode(text, normalised=True)
            table = tok.decode_notes(ids)
        except Exception:
            continue
        out.append(([tok.vocab[i] for i in ids[1:-1]], table))
    return out


_KEYS: frozenset = frozenset()


def main(argv: list[str] | None = None) -> int:
    global _KEYS
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--model", default="folk-abc", help="shipped model name or model folder (default folk-abc)")
    parser.add_argument("--n", type=int, default=100, help="tunes per setting (default 100)")
    parser.add_argument("--batch", type=int, default=20, help="tunes composed at once (default 20)")
    parser.add_argument("--quick", action="store_true", help="5 tunes per setting, 30 real tunes")
    parser.add_argument("--real", type=int, default=None, help="real tunes (default: --n, at least 60)")
    parser.add_argument("--top-p", type=float, default=0.95, help="nucleus mass (default: the CLI's, 0.95)")
    parser.add_argument("--only", default="", help="only the settings whose name holds this text")
    parser.add_argument("--temperatures", default=",".join(map(str, TEMPERATURES)),
                        help="comma-separated (default: %(default)s)")
    args = parser.parse_args(argv)
    n = 5 if args.quick else args.n
    n_real = args.real or (30 if args.quick else max(60, n))

    from ostinato.symbolic.abc_normalise import KEYS
    from ostinato.symbolic.abc_tokens import count_bars
    from ostinato.symbolic.compose import compose
    from ostinato.symbolic.model import load_model_folder
    from ostinato.symbolic.sample import SamplingConfig
    from ostinato.symbolic.shipped import resolve_model

    _KEYS = frozenset(KEYS)
    model, tok, _config = load_model_folder(resolve_model(args.model))
    model.eval()
    start = time.perf_counter()
    real = real_tunes(n_real, tok)
    read = [(tokens, s, t) for tokens, t in real if (s := tune_stats(tokens)) is not None]
    half = len(real) // 2
    rows = [_row("real (held out)", [s for _, s, _ in read],
                 _overlap([t for _, t in real[:half]], [t for _, t in real[half:]]))]
    ref_tables = [t for _, t in real]
    free = [(tokens, s, t) for tokens, t in real_tunes(None, tok, meter="M:none") if (s := tune_stats(tokens))]
    for name, group in (("real, 24+ bars", [r for r in read if count_bars(r[0]) >= 24]),
                        ("real, 4/4", [r for r in read if r[0][0] in ("M:4/4", "M:C")]),
                        ("real, free meter", free)):   # every held-out free-meter tune (few in the sample)
        if group:
            rows.append(_row(name, [s for _, s, _ in group], _overlap([t for _, _, t in group], ref_tables)))
    print(f"{len(real)} real tunes read in {time.perf_counter() - start:.1f} s", file=sys.stderr)
    for temperature in (float(t) for t in args.temperatures.split(",")):
        for name, controls in SETTINGS:
            if args.only not in name:
                continue
            start = time.perf_counter()
            stats, tables = [], []
            seed = 0
            while len(stats) < n:
                batch = min(args.batch, n - len(stats))
                sampling = SamplingConfig(temperature=temperature, top_p=args.top_p, seed=seed)
                pieces = compose(model, tok, n=batch, sampling=sampling, controls=tok.make_controls(**controls))
                seed += 1
                for piece in pieces:
                    s = tune_stats([tok.vocab[i] for i in piece.ids[1:]][: -1 if piece.ids[-1] == tok.eos_id
                                                                          else None],
                                   controls.get("sections"))
                    if s is not None:
                        stats.append(s)
                        tables.append(piece.table)
            rows.append(_row(f"{name} t={temperature}", stats, _overlap(tables, ref_tables)))
            print(f"{name} t={temperature}: {time.perf_counter() - start:.1f} s", file=sys.stderr)
    print(_HEADER)
    print("\n".join(rows))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
