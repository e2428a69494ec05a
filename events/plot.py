"""Piano-roll pictures of note tables (``ostinato plot FILE.mid -o roll.png``).

    fig = pianoroll_figure(table, title="tune.abc")    # matplotlib Figure; x in seconds, y in MIDI pitch
    plot_pianoroll(table, "roll.png")                  # the same, written atomically as PNG

Each track is drawn in the colour of its instrument (tracks with the same GM program share a
colour; drums are grey), and bar lines (from the time signatures and the tempo map) are dashed.
"""

from __future__ import annotations

import os

import numpy as np

from .table import NoteTable

DRUM_COLOUR = "#7f7f7f"


def instrument_colours(table: NoteTable) -> dict[int, tuple[str, str]]:
    """``{track index: (colour, instrument name)}``: one tab10 colour per distinct GM program."""
    import matplotlib
    import pretty_midi

    palette = matplotlib.colormaps["tab10"].colors
    programs = sorted({int(t.program) for t in table.tracks if not t.is_drum})
    colours = {}
    for index, track in enumerate(table.tracks):
        if track.is_drum:
            colours[index] = (DRUM_COLOUR, "drums")
        else:
            colour = matplotlib.colors.to_hex(palette[programs.index(int(track.program)) % len(palette)])
            colours[index] = (colour, pretty_midi.program_to_instrument_name(int(track.program)))
    return colours


def bar_times_s(table: NoteTable) -> np.ndarray:
    """Start times (seconds) of every bar up to the end of the last note (4/4 when no meter is given)."""
    end_tick = int(table.offset_tick.max()) if len(table) else 0
    signatures = [(ts.tick, ts.bar_quarters) for ts in table.time_signatures] or [(0, 4)]
    if signatures[0][0] > 0:
        signatures.insert(0, (0, 4))
    ticks = []
    for i, (start, quarters) in enumerate(signatures):
        stop = signatures[i + 1][0] if i + 1 < len(signatures) else end_tick + 1
        step = float(quarters * table.ticks_per_quarter)
        ticks.extend(np.arange(start, stop, step))
    return np.asarray(table.tempo_map.to_seconds(np.asarray(ticks, np.int64)), np.float64)


def draw_notes(ax, table: NoteTable, *, y_of_pitch=None, filled: bool = True) -> None:
    """Draw each note as a rectangle on ``ax`` (y = pitch, or ``y_of_pitch(pitch) -> (low, high)``)."""
    from matplotlib.collections import PatchCollection
    from matplotlib.patches import Patch, Rectangle

    colours = instrument_colours(table)
    handles = {}
    for index in range(len(table.tracks)):
        mask = table.track == index
        if not mask.any():
            continue
        colour, name = colours[index]
        boxes = []
        for onset, offset, pitch in zip(table.onset_s[mask], table.offset_s[mask], table.pitch[mask], strict=True):
            low, high = (pitch - 0.4, pitch + 0.4) if y_of_pitch is None else y_of_pitch(int(pitch))
            boxes.append(Rectangle((onset, low), max(offset - onset, 1e-3), high - low))
        ax.add_collection(PatchCollection(boxes, facecolor=colour if filled else "none", edgecolor=colour,
                                          linewidth=0.0 if filled else 1.0))
        handles.setdefault(name, Patch(facecolor=colour, label=name))
    if handles:
        ax.legend(handles=list(handles.values()), loc="upper right", fontsize="small")


def pianoroll_figure(table: NoteTable, *, title: str = ""):
    """A matplotlib Figure of ``table``'s piano roll (seconds across, MIDI pitch up)."""
    from matplotlib.figure import Figure

    duration = max(table.duration_s, 1.0)
    fig = Figure(figsize=(min(max(6.0, duration * 0.6), 24.0), 5.0), dpi=100)
    ax = fig.add_subplot()
    if len(table):
        low, high = int(table.pitch.min()) - 2, int(table.pitch.max()) + 2
    else:
        low, high = 58, 70
    for t in bar_times_s(table):
        ax.axvline(t, color="#bbbbbb", linestyle="--", linewidth=0.8, zorder=0)
    draw_notes(ax, table)
    ax.set_xlim(0, duration)
    ax.set_ylim(low, high)
    ax.set_xlabel("time (s)")
    ax.set_ylabel("MIDI pitch")
    ax.set_title(title)
    fig.tight_layout()
    return fig


def save_png(fig, path: str | os.PathLike) -> None:
    """Write a Figure as PNG, atomically."""
    from .atomic import atomic_path

    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        fig.savefig(fh, format="png")


def plot_pianoroll(table: NoteTable, path: str | os.PathLike, *, title: str = ""):
    """Draw ``table`` as a piano roll into the PNG ``path``; returns the Figure."""
    fig = pianoroll_figure(table, title=title)
    save_png(fig, path)
    return fig
