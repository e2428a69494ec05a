"""``ostinato train symbolic``: options in, typed calls to symbolic/ out (no torch at import time)."""

from __future__ import annotations

import argparse
import logging
import shlex
import sys

log = logging.getLogger("ostinato")

TOKENIZERS = ("abc", "remi", "tsd", "midilike")


def add_train_parsers(train_sub, common: argparse.ArgumentParser) -> None:
    """Add ``train symbolic``."""
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
                        "--init-from: the model's own)")
    p.add_argument("--init-from", metavar="NAME|DIR",
                   help="start from the weights of this model (a shipped name or a model folder) instead of random "
                        "ones: fine-tune it on --data, or continue its training with a new schedule")
    p.add_argument("--architecture", choices=("gpt2", "llama"), help="override the config's architecture")
    p.add_argument("--steps", type=int, default=2000, help="optimizer steps (default: 2000)")
    p.add_argument("--batch-size", type=int, default=16, help="sequences per step over all processes (default: 16)")
    p.add_argument("--lr", type=float, default=6e-4, help="peak learning rate (default: 6e-4)")
    p.add_argument("--warmup", type=int, default=None, help="warm-up steps (default: 5%% of --steps)")
    p.add_argument("--eval-every", type=int, default=200, metavar="N", help="held-out evaluation every N steps")
    p.add_argument("--checkpoint-every", type=int, default=200, metavar="N", help="checkpoint every N steps")
    p.add_argument("--instruments", choices=("keep", "ensemble"), default="keep",
                   help="MIDI tokenizers: keep the parts' programs, or give each part of a piece a GM program "
                        "from an ensemble chosen by the piece's key (for scores whose parts name none, "
                        "such as music21's); default: keep")
    p.add_argument("-j", "--workers", type=int, default=1, metavar="N",
                   help="processes that read and tokenize the pieces (default: 1)")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--resume", action="store_true", help="continue from the newest checkpoint in --out")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.set_defaults(run=run_train_symbolic)


def run_train_symbolic(args: argparse.Namespace) -> int:
    from dataclasses import replace
    from pathlib import Path

    from ostinato.events.errors import InputError

    from . import distributed
    from .data import tokenize_source
    from .model import model_config
    from .tokenizers import build_tokenizer, load_tokenizer
    from .train import TrainConfig, train

    init = _init_model(args) if args.init_from else None
    if init is not None:
        _, tokenizer, config, _ = init
    elif args.tokenizer is None:
        raise InputError("train symbolic", "--tokenizer is required (or --init-from a model)")
    elif args.tokenizer in TOKENIZERS:
        tokenizer = build_tokenizer(args.tokenizer) if args.tokenizer == "abc" else None
    elif args.tokenizer.endswith(".json") or Path(args.tokenizer).exists():
        tokenizer = load_tokenizer(args.tokenizer)
    else:
        raise InputError(args.tokenizer, f"unknown tokenizer (choose one of {', '.join(TOKENIZERS)} or a .json file)")
    if init is None:
        config = model_config(args.config or "small")
    if args.architecture:
        config = replace(config, architecture=args.architecture)
    try:
        train_config = TrainConfig(
            steps=args.steps, batch_size=args.batch_size, learning_rate=args.lr,
            warmup_steps=args.warmup if args.warmup is not None else max(args.steps // 20, 1),
            eval_every=args.eval_every, checkpoint_every=args.checkpoint_every, seed=args.seed)
    except ValueError as exc:
        raise InputError("train symbolic", str(exc)) from None

    ctx = distributed.setup(args.device)
    try:
        out = Path(args.out)
        if tokenizer is None:   # a MIDI scheme: its Style block holds the source's collections
            from ostinato.corpora.sources import iter_items

            from .data import collection_of

            styles = sorted({collection_of(item.key) for item in iter_items(args.data)})
            tokenizer = build_tokenizer(args.tokenizer, styles=styles)
        show = args.quiet == 0
        cache = out / "data"
        if ctx.is_main:
            data = tokenize_source(args.data, tokenizer, max_tokens=config.context, cache_dir=cache,
                                   instruments=args.instruments, workers=args.workers,
                                   progress=_progress("tokenize", show))
        ctx.barrier()
        if not ctx.is_main:
            data = tokenize_source(args.data, tokenizer, max_tokens=config.context, cache_dir=cache,
                                   instruments=args.instruments)
        if ctx.is_main:
            for failure in data.failures[:20] if args.verbose else []:
                log.warning("skipped %s", failure)
            if data.failures:
                log.warning("%d piece(s) could not be used (-v lists them); %d training and %d held-out sequences",
                            len(data.failures), len(data.train), len(data.test))
        command = "ostinato " + shlex.join(sys.argv[1:]) if sys.argv and sys.argv[0] else ""
        figures = train(data=data, tokenizer=tokenizer, model_config=config, config=train_config, out_dir=out,
                        resume=args.resume, command=command, source=args.data, ctx=ctx, show_progress=show,
                        init_model=init[0] if init else None, init_from=str(init[3]) if init else "",
                        instruments=args.instruments)
    finally:
        distributed.teardown(ctx)
    if ctx.is_main and args.quiet == 0:
        message = ", ".join(f"{k} {v:.4f}" for k, v in figures.items() if k.startswith("bits"))
        print(f"wrote {out} (held-out: {message or 'none'})", file=sys.stderr)
    return 0


def _init_model(args: argparse.Namespace):
    """``(model, tokenizer, config, folder)`` of ``--init-from``; ``--tokenizer``/``--config``, when
    given too, must agree with it (a model's weights only fit its own vocabulary and shape); a
    ``--config`` of the same shape may change the dropout."""
    from dataclasses import replace

    from ostinato.events.errors import InputError

    from .model import build_model, load_model_folder, model_config
    from .shipped import resolve_model

    folder = resolve_model(args.init_from)
    model, tokenizer, config = load_model_folder(folder)
    if args.tokenizer is not None and args.tokenizer not in (tokenizer.kind, str(folder / "tokenizer.json")):
        raise InputError(args.init_from, f"uses the {tokenizer.kind!r} tokenizer, not {args.tokenizer!r}: leave "
                                         f"--tokenizer out to use the model's")
    if args.config is not None:
        wanted = model_config(args.config)
        if replace(wanted, dropout=config.dropout) != config:
            raise InputError(args.init_from, f"has another shape ({config}) than --config {args.config}: leave "
                                             f"--config out to use the model's")
        if wanted.dropout != config.dropout:   # the same weights in a model with the new dropout
            fresh = build_model(wanted, len(tokenizer), pad_id=tokenizer.pad_id, bos_id=tokenizer.bos_id,
                                eos_id=tokenizer.eos_id)
            fresh.load_state_dict(model.state_dict())
            model, config = fresh, wanted
    return model, tokenizer, config, folder


def _progress(desc: str, show: bool):
    def wrap(items):
        from tqdm import tqdm

        return tqdm(items, desc=desc, unit="piece", file=sys.stderr, disable=not show, dynamic_ncols=True,
                    mininterval=1.0)

    return wrap


# ---------------------------------------------------------------------------- compose
FORMATS = ("mid", "abc", "musicxml")


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    """Add ``compose``."""
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
    p.add_argument("--format", choices=FORMATS, help="output format (default: from -o's extension, else mid)")
    p.add_argument("-n", type=int, default=1, metavar="N", help="how many pieces (sampled as one batch)")
    p.add_argument("--seed", type=int, default=0, help="the same seed gives the same pieces (default: 0)")
    p.add_argument("--temperature", type=float, default=1.0, help="0 = always the most likely token (default: 1)")
    p.add_argument("--top-k", type=int, default=0, metavar="K", help="sample among the K most likely tokens")
    p.add_argument("--top-p", type=float, default=0.95, metavar="P", help="nucleus sampling mass (default: 0.95)")
    p.add_argument("--max-tokens", type=int, default=None, help="longest sequence (default: the model's context)")
    abc = p.add_argument_group("ABC controls")
    abc.add_argument("--key", help="ABC key, e.g. G, Ador, Bb, F#m (MIDI models: 'D minor', 'Eb major')")
    abc.add_argument("--meter", help="e.g. 6/8, 3/4, C")
    abc.add_argument("--unit-length", metavar="L", help="ABC unit note length, e.g. 1/8")
    abc.add_argument("--bars", type=int, help="length in bars (with --primer: bars to add)")
    abc.add_argument("--sections", metavar="SxB", help="ABC: S sections of B bars each, e.g. 2x8")
    midi = p.add_argument_group("MIDI controls")
    midi.add_argument("--instruments", metavar="LIST",
                      help="GM programs (0-127) or instrument names, and 'drums', comma separated, e.g. 0,40,drums")
    midi.add_argument("--tempo", type=float, metavar="BPM", help="quarter notes per minute")
    midi.add_argument("--seconds", type=float, help="length in seconds (instead of --bars)")
    midi.add_argument("--style", help="collection/composer style token, e.g. bach, palestrina")
    p.add_argument("--primer", metavar="FILE", help="continue this MIDI/ABC/MusicXML piece (its controls apply)")
    p.add_argument("--render", metavar="OUT.wav", help="also render the piece to audio (with -n above 1: a folder)")
    p.add_argument("--engine", default="ddsp", help="render engine for --render (default: ddsp)")
    p.add_argument("--list", action="store_true", help="list the shipped models with their cards, then exit")
    p.set_defaults(run=run_compose)


def run_compose(args: argparse.Namespace) -> int:

    from ostinato.events.errors import InputError

    from .shipped import DEFAULT_FOR_FORMAT, card_summary, shipped_models

    if args.list:
        models = shipped_models()
        if not models:
            print("no shipped models in this install (train one: examples/train_folk_abc.sh)")
        for name, folder in models.items():
            print(f"{name}\n  {card_summary(folder)}\n  {folder / 'model_card.md'}")
        return 0
    fmt = args.format or _format_of(args.output) or "mid"
    if args.n < 1:
        raise InputError("compose", f"-n must be at least 1, got {args.n}")
    model_name = args.model or DEFAULT_FOR_FORMAT[fmt]
    outputs = _output_paths(args.output, fmt, args.n)
    renders = _render_paths(args.render, args.n) if args.render else None

    import torch

    from .compose import check_controls, compose
    from .model import load_model_folder
    from .sample import SamplingConfig
    from .shipped import resolve_model

    model, tokenizer, config = load_model_folder(resolve_model(model_name))
    torch.manual_seed(args.seed)
    sampling = _checked(lambda: SamplingConfig(temperature=args.temperature, top_k=args.top_k, top_p=args.top_p,
                                               max_tokens=args.max_tokens or config.context, seed=args.seed))
    abc, midi, prompt = _controls(args, tokenizer)
    try:   # before any progress is shown: controls the grammar cannot meet are one line
        check_controls(tokenizer, abc=abc, midi=midi, max_tokens=sampling.max_tokens)
    except ValueError as exc:
        raise InputError("compose", str(exc)) from None
    show = args.quiet == 0
    from tqdm import tqdm

    bar = tqdm(total=sampling.max_tokens, desc=f"compose x{args.n}", unit="tok", file=sys.stderr, disable=not show,
               dynamic_ncols=True, mininterval=0.5)
    try:
        pieces = compose(model, tokenizer, n=args.n, sampling=sampling, abc=abc, midi=midi, prompt=prompt,
                         on_step=lambda step: bar.update(step - bar.n))
    except ValueError as exc:   # controls the grammar cannot meet (e.g. a meter the tokens cannot write)
        raise InputError(args.primer or "compose", str(exc)) from None
    bar.close()
    for piece, path in zip(pieces, outputs, strict=True):
        _write_piece(piece, path, fmt)
        if show:
            print(f"wrote {path}", file=sys.stderr)
    if renders:
        from ostinato.render import get_renderer, write_audio

        with get_renderer(args.engine) as renderer:
            for piece, path in zip(pieces, renders, strict=True):
                write_audio(renderer.render(piece.table, 44100), 44100, path)
                if show:
                    print(f"rendered {path}", file=sys.stderr)
    return 0


def _format_of(output: str | None) -> str | None:
    if not output:
        return None
    from pathlib import Path

    suffix = Path(output).suffix.lower().lstrip(".")
    return {"mid": "mid", "midi": "mid", "abc": "abc", "musicxml": "musicxml", "xml": "musicxml",
            "mxl": "musicxml"}.get(suffix)


def _output_paths(output: str | None, fmt: str, n: int) -> list:
    from pathlib import Path

    ext = {"mid": ".mid", "abc": ".abc", "musicxml": ".musicxml"}[fmt]
    if n == 1:
        return [Path(output or f"composition{ext}")]
    folder = Path(output or "compositions")
    if folder.suffix and not folder.is_dir():
        from ostinato.events.errors import InputError

        raise InputError(folder, f"with -n {n}, -o names a folder (the {n} pieces are numbered inside it)")
    folder.mkdir(parents=True, exist_ok=True)
    return [folder / f"{i:03d}{ext}" for i in range(1, n + 1)]


def _render_paths(render: str, n: int) -> list:
    from pathlib import Path

    if n == 1:
        return [Path(render)]
    folder = Path(render)
    folder.mkdir(parents=True, exist_ok=True)
    return [folder / f"{i:03d}.wav" for i in range(1, n + 1)]


def _checked(build):
    from ostinato.events.errors import InputError

    try:
        return build()
    except ValueError as exc:
        raise InputError("compose", str(exc)) from None


def _controls(args, tokenizer):
    """(AbcControls, MidiControls, prompt) from the options and the primer."""
    from ostinato.events.errors import InputError

    from .compose import AbcControls, MidiControls
    from .midi_tokens import Controls

    sections = None
    if args.sections:
        try:
            count, bars = (int(x) for x in args.sections.lower().split("x"))
        except ValueError:
            raise InputError("--sections", f"expected SxB such as 2x8, got {args.sections!r}") from None
        sections = (count, bars)
    if tokenizer.kind == "abc":
        if args.primer:
            return _abc_primer(args, tokenizer)
        return AbcControls(key=args.key, meter=args.meter, unit=args.unit_length, bars=args.bars,
                           sections=sections), None, None
    if args.primer:
        return _midi_primer(args, tokenizer)
    instruments = None
    if args.instruments:
        instruments = tuple(_instrument(x.strip()) for x in args.instruments.split(",") if x.strip())
    controls = Controls(style=args.style, key=args.key, meter=args.meter, tempo_bpm=args.tempo,
                        instruments=instruments or ())
    return None, MidiControls(controls, bars=args.bars, seconds=args.seconds), None


def _instrument(name: str):
    from ostinato.events.errors import InputError

    if name.lower() == "drums":
        return "drums"
    if name.isdigit() and 0 <= int(name) <= 127:
        return int(name)
    import pretty_midi

    try:
        return int(pretty_midi.instrument_name_to_program(name))
    except ValueError:
        raise InputError("--instruments", f"unknown instrument {name!r} (a GM program 0-127, a GM name such as "
                                          f"'Violin', or drums)") from None


def _abc_primer(args, tokenizer):
    from ostinato.events.abc_read import read_abc_text, split_tunes

    from .compose import AbcControls

    tunes = split_tunes(read_abc_text(args.primer))
    text = tokenizer.normalise(tunes[0].text)
    tokens = tokenizer.tokenize(text)
    header = {t[:2]: t[2:] for t in tokens[:3]}
    body = tokens[4:]
    if body and body[-1] == "|]":   # the tune goes on after the primer
        body = [*body[:-1], "|"]
    from .abc_tokens import count_bars

    primer_bars = count_bars(body)
    total = primer_bars + (args.bars or 8)
    controls = AbcControls(key=header["K:"], meter=header["M:"], unit=header["L:"], bars=total)
    from .abc_tokens import bar_bucket

    prompt = [tokenizer.bos_id, *(tokenizer.token_to_id[t] for t in [*tokens[:3], bar_bucket(total), *body])]
    return controls, None, prompt


def _midi_primer(args, tokenizer):
    from ostinato import events

    from .compose import MidiControls

    table = events.read(args.primer)
    controls = tokenizer.controls_of(table, args.style)
    ids = tokenizer.encode(table, style=args.style)[:-1]   # without <eos>: the piece goes on
    bars = sum(1 for i in ids if tokenizer.vocab[i] == "Bar_None")
    return None, MidiControls(controls, bars=bars + (args.bars or 8)), ids


def _write_piece(piece, path, fmt: str) -> None:
    from ostinato.events import write
    from ostinato.events.atomic import write_text_atomic

    if fmt == "abc" and piece.text is not None:
        write_text_atomic(path, piece.text)
    else:
        write(piece.table, path, format=fmt)
