"""miditok's REMI token ids for a ``symusic.Score``, computed with NumPy arrays instead of per-note events.

miditok's ``REMI.encode`` builds one Python ``Event`` per token (``_create_track_events``,
``_add_time_events``, ``complete_sequence``); that is most of the time of ``ostinato convert
--to tokens``. :func:`fast_remi_ids` gives the same ids from arrays:

1. the score goes through miditok's own ``preprocess_score`` (resampling to its time division,
   time-signature delaying and filtering, velocity/duration/tempo quantisation, pitch ranges,
   merged programs): about 1% of miditok's time, and reusing it keeps that part identical;
2. the events are ordered as miditok orders them: one stable sort by onset tick over
   ``[time signatures..., tempos..., notes of track 0..., notes of track 1...]``;
3. the bar, time-signature and position tokens each event gets in ``REMI._add_time_events``
   are computed per array, with the bar grid of each time-signature section;
4. ids come from lookup tables built once per tokenizer from ``tokenizer.vocab``.

Only the configuration ostinato uses (and its close relatives) is supported: REMI with programs
in one stream, tempos and time signatures, velocities and durations, no rests, chords, pedals,
pitch bends, control changes, key signatures, pitch intervals, attribute controls, program
changes, bar-end or numbered-bar tokens, trailing bars or trained (BPE) vocabulary.
:func:`supports` says whether a tokenizer qualifies; :func:`fast_remi_ids` returns ``None`` for an
unsupported tokenizer or a score it cannot reproduce exactly (the caller then uses miditok).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import symusic

_NO_ID = -1
_TS, _TEMPO, _NOTE = 0, 1, 2   # event kinds, in miditok's pre-sort order


@dataclass
class _Tables:
    """Token id lookups for one tokenizer (``-1`` where the vocabulary has no such token)."""

    bar_id: int
    pitch: np.ndarray          # (128,) Pitch_<p>
    pitch_drum: np.ndarray     # (128,) PitchDrum_<p> (or Pitch_<p> without PitchDrum tokens)
    velocity: np.ndarray       # (128,) Velocity_<v>
    program: np.ndarray        # (129,) Program_<p> at index p + 1 (drums are -1)
    position: np.ndarray       # (n_positions,) Position_<i>
    duration: dict[int, np.ndarray]  # ticks per beat -> (max ticks + 1,) Duration_<a.b.c>
    time_sig: dict[tuple[int, int], int]
    tempo: dict[int, int]      # microseconds per quarter -> Tempo_<qpm> id (filled lazily)


def supports(tokenizer) -> bool:
    """Whether :func:`fast_remi_ids` can encode with ``tokenizer`` (a miditok tokenizer)."""
    from miditok import REMI

    if type(tokenizer) is not REMI:
        return False
    c = tokenizer.config
    params = c.additional_params
    all_programs = set(range(-1, 128))
    return bool(
        c.use_programs and c.one_token_stream_for_programs and not c.program_changes
        and c.use_tempos and c.use_time_signatures and c.use_velocities
        and set(c.use_note_duration_programs) >= all_programs
        and not (c.use_rests or c.use_chords or c.use_key_signatures or c.use_sustain_pedals
                 or c.use_pitch_bends or c.use_control_changes or c.use_pitch_intervals)
        and not tokenizer.attribute_controls and not tokenizer.is_trained
        and not getattr(tokenizer, "_note_on_off", False)
        and params.get("max_bar_embedding") is None and not params.get("use_bar_end_tokens")
        and not params.get("add_trailing_bars")
    )


def _lookup(vocab: dict[str, int], prefix: str, values) -> np.ndarray:
    return np.array([vocab.get(f"{prefix}_{v}", _NO_ID) for v in values], dtype=np.int64)


def _tables(tokenizer) -> _Tables:
    """The lookup tables of ``tokenizer``, built on first use and kept on the tokenizer object."""
    cached = tokenizer.__dict__.get("_ostinato_fast_remi")
    if cached is not None:
        return cached
    vocab = tokenizer.vocab
    n_positions = sum(1 for token in vocab if token.startswith("Position_"))
    duration = {}
    for tpb, ticks_to_token in tokenizer._tpb_ticks_to_tokens.items():
        table = np.full(max(ticks_to_token) + 1, _NO_ID, dtype=np.int64)
        for ticks, value in ticks_to_token.items():
            table[ticks] = vocab.get(f"Duration_{value}", _NO_ID)
        duration[int(tpb)] = table
    drum_prefix = "PitchDrum" if tokenizer.config.use_pitchdrum_tokens else "Pitch"
    tables = _Tables(
        bar_id=vocab["Bar_None"],
        pitch=_lookup(vocab, "Pitch", range(128)),
        pitch_drum=_lookup(vocab, drum_prefix, range(128)),
        velocity=_lookup(vocab, "Velocity", range(128)),
        program=_lookup(vocab, "Program", range(-1, 128)),
        position=_lookup(vocab, "Position", range(n_positions)),
        duration=duration,
        time_sig={ts: vocab[f"TimeSig_{ts[0]}/{ts[1]}"] for ts in tokenizer.time_signatures
                  if f"TimeSig_{ts[0]}/{ts[1]}" in vocab},
        tempo={},
    )
    tokenizer.__dict__["_ostinato_fast_remi"] = tables
    return tables


def _tempo_ids(tables: _Tables, vocab: dict[str, int], tempos) -> np.ndarray | None:
    """Ids of ``Tempo_<round(qpm, 2)>`` for a tempo list, as miditok's ``_create_global_events`` names them."""
    mspq = tempos.numpy()["mspq"] if len(tempos) else np.zeros(0, dtype=np.int32)
    ids = np.empty(len(mspq), dtype=np.int64)
    for value in np.unique(mspq).tolist():
        if value not in tables.tempo:
            qpm = symusic.Tempo.from_numpy(time=np.zeros(1, np.int32), mspq=np.array([value], np.int32))[0].tempo
            tables.tempo[value] = vocab.get(f"Tempo_{round(qpm, 2)}", _NO_ID)
        ids[mspq == value] = tables.tempo[value]
    return None if (ids == _NO_ID).any() else ids


def fast_remi_ids(tokenizer, score: symusic.Score) -> list[int] | None:
    """``tokenizer.encode(score).ids`` for a supported miditok REMI tokenizer, or ``None``.

    Args:
        tokenizer: a ``miditok.REMI`` (see :func:`supports`).
        score: the piece, a tick-based ``symusic.Score`` (not modified).

    Returns:
        the token ids (miditok's vocabulary), or ``None`` when the tokenizer or the score has
        something this encoder does not reproduce exactly (then use miditok itself).
    """
    if not isinstance(score, symusic.core.ScoreTick) or not supports(tokenizer):
        return None
    from miditok.utils import compute_ticks_per_bar, compute_ticks_per_beat, get_score_ticks_per_beat

    tables = _tables(tokenizer)
    vocab = tokenizer.vocab
    score = tokenizer.preprocess_score(score)
    tpq = score.ticks_per_quarter
    max_pos_per_beat = tokenizer.config.max_num_pos_per_beat

    # ---- global events: time signatures (sections of the bar grid) and tempos
    ts_soa = score.time_signatures.numpy()
    ts_time = ts_soa["time"].astype(np.int64)
    ts_num, ts_den = ts_soa["numerator"].tolist(), ts_soa["denominator"].tolist()
    if len(ts_time) == 0 or ts_time[0] != 0 or (np.diff(ts_time) <= 0).any():
        return None
    ts_tok = np.array([tables.time_sig.get((n, d), _NO_ID) for n, d in zip(ts_num, ts_den, strict=True)],
                      dtype=np.int64)
    if (ts_tok == _NO_ID).any():
        return None
    ticks_per_bar = np.array([compute_ticks_per_bar(symusic.TimeSignature(0, n, d), tpq)
                              for n, d in zip(ts_num, ts_den, strict=True)], dtype=np.int64)
    ticks_per_pos = np.array([compute_ticks_per_beat(d, tpq) // max_pos_per_beat for d in ts_den], dtype=np.int64)
    if (ticks_per_bar <= 0).any() or (ticks_per_pos <= 0).any():
        return None
    # each time signature must start a bar of the previous one (miditok's preprocessing delays them so)
    span = np.diff(ts_time)
    if (span % ticks_per_bar[:-1]).any():
        return None
    bar_at_ts = np.concatenate([[0], np.cumsum(span // ticks_per_bar[:-1])])
    tempo_time = score.tempos.numpy()["time"].astype(np.int64) if len(score.tempos) else np.zeros(0, np.int64)
    tempo_tok = _tempo_ids(tables, vocab, score.tempos)
    if tempo_tok is None:
        return None

    # ---- notes: Program, Pitch/PitchDrum, Velocity, Duration per note, tracks in order
    tpb_sections = get_score_ticks_per_beat(score)
    starts, note_tokens = [], []
    for track in score.tracks:
        if len(track.notes) == 0:
            continue
        soa = track.notes.numpy()
        start = soa["time"].astype(np.int64)
        duration = soa["duration"].astype(np.int64)
        pitch = (tables.pitch_drum if track.is_drum else tables.pitch)[soa["pitch"].astype(np.int64)]
        velocity = tables.velocity[soa["velocity"].astype(np.int64)]
        program = tables.program[(-1 if track.is_drum else int(track.program)) + 1]
        section = np.searchsorted(tpb_sections[:, 0], start, side="right")
        if (section >= len(tpb_sections)).any() or (duration < 0).any():
            return None
        dur_tok = np.full(len(start), _NO_ID, dtype=np.int64)
        for s in np.unique(section).tolist():
            table = tables.duration.get(int(tpb_sections[s, 1]))
            if table is None:
                return None
            here = section == s
            d = duration[here]
            dur_tok[here] = np.where(d < len(table), table[np.minimum(d, len(table) - 1)], _NO_ID)
        tokens = np.stack([np.full(len(start), program), pitch, velocity, dur_tok], axis=1)
        if (tokens == _NO_ID).any():
            return None
        starts.append(start)
        note_tokens.append(tokens)
    note_start = np.concatenate(starts) if starts else np.zeros(0, np.int64)
    note_tok = np.concatenate(note_tokens) if note_tokens else np.zeros((0, 4), np.int64)

    # ---- miditok's order: a stable sort by tick of [time sigs, tempos, notes]
    kind = np.concatenate([np.full(len(ts_time), _TS), np.full(len(tempo_time), _TEMPO),
                           np.full(len(note_start), _NOTE)])
    index = np.concatenate([np.arange(len(ts_time)), np.arange(len(tempo_time)), np.arange(len(note_start))])
    time = np.concatenate([ts_time, tempo_time, note_start])
    order = np.argsort(time, kind="stable")
    kind, index, time = kind[order], index[order], time[order]
    n = len(time)
    if kind[0] != _TS or time[0] != 0:
        return None

    # ---- REMI._add_time_events, per array
    is_ts = kind == _TS
    # the section in force when an event is reached (a time signature acts after its own bars)
    section = np.maximum(np.cumsum(is_ts) - 1 - is_ts, 0)
    section[0] = 0
    new_time = np.ones(n, dtype=bool)
    new_time[1:] = (time[1:] != time[:-1]) | is_ts[:-1]
    sec_time, sec_bar, sec_tpb = ts_time[section], bar_at_ts[section], ticks_per_bar[section]
    target_bar = sec_bar + (time - sec_time) // sec_tpb
    if (np.diff(target_bar) < 0).any():
        return None
    n_bars = np.diff(np.concatenate([[-1], target_bar]))
    n_bars[~new_time] = 0
    bar_tick = sec_time + (target_bar - sec_bar) * sec_tpb
    has_position = new_time & ~is_ts
    position = (time - bar_tick) // ticks_per_pos[section]
    if has_position.any():
        pos = position[has_position]
        if pos.min() < 0 or pos.max() >= len(tables.position):
            return None
    # tokens per event: n bars each with its TimeSig (the last bar before a time signature has none),
    # a Position, then the event's own tokens
    bar_block = 2 * n_bars - (is_ts & (n_bars > 0))
    own = np.where(kind == _NOTE, 4, 1)
    length = bar_block + has_position + own
    offset = np.concatenate([[0], np.cumsum(length)[:-1]])
    out = np.empty(int(length.sum()), dtype=np.int64)

    # bar blocks: Bar, TimeSig, Bar, TimeSig, ... (TimeSig of the section in force)
    with_bars = np.flatnonzero(bar_block > 0)
    if len(with_bars):
        sizes = bar_block[with_bars]
        first = np.repeat(offset[with_bars], sizes)
        within = np.arange(int(sizes.sum())) - np.repeat(np.cumsum(sizes) - sizes, sizes)
        out[first + within] = np.where(within % 2 == 0, tables.bar_id,
                                       np.repeat(ts_tok[section[with_bars]], sizes))
    at = offset + bar_block
    out[at[has_position]] = tables.position[position[has_position]]
    at = at + has_position
    ts_events, tempo_events, note_events = (np.flatnonzero(kind == k) for k in (_TS, _TEMPO, _NOTE))
    out[at[ts_events]] = ts_tok[index[ts_events]]
    out[at[tempo_events]] = tempo_tok[index[tempo_events]]
    if len(note_events):
        out[at[note_events, None] + np.arange(4)] = note_tok[index[note_events]]
    return out.tolist()
