"""MusicXML, kern and music21's corpus: reading by name and writing MusicXML back."""

import numpy as np
import pytest

from ostinato.events import InputError, NoteTable, Track, read, write


def test_corpus_piece_by_name():
    table = read("music21:bach/bwv66.6")
    assert len(table) == 163 and table.n_tracks == 4
    assert [t.name for t in table.tracks] == ["Soprano", "Alto", "Tenor", "Bass"]
    assert table.key_signatures[0].name == "F# minor" and table.time_signatures[0].text == "4/4"


def test_unknown_corpus_name():
    with pytest.raises(InputError, match="music21:no/such/piece: no such piece"):
        read("music21:no/such/piece")


def test_kern_and_musicxml_match_music21(tmp_path):
    from music21 import converter, corpus

    for name in ("bach/bwv66.6", "palestrina/Agnus_01"):
        path = corpus.getWork(name)
        ours = read(path)
        theirs = converter.parse(path)
        expected = sum(len(n.pitches) for p in theirs.parts for n in p.stripTies().flatten().notes
                       if n.duration.quarterLength > 0)
        assert len(ours) == expected, name
    krn = corpus.getPaths(fileExtensions=("krn",))[0]
    assert len(read(krn)) > 0


def _table() -> NoteTable:
    tracks = [Track("Flute", 73), Track("Cello", 42)]
    return NoteTable.from_ticks(
        onset_tick=[0, 480, 960, 960, 0, 960], offset_tick=[480, 960, 1920, 1920, 960, 1920],
        pitch=[72, 74, 76, 79, 48, 43], velocity=[80] * 6, track=[0, 0, 0, 0, 1, 1], tracks=tracks,
        ticks_per_quarter=480, tempos=[(0, 90.0)], time_signatures=[(0, 3, 4)], key_signatures=[(0, 1, "major")],
    )


@pytest.mark.parametrize("suffix", [".musicxml", ".mxl"])
def test_musicxml_round_trip(tmp_path, suffix):
    out = tmp_path / f"duet{suffix}"
    write(_table(), out)
    back = read(out)
    np.testing.assert_array_equal(back.pitch, _table().sorted().pitch)
    quarters = back.onset_tick / back.ticks_per_quarter
    np.testing.assert_array_equal(quarters, _table().sorted().onset_tick / 480)
    np.testing.assert_array_equal(back.offset_tick / back.ticks_per_quarter, _table().sorted().offset_tick / 480)
    assert back.programs == [42, 73]
    assert back.time_signatures[0].text == "3/4" and back.key_signatures[0].name == "G major"
    assert back.tempos[0].qpm == 90.0
    assert [p.name for p in tmp_path.iterdir()] == [out.name]


@pytest.mark.parametrize("suffix", [".musicxml", ".mxl"])
def test_musicxml_is_the_same_bytes_each_time_and_names_nothing_temporary(tmp_path, suffix):
    """music21 alone draws random part ids, dates the file, calls the piece "Music21 Fragment" by "Music21",
    and names an .mxl's score after the temporary file it wrote: the same seed gave another file each time."""
    import zipfile

    first, second = tmp_path / "a" / f"duet{suffix}", tmp_path / "b" / f"duet{suffix}"
    write(_table(), first)
    write(_table(), second)
    assert first.read_bytes() == second.read_bytes()
    if suffix == ".mxl":
        with zipfile.ZipFile(first) as archive:
            infos = archive.infolist()
            assert [i.filename for i in infos] == ["mimetype", "META-INF/container.xml", "duet.musicxml"]
            assert infos[0].compress_type == zipfile.ZIP_STORED
            assert archive.read("mimetype") == b"application/vnd.recordare.musicxml"
            assert b'full-path="duet.musicxml"' in archive.read("META-INF/container.xml")
            xml = archive.read("duet.musicxml").decode()
    else:
        xml = first.read_text()
    assert '<score-part id="P1">' in xml and '<score-part id="P2">' in xml and 'id="P2-I1"' in xml
    assert "<work-title>duet</work-title>" in xml and "<movement-title>duet</movement-title>" in xml
    assert "encoding-date" not in xml and "Music21" not in xml and "ostinato-tmp" not in xml
