"""The ABC normaliser and tokenizer: exact tokens, rejections, persistence, and the corpus round trip."""

from __future__ import annotations

import collections
import functools
import json
import re
from fractions import Fraction
from pathlib import Path

import pytest

from ostinato.events import InputError
from ostinato.events.abc_read import AbcTune, parse_tune, read_abc_text, split_tunes
from ostinato.symbolic.abc_normalise import AbcNotAccepted, music21_misreads, normalise_abc
from ostinato.symbolic.abc_tokens import AbcTokenizer, bar_bucket, count_bars


@pytest.fixture(scope="module")
def tok() -> AbcTokenizer:
    return AbcTokenizer()


@functools.cache
def corpus_tunes() -> list[tuple[str, int, str]]:
    """Every ABC tune of music21's corpus: (file relative to the corpus, X number, text)."""
    import music21

    root = Path(music21.__file__).parent / "corpus"
    out = []
    for path in sorted(root.rglob("*.abc")):
        for tune in split_tunes(read_abc_text(path)):
            out.append((path.relative_to(root).as_posix(), tune.number, tune.text))
    return out


# -- vocabulary -------------------------------------------------------------------------------

def test_vocabulary_is_closed_and_laid_out_in_blocks(tok):
    assert tok.kind == "abc"
    assert (tok.pad_id, tok.bos_id, tok.eos_id) == (0, 1, 2)
    assert tok.vocab[:3] == ["<pad>", "<bos>", "<eos>"]
    assert len(tok) == len(tok.vocab) == 336
    assert list(tok.blocks) == ["special", "length", "meter", "unit", "key", "bar", "ending", "accidental",
                                "pitch", "rest", "duration", "tuplet", "broken", "tie", "slur", "grace", "chord"]
    stop = 0
    for name, (start, end) in tok.blocks.items():  # contiguous, in order, covering the vocabulary
        assert start == stop and end > start, name
        stop = end
    assert stop == len(tok)
    assert len(set(tok.vocab)) == len(tok)
    span = tok.blocks["bar"]
    assert tok.vocab[span[0]:span[1]] == ["|", "||", "|]", "[|", "|:", ":|"]
    assert tok.vocab[slice(*tok.blocks["unit"])] == ["L:1/1", "L:1/2", "L:1/4", "L:1/8", "L:1/16", "L:1/32", "L:1/64"]
    assert tok.block_of(tok.token_to_id["K:Ador"]) == "key"
    assert tok.block_of(tok.token_to_id["3/2"]) == "duration"
    assert tok.duration_value("3/2") == Fraction(3, 2)
    assert tok.meter_value("M:6/8") / tok.unit_value("L:1/8") == 6  # units in a bar
    assert (tok.meter_value("M:C|"), tok.meter_value("M:none")) == (1, None)
    assert AbcTokenizer().vocab == tok.vocab  # not learned from data: every instance is the same


def test_length_control_buckets():
    assert count_bars(["d", ">", "c", "|:", "B", "2", "|", ":|", "|:", "z", "|]"]) == 3
    assert count_bars(["A", "|", "B"]) == 2
    assert [bar_bucket(n) for n in (1, 4, 5, 16, 17, 129, 500)] == [
        "<bars:1-4>", "<bars:1-4>", "<bars:5-8>", "<bars:13-16>", "<bars:17-20>", "<bars:129+>", "<bars:129+>"]
    with pytest.raises(ValueError, match="at least 1"):
        bar_bucket(0)


# -- hand-written tunes, exact results ------------------------------------------------------------

JIG = """%abc-2.1
X:3
T:Test tune
C:Someone
M:6/8
R:jig
K:G
% a comment
"G"d>c|:B2A ^G3|{ga}f(3efg [ce]2z|1 e'-e'/C,3/2 c2 :|2 !trill!c=F_B .u~c3 ||
w: la la
M:2/4
L:1/16
(AB) (3:2:3cde c'2 d'2|]
"""

JIG_NORMALISED = """X:1
M:6/8
L:1/8
K:G
d>c|:B2A^G3|{ga}f(3efg[ce]2z|[1e'-e'/2C,3/2c2:|[2c=F_Bc3||
M:2/4
L:1/16
(AB)(3cdec'2d'2|]
"""

JIG_TOKENS = [
    "M:6/8", "L:1/8", "K:G", "<bars:5-8>",
    "d", ">", "c", "|:", "B", "2", "A", "^", "G", "3", "|", "{", "g", "a", "}", "f", "(3", "e", "f", "g",
    "[", "c", "e", "]", "2", "z", "|", "[1", "e'", "-", "e'", "/2", "C,", "3/2", "c", "2", ":|", "[2",
    "c", "=", "F", "_", "B", "c", "3", "||", "M:2/4", "L:1/16",
    "(", "A", "B", ")", "(3", "c", "d", "e", "c'", "2", "d'", "2", "|]",
]


def test_every_construct_gives_the_expected_tokens(tok):
    text = normalise_abc(JIG)
    assert text == JIG_NORMALISED
    assert tok.tokenize(text) == JIG_TOKENS
    ids = tok.encode(JIG)
    assert ids == [tok.bos_id, *(tok.token_to_id[t] for t in JIG_TOKENS), tok.eos_id]
    assert tok.decode(ids) == JIG_NORMALISED
    assert tok.encode(JIG_NORMALISED, normalised=True) == ids


def test_repeats_endings_broken_rhythm_and_octaves(tok):
    text = normalise_abc("X:1\nL:1/4\nM:3/4\nK:Bb\n|: A,, B,,, c''' :: d<<e>>>f |1 g :| |2 a ||\n")
    assert text == "X:1\nM:3/4\nL:1/4\nK:Bb\n|:A,,B,,,c''':|\n|:d<<e>>>f|[1g:|[2a||\n"
    assert tok.tokenize(text)[3:] == [
        "<bars:1-4>", "|:", "A,,", "B,,,", "c'''", ":|", "|:", "d", "<<", "e", ">>>", "f", "|", "[1", "g",
        ":|", "[2", "a", "||"]


def test_header_defaults_and_canonical_spellings():
    # no M: -> M:none and L:1/8; X renumbered; key mode spelled canonically; titles dropped
    assert normalise_abc("X:7\nT:t\nK:A Dorian\nabc\n") == "X:1\nM:none\nL:1/8\nK:Ador\nabc\n"
    # L: from the meter when missing (ABC 2.1: below 3/4 -> 1/16)
    assert normalise_abc("X:1\nM:2/4\nK:Em\nB\n") == "X:1\nM:2/4\nL:1/16\nK:Em\nB\n"
    assert normalise_abc("X:1\nM:3/4\nK:E minor\nB\n") == "X:1\nM:3/4\nL:1/8\nK:Em\nB\n"
    # spellings: c, -> C ; C' -> c ; A// -> A/4 ; A3/ -> A3/2 ; (3:2 -> (3 ; .- (dotted tie) -> -
    assert normalise_abc("X:1\nM:C\nL:1/8\nK:F mix\nc, C' A// A3/ (3:2ABc A.-A\n") == (
        "X:1\nM:C\nL:1/8\nK:Fmix\nCcA/4A3/2(3ABcA-A\n")


def test_dropped_text_and_decorations():
    tune = ('X:1\nT:Title\nS:source\nM:4/4\nL:1/8\nQ:1/4=120\nK:D\n'
            '"Am"!fermata!~A .B Hc uv d y `e % comment\n'
            'P:B\nw:words here\nN:a note\n'
            '"^text"f2 x2 g2 \\\nA8|]\n')
    assert normalise_abc(tune) == "X:1\nM:4/4\nL:1/8\nK:D\nABcdef2g2A8|]\n"


def test_accidentals_are_written_so_both_readings_agree():
    # ABC 1.x (no version line): an accidental affects its own note only. Later notes of the same
    # letter in the bar get their own (key-signature) accidental written out.
    legacy = "X:1\nM:C\nL:1/8\nK:Am\n^F F f F|[^FA] F2 ^c- | c c |\n"
    assert normalise_abc(legacy) == "X:1\nM:C\nL:1/8\nK:Am\n^F=F=f=F|[^FA]=F2^c-|=c=c|\n"
    # ABC 2.1: the accidental carries through the bar (music21 carries it by letter, any octave).
    modern = "%abc-2.1\n" + legacy
    assert normalise_abc(modern) == "X:1\nM:C\nL:1/8\nK:Am\n^F^F^f^F|[^FA]=F2^c-|=c=c|\n"
    # no accidental written anywhere: nothing added
    assert normalise_abc("X:1\nK:G\nFfF|\n") == "X:1\nM:none\nL:1/8\nK:G\nFfF|\n"


def test_broken_rhythm_at_the_end_of_a_line():
    assert normalise_abc("X:1\nL:1/8\nM:2/4\nK:C\nA>\nB C2|\n") == "X:1\nM:2/4\nL:1/8\nK:C\nA>BC2|\n"


def test_adjacent_bar_lines_merge_and_repeat_pairs_stay_apart():
    text = normalise_abc("X:1\nL:1/8\nK:C\nA4 | | B4 :| || c4 |] |: d4 :: e4 ||\n")
    assert text == "X:1\nM:none\nL:1/8\nK:C\nA4|B4:|\nc4|:d4:|\n|:e4||\n"


def test_decode_skips_pad_and_length_and_stops_at_eos(tok):
    ids = tok.encode("X:1\nL:1/8\nM:2/4\nK:C\nCDEF|\n")
    padded = [tok.pad_id, *ids, tok.token_to_id["G"], tok.pad_id]
    assert tok.decode(padded) == "X:1\nM:2/4\nL:1/8\nK:C\nCDEF|\n"
    with pytest.raises(ValueError, match="out of range"):
        tok.decode([tok.bos_id, len(tok)])


@pytest.mark.parametrize(("text", "reason"), [
    ("X:1\nT:no key\nabc\n", "no K: field"),
    ("X:1\nK:G\n% only a comment\n", "no notes"),
    ("X:1\nV:1\nK:G\nabc\n", "several voices"),
    ("X:1\nK:G\nV:1\nabc\n", "several voices"),
    ("X:1\nK:G\nab & cd|\n", "voice overlay"),
    ("X:1\nK:G\nab [K:D] cd|\n", "inline field"),
    ("X:1\nK:G bass\nabc\n", "key modifier 'bass'"),
    ("X:1\nK:Bloc\nabc\n", "key mode 'loc'"),
    ("X:1\nK:Hp\nabc\n", "key K:Hp"),
    ("X:1\nM:FREI4/4\nK:G\nabc\n", "meter M:FREI4/4"),
    ("X:1\nL:3/8\nK:G\nabc\n", "unit length L:3/8"),
    ("X:1\nK:G\nab Z2|\n", "multi-bar rest"),
    ("X:1\nK:G\na b5/3|\n", "duration 5/3"),
    ("X:1\nK:G\na c'''' |\n", "pitch c'''' out of range"),
    ("X:1\nK:G\nab (6:6abcdef|\n", "tuplet '\\(6:6'"),
    ("X:1\nK:G\nab (5:2abcde|\n", "tuplet '\\(5:2'"),
    ("X:1\nK:G\nab |:| cd\n", "bar line '\\|:\\|'"),
    ("X:1\nK:G\nab * cd\n", "unexpected symbol '\\*'"),
    ("X:1\nK:G\nab > > cd\n", "two broken-rhythm marks"),
])
def test_rejections_name_the_reason(text, reason, tok):
    with pytest.raises(AbcNotAccepted, match=reason):
        normalise_abc(text)
    with pytest.raises(AbcNotAccepted, match=reason):
        tok.encode(text)
    assert issubclass(AbcNotAccepted, ValueError)


def test_tokenize_refuses_text_that_is_not_normalised(tok):
    with pytest.raises(ValueError, match="X:1"):
        tok.tokenize("X:2\nM:C\nL:1/8\nK:C\nabc\n")
    with pytest.raises(ValueError, match="M:, L:, K:"):
        tok.tokenize("X:1\nL:1/8\nM:C\nK:C\nabc\n")
    with pytest.raises(ValueError, match="unexpected"):
        tok.tokenize("X:1\nM:C\nL:1/8\nK:C\na b c\n")
    with pytest.raises(ValueError, match="vocabulary"):
        tok.encode("X:1\nM:C\nL:1/8\nK:C\na5/3\n", normalised=True)


# -- persistence -----------------------------------------------------------------------------------

def test_save_load_round_trip(tmp_path, tok):
    path = tmp_path / "sub" / "tokenizer.json"
    tok.save(path)
    data = json.loads(path.read_text())
    assert data["kind"] == "abc" and data["version"] == AbcTokenizer.VERSION and data["vocab"] == tok.vocab
    assert data["blocks"]["special"] == [0, 3]
    loaded = AbcTokenizer.load(path)
    assert loaded.vocab == tok.vocab and loaded.blocks == tok.blocks
    assert loaded.encode(JIG) == tok.encode(JIG)
    assert list(tmp_path.joinpath("sub").iterdir()) == [path]  # atomic: no temporary left behind


@pytest.mark.parametrize(("change", "message"), [
    ({"kind": "remi"}, "kind is 'remi', expected 'abc'"),
    ({"version": 99}, "version 99 is not supported"),
    ({"vocab": ["<pad>"]}, "vocabulary differs"),
    ({"blocks": {"special": [0, 3]}}, "blocks differ"),
])
def test_from_json_names_the_problem(change, message, tok):
    with pytest.raises(ValueError, match=message):
        AbcTokenizer.from_json({**tok.to_json(), **change})
    with pytest.raises(ValueError, match="must be an object"):
        AbcTokenizer.from_json(["abc"])


def test_load_bad_files_raise_one_line_input_errors(tmp_path, tok):
    with pytest.raises(InputError, match="no such file"):
        AbcTokenizer.load(tmp_path / "missing.json")
    broken = tmp_path / "broken.json"
    broken.write_text('{"kind": "abc", ')
    with pytest.raises(InputError, match="not a tokenizer JSON file") as info:
        AbcTokenizer.load(broken)
    assert str(broken) in str(info.value) and "\n" not in str(info.value)
    other = tmp_path / "other.json"
    other.write_text(json.dumps({**tok.to_json(), "version": 0}))
    with pytest.raises(InputError, match="version 0"):
        AbcTokenizer.load(other)


def test_a_rejected_body_line_says_where():
    """A tune of many lines rejected for one character: the message says which line and quotes it from there."""
    text = "X:1\nM:4/4\nL:1/8\nK:D\nA2F2|A4d2B2|\nd4e4|d4 * c2c2|c6e2B3BB2B2|A4z2B2A2A2G2F2|\n"
    with pytest.raises(AbcNotAccepted) as caught:
        normalise_abc(text)
    assert str(caught.value) == "unexpected symbol '*' in line 6 of the tune, at '* c2c2|c6e2B3BB2'"
    with pytest.raises(AbcNotAccepted, match=r"^duration 22 not in the vocabulary in line 5 of the tune, at 'B22d'$"):
        normalise_abc("X:1\nK:D\nA2F2|\nA2F2|\nA4d2B22d\n")


# -- the corpus ----------------------------------------------------------------------------------

def test_round_trip_on_every_music21_abc_tune(tok):
    """normalise -> encode -> decode is the identity on every accepted tune; at least 99% accepted."""
    tunes = corpus_tunes()
    assert len(tunes) > 12000
    reasons: collections.Counter = collections.Counter()
    accepted = 0
    for name, number, text in tunes:
        try:
            normal = normalise_abc(text)
        except AbcNotAccepted as exc:
            reasons[re.sub(r"'.*'", "'...'", str(exc))] += 1
            continue
        ids = tok.encode(normal, normalised=True)
        assert tok.decode(ids) == normal, f"{name}#{number}"
        assert normalise_abc(normal) == normal, f"{name}#{number}: normalising twice changes the text"
        accepted += 1
    fraction = accepted / len(tunes)
    print(f"\nABC tunes accepted: {accepted}/{len(tunes)} = {fraction:.4f}; rejected: {reasons.most_common(8)}")
    assert fraction >= 0.99


def _notes(text: str, number: int = 1) -> list[tuple[int, int, int]]:
    table = parse_tune(AbcTune(number, text))
    return sorted(zip(table.onset_tick.tolist(), table.offset_tick.tolist(), table.pitch.tolist(), strict=True))


def test_music21_defects_the_sample_avoids():
    """The music21 defects ``music21_misreads`` detects are real (if music21 fixes one, this fails)."""
    head = "X:1\nM:2/4\nL:1/16\nK:G\n"
    assert len(_notes(head + "A2 HB2 c2|\n")) == 2  # music21 drops a note marked H (fermata)
    assert len(_notes(head + '">"A2 B2 c2|\n')) == 2  # ... and one after an annotation starting with >
    assert len(_notes(head + "A2 B2 c2::\nd2e2|\n")) == 5
    assert len(_notes(head + "A2 B2 C::d2e2|\n")) == 2  # "C::..." is read as a field line
    assert _notes(head + "A2>.B2|\n") == _notes(head + "A2B2|\n")  # broken rhythm ignored beside '.'
    assert _notes(head + "A2>B2|\n") != _notes(head + "A2B2|\n")


ACCIDENTAL_TUNES = [
    "X:1\nM:C\nL:1/8\nK:Am\n^F F f F|[^FA] F2 ^c- | c c |\n",
    "X:1\nM:C\nL:1/8\nK:D\n{^g}G g _B B|=F2 {=f}F2 ^^G _B __B b|c'2 =c' c'- c'4|\n",
    "X:1\nM:3/4\nL:1/8\nK:Eb\n=A,2 A A' (3=eee|[=A,E] A _A A,4|\n",
]


@pytest.mark.parametrize("version", ["", "%abc-2.1\n"])
@pytest.mark.parametrize("tune", ACCIDENTAL_TUNES)
def test_accidentals_read_the_same_in_music21_and_in_both_modes(tune, version):
    """music21 reads the normalised text as it read the original, with or without a version line."""
    normal = normalise_abc(version + tune)
    assert "%abc" not in normal
    assert _notes(normal) == _notes(version + tune)
    assert _notes("%abc-2.1\n" + normal) == _notes(normal)  # carried or not, the same pitches


def test_normalised_tunes_read_as_the_same_notes_in_music21():
    """Up to 8 tunes per collection (40+): the same (onset, offset, pitch) from the original and normalised text."""
    by_collection: dict[str, list] = collections.defaultdict(list)
    for name, number, text in corpus_tunes():
        by_collection[name.split("/")[0]].append((name, number, text))
    picked = []
    for _collection, tunes in sorted(by_collection.items()):
        step = max(1, len(tunes) // 30)
        chosen = 0
        for name, number, text in tunes[::step]:
            if chosen == 8:
                break
            if music21_misreads(text):
                continue
            try:
                normal = normalise_abc(text)
            except AbcNotAccepted:
                continue
            picked.append((name, number, text, normal))
            chosen += 1
    assert len(picked) >= 40
    with_accidentals = 0
    for name, number, text, normal in picked:
        original = _notes(text, number)
        assert original, f"{name}#{number}"
        assert _notes(normal) == original, f"{name}#{number}"
        with_accidentals += bool(re.search(r"[\^_=]", normal))
    assert with_accidentals >= 10
    print(f"\nmusic21 reads the same notes from {len(picked)} original and normalised tunes")


def test_transposition_moves_the_key_and_respells_every_note():
    tok = AbcTokenizer()
    ids = tok.encode(tok.normalise("X:1\nM:6/8\nL:1/8\nK:G\n|: G2A B^cd | e=fg a2b :|\nK:Em\nE2 ^D E3 |]\n"))
    expected = {
        -5: "K:D\n|:D2EF^GA|B=cde2f:|\nK:Bm\nB,2^A,B,3|]",
        1: "K:Ab\n|:A2Bc=de|f_gab2c':|\nK:Fm\nF2=EF3|]",
        2: "K:A\n|:A2Bc^de|f=gab2c':|\nK:F#m\nF2^EF3|]",
        6: "K:Db\n|:d2ef=ga|b_c'd'e'2f':|\nK:Bbm\nB2=AB3|]",
    }
    for shift, body in expected.items():
        text = tok.decode(tok.transpose_ids(ids, shift))
        assert text == f"X:1\nM:6/8\nL:1/8\n{body}\n"
        assert tok.normalise(text) == text        # still in normal form
    assert list(tok.transpose_ids(ids, 0)) == list(ids)


def test_transposition_that_cannot_be_written_is_refused():
    tok = AbcTokenizer()
    high = tok.encode(tok.normalise("X:1\nM:4/4\nL:1/4\nK:C\nb'''4|]\n"))
    assert tok.transpose_ids(high, 2) is None            # past b''' (the vocabulary's top)
    assert tok.transpose_ids(high, -2) is not None
    double = tok.encode(tok.normalise("X:1\nM:4/4\nL:1/4\nK:C\n__c4|]\n"))
    assert tok.transpose_ids(double, 1) is None          # B flat on a D: three flats


def _window(tok, text: str, max_tokens: int, *, drop: int = 1, bars: int | None = None) -> str | None:
    """The window of ``text``'s tokens (less the last ``drop``: ``<eos>``) as one spaced string."""
    ids = tok.encode(tok.normalise(text))
    fed = tok.window(ids[:-drop], max_tokens=max_tokens, bars=bars)
    if fed is not None:
        assert len(fed) <= max_tokens and fed[-1] == ids[-drop - 1]   # it fits and ends as the tune does
    return None if fed is None else " ".join(tok.vocab[i] for i in fed)


def test_a_window_is_the_header_in_force_and_the_last_whole_bars_that_fit(tok):
    tune = "X:1\nM:2/4\nL:1/8\nK:G\nGA Bc|d2 B2|(3ded c2|\nK:D\n|:de fe|d4:|[1 A4:|[2 d4|]\n"
    head = "<bos> M:2/4 L:1/8 K:G <bars:5-8>"
    assert _window(tok, tune, 40) == head + " G A B c | d 2 B 2 | (3 d e d c 2 | K:D |: d e f e | d 4 :| [1 A 4 " \
                                            ":| [2 d 4 |]"
    # the key in force where the window begins; the window begins at |: (an open repeat shows)
    assert _window(tok, tune, 22) == "<bos> M:2/4 L:1/8 K:D <bars:5-8> |: d e f e | d 4 :| [1 A 4 :| [2 d 4 |]"
    assert _window(tok, tune, 20) == "<bos> M:2/4 L:1/8 K:D <bars:5-8> d 4 :| [1 A 4 :| [2 d 4 |]"
    # before an ending only where no other bar line fits; then before a note of the current bar; then
    # anywhere; nothing only where not even the last token fits
    assert _window(tok, tune, 14) == "<bos> M:2/4 L:1/8 K:D <bars:5-8> [1 A 4 :| [2 d 4 |]"
    assert _window(tok, tune, 8) == "<bos> M:2/4 L:1/8 K:D <bars:5-8> d 4 |]"
    assert _window(tok, tune, 7) == "<bos> M:2/4 L:1/8 K:D <bars:5-8> 4 |]"
    assert _window(tok, tune, 5) is None
    # the tune goes on: the window ends with its last token, a note in flight included
    assert _window(tok, tune, 12, drop=3) == "<bos> M:2/4 L:1/8 K:D <bars:5-8> [1 A 4 :| [2 d"


def test_a_window_counts_its_bars_and_those_still_to_come(tok):
    """With the tune's bars known, the length control is the window's bars and those still to come: 40 bars
    written of 48, 6 in the window, is a tune of 14 bars (the model plans its ending from it)."""
    tune = "X:1\nM:2/4\nL:1/8\nK:D\n" + "|".join(["d2 A2", "B2 A2", "F2 D2", "E2 F2"] * 10) + "|]\n"
    ids = tok.encode(tok.normalise(tune))
    fed = tok.window(ids[:-2], max_tokens=5 + 6 * 5, bars=48)   # 40 bars of 5 tokens, the last without its |]
    assert [tok.vocab[i] for i in fed[:5]] == ["<bos>", "M:2/4", "L:1/8", "K:D", "<bars:13-16>"]
    assert count_bars([tok.vocab[i] for i in fed[5:]]) == 6 and fed[-1] == ids[-3]
    kept = tok.window(ids[:-2], max_tokens=35)
    assert kept[4] == ids[4] == tok.token_to_id["<bars:33-40>"] and kept[5:] == fed[5:]


def test_a_free_meter_bar_longer_than_a_window_is_cut_before_a_note(tok):
    """Not inside a slur, a chord, a grace group, a tuplet or a broken rhythm, nor after an accidental,
    where another cut fits."""
    tune = "X:1\nM:none\nL:1/8\nK:G\nGABc d2B2 (cd)ef {g}a2 [GB]2 z2 (3ABc d>e|]\n"
    head = "<bos> M:none L:1/8 K:G <bars:1-4>"
    assert _window(tok, tune, 30) == head + " e f { g } a 2 [ G B ] 2 z 2 (3 A B c d > e |]"
    assert _window(tok, tune, 20) == head + " [ G B ] 2 z 2 (3 A B c d > e |]"
    assert _window(tok, tune, 14) == head + " (3 A B c d > e |]"
    assert _window(tok, tune, 12) == head + " d > e |]"
    assert _window(tok, tune, 8) == head + " > e |]"
    assert _window(tok, "X:1\nM:none\nL:1/8\nK:G\n(GABcdefg)|]\n", 9) == head + " f g ) |]"
