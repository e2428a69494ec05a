"""The WaveNet renderer: incremental sampling equals naive re-convolution, a short CPU training run
learns a SoundFont note, exact resume, and the train/render commands with their errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import soundfile
import torch
from conftest import run_cli

from ostinato import events
from ostinato.events import NoteTable, Track
from ostinato.render.paired import TrainingPair, is_held_out, synthesize_pairs
from ostinato.render.soundfont import SoundFontRenderer
from ostinato.render.wavenet import output
from ostinato.render.wavenet.conditioning import conditioning_of
from ostinato.render.wavenet.config import PRESETS, WaveNetConfig
from ostinato.render.wavenet.engine import WaveNetRenderer
from ostinato.render.wavenet.generate import (
    GenerationSettings,
    _Joiner,
    generate_incremental,
    generate_naive,
    generate_pieces,
    segment_uniforms,
)
from ostinato.render.wavenet.model import WaveNet
from ostinato.render.wavenet.training import TrainConfig, prepare, segment_batch, train

RATE = 8000
TINY = PRESETS["tiny"]


@pytest.fixture
def one_thread():
    """Sampling and tiny training run in one torch thread (on a busy 2-core machine, two threads wait on
    each other far longer than they compute)."""
    saved = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(saved)


def duet() -> NoteTable:
    return NoteTable.from_seconds([0.0, 0.02, 0.05], [0.05, 0.07, 0.09], [60, 67, 38], [90, 70, 100],
                                  program=[0, 40, 0], is_drum=[False, False, True], track=[0, 1, 2],
                                  tracks=[Track("a", 0), Track("b", 40), Track("drums", 0, True)])


@pytest.mark.parametrize("distribution,kernel,temperature", [("mulaw", 2, 1.0), ("mol", 3, 0.8)])
def test_incremental_equals_naive(distribution, kernel, temperature, one_thread):
    torch.manual_seed(1)
    config = WaveNetConfig(sample_rate_hz=RATE, upsample_factors=(4, 4), n_layers=6, dilation_cycle=3,
                           kernel_size=kernel, residual_channels=8, gate_channels=16, skip_channels=16,
                           condition_channels=8, embedding_size=4, output=distribution)
    model = WaveNet(config).double().eval()
    conditioning = conditioning_of(duet(), config.frame_rate_hz)
    assert conditioning.instruments.tolist() == [0, 40, 128]
    prefix, n = config.receptive_field, 240
    assert prefix == 1 + (kernel - 1) * 2 * (1 + 2 + 4)
    with torch.no_grad():
        condition = torch.stack([model.condition(conditioning, start - prefix, prefix + n) for start in (0, 90, 700)])
        whole = model.condition(conditioning, -prefix, 1200)
    # the conditioning of a sample does not depend on the window it is computed in
    assert torch.allclose(condition[1], whole[:, 90:90 + prefix + n], rtol=0, atol=1e-12)
    uniforms = torch.stack([segment_uniforms(7, j, n) for j in range(3)], 1)  # [n, 3 segments, 2]
    naive = generate_naive(model, condition, uniforms, prefix=prefix, temperature=temperature)
    incremental = generate_incremental(model, condition, uniforms, prefix=prefix, temperature=temperature,
                                       block_samples=64)
    assert naive.shape == incremental.shape == (3, n)
    assert torch.equal(naive, incremental)
    assert len({tuple(row.tolist()) for row in naive}) == 3 and float(naive.std()) > 0.01
    # every value is a level of the output distribution
    levels = (output.mulaw_encode(naive, config.n_classes) if distribution == "mulaw"
              else torch.round((naive + 1) / 2 * (2**config.mol_bits - 1)))
    again = (output.mulaw_decode(levels, config.n_classes, torch.float64) if distribution == "mulaw"
             else levels / (2**config.mol_bits - 1) * 2 - 1)
    assert torch.allclose(again, naive, rtol=0, atol=1e-9)


def test_mulaw_round_trip_and_mol_loss():
    audio = torch.linspace(-1, 1, 1001)
    classes = output.mulaw_encode(audio)
    assert classes.min() == 0 and classes.max() == 255
    assert torch.equal(output.mulaw_encode(output.mulaw_decode(classes)), classes)
    # a sharp mixture centred on the target has a near-zero loss; a broad one does not
    target = output.quantize(torch.full((1, 5), 0.25), 16)
    sharp = torch.cat([torch.zeros(1, 1, 5), torch.full((1, 1, 5), 0.25), torch.full((1, 1, 5), -20.0)], 1)
    broad = torch.cat([torch.zeros(1, 1, 5), torch.zeros(1, 1, 5), torch.zeros(1, 1, 5)], 1)
    assert float(output.mol_loss(sharp, target, bits=16, log_scale_min=-20).max()) < 1e-3
    assert float(output.mol_loss(broad, target, bits=16, log_scale_min=-7).min()) > 8


def test_segments_join_with_equal_power_crossfades():
    n, hop, fade = 1000, 300, 40
    signal = np.arange(n, dtype=np.float32)
    joiner = _Joiner(n, hop, fade)
    blocks = []
    for j, (first, end) in enumerate([(0, 300), (200, 600), (500, 900), (800, 1000)]):
        blocks.append(joiner.add(j, first, signal[first:end]))
    joined = np.concatenate(blocks)
    assert joined.shape == (n,)
    r = (np.arange(fade) + 0.5) / fade
    gain = np.ones(n, dtype=np.float32)
    for boundary in (300, 600, 900):
        gain[boundary - fade:boundary] = np.sin(0.5 * np.pi * r) + np.cos(0.5 * np.pi * r)
    assert np.allclose(joined, signal * gain, rtol=1e-6)


def test_engine_lengths_seed_and_batching(one_thread):
    torch.manual_seed(0)
    model = WaveNet(TINY)
    renderer = WaveNetRenderer(model, segment_s=0.1, warmup_s=0.04, crossfade_s=0.01, seed=3)
    short = NoteTable.from_seconds([0.0], [0.1], [69], [90], track=[0], tracks=[Track("p", 0)])
    audio = renderer.render(duet(), RATE)
    assert audio.shape == (2, int(np.ceil((duet().duration_s + 1.0) * RATE))) and audio.dtype == np.float32
    assert np.array_equal(audio[0], audio[1])
    assert np.array_equal(audio, renderer.render(duet(), RATE))  # seeded
    other = WaveNetRenderer(model, segment_s=0.1, warmup_s=0.04, crossfade_s=0.01, seed=4).render(duet(), RATE)
    assert not np.array_equal(audio, other)
    resampled = renderer.render(short, 16000)
    assert resampled.shape == (2, 17600)
    both = renderer.render_batch([duet(), short], RATE)
    assert [b.shape[1] for b in both] == [audio.shape[1], 8800]
    assert all(np.array_equal(x, y) for x, y in zip(both, renderer.render_batch([duet(), short], RATE), strict=True))
    # segments of several pieces share one batch: 11 of each piece, in one batch of 22
    seen = []
    pieces = [(conditioning_of(t, TINY.frame_rate_hz), n) for t, n in ((duet(), 8720), (short, 8800))]
    blocks = list(generate_pieces(model, pieces, GenerationSettings(segment_s=0.1, warmup_s=0.04, crossfade_s=0.01,
                                                                    seed=3), progress=seen.append))
    assert {info["segments"] for info in seen} == {22}
    assert [sum(len(b) for i, b in blocks if i == piece) for piece in (0, 1)] == [8720, 8800]
    assert [i for i, _ in blocks] == [0] * 11 + [1] * 11


# ----------------------------------------------------------------------------- training
def single_note(velocity: int, length_s: float, pitch: int = 69) -> NoteTable:
    return NoteTable.from_seconds([0.1], [0.1 + length_s], [pitch], [velocity], track=[0], tracks=[Track("p", 0)])


@pytest.fixture(scope="module")
def note_pairs():
    """Four training and one held-out piano A4 (440 Hz) notes from the soundfont engine at 8 kHz."""
    renderer = SoundFontRenderer()
    items = [(f"n{i}", single_note(v, d), False) for i, (v, d) in enumerate([(100, 0.8), (70, 0.6), (115, 0.5),
                                                                              (55, 0.9)])]
    items.append(("held", single_note(85, 0.7), True))
    made = list(synthesize_pairs(items, renderer=renderer, sample_rate_hz=RATE, max_seconds=4.0))
    renderer.close()
    return [p for p in made if not p.held_out], [p for p in made if p.held_out]


def strongest_hz(audio: np.ndarray, first_s: float, last_s: float) -> float:
    x = audio[int(first_s * RATE):int(last_s * RATE)]
    spectrum = np.abs(np.fft.rfft(x * np.hanning(len(x))))
    hz = np.fft.rfftfreq(len(x), 1 / RATE)
    spectrum[hz < 30] = 0
    return float(hz[np.argmax(spectrum)])


def rms(audio: np.ndarray, first_s: float, last_s: float) -> float:
    return float(np.sqrt(np.mean(audio[int(first_s * RATE):int(last_s * RATE)] ** 2)))


def predicted_amplitude(model: WaveNet, table: NoteTable, audio: np.ndarray) -> np.ndarray:
    """[n_samples - 1] expected |sample| under the model given the true audio before it (teacher forcing)."""
    (piece,) = prepare([TrainingPair("reference", table, audio, RATE, True)], model.config)
    with torch.no_grad():
        inputs, condition, _ = segment_batch(model, [piece], [(0, 0)], piece.n_samples - 1)
        logits = model(inputs, condition)[0, :, model.config.receptive_field:]  # [n_classes, n]: sample k at k
    levels = output.mulaw_decode(torch.arange(model.config.n_classes), model.config.n_classes).abs()
    return (torch.softmax(logits.float(), 0) * levels[:, None]).sum(0).numpy()


def test_short_training_learns_the_note(tmp_path, note_pairs, one_thread):
    train_pairs, heldout_pairs = note_pairs
    state = train(TINY, train_pairs, heldout_pairs, tmp_path,
                  TrainConfig(steps=500, batch_size=8, segment_s=0.1, learning_rate=3e-3, eval_every=250),
                  progress=False, log=lambda m: None)
    assert state["step"] == 500
    assert state["first_heldout_loss"] > 5.0  # about ln 256 nats per sample before training
    # training seeds 0-3 gave 0.26-0.32 here (5.48 -> about 1.5 nats per sample)
    assert state["best_heldout_loss"] < 0.45 * state["first_heldout_loss"]
    log = [json.loads(line) for line in (tmp_path / "train_log.jsonl").read_text().splitlines()]
    assert [r["step"] for r in log] == [0, 250, 500]
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint", "config.json", "model.safetensors",
                                                           "model_card.md", "train_log.jsonl"]
    assert json.loads((tmp_path / "config.json").read_text())["trained_instruments"] == [0]
    assert "held-out loss" in (tmp_path / "model_card.md").read_text()
    table = single_note(90, 0.8)  # 0.1 - 0.9 s, then 1 s of release: 1.9 s
    renderer = WaveNetRenderer(tmp_path)
    audio = renderer.render(table, RATE)[0]
    reference = SoundFontRenderer().render(table, RATE).mean(0)
    assert abs(strongest_hz(reference, 0.15, 0.9) - 440.0) < 5
    peak_hz = strongest_hz(audio, 0.15, 0.9)
    assert abs(12 * np.log2(peak_hz / 440.0)) < 1.0, peak_hz  # within a semitone of A4
    assert rms(audio, 0.15, 0.9) > 3 * rms(audio, 0.0, 0.09)  # silent until the note starts, then it sounds
    # That it dies away after the note is judged on the model's predictions given the true past, not on the
    # sampled tail. A sample feeds the model its own noise, which a 500-step model may not pull back to silence:
    # the sampled tail is then its noise floor, and whether it is has no reason in the code, only in the
    # floating-point path of the run (measured on one machine, sampled note / tail rms over training seeds 0-3:
    # 1.4, 1.05, 0.75, 4.8; seed 0 with two threads instead of one: 3.4). The predictions below are what training
    # optimises: in the same runs the tail came out 68-103x below the note, the note at 0.9-1.4x its true level.
    expected = predicted_amplitude(renderer.model, table, reference)
    note, tail = rms(expected, 0.15, 0.9), rms(expected, 1.4, 1.9)
    assert note > 10 * tail, (note, tail)
    assert 0.5 < note / rms(reference, 0.15, 0.9) < 2, note


def test_resume_is_exact(tmp_path, note_pairs, one_thread):
    from safetensors.torch import load_file

    train_pairs, heldout_pairs = note_pairs
    settings = dict(batch_size=2, segment_s=0.05, eval_every=2, n_eval_segments=1)
    quiet = dict(progress=False, log=lambda m: None)
    mol = WaveNetConfig(**{**json.loads(TINY.to_json()), "output": "mol"})
    train(mol, train_pairs, heldout_pairs, tmp_path / "a", TrainConfig(steps=4, **settings), **quiet)
    train(mol, train_pairs, heldout_pairs, tmp_path / "b", TrainConfig(steps=2, **settings), **quiet)
    state = train(mol, train_pairs, heldout_pairs, tmp_path / "b", TrainConfig(steps=4, **settings), resume=True,
                  **quiet)
    assert state["step"] == 4
    a = load_file(tmp_path / "a" / "checkpoint" / "model.safetensors")
    b = load_file(tmp_path / "b" / "checkpoint" / "model.safetensors")
    assert a.keys() == b.keys()
    for key in a:
        assert torch.equal(a[key], b[key]), key
    assert json.loads((tmp_path / "b" / "config.json").read_text())["output"] == "mol"


# ----------------------------------------------------------------------------- commands
def test_train_and_render_commands(tmp_path):
    source = tmp_path / "notes"
    names = [f"n{i}.mid" for i in range(100)]
    held = [n for n in names if is_held_out(f"notes/{n}")][:1]
    kept = [n for n in names if not is_held_out(f"notes/{n}")][:3]
    for i, name in enumerate(held + kept):
        events.write_midi(single_note(60 + 10 * i, 0.4, 69), source / name)
    out = tmp_path / "model"
    common = ("--synthesize-from", str(source), "--out", str(out), "--config", "tiny", "--eval-every", "1",
              "--batch-size", "2", "--segment-s", "0.05", "--max-seconds", "1")
    result = run_cli("train", "renderer", "--engine", "wavenet", *common, "--steps", "2", "-q")
    assert result.returncode == 0, result.stderr
    assert "3 training pieces" in result.stderr and "1 held out" in result.stderr
    assert "held-out loss" in result.stderr
    assert {p.name for p in out.iterdir()} >= {"config.json", "model.safetensors", "model_card.md", "checkpoint"}
    resumed = run_cli("train", "renderer", "--engine", "wavenet", *common, "--steps", "3", "--resume", "-q")
    assert resumed.returncode == 0, resumed.stderr
    assert json.loads((out / "checkpoint" / "state.json").read_text())["step"] == 3

    wav = tmp_path / "out.wav"
    rendered = run_cli("render", str(source / held[0]), "-o", str(wav), "--engine", "wavenet", "--model", str(out),
                       "-r", "16000", "--temperature", "0.9")
    assert rendered.returncode == 0, rendered.stderr
    assert "wavenet on a CPU generates" in rendered.stderr and "samples/s" in rendered.stderr
    info = soundfile.info(wav)
    assert info.samplerate == 16000 and info.channels == 2 and info.frames == int(np.ceil((0.5 + 1.0) * 16000))
    quiet = run_cli("render", str(source / held[0]), "-o", str(tmp_path / "q.wav"), "--engine", "wavenet",
                    "--model", str(out), "-r", "16000", "-q")
    assert quiet.returncode == 0 and quiet.stderr == ""


def test_command_errors(tmp_path):
    midi = tmp_path / "one.mid"
    events.write_midi(single_note(80, 0.2), midi)
    bad = tmp_path / "bad.json"
    bad.write_text(json.dumps({"residual_channels": 0}))
    result = run_cli("train", "renderer", "--engine", "wavenet", "--synthesize-from", str(midi), "--out",
                     str(tmp_path / "m"), "--config", str(bad))
    assert result.returncode == 1
    assert result.stderr.strip().splitlines() == [
        f"ostinato: {bad}: WaveNetConfig.residual_channels is out of range: got 0"]
    (tmp_path / "text.json").write_text("layers: 3")
    result = run_cli("train", "renderer", "--engine", "wavenet", "--synthesize-from", str(midi), "--out",
                     str(tmp_path / "m"), "--config", str(tmp_path / "text.json"))
    assert result.returncode == 1 and "Traceback" not in result.stderr and "not JSON" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    empty = tmp_path / "empty"
    empty.mkdir()
    broken = tmp_path / "broken"
    broken.mkdir()
    (broken / "config.json").write_text(json.dumps({"harmonics": 3}))
    (broken / "model.safetensors").write_bytes(b"not safetensors")
    for folder, problem in ((empty, "not a wavenet model folder"), (broken, "cannot load wavenet model")):
        result = run_cli("render", str(midi), "-o", str(tmp_path / "x.wav"), "--engine", "wavenet", "--model",
                         str(folder))
        assert result.returncode == 1
        lines = result.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith(f"ostinato: {folder}: {problem}"), lines
        assert not (tmp_path / "x.wav").exists()
    result = run_cli("render", str(midi), "-o", str(tmp_path / "x.wav"), "--engine", "ddsp", "--temperature", "0.5")
    assert result.returncode == 2 and "--temperature is for the wavenet engine" in result.stderr
