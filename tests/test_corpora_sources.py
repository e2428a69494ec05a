"""Sources: files, folders, globs, multi-tune ABC files and music21 collections, with split keys."""

import hashlib

import pytest
from test_hostile import GOOD_MIDI

from ostinato.events import InputError
from ostinato.events.sources import Item, is_held_out, iter_items, iter_sources

TUNES = "%abc-2.1\nM:6/8\n\nX:1\nT:one\nL:1/8\nK:G\nGAB cde|\n\nX:2\nT:two\nK:D\nd2 f a2|\n\nX:7\nT:seven\nK:C\nC3|\n"


@pytest.fixture()
def corpus(tmp_path):
    root = tmp_path / "folk"
    (root / "reels").mkdir(parents=True)
    (root / "reels" / "set.abc").write_text(TUNES)
    (root / "a.mid").write_bytes(GOOD_MIDI)
    (root / "notes.txt").write_text("not music")
    (root / ".hidden.mid").write_bytes(GOOD_MIDI)
    (root / "broken.abc").write_bytes(b"\x00\x01binary")
    return root


def test_held_out_rule_is_designs():
    keys = [f"c/{i}.mid" for i in range(2000)]
    expected = [hashlib.sha256(k.encode()).digest()[0] < 13 for k in keys]
    assert [is_held_out(k) for k in keys] == expected
    assert 60 < sum(expected) < 150  # about 5%
    assert is_held_out("essenFolksong/altdeu10.abc#3") == (hashlib.sha256(b"essenFolksong/altdeu10.abc#3").digest()[0]
                                                           < 13)


def test_folder_is_recursive_keyed_by_folder_name_and_skips_other_files(corpus):
    items = list(iter_items(corpus))
    assert [i.key for i in items] == ["folk/a.mid", "folk/broken.abc", "folk/reels/set.abc#1",
                                      "folk/reels/set.abc#2", "folk/reels/set.abc#7"]
    assert [i.tune for i in items] == [None, None, 1, 2, 7]
    assert items[0].read().n_notes == 1
    with pytest.raises(InputError, match="binary"):
        items[1].read()  # a broken file is an item that fails when read, not a failed listing


def test_tunes_carry_the_file_header_and_parse_lazily(corpus):
    tune = next(i for i in iter_items(corpus) if i.key.endswith("#2"))
    assert tune.abc_text() == "%abc-2.1\nX:2\nM:6/8\nT:two\nK:D\nd2 f a2|\n"
    table = tune.read()
    assert table.pitch.tolist() == [74, 78, 81]
    assert table.time_signatures[0].text == "6/8"
    fresh = Item(key=tune.key, path=tune.path, tune=2)  # without cached text: the file is split again
    assert fresh.abc_text() == tune.abc_text()
    with pytest.raises(InputError, match="not an ABC file"):
        Item(key="x/a.mid", path=str(corpus / "a.mid")).abc_text()


def test_a_folder_link_loop_is_walked_once(corpus):
    (corpus / "reels" / "loop").symlink_to(corpus, target_is_directory=True)
    assert len(list(iter_items(corpus))) == 5


def test_single_file_glob_and_dedupe(corpus):
    assert [i.key for i in iter_items(corpus / "a.mid")] == ["folk/a.mid"]
    assert [i.key for i in iter_items(str(corpus / "**" / "*.abc"))] == [
        "folk/broken.abc", "folk/reels/set.abc#1", "folk/reels/set.abc#2", "folk/reels/set.abc#7"]
    both = list(iter_sources([corpus / "a.mid", corpus]))
    assert len(both) == 5 and both[0].key == "folk/a.mid"


def test_split_partitions_the_items(corpus):
    for n in range(40):
        (corpus / f"m{n}.mid").write_bytes(GOOD_MIDI)
    every = [i.key for i in iter_items(corpus)]
    train = [i.key for i in iter_items(corpus, split="train")]
    test = [i.key for i in iter_items(corpus, split="test")]
    assert sorted(train + test) == sorted(every)
    assert test == [k for k in every if is_held_out(k)]
    with pytest.raises(ValueError, match="split must be one of"):
        list(iter_items(corpus, split="valid"))


def test_unknown_and_empty_sources_name_themselves(tmp_path):
    with pytest.raises(InputError, match=r"nope\.mid: no such file"):
        list(iter_items(tmp_path / "nope.mid"))
    with pytest.raises(InputError, match="no file matches"):
        list(iter_items(str(tmp_path / "*.mid")))
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="empty: no music files"):
        list(iter_items(tmp_path / "empty"))
    with pytest.raises(InputError, match="music21:no-such-thing"):
        list(iter_items("music21:no-such-thing"))


def test_music21_collections_and_pieces():
    essen = list(iter_items("music21:essenFolksong"))
    assert len(essen) > 8000
    third = next(i for i in essen if i.key == "essenFolksong/altdeu10.abc#3")
    assert third.tune == 3 and "T: Herzog Ernst" in third.abc_text()
    assert third.read().n_notes > 10
    folk = list(iter_items("music21:abc-folk"))
    assert len(folk) == 12949
    assert {i.key.split("/")[0] for i in folk} == {"airdsAirs", "essenFolksong", "miscFolk", "nottingham-dataset",
                                                  "oneills1850", "ryansMammoth"}
    assert len({i.key for i in folk}) == len(folk)
    assert 0.03 < sum(i.held_out for i in folk) / len(folk) < 0.07
    piece = list(iter_items("music21:bach/bwv66.6"))
    assert [i.key for i in piece] == ["bach/bwv66.6.mxl"]
    assert "bach/bwv66.6.mxl" in {i.key for i in iter_items("music21:bach")}
