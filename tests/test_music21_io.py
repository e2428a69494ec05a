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


def test_an_mxl_names_its_score_without_uri_characters(tmp_path):
    """`convert` names a tune of an ABC file 'tunes.abc#2.mxl': its container's full-path is a URI, where '#'
    would begin a fragment."""
    import zipfile

    out = tmp_path / "tunes.abc#2 (copy).mxl"
    write(_table(), out)
    with zipfile.ZipFile(out) as archive:
        assert archive.namelist()[2] == "tunes.abc_2__copy_.musicxml"
        assert b'full-path="tunes.abc_2__copy_.musicxml"' in archive.read("META-INF/container.xml")
    assert len(read(out)) == len(_table())


def _quarters(table: NoteTable) -> list[tuple[int, int, float, float]]:
    q = table.ticks_per_quarter
    return sorted((int(table.track[i]), int(table.pitch[i]), round(table.onset_tick[i] / q * 12) / 12,
                   round(table.offset_tick[i] / q * 12) / 12) for i in range(len(table)))


def test_a_piano_part_with_voices_reads_back_note_for_note(tmp_path):
    """examples/song.mid's piano holds notes across bar lines under others of the same pitch: written as
    MusicXML, music21 puts them in voices with ties, and reading it back gives the MIDI's notes exactly
    (music21's stripTies matched the ties across voices: 64 notes, three lengthened, one lost)."""
    from pathlib import Path

    midi = read(Path(__file__).resolve().parents[1] / "examples" / "song.mid")
    write(midi, tmp_path / "song.musicxml")
    back = read(tmp_path / "song.musicxml")
    assert len(back) == len(midi) == 61
    assert _quarters(back) == _quarters(midi)


def test_ties_continue_into_chords_and_through_notes_marked_start():
    """Monteverdi's tenor ties a D into a chord (the chord carries the stop); Beethoven's second violin ties
    one note of a chord into the next chord; old encodings mark each note of a tied chain "start"."""
    from ostinato.events import read

    madrigal = read("music21:monteverdi/madrigal.3.5")
    tenor = [t.name for t in madrigal.tracks].index("Tenor")
    q = madrigal.ticks_per_quarter
    ds = [(madrigal.onset_tick[i] / q, madrigal.offset_tick[i] / q) for i in range(len(madrigal))
          if madrigal.track[i] == tenor and madrigal.pitch[i] == 62 and 26 <= madrigal.onset_tick[i] / q <= 34]
    assert ds == [(28.0, 34.0)]
    chain = read("music21:monteverdi/madrigal.4.12")   # the bass's D: "start", "start", none at 248, 252, 256
    bass = chain.n_tracks - 1
    q = chain.ticks_per_quarter
    d = [(chain.onset_tick[i] / q, chain.offset_tick[i] / q) for i in range(len(chain))
         if chain.track[i] == bass and chain.pitch[i] == 50 and 242 <= chain.onset_tick[i] / q <= 262]
    assert d == [(242.0, 248.0), (248.0, 260.0), (262.0, 264.0)]


def test_one_tied_note_of_a_chord_holds_and_the_others_are_struck_again(tmp_path):
    """A piano's chord whose lower note alone is tied into the next chord: the lower note is held, the upper
    one struck again (music21's Chord.tie is the first tied note's tie, which made every note tied)."""
    import music21

    part = music21.stream.Part()
    first = music21.chord.Chord(["C4", "E4"], quarterLength=2)
    first.notes[0].tie = music21.tie.Tie("start")
    second = music21.chord.Chord(["C4", "E4"], quarterLength=2)
    second.notes[0].tie = music21.tie.Tie("stop")
    part.append([first, second])
    score = music21.stream.Score([part])
    score.write("musicxml", fp=tmp_path / "held.musicxml")
    table = read(tmp_path / "held.musicxml")
    q = table.ticks_per_quarter
    assert sorted((int(p), a / q, b / q) for p, a, b in zip(table.pitch, table.onset_tick, table.offset_tick,
                                                            strict=True)) == [(60, 0, 4), (64, 0, 2), (64, 2, 4)]
