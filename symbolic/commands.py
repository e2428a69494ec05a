"""``ostinato train symbolic`` and ``ostinato compose``: options in, a typed request, a library function.

The shape of every command module (corpora/commands.py is the model): argparse declares the
options, ``run_*`` turns the Namespace into a frozen request dataclass (a bad option value is a
:class:`~ostinato.events.errors.UsageError`, exit 2, found before any model loads), and a
library function takes the request and never sees argparse. No torch at import time.
"""

from __future__ import annotations

import argparse
import logging
import shlex
import sys
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("ostinato")

TOKENIZERS = ("abc", "remi", "tsd", "midilike")


def add_train_parsers(train_sub, common: argparse.ArgumentParser) -> None:
    """Add ``train symbolic``, ``train quote``, ``train calibrate`` and ``train memory``."""
    p = train_sub.add_parser(
        "symbolic", parents=[common], help="train a symbolic (token) model",
        description="Train a GPT-2 (or Llama) model on ABC tunes or MIDI event tokens. The held-out split of "
                    "DESIGN.md is never trained on; held-out bits per token and per character (ABC) or per "
                    "note (MIDI) are reported every --eval-every steps. Runs the same under "
                    "`torchrun --nproc_per_node=K` (DDP).")
    p.add_argument("--data", required=True, metavar="SOURCE",
                   help="music21:<collection> (music21:essenFolksong, music21:abc-folk, music21:bach, ...), "
                        "a folder, a file, or a quoted glob of MIDI/ABC/MusicXML")
    p.add_argument("--tokenizer", metavar="KIND|FILE",
                   help=f"one of {', '.join(TOKENIZERS)}, or a saved tokenizer .json (with --init-from: the "
                        f"model's own)")
    p.add_argument("--out", required=True, metavar="DIR", help="the model folder to write (checkpoints inside)")
    p.add_argument("--config", metavar="small|base|tiny|FILE",
                   help="model size preset or a JSON file of ModelConfig fields (default: small; with "
                        "--init-from: the model's own; a config of its shape may change the dropouts or add "
                        "layers, each new one a copy of the block before it that adds nothing until trained)")
    p.add_argument("--init-from", metavar="NAME|DIR",
                   help="start from the weights of this model (a shipped name or a model folder) instead of random "
                        "ones: fine-tune it on --data, or continue its training with a new schedule")
    p.add_argument("--architecture", choices=("gpt2", "llama"), help="override the config's architecture")
    p.add_argument("--context", type=int, metavar="TOKENS",
                   help="the longest sequence (default: the config's; with --init-from, a longer one grows the "
                        "model's learned positions: the old ones stretched over it)")
    p.add_argument("--steps", type=int, default=2000, help="optimizer steps (default: 2000)")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per step over all processes (default: 16)")
    p.add_argument("--learning-rate", "--lr", dest="lr", type=float, default=6e-4,
                   help="peak learning rate (default: 6e-4)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: 5%% of --steps)")
    p.add_argument("--eval-every", type=int, default=200, metavar="N", help="held-out evaluation every N steps")
    p.add_argument("--checkpoint-every", type=int, default=200, metavar="N", help="checkpoint every N steps")
    p.add_argument("--instruments", choices=("keep", "ensemble"), default="keep",
                   help="MIDI tokenizers: keep the parts' programs, or give each part of a piece a GM program "
                        "from an ensemble chosen by the piece's key (for scores whose parts name none, "
                        "such as music21's); default: keep")
    p.add_argument("--expand-repeats", action="store_true",
                   help="MIDI tokens: play each score's repeats and endings out, as a performance (and a MIDI file "
                        "of one) has them, so a repeated section is written twice; default: as written")
    p.add_argument("-j", "--workers", type=int, default=1, metavar="N",
                   help="processes that read and tokenize the pieces (default: 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--precision", choices=("auto", "fp32", "bf16"), default="auto",
                   help="arithmetic of the training steps: auto = bfloat16 autocast where the hardware multiplies it "
                        "(CUDA GPUs; CPUs with AVX512-BF16 or AMX, about twice as fast there), float32 elsewhere; "
                        "weights, optimizer and CPU held-out figures stay float32 (default: auto)")
    p.add_argument("--infill-share", type=float, default=None, metavar="P",
                   help="share of the training sequences in the fill-in-the-middle form (prefix, suffix, then the "
                        "middle bars), so the model can rewrite bars inside a piece (`compose --infill`); adds "
                        "three tokens to the vocabulary (an --init-from model grows its embeddings); default: 0.25, "
                        "with --init-from: 0 (the model as it was)")
    p.add_argument("--infill-context-weight", type=float, default=1.0, metavar="W",
                   help="loss weight (0..1) of a fill-in-the-middle sequence's suffix and prefix, its middle "
                        "weighing 1: below 1 the infill sequences train the middle, the part that must use the "
                        "suffix, more than the continuation their context is (default: 1, every token alike)")
    p.add_argument("--teacher", action="append", default=[], metavar="NAME|DIR",
                   help="distil from this trained model (repeatable: from the mean of their next-token distributions, "
                        "an ensemble); it must have the model's tokenizer and at least its context (knowledge "
                        "distillation: a model learns from an ensemble more than from the tokens alone)")
    p.add_argument("--distill-weight", type=float, default=None, metavar="A",
                   help="with --teacher: each target's loss is A x the KL divergence from the teachers and (1 - A) x "
                        "the token's cross-entropy (default: 0.5)")
    p.add_argument("--transpose", metavar="all|LOW..HIGH",
                   help="transposition augmentation: each training piece also moved by every shift from LOW to "
                        "HIGH semitones it can take (MIDI: its parts stay in their instruments' ranges; ABC: the "
                        "key moves, the notes are re-spelled) (`all`: -5..6, every key; a negative LOW needs `=`: "
                        "--transpose=-3..3); held-out pieces stay as written; default: none")
    p.add_argument("--ensembles", action="store_true",
                   help="MIDI tokens, with --instruments ensemble: each copy --transpose makes (without it, one "
                        "copy of each piece) is played by another ensemble its parts fit, so a style is not tied "
                        "to the ensembles its pieces happened to get")
    p.add_argument("--leave-out", action="append", default=[], metavar="COLLECTION",
                   help="train without this collection of --data (repeatable; e.g. ryansMammoth of music21:abc-folk), "
                        "to measure the model on music it never saw (`evaluate nll music21:ryansMammoth --all "
                        "--model DIR`)")
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.set_defaults(run=run_train_symbolic)

    q = train_sub.add_parser(
        "quote", parents=[common], help="fit an infill model's quotes (its fills may repeat the music around them)",
        description="Fit the weights with which an infill quotes the prefix and suffix shown to it "
                    "(symbolic/quote.py), on spans of the training split of --data, and write the model with them "
                    "(quote.json, and a section of its card) to a new folder.")
    q.add_argument("--model", required=True, metavar="NAME|DIR", help="a model trained to infill (--infill-share)")
    q.add_argument("--data", required=True, metavar="SOURCE", help="as `train symbolic --data` (its training split)")
    q.add_argument("--out", required=True, metavar="DIR", help="the new model folder (new or empty)")
    q.add_argument("--pieces", type=int, default=200, metavar="N", help="pieces at most (default: 200)")
    q.add_argument("--spans", type=int, default=4, metavar="K", help="spans of 1-4 bars per piece (default: 4)")
    q.add_argument("--instruments", choices=("keep", "ensemble"), default="keep",
                   help="MIDI: as `train symbolic --instruments` (default: keep)")
    q.add_argument("--expand-repeats", action="store_true",
                   help="MIDI: play the scores' repeats out, as MIDI files of them have them")
    q.add_argument("--seed", type=int, default=0, help="the spans' seed (default: 0)")
    q.set_defaults(run=run_train_quote)

    c = train_sub.add_parser(
        "calibrate", parents=[common], help="fit a model's logit temperature on held-out music",
        description="Fit one temperature for the model's logits by maximum likelihood on the held-out split of "
                    "--data (never trained on; less the collections the model was trained without), bake it into "
                    "the weights and write the model, with the figures before and after in its metrics and card, to "
                    "a new folder (symbolic/calibrate.py).")
    c.add_argument("--model", required=True, metavar="NAME|DIR", help="a trained model (a shipped name or a folder)")
    c.add_argument("--data", required=True, metavar="SOURCE", help="as `train symbolic --data` (its held-out split)")
    c.add_argument("--out", required=True, metavar="DIR", help="the new model folder (new or empty)")
    c.add_argument("--device", default="cpu", help="cpu, cuda, ... (default: cpu)")
    c.set_defaults(run=run_train_calibrate)

    m = train_sub.add_parser(
        "memory", parents=[common], help="give an ABC model a memory of its training tunes",
        description="Build a memory of the training split of --data (less the collections the model was trained "
                    "without), read as scale degrees, fit the weights with which it is mixed into the model's "
                    "next-token distribution on the held-out split, and write the model with it (memory.safetensors, "
                    "memory.json, the figures in its metrics and card) to a new folder (symbolic/memory.py).")
    m.add_argument("--model", required=True, metavar="NAME|DIR", help="a trained ABC model (a shipped name or folder)")
    m.add_argument("--data", required=True, metavar="SOURCE", help="as `train symbolic --data` (both its splits)")
    m.add_argument("--out", required=True, metavar="DIR", help="the new model folder (new or empty)")
    m.set_defaults(run=run_train_memory)


def parse_shifts(text: str | None) -> tuple[int, ...]:
    """``"-5..6"`` -> the shifts -5..6 without 0 (``"all"``: the same); None or ``"none"`` -> ();
    UsageError otherwise."""
    from ostinato.events.errors import UsageError

    if text is None or text == "none":
        return ()
    if text == "all":
        text = "-5..6"
    low, sep, high = text.partition("..")
    try:
        low_i, high_i = int(low), int(high)
    except ValueError:
        low_i = high_i = None
    if not sep or low_i is None or not -11 <= low_i <= high_i <= 11:
        raise UsageError("--transpose", f"expected LOW..HIGH semitones within -11..11 (e.g. -5..6), or all, "
                                        f"got {text!r}")
    return tuple(s for s in range(low_i, high_i + 1) if s)


@dataclass(frozen=True)
class TrainSymbolicRequest:
    """Everything ``ostinato train symbolic`` was asked for (see its ``--help`` for each field)."""

    data: str
    out: str
    tokenizer: str | None = None        # a kind or a tokenizer .json; None: the --init-from model's
    config: str | None = None           # a size preset or a JSON file; None: small, or the model's
    init_from: str | None = None
    architecture: str | None = None
    context: int | None = None          # None: the config's (or the --init-from model's)
    steps: int = 2000
    batch_size: int = 16
    learning_rate: float = 6e-4
    warmup: int | None = None           # None: 5% of steps
    eval_every: int = 200
    checkpoint_every: int = 200
    instruments: str = "keep"
    expand_repeats: bool = False        # MIDI tokens: the scores' repeats played out
    workers: int = 1
    seed: int = 0
    precision: str = "auto"             # the training steps' arithmetic (symbolic.train.train_dtype)
    resume: bool = False
    device: str | None = None
    show_progress: bool = True
    list_failures: bool = False
    infill_share: float | None = None   # None: 0.25, or 0 with --init-from
    infill_context_weight: float = 1.0  # loss weight of an infill sequence's suffix and prefix
    transpose: tuple[int, ...] = ()     # transposition augmentation: semitone shifts
    ensembles: bool = False             # ensemble augmentation (MIDI tokens)
    leave_out: tuple[str, ...] = ()     # collections of the data never used
    teachers: tuple[str, ...] = ()      # models to distil from (names or folders)
    distill_weight: float | None = None  # None: 0.5 with teachers
    command: str = ""                   # the command line, recorded in the model card


def run_train_symbolic(args: argparse.Namespace) -> int:
    request = TrainSymbolicRequest(
        data=args.data, out=args.out, tokenizer=args.tokenizer, config=args.config, init_from=args.init_from,
        architecture=args.architecture, context=args.context, steps=args.steps, batch_size=args.batch_size,
        learning_rate=args.lr,
        warmup=args.warmup, eval_every=args.eval_every, checkpoint_every=args.checkpoint_every,
        instruments=args.instruments, expand_repeats=args.expand_repeats, workers=args.workers, seed=args.seed,
        precision=args.precision, resume=args.resume, device=args.device,
        infill_share=args.infill_share, infill_context_weight=args.infill_context_weight,
        transpose=parse_shifts(args.transpose), leave_out=tuple(args.leave_out),
        ensembles=args.ensembles, teachers=tuple(args.teacher), distill_weight=args.distill_weight,
        show_progress=args.quiet == 0, list_failures=bool(args.verbose),
        command="ostinato " + shlex.join(sys.argv[1:]) if sys.argv and sys.argv[0] else "")
    train_symbolic(request)
    return 0


def run_train_quote(args: argparse.Namespace) -> int:
    from ostinato.events.errors import UsageError

    from .quote_train import train_quote

    for name in ("pieces", "spans"):
        if getattr(args, name) < 1:
            raise UsageError(f"--{name}", f"expected a positive number, got {getattr(args, name)}")
    report = train_quote(args.model, args.data, args.out, pieces=args.pieces, spans=args.spans, seed=args.seed,
                         instruments=args.instruments, expand_repeats=args.expand_repeats,
                         command="ostinato " + shlex.join(sys.argv[1:]) if sys.argv and sys.argv[0] else "",
                         progress=args.quiet == 0 and sys.stderr.isatty())
    if args.quiet == 0:
        print(f"{args.out}: quote weights {', '.join(f'{w:.3f}' for w in report.weights.weights)} from "
              f"{report.tokens:,} middle tokens of {report.spans} spans; {report.bits_model:.3f} -> "
              f"{report.bits_quoted:.3f} bits per token", file=sys.stderr)
    return 0


def run_train_memory(args: argparse.Namespace) -> int:
    from .memory_train import train_memory

    fit = train_memory(args.model, args.data, args.out, quiet=args.quiet > 0,
                       command="ostinato " + shlex.join(sys.argv[1:]) if sys.argv and sys.argv[0] else "")
    if args.quiet == 0:
        print(f"{args.out}: a memory of {fit.memory_tunes:,} tunes; held-out bits per char "
              f"{fit.per_unit(fit.bits_model):.4f} -> {fit.per_unit(fit.bits_memory):.4f} (cross-fitted "
              f"{fit.per_unit(fit.bits_crossfit):.4f})", file=sys.stderr)
    return 0


def run_train_calibrate(args: argparse.Namespace) -> int:
    from .calibrate import calibrate

    fitted = calibrate(args.model, args.data, args.out, device=args.device, quiet=args.quiet > 0,
                       command="ostinato " + shlex.join(sys.argv[1:]) if sys.argv and sys.argv[0] else "")
    if args.quiet == 0:
        unit = "char" if fitted.unit == "char" else "note"
        print(f"{args.out}: temperature {fitted.temperature:.3f} from {fitted.n_tokens:,} held-out tokens of "
              f"{fitted.n_pieces} pieces; bits per {unit} {fitted.per_unit(fitted.bits_before):.4f} -> "
              f"{fitted.per_unit(fitted.bits_after):.4f} (cross-fitted {fitted.per_unit(fitted.bits_crossfit):.4f})",
              file=sys.stderr)
    return 0


def train_symbolic(request: TrainSymbolicRequest) -> dict:
    """Tokenize ``request.data``, train (or resume) the model into ``request.out``; returns the held-out figures."""
    from dataclasses import replace

    from ostinato.events.errors import UsageError

    from . import distributed
    from .data import tokenize_source
    from .model import model_config
    from .tokenizers import build_tokenizer, check_expand_repeats, load_tokenizer
    from .train import TrainConfig, train

    init = init_model(request) if request.init_from else None
    if init is not None:
        _, tokenizer, config, _, _ = init
    elif request.tokenizer is None:
        raise UsageError("train symbolic", "--tokenizer is required (or --init-from a model)")
    elif request.tokenizer in TOKENIZERS:
        tokenizer = build_tokenizer(request.tokenizer) if request.tokenizer == "abc" else None
    elif request.tokenizer.endswith(".json") or Path(request.tokenizer).exists():
        tokenizer = load_tokenizer(request.tokenizer)
    else:
        raise UsageError(request.tokenizer, f"unknown tokenizer (choose one of {', '.join(TOKENIZERS)} or a .json "
                                            f"file)")
    if init is None:
        config = model_config(request.config or "small")
    if tokenizer is not None:   # (a MIDI scheme's tokenizer is built later, with the source's styles)
        check_expand_repeats(tokenizer, request.expand_repeats)
    infill_share = request.infill_share if request.infill_share is not None else (0.0 if init else 0.25)
    if not 0 <= infill_share <= 1:
        raise UsageError("--infill-share", f"expected a share from 0 to 1, got {infill_share!r}")
    if not 0 <= request.infill_context_weight <= 1:
        raise UsageError("--infill-context-weight",
                         f"expected a weight from 0 to 1, got {request.infill_context_weight!r}")
    distill_weight = request.distill_weight if request.distill_weight is not None else (
        0.5 if request.teachers else 0.0)
    if request.distill_weight is not None and not request.teachers:
        raise UsageError("--distill-weight", "needs a --teacher to distil from")
    if not 0 <= distill_weight <= 1:
        raise UsageError("--distill-weight", f"expected a weight from 0 to 1, got {distill_weight!r}")
    if request.architecture:
        config = replace(config, architecture=request.architecture)
    if request.context is not None and init is None:
        if request.context < 16:
            raise UsageError("--context", f"expected at least 16 tokens, got {request.context}")
        config = replace(config, context=request.context)
    try:
        train_config = TrainConfig(
            steps=request.steps, batch_size=request.batch_size, learning_rate=request.learning_rate,
            warmup_steps=request.warmup if request.warmup is not None else max(request.steps // 20, 1),
            eval_every=request.eval_every, checkpoint_every=request.checkpoint_every, seed=request.seed,
            precision=request.precision, infill_context_weight=request.infill_context_weight,
            distill_weight=distill_weight)
    except ValueError as exc:
        raise UsageError("train symbolic", str(exc)) from None

    ctx = distributed.setup(request.device)
    try:
        out = Path(request.out)
        if tokenizer is None:   # a MIDI scheme: its Style block holds the source's collections
            from ostinato.events.sources import iter_items

            from .data import collection_of

            styles = sorted({collection_of(item.key) for item in iter_items(request.data)})
            tokenizer = build_tokenizer(request.tokenizer, styles=styles)
        if infill_share > 0:   # the fill-in-the-middle tokens (and, fine-tuning, their embedding rows)
            from .fim import add_infill_tokens, grow_embeddings

            add_infill_tokens(tokenizer, span=True)   # (with the middle's length in bars: fim.py)
            if init is not None:
                grow_embeddings(init[0], len(tokenizer), seed=request.seed)
        teachers = load_teachers(request.teachers, tokenizer, config, device=str(ctx.device))
        show = request.show_progress
        cache = out / "data"
        if ctx.is_main:
            data = tokenize_source(request.data, tokenizer, max_tokens=config.context, cache_dir=cache,
                                   instruments=request.instruments, expand_repeats=request.expand_repeats,
                                   workers=request.workers,
                                   leave_out=request.leave_out, progress=_progress("tokenize", show))
        ctx.barrier()
        if not ctx.is_main:
            data = tokenize_source(request.data, tokenizer, max_tokens=config.context, cache_dir=cache,
                                   instruments=request.instruments, expand_repeats=request.expand_repeats,
                                   leave_out=request.leave_out)
        if ctx.is_main:
            if show:
                n_pieces = len({piece.piece for piece in (*data.train, *data.test)})
                print(f"tokenized {n_pieces} pieces: {len(data.train)} training and {len(data.test)} held-out "
                      f"sequences, {len(data.failures)} failed", file=sys.stderr)
            for failure in data.failures if request.list_failures else []:   # -v: every one, by name
                log.warning("skipped %s", failure)
            if data.failures:
                log.warning("%d piece(s) could not be used (-v lists them); %d training and %d held-out sequences",
                            len(data.failures), len(data.train), len(data.test))
        figures = train(data=data, tokenizer=tokenizer, model_config=config, config=train_config, out_dir=out,
                        resume=request.resume, command=request.command, source=request.data, ctx=ctx,
                        show_progress=show, init_model=init[0] if init else None,
                        init_from=str(init[3]) if init else "", init_layers=init[4] if init else 0,
                        instruments=request.instruments,
                        infill_share=infill_share, transpose=request.transpose, ensembles=request.ensembles,
                        leave_out=request.leave_out, expand_repeats=request.expand_repeats,
                        teachers=teachers, teacher_names=request.teachers)
    finally:
        distributed.teardown(ctx)
    if ctx.is_main and show:
        message = ", ".join(f"{k} {v:.4f}" for k, v in figures.items() if k.startswith("bits"))
        print(f"wrote {out} (held-out: {message or 'none'})", file=sys.stderr)
    return figures


def load_teachers(names: tuple[str, ...], tokenizer, config, *, device: str = "cpu") -> list:
    """The ``--teacher`` models, for scoring only: each must have ``tokenizer`` (the vocabulary the model is
    trained in, infill tokens included) and a context of at least ``config.context`` tokens."""
    from ostinato.events.errors import InputError

    from .model import load_model_folder
    from .shipped import resolve_model

    teachers = []
    for name in names:
        model, their_tokenizer, their_config = load_model_folder(resolve_model(name), device=device, inference=True)
        if their_tokenizer.to_json() != tokenizer.to_json():
            raise InputError(name, "has another tokenizer (vocabulary) than the model trained: a teacher's "
                                   "distribution must be over the same tokens")
        if their_config.context < config.context:
            raise InputError(name, f"has a context of {their_config.context} tokens, shorter than the model's "
                                   f"{config.context}")
        teachers.append(model.eval())
    return teachers


def init_model(request: TrainSymbolicRequest):
    """``(model, tokenizer, config, folder, its layers)`` of ``--init-from``; ``--tokenizer``/``--config``, when
    given too, must agree with it (a model's weights only fit its own vocabulary and shape); a
    ``--config`` of the same shape may change the dropouts and add layers (:func:`.model.grow_layers`)."""
    from dataclasses import replace

    from ostinato.events.errors import InputError

    from .model import build_model, grow_context, grow_layers, load_model_folder, model_config
    from .shipped import resolve_model

    folder = resolve_model(request.init_from)
    model, tokenizer, config = load_model_folder(folder)
    init_layers = config.n_layers
    if request.tokenizer is not None and request.tokenizer not in (tokenizer.kind, str(folder / "tokenizer.json")):
        raise InputError(request.init_from, f"uses the {tokenizer.kind!r} tokenizer, not {request.tokenizer!r}: "
                                            f"leave --tokenizer out to use the model's")
    if request.config is not None:
        wanted = model_config(request.config)
        same_dropouts = {"dropout": config.dropout, "attention_dropout": config.attention_dropout}
        if replace(wanted, **same_dropouts, n_layers=config.n_layers) != config:
            raise InputError(request.init_from, f"has another shape ({config}) than --config {request.config}: "
                                                f"leave --config out to use the model's (only n_layers may grow)")
        if wanted.n_layers < config.n_layers:
            raise InputError(request.init_from, f"has {config.n_layers} layers: --config can add layers, not "
                                                f"take them away ({request.config} has {wanted.n_layers})")
        model, config = grow_layers(model, tokenizer, config, wanted.n_layers)
        if replace(config, dropout=wanted.dropout, attention_dropout=wanted.attention_dropout) != config:
            # the same weights in a model with the new dropouts
            fresh = build_model(wanted, len(tokenizer), pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id,
                                eos_id=tokenizer.eos_id)
            fresh.load_state_dict(model.state_dict())
            model, config = fresh, wanted
    if request.context is not None and request.context != config.context:
        if request.context < config.context:
            raise InputError(request.init_from, f"has a context of {config.context} tokens: --context can grow "
                                                f"it, not shrink it to {request.context}")
        model, config = grow_context(model, tokenizer, config, request.context)
    return model, tokenizer, config, folder, init_layers


def _progress(desc: str, show: bool):
    def wrap(items):
        from tqdm import tqdm

        return tqdm(items, desc=desc, unit="piece", file=sys.stderr, disable=not (show and sys.stderr.isatty()),
                    dynamic_ncols=True,
                    mininterval=1.0)

    return wrap


# ---------------------------------------------------------------------------- compose
FORMATS = ("mid", "abc", "musicxml")
MAX_PIECES = 256   # pieces sampled in one batch: memory grows with it (its KV cache)
EXTENSIONS = {"mid": ".mid", "abc": ".abc", "musicxml": ".musicxml"}


@dataclass(frozen=True)
class ComposeRequest:
    """Everything ``ostinato compose`` was asked for, checked (see :func:`compose_request`).

    ``outputs`` are the files to write (one per piece); controls left ``None`` are the model's choice.
    """

    outputs: tuple[Path, ...]
    fmt: str                                   # mid, abc or musicxml
    model: str                                 # a shipped name or a model folder
    seed: int = 0
    temperature: float = 1.0
    top_k: int = 0
    top_p: float = 0.95
    max_tokens: int | None = None              # None: the model's context
    key: str | None = None
    meter: str | None = None
    unit_length: str | None = None
    bars: int | None = None
    sections: tuple[int, int] | None = None    # (sections, bars per section)
    instruments: tuple[int | str, ...] = ()    # GM programs and/or "drums"
    tempo_bpm: float | None = None
    seconds: float | None = None
    style: str | None = None
    primer: str | None = None
    show_progress: bool = True
    infill: tuple[int, int] | None = None      # (first, last) bars of the primer to rewrite (past its end: extend)
    quote: bool = True                         # an infill may quote the piece (the model folder's quote.json)

    @property
    def n(self) -> int:
        return len(self.outputs)


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    """Add ``compose``."""
    add_compose_parser(sub, common)


def add_compose_parser(sub, common: argparse.ArgumentParser) -> argparse.ArgumentParser:
    """Add ``compose`` (writing pieces; cli.py adds ``--render``) and return its parser."""
    p = sub.add_parser(
        "compose", parents=[common], help="compose new pieces with a symbolic model (MIDI, ABC or MusicXML)",
        description="Compose new pieces, offline, with a shipped model or one you trained. Every piece is valid: "
                    "a grammar masks every token that would break the ABC syntax, a bar's length, the MIDI token "
                    "order or the requested controls.")
    p.add_argument("-o", "--output", metavar="OUT",
                   help="the file to write (with -n above 1: a folder, files numbered 001, 002, ...); "
                        "default: composition.<format>")
    p.add_argument("--model", metavar="NAME|DIR", help="a shipped model (see --list) or a model folder; "
                                                        "default: folk-abc for ABC, chorale-midi otherwise")
    p.add_argument("--format", choices=FORMATS,
                   help="output format (default: from -o's extension, else abc after an .abc --primer, else mid)")
    p.add_argument("-n", type=int, default=1, metavar="N", help="how many pieces (sampled as one batch)")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same pieces (default: 0)")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = always the most likely token (default: 1)")
    p.add_argument("--top-k", type=int, default=0, metavar="K", help="sample among the K most likely tokens")
    p.add_argument("--top-p", type=float, default=0.95, metavar="P", help="nucleus sampling mass (default: 0.95)")
    p.add_argument("--max-tokens", type=int, default=None,
                   help="token budget of a piece of free length (default: the model's context; twice it where the "
                        "piece may go on past the context on a sliding window); --bars and --seconds set their own")
    abc = p.add_argument_group("ABC controls")
    abc.add_argument("--key", help="ABC key, e.g. G, Ador, Bb, F#m (MIDI models: 'D minor', 'Eb major')")
    abc.add_argument("--meter", help="e.g. 6/8, 3/4, C")
    abc.add_argument("--unit-length", metavar="L", help="ABC unit note length, e.g. 1/8")
    abc.add_argument("--bars", type=int,
                     help="length in bars (with --primer: bars to add; MIDI default: 16 unless --seconds)")
    abc.add_argument("--sections", metavar="SxB", help="ABC: S sections of B bars each, e.g. 2x8")
    midi = p.add_argument_group("MIDI controls")
    midi.add_argument("--instruments", metavar="LIST",
                      help="GM programs (0-127) or instrument names, and 'drums', comma separated, e.g. 0,40,drums")
    midi.add_argument("--tempo", type=float, metavar="BPM", help="quarter notes per minute")
    midi.add_argument("--seconds", type=float, help="length in seconds (instead of --bars)")
    midi.add_argument("--style", help="collection/composer style token, e.g. bach, palestrina")
    p.add_argument("--primer", metavar="FILE", help="continue this MIDI/ABC/MusicXML piece (its controls apply)")
    p.add_argument("--infill", metavar="FIRST-LAST",
                   help="rewrite bars FIRST to LAST of --primer (e.g. 5-8), keeping every other bar exactly; bars "
                        "past its end extend it (needs a model trained with --infill-share)")
    p.add_argument("--no-quote", dest="quote", action="store_false",
                   help="--infill: the model's fill alone, without its folder's quotes (quote.json: the fill may "
                        "repeat bars of the piece around it, as a repeat does)")
    p.add_argument("--list", action="store_true", help="list the shipped models with their cards, then exit")
    p.set_defaults(run=run_compose)
    return p


def run_compose(args: argparse.Namespace) -> int:
    """``ostinato compose``: list the models, or compose and write the pieces."""
    if args.list:
        list_models()
        return 0
    compose_to_files(compose_request(args))
    return 0


def list_models() -> None:
    """Print the shipped models with the summary of their cards."""
    from .shipped import card_summary, compose_defaults, known_controls, shipped_models

    models = shipped_models()
    if not models:
        print("no shipped models in this install (train one: examples/train_folk_abc.sh)")
    for name, folder in models.items():
        print(f"{name}\n  {card_summary(folder)}")
        known = known_controls(folder)
        if known.get("trained_styles"):
            print(f"  styles: {', '.join(known['trained_styles'])}")
        if known.get("trained_instruments"):
            print(f"  instruments (GM programs): {', '.join(known['trained_instruments'])}")
        defaults = compose_defaults(folder)
        if defaults:
            shown = [f"--style {defaults['style']}"] if "style" in defaults else []
            if "instruments" in defaults:
                shown.append(f"--instruments {','.join(map(str, defaults['instruments']))}")
            print(f"  defaults: {' '.join(shown)}")
        print(f"  {folder / 'model_card.md'}")


def compose_request(args: argparse.Namespace) -> ComposeRequest:
    """The checked request of ``compose``'s options (UsageError, exit 2, for a bad option value)."""
    from ostinato.events.errors import UsageError
    from ostinato.events.instruments import instrument_list
    from ostinato.events.io import check_not_an_input

    from .shipped import DEFAULT_FOR_FORMAT

    if args.output and not args.format and Path(args.output).suffix and format_of(args.output) is None \
            and args.n == 1:
        raise UsageError("-o", f"{args.output}: compose writes .mid, .abc, .musicxml, .xml or .mxl, not "
                               f"{Path(args.output).suffix} (audio: --render OUT.wav)")
    primer_abc = bool(args.primer) and str(args.primer).split("#")[0].lower().endswith(".abc")
    fmt = args.format or format_of(args.output) or ("abc" if primer_abc else "mid")   # an ABC primer goes on as ABC
    if not 1 <= args.n <= MAX_PIECES:
        raise UsageError("compose", f"-n must be 1 to {MAX_PIECES} (the pieces are sampled as one batch), got {args.n}")
    sections = None
    if args.sections:
        try:
            count, bars = (int(x) for x in args.sections.lower().split("x"))
        except ValueError:
            raise UsageError("--sections", f"expected SxB such as 2x8, got {args.sections!r}") from None
        sections = (count, bars)
    try:
        instruments = instrument_list(args.instruments) if args.instruments else ()
    except ValueError as exc:
        raise UsageError("--instruments", str(exc)) from None
    infill = None
    if not getattr(args, "quote", True) and not getattr(args, "infill", None):
        raise UsageError("--no-quote", "goes with --infill (the quotes are an infill's)")
    if getattr(args, "infill", None):
        from .fim import parse_bars

        if not args.primer:
            raise UsageError("--infill", "needs --primer: the piece whose bars are rewritten")
        try:
            infill = parse_bars(args.infill)
        except ValueError as exc:
            raise UsageError("--infill", str(exc).removeprefix("--infill: ")) from None
    outputs = tuple(output_paths(args.output, fmt, args.n))
    for output in outputs:
        check_not_an_input(output, [args.primer])
    return ComposeRequest(
        outputs=outputs, fmt=fmt, model=args.model or DEFAULT_FOR_FORMAT[fmt],
        seed=args.seed, temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
        max_tokens=args.max_tokens, key=args.key, meter=args.meter, unit_length=args.unit_length, bars=args.bars,
        sections=sections, instruments=instruments, tempo_bpm=args.tempo, seconds=args.seconds, style=args.style,
        primer=args.primer, show_progress=args.quiet == 0, infill=infill, quote=getattr(args, "quote", True))


def compose_to_files(request: ComposeRequest) -> list:
    """Compose ``request.n`` pieces and write them to ``request.outputs``; returns the compositions.

    The request is checked against the model's tokenizer before the weights load: a control the
    grammar cannot meet, or a bad sampling value, is a :class:`UsageError`.
    """
    from ostinato.events.errors import InputError, UsageError

    from .compose import check_controls, compose, token_budget
    from .model import load_model_folder, read_model_config
    from .sample import SamplingConfig
    from .shipped import check_known, compose_defaults, resolve_model
    from .tokenizers import load_tokenizer

    folder = resolve_model(request.model)
    config = read_model_config(folder)
    tokenizer = load_tokenizer(folder / "tokenizer.json")
    if not request.primer:   # the model's own defaults for what the request leaves open (a primer sets its own)
        request = with_defaults(request, compose_defaults(folder))
    check_known(folder, instruments=request.instruments, style=request.style)
    try:
        sampling = SamplingConfig(temperature=request.temperature, top_k=request.top_k, top_p=request.top_p,
                                  max_tokens=request.max_tokens or config.context, seed=request.seed)
    except ValueError as exc:
        raise UsageError("compose", str(exc)) from None
    if request.infill is not None:   # rewrite bars of the primer (symbolic/infill.py)
        from .infill import infill_to_files

        return infill_to_files(request, folder, tokenizer, sampling, write=write_piece)
    controls, prompt = controls_of_request(request, tokenizer)
    try:   # before the model loads: controls the grammar cannot meet are one line
        check_controls(tokenizer, controls, max_tokens=sampling.max_tokens)
    except ValueError as exc:
        raise UsageError("compose", str(exc)) from None

    import torch
    from tqdm import tqdm

    model, tokenizer, config = load_model_folder(folder, inference=True)
    torch.manual_seed(request.seed)
    total = token_budget(tokenizer, controls, sampling.max_tokens, prompt_tokens=len(prompt or ()))
    bar = tqdm(total=total, desc=f"compose x{request.n}", unit="tok", file=sys.stderr,
               disable=not (request.show_progress and sys.stderr.isatty()), dynamic_ncols=True, mininterval=0.5)
    try:
        pieces = compose(model, tokenizer, n=request.n, sampling=sampling, controls=controls, prompt=prompt,
                         on_step=lambda step: bar.update(step - bar.n))
    except ValueError as exc:   # controls the grammar cannot meet (e.g. a meter the tokens cannot write)
        raise InputError(request.primer or "compose", str(exc)) from None
    finally:
        bar.close()
    for piece, path in zip(pieces, request.outputs, strict=True):
        path.parent.mkdir(parents=True, exist_ok=True)
        write_piece(piece, path, request.fmt)
        if request.show_progress:
            print(f"wrote {path}", file=sys.stderr)
    return pieces


def with_defaults(request: ComposeRequest, defaults: dict) -> ComposeRequest:
    """``request`` with a model's ``compose.json`` defaults (:func:`symbolic.shipped.compose_defaults`) in
    the controls it leaves open."""
    import dataclasses

    changes = {}
    if request.style is None and defaults.get("style"):
        changes["style"] = defaults["style"]
    if not request.instruments and defaults.get("instruments"):
        changes["instruments"] = tuple(defaults["instruments"])
    return dataclasses.replace(request, **changes) if changes else request


def format_of(output: str | None) -> str | None:
    """The output format named by ``output``'s extension (None: no extension we write)."""
    if not output:
        return None
    suffix = Path(output).suffix.lower().lstrip(".")
    return {"mid": "mid", "midi": "mid", "abc": "abc", "musicxml": "musicxml", "xml": "musicxml",
            "mxl": "musicxml"}.get(suffix)


def output_paths(output: str | None, fmt: str, n: int) -> list[Path]:
    """The files ``-o`` names for ``n`` pieces: the file itself, or ``001.<ext>``... in a folder."""
    from ostinato.events.errors import UsageError

    ext = EXTENSIONS[fmt]
    if n == 1:
        return [Path(output or f"composition{ext}")]
    folder = Path(output or "compositions")
    if folder.suffix and not folder.is_dir():
        raise UsageError(str(folder), f"with -n {n}, -o names a folder (the {n} pieces are numbered inside it)")
    return [folder / f"{i:03d}{ext}" for i in range(1, n + 1)]


DEFAULT_MIDI_BARS = 16   # the length of a MIDI piece when neither --bars nor --seconds is given


def controls_of_request(request: ComposeRequest, tokenizer):
    """``(controls, prompt)``: the request's controls, or its primer's (prompt None without a primer)."""
    if request.primer:
        return tokenizer.primer(request.primer, bars=request.bars, style=request.style)
    bars = request.bars
    if bars is None and request.seconds is None and tokenizer.file_format == "mid":
        bars = DEFAULT_MIDI_BARS   # a MIDI model left to end where it likes can stop after a bar or two
    return tokenizer.make_controls(key=request.key, meter=request.meter, unit=request.unit_length, bars=bars,
                                   sections=request.sections, style=request.style, tempo_bpm=request.tempo_bpm,
                                   instruments=request.instruments, seconds=request.seconds), None


def write_piece(piece, path, fmt: str) -> None:
    """Write one composition atomically: ABC models' own text for .abc, else the notes in ``fmt``."""
    from ostinato.events import write
    from ostinato.events.atomic import write_text_atomic

    if fmt == "abc" and piece.text is not None:
        write_text_atomic(path, piece.text)
    else:
        write(piece.table, path, format=fmt)
