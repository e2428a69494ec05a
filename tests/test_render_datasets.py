"""Paired layouts (MAESTRO v3, URMP, Slakh2100) built here as tiny real folders: MIDI, audio, metadata."""

import numpy as np
import pytest
import soundfile as sf
import symusic

from ostinato.events import InputError, NoteTable, Track, write_midi
from ostinato.events.sources import is_held_out
from ostinato.render.datasets import RecordedPair, detect_layout, iter_pairs

SR = 8000


def _audio(path, seconds=1.0):
    path.parent.mkdir(parents=True, exist_ok=True)
    t = np.arange(int(SR * seconds)) / SR
    sf.write(path, 0.1 * np.sin(2 * np.pi * 440 * t), SR)


def _midi(path, notes, program=0, pedals=(), is_drum=False):
    """notes: (onset tick, offset tick, pitch) at 480 tpq, 120 qpm; pedals: (down tick, up tick)."""
    score = symusic.Score(480)
    score.tempos.append(symusic.Tempo(0, 120.0))
    track = symusic.Track(program=program, is_drum=is_drum)
    for on, off, pitch in notes:
        track.notes.append(symusic.Note(on, off - on, pitch, 80))
    for down, up in pedals:
        track.controls.append(symusic.ControlChange(down, 64, 127))
        track.controls.append(symusic.ControlChange(up, 64, 0))
    score.tracks.append(track)
    path.parent.mkdir(parents=True, exist_ok=True)
    score.dump_midi(str(path))


@pytest.fixture()
def maestro(tmp_path):
    root = tmp_path / "maestro-v3.0.0"
    # pedal down 200..1400: the first C4 (ends 240) rings to 960 where C4 is struck again; E4 to 1400
    _midi(root / "2018" / "a.midi", [(0, 240, 60), (100, 300, 64), (960, 1100, 60), (1500, 1600, 67)],
          pedals=[(200, 1400)])
    _audio(root / "2018" / "a.flac")  # re-encoded: the CSV still says .wav
    _midi(root / "2004" / "b.midi", [(0, 480, 72)])
    _audio(root / "2004" / "b.wav")
    (root / "maestro-v3.0.0.csv").write_text(
        "canonical_composer,canonical_title,split,year,midi_filename,audio_filename,duration\n"
        "X,A,train,2018,2018/a.midi,2018/a.wav,1.0\n"
        "Y,B,test,2004,2004/b.midi,2004/b.wav,1.0\n"
        "Z,C,train,2004,2004/missing.midi,2004/missing.wav,1.0\n"
    )
    return root


def test_maestro_pairs_and_sustain_pedal(maestro, caplog):
    assert detect_layout(maestro) == "maestro"
    pairs = list(iter_pairs(maestro))
    assert [p.key for p in pairs] == ["maestro-v3.0.0/2018/a.midi", "maestro-v3.0.0/2004/b.midi"]
    assert pairs[0].audio.endswith("2018/a.flac") and pairs[1].audio.endswith("2004/b.wav")
    assert "1 of 3 pieces" in caplog.text
    table = pairs[0].read_notes()
    assert table.onset_tick.tolist() == [0, 100, 960, 1500]
    assert table.offset_tick.tolist() == [960, 1400, 1400, 1600]
    assert pairs[1].read_notes().offset_tick.tolist() == [480]


@pytest.fixture()
def urmp(tmp_path):
    root = tmp_path / "URMP"
    piece = root / "01_Jupiter_vn_vc"
    _midi(piece / "Sco_01_Jupiter_vn_vc.mid", [(0, 480, 69), (0, 480, 48)])
    _audio(piece / "AuMix_01_Jupiter_vn_vc.wav")
    _audio(piece / "AuSep_1_vn_01_Jupiter.wav")
    _audio(piece / "AuSep_2_vc_01_Jupiter.wav")
    (piece / "Notes_1_vn_01_Jupiter.txt").write_text("0.130\t440.00\t0.500\n0.700\t493.88\t0.250\n")
    (piece / "Notes_2_vc_01_Jupiter.txt").write_text("0.125\t130.81\t0.900\n")
    (piece / "F0s_1_vn_01_Jupiter.txt").write_text("0.0 0.0\n")
    (root / "Supplementary_Files").mkdir()
    return root


def test_urmp_uses_aligned_annotations_not_the_score(urmp):
    assert detect_layout(urmp) == "urmp"
    (pair,) = iter_pairs(urmp)
    assert pair.key == "URMP/01_Jupiter_vn_vc/Sco_01_Jupiter_vn_vc.mid"
    assert pair.audio.endswith("AuMix_01_Jupiter_vn_vc.wav")
    assert [(p.name, p.program) for p in pair.parts] == [("1_vn", 40), ("2_vc", 42)]
    assert pair.parts[1].audio.endswith("AuSep_2_vc_01_Jupiter.wav")
    table = pair.read_notes()
    assert table.pitch.tolist() == [48, 69, 71]
    np.testing.assert_allclose(table.onset_s, [0.125, 0.130, 0.700])
    np.testing.assert_allclose(table.offset_s, [1.025, 0.630, 0.950])
    assert table.program.tolist() == [42, 40, 40]


def test_urmp_without_annotations_falls_back_to_the_score(urmp, caplog):
    for notes in urmp.glob("*/Notes_*"):
        notes.unlink()
    (pair,) = iter_pairs(urmp)
    assert sorted(pair.read_notes().pitch.tolist()) == [48, 69]
    assert "not aligned" in caplog.text


@pytest.fixture()
def slakh(tmp_path):
    root = tmp_path / "slakh2100"
    track = root / "train" / "Track00001"
    _midi(track / "all_src.mid", [(0, 480, 40), (0, 480, 60), (0, 480, 36)])
    _midi(track / "MIDI" / "S00.mid", [(0, 480, 40)], program=0)  # program in the MIDI is wrong
    _midi(track / "MIDI" / "S01.mid", [(0, 480, 60)], program=0)  # not rendered
    _midi(track / "MIDI" / "S02.mid", [(0, 480, 36)], program=0)
    _audio(track / "mix.flac")
    _audio(track / "stems" / "S00.flac")
    _audio(track / "stems" / "S02.flac")
    (track / "metadata.yaml").write_text(
        "UUID: abc\nstems:\n"
        "  S00: {audio_rendered: true, inst_class: Bass, is_drum: false, midi_saved: true, program_num: 33}\n"
        "  S01: {audio_rendered: false, inst_class: Piano, is_drum: false, midi_saved: true, program_num: 0}\n"
        "  S02: {audio_rendered: true, inst_class: Drums, is_drum: true, midi_saved: true, program_num: 0}\n"
    )
    omitted = root / "omitted" / "Track00002"
    _midi(omitted / "all_src.mid", [(0, 480, 40)])
    _audio(omitted / "mix.flac")
    return root


def test_slakh_uses_rendered_stems_with_metadata_programs(slakh):
    assert detect_layout(slakh) == "slakh"
    (pair,) = iter_pairs(slakh)
    assert pair.key == "slakh2100/train/Track00001/all_src.mid"
    assert pair.audio.endswith("mix.flac")
    assert [p.name for p in pair.parts] == ["S00 Bass", "S02 Drums"]
    table = pair.read_notes()
    assert table.pitch.tolist() == [40, 36]
    assert table.tracks == [Track("S00 Bass", 33, False), Track("S02 Drums", 0, True)]
    assert table.is_drum.tolist() == [False, True]
    assert table.onset_tick.tolist() == [0, 0] and table.offset_tick.tolist() == [480, 480]


def test_split_and_detection_errors(slakh, tmp_path):
    pair = next(iter_pairs(slakh))
    assert list(iter_pairs(slakh, split="test" if is_held_out(pair.key) else "train")) == [pair]
    assert list(iter_pairs(slakh, split="train" if is_held_out(pair.key) else "test")) == []
    (tmp_path / "plain").mkdir()
    with pytest.raises(InputError, match="not a MAESTRO"):
        detect_layout(tmp_path / "plain")
    with pytest.raises(InputError, match="no such folder"):
        list(iter_pairs(tmp_path / "nowhere"))


def test_bad_midi_in_a_pair_is_an_input_error(maestro):
    (maestro / "2004" / "b.midi").write_bytes(b"garbage")
    pair = next(p for p in iter_pairs(maestro) if p.key.endswith("b.midi"))
    assert isinstance(pair, RecordedPair)
    with pytest.raises(InputError, match="not a MIDI file"):
        pair.read_notes()


def test_apply_sustain_without_pedals_keeps_notes(tmp_path):
    from ostinato.render.datasets import apply_sustain

    table = NoteTable.from_ticks([0, 100], [50, 200], [60, 60], [80, 80], [0, 0], [Track()])
    out = apply_sustain(table, [np.zeros((0, 2), np.int64)])
    assert out.offset_tick.tolist() == [50, 200]
    write_midi(out, tmp_path / "x.mid")
