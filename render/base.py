"""The one Renderer interface and the engine registry.

Every engine turns a :class:`events.NoteTable` into float32 audio of shape
``[N_CHANNELS, n_samples]`` (stereo, channel-first), at a requested sample rate, with
``n_samples = ceil((table.duration_s + tail_s) * sample_rate_hz)``: the last note's release
and reverb ring out for ``tail_s`` seconds. Long pieces are rendered in chunks with carried
state (:meth:`Renderer.stream`), so memory stays bounded and chunk seams are exact.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Iterator

import numpy as np

N_CHANNELS = 2
SAMPLE_RATES_HZ = (16000, 22050, 44100, 48000)
DEFAULT_TAIL_S = 1.0
DEFAULT_CHUNK_S = 10.0


def n_output_samples(duration_s: float, sample_rate_hz: int, tail_s: float = DEFAULT_TAIL_S) -> int:
    """Samples of a render of a piece lasting ``duration_s`` seconds (an empty piece gives ``tail_s`` of silence)."""
    return math.ceil((max(duration_s, 0.0) + tail_s) * sample_rate_hz)


def check_sample_rate(sample_rate_hz: int) -> int:
    """Validate an output rate (any positive integer; 16000/22050/44100/48000 are the usual ones)."""
    if not isinstance(sample_rate_hz, (int, np.integer)) or isinstance(sample_rate_hz, bool) or sample_rate_hz <= 0:
        raise ValueError(f"sample_rate_hz must be a positive integer, got {sample_rate_hz!r}")
    if not 4000 <= sample_rate_hz <= 192000:
        raise ValueError(f"sample_rate_hz must be in 4000..192000, got {sample_rate_hz}")
    return int(sample_rate_hz)


class Renderer(abc.ABC):
    """Notes in, audio out. Subclasses implement :meth:`stream`.

    Attributes:
        name: the engine's registry name.
        tail_s: seconds rendered after the last note ends.
    """

    name: str = "?"
    tail_s: float = DEFAULT_TAIL_S

    @abc.abstractmethod
    def stream(self, table, sample_rate_hz: int = 44100, *, chunk_s: float = DEFAULT_CHUNK_S) -> Iterator[np.ndarray]:
        """Yield consecutive float32 blocks of shape ``[N_CHANNELS, n]`` that together make the render.

        The blocks concatenate (on the last axis) to exactly what :meth:`render` returns; their
        sizes depend on ``chunk_s`` (seconds of audio per block), the audio does not.
        """

    def render(self, table, sample_rate_hz: int = 44100, *, chunk_s: float = DEFAULT_CHUNK_S) -> np.ndarray:
        """Render ``table`` to float32 audio of shape ``[N_CHANNELS, n_samples]`` at ``sample_rate_hz``."""
        blocks = list(self.stream(table, sample_rate_hz, chunk_s=chunk_s))
        if not blocks:
            return np.zeros((N_CHANNELS, 0), dtype=np.float32)
        return np.concatenate(blocks, axis=1)

    def close(self) -> None:  # noqa: B027 (optional hook)
        """Release what the engine holds (a SoundFont, a model); it can not render afterwards."""

    def __enter__(self) -> Renderer:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


ENGINES: dict[str, Callable[..., Renderer]] = {}


def register_engine(name: str, factory: Callable[..., Renderer]) -> None:
    """Make ``get_renderer(name, **options)`` call ``factory(**options)``."""
    if not name or not name.isidentifier():
        raise ValueError(f"engine name must be an identifier, got {name!r}")
    ENGINES[name] = factory


def get_renderer(engine: str = "ddsp", **options) -> Renderer:
    """A renderer for ``engine`` (``ddsp``, ``soundfont``, ``wavenet``), built with ``options``.

    Options are the engine factory's keyword arguments: ``soundfont=PATH`` for ``soundfont``,
    ``model=DIR`` for ``ddsp`` (default: the shipped model).
    """
    if engine not in ENGINES:
        raise ValueError(f"unknown engine {engine!r}: choose one of {', '.join(sorted(ENGINES))}")
    return ENGINES[engine](**options)
