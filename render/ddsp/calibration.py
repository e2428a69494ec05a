"""Level calibration of a DDSP model against its reference engine (ITU-R BS.1770 loudness, pyloudnorm).

A trained model's level is off from its reference by a few dB, by more for some instruments
than others, and it may not have learned how loudness follows velocity (the shipped model
trained on chorales of one velocity is deaf to it). :func:`velocity_exponents` compares single
notes at several velocities in both engines and gives, per instrument, the exponent of the velocity
gain the model lacks. :func:`calibrate` then measures, on pieces like the training data, the K-weighted power
(BS.1770's frequency weighting, ungated) of each trained instrument's part in both engines; the
model's part is rendered inside the whole piece with every other instrument muted, so it is
exactly that part's contribution to the mix. The ratios give ``instrument_gain_db`` per
instrument (clipped to ±``MAX_GAIN_DB``; a trained instrument the pieces do not play gets the
median of the measured pitched instruments, or of the drum keys); ``output_gain_db`` then
matches the mean integrated loudness of the whole pieces.
Both are config values (not trained weights): see :class:`render.ddsp.config.DDSPConfig`.
"""

from __future__ import annotations

import dataclasses

import numpy as np

from ..instruments import DRUM_OFFSET, N_INSTRUMENTS

VELOCITIES = (32, 48, 64, 80, 96, 112, 127)

MAX_GAIN_DB = 18.0  # a part the model renders more than this far off is a training problem, not a level


def k_weighted_power(audio: np.ndarray, sample_rate_hz: int) -> float:
    """Mean square of ``audio`` (``[n_channels, n]``) after BS.1770's K-weighting, summed over channels."""
    import pyloudnorm

    meter = pyloudnorm.Meter(sample_rate_hz)
    total = 0.0
    for channel in np.atleast_2d(audio).astype(np.float64):
        for stage in meter._filters.values():  # BS.1770 high shelf, then high pass
            channel = stage.apply_filter(channel)
        total += float(np.mean(channel**2))
    return total


def integrated_loudness(audio: np.ndarray, sample_rate_hz: int) -> float:
    """Integrated loudness (LUFS, ITU-R BS.1770-4 gating) of ``audio`` ``[n_channels, n]``."""
    import pyloudnorm

    return float(pyloudnorm.Meter(sample_rate_hz).integrated_loudness(np.atleast_2d(audio).T.astype(np.float64)))


def velocity_exponents(renderer, reference, sample_rate_hz: int = 22050) -> tuple[float, dict[int, float]]:
    """The exponents ``e`` of the velocity gain ``(v / 127) ** e`` that make ``renderer``'s level follow
    ``reference``'s across velocities: per trained instrument, the difference of the two slopes of level
    (dB) against ``20 log10(v / 127)``, one 0.8 s note per velocity, on the instrument's middle pitch
    (drums: their key), rounded to 0.01 and clipped to 0..4 (a gain adds the velocity response the network
    lacks and never takes one away: where the network's is steeper than the reference's, as the contrabass's
    is at its C4, a negative exponent would raise its soft notes by tens of dB); and their median (for
    instruments without their own). Returns ``(median, {instrument: exponent})``.
    """
    from ostinato.events import NoteTable

    x = 20 * np.log10(np.asarray(VELOCITIES) / 127.0)
    slopes: dict[int, float] = {}
    saved = renderer.config
    renderer.config = dataclasses.replace(saved, velocity_exponent=0.0, instrument_velocity_exponent={})
    try:
        for instrument in renderer.config.trained_instruments:
            drum = instrument >= DRUM_OFFSET
            pitch = instrument - DRUM_OFFSET if drum else 60
            levels = []
            for velocity in VELOCITIES:
                table = NoteTable.from_seconds([0.0], [0.8], [pitch], [velocity], 0 if drum else instrument, drum)
                mine = renderer.render_native(table, gain_db=0.0, stereo=False)
                theirs = reference.render(table, sample_rate_hz)
                levels.append((10 * np.log10(k_weighted_power(theirs, sample_rate_hz) + 1e-30),
                               10 * np.log10(k_weighted_power(mine, saved.sample_rate_hz) + 1e-30)))
            theirs_db, mine_db = np.asarray(levels).T
            slopes[instrument] = float(np.polyfit(x, theirs_db, 1)[0] - np.polyfit(x, mine_db, 1)[0])
    finally:
        renderer.config = saved
    median = round(float(np.clip(np.median(list(slopes.values())), 0.0, 4.0)), 2) if slopes else 0.0
    return median, {i: round(float(np.clip(e, 0.0, 4.0)), 2) for i, e in slopes.items()}


def calibrate(renderer, reference, tables, sample_rate_hz: int = 22050, *, exponent: float | None = None,
              exponents: dict[int, float] | None = None, log=None) -> tuple[dict[int, float], float]:
    """Per-instrument and overall gains that match ``renderer``'s level to ``reference``'s on ``tables``.

    Args:
        renderer: a :class:`render.ddsp.engine.DDSPRenderer` (its own gains are ignored).
        reference: any Renderer (the soundfont engine with the training SoundFont).
        tables: note tables like the training data.
        exponent, exponents: the velocity exponents the gains are measured with, for every instrument and per
            instrument (default: the renderer's config's).
    Returns:
        (instrument_gain_db: {instrument index: dB} for every trained instrument, output_gain_db: float),
        rounded to 0.01 dB.
    """
    saved = renderer.config
    renderer.config = dataclasses.replace(
        saved, velocity_exponent=saved.velocity_exponent if exponent is None else exponent,
        instrument_velocity_exponent=saved.instrument_velocity_exponent if exponents is None else exponents)
    try:
        return _calibrate(renderer, reference, tables, sample_rate_hz, log)
    finally:
        renderer.config = saved


def _calibrate(renderer, reference, tables, sample_rate_hz, log) -> tuple[dict[int, float], float]:
    ours: dict[int, float] = {}
    theirs: dict[int, float] = {}
    for table in tables:
        mapped = renderer.instruments(table)
        for instrument in np.unique(mapped).tolist():
            alone = np.zeros(N_INSTRUMENTS)
            alone[instrument] = 1.0
            mine = renderer.render_native(table, instrument_gain=alone, gain_db=0.0, stereo=False)
            ours[instrument] = ours.get(instrument, 0.0) + k_weighted_power(mine, renderer.config.sample_rate_hz)
            part = reference.render(table.select(mapped == instrument), sample_rate_hz)
            theirs[instrument] = theirs.get(instrument, 0.0) + k_weighted_power(part, sample_rate_hz)
        if log is not None:
            log(f"calibration: {len(ours)} instruments measured")
    gain_db: dict[int, float] = {}
    for instrument, power in sorted(ours.items()):
        if power > 0 and theirs[instrument] > 0:
            db = 10 * np.log10(theirs[instrument] / power)
            gain_db[instrument] = round(float(np.clip(db, -MAX_GAIN_DB, MAX_GAIN_DB)), 2)
    for drums in (False, True):
        measured = [db for i, db in gain_db.items() if (i >= DRUM_OFFSET) == drums]
        for instrument in renderer.config.trained_instruments:
            if (instrument >= DRUM_OFFSET) == drums and instrument not in gain_db and measured:
                gain_db[instrument] = round(float(np.median(measured)), 2)
    gain_db = dict(sorted(gain_db.items()))
    flat = np.ones(N_INSTRUMENTS)
    for instrument, db in gain_db.items():
        flat[instrument] = 10.0 ** (db / 20.0)
    differences = []
    for table in tables:
        mine = renderer.render_native(table, instrument_gain=flat, gain_db=0.0, stereo=False)
        theirs_mix = reference.render(table, sample_rate_hz)
        differences.append(integrated_loudness(theirs_mix, sample_rate_hz)
                           - integrated_loudness(mine, renderer.config.sample_rate_hz))
    return gain_db, round(float(np.mean(differences)), 2)
