"""The per-item conversion: one :class:`~events.sources.Item` in, its outputs written, one :class:`Result` out.

This function knows nothing of runners: the local process pool and the Ray runner call the
same :func:`convert_item`, and so can any script. Targets:

=========  ======================================================================
``mid``    ``<out>/<key>.mid``: a type-1 MIDI file
``abc``    ``<out>/<key>.abc``: an ABC tune (ostinato's writer)
``musicxml`` ``<out>/<key>.musicxml`` (or ``.mxl`` with ``musicxml_compressed``)
``json``   ``<out>/<key>.json``: the whole note table (columns, tracks, tempos, meters, keys)
``pianoroll`` ``<out>/<key>.npz``: ``onset``/``frame`` (bool) and ``velocity`` (uint8), each
           ``[n_tracks, 128, n_frames]``, plus ``frame_rate_hz``, ``programs``, ``is_drum``
``audio``  ``<out>/<key>.<wav|flac|ogg>`` rendered by a ``render`` engine
``tokens`` no file per item: the token ids come back in :attr:`Result.tokens`, and the
           batch appends them to shards (:mod:`corpora.shards`)
=========  ======================================================================

``<key>`` is the item's split key (``folk/reels/set.abc#2`` -> ``folk/reels/set.abc#2.mid``; a key
that already ends with the suffix keeps it), so outputs mirror the input tree and two inputs
never write the same output. Every file is written atomically.
"""

from __future__ import annotations

import hashlib
import json
import time
import traceback
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from ostinato.events import InputError
from ostinato.events.atomic import atomic_path, write_text_atomic
from ostinato.events.sources import ABC_READERS, Item

TARGETS = ("mid", "abc", "musicxml", "tokens", "pianoroll", "audio", "json")
AUDIO_FORMATS = ("wav", "flac", "ogg")


@dataclass(frozen=True)
class ConvertSpec:
    """What to convert to, and how (picklable: it travels to worker processes and Ray tasks).

    Attributes:
        to: the target, one of :data:`TARGETS`.
        out_dir: the output folder.
        expand_repeats: play ABC/MusicXML repeats out before converting (music21 reader).
        abc_reader: how ABC becomes notes: ``"abc2midi"`` (as performed: repeats and grace notes
            played, beat-stress velocities; fast) or ``"music21"`` (events' reader: as written).
        frame_rate_hz: piano-roll frames per second (``pianoroll``).
        tokenizer: a saved tokenizer JSON file (``tokens``).
        render_engine: a ``render`` engine name (``audio``), e.g. ``"soundfont"``, ``"ddsp"``.
        render_options: extra keyword options for the engine, as ``(name, value)`` pairs.
        sample_rate_hz: audio sample rate (``audio``).
        audio_format: ``wav``, ``flac`` or ``ogg`` (``audio``).
        musicxml_compressed: write ``.mxl`` instead of ``.musicxml``.
    """

    to: str
    out_dir: str
    expand_repeats: bool = False
    abc_reader: str = "abc2midi"
    frame_rate_hz: float = 100.0
    tokenizer: str | None = None
    render_engine: str = "soundfont"
    render_options: tuple[tuple[str, object], ...] = ()
    sample_rate_hz: int = 44100
    audio_format: str = "wav"
    musicxml_compressed: bool = False

    def __post_init__(self) -> None:
        if self.to not in TARGETS:
            raise ValueError(f"to must be one of {', '.join(TARGETS)}, got {self.to!r}")
        if not self.frame_rate_hz > 0:
            raise ValueError(f"frame_rate_hz must be > 0, got {self.frame_rate_hz}")
        if not (isinstance(self.sample_rate_hz, int) and 1000 <= self.sample_rate_hz <= 384000):
            raise ValueError(f"sample_rate_hz must be an integer in 1000..384000, got {self.sample_rate_hz!r}")
        if self.abc_reader not in ABC_READERS:
            raise ValueError(f"abc_reader must be one of {', '.join(ABC_READERS)}, got {self.abc_reader!r}")
        if self.audio_format not in AUDIO_FORMATS:
            raise ValueError(f"audio_format must be one of {', '.join(AUDIO_FORMATS)}, got {self.audio_format!r}")
        if self.to == "tokens" and not self.tokenizer:
            raise ValueError("tokenizer is required for to='tokens' (a saved tokenizer JSON file)")

    @property
    def suffix(self) -> str:
        """The suffix of each item's output file ('' for tokens, which go to shards)."""
        return {"mid": ".mid", "abc": ".abc", "musicxml": ".mxl" if self.musicxml_compressed else ".musicxml",
                "json": ".json", "pianoroll": ".npz", "audio": f".{self.audio_format}", "tokens": ""}[self.to]

    def output_for(self, key: str) -> str:
        """The output path of ``key``, relative to :attr:`out_dir` (POSIX separators).

        The target's suffix is appended to the key (``set.abc#2`` -> ``set.abc#2.mid``), unless the
        key already ends with it (``a.mid`` -> ``a.mid``), so two inputs never share an output.
        """
        return key if key.endswith(self.suffix) else f"{key}{self.suffix}"


@dataclass
class Result:
    """What became of one item.

    Attributes:
        key: the item's split key.
        input: the file read (for an ABC tune, the file holding it).
        sha256: hex digest of the input (for an ABC tune, of the tune's own text).
        status: ``"ok"``, ``"failed"`` or ``"skipped"``.
        error: the exception class name when failed (``InputError``, ``Timeout``, ``WorkerCrash``...).
        message: the problem, one line (or why it was skipped).
        outputs: output paths relative to the output folder.
        seconds: wall time spent on the item.
        tokens: the token ids (``tokens`` target only; not written to the manifest).
        traceback: the formatted traceback of an unexpected error (printed with --debug only).
    """

    key: str
    input: str
    sha256: str | None = None
    status: str = "ok"
    error: str | None = None
    message: str | None = None
    outputs: list[str] = field(default_factory=list)
    seconds: float = 0.0
    tokens: np.ndarray | None = None
    traceback: str | None = None


def input_sha256(item: Item) -> str:
    """The hex sha256 of what ``item`` reads: the tune text for an ABC tune, else the file's bytes."""
    if item.text is not None:
        return hashlib.sha256(item.text.encode("utf-8")).hexdigest()
    from ostinato.events.limits import DEFAULT_LIMITS, check_regular_file

    size = check_regular_file(item.path)   # a FIFO or /dev/zero would block or never end: refused unread
    digest = hashlib.sha256()
    try:
        with open(item.path, "rb") as f:
            for block in iter(lambda: f.read(1 << 20), b""):
                digest.update(block)
                size -= len(block)
                if size < -DEFAULT_LIMITS.max_file_bytes:   # it grew without end while read
                    raise InputError(item.path, f"file grew past {DEFAULT_LIMITS.max_file_bytes} bytes while read")
    except OSError as exc:
        raise InputError(item.path, exc.strerror or str(exc)) from None
    return digest.hexdigest()


# ---------------------------------------------------------------------------- targets
_TOKENIZERS: dict[str, object] = {}  # per process: loaded once, used for every item
_RENDERERS: dict[tuple, object] = {}


def cached_tokenizer(path: str):
    if path not in _TOKENIZERS:
        from ostinato.symbolic.tokenizers import load_tokenizer

        _TOKENIZERS[path] = load_tokenizer(path)
    return _TOKENIZERS[path]


def _renderer(spec: ConvertSpec):
    key = (spec.render_engine, spec.render_options)
    if key not in _RENDERERS:
        from ostinato import render
        _RENDERERS[key] = render.get_renderer(spec.render_engine, **dict(spec.render_options))
    return _RENDERERS[key]


def _try_renderer(spec: ConvertSpec, conn) -> None:
    try:
        _renderer(spec).close()
        conn.send(None)
    except Exception as exc:
        conn.send((type(exc).__name__, str(exc)))


def check_renderer(spec: ConvertSpec) -> None:
    """Build (and close) the render engine of ``spec`` once, in a short-lived child process.

    The parent must not load an engine itself: a SoundFont synthesizer's threads and locks
    do not survive the fork that starts the pool's workers.

    Raises:
        ValueError: the engine cannot be built (unknown engine, missing SoundFont or model...).
    """
    import multiprocessing

    from .pool import process_context

    ctx = process_context() if multiprocessing.get_start_method(allow_none=True) != "spawn" else multiprocessing
    parent, child = ctx.Pipe()
    process = ctx.Process(target=_try_renderer, args=(spec, child), daemon=True)
    process.start()
    child.close()
    try:
        problem = parent.recv() if parent.poll(600) else ("Timeout", "the render engine took too long to start")
    except EOFError:
        problem = ("WorkerCrash", "the render engine crashed while starting")
    process.join(5)
    if problem is not None:
        raise ValueError(f"render engine {spec.render_engine!r}: {problem[1]}")


def encode_item(item: Item, tokenizer, *, expand_repeats: bool = False, abc_reader: str = "music21") -> np.ndarray:
    """Token ids of ``item`` (int64 ``[n_tokens]``): ABC text for an ``abc`` tokenizer, else the note table."""
    if getattr(tokenizer, "kind", None) == "abc":
        ids = tokenizer.encode(item.abc_text())
    else:
        ids = tokenizer.encode(item.read(expand_repeats=expand_repeats, abc_reader=abc_reader))
    return np.asarray(ids, dtype=np.int64)


def table_json(table) -> dict:
    """The note table as JSON-ready lists (columns of length n_notes, plus metadata)."""
    return {
        "ticks_per_quarter": table.ticks_per_quarter,
        "tracks": [{"name": t.name, "program": t.program, "is_drum": t.is_drum} for t in table.tracks],
        "tempos": [{"tick": t.tick, "time_s": t.time_s, "qpm": t.qpm} for t in table.tempos],
        "time_signatures": [{"tick": t.tick, "time_s": t.time_s, "numerator": t.numerator,
                             "denominator": t.denominator} for t in table.time_signatures],
        "key_signatures": [{"tick": k.tick, "time_s": k.time_s, "sharps": k.sharps, "mode": k.mode}
                           for k in table.key_signatures],
        "notes": {name: getattr(table, name).tolist() for name in
                  ("onset_tick", "offset_tick", "onset_s", "offset_s", "pitch", "velocity", "track")},
    }


def _write(item: Item, spec: ConvertSpec, target: Path) -> None:
    table = item.read(expand_repeats=spec.expand_repeats, abc_reader=spec.abc_reader)
    if spec.to == "mid":
        from ostinato.events import write_midi

        write_midi(table, target)
    elif spec.to == "abc":
        from ostinato.events import write_abc

        write_abc(table, target)
    elif spec.to == "musicxml":
        from ostinato.events.music21_io import write_musicxml

        write_musicxml(table, target)
    elif spec.to == "json":
        write_text_atomic(target, json.dumps({"key": item.key, **table_json(table)}) + "\n")
    elif spec.to == "pianoroll":
        from ostinato.events import to_pianoroll

        roll = to_pianoroll(table, frame_rate_hz=spec.frame_rate_hz)
        with atomic_path(target) as tmp, open(tmp, "wb") as f:
            np.savez_compressed(
                f, onset=roll.onset, frame=roll.frame, velocity=roll.velocity,
                frame_rate_hz=np.float64(roll.frame_rate_hz),
                programs=np.array([t.program for t in roll.tracks], dtype=np.uint8),
                is_drum=np.array([t.is_drum for t in roll.tracks], dtype=bool),
            )
    elif spec.to == "audio":
        from ostinato import render
        blocks = _renderer(spec).stream(table, spec.sample_rate_hz)
        render.write_audio_stream(blocks, spec.sample_rate_hz, target, spec.audio_format, n_channels=render.N_CHANNELS)
    else:  # pragma: no cover - guarded by ConvertSpec
        raise ValueError(spec.to)


def convert_item(item: Item, spec: ConvertSpec) -> Result:
    """Convert one item; never raises for a bad piece (the :class:`Result` says what happened).

    ``KeyboardInterrupt``/``SystemExit`` still propagate. A ``MemoryError`` (for instance
    from the memory limit a pool worker runs under) is a failed item like any other.
    """
    start = time.perf_counter()
    result = Result(key=item.key, input=item.path)
    try:
        result.sha256 = input_sha256(item)
        if spec.to == "tokens":
            ids = encode_item(item, cached_tokenizer(spec.tokenizer), expand_repeats=spec.expand_repeats,
                              abc_reader=spec.abc_reader)
            if ids.size == 0:
                result.status, result.message = "skipped", "no tokens (empty piece)"
            result.tokens = ids
        else:
            relative = spec.output_for(item.key)
            _write(item, spec, Path(spec.out_dir) / relative)
            result.outputs = [relative]
    except InputError as exc:
        result.status, result.error, result.message = "failed", "InputError", exc.problem
    except MemoryError as exc:
        result.status, result.error = "failed", "MemoryError"
        result.message = str(exc) or "out of memory (over the memory limit)"
    except Exception as exc:  # any library's failure on this piece costs this piece only
        result.status, result.error = "failed", type(exc).__name__
        result.message = " ".join(str(exc).split()) or type(exc).__name__
        result.traceback = traceback.format_exc()
    result.seconds = time.perf_counter() - start
    return result
