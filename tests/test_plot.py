"""`ostinato plot`: the PNG shows the notes of the input (pixels checked where the notes are drawn),
and the log-mel spectrogram puts a sine's energy in the band of its pitch."""

import matplotlib.image
import numpy as np
import pytest
import soundfile
from conftest import run_cli
from matplotlib.backends.backend_agg import FigureCanvasAgg

from ostinato import events
from ostinato.events import NoteTable, Track
from ostinato.events.plot import bar_times_s, instrument_colours, pianoroll_figure
from ostinato.render.plot import N_MELS, log_mel, mel_band_of_pitch, spectrogram_figure


def _two_instruments() -> NoteTable:
    """Piano C4 for the first second, violin C5 for the next (120 bpm, 4/4: one bar is 2 s)."""
    return NoteTable.from_ticks(onset_tick=[0, 960], offset_tick=[960, 1920], pitch=[60, 72], velocity=[90, 90],
                                track=[0, 1], tracks=[Track("piano", 0), Track("violin", 40)], ticks_per_quarter=480,
                                time_signatures=[(0, 4, 4)])


def _pixel(png: np.ndarray, fig, ax, x: float, y: float) -> np.ndarray:
    FigureCanvasAgg(fig).draw()
    px, py = ax.transData.transform((x, y))
    return png[png.shape[0] - 1 - round(float(py)), round(float(px)), :3]


def _rgb(hex_colour: str) -> np.ndarray:
    return np.array([int(hex_colour[i:i + 2], 16) / 255 for i in (1, 3, 5)])


def test_piano_roll_png_shows_each_note_in_its_instrument_colour(tmp_path):
    midi = tmp_path / "two.mid"
    events.write(_two_instruments(), midi)
    out = tmp_path / "roll.png"
    result = run_cli("plot", str(midi), "-o", str(out))
    assert result.returncode == 0, result.stderr
    png = matplotlib.image.imread(out)   # the file opens as a PNG
    table = events.read(midi)
    colours = instrument_colours(table)
    assert [name for _, name in colours.values()] == ["Acoustic Grand Piano", "Violin"]
    assert colours[0][0] != colours[1][0]
    fig = pianoroll_figure(table, title="two.mid")   # the same drawing, to find where the notes are
    ax = fig.axes[0]
    assert np.allclose(_pixel(png, fig, ax, 0.5, 60), _rgb(colours[0][0]), atol=0.02)
    assert np.allclose(_pixel(png, fig, ax, 1.5, 72), _rgb(colours[1][0]), atol=0.02)
    assert np.allclose(_pixel(png, fig, ax, 1.5, 60), 1.0, atol=0.02)   # no note there: white
    assert np.allclose(_pixel(png, fig, ax, 0.5, 66), 1.0, atol=0.02)


def test_bar_lines_follow_the_meter_and_tempo():
    table = _two_instruments()
    assert bar_times_s(table).tolist() == [0.0, 2.0]   # one bar of 4/4 at 120 bpm, and its closing line
    longer = NoteTable.from_ticks(onset_tick=[0], offset_tick=[480 * 7], pitch=[60], velocity=[80], track=[0],
                                  tracks=[Track()], ticks_per_quarter=480, tempos=[(0, 60.0)],
                                  time_signatures=[(0, 3, 4)])
    assert bar_times_s(longer).tolist() == [0.0, 3.0, 6.0]   # 3/4 at 60 bpm: a bar every 3 s


def test_log_mel_puts_a_sine_in_the_band_of_its_pitch(tmp_path):
    rate = 22050
    t = np.arange(int(3.0 * rate)) / rate
    audio = np.where((t >= 0.5) & (t < 1.5), 0.5 * np.sin(2 * np.pi * 440.0 * t), 0.0).astype(np.float32)
    db, times = log_mel(audio, rate)
    assert db.shape[0] == N_MELS
    during = (times > 0.7) & (times < 1.3)
    low, high = mel_band_of_pitch(69, rate)
    loudest = np.argmax(db[:, during], axis=0)
    assert np.all((loudest >= np.floor(low)) & (loudest <= np.ceil(high)))
    # the PNG: bright where the note is, dark in the same band in the silence after it
    wav = tmp_path / "a440.wav"
    soundfile.write(wav, audio, rate)
    notes = NoteTable.from_seconds([0.5], [1.5], [69], [100])
    midi = tmp_path / "a440.mid"
    events.write(notes, midi)
    out = tmp_path / "spec.png"
    result = run_cli("plot", str(wav), "--notes", str(midi), "-o", str(out))
    assert result.returncode == 0, result.stderr
    png = matplotlib.image.imread(out)
    fig = spectrogram_figure(audio, rate, notes=events.read(midi), title="a440.wav")
    ax = fig.axes[0]
    band = (low + high) / 2
    assert np.allclose(_pixel(png, fig, ax, 1.0, band), _rgb(instrument_colours(notes)[0][0]), atol=0.02)  # the note
    above = band + 1.5   # the sine's energy just above the note's outline, and none there after it
    assert _pixel(png, fig, ax, 1.0, above).sum() > 1.0 > 0.1 > _pixel(png, fig, ax, 2.5, above).sum()


@pytest.mark.parametrize("problem", ["missing", "notes-on-midi"])
def test_plot_errors_are_one_line(tmp_path, problem):
    midi = tmp_path / "two.mid"
    events.write(_two_instruments(), midi)
    args = [str(tmp_path / "nope.mid")] if problem == "missing" else [str(midi), "--notes", str(midi)]
    result = run_cli("plot", *args, "-o", str(tmp_path / "x.png"))
    assert result.returncode == 1 and len(result.stderr.strip().splitlines()) == 1
    assert not (tmp_path / "x.png").exists()


@pytest.mark.parametrize("command", [("plot",), ("evaluate", "nll"), ("evaluate", "samples"), ("evaluate", "render")])
def test_help_of_the_evaluation_commands(command):
    result = run_cli(*command, "--help")
    assert result.returncode == 0 and "--debug" in result.stdout
    assert ("--json" in result.stdout) == (command[0] == "evaluate")
