"""Evaluating the token stage: held-out likelihood and the quality of sampled pieces.

    figures = likelihood(model, tokenizer, context=512, items=items)      # bits per token/char/note
    check = check_abc_tune(text, "tune.abc#1")                            # validity, bars against the meter
    features = piece_features(table)                                       # histograms after Yang & Lerch
    similarity = distribution_similarity(generated, reference)            # overlap area and KL per feature
    run = longest_shared_run(sample_pitches, training_index)               # originality

Likelihood reuses :func:`symbolic.train.heldout_nats` and :func:`symbolic.train.likelihood_figures`, so
``evaluate nll`` on the held-out pieces of a training source gives the figure of the model card.

Distribution similarity comes in two forms. :func:`yang_lerch` is the method of Yang & Lerch
(2020, "On the evaluation of generative models in music"): per feature, the distances between
pieces of the reference set (intra-set) and between generated and reference pieces (inter-set)
are smoothed into densities (Gaussian KDE) and compared by overlap area and KL.
:func:`distribution_similarity` is the pooled-histogram form: each feature is a histogram over fixed bins, summed over
the pieces of a set and normalised to a probability distribution; two sets are compared by the
overlap area ``sum_i min(p_i, q_i)`` (1 = the same distribution, 0 = disjoint) and by the
Kullback-Leibler divergence ``KL(reference || generated) = sum_i p_i ln(p_i / q_i)`` in nats over
the bins where ``p_i > 0`` (``q_i`` floored at ``KL_FLOOR``, so a bin the generated set never
visits costs a large but finite amount).

Features (drum notes excluded; times in quarter notes, so tempo does not matter):

- ``pitch_class``: 12 bins, one count per note (``pitch % 12``);
- ``pitch_range``: 128 bins, one count per piece (highest minus lowest pitch, semitones);
- ``interval``: 49 bins for -24..+24 semitones (clipped), between successive notes of a track
  ordered by (onset, pitch);
- ``ioi``: inter-onset intervals between successive distinct onsets of the piece, in twelfths
  of a quarter note, 97 bins (0..8 quarters, clipped);
- ``note_length``: note durations in twelfths of a quarter note, 97 bins (clipped).
"""

from __future__ import annotations

import math
import re
from dataclasses import dataclass, field
from fractions import Fraction

import numpy as np

from ostinato.events import NoteTable
from ostinato.events.errors import InputError, one_line
from ostinato.events.theory import BROKEN_RHYTHM, bar_length, mode_name, split_key

FEATURES = ("pitch_class", "pitch_range", "interval", "ioi", "note_length")
MAX_INTERVAL = 24
STEPS_PER_QUARTER = 12
MAX_STEPS = 8 * STEPS_PER_QUARTER
KL_FLOOR = 1e-6


# ---------------------------------------------------------------------------- likelihood
def _advance(bar, done: int, total: int) -> None:
    bar.total = total
    bar.update(done - bar.n)


def likelihood(model, tokenizer, *, context: int, items: list, instruments: str = "keep", expand_repeats: bool = False,
               device: str = "cpu", batch_size: int = 16, quiet: bool = False) -> dict:
    """Bits per token and per character (ABC) or per note (MIDI) of ``items`` under ``model``.

    Args:
        model: a loaded causal LM (:func:`symbolic.model.load_model_folder`).
        tokenizer: its tokenizer.
        context: the model's context in tokens (longer pieces are scored by sliding windows, and MIDI
            pieces are cut into windows of at most ``context`` tokens, as in training).
        items: :class:`events.sources.Item` list, scored in this order.
        instruments: ``"keep"`` or ``"ensemble"``, as the model was trained (MIDI tokenizers).
        expand_repeats: play the scores' repeats out, as the model was trained (MIDI tokenizers).
        quiet: no progress bars (on a terminal there are two otherwise: tokenizing, scoring).

    Returns:
        ``bits_per_token``, ``bits_per_char`` (ABC) or ``bits_per_note`` (MIDI), ``n_tokens``,
        ``n_pieces`` (pieces scored), ``n_sequences`` (the windows a long MIDI piece is cut into count
        each), ``n_chars``/``n_notes``, ``n_failed`` and ``failed`` (one line per piece the tokenizer could
        not accept).

    Raises:
        InputError: no piece could be tokenized.
    """
    import torch

    from ostinato.events.console import progress

    from .data import tokenize_items
    from .train import heldout_nats, likelihood_figures

    data = tokenize_items(items, tokenizer, max_tokens=context, instruments=instruments, expand_repeats=expand_repeats,
                          progress=lambda results: progress(results, desc="tokenize", quiet=quiet))
    pieces = [*data.train, *data.test] if data.train and data.test else data.train or data.test
    if not pieces:
        first = f" (first problem: {data.failures[0]})" if data.failures else ""
        raise InputError("evaluate nll", f"no piece could be tokenized: {len(data.failures)} failed{first}")
    memory = getattr(model, "memory", None)
    if memory is not None:   # the mixture with the model's memory of its training tunes (symbolic/memory.py)
        with progress(desc="score", unit="piece", quiet=quiet) as bar:
            totals = memory_nats(model, memory, pieces, context=context,
                                 on_piece=lambda done, total: _advance(bar, done, total))
    else:
        with progress(desc="score", unit="seq", quiet=quiet) as bar:
            totals = heldout_nats(model, pieces, context=context, pad_id=tokenizer.pad_id,
                                  device=torch.device(device), batch_size=batch_size,
                                  on_batch=lambda done, total: _advance(bar, done, total))
    figures = likelihood_figures(totals, data.unit)
    figures["n_failed"] = len(data.failures)
    figures["failed"] = list(data.failures)
    return figures


def memory_nats(model, memory, pieces, *, context: int, on_piece=None) -> dict:
    """:func:`symbolic.train.heldout_nats`'s totals with the model's memory (:mod:`symbolic.memory`) mixed in
    (the same windows)."""
    from .train import piece_log_probs

    nats, n_tokens = 0.0, 0
    for done, piece in enumerate(pieces, 1):
        ids = [int(t) for t in piece.ids]
        positions, log_probs = piece_log_probs(model, ids, context)
        for position, row in zip(positions, log_probs, strict=True):
            nats -= float(memory.mix(ids[:position], row)[ids[position]])
        n_tokens += len(positions)
        if on_piece is not None:
            on_piece(done, len(pieces))
    return {"nats": nats, "n_tokens": n_tokens, "n_units": sum(p.n_units for p in pieces),
            "n_pieces": len({p.piece for p in pieces}), "n_sequences": len(pieces)}


# ---------------------------------------------------------------------------- validity
@dataclass
class SampleCheck:
    """What one sampled piece is: valid or not (and why), its bars, header and notes.

    Attributes:
        key: the file (``path#X`` for a tune of an ABC file).
        valid: it parses (ABC with its headers, or MIDI that decodes) and has notes.
        problem: one line when not valid.
        n_bars: bars (measures) of the piece; ``n_bad_bars`` of them do not match the meter.
        bars_written: ABC: bar-line separated segments with notes (what ``compose --bars`` counts),
            None when the tune does not normalise; MIDI: ``n_bars``.
        key_name, meter, programs: what the piece declares, for control adherence (a MIDI file
            without a key signature: the key music21 finds in its notes).
        table: its notes when valid.
    """

    key: str
    valid: bool
    problem: str | None = None
    n_bars: int = 0
    n_bad_bars: int = 0
    bad_bars: list[int] = field(default_factory=list)
    bars_written: int | None = None
    key_name: str | None = None
    meter: str | None = None
    programs: list = field(default_factory=list)
    table: NoteTable | None = field(default=None, repr=False)


_HEADER = re.compile(r"^([XMK]):\s*(\S.*?)\s*$", re.MULTILINE)


def check_abc_tune(text: str, name: str = "<abc>") -> SampleCheck:
    """Check one ABC tune: ``X:``, ``M:`` and ``K:`` headers, music21 parses it, its bars match the meter.

    A bar is bad when its length (music21 measure, quarter notes) differs from the meter's bar,
    except that the first bar (an anacrusis) and the last bar may be shorter.
    """
    headers = {m.group(1): m.group(2) for m in reversed(list(_HEADER.finditer(text)))}
    missing = [f"{h}:" for h in "XMK" if h not in headers]
    if missing:
        return SampleCheck(name, False, f"missing header {', '.join(missing)}")
    from music21 import converter, stream

    from ostinato.events.music21_io import stream_to_table

    try:
        score = converter.parse(text, format="abc", forceSource=True)
        if isinstance(score, stream.Opus):
            score = score.scores[0]
        table = stream_to_table(score, path=name)
    except Exception as exc:  # music21 raises many kinds
        return SampleCheck(name, False, f"music21 cannot parse it: {one_line(exc)}")
    if len(table) == 0:
        return SampleCheck(name, False, "no notes")
    check = SampleCheck(name, True, key_name=headers["K"], meter=headers["M"], table=table,
                        programs=_programs(table))
    lengths = abc_bar_lengths(text)
    if lengths is None:   # the tokenizer refuses the tune: music21's measures instead
        parts = list(score.parts) if isinstance(score, stream.Score) else [score]
        measures = list(parts[0].getElementsByClass("Measure")) if parts else []
        lengths = [(Fraction(m.duration.quarterLength).limit_denominator(1000) / 4,
                    Fraction(m.barDuration.quarterLength).limit_denominator(1000) / 4) for m in measures]
    else:
        from .abc_tokens import AbcTokenizer, count_bars

        tokenizer = AbcTokenizer()
        check.bars_written = count_bars(tokenizer.tokenize(tokenizer.normalise(text))[4:])
    check.n_bars = len(lengths)
    check.bad_bars = bad_bars(lengths)
    check.n_bad_bars = len(check.bad_bars)
    return check


def bad_bars(lengths: list[tuple[Fraction, Fraction | None]]) -> list[int]:
    """1-based numbers of the bars whose length differs from the meter's: ``lengths`` holds
    ``(length, meter bar length or None for free meter)`` in whole notes. The first bar (an
    anacrusis) and the last may be shorter."""
    bad = []
    for index, (length, bar) in enumerate(lengths):
        if bar is None or length == bar:
            continue
        if index in (0, len(lengths) - 1) and length < bar:
            continue
        bad.append(index + 1)
    return bad


def abc_bar_lengths(text: str) -> list[tuple[Fraction, Fraction | None]] | None:
    """``[(length, meter's bar length)]`` in whole notes for each bar of an ABC tune, from the
    tokenizer's normalised form (tuplets as music21 reads them, broken rhythm, chords by their
    first note, grace notes take no time); None when the tokenizer refuses the tune.

    Bars are bar-line separated segments holding a note or a rest (as ``compose --bars`` counts).
    """
    from .abc_grammar import tuplet_ratio
    from .abc_normalise import BARS, DURATIONS, PITCHES
    from .abc_tokens import AbcTokenizer

    tokenizer = AbcTokenizer()
    try:
        tokens = tokenizer.tokenize(tokenizer.normalise(text))
    except ValueError:
        return None
    meter, unit = tokens[0][2:], tokenizer.unit_value(tokens[1])
    bars: list[tuple[Fraction, Fraction | None]] = []
    current: list[Fraction] = []
    tuplet_left, ratio, next_factor = 0, Fraction(1), Fraction(1)

    def add(length: Fraction) -> None:
        nonlocal tuplet_left, next_factor
        if tuplet_left:
            length *= ratio
            tuplet_left -= 1
        current.append(length * next_factor)
        next_factor = Fraction(1)

    def duration_at(j: int) -> tuple[Fraction, int]:
        if j < len(tokens) and tokens[j] in DURATIONS:
            return DURATIONS[tokens[j]], j + 1
        return Fraction(1), j

    i = 4   # after M:, L:, K: and the length control
    while i < len(tokens):
        token = tokens[i]
        if token in BARS:
            if current:
                bars.append((sum(current, Fraction(0)), bar_length(meter)))
                current = []
            i += 1
        elif token[:2] == "M:":
            meter = token[2:]
            i += 1
        elif token[:2] == "L:":
            unit = tokenizer.unit_value(token)
            i += 1
        elif token == "{":   # grace notes take no time
            while i < len(tokens) and tokens[i] != "}":
                i += 1
            i += 1
        elif token == "[":   # a chord lasts as its first note, times the chord's duration
            j, inner = i + 1, None
            while j < len(tokens) and tokens[j] != "]":
                if inner is None and tokens[j] in DURATIONS:
                    inner = DURATIONS[tokens[j]]
                j += 1
            outer, i = duration_at(j + 1)
            add(unit * (inner or 1) * outer)
        elif token in PITCHES or token == "z":
            length, i = duration_at(i + 1)
            add(unit * length)
        elif token.startswith("(") and token[1:].isdigit():
            tuplet_left, ratio = int(token[1:]), tuplet_ratio(int(token[1:]), meter)
            i += 1
        elif token in BROKEN_RHYTHM:
            first, second = BROKEN_RHYTHM[token]
            if current:
                current[-1] *= first
            next_factor = second
            i += 1
        else:   # accidentals, ties, slurs, endings, K: changes
            i += 1
    if current:
        bars.append((sum(current, Fraction(0)), bar_length(meter)))
    return bars


def check_file(path) -> list[SampleCheck]:
    """Check every piece of a generated file: each tune of an ``.abc`` file, or a MIDI file."""
    from pathlib import Path

    path = Path(path)
    if path.suffix.lower() == ".abc":
        from ostinato.events.abc_read import read_abc_text, split_tunes

        try:
            tunes = split_tunes(read_abc_text(path))
        except InputError as exc:
            return [SampleCheck(str(path), False, exc.problem if hasattr(exc, "problem") else one_line(exc))]
        if not tunes:
            return [SampleCheck(str(path), False, "no ABC tune (no X: or K: line)")]
        return [check_abc_tune(t.text, f"{path}#{t.number}" if len(tunes) > 1 else str(path)) for t in tunes]
    return [check_midi_file(path)]


def check_midi_file(path) -> SampleCheck:
    """A MIDI (or MusicXML) file is valid when it decodes into notes; bars are counted, never bad."""
    from ostinato import events
    try:
        table = events.read(path)
    except InputError as exc:   # it names the file already: the key says which
        return SampleCheck(str(path), False, exc.problem)
    except Exception as exc:
        return SampleCheck(str(path), False, one_line(exc))
    if len(table) == 0:
        return SampleCheck(str(path), False, "no notes")
    ts = table.time_signatures[0] if table.time_signatures else None
    bar_ticks = table.ticks_per_quarter * (ts.bar_quarters if ts else 4)
    n_bars = math.ceil(Fraction(int(table.offset_tick.max())) / bar_ticks) if len(table) else 0
    key = table.key_signatures[0].name if table.key_signatures else estimate_key(table)
    return SampleCheck(str(path), True, n_bars=int(n_bars), bars_written=int(n_bars), key_name=key,
                       meter=ts.text if ts else None, programs=_programs(table), table=table)


def estimate_key(table: NoteTable) -> str | None:
    """The key of the notes by music21's Krumhansl-Schmuckler analysis (``"D minor"``), for MIDI
    files that state none (MIDI token models carry the key as a control, not as a key signature)."""
    from music21 import note, stream

    notes = table.select(~table.is_drum)
    if len(notes) == 0:
        return None
    part = stream.Stream()
    for onset, offset, pitch in zip(notes.onset_tick, notes.offset_tick, notes.pitch, strict=True):
        part.insert(onset / notes.ticks_per_quarter,
                    note.Note(int(pitch), quarterLength=max(offset - onset, 1) / notes.ticks_per_quarter))
    try:
        found = part.analyze("key")
    except Exception:  # music21 gives up on some note sets
        return None
    return f"{found.tonic.name.replace('-', 'b')} {found.mode}"


def _programs(table: NoteTable) -> list:
    found = {"drums" if t.is_drum else int(t.program) for i, t in enumerate(table.tracks) if np.any(table.track == i)}
    return sorted(found, key=str)


# ---------------------------------------------------------------------------- control adherence
def normalise_key(text: str | None) -> str | None:
    """``"G"``, ``"Gmaj"``, ``"G major"`` -> ``"G major"``; ``"Ador"`` -> ``"A dorian"``; None stays None.

    Read by :func:`events.theory.split_key` (what follows the mode word is ignored); a mode word
    that names no mode is kept in lower case, and text with no tonic is returned stripped.
    """
    if text is None:
        return None
    parts = split_key(text)
    if parts is None:
        return text.strip()
    tonic, word, _ = parts
    return f"{tonic} {mode_name(word) or word.lower()}"


def normalise_meter(text: str | None) -> str | None:
    """``"C"`` -> ``"4/4"``, ``"C|"`` -> ``"2/2"``, ``" 6/8 "`` -> ``"6/8"``."""
    if text is None:
        return None
    text = text.strip()
    return {"C": "4/4", "C|": "2/2"}.get(text, text.replace(" ", ""))


def adherence(checks: list[SampleCheck], *, key: str | None = None, meter: str | None = None,
              bars: int | None = None, instruments: list | None = None) -> dict:
    """Fraction of the valid pieces that meet each requested control (only those requested).

    ``instruments`` is compared as a set of GM programs (and ``"drums"``) with the programs that play.
    """
    valid = [c for c in checks if c.valid]
    wanted = {"key": normalise_key(key) if key else None, "meter": normalise_meter(meter) if meter else None,
              "bars": bars, "instruments": sorted(set(instruments), key=str) if instruments else None}
    found = {
        "key": lambda c: normalise_key(c.key_name),
        "meter": lambda c: normalise_meter(c.meter),
        "bars": lambda c: c.n_bars if c.bars_written is None else c.bars_written,
        "instruments": lambda c: sorted(set(c.programs), key=str),
    }
    result = {}
    for name, value in wanted.items():
        if value is None:
            continue
        hits = sum(found[name](c) == value for c in valid)
        result[name] = hits / len(valid) if valid else 0.0
    return result


# ---------------------------------------------------------------------------- distributions
@dataclass
class Features:
    """Histogram counts of one piece (or a set, summed): one int64 array per feature."""

    counts: dict[str, np.ndarray]

    def __add__(self, other: Features) -> Features:
        return Features({k: self.counts[k] + other.counts[k] for k in FEATURES})


def _bins(name: str) -> int:
    return {"pitch_class": 12, "pitch_range": 128, "interval": 2 * MAX_INTERVAL + 1, "ioi": MAX_STEPS + 1,
            "note_length": MAX_STEPS + 1}[name]


def empty_features() -> Features:
    return Features({k: np.zeros(_bins(k), np.int64) for k in FEATURES})


def _steps(ticks: np.ndarray, ticks_per_quarter: int) -> np.ndarray:
    return np.clip(np.rint(ticks * STEPS_PER_QUARTER / ticks_per_quarter), 0, MAX_STEPS).astype(np.int64)


def piece_features(table: NoteTable) -> Features:
    """The feature histograms of one piece (see the module docstring for the bins)."""
    features = empty_features()
    notes = table.select(~table.is_drum)
    if len(notes) == 0:
        return features
    pitch = notes.pitch.astype(np.int64)
    c = features.counts
    c["pitch_class"] += np.bincount(pitch % 12, minlength=12)
    c["pitch_range"][int(pitch.max() - pitch.min())] += 1
    for track in np.unique(notes.track):
        mine = np.flatnonzero(notes.track == track)
        order = mine[np.lexsort((pitch[mine], notes.onset_tick[mine]))]
        steps = np.clip(np.diff(pitch[order]), -MAX_INTERVAL, MAX_INTERVAL) + MAX_INTERVAL
        c["interval"] += np.bincount(steps, minlength=_bins("interval"))
    onsets = np.unique(notes.onset_tick)
    c["ioi"] += np.bincount(_steps(np.diff(onsets), notes.ticks_per_quarter), minlength=_bins("ioi"))
    lengths = notes.offset_tick - notes.onset_tick
    c["note_length"] += np.bincount(_steps(lengths, notes.ticks_per_quarter), minlength=_bins("note_length"))
    return features


def set_features(tables: list[NoteTable]) -> Features:
    total = empty_features()
    for table in tables:
        total = total + piece_features(table)
    return total


def overlap_and_kl(reference: np.ndarray, generated: np.ndarray) -> tuple[float, float]:
    """``(overlap area, KL(reference || generated) in nats)`` of two histograms (counts or probabilities).

    Both are normalised first; an empty histogram gives ``(0.0, inf)``.
    """
    ref, gen = np.asarray(reference, np.float64), np.asarray(generated, np.float64)
    if ref.sum() <= 0 or gen.sum() <= 0:
        return 0.0, math.inf
    p, q = ref / ref.sum(), gen / gen.sum()
    overlap = float(np.minimum(p, q).sum())
    used = p > 0
    kl = float(np.sum(p[used] * np.log(p[used] / np.maximum(q[used], KL_FLOOR))))
    return overlap, kl


def distribution_similarity(generated: list[NoteTable], reference: list[NoteTable]) -> dict:
    """``{feature: {"overlap": float, "kl": float}}`` between a generated and a reference set."""
    gen, ref = set_features(generated), set_features(reference)
    result = {}
    for name in FEATURES:
        overlap, kl = overlap_and_kl(ref.counts[name], gen.counts[name])
        result[name] = {"overlap": overlap, "kl": kl}
    return result


# ---------------------------------------------------------------------------- Yang & Lerch, as published
def piece_vectors(table: NoteTable) -> dict[str, np.ndarray]:
    """Per-piece feature vectors of Yang & Lerch's method: the histograms of :func:`piece_features`
    normalised to sum 1 (pitch class, interval, note length), the pitch range (semitones, [1]) and
    the mean inter-onset interval (quarter notes, [1])."""
    counts = piece_features(table).counts
    vectors = {}
    for name in ("pitch_class", "interval", "note_length"):
        total = counts[name].sum()
        vectors[name] = counts[name] / total if total else counts[name].astype(np.float64)
    vectors["pitch_range"] = np.array([float(np.argmax(counts["pitch_range"])) if counts["pitch_range"].any() else 0.0])
    ioi = counts["ioi"]
    vectors["ioi"] = np.array([float((ioi * np.arange(len(ioi))).sum() / ioi.sum() / STEPS_PER_QUARTER)
                               if ioi.sum() else 0.0])
    return vectors


def intra_distances(vectors: list[np.ndarray]) -> np.ndarray:
    """Euclidean distances between every pair of pieces of one set: [n (n - 1) / 2]."""
    return np.array([np.linalg.norm(a - b) for i, a in enumerate(vectors) for b in vectors[i + 1:]], np.float64)


def inter_distances(generated: list[np.ndarray], reference: list[np.ndarray]) -> np.ndarray:
    """Euclidean distances between every generated and every reference piece: [n_gen * n_ref]."""
    return np.array([np.linalg.norm(a - b) for a in generated for b in reference], np.float64)


def kde_overlap_and_kl(intra: np.ndarray, inter: np.ndarray, *, n_grid: int = 1000) -> tuple[float, float]:
    """Overlap area and ``KL(intra || inter)`` (nats) of Gaussian kernel density estimates (scipy,
    Scott's bandwidth) of two distance samples, on a grid over both ranges (Yang & Lerch, sec. 3).

    A sample of fewer than two distinct values is widened by a tiny jitter so its density exists.
    """
    from scipy.stats import entropy, gaussian_kde

    def density(x: np.ndarray):
        x = np.asarray(x, np.float64)
        if len(x) < 2 or np.ptp(x) == 0:
            x = np.concatenate([x, x + 1e-3]) if len(x) else np.array([0.0, 1e-3])
        return gaussian_kde(x)

    if len(intra) == 0 or len(inter) == 0:
        return 0.0, math.inf
    low, high = min(intra.min(), inter.min()), max(intra.max(), inter.max())
    pad = 0.25 * (high - low) + 1e-3
    grid = np.linspace(low - pad, high + pad, n_grid)
    f, g = density(intra)(grid), density(inter)(grid)
    step = grid[1] - grid[0]
    overlap = float(np.minimum(f, g).sum() * step)
    kl = float(entropy(f + 1e-12, g + 1e-12))
    return overlap, kl


def yang_lerch(generated: list[NoteTable], reference: list[NoteTable]) -> dict:
    """``{feature: {"overlap", "kl"}}``: the reference's intra-set distance density against the
    generated-to-reference (inter-set) one, per feature, as in Yang & Lerch (2020). Needs at least
    two reference pieces; ``{}`` otherwise."""
    if len(reference) < 2 or not generated:
        return {}
    gen = [piece_vectors(t) for t in generated]
    ref = [piece_vectors(t) for t in reference]
    result = {}
    for name in FEATURES:
        intra = intra_distances([v[name] for v in ref])
        inter = inter_distances([v[name] for v in gen], [v[name] for v in ref])
        overlap, kl = kde_overlap_and_kl(intra, inter)
        result[name] = {"overlap": overlap, "kl": kl}
    return result


# ---------------------------------------------------------------------------- originality
def note_sequence(table: NoteTable) -> tuple[int, ...]:
    """The pitches of a piece's non-drum notes in the order (onset, pitch): what originality compares."""
    notes = table.select(~table.is_drum)
    order = np.lexsort((notes.pitch, notes.onset_tick))
    return tuple(int(p) for p in notes.pitch[order])


class TrainingIndex:
    """The note sequences of a training set, searchable for the longest run a sample shares with it."""

    def __init__(self, sequences: dict[str, tuple[int, ...]]):
        self.sequences = sequences
        self._grams: dict[int, dict[tuple[int, ...], str]] = {}

    def _ngrams(self, n: int) -> dict[tuple[int, ...], str]:
        if n not in self._grams:
            grams: dict[tuple[int, ...], str] = {}
            for key, seq in self.sequences.items():
                for i in range(len(seq) - n + 1):
                    grams.setdefault(seq[i:i + n], key)
            self._grams[n] = grams
        return self._grams[n]

    def longest_shared_run(self, sequence: tuple[int, ...]) -> tuple[int, str | None]:
        """``(n, key)``: the longest run of consecutive notes of ``sequence`` that some training piece
        (``key``) also has, consecutively; ``(0, None)`` when no note is shared."""
        longest = max((len(s) for s in self.sequences.values()), default=0)
        lo, hi, found = 0, min(len(sequence), longest), None
        while lo < hi:   # a shared run of n notes holds shared runs of every shorter length
            mid = (lo + hi + 1) // 2
            grams = self._ngrams(mid)
            hit = next((grams[sequence[i:i + mid]] for i in range(len(sequence) - mid + 1)
                        if sequence[i:i + mid] in grams), None)
            if hit is None:
                hi = mid - 1
            else:
                lo, found = mid, hit
        return lo, found


# ---------------------------------------------------------------------------- summary
def sample_summary(checks: list[SampleCheck]) -> dict:
    """``n_pieces``, ``valid_fraction``, ``bad_bar_fraction`` (bad bars over all bars of valid ABC pieces)."""
    valid = [c for c in checks if c.valid]
    bars = sum(c.n_bars for c in valid)
    bad = sum(c.n_bad_bars for c in valid)
    return {"n_pieces": len(checks), "n_valid": len(valid),
            "valid_fraction": len(valid) / len(checks) if checks else 0.0,
            "n_bars": bars, "n_bad_bars": bad, "bad_bar_fraction": bad / bars if bars else 0.0}
