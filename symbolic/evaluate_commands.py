"""``ostinato evaluate nll|samples``: options in, a typed request, a library function, a record out.

Every evaluate command prints a readable table and, with ``--json``, one JSON object on the
last line of stdout with stable keys (README, "Evaluating"). No heavy import at module level.
cli.py makes the ``evaluate`` group and adds these beside the render stage's ``evaluate render``.
"""

from __future__ import annotations

import argparse
import logging
import sys
from dataclasses import dataclass

from ostinato.events.console import format_value, print_json, print_table

from .shipped import trained_expand_repeats, trained_instruments

log = logging.getLogger("ostinato")


def add_evaluate_parsers(what, common: argparse.ArgumentParser) -> None:
    """Add ``evaluate nll`` and ``evaluate samples`` to the ``evaluate`` subcommands ``what``."""
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
    nll.add_argument("--expand-repeats", action=argparse.BooleanOptionalAction, default=None,
                     help="MIDI tokenizers: play the scores' repeats out (see `train symbolic --expand-repeats`); "
                          "default: as the model was trained (its metrics.json), else not")
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


# ---------------------------------------------------------------------------- nll
@dataclass(frozen=True)
class NllRequest:
    """``evaluate nll``: score the pieces of ``sources`` (held-out ones unless ``all_pieces``) under ``model``."""

    sources: tuple[str, ...]
    model: str
    all_pieces: bool = False
    instruments: str | None = None   # keep/ensemble; None: as the model was trained
    expand_repeats: bool | None = None   # None: as the model was trained
    device: str = "cpu"
    quiet: bool = False              # no progress bars


def run_nll(args: argparse.Namespace) -> int:
    request = NllRequest(sources=tuple(args.sources), model=args.model, all_pieces=args.all,
                         instruments=args.instruments, expand_repeats=args.expand_repeats, device=args.device,
                         quiet=bool(args.quiet))
    record = evaluate_nll(request)
    for failure in record["failed"]:
        print(f"ostinato: not scored: {failure}", file=sys.stderr)
    rows = [(k, v) for k, v in record.items() if k not in ("failed", "model")]
    if args.quiet == 0 or not args.json:
        print_table(f"held-out likelihood under {record['model']}" if record["split"] == "test"
                    else f"likelihood under {record['model']}", rows)
    if args.json:
        print_json(record)
    return 0


def evaluate_nll(request: NllRequest) -> dict:
    """The likelihood record (bits per token and per unit, counts, failures) of ``request``.

    Raises:
        InputError: a source with no pieces, or nothing to score.
    """
    from ostinato.events.errors import InputError
    from ostinato.events.sources import iter_items

    from .evaluate import likelihood
    from .model import load_model_folder
    from .shipped import resolve_model
    from .tokenizers import check_expand_repeats

    split = "all" if request.all_pieces else "test"
    items, none_held_out = [], []
    for source in request.sources:
        found = list(iter_items(source, split=split))
        if not found:
            if split == "test" and any(True for _ in iter_items(source, split="all")):
                none_held_out.append(source)
            else:
                raise InputError(source, "no pieces found")
        items.extend(found)
    if not items:   # one message, once
        raise InputError(" ".join(request.sources), "none of its pieces is held out (about 5% are); "
                                                    "pass --all to score every piece")
    for source in none_held_out:
        log.warning("%s: none of its pieces is held out (about 5%% are); pass --all to score them all", source)
    folder = resolve_model(request.model)
    model, tokenizer, config = load_model_folder(folder, device=request.device, inference=True)
    instruments = request.instruments or trained_instruments(folder)
    expand = trained_expand_repeats(folder) if request.expand_repeats is None else request.expand_repeats
    check_expand_repeats(tokenizer, expand)
    figures = likelihood(model, tokenizer, context=config.context, items=items, instruments=instruments,
                         expand_repeats=expand, device=request.device, quiet=request.quiet)
    return {"model": str(folder), "tokenizer": tokenizer.kind, "split": split, **figures}


# ---------------------------------------------------------------------------- samples
@dataclass(frozen=True)
class SamplesRequest:
    """``evaluate samples``: pieces sampled from ``model`` (or the files of ``folder``) against ``reference``."""

    reference: str
    model: str | None = None
    folder: str | None = None
    n: int = 8
    seed: int = 0
    temperature: float = 1.0
    top_p: float = 0.95
    max_tokens: int | None = None
    keep: str | None = None                  # also keep the sampled pieces here
    originality: bool = True
    key: str | None = None
    meter: str | None = None
    bars: int | None = None
    instruments: tuple[int | str, ...] | None = None
    quiet: bool = False                      # no progress bars


def run_samples(args: argparse.Namespace) -> int:
    from ostinato.events.errors import UsageError
    from ostinato.events.instruments import instrument_list

    try:
        instruments = instrument_list(args.instruments) if args.instruments else None
    except ValueError as exc:
        raise UsageError("--instruments", str(exc)) from None
    if args.n < 1:
        raise UsageError("evaluate samples", f"-n must be at least 1, got {args.n}")
    request = SamplesRequest(
        reference=args.reference, model=args.model, folder=args.folder, n=args.n, seed=args.seed,
        temperature=args.temperature, top_p=args.top_p, max_tokens=args.max_tokens, keep=args.keep,
        originality=not args.no_originality, key=args.key, meter=args.meter, bars=args.bars, instruments=instruments,
        quiet=bool(args.quiet))
    record = evaluate_samples(request)
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


def evaluate_samples(request: SamplesRequest) -> dict:
    """The record of ``evaluate samples``: validity, adherence, similarity and originality.

    Invalid pieces are reported on stderr, one line each, and counted.
    """
    import tempfile
    from pathlib import Path

    from ostinato.events.console import progress
    from ostinato.events.errors import InputError

    from .evaluate import adherence, check_file, sample_summary

    with tempfile.TemporaryDirectory(prefix="ostinato-samples-") as tmp:
        if request.model:
            folder = Path(request.keep) if request.keep else Path(tmp)
            folder.mkdir(parents=True, exist_ok=True)
            files = sample_to_folder(request, folder)
        else:
            folder = Path(request.folder)
            if not folder.is_dir():
                raise InputError(folder, "no such folder")
            files = sorted(p for p in folder.iterdir() if p.suffix.lower() in (".abc", ".mid", ".midi"))
            if not files:
                raise InputError(folder, "no .abc, .mid or .midi files in this folder")
        checks = [check for path in progress(files, desc="check", unit="file", quiet=request.quiet)
                  for check in check_file(path)]
    for check in checks:
        if not check.valid:
            print(f"ostinato: invalid: {check.key}: {check.problem}", file=sys.stderr)
        elif check.bad_bars:
            log.info("%s: bars %s do not match the meter %s", check.key, check.bad_bars, check.meter)
    record = {"source": request.model or request.folder, "reference": request.reference, **sample_summary(checks)}
    record["adherence"] = adherence(checks, key=request.key, meter=request.meter, bars=request.bars,
                                    instruments=list(request.instruments) if request.instruments else None)
    tables = [c.table for c in checks if c.valid]
    record.update(reference_metrics(request.reference, tables, originality=request.originality, quiet=request.quiet))
    return record


def sample_to_folder(request: SamplesRequest, folder) -> list:
    """Sample ``request.n`` pieces from ``request.model`` into ``folder`` (001.abc or 001.mid ...)."""
    import torch

    from ostinato.events.console import progress
    from ostinato.events.errors import UsageError

    from .commands import write_piece
    from .compose import compose, token_budget
    from .model import load_model_folder
    from .sample import SamplingConfig
    from .shipped import resolve_model

    model, tokenizer, config = load_model_folder(resolve_model(request.model), inference=True)
    torch.manual_seed(request.seed)
    try:
        sampling = SamplingConfig(temperature=request.temperature, top_p=request.top_p,
                                  max_tokens=request.max_tokens or config.context, seed=request.seed)
    except ValueError as exc:
        raise UsageError("evaluate samples", str(exc)) from None
    controls = tokenizer.make_controls(key=request.key, meter=request.meter, bars=request.bars,
                                       instruments=tuple(request.instruments or ()))
    with progress(total=token_budget(tokenizer, controls, sampling.max_tokens), desc=f"sample x{request.n}",
                  unit="tok", quiet=request.quiet) as bar:
        pieces = compose(model, tokenizer, n=request.n, sampling=sampling, controls=controls,
                         on_step=lambda step: bar.update(step - bar.n))
    fmt = tokenizer.file_format
    paths = [folder / f"{i:03d}.{fmt}" for i in range(1, len(pieces) + 1)]
    for piece, path in zip(pieces, paths, strict=True):
        write_piece(piece, path, fmt)
    return paths


def reference_metrics(reference: str, tables: list, *, originality: bool = True, quiet: bool = False) -> dict:
    """Similarity to the reference's held-out pieces and originality against its training pieces."""
    from ostinato.events.console import progress
    from ostinato.events.errors import one_line
    from ostinato.events.sources import iter_items

    from .evaluate import TrainingIndex, distribution_similarity, note_sequence, yang_lerch

    def read(items, fast: bool = False, what: str = "reference"):
        out = {}
        bar = progress(list(items), desc=f"read {what}", quiet=quiet)
        for item in bar:
            try:
                out[item.key] = item.read(abc_reader="abc2midi") if fast and item.is_abc else item.read()
            except Exception as exc:  # a bad reference piece is skipped, and said
                bar.clear()
                log.warning("reference piece skipped: %s", one_line(exc, item.key))
        bar.close()
        return out

    held_out = read(iter_items(reference, split="test"), what="held-out")
    if not held_out:
        log.warning("%s: no held-out pieces; similarity is measured against all its pieces", reference)
        held_out = read(iter_items(reference, split="all"))
    result = {"n_reference_pieces": len(held_out),
              "similarity": distribution_similarity(tables, list(held_out.values())),
              "yang_lerch": yang_lerch(tables, list(held_out.values()))}
    if not originality:
        return result
    training = read(iter_items(reference, split="train"), fast=True, what="training")   # abc2midi: fast
    index = TrainingIndex({key: note_sequence(t) for key, t in training.items()})
    runs = [index.longest_shared_run(note_sequence(t)) for t in tables]
    longest = max(runs, default=(0, None))
    result.update({"n_training_pieces": len(training),
                   "longest_shared_notes": longest[0], "longest_shared_with": longest[1],
                   "mean_longest_shared_notes": sum(r[0] for r in runs) / len(runs) if runs else 0.0})
    return result


