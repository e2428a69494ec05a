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
    vocab: dict[str, int]
    ticks_per_beat: object     # miditok.utils.compute_ticks_per_beat
    score_ticks_per_beat: object   # miditok.utils.get_score_ticks_per_beat


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


def _tables(tokenizer) -> _Tables | None:
    """The lookup tables of ``tokenizer`` (``None`` if unsupported), built once and kept on the tokenizer.

    They are rebuilt if the vocabulary grows or is trained; the configuration is otherwise taken
    as fixed once the tokenizer has encoded (miditok builds its vocabulary from it once, too).
    """
    fingerprint = (len(tokenizer.vocab), tokenizer.is_trained)
    cached = tokenizer.__dict__.get("_ostinato_fast_remi")
    if cached is not None and cached[0] == fingerprint:
        return cached[1]
    if not supports(tokenizer):
        tokenizer.__dict__["_ostinato_fast_remi"] = (fingerprint, None)
        return None
    from miditok.utils import compute_ticks_per_beat, get_score_ticks_per_beat

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
        vocab=vocab,
        ticks_per_beat=compute_ticks_per_beat,
        score_ticks_per_beat=get_score_ticks_per_beat,
    )
    tokenizer.__dict__["_ostinato_fast_remi"] = (fingerprint, tables)
    return tables


def _tempo_id(tables: _Tables, mspq: int) -> int:
    """The id of ``Tempo_<round(qpm, 2)>``, as miditok's ``_create_global_events`` names a tempo."""
    found = tables.tempo.get(mspq)
    if found is None:
        qpm = symusic.Tempo.from_numpy(time=np.zeros(1, np.int32), mspq=np.array([mspq], np.int32))[0].tempo
        found = tables.tempo[mspq] = tables.vocab.get(f"Tempo_{round(qpm, 2)}", _NO_ID)
    return found


def _note_tokens(tables: _Tables, score: symusic.Score) -> tuple[np.ndarray, np.ndarray] | None:
    """Onset ticks ``[n]`` and ids ``[n, 4]`` (Program, Pitch, Velocity, Duration) of the notes, in miditok's order."""
    sections = tables.score_ticks_per_beat(score)   # (end tick, ticks per beat) per section
    starts, rows = [], []
    for track in score.tracks:
        soa = track.notes.numpy()
        start = soa["time"]
        if len(start) == 0:
            continue
        duration = soa["duration"]
        tokens = np.empty((len(start), 4), dtype=np.int64)
        tokens[:, 0] = tables.program[(-1 if track.is_drum else int(track.program)) + 1]
        tokens[:, 1] = (tables.pitch_drum if track.is_drum else tables.pitch)[soa["pitch"]]
        tokens[:, 2] = tables.velocity[soa["velocity"]]
        # miditok looks each note's Duration up in the section of its onset
        section = 0 if len(sections) == 1 else np.searchsorted(sections[:, 0], start, side="right")
        for s in ([0] if len(sections) == 1 else np.unique(section).tolist()):
            if s >= len(sections):
                return None
            table = tables.duration.get(int(sections[s, 1]))
            here = section == s if len(sections) > 1 else slice(None)
            d = duration[here]
            if table is None or d.min() < 0 or d.max() >= len(table):
                return None   # miditok would fail on this note (KeyError)
            tokens[here, 3] = table[d]
        starts.append(start)
        rows.append(tokens)
    if not starts:
        return np.zeros(0, np.int64), np.zeros((0, 4), np.int64)
    start = np.concatenate(starts).astype(np.int64) if len(starts) > 1 else starts[0].astype(np.int64)
    tokens = np.concatenate(rows) if len(rows) > 1 else rows[0]
    order = np.argsort(start, kind="stable")
    return start[order], tokens[order]


def fast_remi_ids(tokenizer, score: symusic.Score) -> list[int] | None:
    """``tokenizer.encode(score).ids`` for a supported miditok REMI tokenizer, or ``None``.

    Args:
        tokenizer: a ``miditok.REMI`` (see :func:`supports`).
        score: the piece, a tick-based ``symusic.Score`` (not modified).

    Returns:
        the token ids (miditok's vocabulary), or ``None`` when the tokenizer or the score has
        something this encoder does not reproduce exactly (then use miditok itself).
    """
    if not isinstance(score, symusic.core.ScoreTick):
        return None
    tables = _tables(tokenizer)
    if tables is None:
        return None
    score = tokenizer.preprocess_score(score)
    tpq = score.ticks_per_quarter
    max_pos_per_beat = tokenizer.config.max_num_pos_per_beat

    # ---- time-signature sections of the bar grid (few: plain Python)
    sec_time, sec_bar, sec_tpbar, sec_tppos, sec_tok = [], [], [], [], []
    for ts in score.time_signatures:
        tick, num, den = ts.time, ts.numerator, ts.denominator
        tok = tables.time_sig.get((num, den))
        ticks_per_beat = tables.ticks_per_beat(den, tpq)
        ticks_per_bar, ticks_per_pos = int(ticks_per_beat * num), ticks_per_beat // max_pos_per_beat
        if tok is None or ticks_per_bar <= 0 or ticks_per_pos <= 0:
            return None
        if sec_time:   # each must start a bar of the previous one (miditok's preprocessing delays them so)
            span = tick - sec_time[-1]
            if span <= 0 or span % sec_tpbar[-1]:
                return None
            bar = sec_bar[-1] + span // sec_tpbar[-1]
        elif tick != 0:
            return None
        else:
            bar = 0
        sec_time.append(tick)
        sec_bar.append(bar)
        sec_tpbar.append(ticks_per_bar)
        sec_tppos.append(ticks_per_pos)
        sec_tok.append(tok)
    if not sec_time:
        return None

    # ---- global events, stably sorted by tick as miditok sorts them: time signatures, then tempos
    glob = [(t, _TS, tok) for t, tok in zip(sec_time, sec_tok, strict=True)]
    glob += [(tempo.time, _TEMPO, _tempo_id(tables, tempo.mspq)) for tempo in score.tempos]
    glob.sort(key=lambda g: g[0])
    if any(g[2] == _NO_ID for g in glob) or glob[0][:2] != (0, _TS):
        return None

    # ---- notes, then all events in miditok's order (globals before notes at the same tick)
    found = _note_tokens(tables, score)
    if found is None:
        return None
    start, note_tok = found
    if note_tok.size and note_tok.min() == _NO_ID:
        return None
    n_notes = len(start)
    g_time = np.array([g[0] for g in glob], dtype=np.int64)
    g_kind = np.array([g[1] for g in glob], dtype=np.int8)
    at = np.searchsorted(start, g_time, side="left")
    time = np.insert(start, at, g_time)
    kind = np.insert(np.full(n_notes, _NOTE, dtype=np.int8), at, g_kind)
    glob_pos = at + np.arange(len(glob))

    # ---- REMI._add_time_events, per array
    is_ts = kind == _TS
    if len(sec_time) == 1:
        s_time, s_bar, s_tpbar, s_tppos, s_tok = sec_time[0], 0, sec_tpbar[0], sec_tppos[0], sec_tok[0]
    else:   # the section in force when an event is reached (a time signature acts after its own bars)
        section = np.cumsum(is_ts) - 1 - is_ts
        section[0] = 0
        s_time, s_bar, s_tpbar, s_tppos, s_tok = (np.array(v, dtype=np.int64)[section]
                                                  for v in (sec_time, sec_bar, sec_tpbar, sec_tppos, sec_tok))
    new_time = np.empty(len(time), dtype=bool)
    new_time[0] = True
    new_time[1:] = (time[1:] != time[:-1]) | is_ts[:-1]
    target_bar = s_bar + (time - s_time) // s_tpbar
    if (target_bar[1:] < target_bar[:-1]).any():
        return None
    n_bars = target_bar.copy()
    n_bars[1:] -= target_bar[:-1]
    n_bars[0] += 1   # miditok starts at bar -1
    position = (time - (s_time + (target_bar - s_bar) * s_tpbar)) // s_tppos
    if position.max() >= len(tables.position):
        return None
    has_position = new_time & ~is_ts
    # tokens per event: n bars each with its TimeSig (the last bar before a time signature has none),
    # a Position, then the event's own tokens
    bar_block = 2 * n_bars - (is_ts & (n_bars > 0))
    length = bar_block + has_position + 1
    length[kind == _NOTE] += 3
    offset = np.cumsum(length) - length
    out = np.empty(int(offset[-1] + length[-1]), dtype=np.int64)

    # bar blocks: Bar, TimeSig, Bar, TimeSig, ... (TimeSig of the section in force)
    with_bars = np.flatnonzero(bar_block)
    sizes = bar_block[with_bars]
    first = np.repeat(offset[with_bars], sizes)
    within = np.arange(len(first)) - np.repeat(np.cumsum(sizes) - sizes, sizes)
    ts_ids = s_tok if len(sec_time) == 1 else np.repeat(s_tok[with_bars], sizes)
    out[first + within] = np.where(within % 2 == 0, tables.bar_id, ts_ids)
    own = offset + bar_block
    out[own[has_position]] = tables.position[position[has_position]]
    own += has_position
    out[own[glob_pos]] = [g[2] for g in glob]
    if n_notes:
        note_pos = np.flatnonzero(kind == _NOTE)
        out[own[note_pos, None] + np.arange(4)] = note_tok
    return out.tolist()
