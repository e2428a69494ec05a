"""The Renderer interface, the soundfont and ddsp engines, audio writing and the STFT distance."""

from __future__ import annotations

import dataclasses
import math

import numpy as np
import pytest
import soundfile
import torch

from ostinato import render
from ostinato.events import NoteTable, Track
from ostinato.render.base import N_CHANNELS, n_output_samples
from ostinato.render.ddsp.config import DDSPConfig
from ostinato.render.ddsp.engine import DDSPRenderer, load_model
from ostinato.render.ddsp.model import DDSPModel
from ostinato.render.instruments import instrument_map
from ostinato.render.model_folder import save_model


def small_table() -> NoteTable:
    """Piano melody, a string chord, and a kick/snare/hat drum part, 2.5 s."""
    onset = [0.0, 0.5, 1.0, 1.5, 0.0, 0.0, 0.0, 0.5, 1.0, 1.5, 0.25]
    offset = [0.5, 1.0, 1.5, 2.5, 2.0, 2.0, 0.1, 0.6, 1.1, 1.6, 0.35]
    pitch = [60, 64, 67, 72, 48, 55, 36, 38, 36, 38, 42]
    velocity = [90, 80, 100, 70, 60, 60, 110, 100, 110, 100, 70]
    track = [0, 0, 0, 0, 1, 1, 2, 2, 2, 2, 2]
    tracks = [Track("piano", 0), Track("strings", 48), Track("drums", 0, True)]
    return NoteTable.from_seconds(onset, offset, pitch, velocity, track=track, tracks=tracks)


@pytest.fixture(scope="module")
def soundfont():
    with render.get_renderer("soundfont") as renderer:
        yield renderer


@pytest.fixture(scope="module", params=[False, True], ids=["mix-reverb", "reverb-send"])
def ddsp(request):
    torch.manual_seed(0)
    model = DDSPModel(DDSPConfig(n_harmonics=24, hidden_size=32, trained_instruments=[0, 40, 48, 128 + 36, 128 + 38],
                                 reverb_send=request.param))
    if request.param:
        with torch.no_grad():
            model.send_logit.copy_(torch.linspace(-3, 3, model.send_logit.shape[0]))  # sends differ by instrument
    return DDSPRenderer(model, chunk_frames=50)


def test_registry():
    assert {"ddsp", "soundfont"} <= set(render.ENGINES)
    with pytest.raises(ValueError, match="unknown engine 'nope'"):
        render.get_renderer("nope")

    class Silent(render.Renderer):
        name = "silent"

        def stream(self, table, sample_rate_hz=44100, *, chunk_s=10.0):
            yield np.zeros((N_CHANNELS, n_output_samples(table.duration_s, sample_rate_hz)), np.float32)

    render.register_engine("silent", Silent)
    try:
        audio = render.get_renderer("silent").render(small_table(), 16000)
        assert audio.shape == (2, math.ceil(3.5 * 16000))
    finally:
        del render.ENGINES["silent"]


@pytest.mark.parametrize("engine", ["soundfont", "ddsp"])
@pytest.mark.parametrize("rate", [16000, 22050, 44100, 48000])
def test_shape_and_length(engine, rate, soundfont, ddsp):
    renderer = {"soundfont": soundfont, "ddsp": ddsp}[engine]
    audio = renderer.render(small_table(), rate)
    assert audio.dtype == np.float32
    assert audio.shape == (2, math.ceil((2.5 + 1.0) * rate))
    assert np.abs(audio).max() > 1e-3


@pytest.mark.parametrize("engine", ["soundfont", "ddsp"])
def test_chunked_equals_one_shot_and_deterministic(engine, soundfont, ddsp):
    renderer = {"soundfont": soundfont, "ddsp": ddsp}[engine]
    table = small_table()
    for rate in (22050, 44100):
        whole = renderer.render(table, rate, chunk_s=100.0)
        pieces = list(renderer.stream(table, rate, chunk_s=0.137))
        assert len(pieces) > 5
        chunked = np.concatenate(pieces, axis=1)
        assert chunked.shape == whole.shape
        np.testing.assert_allclose(chunked, whole, atol=5e-5 * np.abs(whole).max())  # float32 FFT rounding
        assert np.array_equal(renderer.render(table, rate, chunk_s=100.0), whole)


def test_ddsp_native_rate_chunking_is_exact(ddsp):
    table = small_table()
    whole = np.concatenate(list(ddsp.native(table, chunk_s=100.0)))
    for chunk_s in (0.05, 0.5):
        chunked = np.concatenate(list(ddsp.native(table, chunk_s=chunk_s)))
        np.testing.assert_allclose(chunked, whole, atol=5e-5 * np.abs(whole).max())


def test_ddsp_engine_equals_the_training_path(ddsp):
    """The engine's grouped, chunked synthesis (mono) is the dense path training differentiates through:
    dry mix plus the reverb of the send (each voice scaled by its instrument's learned share)."""
    from ostinato.render.ddsp.features import voices_of

    table = small_table()
    model = ddsp.model
    engine = np.concatenate(list(DDSPRenderer(model, chunk_frames=50).native(table, chunk_s=0.3)))
    voices = voices_of(table, model.config, ddsp._map)
    n_frames = math.ceil(len(engine) / model.config.hop_samples)
    with torch.no_grad():
        dense = model.mix(model.dry(voices, 0, n_frames))[: len(engine)].numpy()
    np.testing.assert_allclose(engine, dense, atol=2e-4 * np.abs(dense).max())


def test_ddsp_threads_give_the_same_audio(ddsp):
    """Chunks rendered on several threads at once are the audio of one thread, sample for sample."""
    table = small_table()
    one = np.concatenate(list(DDSPRenderer(ddsp.model, chunk_frames=7, threads=1).native(table)))
    for threads in (2, 3):
        renderer = DDSPRenderer(ddsp.model, chunk_frames=7, threads=threads)
        assert np.array_equal(np.concatenate(list(renderer.native(table))), one)
    with pytest.raises(ValueError, match="threads must be >= 1"):
        DDSPRenderer(ddsp.model, threads=0)


@pytest.mark.parametrize("threads", [1, 2, 4])
def test_in_order_keeps_order_and_every_item(threads):
    from ostinato.render.ddsp.engine import in_order

    assert list(in_order(lambda x: x * x, range(23), threads)) == [x * x for x in range(23)]
    assert list(in_order(lambda x: x, iter([5, 6]), threads)) == [5, 6]
    assert list(in_order(lambda x: x, [], threads)) == []


def test_side_impulse_response_is_scipy_signal_stft():
    """The stereo room's decorrelated twin, written out with scipy.fft, is scipy.signal's stft/istft version."""
    from scipy.signal import istft, stft

    from ostinato.render.ddsp.inference import side_impulse_response

    def with_scipy_signal(ir, seed, start, n_fft=1024):
        late = np.asarray(ir, dtype=np.float64).copy()
        late[:max(start, 1)] = 0.0
        _, _, spectrum = stft(late, nperseg=n_fft, noverlap=3 * n_fft // 4, window="hann", boundary="zeros",
                              padded=True)
        phase = np.random.default_rng(seed + 1).uniform(0, 2 * math.pi, spectrum.shape)
        _, twin = istft(np.abs(spectrum) * np.exp(1j * phase), nperseg=n_fft, noverlap=3 * n_fft // 4, window="hann")
        twin = np.pad(twin, (0, max(0, late.shape[0] - twin.shape[0])))[: late.shape[0]]
        twin[:max(start, 1)] = 0.0
        return (twin * math.sqrt((late**2).sum() / max((twin**2).sum(), 1e-30))).astype(np.float32)

    rng = np.random.default_rng(0)
    for n, start in ((22050, 2205), (5000, 0), (1500, 100), (4097, 7)):
        ir = (rng.standard_normal(n) * np.exp(-np.arange(n) / 3000)).astype(np.float32)
        np.testing.assert_allclose(side_impulse_response(ir, 3, start), with_scipy_signal(ir, 3, start),
                                   rtol=1e-5, atol=1e-6)


def test_reverb_send_keeps_a_hard_panned_part_in_place_and_widens_the_tail():
    """With ``reverb_send``, a part panned hard left reaches the right channel only through the reverb (none
    when its send is 0); the reverb's side makes the tail of a centred part wide, and the mono mix
    (L + R) / 2 is the same as without the side."""
    from ostinato.events.table import PAN, Controls

    torch.manual_seed(0)
    model = DDSPModel(DDSPConfig(n_harmonics=16, hidden_size=16, trained_instruments=[0], reverb_send=True,
                                 release_s=0.1))
    table = NoteTable.from_seconds([0.0, 0.5], [0.4, 0.9], [60, 64], [100, 100], program=0)
    left = dataclasses.replace(table, controls=Controls(tick=[0], time_s=[0.0], track=[0], number=[PAN], value=[0]))
    with torch.no_grad():
        model.send_logit.fill_(-40.0)  # nothing sent
    dry = DDSPRenderer(model).render_native(left)
    assert np.abs(dry[1]).max() < 1e-6 < np.abs(dry[0]).max()
    with torch.no_grad():
        model.send_logit.fill_(0.0)  # half sent
    wet_renderer = DDSPRenderer(model)
    wet = wet_renderer.render_native(left)
    assert 1e-4 < np.abs(wet[1]).max() < np.abs(wet[0]).max()
    centred = wet_renderer.render_native(table)
    tail = centred[:, int(1.02 * 22050):]  # after the notes' release (0.9 + 0.1 s): reverb only
    corr = np.corrcoef(tail[0], tail[1])[0, 1]
    assert corr < 0.5
    no_side = DDSPRenderer(model)
    no_side.synth.side_ir = np.zeros_like(no_side.synth.reverb_ir)
    np.testing.assert_allclose(centred.mean(0), no_side.render_native(table).mean(0), atol=1e-6)


def test_soundfont_drums_and_programs_differ(soundfont):
    """Drums on bank 128 sound; two programs playing the same notes give different audio."""
    drums = small_table().select(np.array([False] * 6 + [True] * 5))
    assert np.abs(soundfont.render(drums, 22050)).max() > 1e-3
    a = NoteTable.from_seconds([0.0], [1.0], [60], [100], program=0)
    b = NoteTable.from_seconds([0.0], [1.0], [60], [100], program=56)
    assert render.stft_distance(soundfont.render(a, 22050), soundfont.render(b, 22050)) > 0.1


def test_every_program_and_drum_key_renders(ddsp):
    """All 128 GM programs and every drum key give sound (mapped to trained instruments)."""
    n = 128 + 47
    onset = np.arange(n) * 0.3
    pitch = np.r_[np.full(128, 60), np.arange(35, 82)]
    tracks = [Track(f"p{p}", p) for p in range(128)] + [Track("drums", 0, True)]
    track = np.r_[np.arange(128), np.full(47, 128)]
    table = NoteTable.from_seconds(onset, onset + 0.2, pitch, np.full(n, 100), track=track, tracks=tracks)
    audio = ddsp.render(table, 22050)[0]
    for i in range(n):
        segment = audio[int(onset[i] * 22050) + 200: int((onset[i] + 0.2) * 22050)]
        assert np.abs(segment).max() > 1e-4, f"note {i} is silent"


def test_instrument_map():
    mapping = instrument_map([0, 40, 48, 56, 128 + 36, 128 + 38])  # a config's trained_instruments
    assert mapping[0] == 0 and mapping[40] == 40
    assert mapping[5] == 0  # electric piano -> the trained piano (same family)
    assert mapping[42] == 40  # cello -> violin (strings family)
    assert mapping[50] == 48  # synth strings -> string ensemble
    assert mapping[60] == 56  # horn -> trumpet (brass)
    assert mapping[100] == 56  # untrained family -> nearest trained program
    assert mapping[128 + 35] == 128 + 36 and mapping[128 + 40] == 128 + 38


def test_ten_minute_note_renders_in_tune():
    """A 10-minute sustained note through the whole chunked renderer: its last second is in phase."""
    config = DDSPConfig(n_harmonics=4, hidden_size=8, release_s=0.0, trained_instruments=[0])
    model = DDSPModel(config)
    with torch.no_grad():  # a pure sine: constant amplitude, all energy in the fundamental, no noise or reverb
        model.head.weight.zero_()
        model.head.bias.copy_(torch.tensor([0.0, 30.0, 0, 0, 0] + [-30.0] * config.n_noise_bands))
        model.reverb_ir.zero_()
        model.inharmonicity_logit.fill_(-80.0)
    table = NoteTable.from_seconds([0.0], [600.0], [69], [100])
    renderer = DDSPRenderer(model, chunk_frames=4000)  # long chunks: fewer steps, same audio
    audio = np.concatenate(list(renderer.native(table, chunk_s=200.0)))
    end = audio[int(599.0 * 22050): int(599.9 * 22050)].astype(np.float64)
    n = np.arange(int(599.0 * 22050), int(599.9 * 22050))
    ideal = 2 * np.pi * ((440.0 * n / 22050) % 1.0)
    phase_error = math.atan2(np.sum(end * np.cos(ideal)), np.sum(end * np.sin(ideal)))
    drift_cents = 1200 * math.log2(1 + abs(phase_error) / (2 * np.pi * 440.0 * 599.0))
    assert drift_cents < 1.0
    assert abs(phase_error) < 0.01


def test_ddsp_save_and_load(tmp_path, ddsp):
    save_model(ddsp.model, tmp_path / "m")
    assert sorted(p.name for p in (tmp_path / "m").iterdir()) == ["config.json", "model.safetensors"]
    loaded = render.get_renderer("ddsp", model=tmp_path / "m", chunk_frames=ddsp.chunk_frames)
    np.testing.assert_array_equal(loaded.render(small_table(), 22050), ddsp.render(small_table(), 22050))
    assert load_model(tmp_path / "m").config == ddsp.model.config


def test_ddsp_bad_model_folder(tmp_path):
    from ostinato.events import InputError

    with pytest.raises(InputError, match="not a ddsp model folder"):
        render.get_renderer("ddsp", model=tmp_path)
    (tmp_path / "config.json").write_text('{"hop_samples": 3}')
    (tmp_path / "model.safetensors").write_bytes(b"junk")
    with pytest.raises(InputError, match="hop_samples"):
        render.get_renderer("ddsp", model=tmp_path)


def test_ddsp_weights_must_match_the_config_exactly(tmp_path, ddsp):
    """The NumPy renderer reads a folder strictly: a missing, extra or misshapen tensor is refused."""
    from safetensors.numpy import load_file, save_file

    from ostinato.events import InputError

    save_model(ddsp.model, tmp_path / "m")
    weights = load_file(tmp_path / "m" / "model.safetensors")
    for name, changed in (("extra", {**weights, "hidden": np.zeros(3, np.float32)}),
                          ("missing", {k: v for k, v in weights.items() if k != "reverb_ir"}),
                          ("shape", {**weights, "reverb_ir": weights["reverb_ir"][:-1]})):
        save_file(changed, tmp_path / "m" / "model.safetensors")
        with pytest.raises(InputError, match="cannot load ddsp model") as caught:
            render.get_renderer("ddsp", model=tmp_path / "m")
        assert {"extra": "unexpected ['hidden']", "missing": "missing ['reverb_ir']",
                "shape": "weight reverb_ir has shape"}[name] in str(caught.value)


def test_config_validation_names_parameter():
    with pytest.raises(ValueError, match=r"DDSPConfig.n_harmonics.*0"):
        DDSPConfig(n_harmonics=0)
    config = DDSPConfig(trained_instruments=[3, 1])
    assert DDSPConfig.from_json(config.to_json()) == config


def test_shipped_model_renders():
    from ostinato.render.model_folder import PRETRAINED

    assert (PRETRAINED / "ddsp-fluidr3" / "model.safetensors").is_file()   # it ships with the package
    audio = render.get_renderer("ddsp").render(small_table(), 22050)
    assert audio.shape == (2, math.ceil(3.5 * 22050)) and np.abs(audio).max() > 1e-3


@pytest.mark.parametrize("fmt", ["wav", "flac", "ogg"])
def test_write_audio_formats(tmp_path, fmt):
    t = np.arange(22050) / 22050
    audio = np.stack([np.sin(2 * np.pi * 440 * t), 0.5 * np.sin(2 * np.pi * 220 * t)]).astype(np.float32) * 0.5
    path = tmp_path / f"a.{fmt}"
    render.write_audio(audio, 22050, path)
    data, rate = soundfile.read(path, always_2d=True)
    assert rate == 22050 and data.shape == (22050, 2)
    if fmt != "ogg":
        np.testing.assert_allclose(data.T, audio, atol=1 / 16384)
        pcm = soundfile.read(path, dtype="int16", always_2d=True)[0]
        assert np.array_equal(pcm.T, np.rint(audio * 32767).astype(np.int16))  # rounded, full scale is 32767
    assert [p.name for p in tmp_path.iterdir()] == [f"a.{fmt}"]  # no temporary left behind
    render.write_audio(audio, 22050, tmp_path / "b.bin", format="flac")
    assert soundfile.info(tmp_path / "b.bin").format == "FLAC"
    with pytest.raises(ValueError, match="choose wav, flac or ogg"):
        render.write_audio(audio, 22050, tmp_path / "c.mp3")


def test_stft_distance():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((2, 8000)).astype(np.float32) * 0.1
    b = rng.standard_normal((2, 8000)).astype(np.float32) * 0.1
    assert render.stft_distance(a, a) == 0.0
    assert render.stft_distance(a, b) == pytest.approx(render.stft_distance(b, a))
    assert render.stft_distance(a, b) > render.stft_distance(a, a * 0.9) > 0
    # Zero padding of the shorter one: a prefix is compared against the full signal.
    assert render.stft_distance(a[:, :4000], a) > 0


def test_note_starting_at_a_chunk_seam(ddsp):
    """A note whose first frame is the frame right after a chunk (found on a MAESTRO file)."""
    onset = (ddsp.chunk_frames + 0.5) * 245 / 22050
    table = NoteTable.from_seconds([onset], [onset + 0.3], [67], [90])  # chunk 0 holds it, but silent
    whole = np.concatenate(list(DDSPRenderer(ddsp.model, chunk_frames=10_000).native(table, chunk_s=1000.0)))
    chunked = np.concatenate(list(ddsp.native(table)))
    np.testing.assert_allclose(chunked, whole, atol=5e-5 * np.abs(whole).max())
