"""Quality of composed MIDI pieces beside the reference corpus (issue 16): does it sound like its
corpus, and does it honour every control?

    python benchmarks/compose_quality.py --quick          # 3 pieces per setting
    python benchmarks/compose_quality.py -n 20            # seeds 0..19 (the issue's measure)
    python benchmarks/compose_quality.py -n 8 --only key --save pieces/   # some settings, pieces kept

Pieces are composed with the shipped ``chorale-midi`` through the Python API (one piece per seed,
the CLI's sampling defaults), per setting:

* ``default``: what ``ostinato compose -o piece.mid`` writes: the CLI's 16 bars and the model folder's
  own defaults (``compose.json``: chorale-midi's is ``--style bach --instruments 73,40,60,42``); the model
  samples key, meter and tempo;
* ``free``: no controls at all but 16 bars (the Python API's ``compose`` with nothing set: the model
  samples style and instruments too); what the model does unguided, not what the CLI writes;
* ``key <K>``: six keys (three minor), ``--style bach --tempo 96 --instruments 73,40,60,42 --bars 16``:
  four parts, as a chorale has, on the ensemble the model learned Bach's chorales with (flute, violin,
  horn, cello; ``events.instruments.ENSEMBLES["mixed"]``); ``trio``: its first three parts in D minor;
* ``bars 32`` / ``bars 64``: empty bars at those lengths (``--style bach``, the four parts);
* ``strings``: ``--style bach`` on a string quartet with contrabass (40,41,42,43), an ensemble no
  training piece had: the model plays what it learned for strings (Haydn's and Beethoven's quartets).

The reference is six held-out Bach chorales (``music21:bach``, split ``test``) for every measure but
one: notes per bar are also given beside the held-out pieces of the style each piece was composed in
(``music21:polyphonic``, split ``test``: ``npb_ratio`` is the mean of a piece's notes per bar over its
style's, 1.0 = as dense as its style), which is what the ``default`` row, whose model picks the style,
is measured against. Printed per setting: notes per bar, silent beats, exact duplicate notes
(same track, tick, pitch), the largest onset stack, notes outside their instrument's range
(:data:`events.instruments.GM_RANGES`), the key estimated by music21's key analysis
(``symbolic.evaluate.estimate_key``, Aarden-Essen profiles) = requested, a key signature present,
tempo written = requested, empty bars, and the ``evaluate samples`` inter-onset-interval and
pitch-interval overlaps (``distribution_similarity``) with the reference.
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
CHORALE = (73, 40, 60, 42)      # the "mixed" ensemble of events.instruments.ENSEMBLES: flute, violin, horn, cello
TRIO = CHORALE[:3]
STRINGS = (40, 41, 42, 43)
DEFAULT_BARS = 16                # the CLI's length when neither --bars nor --seconds is given


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


def style_references() -> dict[str, float]:
    """Notes per bar of the held-out pieces of each collection of ``music21:polyphonic`` (the Style: values)."""
    from ostinato.events.sources import iter_items

    found: dict[str, list[float]] = {}
    for item in iter_items("music21:polyphonic", split="test"):
        table = item.read()
        if len(table):
            found.setdefault(item.key.split("/", 1)[0], []).append(len(table) / piece_metrics(table)["bars"])
    return {style: float(np.mean(values)) for style, values in found.items()}


def compose_one(model, tokenizer, seed: int, temperature: float = 1.0, top_p: float = 0.95, **controls):
    """``(table, style)``: one piece and the Style: value it was composed in (asked or sampled)."""
    from ostinato.symbolic.compose import compose
    from ostinato.symbolic.sample import SamplingConfig

    c = tokenizer.make_controls(**controls)
    sampling = SamplingConfig(temperature=temperature, top_p=top_p, max_tokens=model.config.n_positions, seed=seed)
    piece = compose(model, tokenizer, n=1, sampling=sampling, controls=c)[0]
    style = tokenizer.vocab[piece.ids[1]].removeprefix("Style:") if len(piece.ids) > 1 else None
    return piece.table, style


def summarise(name: str, tables: list, metrics: list[dict], reference: list, *, key: str | None = None,
              tempo: float | None = None) -> dict:
    from ostinato.symbolic.evaluate import distribution_similarity, estimate_key

    row = {"setting": name, "n": len(metrics)}
    for field in ("notes_per_bar", "silent", "dups", "out_of_range"):
        row[field] = float(np.mean([m[field] for m in metrics]))
    ratios = [m["npb_ratio"] for m in metrics if m.get("npb_ratio") is not None]
    row["npb_ratio"] = float(np.mean(ratios)) if ratios else None
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
    p.add_argument("--defaults-from", metavar="NAME|DIR",
                   help="the model whose compose.json the `default` row uses (default: --model's own; a training "
                        "run's folder has none, so give the shipped model it is to replace)")
    p.add_argument("--temperature", type=float, default=1.0)
    p.add_argument("--top-p", type=float, default=0.95)
    p.add_argument("--only", action="append", metavar="SETTING",
                   help="only the settings whose name starts with this (repeatable: --only key --only trio)")
    p.add_argument("--save", metavar="DIR", help="also write every piece as DIR/<setting>-<seed>.mid")
    args = p.parse_args(argv)
    n = 3 if args.quick else args.n
    keys = KEYS[:3] if args.quick else KEYS

    import torch

    from ostinato.events import write
    from ostinato.symbolic.model import load_model_folder
    from ostinato.symbolic.shipped import compose_defaults, resolve_model

    torch.set_num_threads(max(1, min(2, torch.get_num_threads())))
    model, tokenizer, _ = load_model_folder(resolve_model(args.model))
    reference = reference_tables()
    styles = style_references()
    rows = [summarise("Bach chorales (6 held-out)", reference, [piece_metrics(t) for t in reference], None)]
    four = dict(style="bach", tempo_bpm=TEMPO_BPM, instruments=CHORALE)
    defaults = compose_defaults(resolve_model(args.defaults_from or args.model))   # what a plain compose adds
    if not defaults:
        print(f"default: {args.model} has no compose.json: its `default` row leaves style and instruments to the "
              f"model (--defaults-from chorale-midi composes it as the shipped model's)", flush=True)
    settings = [("default", dict(defaults, bars=DEFAULT_BARS), None, None, DEFAULT_BARS)]
    settings += [("free", dict(bars=DEFAULT_BARS), None, None, DEFAULT_BARS)]
    settings += [(f"key {k}", dict(four, key=k, bars=16), k, TEMPO_BPM, 16) for k in keys]
    settings += [("trio " + keys[1], dict(four, key=keys[1], instruments=TRIO, bars=16), keys[1], TEMPO_BPM, 16)]
    settings += [("bars 32", dict(four, bars=32), None, TEMPO_BPM, 32)]
    if not args.quick:
        settings += [("bars 64", dict(four, bars=64), None, TEMPO_BPM, 64)]
    settings += [("strings", dict(four, instruments=STRINGS, bars=16), None, TEMPO_BPM, 16)]
    if args.only:
        settings = [s for s in settings if s[0].startswith(tuple(args.only))]
    for name, controls, key, tempo, bars in settings:
        start = time.perf_counter()
        tables, metrics = [], []
        for seed in range(n):
            try:
                table, style = compose_one(model, tokenizer, seed, args.temperature, args.top_p, **controls)
            except Exception as exc:  # a failure is a result here
                print(f"{name} seed {seed}: FAILED {type(exc).__name__}: {exc}", file=sys.stderr)
                continue
            tables.append(table)
            if args.save:
                Path(args.save).mkdir(parents=True, exist_ok=True)
                write(table, Path(args.save) / f"{name.replace(' ', '-')}-{seed}.mid")
            metrics.append(piece_metrics(table, bars=bars))
            own = styles.get(style)
            metrics[-1]["npb_ratio"] = metrics[-1]["notes_per_bar"] / own if own else None
            metrics[-1]["style"] = style
        if not metrics:
            rows.append({"setting": name, "n": 0})
            continue
        rows.append(summarise(name, tables, metrics, reference, key=key, tempo=tempo))
        print(f"{name}: {len(tables)} pieces in {time.perf_counter() - start:.0f} s "
              f"(styles: {', '.join(sorted({str(m['style']) for m in metrics}))})", file=sys.stderr)
    print("held-out notes per bar by style: " + ", ".join(f"{k} {v:.1f}" for k, v in sorted(styles.items())))
    columns = ("setting", "n", "notes_per_bar", "npb_ratio", "silent", "dups", "stack", "out_of_range", "key_ok",
               "keysig", "tempo_ok", "tempos", "empty_bars", "ioi", "interval")
    print("| " + " | ".join(columns) + " |")
    print("|" + "---|" * len(columns))
    for row in rows:
        print("| " + " | ".join(fmt(row.get(c)) for c in columns) + " |")
    return 0


if __name__ == "__main__":
    sys.exit(main())
