"""Quality of infilling (issue 20): does the suffix help, are the seams smooth, is every fill valid and
every other bar exact?

    python benchmarks/infill_quality.py --abc-model runs/folk-fim --midi-model runs/chorale-fim
    python benchmarks/infill_quality.py --quick --abc-model ... --midi-model ...   # 16 samples per format

Models: folders trained with ``ostinato train symbolic --infill-share`` (or fine-tuned from the shipped
ones: ``--init-from folk-abc --infill-share 0.25``). A format whose model is not given is skipped. A model
folder with quote weights (``quote.json``, ``ostinato train quote``: :mod:`symbolic.quote`) is scored and
sampled with them, its middles quoting the prefix and suffix shown (without the suffix: the prefix);
``--no-quote``: the model alone.
Pieces: held-out pieces (DESIGN.md's split) of ``music21:essenFolksong`` (ABC) and ``music21:bach``
(MIDI, parts given an ensemble as chorale-midi was trained; their repeats played out if the model was trained
so, ``train symbolic --expand-repeats``, or ``--expand-repeats`` / ``--no-expand-repeats`` here); per piece a
span of 1-4 bars drawn with a fixed seed, and ``--per-piece`` samples of it (the CLI's sampling defaults,
top-p 0.95); the pieces are gone through again, with new spans, until there are enough samples (22 held-out chorales).

Printed per format:

* bits per token of the held-out middles (the spans sampled) with the suffix in view and without, on the
  same middle tokens, and how much lower the first is (the issue asks for at least 5 %), also by the span's
  length in bars (the longer the span, the less of the suffix fits the context): with, the prompt
  the sampler gives the model (``symbolic.infill.middle_bits``: the prefix's last bars and the suffix's
  first bars that fit the context around the span, in the fill-in-the-middle order); without, the same
  controls and prefix, left to right; and, to tell what the suffix brings from what the form costs, the
  infill prompt with the suffix left out; and the first tokens of the middle's bars after its first (REMI:
  their ``Bar``) apart from its other tokens (there the model must know whether the span goes on: the form's
  own cost). ``--all-spans``
  scores every span of 1-4 bars of each piece visited instead (far less noise than the ~50 spans sampled);
* boundary smoothness: the mean absolute interval (semitones) from the last note before the span into
  the fill's first note, and from the fill's last note into the first note after it, beside the same
  intervals in the original pieces (the top part for MIDI); the issue asks for within 25 %;
* validity of the filled span (ABC: the tune parses, every span bar as long as its meter by music21,
  header unchanged; MIDI: notes of the piece's programs inside the span, on the input's track of
  their program, within the part's range (its program's GM range, widened to the part's own notes),
  of the key's scale or the pitch classes the piece plays itself, every bar of the span with a note);
* exactness: every bar outside the span byte for byte (ABC, the normalised text) or note for note
  (MIDI: pitch, onset, offset, velocity, program, track), over all samples;
* how many fills are the input's own bars again (ABC: the span's text; MIDI: pitch, onset, offset and
  track of every note): what quoting costs in novelty where the span has a copy in view.
"""

from __future__ import annotations

import argparse
import itertools
import sys
import time
from fractions import Fraction
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))


def rounds(items: list, n_samples: int, stats: dict, max_rounds: int = 20):
    """The held-out ``items`` over and over (each round draws new spans) until ``n_samples`` samples are in."""
    for _ in range(max_rounds):
        for item in items:
            if stats["samples"] >= n_samples:
                return
            yield item


# ---------------------------------------------------------------------------- likelihood
def new_stats() -> dict:
    """What one format's run adds up: the likelihood (:func:`add_bits`), the samples, seams and checks."""
    return {"bits_fim": 0.0, "bits_plain": 0.0, "bits_empty": 0.0, "n_tokens": 0, "spans": 0, "by_span": {},
            "bar_fim": 0.0, "bar_plain": 0.0, "n_bar": 0,
            "samples": 0, "valid": 0, "exact": 0, "copied": 0, "seam_gen": [], "seam_ref": [], "failed": 0}


def add_bits(stats: dict, model, tokenizer, piece, span: tuple[int, int], style: str | None = None,
             quote=None) -> None:
    """Add the span's bits with and without the suffix (:func:`symbolic.infill.middle_token_bits`: the prompt
    the sampler gives the model) to ``stats``, the first token of each of the middle's bars after its first
    (REMI: its ``Bar``; ABC: what follows the bar line; where the model must know whether the span goes on)
    apart from the rest."""
    from ostinato.symbolic.infill import bar_cuts, middle_token_bits

    try:
        fim, (plain, empty), middle = middle_token_bits(model, tokenizer, piece, span, style=style,
                                                        without=("left-to-right", "no-suffix"), quote=quote)
    except ValueError:
        return
    # the first token of each bar after the first (REMI: its Bar; ABC: what follows the bar line), where the
    # model must know whether the span goes on or ends (<endfill>)
    bar_line = np.zeros(len(middle), dtype=bool)
    bar_line[[c for c in bar_cuts(tokenizer, middle)[1:-1] if c < len(middle)]] = True
    stats["bits_fim"] += float(fim.sum())
    stats["bits_plain"] += float(plain.sum())
    stats["bits_empty"] += float(empty.sum())
    stats["n_tokens"] += len(middle)
    stats["bar_fim"] += float(fim[bar_line].sum())
    stats["bar_plain"] += float(plain[bar_line].sum())
    stats["n_bar"] += int(bar_line.sum())
    stats["spans"] += 1
    per = stats["by_span"].setdefault(span[1] - span[0] + 1, [0.0, 0.0, 0])
    per[0] += float(fim.sum())
    per[1] += float(plain.sum())
    per[2] += 1


def add_all_bits(stats: dict, seen: set, key: str, model, tokenizer, piece, n_bars: int,
                 style: str | None = None, quote=None) -> None:
    """``--all-spans``: add every span of 1-4 bars with a bar before and after it, once per piece."""
    if key in seen:
        return
    seen.add(key)
    for k in range(1, 5):
        for first in range(2, n_bars - k + 1):
            add_bits(stats, model, tokenizer, piece, (first, first + k - 1), style=style, quote=quote)


# ---------------------------------------------------------------------------- ABC
def abc_bars(tokenizer, text: str):
    from ostinato.symbolic.infill import bar_cuts, split_head

    head, body, _ = split_head(tokenizer, tokenizer.encode(text, normalised=True))
    cuts = bar_cuts(tokenizer, body)
    words = [tokenizer.vocab[i] for i in body]
    bars = ["".join(words[a:b]) for a, b in itertools.pairwise(cuts)]
    return head[1:4], bars, "".join(words[cuts[-1]:])


def abc_measures(text: str):
    """Per bar with notes (music21): (length, meter's length, first pitch, last pitch)."""
    import music21

    score = music21.converter.parse(text, format="abc")
    part = score.parts[0] if score.parts else score
    out = []
    for m in part.getElementsByClass("Measure"):
        if not m.notesAndRests:
            continue
        pitches = [max(p.midi for p in n.pitches) for n in m.notes]
        out.append((Fraction(m.duration.quarterLength).limit_denominator(10000),
                    Fraction(m.barDuration.quarterLength).limit_denominator(10000),
                    pitches[0] if pitches else None, pitches[-1] if pitches else None))
    return out


def seam_intervals(measures, first: int, last: int) -> tuple[float | None, float | None]:
    def last_pitch(i):
        for m in reversed(measures[:i]):
            if m[3] is not None:
                return m[3]
        return None

    def first_pitch(i):
        for m in measures[i:]:
            if m[2] is not None:
                return m[2]
        return None

    into = (first_pitch(first - 1), last_pitch(first - 1))
    out = (first_pitch(last), last_pitch(last))
    a = abs(into[0] - into[1]) if None not in into else None
    b = abs(out[0] - out[1]) if None not in out else None
    return a, b


def run_abc(model_dir: str, n_samples: int, per_piece: int, seed: int, all_spans: bool = False,
            use_quote: bool = True) -> dict:
    from ostinato.events.sources import iter_items
    from ostinato.symbolic.infill import infill_compositions, random_span
    from ostinato.symbolic.model import load_model_folder
    from ostinato.symbolic.quote import load_weights
    from ostinato.symbolic.sample import SamplingConfig
    from ostinato.symbolic.shipped import resolve_model

    model_dir = resolve_model(model_dir)
    model, tok, _config = load_model_folder(model_dir)
    model.eval()
    quote = load_weights(model_dir) if use_quote else None
    rng = np.random.default_rng(seed)
    stats = new_stats()
    stats["quote"] = quote is not None
    seen: set = set()
    for item in rounds(list(iter_items("music21:essenFolksong", split="test")), n_samples, stats):
        try:
            text = tok.normalise(item.abc_text())
            header, bars, tail = abc_bars(tok, text)
            ref = abc_measures(text)
        except Exception:
            continue
        span = random_span(len(bars), rng)
        if span is None or len(ref) < len(bars):
            continue
        first, last = span
        if all_spans:
            add_all_bits(stats, seen, item.key, model, tok, text, len(bars), quote=quote)
        else:
            add_bits(stats, model, tok, text, span, quote=quote)
        try:
            pieces = infill_compositions(model, tok, text, span, n=per_piece, quote=quote,
                                         sampling=SamplingConfig(top_p=0.95, seed=int(rng.integers(1 << 30))))
        except ValueError as exc:
            stats["failed"] += per_piece
            print(f"  {item.key} {first}-{last}: {exc}", file=sys.stderr)
            continue
        ref_seams = seam_intervals(ref, first, last)
        for piece in pieces:
            stats["samples"] += 1
            new_header, new_bars, new_tail = abc_bars(tok, piece.text)
            exact = (new_header == header and new_tail == tail and len(new_bars) == len(bars)
                     and all(new_bars[i] == bars[i] for i in range(len(bars)) if not first - 1 <= i <= last - 1))
            stats["exact"] += exact
            stats["copied"] += exact and new_bars[first - 1:last] == bars[first - 1:last]
            try:
                measures = abc_measures(piece.text)
                valid = (tok.normalise(piece.text) == piece.text and len(measures) >= len(bars)
                         and all(measures[i][0] == measures[i][1] for i in range(first - 1, last)))
            except Exception:
                measures, valid = None, False
            stats["valid"] += valid
            if measures is not None:
                gen = seam_intervals(measures, first, last)
                for g, r in zip(gen, ref_seams, strict=True):
                    if g is not None and r is not None:
                        stats["seam_gen"].append(g)
                        stats["seam_ref"].append(r)
    return stats


# ---------------------------------------------------------------------------- MIDI
def top_track(table) -> int:
    tracks = np.unique(table.track)
    return int(max(tracks, key=lambda t: table.pitch[table.track == t].mean()))


def midi_seams(table, track: int, start: int, end: int) -> tuple[float | None, float | None]:
    sel = table.track == track
    on, pitch = table.onset_tick[sel], table.pitch[sel].astype(int)
    order = np.argsort(on, kind="stable")
    on, pitch = on[order], pitch[order]
    before, inside, after = pitch[on < start], pitch[(on >= start) & (on < end)], pitch[on >= end]
    a = abs(int(inside[0]) - int(before[-1])) if len(before) and len(inside) else None
    b = abs(int(after[0]) - int(inside[-1])) if len(after) and len(inside) else None
    return a, b


def run_midi(model_dir: str, n_samples: int, per_piece: int, seed: int, all_spans: bool = False,
             expand_repeats: bool | None = None, use_quote: bool = True) -> dict:
    from ostinato.events import to_score
    from ostinato.events.instruments import assign_instruments, instrument_range
    from ostinato.events.sources import iter_items
    from ostinato.symbolic.evaluate_commands import trained_expand_repeats
    from ostinato.symbolic.infill import bar_cuts, infill_compositions, random_span, split_head
    from ostinato.symbolic.midi_grammar import MidiGrammar
    from ostinato.symbolic.midi_tokens import stand_ins
    from ostinato.symbolic.model import load_model_folder
    from ostinato.symbolic.quote import load_weights
    from ostinato.symbolic.sample import SamplingConfig
    from ostinato.symbolic.shipped import resolve_model

    model_dir = resolve_model(model_dir)
    model, tok, _config = load_model_folder(model_dir)
    model.eval()
    quote = load_weights(model_dir) if use_quote else None
    # the held-out chorales as the model's data has them, unless asked otherwise
    expand = trained_expand_repeats(model_dir) if expand_repeats is None else expand_repeats
    rng = np.random.default_rng(seed)
    stats = new_stats()
    stats["expand_repeats"] = expand
    stats["quote"] = quote is not None
    seen: set = set()
    columns = ("pitch", "onset_tick", "offset_tick", "onset_s", "offset_s", "velocity", "program", "track")
    for item in rounds(list(iter_items("music21:bach", split="test")), n_samples, stats):
        try:
            table = assign_instruments(item.read(expand_repeats=expand), item.key)
        except Exception:
            continue
        style = "bach" if "bach" in getattr(tok, "styles", ()) else None
        ids = tok.encode(table, style=style)
        _head, body, _ = split_head(tok, ids)
        n_bars = len(bar_cuts(tok, body)) - 1
        downbeats = sorted({int(t) for t in to_score(table).get_downbeats()} | {0})
        span = random_span(min(n_bars, len(downbeats) - 1), rng)
        if span is None:
            continue
        first, last = span
        start, end = downbeats[first - 1], downbeats[last]
        if all_spans:
            add_all_bits(stats, seen, item.key, model, tok, table, min(n_bars, len(downbeats) - 1), style=style,
                         quote=quote)
        else:
            add_bits(stats, model, tok, table, span, style=style, quote=quote)
        try:
            pieces = infill_compositions(model, tok, table, span, n=per_piece, style="bach", quote=quote,
                                         sampling=SamplingConfig(top_p=0.95, seed=int(rng.integers(1 << 30))))
        except ValueError as exc:
            stats["failed"] += per_piece
            print(f"  {item.key} {first}-{last}: {exc}", file=sys.stderr)
            continue
        outside = (table.onset_tick < start) | (table.onset_tick >= end)
        kept = table.select(outside).sorted()
        top = top_track(table)
        ref_seams = midi_seams(table, top, start, end)
        bar_len = [downbeats[i + 1] - downbeats[i] for i in range(first - 1, last)]
        # the key's scale (harmonic minor for a minor key) and the pitch classes the piece plays itself
        key = tok.controls_of(stand_ins(table)[0], style).key
        key_pcs = set(MidiGrammar._key_pcs(key)[0] if key not in (None, "none") else range(12))
        key_pcs |= {int(p) % 12 for p in table.pitch}
        ranges = {}   # per track: its program's GM range, widened to the part's own notes
        for i, track in enumerate(table.tracks):
            notes = table.pitch[table.track == i]
            r = instrument_range(track.program)
            ranges[i] = (min(r.low, int(notes.min(initial=127))), max(r.high, int(notes.max(initial=0))))
        for piece in pieces:
            stats["samples"] += 1
            new = piece.table
            keep = (new.onset_tick < start) | (new.onset_tick >= end)
            same = new.select(keep).sorted()
            stats["exact"] += len(same) == len(kept) and all(np.array_equal(getattr(same, c), getattr(kept, c))
                                                             for c in columns)
            fresh = new.select(~keep)
            own, filled = table.select(~outside).sorted(), fresh.sorted()
            stats["copied"] += len(filled) == len(own) and all(np.array_equal(getattr(filled, c), getattr(own, c))
                                                               for c in ("pitch", "onset_tick", "offset_tick", "track"))
            bars_with_notes = {int(np.searchsorted(downbeats, t, side="right")) - 1 for t in fresh.onset_tick}
            valid = (len(fresh) > 0 and int(fresh.offset_tick.max()) <= end
                     and all(int(p) % 12 in key_pcs for p in fresh.pitch)
                     and all(int(p) in table.program for p in fresh.program)
                     and all(new.tracks[int(t)].program == int(p) for t, p in zip(fresh.track, fresh.program,
                                                                                  strict=True))
                     and all(ranges[int(t)][0] <= int(n) <= ranges[int(t)][1]
                             for t, n in zip(fresh.track, fresh.pitch, strict=True))
                     and bars_with_notes == set(range(first - 1, last)) and len(bar_len) == last - first + 1)
            stats["valid"] += valid
            for g, r in zip(midi_seams(new, top, start, end), ref_seams, strict=True):
                if g is not None and r is not None:
                    stats["seam_gen"].append(g)
                    stats["seam_ref"].append(r)
    return stats


def report(name: str, stats: dict) -> None:
    n = max(stats["samples"], 1)
    print(f"\n{name}: {stats['samples']} samples ({stats['failed']} spans refused)")
    if stats["n_tokens"]:
        fim, plain = stats["bits_fim"] / stats["n_tokens"], stats["bits_plain"] / stats["n_tokens"]
        print(f"  middle bits/token: {fim:.3f} with the suffix in view, {plain:.3f} without "
              f"({100 * (1 - fim / plain):+.1f}% lower with it) over {stats['n_tokens']} tokens of "
              f"{stats['spans']} spans")
        if stats["n_bar"]:
            rest = stats["n_tokens"] - stats["n_bar"]
            bar_f, bar_p = stats["bar_fim"] / stats["n_bar"], stats["bar_plain"] / stats["n_bar"]
            rest_f = (stats["bits_fim"] - stats["bar_fim"]) / rest
            rest_p = (stats["bits_plain"] - stats["bar_plain"]) / rest
            print(f"    the span's inner bar starts ({stats['n_bar']} tokens; does the span go on?): {bar_f:.3f} with, "
                  f"{bar_p:.3f} without; the other tokens: {rest_f:.3f} with, {rest_p:.3f} without "
                  f"({100 * (1 - rest_f / rest_p):+.1f}%)")
        empty = stats["bits_empty"] / stats["n_tokens"]
        print(f"    the infill prompt with the suffix left out (nothing between <fill> and <mid>): {empty:.3f} "
              f"({100 * (1 - fim / empty):+.1f}% lower with the suffix; the form itself costs "
              f"{100 * (empty / plain - 1):+.1f}% against left to right)")
        by_span = sorted(stats["by_span"].items())
        print("    by the span's bars (how much lower): " + ", ".join(
            f"{k}: {100 * (1 - f / p):+.1f}% ({c} spans)" for k, (f, p, c) in by_span))
    if stats["seam_ref"]:
        gen, ref = float(np.mean(stats["seam_gen"])), float(np.mean(stats["seam_ref"]))
        ratio = f"({100 * (gen / ref - 1):+.1f}%) " if ref else ""
        print(f"  seam intervals (mean |semitones| into and out of the span): fills {gen:.2f}, corpus {ref:.2f} "
              f"{ratio}over {len(stats['seam_ref'])} seams")
    print(f"  valid fills: {stats['valid']}/{stats['samples']} ({100 * stats['valid'] / n:.1f}%)")
    print(f"  bars outside the span exact: {stats['exact']}/{stats['samples']} ({100 * stats['exact'] / n:.1f}%)")
    print(f"  fills that are the input's own bars again: {stats['copied']}/{stats['samples']} "
          f"({100 * stats['copied'] / n:.1f}%)")


def main(argv=None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--abc-model", help="an ABC model (a shipped name or a folder) trained with --infill-share")
    p.add_argument("--midi-model", help="a REMI model (a shipped name or a folder) trained with --infill-share")
    p.add_argument("-n", "--samples", type=int, default=200, help="samples per format (default: 200)")
    p.add_argument("--per-piece", type=int, default=4, help="samples of each piece's span (one batch)")
    p.add_argument("--quick", action="store_true", help="16 samples per format")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--all-spans", action="store_true",
                   help="the likelihood over every span of 1-4 bars (a bar before and after it) of each piece "
                        "visited, not only the spans sampled: a figure with far less noise")
    p.add_argument("--expand-repeats", action=argparse.BooleanOptionalAction, default=None,
                   help="MIDI: read the held-out chorales with their repeats played out, as performed (default: "
                        "as the model was trained, `train symbolic --expand-repeats`)")
    p.add_argument("--no-quote", action="store_true",
                   help="the model alone, without its folder's quote weights (quote.json, `ostinato train quote`)")
    args = p.parse_args(argv)
    n = 16 if args.quick else args.samples
    if not args.abc_model and not args.midi_model:
        p.error("give --abc-model and/or --midi-model (folders trained with --infill-share)")
    quote = not args.no_quote
    runs = (("ABC", args.abc_model, lambda folder: run_abc(folder, n, args.per_piece, args.seed, args.all_spans,
                                                           quote)),
            ("MIDI", args.midi_model, lambda folder: run_midi(folder, n, args.per_piece, args.seed, args.all_spans,
                                                              args.expand_repeats, quote)))
    for name, folder, run in runs:
        if folder:
            started = time.perf_counter()
            stats = run(folder)
            if "expand_repeats" in stats:
                name += " (repeats played out)" if stats["expand_repeats"] else " (repeats as written)"
            name += " with its quotes" if stats["quote"] else " (the model alone: no quotes)"
            report(f"{name} ({folder})", stats)
            print(f"  {time.perf_counter() - started:.0f} s")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
