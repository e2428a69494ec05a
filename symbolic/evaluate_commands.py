"""``ostinato evaluate nll|samples|render`` and ``ostinato plot``: options in, typed calls out.

Every evaluate command prints a readable table and, with ``--json``, one JSON object on the
last line of stdout with stable keys (README, "Evaluating"). No heavy import at module level.
"""

from __future__ import annotations

import argparse
import json
import logging
import math
import sys

log = logging.getLogger("ostinato")


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    """Add ``evaluate`` (``nll``, ``samples``, ``render``) and ``plot``."""
    evaluate = sub.add_parser("evaluate", parents=[common],
                              help="held-out likelihood, sample quality and render quality",
                              description="Measure a symbolic model (held-out likelihood, quality of its samples) "
                                          "or a renderer (spectral distance, speed, note F1).")
    what = evaluate.add_subparsers(dest="what", metavar="WHAT", required=True)

    nll = what.add_parser("nll", parents=[common], help="held-out likelihood of pieces under a model",
                          description="Bits per token, and per character (ABC tunes, of the normalised text) or "
                                      "per note (MIDI tokens), of pieces under a model. A source's held-out pieces "
                                      "(the split of DESIGN.md) are scored unless --all: the same figure as the "
                                      "model card's when the source is the one the model was trained on. Pieces "
                                      "the tokenizer cannot accept are counted and listed.")
    nll.add_argument("sources", nargs="+", metavar="FILES|SOURCE",
                     help="files, folders, quoted globs, or music21:<collection>")
    nll.add_argument("--model", required=True, metavar="NAME|DIR", help="a shipped model or a model folder")
    nll.add_argument("--all", action="store_true", help="score every piece, not only the held-out ones")
    nll.add_argument("--instruments", choices=("keep", "ensemble"), default=None,
                     help="MIDI tokenizers: keep or ensemble (see `train symbolic --instruments`); default: as the "
                          "model was trained (its metrics.json), else keep")
    nll.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: cpu)")
    nll.add_argument("--json", action="store_true", help="one JSON object on the last line of stdout")
    nll.set_defaults(run=run_nll)

    samples = what.add_parser(
        "samples", parents=[common], help="validity, control adherence, similarity and originality of samples",
        description="Sample N pieces from a model (or read a folder of generated .abc/.mid files) and measure: "
                    "validity (ABC parses in music21 with X:, M:, K: headers and its bars match the meter; "
                    "MIDI decodes), adherence to the requested controls, distribution similarity to the "
                    "held-out pieces of --reference (overlap area and KL of the pooled pitch-class, pitch-range, "
                    "interval, inter-onset-interval and note-length histograms; and Yang & Lerch's intra-set "
                    "against inter-set distance densities of the same features) and "
                    "originality (longest run of notes shared with the training pieces of --reference).")
    given = samples.add_mutually_exclusive_group(required=True)
    given.add_argument("--model", metavar="NAME|DIR", help="sample from this model")
    given.add_argument("--folder", metavar="DIR", help="evaluate the .abc/.mid files of this folder instead")
    samples.add_argument("-n", type=int, default=8, metavar="N", help="pieces to sample (default: 8)")
    samples.add_argument("--reference", required=True, metavar="SOURCE",
                         help="the training source: held-out pieces for similarity, training pieces for originality")
    samples.add_argument("--seed", type=int, default=0)
    samples.add_argument("--temperature", type=float, default=1.0)
    samples.add_argument("--top-p", type=float, default=0.95)
    samples.add_argument("--max-tokens", type=int, default=None, help="longest sample (default: the model's context)")
    samples.add_argument("--keep", metavar="DIR", help="also keep the sampled pieces in this folder")
    samples.add_argument("--no-originality", action="store_true", help="skip reading the training pieces")
    controls = samples.add_argument_group("controls (requested from the model, and checked)")
    controls.add_argument("--key", help="e.g. G, Ador (ABC), 'D minor' (MIDI)")
    controls.add_argument("--meter", help="e.g. 6/8")
    controls.add_argument("--bars", type=int, help="length in bars")
    controls.add_argument("--instruments", metavar="LIST", help="GM programs or names and 'drums', comma separated")
    samples.add_argument("--json", action="store_true", help="one JSON object on the last line of stdout")
    samples.set_defaults(run=run_samples)

    from ostinato.render.evaluate import add_render_parser

    add_render_parser(what, common)

    plot = sub.add_parser("plot", parents=[common], help="draw a piano roll or a spectrogram as PNG",
                          description="MIDI/ABC/MusicXML: a piano roll, tracks coloured by instrument, bars marked. "
                                      "Audio (WAV/FLAC/OGG): a log-mel spectrogram, with the notes of --notes "
                                      "overlaid.")
    plot.add_argument("file", metavar="FILE")
    plot.add_argument("-o", "--output", required=True, metavar="OUT.png")
    plot.add_argument("--notes", metavar="MIDI", help="audio: overlay the notes of this MIDI/ABC file")
    plot.add_argument("--tune", type=int, metavar="X", help="ABC: the tune numbered X (default: the first)")
    plot.set_defaults(run=run_plot)


# ---------------------------------------------------------------------------- output
def format_value(value) -> str:
    if isinstance(value, float):
        return "inf" if math.isinf(value) else f"{value:.4f}"
    return str(value)


def print_table(title: str, rows: list[tuple[str, object]]) -> None:
    """A two-column table on stdout."""
    width = max((len(name) for name, _ in rows), default=0)
    print(title)
    for name, value in rows:
        print(f"  {name:<{width}}  {format_value(value)}")


def print_json(record: dict) -> None:
    """One JSON object on one line (inf becomes null, which JSON can hold)."""
    def clean(x):
        if isinstance(x, float) and not math.isfinite(x):
            return None
        if isinstance(x, dict):
            return {k: clean(v) for k, v in x.items()}
        if isinstance(x, list | tuple):
            return [clean(v) for v in x]
        return x

    print(json.dumps(clean(record)), flush=True)


# ---------------------------------------------------------------------------- nll
def trained_instruments(folder) -> str:
    """How the model's training run assigned instruments (``keep`` or ``ensemble``), from its
    metrics.json; ``keep`` when it does not say (a folder not written by ``train symbolic``)."""
    import json
    from pathlib import Path

    try:
        recorded = json.loads((Path(folder) / "metrics.json").read_text()).get("instruments")
    except (OSError, ValueError, AttributeError):
        return "keep"
    return recorded if recorded in ("keep", "ensemble") else "keep"


def run_nll(args: argparse.Namespace) -> int:
    from ostinato.corpora.sources import iter_items
    from ostinato.events.errors import InputError

    from .evaluate import likelihood
    from .model import load_model_folder
    from .shipped import resolve_model

    split = "all" if args.all else "test"
    items = []
    for source in args.sources:
        found = list(iter_items(source, split=split))
        if not found:
            if split == "test" and any(True for _ in iter_items(source, split="all")):
                log.warning("%s: none of its pieces is held out (about 5%% are); pass --all to score them all",
                            source)
            else:
                raise InputError(source, "no pieces found")
        items.extend(found)
    if not items:
        raise InputError(" ".join(args.sources), "no held-out pieces to score (pass --all to score every piece)")
    folder = resolve_model(args.model)
    model, tokenizer, config = load_model_folder(folder, device=args.device)
    instruments = args.instruments or trained_instruments(folder)
    figures = likelihood(model, tokenizer, context=config.context, items=items, instruments=instruments,
                         device=args.device)
    for failure in figures["failed"]:
        print(f"ostinato: not scored: {failure}", file=sys.stderr)
    record = {"model": str(folder), "tokenizer": tokenizer.kind, "split": split, **figures}
    rows = [(k, v) for k, v in record.items() if k not in ("failed", "model")]
    if args.quiet == 0 or not args.json:
        print_table(f"held-out likelihood under {folder}" if split == "test" else f"likelihood under {folder}",
                    rows)
    if args.json:
        print_json(record)
    return 0


# ---------------------------------------------------------------------------- samples
def run_samples(args: argparse.Namespace) -> int:
    import tempfile
    from pathlib import Path

    from ostinato.events.errors import InputError

    from .evaluate import adherence, check_file, sample_summary

    instruments = None
    if args.instruments:
        from .commands import _instrument

        instruments = [_instrument(x.strip()) for x in args.instruments.split(",") if x.strip()]
    if args.n < 1:
        raise InputError("evaluate samples", f"-n must be at least 1, got {args.n}")
    with tempfile.TemporaryDirectory(prefix="ostinato-samples-") as tmp:
        if args.model:
            folder = Path(args.keep) if args.keep else Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            files = _sample_to_folder(args, folder, instruments)
        else:
            folder = Path(args.folder)
            if not folder.is_dir():
                raise InputError(folder, "no such folder")
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".abc", ".mid", ".midi"))
            if not files:
                raise InputError(folder, "no .abc, .mid or .midi files in this folder")
        checks = [check for path in files for check in check_file(path)]
    for check in checks:
        if not check.valid:
            print(f"ostinato: invalid: {check.key}: {check.problem}", file=sys.stderr)
        elif check.bad_bars:
            log.info("%s: bars %s do not match the meter %s", check.key, check.bad_bars, check.meter)
    record = {"source": args.model or args.folder, "reference": args.reference, **sample_summary(checks)}
    record["adherence"] = adherence(checks, key=args.key, meter=args.meter, bars=args.bars, instruments=instruments)
    tables = [c.table for c in checks if c.valid]
    record.update(_reference_metrics(args, tables))
    rows = [(k, v) for k, v in record.items() if not isinstance(v, dict | list)]
    rows += [(f"adherence {k}", v) for k, v in record["adherence"].items()]
    for name, values in record["similarity"].items():
        rows.append((f"{name} overlap / KL", f"{format_value(values['overlap'])} / {format_value(values['kl'])}"))
    for name, values in record["yang_lerch"].items():
        rows.append((f"{name} Yang-Lerch overlap / KL",
                     f"{format_value(values['overlap'])} / {format_value(values['kl'])}"))
    if args.quiet == 0 or not args.json:
        print_table(f"samples of {record['source']}", rows)
    if args.json:
        print_json(record)
    return 0


def _sample_to_folder(args, folder, instruments) -> list:
    import torch

    from .commands import _write_piece
    from .compose import AbcControls, MidiControls, compose
    from .midi_tokens import Controls
    from .model import load_model_folder
    from .sample import SamplingConfig
    from .shipped import resolve_model

    model, tokenizer, config = load_model_folder(resolve_model(args.model))
    torch.manual_seed(args.seed)
    try:
        sampling = SamplingConfig(temperature=args.temperature, top_p=args.top_p,
                                  max_tokens=args.max_tokens or config.context, seed=args.seed)
    except ValueError as exc:
        from ostinato.events.errors import InputError

        raise InputError("evaluate samples", str(exc)) from None
    if tokenizer.kind == "abc":
        pieces = compose(model, tokenizer, n=args.n, sampling=sampling,
                         abc=AbcControls(key=args.key, meter=args.meter, bars=args.bars))
        fmt, ext = "abc", ".abc"
    else:
        controls = Controls(key=args.key, meter=args.meter, instruments=tuple(instruments or ()))
        pieces = compose(model, tokenizer, n=args.n, sampling=sampling,
                         midi=MidiControls(controls, bars=args.bars))
        fmt, ext = "mid", ".mid"
    paths = [folder / f"{i:03d}{ext}" for i in range(1, len(pieces) + 1)]
    for piece, path in zip(pieces, paths, strict=True):
        _write_piece(piece, path, fmt)
    return paths


def _reference_metrics(args, tables: list) -> dict:
    """Similarity to the reference's held-out pieces and originality against its training pieces."""
    from ostinato.corpora.sources import iter_items
    from ostinato.events.errors import one_line

    from .evaluate import TrainingIndex, distribution_similarity, note_sequence, yang_lerch

    def read(items, fast: bool = False):
        out = {}
        for item in items:
            try:
                out[item.key] = item.read(abc_reader="abc2midi") if fast and item.is_abc else item.read()
            except Exception as exc:  # a bad reference piece is skipped, and said
                log.warning("reference piece skipped: %s", one_line(exc, item.key))
        return out

    held_out = read(iter_items(args.reference, split="test"))
    if not held_out:
        log.warning("%s: no held-out pieces; similarity is measured against all its pieces", args.reference)
        held_out = read(iter_items(args.reference, split="all"))
    result = {"n_reference_pieces": len(held_out),
              "similarity": distribution_similarity(tables, list(held_out.values())),
              "yang_lerch": yang_lerch(tables, list(held_out.values()))}
    if args.no_originality:
        return result
    training = read(iter_items(args.reference, split="train"), fast=True)   # abc2midi: 20x faster
    index = TrainingIndex({key: note_sequence(t) for key, t in training.items()})
    runs = [index.longest_shared_run(note_sequence(t)) for t in tables]
    longest = max(runs, default=(0, None))
    result.update({"n_training_pieces": len(training),
                   "longest_shared_notes": longest[0], "longest_shared_with": longest[1],
                   "mean_longest_shared_notes": sum(r[0] for r in runs) / len(runs) if runs else 0.0})
    return result


# ---------------------------------------------------------------------------- plot
def run_plot(args: argparse.Namespace) -> int:
    from pathlib import Path

    from ostinato.events.errors import InputError

    path = Path(args.file)
    if not path.exists():
        raise InputError(path, "no such file")
    if path.suffix.lower() in (".wav", ".flac", ".ogg"):
        from ostinato.render.plot import plot_spectrogram

        notes = _read_notes(args.notes, None) if args.notes else None
        plot_spectrogram(path, args.output, notes=notes)
    else:
        if args.notes:
            raise InputError(args.notes, "--notes is for audio files (a piano roll shows its own notes)")
        from .plot import plot_pianoroll

        table = _read_notes(str(path), args.tune)
        plot_pianoroll(table, args.output, title=path.name)
    if args.quiet == 0:
        print(f"wrote {args.output}", file=sys.stderr)
    return 0


def _read_notes(path: str, tune: int | None):
    from ostinato import events
    if tune is not None:
        from ostinato.events.abc_read import read_abc

        return read_abc(path, tune=tune)
    return events.read(path)
