"""Quality of composed MIDI pieces beside the reference corpus (issue 16): does it sound like its
corpus, and does it honour every control?

    python benchmarks/compose_quality.py --quick          # 3 pieces per setting
    python benchmarks/compose_quality.py -n 20            # seeds 0..19 (the issue's measure)

Pieces are composed with the shipped ``chorale-midi`` through the Python API (one piece per seed,
the CLI's sampling defaults), per setting:

* ``default``: no controls (the model samples style, key, meter, tempo and instruments);
* ``bach``: ``--style bach``, the rest free;
* ``key <K>``: six keys (three minor), ``--style bach --tempo 96 --instruments 40,41,42,43 --bars 16``
  (four parts, as a chorale has); ``trio``: the same with three (40,41,42) in D minor;
* ``bars 32`` / ``bars 64``: empty bars at those lengths (``--style bach``, the four strings).

The reference is six held-out Bach chorales (``music21:bach``, split ``test``). Printed per setting:
notes per bar, silent beats, exact duplicate notes (same track, tick, pitch), the largest onset
stack, notes outside their instrument's range (:data:`events.instruments.GM_RANGES`), the key
estimated by music21's key analysis (``symbolic.evaluate.estimate_key``, Aarden-Essen profiles) =
requested, a key signature present, tempo written = requested, empty bars, and the ``evaluate
samples`` inter-onset-interval and pitch-interval overlaps (``distribution_similarity``) with the reference.
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

KEYS = ("C major", "D minor", "G major", "A minor", "Eb major", "F# minor")
TEMPO_BPM = 96.0
TRIO = (40, 41, 42)
QUARTET = (40, 41, 42, 43)


def bar_ticks(table) -> int:
    ts = table.time_signatures[0] if table.time_signatures else None
    return int(table.ticks_per_quarter * (ts.bar_quarters if ts else 4))


def piece_metrics(table, *, bars: int | None = None) -> dict:
    """Per-piece measures (fractions as 0..1)."""
    from ostinato.events.instruments import instrument_range

    tpq = table.ticks_per_quarter
    n = len(table)
    bt = bar_ticks(table)
    end = int(table.offset_tick.max()) if n else 0
    n_bars = bars if bars is not None else max(1, -(-end // bt))
    # silent beats: quarter beats of [0, end) where nothing sounds
    n_beats = max(1, -(-min(end, n_bars * bt) // tpq)) if n else 1
    sounding = np.zeros(n_beats, dtype=bool)
    for on, off in zip(table.onset_tick, table.offset_tick, strict=True):
        a, b = int(on) // tpq, -(-int(off) // tpq)
        sounding[a:min(b, n_beats)] = True
    keys = list(zip(table.track.tolist(), table.onset_tick.tolist(), table.pitch.tolist(), strict=True))
    dups = len(keys) - len(set(keys))
    _, stack = np.unique(table.onset_tick, return_counts=True) if n else (None, np.array([0]))
    out_of_range = 0
    for prog, drum, pitch in zip(table.program.tolist(), table.is_drum.tolist(), table.pitch.tolist(), strict=True):
        r = instrument_range("drums" if drum else prog)
        out_of_range += not r.low <= pitch <= r.high
    bar_of = table.onset_tick // bt
    empty = sum(1 for b in range(n_bars) if not np.any(bar_of == b))
    return {"notes": n, "bars": n_bars, "notes_per_bar": n / n_bars, "silent": 1 - sounding.mean(),
            "dups": dups / max(n, 1), "stack": int(stack.max()), "out_of_range": out_of_range / max(n, 1),
            "empty_bars": empty, "keysig": bool(table.key_signatures),
            "tempo": table.tempos[0].qpm if table.tempos else None, "n_tempos": len(table.tempos)}


def reference_tables(n: int = 6) -> list:
    from ostinato.events.sources import iter_items

    tables = []
    for item in iter_items("music21:bach", split="test"):
        table = item.read()
        if len(table):
            tables.append(table)
        if len(tables) == n:
            break
    return tables


def compose_one(model, tokenizer, seed: int, temperature: float = 1.0, top_p: float = 0.95, **controls):
    from ostinato.symbolic.compose import compose
    from ostinato.symbolic.sample import SamplingConfig

    c = tokenizer.make_controls(**controls)
    sampling = SamplingConfig(temperature=temperature, top_p=top_p, max_tokens=model.config.n_positions, seed=seed)
    return compose(model, tokenizer, n=1, sampling=sampling, controls=c)[0].table


def summarise(name: str, tables: list, metrics: list[dict], reference: list, *, key: str | None = None,
              tempo: float | None = None) -> dict:
    from ostinato.symbolic.evaluate import distribution_similarity, estimate_key

    row = {"setting": name, "n": len(metrics)}
    for field in ("notes_per_bar", "silent", "dups", "out_of_range"):
        row[field] = float(np.mean([m[field] for m in metrics]))
    row["stack"] = max(m["stack"] for m in metrics)
    row["empty_bars"] = float(np.mean([m["empty_bars"] for m in metrics]))
    row["keysig"] = float(np.mean([m["keysig"] for m in metrics]))
    if key is not None:
        row["key_ok"] = float(np.mean([estimate_key(t) == key for t in tables]))
    if tempo is not None:
        row["tempo_ok"] = float(np.mean([m["tempo"] is not None and m["tempo"] == tempo and m["n_tempos"] == 1
                                         for m in metrics]))
        row["tempos"] = sorted({round(m["tempo"], 2) for m in metrics if m["tempo"] is not None})
    if reference is not None:
        sim = distribution_similarity(tables, reference)
        row["ioi"] = sim["ioi"]["overlap"]
        row["interval"] = sim["interval"]["overlap"]
    return row


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:.3f}" if abs(value) < 10 else f"{value:.1f}"
    if isinstance(value, list):
        return ",".join(str(v) for v in value[:4]) + ("..." if len(value) > 4 else "")
    return str(value)


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("-n", type=int, default=20, help="pieces per setting (seeds 0..n-1)")
    p.add_argument("--quick", action="store_true", help="3 pieces per setting, 3 keys, no --bars 64")
    p.add_argument("--model", default="chorale-midi")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=0.95)
    args = p.parse_args(argv)
    n = 3 if args.quick else args.n
    keys = KEYS[:3] if args.quick else KEYS

    import torch

    from ostinato.symbolic.model import load_model_folder
    from ostinato.symbolic.shipped import resolve_model

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    model, tokenizer, _ = load_model_folder(resolve_model(args.model))
    reference = reference_tables()
    rows = [summarise("Bach chorales (6 held-out)", reference, [piece_metrics(t) for t in reference], None)]
    settings = [("default", {}, None, None, None)]
    settings += [("bach", dict(style="bach"), None, None, None)]
    settings += [(f"key {k}", dict(style="bach", key=k, tempo_bpm=TEMPO_BPM, instruments=QUARTET, bars=16), k,
                  TEMPO_BPM, 16) for k in keys]
    settings += [("trio " + keys[1], dict(style="bach", key=keys[1], tempo_bpm=TEMPO_BPM, instruments=TRIO, bars=16),
                  keys[1], TEMPO_BPM, 16)]
    settings += [("bars 32", dict(style="bach", tempo_bpm=TEMPO_BPM, instruments=QUARTET, bars=32), None, TEMPO_BPM,
                  32)]
    if not args.quick:
        settings += [("bars 64", dict(style="bach", tempo_bpm=TEMPO_BPM, instruments=QUARTET, bars=64), None,
                      TEMPO_BPM, 64)]
    for name, controls, key, tempo, bars in settings:
        start = time.perf_counter()
        tables, metrics = [], []
        for seed in range(n):
            try:
                table = compose_one(model, tokenizer, seed, args.temperature, args.top_p, **controls)
            except Exception as exc:  # a failure is a result here
                print(f"{name} seed {seed}: FAILED {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            tables.append(table)
            metrics.append(piece_metrics(table, bars=bars))
        if not metrics:
            rows.append({"setting": name, "n": 0})
            continue
        rows.append(summarise(name, tables, metrics, reference, key=key, tempo=tempo))
        print(f"{name}: {len(tables)} pieces in {time.perf_counter() - start:.0f} s", file=sys.stderr)
    columns = ("setting", "n", "notes_per_bar", "silent", "dups", "stack", "out_of_range", "key_ok", "keysig",
               "tempo_ok", "tempos", "empty_bars", "ioi", "interval")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(fmt(row.get(c)) for c in columns) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
