"""The instrument index every neural engine embeds, and the fallback for instruments a model never heard.

An instrument is a GM program ``0..127``, or a drum: ``DRUM_OFFSET + key`` (the ddsp engine gives
each drum key its own voice; the wavenet engine plays a whole kit as ``DRUM_OFFSET``). A model
records the instruments it was trained on (its config's ``trained_instruments``); at render time
:func:`instrument_map` sends every other instrument to the nearest trained one.
"""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np

N_INSTRUMENTS = 256  # 128 GM programs, then 128 drum keys (DRUM_OFFSET + key)
DRUM_OFFSET = 128


def instrument_map(trained_instruments: Iterable[int]) -> np.ndarray:
    """[N_INSTRUMENTS] int64: each instrument -> one the model was trained on.

    A trained instrument plays itself. Another GM program plays the trained program of its GM
    family (programs 8k..8k+7) closest in number, else the trained program closest in number;
    a drum key plays the closest trained drum key. Without any trained instrument, identity.
    """
    trained = np.asarray(sorted({int(i) for i in trained_instruments}), dtype=np.int64)
    mapping = np.arange(N_INSTRUMENTS, dtype=np.int64)
    programs = trained[trained < DRUM_OFFSET]
    drums = trained[trained >= DRUM_OFFSET]
    for p in range(DRUM_OFFSET):
        if programs.size and p not in programs:
            family = programs[programs // 8 == p // 8]
            pool = family if family.size else programs
            mapping[p] = pool[np.argmin(np.abs(pool - p))]
    for k in range(DRUM_OFFSET, N_INSTRUMENTS):
        if drums.size and k not in drums:
            mapping[k] = drums[np.argmin(np.abs(drums - k))]
        elif not drums.size and programs.size:
            mapping[k] = k  # untrained drum embedding still renders (a percussive voice)
    return mapping
