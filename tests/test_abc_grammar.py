"""The ABC grammar mask: random walks over allowed tokens always give valid, finished, canonical tunes;
controls hold; music21 reads the tunes with full bars; the real corpus is accepted token by token."""

from __future__ import annotations

import collections
import functools
import re
import time
from fractions import Fraction
from pathlib import Path

import numpy as np
import pytest
from conftest import brown_thorn

from ostinato.events.abc_read import AbcTune, parse_tune, read_abc_text, split_tunes
from ostinato.symbolic.abc_grammar import (
    TICKS_PER_UNIT,
    AbcGrammar,
    clear_caches,
    open_ornaments,
    tuplet_ratio,
    without_ornaments,
)
from ostinato.symbolic.abc_normalise import BARS, DURATIONS, PITCHES, AbcNotAccepted, key_sharps, normalise_abc
from ostinato.symbolic.abc_tokens import AbcTokenizer, bar_bucket, count_bars


@pytest.fixture(scope="module")
def tok() -> AbcTokenizer:
    return AbcTokenizer()


def walk(grammar: AbcGrammar, rng: np.random.Generator) -> list[int]:
    """One tune: tokens chosen uniformly among the allowed ones. At every state the mask is not empty,
    and neither is it with the tightest budget the state's completion cost allows (no dead ends)."""
    state = grammar.start()
    ids: list[int] = []
    while not grammar.finished(state):
        mask = grammar.allowed(state)
        assert mask.dtype == bool and mask.shape == (len(grammar.vocab),)
        assert mask.any(), f"dead end after {len(ids)} tokens"
        key, bars_done, n_tokens, note, marked, form = state
        cost = grammar.cost(state)
        assert n_tokens + cost <= grammar.max_tokens
        tight = grammar.allowed((key, bars_done, grammar.max_tokens - cost, note, marked, form))
        valid = grammar.allowed((key, bars_done, n_tokens, note, marked, None))  # without form's style rules
        assert tight.any() and not (tight & ~valid).any() and not (mask & ~valid).any()
        token = int(rng.choice(np.flatnonzero(mask)))
        state = grammar.advance(state, token)
        ids.append(token)
    return ids


# -- an independent reading of bar lengths (Fractions, not the grammar's ticks) --------------------

_BROKEN = {">": (Fraction(3, 2), Fraction(1, 2)), ">>": (Fraction(7, 4), Fraction(1, 4)),
           ">>>": (Fraction(15, 8), Fraction(1, 8)), "<": (Fraction(1, 2), Fraction(3, 2)),
           "<<": (Fraction(1, 4), Fraction(7, 4)), "<<<": (Fraction(1, 8), Fraction(15, 8))}
_PITCH_SET = frozenset(PITCHES)


def bar_lengths(tokens: list[str]) -> list[tuple[Fraction, Fraction | None]]:
    """(length, meter length) in whole notes of every bar with content, from the tokens after <bos>."""
    meter, unit = "none", Fraction(1, 8)
    out: list[tuple[Fraction, Fraction | None]] = []
    length, content, in_grace = Fraction(0), False, False
    elements: list[Fraction] = []
    tuplet_left, tuplet_factor, right_factor = 0, Fraction(1), None

    def meter_length() -> Fraction | None:
        return AbcTokenizer.meter_value("M:" + meter)

    i = 0
    while i < len(tokens):
        t = tokens[i]
        i += 1
        if t.startswith("M:"):
            meter = t[2:]
        elif t.startswith("L:"):
            unit = AbcTokenizer.unit_value(t)
        elif t.startswith(("K:", "<bars")) or t in ("^^", "^", "=", "_", "__", "-", "(", ")", "[1", "[2"):
            continue
        elif t in ("{", "}"):
            in_grace = t == "{"
        elif in_grace:
            continue
        elif t in BARS:
            if content:
                out.append((length * unit, meter_length()))
            length, content = Fraction(0), False
        elif re.fullmatch(r"\(\d", t):
            tuplet_left, tuplet_factor = int(t[1]), tuplet_ratio(int(t[1]), meter)
        elif t in _BROKEN:
            left, right_factor = _BROKEN[t]
            length += elements[-1] * (left - 1)
        elif t in _PITCH_SET or t in ("z", "["):
            if t == "[":
                i = tokens.index("]", i) + 1
            value = Fraction(1)
            if i < len(tokens) and tokens[i] in DURATIONS:
                value = DURATIONS[tokens[i]]
                i += 1
            if tuplet_left:
                value *= tuplet_factor
                tuplet_left -= 1
            if right_factor is not None:
                value *= right_factor
                right_factor = None
            elements.append(value)
            length += value
            content = True
        else:
            raise AssertionError(f"unexpected token {t!r}")
    if content:
        out.append((length * unit, meter_length()))
    return out


def check_tune(tok: AbcTokenizer, grammar: AbcGrammar, ids: list[int], *, meter=None, unit=None, key=None,
               bars=None, sections=None) -> tuple[str, list[str]]:
    """Every property a sampled tune must have; returns (text, tokens)."""
    assert ids[0] == tok.bos_id and ids[-1] == tok.eos_id
    assert len(ids) <= grammar.max_tokens
    assert tok.eos_id not in ids[:-1] and tok.pad_id not in ids
    text = tok.decode(ids)
    assert normalise_abc(text) == text, text
    assert tok.encode(text, normalised=True) == ids, text  # the bar bucket agrees with the bars written
    tokens = [tok.vocab[i] for i in ids[1:-1]]
    if meter:
        assert tokens[0] == f"M:{meter}"
    if unit:
        assert tokens[1] == f"L:{unit}"
    if key:
        assert tokens[2] == f"K:{key}"
    assert not any(t.startswith("M:") for t in tokens[4:]), "no meter changes with strict_bars"
    if meter:
        assert not any(t.startswith("M:") for t in tokens[1:])
    if unit:
        assert not any(t.startswith("L:") for t in tokens[2:])
    if key:
        assert not any(t.startswith("K:") for t in tokens[3:])
    body = tokens[4:]
    if bars:
        assert count_bars(body) == bars, text
    if sections:
        n_sections, per = sections
        closing, content = [], False  # the bar line that ends each bar
        for t in body:
            if t in BARS:
                if content:
                    closing.append(t)
                content = False
            elif t in _PITCH_SET or t == "z":
                content = True
        assert len(closing) == n_sections * per, text
        for j, t in enumerate(closing, 1):
            assert (t in ("||", ":|", "|]")) == (j % per == 0), (j, text)
    lengths = bar_lengths(tokens)
    assert len(lengths) == count_bars(body)
    for j, (length, full) in enumerate(lengths):
        if full is None:
            continue
        assert length <= full, (j, text)
        if 0 < j < len(lengths) - 1 or sections:
            assert length == full, (j, length, full, text)
    assert body[-1] in BARS, "ends with a bar line"
    return text, tokens


# -- random walks ----------------------------------------------------------------------------------

WALKS = [  # (meter, unit, key, bars, sections, max_tokens, walks)
    ("6/8", "1/8", "G", None, None, 160, 20),
    ("2/4", "1/16", "Ador", None, None, 160, 15),
    ("3/4", "1/8", "Bb", 8, None, 256, 15),
    ("4/4", "1/8", "Em", None, None, 128, 15),
    ("C", "1/8", "D", 16, None, 400, 10),
    ("C|", "1/4", "F", None, (2, 4), 256, 10),
    ("9/8", "1/8", "Edor", None, None, 160, 15),
    ("5/4", "1/4", "C", 4, None, 128, 15),
    ("7/8", "1/8", "Amix", None, None, 160, 15),
    ("12/8", "1/16", "F#m", None, (2, 2), 400, 10),
    ("3/2", "1/2", "Ebm", None, None, 96, 15),
    ("none", "1/8", "Glyd", 6, None, 128, 10),
    (None, None, None, None, None, 160, 20),
    (None, None, None, 4, None, 128, 15),
    (None, "1/8", None, None, (2, 3), 200, 10),
    ("6/8", None, "G", None, None, 40, 20),  # a small budget: it must still end validly
    ("2/4", "1/8", None, 2, None, 24, 20),
]


@pytest.mark.parametrize(("meter", "unit", "key", "bars", "sections", "max_tokens", "n_walks"), WALKS)
def test_random_walks_give_valid_finished_tunes(tok, meter, unit, key, bars, sections, max_tokens, n_walks):
    grammar = AbcGrammar(tok, meter=meter, unit=unit, key=key, bars=bars, sections=sections, max_tokens=max_tokens)
    rng = np.random.default_rng(len(WALKS) * max_tokens + n_walks)
    seen = collections.Counter()
    for _ in range(n_walks):
        ids = walk(grammar, rng)
        _text, tokens = check_tune(tok, grammar, ids, meter=meter, unit=unit, key=key,
                                   bars=bars or (sections and sections[0] * sections[1]), sections=sections)
        seen.update(t for t in tokens if not t[0].isalpha() or t == "z")
    # the walks reach the constructs (not only plain notes)
    if max_tokens >= 128:
        for construct in ("z", "[", "(", ")", "{", "-"):
            assert seen[construct] > 0, construct
        assert any(seen[f"({p}"] for p in range(2, 10))
        assert any(seen[b] for b in _BROKEN)


@pytest.mark.parametrize("kwargs", [{"strict_bars": False}, {"strict_bars": False, "final_bar_line": False},
                                    {"final_bar_line": False, "meter": "3/4", "unit": "1/8"}])
def test_syntax_only_walks_round_trip(tok, kwargs):
    """Without exact bars (or with endings after the last note) tunes still normalise to themselves."""
    grammar = AbcGrammar(tok, max_tokens=160, **kwargs)
    rng = np.random.default_rng(3)
    for _ in range(15):
        ids = walk(grammar, rng)
        text = tok.decode(ids)
        assert normalise_abc(text) == text
        assert tok.encode(text, normalised=True) == ids
        if kwargs.get("strict_bars", True):
            lengths = bar_lengths([tok.vocab[i] for i in ids[1:-1]])
            assert all(length == full for length, full in lengths[1:-1])


def test_walks_are_deterministic_when_seeded(tok):
    grammar = AbcGrammar(tok, meter="6/8", unit="1/8", max_tokens=128)
    first = [walk(grammar, np.random.default_rng(7)) for _ in range(2)]
    again = [walk(AbcGrammar(tok, meter="6/8", unit="1/8", max_tokens=128), np.random.default_rng(7))
             for _ in range(2)]
    assert first == again
    clear_caches()  # cold caches give the same masks
    assert [walk(grammar, np.random.default_rng(7)) for _ in range(2)] == first
    state = grammar.start()
    for t in first[0]:
        state = grammar.advance(state, t)
    assert grammar.finished(state)
    assert np.flatnonzero(grammar.allowed(state)).tolist() == [tok.pad_id]  # after <eos> only padding
    with pytest.raises(ValueError, match="the tune has ended"):
        grammar.advance(state, tok.eos_id)


def test_music21_reads_sampled_tunes_with_their_header_and_full_bars(tok):
    """30 tunes across meters: music21 parses them, with the requested meter and key, and every measure
    but the first and last has the meter's length (music21 makes measures only with 2+ plain bar lines)."""
    from music21 import converter
    from music21 import key as m21key
    from music21 import meter as m21meter

    rng = np.random.default_rng(2024)
    measured = 0
    cases = [("6/8", "1/8", "G"), ("2/4", "1/16", "Ador"), ("3/4", "1/8", "Bb"), ("C", "1/8", "Em"),
             ("C|", "1/4", "D"), ("9/8", "1/8", "Dmix"), ("5/4", "1/4", "A"), ("7/8", "1/16", "Ephr"),
             ("4/4", "1/4", "Fm"), ("3/8", "1/8", "C#m")]
    for i in range(30):
        meter, unit, key_name = cases[i % len(cases)]
        grammar = AbcGrammar(tok, meter=meter, unit=unit, key=key_name, bars=8, max_tokens=256)
        ids = walk(grammar, rng)
        text, tokens = check_tune(tok, grammar, ids, meter=meter, unit=unit, key=key_name, bars=8)
        table = parse_tune(AbcTune(1, text))
        assert len(table) > 0
        score = converter.parse(text, format="abc", forceSource=True)
        signature = score.recurse().getElementsByClass(m21meter.TimeSignature).first()
        expected_meter = {"C": "4/4", "C|": "2/2"}.get(meter, meter)
        assert signature.ratioString == expected_meter
        ks = score.recurse().getElementsByClass(m21key.KeySignature).first()
        assert ks.sharps == key_sharps(key_name)
        measures = list(score.recurse().getElementsByClass("Measure"))
        if not measures:
            assert tokens.count("|") < 2, text
            continue
        lengths = bar_lengths(tokens)
        assert len(measures) == len(lengths), text
        full_ql = Fraction(signature.barDuration.quarterLength)
        for j, m in enumerate(measures):
            ql = Fraction(m.duration.quarterLength).limit_denominator(10**6)
            assert ql == lengths[j][0] * 4, (j, text)
            if 0 < j < len(measures) - 1:
                assert ql == full_ql, (j, text)
                measured += 1
    assert measured > 100


# -- controls, refusals, budgets ---------------------------------------------------------------

def test_prefix_ids_and_forced_header(tok):
    grammar = AbcGrammar(tok, meter="6/8", unit="1/8", key="Ador", bars=16)
    prefix = grammar.prefix_ids()
    assert [tok.vocab[i] for i in prefix] == ["<bos>", "M:6/8", "L:1/8", "K:Ador", "<bars:13-16>"]
    state = grammar.start()
    for t in prefix:
        assert np.flatnonzero(grammar.allowed(state)).tolist() == [t]
        state = grammar.advance(state, t)
    assert [tok.vocab[i] for i in AbcGrammar(tok, meter="C", key="G").prefix_ids()] == ["<bos>", "M:C"]
    free = AbcGrammar(tok)
    assert free.prefix_ids() == [tok.bos_id]
    mask = free.allowed(free.advance(free.start(), tok.bos_id))
    meters = {tok.vocab[i] for i in np.flatnonzero(mask)}
    assert "M:6/8" in meters and "M:none" in meters and all(m.startswith("M:") for m in meters)


def test_form_chooses_a_meter_with_bars_unless_free_meter_is_asked_for(tok):
    """A style rule: the sampler's grammar (form) leaves out ``M:none`` when the meter is the model's to
    choose; ``meter="none"`` still writes a free-meter tune, and the grammar accepts one (a real tune)."""
    def meters(grammar: AbcGrammar) -> set[str]:
        state = grammar.advance(grammar.start(), tok.bos_id)
        return {tok.vocab[i] for i in np.flatnonzero(grammar.allowed(state))}

    free = meters(AbcGrammar(tok, form=True))
    assert "M:none" not in free and len(free) == len(meters(AbcGrammar(tok))) - 1
    assert meters(AbcGrammar(tok, meter="none", form=True)) == {"M:none"}
    grammar = AbcGrammar(tok, form=True)
    grammar.advance(grammar.advance(grammar.start(), tok.bos_id), tok.token_to_id["M:none"])   # advance takes it


def test_form_closes_a_free_meter_bar_as_long_as_the_corpus_longest(tok):
    """A style rule: in free meter no bar length closes a bar, and the model's bars ran on to the budget (a
    median tune's longest bar 456 units long) where no bar line could follow; at ``STYLE_FREE_BAR_TOKENS``
    tokens a bar begins no element, nor a tie, but the tonic while the last note is not the tonic."""
    from ostinato.symbolic.abc_grammar import STYLE_FREE_BAR_TOKENS

    grammar = AbcGrammar(tok, meter="none", unit="1/8", key="G", bars=2, max_tokens=400, form=True)
    notes = "A B c d e f " * (STYLE_FREE_BAR_TOKENS // 6)
    assert len(notes.split()) == STYLE_FREE_BAR_TOKENS

    def starts(text: str) -> set[str]:
        mask = grammar.allowed(_feed(grammar, text))
        return {t for i in np.flatnonzero(mask) if (t := tok.vocab[i]) not in BARS and tok.block_of(i) != "duration"}

    before = starts(" ".join(notes.split()[:-1]))
    assert {"A", "g", "z", "(", "[", "-"} <= before   # one token short of the cap: anything goes
    tonics = {t for t in tok.vocab if t[0] in "Gg" and tok.block_of(tok.token_to_id[t]) == "pitch"}
    assert starts(notes) == tonics | {"="}   # after A..f: only the tonic (G natural) may begin
    assert starts(notes + "G") == set()      # the tonic struck: the bar closes (a duration may still follow)
    mask = grammar.allowed(_feed(grammar, notes + "G"))
    assert mask[tok.token_to_id["|"]] and not mask[tok.token_to_id["|]"]]   # the first of 2 bars
    last = "G 2 | " + notes   # the last bar, where no bar line but the tune's end may follow
    assert starts(last) == tonics | {"="} and starts(last + "G") == set()
    mask = grammar.allowed(_feed(grammar, last + "G"))
    assert mask[tok.token_to_id["|]"]] and not mask[tok.token_to_id["|"]]
    loose = AbcGrammar(tok, meter="none", unit="1/8", key="G", bars=2, max_tokens=400)   # not a rule of validity
    assert loose.allowed(_feed(loose, notes))[tok.token_to_id["A"]]


def test_form_keeps_free_meter_bars_from_looping(tok):
    """Free meter has no bar to fill, so the loop rules, which refuse what would fill a bar near its counterpart,
    never acted there: a third bar nearly the same (by tokens and by ear) may not take its bar line yet."""
    grammar = AbcGrammar(tok, meter="none", unit="1/8", key="G", bars=8, max_tokens=400, form=True)
    mask = grammar.allowed(_feed(grammar, "G A B c | G A B d | G A B c"))
    assert not mask[tok.token_to_id["|"]]
    assert mask[tok.token_to_id["e"]] and mask[tok.token_to_id["2"]]   # the bar goes on, or its note is longer
    varied = grammar.allowed(_feed(grammar, "G A B c | G A B d | G A e f"))
    assert varied[tok.token_to_id["|"]]
    loose = AbcGrammar(tok, meter="none", unit="1/8", key="G", bars=8, max_tokens=400)
    assert loose.allowed(_feed(loose, "G A B c | G A B d | G A B c"))[tok.token_to_id["|"]]


def test_sections_control_writes_section_bar_lines(tok):
    grammar = AbcGrammar(tok, meter="4/4", unit="1/8", key="D", sections=(3, 4), max_tokens=300)
    assert tok.vocab[grammar.prefix_ids()[-1]] == bar_bucket(12)
    rng = np.random.default_rng(5)
    for _ in range(5):
        check_tune(tok, grammar, walk(grammar, rng), meter="4/4", bars=12, sections=(3, 4))


def test_advance_refuses_disallowed_tokens_naming_them(tok):
    grammar = AbcGrammar(tok, meter="6/8", unit="1/8", key="G", bars=4, max_tokens=200)
    ids = tok.token_to_id
    state = grammar.start()
    with pytest.raises(ValueError, match="'M:6/8' not allowed"):
        grammar.advance(state, ids["M:6/8"])  # <bos> first
    for t in grammar.prefix_ids():
        state = grammar.advance(state, t)
    with pytest.raises(ValueError, match="'<eos>' not allowed: the tune cannot end here"):
        grammar.advance(state, tok.eos_id)
    with pytest.raises(ValueError, match="'\\)' not allowed"):
        grammar.advance(state, ids[")"])
    with pytest.raises(ValueError, match="'M:3/4' not allowed"):
        grammar.advance(state, ids["M:3/4"])
    with pytest.raises(ValueError, match="out of range"):
        grammar.advance(state, len(tok))
    # the bar is 6 eighths: A4 then a 3 would overfill it (bar 2: not a pickup)
    for t in ("z", "6", "|", "A", "4"):
        state = grammar.advance(state, ids[t])
    assert not grammar.allowed(state)[ids["3"]]
    with pytest.raises(ValueError, match="'3' not allowed"):
        grammar.advance(state, ids["3"])
    # an accidental carries: once ^F is written, F must carry one in the bar
    for t in ("^", "F"):
        state = grammar.advance(state, ids[t])
    assert not grammar.allowed(state)[ids["F"]] and not grammar.allowed(state)[ids["f"]]
    with pytest.raises(ValueError, match="'F' not allowed: F had an accidental"):
        grammar.advance(state, ids["F"])
    assert grammar.allowed(state)[ids["G"]] and grammar.allowed(state)[ids["="]]
    # a tie continues the same note
    state = grammar.advance(state, ids["-"])
    with pytest.raises(ValueError, match="'\\|' not allowed"):  # the bar is not full yet (5 of 6)
        grammar.advance(state, ids["|"])
    allowed = {tok.vocab[i] for i in np.flatnonzero(grammar.allowed(state))}
    assert allowed == {"^"}
    with pytest.raises(ValueError, match="'=' not allowed: a tie continues the accidental '\\^'"):
        grammar.advance(state, ids["="])
    state = grammar.advance(state, ids["^"])
    assert {tok.vocab[i] for i in np.flatnonzero(grammar.allowed(state))} == {"F"}
    state = grammar.advance(state, ids["F"])
    assert {"|", "/2"} <= {tok.vocab[i] for i in np.flatnonzero(grammar.allowed(state))}
    assert grammar.advance(state, ids["|"])[1] == 2  # two bars done


def test_tuplets_broken_rhythm_and_grace_rules(tok):
    ids = tok.token_to_id
    grammar = AbcGrammar(tok, meter="2/4", unit="1/8", key="C", bars=4, max_tokens=200)
    state = grammar.start()
    for t in [*grammar.prefix_ids(), ids["A"], ids["4"], ids["|"]]:  # bar 2 can be neither pickup nor last
        state = grammar.advance(state, t)

    def allowed():
        return {tok.vocab[i] for i in np.flatnonzero(grammar.allowed(state))}

    state = grammar.advance(state, ids["(3"])
    assert "|" not in allowed() and "{" not in allowed() and "(3" not in allowed()
    for t in ("c", "d"):
        state = grammar.advance(state, ids[t])
        assert ">" not in allowed() and "|" not in allowed()  # no broken rhythm in a tuplet, not complete
    state = grammar.advance(state, ids["e"])
    assert "|" not in allowed()  # the triplet is one beat; the bar needs another
    assert ">" not in allowed()  # broken rhythm cannot take a tuplet's last note either
    for t in ("A", ">", "B"):
        state = grammar.advance(state, ids[t])
    assert "|" in allowed() and "<" not in allowed()  # A>B is one beat: the bar is full; no chains
    state = grammar.advance(state, ids["|"])
    assert "}" not in allowed() and ")" not in allowed()
    state = grammar.advance(state, ids["{"])
    assert "z" not in allowed() and "}" not in allowed() and "g" in allowed()
    for t in ("g", "}"):
        state = grammar.advance(state, ids[t])
    assert "z" not in allowed() and "|" not in allowed() and "c" in allowed()


@pytest.mark.parametrize(("kwargs", "message"), [
    ({"meter": "6/9"}, "meter '6/9' is not in the ABC vocabulary"),
    ({"unit": "1/3"}, "unit '1/3' is not in the ABC vocabulary"),
    ({"key": "Hdor"}, "key 'Hdor' is not in the ABC vocabulary"),
    ({"bars": 0}, "bars must be at least 1"),
    ({"sections": (2, 0)}, "sections must be"),
    ({"sections": (2, 4), "bars": 9}, "disagrees with sections"),
    ({"max_tokens": 4}, "max_tokens must be at least 8"),
    ({"meter": "16/1", "unit": "1/64", "bars": 16, "max_tokens": 512}, "max_tokens=512 is too small"),
])
def test_impossible_controls_raise_naming_the_parameter(tok, kwargs, message):
    with pytest.raises(ValueError, match=message):
        AbcGrammar(tok, **kwargs)


def test_budget_is_exact_for_the_shortest_tune(tok):
    """One 6/8 bar at L:1/8 needs <bos> M L K <bars> z 6 | <eos> = 9 tokens: 9 works, 8 does not."""
    assert AbcGrammar(tok, meter="6/8", unit="1/8", key="G", bars=1, max_tokens=9).cost(
        AbcGrammar(tok, meter="6/8", unit="1/8", key="G", bars=1, max_tokens=9).start()) == 9
    with pytest.raises(ValueError, match="needs 9 tokens"):
        AbcGrammar(tok, meter="6/8", unit="1/8", key="G", bars=1, max_tokens=8)
    grammar = AbcGrammar(tok, meter="6/8", unit="1/8", key="G", bars=1, max_tokens=9)
    for seed in range(20):
        ids = walk(grammar, np.random.default_rng(seed))
        assert len(ids) <= 9
        check_tune(tok, grammar, ids, meter="6/8", bars=1)


# -- the real corpus ---------------------------------------------------------------------------

@functools.cache
def corpus_ids(step: int) -> list[tuple[str, list[int]]]:
    """Every ``step``-th ABC tune of music21's corpus that the tokenizer accepts, encoded."""
    import music21

    tok = AbcTokenizer()
    root = Path(music21.__file__).parent / "corpus"
    tunes = [(path.name, t) for path in sorted(root.rglob("*.abc")) for t in split_tunes(read_abc_text(path))]
    out = []
    for name, tune in tunes[::step]:
        try:
            out.append((f"{name}#{tune.number}", tok.encode(tune.text)))
        except AbcNotAccepted:
            continue
    return out


def _accepts(grammar: AbcGrammar, ids: list[int]) -> str | None:
    state = grammar.start()
    try:
        for t in ids:
            state = grammar.advance(state, t)
    except ValueError as exc:
        return re.sub(r"token '[^']*'", "token", str(exc))
    return None if grammar.finished(state) else "not finished"


def test_the_grammar_accepts_the_real_corpus(tok):
    """Every 10th corpus tune, fed token by token. Syntax only: at least 95% accepted; with exact bars,
    at least 95% of the tunes whose bars are all regular (the rest have irregular bars in the source)."""
    tunes = corpus_ids(10)
    assert len(tunes) > 1200
    report = []
    regular = [ids for _name, ids in tunes
               if not any(t.startswith("M:") for t in (tok.vocab[i] for i in ids[2:-1]))
               and _regular_bars([tok.vocab[i] for i in ids[1:-1]])]
    for strict, final_bar_line in ((False, False), (False, True), (True, False), (True, True)):
        grammar = AbcGrammar(tok, max_tokens=100_000, strict_bars=strict, final_bar_line=final_bar_line)
        reasons: collections.Counter = collections.Counter()
        start = time.perf_counter()
        for _name, ids in tunes:
            why = _accepts(grammar, ids)
            if why:
                reasons[why] += 1
        seconds = time.perf_counter() - start
        accepted = 1 - sum(reasons.values()) / len(tunes)
        line = (f"strict_bars={strict} final_bar_line={final_bar_line}: {accepted:.3f} of {len(tunes)} tunes "
                f"accepted ({seconds:.1f} s)")
        if strict:
            ok_regular = sum(_accepts(grammar, ids) is None for ids in regular) / len(regular)
            line += f"; {ok_regular:.3f} of the {len(regular)} with regular bars"
            if not final_bar_line:
                assert ok_regular >= 0.95
        elif not final_bar_line:
            assert accepted >= 0.95
        report.append(line)
        report.extend(f"    {n:5d} {why}" for why, n in reasons.most_common(6))
    print("\n" + "\n".join(report))


def test_read_takes_the_marks_of_real_tunes_that_the_grammar_would_not_write(tok):
    """Every 10th corpus tune, read as a primer or the bars before an infill are: the syntax-only grammar
    refuses 34 of 1,282 token by token, :meth:`AbcGrammar.read` (without their slurs, ties and grace
    groups when refused) 10 (those refused for what they are, not for a mark: an ending with no bar line
    before it, ``|]`` with a repeat open)."""
    tunes = corpus_ids(10)
    grammar = AbcGrammar(tok, max_tokens=100_000, strict_bars=False, final_bar_line=False)

    def reads(ids: list[int]) -> bool:
        try:
            state, tokens = grammar.read(ids, fold=lambda n, *_: n + 1, init=0)
        except ValueError:
            return False
        assert state[2] == len(ids) and tokens <= len(ids)   # the tokens counted are all of them
        return grammar.finished(state)

    assert len(tunes) == 1282
    assert sum(_accepts(grammar, ids) is None for _name, ids in tunes) == 1248
    assert sum(reads(ids) for _name, ids in tunes) == 1272


def test_read_a_tune_that_ties_different_notes_and_leaves_a_slur_open(tok):
    ids = tok.encode(tok.normalise(brown_thorn()), normalised=True)
    grammar = AbcGrammar(tok, max_tokens=100_000, strict_bars=False, final_bar_line=False)
    assert _accepts(grammar, ids) == "token not allowed: a tie continues 'D'"   # D-E, its first bar
    bare = "".join(tok.vocab[i] for i in without_ornaments(tok.vocab, ids))
    assert bare.startswith("<bos>M:3/4L:1/8K:D<bars:17-20>DE|F>EFABc|d3cBA/2F/2|E4D2|D2z2AB/2c/2|d2d>efd|")
    state, tokens = grammar.read(ids, fold=lambda n, *_: n + 1, init=0)
    assert state[0] == "DONE" and state[1:3] == (17, len(ids))   # every token counted
    # the fold saw the bare tune: 15 ties, 8 + 7 slur marks and 3 one-note grace groups fewer
    assert tokens == len(without_ornaments(tok.vocab, ids)) == len(ids) - 15 - 15 - 3 * 3
    # to the bar line after "FABd(c/2d/2e/2f/2": 12 bars, the slur it opens still open (it never closes)
    cut = [i for i, t in enumerate(ids) if tok.vocab[t] == "|"][11] + 1
    assert "".join(tok.vocab[i] for i in ids[cut - 10:cut]) == "(c/2d/2e/2f/2|"
    assert open_ornaments(tok.vocab, ids[:cut]) == (1, False)
    (key, bars, n, *_), _ = grammar.read(ids[:cut])
    assert (bars, n, key.slur, key.tie) == (12, cut, 1, None)


def test_read_refuses_what_the_bare_tune_cannot_say(tok):
    """The refusal of the tokens as given is kept when the bare tune is refused too (``[1`` straight after
    a note), and when a tie is open at the end (the bare tune would forget which note it continues)."""
    grammar = AbcGrammar(tok, max_tokens=100_000, strict_bars=False, final_bar_line=False)

    def ids(words: str) -> list[int]:
        return [tok.token_to_id[w] for w in words.split()]

    head = "<bos> M:4/4 L:1/8 K:G <bars:1-4> "
    assert open_ornaments(tok.vocab, ids(head + "G - A 7 - |")) == (0, True)
    for body in ("G - A 7 [1 B 8 :|", "G - A 7 - |"):
        with pytest.raises(ValueError, match="a tie continues 'G'"):
            grammar.read(ids(head + body))
    (key, bars, n, *_), _ = grammar.read(ids(head + "( G - A 7 ) ( B 8 |"))
    assert (bars, n, key.slur) == (1, 15, 1)
    # the bare tune is walked without a budget; what is left of the whole one's is checked after it
    short = AbcGrammar(tok, max_tokens=17, bars=4, strict_bars=False, final_bar_line=False)
    (_key, bars, n, *_), _ = short.read(ids(head + "G - A 7 |"))   # three bars and <eos> take 7 more
    assert (bars, n) == (1, 10)
    with pytest.raises(ValueError, match="no tune of these controls finishes within 17 tokens after it"):
        short.read(ids(head + "( G - A 7 ) |"))   # one token too many


def _regular_bars(tokens: list[str]) -> bool:
    lengths = bar_lengths(tokens)
    return all(full is None or (length <= full and (length == full or j in (0, len(lengths) - 1)))
               for j, (length, full) in enumerate(lengths))


# -- form (the sampler's grammar: AbcTokenizer.grammar) ---------------------------------------------

FORM_WALKS = [  # (meter, unit, key, bars, sections, max_tokens)
    ("3/4", "1/8", "Ador", None, (2, 8), 256),
    ("6/8", "1/8", "G", None, None, 256),
    ("4/4", "1/8", "D", 8, None, 256),
    (None, None, None, None, None, 200),
    ("2/4", "1/8", None, 2, None, 24),  # a small budget: the form rules still end validly
]


@pytest.mark.parametrize(("meter", "unit", "key", "bars", "sections", "max_tokens"), FORM_WALKS)
def test_form_walks_end_with_one_closing_bar_line(tok, meter, unit, key, bars, sections, max_tokens):
    """With ``form``, random walks are valid tunes whose last token is '|]' or ':|', with '|]' nowhere else
    and no group of 1..4 bars three times in a row unless the budget forced it."""
    grammar = AbcGrammar(tok, meter=meter, unit=unit, key=key, bars=bars, sections=sections,
                         max_tokens=max_tokens, form=True)
    rng = np.random.default_rng(11)
    for _ in range(8):
        ids = walk(grammar, rng)
        _text, tokens = check_tune(tok, grammar, ids, meter=meter, unit=unit, key=key,
                                   bars=bars or (sections and sections[0] * sections[1]), sections=sections)
        body = tokens[4:]
        assert body[-1] in ("|]", ":|"), body[-8:]
        assert "|]" not in body[:-1]


def _feed(grammar: AbcGrammar, text: str):
    state = grammar.start()
    for t in grammar.prefix_ids():
        state = grammar.advance(state, t)
    for t in text.split():
        state = grammar.advance(state, grammar.tok.token_to_id[t])
    return state


def test_form_closing_bar_line_rules(tok):
    ids = tok.token_to_id
    grammar = AbcGrammar(tok, meter="3/4", unit="1/8", key="G", bars=2, max_tokens=100, form=True)
    state = _feed(grammar, "G 6")
    with pytest.raises(ValueError, match="'\\|\\]' not allowed: '\\|\\]' ends the tune"):
        grammar.advance(state, ids["|]"])  # not at bar 1 of 2
    last = grammar.allowed(_feed(grammar, "G 6 | G 6"))  # the last bar line is '|]' or ':|'
    assert {tok.vocab[i] for i in np.flatnonzero(last) if tok.vocab[i] in BARS} == {"|]", ":|"}
    assert grammar.allowed(_feed(grammar, "G 6 | G 6 :|"))[tok.eos_id]
    state = _feed(grammar, "G 6 | G 6 |]")
    assert np.flatnonzero(grammar.allowed(state)).tolist() == [tok.eos_id]  # nothing after '|]'
    assert grammar.finished(grammar.advance(state, tok.eos_id))
    sections = AbcGrammar(tok, meter="3/4", unit="1/8", key="G", sections=(2, 1), max_tokens=100, form=True)
    state = _feed(sections, "G 6 || G 6")
    assert not sections.allowed(state)[ids["||"]] and sections.allowed(state)[ids["|]"]]
    # without form, the old rules: '|]' anywhere, '<eos>' after any bar line
    loose = AbcGrammar(tok, meter="3/4", unit="1/8", key="G", bars=2, max_tokens=100)
    assert loose.allowed(_feed(loose, "G 6"))[ids["|]"]]
    assert loose.allowed(_feed(loose, "G 6 | G 6 |"))[tok.eos_id]


def test_form_refuses_a_third_identical_or_nearly_identical_bar_and_xyxyxy(tok):
    ids = tok.token_to_id
    grammar = AbcGrammar(tok, meter="3/4", unit="1/8", key="G", bars=16, max_tokens=256, form=True)
    loose = AbcGrammar(tok, meter="3/4", unit="1/8", key="G", bars=16, max_tokens=256)
    third = "G 2 A 2 B 2 | G 2 A 2 B 2 | G 2 A 2 B"
    state = _feed(grammar, third)
    assert not grammar.allowed(state)[ids["2"]]  # B2 would repeat the bar a third time
    assert grammar.allowed(state)[ids["/2"]]  # B/2: the bar goes on, and may differ
    assert grammar.allowed(state)[ids["c"]]  # a note passes (it may still be shortened), but G2A2Bc is one
    after_c = grammar.allowed(grammar.advance(state, ids["c"]))  # token from G2A2B2: its bar line is refused
    assert not after_c[ids["|"]] and after_c[ids["/2"]]
    assert loose.allowed(_feed(loose, third))[ids["2"]] and loose.allowed(_feed(loose, third))[ids["c"]]
    near = "G 2 A 2 B 2 | G 2 A 2 c 2 | G 2 A 2 d"  # the bar twice with its last note changed, then again
    assert not grammar.allowed(_feed(grammar, near))[ids["2"]] and grammar.allowed(_feed(grammar, near))[ids["/2"]]
    assert grammar.allowed(_feed(grammar, "G 2 A 2 B 2 | G 2 A 2 c 2 | G 2 B 2 d"))[ids["2"]]  # two changes: fine
    two = "G 2 A 2 B 2 | G 2 A 2 B"  # a second identical bar is fine
    assert grammar.allowed(_feed(grammar, two))[ids["2"]]
    xy = "G 6 | A 6 | G 6 | A 6 | G 6 | A"  # X Y X Y X then Y: refused
    assert not grammar.allowed(_feed(grammar, xy))[ids["6"]]
    assert grammar.allowed(_feed(grammar, "G 6 | A 6 | G 6 | A 6 | B 6 | A"))[ids["6"]]


def test_form_near_loops_count_edits_and_join_accidentals_to_their_notes(tok):
    """A jig phrase played twice, then begun a third time: a bar that is one unit from the bar before may not
    close (its bar line is refused; a shorter last note varies it), also with a flattened note for the plain
    one (the accidental joins its pitch: one unit changed, not two)."""
    ids = tok.token_to_id
    durations = {tok.vocab[i] for i in range(*tok.blocks["duration"])}
    grammar = AbcGrammar(tok, meter="6/8", unit="1/8", key="G", bars=16, max_tokens=256, form=True)
    twice = "G 3 z 2 D | G 3 z 2 D | "
    mask = grammar.allowed(_feed(grammar, twice + "G 3 z 2"))
    assert not mask[ids["D"]]  # the third identical bar (the exact rule)
    assert mask[ids["C"]] and mask[ids["z"]] and mask[ids["_"]] and mask[ids["("]]  # they may still be shortened
    assert not mask[ids["["]]  # but a chord is no way out: its brackets alone would take the bar far from G3z2D
    for near in ("G 3 z 2 C", "G 3 z 2 _ B", "G 3 z 2 z", "G 3 z 2 D"):  # one unit from G3z2D, or none
        full = grammar.allowed(_feed(grammar, twice + near))
        assert not full[ids["|"]] and not full[ids["|:"]] and full[ids["/2"]], near
    same = grammar.allowed(_feed(grammar, twice + "G 3 z 2 D"))  # a tie would keep it near too: only a new length
    assert {tok.vocab[i] for i in same.nonzero()[0]} <= durations
    assert grammar.allowed(_feed(grammar, twice + "G 3 z 2 D /2 E /2"))[ids["|"]]  # three units more
    other = twice + "A 3 z 2"
    assert not grammar.allowed(_feed(grammar, other + " D"))[ids["|"]]  # A3z2D: one change
    assert grammar.allowed(_feed(grammar, other + " C"))[ids["|"]]  # A3z2C: two
    flat = "G 3 z 2 _ D | G 3 z 2 _ D | A 3 z 2"  # the target has an accidental and its note
    assert not grammar.allowed(_feed(grammar, flat + " _ D"))[ids["|"]]
    assert grammar.allowed(_feed(grammar, flat + " ^ D"))[ids["|"]]  # two changes
    assert grammar.allowed(_feed(grammar, flat + " D"))[ids["|"]]
    loose = AbcGrammar(tok, meter="6/8", unit="1/8", key="G", bars=16, max_tokens=256)
    assert loose.allowed(_feed(loose, twice + "G 3 z 2 D"))[ids["|"]]  # a rule of form only


def test_form_echo_refuses_a_third_bar_with_nearly_the_same_melody_whatever_its_rhythm(tok):
    """A bar that strikes the pitches of its counterpart (a note split in two or merged, or one pitch in four
    changed), after the group has come twice so: it may not close (a duration that fills the bar, a bar line,
    the same pitch again, a rest, a tie, a chord are refused); a new pitch, or a shorter note, remain. The
    token rule does not see these (``G2G2G2B2`` and ``G4GGB2`` are 4 tokens apart)."""
    ids = tok.token_to_id
    grammar = AbcGrammar(tok, meter="4/4", unit="1/8", key="G", bars=16, max_tokens=256, form=True)
    twice = "G 2 G 2 G 2 B 2 | G 4 G G B 2 | "
    state = _feed(grammar, twice + "G 2 G 2 G 2 B")  # (G, B) a third time
    mask = grammar.allowed(state)
    assert not mask[ids["2"]] and mask[ids["/2"]]  # B2 would close the bar with the same melody
    assert not mask[ids["B"]] and not mask[ids["z"]] and not mask[ids["-"]] and not mask[ids["["]]
    assert mask[ids["c"]] and mask[ids["A"]]  # a new pitch makes it another melody
    assert grammar.allowed(_feed(grammar, twice + "G 2 G 2 G 2 c"))[ids["2"]]  # (G, c): another melody
    assert grammar.allowed(_feed(grammar, "G 2 G 2 G 2 B 2 | G 4 A G B 2 | G 2 G 2 G 2 B"))[ids["2"]]
    full = grammar.allowed(_feed(grammar, twice + "G 4 G G G B"))  # full, (G, B): only a shorter last note
    assert not full[ids["|"]] and full[ids["/2"]]
    assert not full[~grammar._is_duration].any()
    jig = AbcGrammar(tok, meter="6/8", unit="1/8", key="G", bars=16, max_tokens=256, form=True)
    near = "B 2 A G 2 D | B A A G 2 B | B 2 A G 2 E"  # (B A G D), (B A G B), (B A G E): one in four changed
    assert not jig.allowed(_feed(jig, near))[ids["|"]] and jig.allowed(_feed(jig, near))[ids["/2"]]
    assert jig.allowed(_feed(jig, "B 2 A G 2 D | B A A c 2 B | B 2 A G 2 E"))[ids["|"]]  # two in four: not near
    assert jig.allowed(_feed(jig, "B 2 A G 2 D | B A A G 2 B | B 2 A G 2 E /2 c /2"))[ids["|"]]  # (B A G E c)
    loose = AbcGrammar(tok, meter="4/4", unit="1/8", key="G", bars=16, max_tokens=256)
    assert loose.allowed(_feed(loose, twice + "G 2 G 2 G 2 B"))[ids["2"]]  # a rule of form only


def test_form_echo_leaves_the_counterpart_while_there_is_room(tok):
    """A third bar that follows its counterpart's melody (A G A B c d, one pitch in four may differ) must
    leave it while the bar still has room for the pitches that takes: with two units left, the next pitch
    may not be the counterpart's (d), nor the last again, nor a rest; one that leaves it (e) passes, and then
    the bar may not close at once (A G A B c e is still one edit away) but goes on with a shorter e."""
    from ostinato.symbolic.abc_grammar import near_melodies

    ids = tok.token_to_id
    grammar = AbcGrammar(tok, meter="4/4", unit="1/8", key="G", bars=16, max_tokens=256, form=True)
    twice = "A G A B c 2 d 2 | A G A B c 2 d 2 | "
    early = grammar.allowed(_feed(grammar, twice + "A G A"))  # five units left: the model may follow
    assert early[ids["B"]]
    late = grammar.allowed(_feed(grammar, twice + "A G A B c 2"))
    assert not late[ids["d"]] and not late[ids["c"]] and not late[ids["z"]] and late[ids["e"]] and late[ids["G"]]
    after = grammar.allowed(_feed(grammar, twice + "A G A B c 2 e"))
    assert not after[ids["2"]] and after[ids["/2"]]
    assert not grammar.allowed(_feed(grammar, twice + "A G A B c 2 e /2"))[ids["d"]]  # back towards it
    assert grammar.allowed(_feed(grammar, twice + "A G A B c 2 e /2"))[ids["f"]]
    assert grammar.allowed(_feed(grammar, twice + "A G A B c 2 e /2 f"))[ids["/2"]]
    assert near_melodies(tuple("AGABcd"), tuple("AGABce")) and near_melodies(tuple("GB"), tuple("GB"))
    assert not near_melodies(tuple("AGAB"), tuple("AGABdc"))  # one in four of the shorter: 1, not 2
    assert not near_melodies(tuple("GB"), tuple("GA"))


def test_form_an_echo_in_the_last_bar_is_varied_before_the_held_tonic(tok):
    """The echo and cadence rules together (folk-abc v6's ``c2c2AA:|``): a tune's last bar that follows a
    phrase heard twice (``c2c2A2``) must end on the tonic held a beat, and ``A2`` there would be the phrase a
    third time. The pitch that leaves the phrase must come before that beat: after ``c2c`` the c may not be
    held on to the beat (``c2c2`` would leave only the echo ``A2`` or a short ``AA``); ``e`` leaves it, then
    the tonic is held: ``c2ceA2``. In a bar that need not close, the model may follow the phrase longer."""
    ids = tok.token_to_id
    twice = "c 2 c 2 A 2 | c 2 c 2 A 2 | "
    grammar = AbcGrammar(tok, meter="3/4", unit="1/8", key="Ador", bars=3, max_tokens=256, form=True)
    mask = grammar.allowed(_feed(grammar, twice + "c 2 c"))
    assert not mask[ids["2"]] and not mask[ids["c"]] and not mask[ids["A"]]
    assert mask[ids["e"]] and mask[ids["d"]] and mask[ids["/2"]]
    leaving = grammar.allowed(_feed(grammar, twice + "c 2 c e"))
    assert leaving[ids["A"]] and not leaving[ids["2"]]   # e a unit: the tonic's beat is left
    held = grammar.allowed(_feed(grammar, twice + "c 2 c e A"))
    assert np.flatnonzero(held).tolist() == [ids["2"]]
    state = _feed(grammar, twice + "c 2 c e A 2")
    assert grammar.allowed(state)[ids["|]"]] and grammar.allowed(state)[ids[":|"]]
    longer = AbcGrammar(tok, meter="3/4", unit="1/8", key="Ador", bars=4, max_tokens=256, form=True)
    assert longer.allowed(_feed(longer, twice + "c 2 c"))[ids["2"]]   # no held tonic to leave room for


def test_form_strikes_one_note_at_most_five_times_in_a_row(tok):
    """The low-temperature degeneration ``A2A2A2A2|A2A2A2A2``: a sixth strike of the same note in a row is
    refused (95% of the held-out tunes strike no note more than 5 times in a row); a rest between does not
    break the run, a tie holds a note without striking it again, an accidental goes with its note."""
    ids = tok.token_to_id
    grammar = AbcGrammar(tok, meter="4/4", unit="1/8", key="G", bars=16, max_tokens=256, form=True)
    mask = grammar.allowed(_feed(grammar, "G 2 G 2 G 2 G 2 | G"))
    assert not mask[ids["G"]] and mask[ids["A"]] and mask[ids["g"]]
    assert not grammar.allowed(_feed(grammar, "G 2 G 2 z G G 2 | G"))[ids["G"]]
    assert grammar.allowed(_feed(grammar, "G 2 G 2 G 2 G 2 - | G"))[ids["G"]]  # the tie: four strikes
    assert grammar.allowed(_feed(grammar, "G 2 G 2 A 2 G 2 | G"))[ids["G"]]
    sharp = "^ F 2 ^ F 2 ^ F 2 ^ F 2 | ^ F"
    assert not grammar.allowed(_feed(grammar, sharp + " ^"))[ids["F"]]
    assert grammar.allowed(_feed(grammar, sharp + " ="))[ids["F"]]
    assert grammar.allowed(_feed(grammar, sharp + " ^"))[ids["G"]]
    loose = AbcGrammar(tok, meter="4/4", unit="1/8", key="G", bars=16, max_tokens=256)
    assert loose.allowed(_feed(loose, "G 2 G 2 G 2 G 2 | G"))[ids["G"]]


def test_form_chords_name_each_note_once_and_have_at_most_four(tok):
    """A style rule (the corpus's chords are 2-4 distinct notes): the mask refuses a chord's own notes again,
    also with an accidental, and any fifth note; ``advance`` still accepts them (a real tune may have them)."""
    ids = tok.token_to_id
    grammar = AbcGrammar(tok, meter="6/8", unit="1/8", key="G", bars=16, max_tokens=256, form=True)
    one = grammar.allowed(_feed(grammar, "G 3 [ c"))
    assert not one[ids["c"]] and one[ids["e"]] and one[ids["C"]] and one[ids["c'"]] and one[ids["]"]]
    assert not grammar.allowed(_feed(grammar, "G 3 [ c ^"))[ids["c"]]  # ^c is the same letter and octave
    assert grammar.allowed(_feed(grammar, "G 3 [ c ^"))[ids["d"]]
    four = grammar.allowed(_feed(grammar, "G 3 [ c e g c'"))
    assert not four[grammar.pitch_ids].any() and not four[grammar.acc_ids].any()
    assert [tok.vocab[i] for i in four.nonzero()[0]] == ["]"]
    assert grammar.allowed(_feed(grammar, "G 3 [ c e g"))[ids["b"]]
    after = grammar.allowed(_feed(grammar, "G 3 [ c e ] | [ c"))  # a new chord starts afresh
    assert not after[ids["c"]] and after[ids["e"]]
    again = _feed(grammar, "G 3 [ c c")  # refused by the mask only: advance takes it
    assert grammar.allowed(again)[ids["]"]]
    loose = AbcGrammar(tok, meter="6/8", unit="1/8", key="G", bars=16, max_tokens=256)
    assert loose.allowed(_feed(loose, "G 3 [ c"))[ids["c"]]  # not a rule without form


def test_form_notes_are_no_shorter_than_a_quarter_unit(tok):
    """A style rule (no held-out tune has a note under L/4): no such duration, none that would leave less than
    that to the bar's end, no broken rhythm after a note shorter than a unit, and in a bar that must close, the
    tonic once less than two such notes' time is left (else the model halves on: ``F/2<F/8F/16|]``)."""
    ids = tok.token_to_id
    grammar = AbcGrammar(tok, meter="6/8", unit="1/8", key="G", bars=16, max_tokens=256, form=True)
    after = grammar.allowed(_feed(grammar, "G 3 z 2 D"))
    assert after[ids["/4"]] and after[ids["/2"]] and after[ids["3/4"]]  # 3/4: a quarter unit left
    assert not after[ids["/8"]] and not after[ids["/16"]] and not after[ids["/32"]] and not after[ids["3/16"]]
    assert not after[ids["7/8"]]  # an eighth of a unit left
    assert grammar.allowed(_feed(grammar, "G 2 z D"))[ids[">"]] and grammar.allowed(_feed(grammar, "G 2 z D"))[ids["<"]]
    short = grammar.allowed(_feed(grammar, "G 2 z D /2"))
    assert not short[ids[">"]] and not short[ids["<"]]
    assert grammar.allowed(_feed(grammar, "G 3 z 2 D /8"))[ids["D"]]  # refused by the mask only
    closing = AbcGrammar(tok, meter="3/4", unit="1/8", key="G", bars=2, max_tokens=256, form=True)
    roomy = closing.allowed(_feed(closing, "G 6 | B 4 A /2"))  # 3/2 units left: a note, then the tonic
    assert roomy[ids["A"]] and roomy[ids["G"]]
    last = closing.allowed(_feed(closing, "G 6 | B 4 A 3/2"))  # 1/2 left: room for one such note only
    assert last[ids["G"]] and last[ids["g"]] and not last[ids["A"]] and not last[ids["F"]]


def test_form_grace_notes_ornament_the_note_after_them(tok):
    """Between a grace group and its note no slur ends and no other grace group begins: the model once wrote
    ``({de})`` and grace groups like it 24 times in a bar (grace notes take no time) until the budget left it
    whole-bar notes.
    After the note, both are allowed again; without the form rules, as before."""
    ids = tok.token_to_id
    grammar = AbcGrammar(tok, meter="3/4", unit="1/8", key="Ador", bars=16, max_tokens=256, form=True)
    loose = AbcGrammar(tok, meter="3/4", unit="1/8", key="Ador", bars=16, max_tokens=256)
    for text in ("e 2 ( { d }", "e 2 { d } (", "e 2 ( ( { d } (3", "e 2 { d } ( ("):
        mask = grammar.allowed(_feed(grammar, text))
        assert not mask[ids[")"]] and not mask[ids["{"]] and mask[ids["c"]], text
        assert loose.allowed(_feed(loose, text))[ids["c"]]
    assert loose.allowed(_feed(loose, "e 2 ( { d }"))[ids[")"]] and loose.allowed(_feed(loose, "e 2 { d } ("))[ids["{"]]
    after = grammar.allowed(_feed(grammar, "e 2 ( { d } c"))
    assert after[ids[")"]] and after[ids["{"]]
    assert grammar.allowed(_feed(grammar, "e 2 ("))[ids["{"]]


def test_form_a_broken_rhythm_leaves_its_right_note_a_length(tok):
    """A broken rhythm is refused where no length of its right note would fill the bar or leave a shortest
    note's time: ``c<`` half a unit from the bar's end leaves its right note (three halves of a length) only
    ``B/4`` and an eighth of a unit, ``c<B/4A/8|`` (5 tunes in 100 at t=1.0 had a note that short)."""
    ids = tok.token_to_id
    grammar = AbcGrammar(tok, meter="3/4", unit="1/8", key="Ador", bars=16, max_tokens=256, form=True)
    late = grammar.allowed(_feed(grammar, "A /2 B /2 c 2 c > B A"))  # one unit left: A< leaves half of one
    assert not late[ids["<"]] and late[ids["<<"]] and late[ids["|"]] and late[ids["/2"]]
    early = grammar.allowed(_feed(grammar, "c 2 c A"))
    assert early[ids["<"]] and early[ids[">"]]
    loose = AbcGrammar(tok, meter="3/4", unit="1/8", key="Ador", bars=16, max_tokens=256)
    assert loose.allowed(_feed(loose, "A /2 B /2 c 2 c > B A"))[ids["<"]]


def test_form_a_closing_tonic_holds_on_rather_than_split(tok):
    """In a bar that must close, a tonic takes no length that leaves less than a beat (here two units) but some
    to the bar's end, and within the last beat nothing new follows it: no ``d/2d/2|]`` (half of the default
    tunes ended so, none of the 640 held-out tunes does); with a beat or more left, the tune may go on. No
    tuplet begins in that bar."""
    ids = tok.token_to_id
    grammar = AbcGrammar(tok, meter="3/4", unit="1/8", key="G", bars=2, max_tokens=256, form=True)
    one = grammar.allowed(_feed(grammar, "B 6 | B 2 A 2 G"))  # the tonic on the last beat, one unit by default
    assert not one[ids["3/2"]] and not one[ids["7/4"]] and not one[ids["/2"]]  # would leave less than a beat
    assert one[ids["2"]] and not one[ids["G"]] and not one[ids["A"]]  # held to the bar's end, nothing after it
    half = grammar.allowed(_feed(grammar, "B 6 | B 3 A 3/2 G"))  # (fed: begun late) half a unit left
    assert not half[ids["G"]] and not half[ids["A"]] and not half[ids["z"]] and half[ids["3/2"]]
    assert not half[ids["/2"]] and not half[ids["3/4"]]
    early = grammar.allowed(_feed(grammar, "B 6 | B 2 G"))  # a beat and more left after it: the tune may go on
    assert early[ids["/2"]] and early[ids["A"]] and early[ids["4"]]
    middle = grammar.allowed(_feed(grammar, "B 2 A 2 G"))  # not a closing bar
    assert middle[ids["/2"]] and middle[ids["A"]]
    assert not grammar.allowed(_feed(grammar, "B 6 | B 2"))[ids["(3"]]  # no tuplet begun in the closing bar
    assert grammar.allowed(_feed(grammar, "B 2"))[ids["(3"]]
    assert not grammar.allowed(_feed(grammar, "B 6 | B 2 A"))[ids["-"]]  # no tie holding A in the closing bar
    assert grammar.allowed(_feed(grammar, "B 6 | B 2 G"))[ids["-"]]  # a tonic may be tied on
    assert grammar.allowed(_feed(grammar, "B 2 A"))[ids["-"]]


def test_form_picks_bar_buckets_the_budget_can_hold(tok):
    """Under the form rules the header's bar buckets are those whose fewest bars fit the budget at the
    collections' density (``STYLE_BAR_TOKENS``, 1.35 tokens per unit of a bar and its bar line): a 4/4 bar in
    sixteenths takes 17 units' worth, so 256 tokens hold at most 9-12 bars; in eighths, 17-20. A bucket that
    only whole-bar notes could reach ended tunes ``|:d16|d16|d16|...`` (20 bars of it). Where none fits, the
    rule gives way; a free meter is left alone."""
    from ostinato.symbolic.abc_grammar import STYLE_BAR_TOKENS

    assert Fraction(135, 100) == STYLE_BAR_TOKENS
    ids = tok.token_to_id

    def buckets(meter: str, unit: str, max_tokens: int, form: bool = True) -> list[str]:
        grammar = AbcGrammar(tok, max_tokens=max_tokens, form=form)
        state = grammar.start()
        for t in ["<bos>", "M:" + meter, "L:" + unit, "K:G"]:
            state = grammar.advance(state, ids[t])
        return [tok.vocab[i] for i in np.flatnonzero(grammar.allowed(state))]

    assert buckets("4/4", "1/16", 256)[-1] == "<bars:9-12>"  # 9 * 1.35 * 17 = 206.6 <= 254 < 13 * 22.95
    assert buckets("4/4", "1/8", 256)[-1] == "<bars:17-20>"  # 17 * 12.15 = 206.6; 21 * 12.15 = 255.2
    assert buckets("6/8", "1/8", 256)[-1] == "<bars:25-32>"
    assert len(buckets("4/4", "1/8", 256, form=False)) > len(buckets("4/4", "1/8", 256))
    assert buckets("none", "1/8", 256) == buckets("none", "1/8", 256, form=False)  # free meter: every bucket
    assert buckets("4/4", "1/16", 40) == ["<bars:1-4>"] and len(buckets("4/4", "1/16", 40, form=False)) == 3
    # where not even one bar fits so, the rule gives way: the valid buckets stay
    assert buckets("4/4", "1/16", 24) == buckets("4/4", "1/16", 24, form=False) == ["<bars:1-4>", "<bars:5-8>"]


def test_form_a_tune_ends_on_a_tonic_held_a_beat(tok):
    """The cadence rule: the tune's last note lasts a beat or more (a dotted one in 6/8, three units here; two
    thirds of the held-out tunes end so, and the model, stopped where the rules closed the tune, ended on a
    quarter of a beat in four tunes of ten). In the bar that must close: no element begun within its last
    beat, no length leaving less than a beat but some, no tie or broken rhythm into the last beat, and the
    note that can only be the last is the tonic; where the tune may end by choice, ``|]`` and ``:|`` wait for
    a last note a beat long."""
    from ostinato.events.theory import beat_length
    from ostinato.symbolic.abc_grammar import cadence_ticks

    assert [beat_length(m) for m in ("9/8", "6/4", "3/8", "C", "C|", "2/4")] == [
        Fraction(3, 8), Fraction(3, 4), Fraction(1, 8), Fraction(1, 4), Fraction(1, 2), Fraction(1, 4)]
    assert cadence_ticks("6/8", "1/8") == 3 * TICKS_PER_UNIT and cadence_ticks("C|", "1/8") == 4 * TICKS_PER_UNIT
    assert cadence_ticks("3/4", "1/16") == 4 * TICKS_PER_UNIT and cadence_ticks("none", "1/8") == 0
    # a unit longer than the beat is the shortest last note; never more than a bar
    assert cadence_ticks("3/8", "1/4") == TICKS_PER_UNIT and cadence_ticks("2/4", "1/1") == TICKS_PER_UNIT // 2
    ids = tok.token_to_id
    eighths = AbcGrammar(tok, meter="3/8", unit="1/4", key="G", bars=2, max_tokens=256, form=True)
    held = eighths.allowed(_feed(eighths, "B 3/2 | G"))  # a unit would leave half a unit: held on, or room left
    assert held[ids["3/2"]] and held[ids["/2"]] and not held[ids["A"]] and not held[ids["z"]]
    other = eighths.allowed(_feed(eighths, "B 3/2 | A"))  # not the tonic: shortened, a unit left for it
    assert other[ids["/2"]] and not other[ids["3/2"]] and not other[ids["G"]]
    grammar = AbcGrammar(tok, meter="6/8", unit="1/8", key="G", bars=2, max_tokens=256, form=True)
    two = grammar.allowed(_feed(grammar, "G 6 | B A"))  # the next note begins at unit 2, four units left
    assert two[ids["A"]] and two[ids["B"]] and two[ids["z"]]
    last = grammar.allowed(_feed(grammar, "G 6 | B A G"))  # the next note begins on the last beat: the last one
    assert last[ids["G"]] and last[ids["g"]] and not last[ids["A"]] and not last[ids["z"]] and not last[ids["^"]]
    assert last[ids["4"]] and not last[ids["2"]] and last[ids["/2"]]  # G4 fills; G2 would leave one unit
    assert not last[ids[">"]] and not grammar.allowed(_feed(grammar, "G 6 | B 2 A"))[ids[">"]]  # A> B/2: late
    held = grammar.allowed(_feed(grammar, "G 6 | B A G G"))  # the tonic on the last beat
    assert held[ids["3"]] and not held[ids["2"]] and not held[ids["G"]] and not held[ids["-"]]
    assert not held[ids["["]] and not held[ids["{"]] and not held[ids["("]] and not held[ids["(3"]]
    slurred = grammar.allowed(_feed(grammar, "G 6 | B A G ( G"))  # a slur's end would fix G at one unit
    assert slurred[ids["3"]] and not slurred[ids[")"]] and not slurred[ids["2"]]
    assert grammar.allowed(_feed(grammar, "G 6 | B A G ( G 3"))[ids[")"]]
    # where the tune may end by choice (a bar bucket): '|]' and ':|' after a last note a beat long only
    free = AbcGrammar(tok, meter="6/8", unit="1/8", key="G", max_tokens=256, form=True)
    state = free.start()
    for t in [*free.prefix_ids(), ids["<bars:1-4>"]]:
        state = free.advance(state, t)
    for t in ["G", "6", "|", "A", "4", "G", "2"]:
        state = free.advance(state, ids[t])
    assert not free.allowed(state)[ids["|]"]] and not free.allowed(state)[ids[":|"]]
    assert free.allowed(state)[ids["|"]]
    slurred = state
    for t in ["|", "A", "4", "(", "G", "2", ")"]:  # a slur's end does not hide the last note's length
        slurred = free.advance(slurred, ids[t])
    assert not free.allowed(slurred)[ids["|]"]] and not free.allowed(slurred)[ids[":|"]]
    for t in ["|", "A", "3", "G", "3"]:
        state = free.advance(state, ids[t])
    assert free.allowed(state)[ids["|]"]] and free.allowed(state)[ids[":|"]]
    # the rules give way where nothing else is left: a bar fed with a short tonic last may still close
    fed = _feed(grammar, "G 6 | B 4 G 2")
    assert grammar.allowed(fed)[ids["|]"]]


def test_form_ends_sections_and_the_tune_on_the_tonic(tok):
    ids = tok.token_to_id
    grammar = AbcGrammar(tok, meter="3/4", unit="1/8", key="Ador", sections=(2, 2), max_tokens=256, form=True)
    # bar 2 closes section 1: a note that would fill it must be the tonic A (any octave, bare or '=')
    state = _feed(grammar, "E 6 | c 2 B 2")
    mask = grammar.allowed(state)
    assert mask[ids["A"]] and mask[ids["a"]] and mask[ids["A,"]] and mask[ids["="]]
    assert not mask[ids["B"]]  # the next note begins the last beat (the cadence rule): it is the last one
    after_a = grammar.allowed(grammar.advance(state, ids["A"]))
    assert after_a[ids["2"]]
    early = _feed(grammar, "E 6 | c 2")  # two beats left: B, then the tonic
    assert grammar.allowed(early)[ids["B"]]
    after_b = grammar.allowed(grammar.advance(early, ids["B"]))
    assert not after_b[ids["4"]] and after_b[ids["/2"]] and after_b[ids["2"]]  # B4 would end the section on B
    last = grammar.allowed(_feed(grammar, "E 6 | c 2 B 3"))  # the next note fills the bar
    assert last[ids["A"]] and last[ids["="]] and not last[ids["B"]] and not last[ids["^"]]  # ^A: not the tonic
    assert grammar.allowed(_feed(grammar, "E 6 | c 2 B 3 ="))[ids["A"]]
    full = _feed(grammar, "E 6 | c 2 B 3 B /2")
    assert not grammar.allowed(full)[ids["B"]] and grammar.allowed(full)[ids["A"]]
    # where the tune may end by choice (a bar bucket), '|]' waits for a tonic last note
    free = AbcGrammar(tok, meter="3/4", unit="1/8", key="G", max_tokens=256, form=True)
    state = free.start()
    for t in [*free.prefix_ids(), ids["<bars:1-4>"]]:
        state = free.advance(state, t)
    for t in ["G", "6", "|", "A", "6"]:
        state = free.advance(state, ids[t])
    assert not free.allowed(state)[ids["|]"]] and free.allowed(state)[ids["|"]]
    for t in ["|", "G", "6"]:
        state = free.advance(state, ids[t])
    assert free.allowed(state)[ids["|]"]]
