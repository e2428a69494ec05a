"""``ostinato render``, ``ostinato train renderer`` and ``ostinato evaluate render``: options in, typed requests
to the render stage's library functions out.

Each command reads its options into a request dataclass (:class:`~render.render_command.RenderRequest`,
:class:`~render.train_command.TrainRendererRequest`, :class:`~render.evaluate.EvaluateRenderRequest`),
which validates them (a bad value raises :class:`events.errors.UsageError`: exit 2, before any model
loads), then calls :func:`~render.render_command.render_files`, :func:`~render.train_command.train_renderer`
or :func:`~render.evaluate.evaluate_render`; none of those sees ``argparse.Namespace``.
Only argparse here at import time; torch and the engines are imported when a command runs.
"""

from __future__ import annotations

import argparse

from ostinato.events import AUDIO_FORMATS

from .train_command import TRAINABLE_ENGINES


def add_parsers(sub, common: argparse.ArgumentParser) -> None:
    """Add ``render`` to the top-level subcommands."""
    p = sub.add_parser(
        "render", parents=[common], help="render MIDI/ABC/MusicXML to audio",
        description="Render MIDI/ABC/MusicXML to audio (ddsp, soundfont or wavenet engine). One input and an "
                    "output with an audio extension: one file. Several inputs, folders or globs: OUT is a folder "
                    "mirroring the input names. Existing outputs are skipped unless --overwrite.")
    p.add_argument("inputs", nargs="+", metavar="IN", help="files, folders or globs (.mid .abc .xml .mxl .krn ...)")
    p.add_argument("-o", "--output", required=True, metavar="OUT", help="output file (one input) or folder")
    p.add_argument("-r", "--sample-rate", type=int, default=44100, metavar="HZ",
                   help="output sample rate in Hz (16000, 22050, 44100, 48000, ...; default 44100)")
    p.add_argument("-g", "--gain", type=float, default=1.0, help="multiply the audio by this (default 1.0)")
    p.add_argument("--engine", default="ddsp", help="ddsp (default), soundfont or wavenet")
    p.add_argument("--soundfont", metavar="SF2", help="SoundFont for the soundfont engine (default FluidR3_GM)")
    p.add_argument("--model", metavar="DIR", help="model folder or shipped model name for ddsp/wavenet")
    p.add_argument("--format", choices=AUDIO_FORMATS, help="audio format (default: from OUT's extension, else wav)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="render this many files in parallel (default 1)")
    p.add_argument("--temperature", type=float, metavar="T",
                   help="wavenet: sampling temperature (default 1.0; lower is more conservative, 0 is greedy)")
    p.add_argument("--mono", action="store_true", help="the same mix in both channels (default: tracks panned)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.set_defaults(run=run_render)


def add_train_parsers(train_sub, common: argparse.ArgumentParser) -> None:
    """Add ``train renderer``."""
    p = train_sub.add_parser(
        "renderer", parents=[common], help="train an audio renderer (ddsp, wavenet)",
        description="Train a renderer on paired (notes, audio) data: recorded pairs in MAESTRO-v3/URMP/Slakh2100 "
                    "layouts (--pairs), or pairs made on the fly by the soundfont engine (--synthesize-from).")
    p.add_argument("--engine", default="ddsp", choices=TRAINABLE_ENGINES, help="what to train (default ddsp)")
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--pairs", metavar="DIR", help="a MAESTRO-v3, URMP or Slakh2100 folder")
    data.add_argument("--synthesize-from", action="append", metavar="SOURCE",
                      help="notes to render with the soundfont engine: file, folder, glob or music21:<collection> "
                           "(repeatable)")
    p.add_argument("--soundfont", metavar="SF2", help="SoundFont for --synthesize-from (default FluidR3_GM)")
    p.add_argument("--out", required=True, metavar="DIR", help="model folder (best model, checkpoint/, log)")
    p.add_argument("--steps", type=int, default=2000, help="total optimisation steps (default 2000)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--init-from", metavar="NAME|DIR",
                   help="ddsp: start from this model's weights and sizes (a shipped name such as ddsp-fluidr3, or a "
                        "folder); --harmonics (its first partials kept) and --frame-rate may differ")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--segment-s", type=float, default=1.0, help="seconds of audio per training segment")
    p.add_argument("--learning-rate", "--lr", dest="learning_rate", type=float, default=2e-3,
                   help="learning rate (default: 2e-3)")
    p.add_argument("--eval-every", type=int, default=100, help="steps between held-out evaluations and checkpoints")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--max-pieces", type=int, metavar="N", help="at most N pieces from each source")
    p.add_argument("--max-seconds", type=float, default=20.0, help="cut each piece to this length (default 20)")
    p.add_argument("--assign-instruments", action="store_true",
                   help="give the parts of each synthesized piece GM instruments (deterministic per piece)")
    p.add_argument("--drums", type=float, default=0.0, metavar="FRACTION",
                   help="add a simple drum part to this fraction of synthesized pieces (default 0)")
    p.add_argument("--studies", type=int, default=0, metavar="N",
                   help="also N note studies: single notes of the assigned instruments and drum hits, each alone "
                        "(attacks and decays), rendered by the same SoundFont as --synthesize-from")
    p.add_argument("--sample-rate", type=int, metavar="HZ",
                   help="ddsp: the model's native rate (default 44100: full band to 22 kHz)")
    p.add_argument("--frame-rate", type=float, metavar="HZ",
                   help="ddsp: control frames per second, hop = rate / frame rate (default 90; with --init-from, the "
                        "model's)")
    p.add_argument("--noise-bands", type=int, metavar="N",
                   help="ddsp: noise bands from 0 Hz to Nyquist (default: one per 230 Hz)")
    p.add_argument("--harmonics", type=int, help="ddsp: partials per voice (default 48; with --init-from, the model's)")
    p.add_argument("--hidden-size", type=int, help="ddsp: network width (default 128)")
    p.add_argument("--layers", type=int, help="ddsp: hidden layers (default 2)")
    p.add_argument("--config", metavar="tiny|piano|FILE",
                   help="wavenet: model config preset or JSON file of WaveNetConfig fields (default piano)")
    p.add_argument("--distribution", choices=("mulaw", "mol"),
                   help="wavenet: output as 8-bit mu-law classes or a mixture of logistics (default: the config's)")
    p.set_defaults(run=run_train)


def add_evaluate_parsers(what, common: argparse.ArgumentParser) -> None:
    """Add ``evaluate render`` to the ``evaluate`` subcommands (``what``)."""
    p = what.add_parser(
        "render", parents=[common], help="spectral distance, speed and note F1 of a renderer",
        description="Render MIDI files with an engine and measure the multi-resolution STFT distance to reference "
                    "audio (a FluidSynth render of the same notes, or the files of the same name in a folder), "
                    "the real-time factor, and the note F1 of a basic-pitch transcription of the render against "
                    "the input notes (the optional [eval] extra).")
    p.add_argument("files", nargs="+", metavar="FILES", help="MIDI/ABC/MusicXML files")
    p.add_argument("--engine", required=True, help="ddsp, soundfont, ...")
    p.add_argument("--model", metavar="DIR", help="the engine's model folder (ddsp)")
    p.add_argument("--soundfont", metavar="SF2", help="the SoundFont of the soundfont engine")
    p.add_argument("--reference", required=True, metavar="soundfont|DIR",
                   help="'soundfont' (render the same notes with FluidSynth's default SoundFont), "
                        "'soundfont:PATH.sf2', or a folder of audio files named like the inputs")
    p.add_argument("--sample-rate", type=int, default=44100, metavar="HZ")
    p.add_argument("--no-f1", action="store_true", help="skip the transcription (no [eval] extra needed)")
    p.add_argument("--json", action="store_true", help="one JSON object on the last line of stdout")
    p.set_defaults(run=run_evaluate_render)


# ---------------------------------------------------------------------------- options -> requests
def render_request(args: argparse.Namespace):
    """The :class:`~render.render_command.RenderRequest` of ``render``'s options (UsageError when one is bad)."""
    from .render_command import RenderRequest

    return RenderRequest(
        inputs=tuple(args.inputs), output=args.output, engine=args.engine, sample_rate_hz=args.sample_rate,
        gain=args.gain, soundfont=args.soundfont, model=args.model, format=args.format, jobs=args.jobs,
        temperature=args.temperature, mono=args.mono,
        overwrite=args.overwrite, quiet=args.quiet > 0, verbose=args.verbose > 0,
        debug=args.debug)


def train_request(args: argparse.Namespace):
    """The :class:`~render.train_command.TrainRendererRequest` of ``train renderer``'s options (UsageError when
    one is bad)."""
    from ostinato.events.errors import UsageError

    from .paired import PairSource
    from .train_command import TrainRendererRequest
    from .training_common import TrainConfig

    try:
        data = PairSource(recorded=args.pairs, synthesize_from=tuple(args.synthesize_from or ()),
                          soundfont=args.soundfont, max_pieces=args.max_pieces, max_seconds=args.max_seconds,
                          assign_instruments=args.assign_instruments, drums_fraction=args.drums,
                          studies=args.studies)
        train = TrainConfig(steps=args.steps, batch_size=args.batch_size, segment_s=args.segment_s,
                            learning_rate=args.learning_rate, eval_every=args.eval_every, seed=args.seed,
                            device=args.device)
    except ValueError as exc:
        raise UsageError("train renderer", str(exc)) from None
    return TrainRendererRequest(engine=args.engine, data=data, out=args.out, train=train, resume=args.resume,
                                init_from=args.init_from, harmonics=args.harmonics, hidden_size=args.hidden_size,
                                layers=args.layers, sample_rate_hz=args.sample_rate, frame_rate_hz=args.frame_rate,
                                noise_bands=args.noise_bands,
                                config=args.config, distribution=args.distribution, progress=args.quiet == 0)


def evaluate_request(args: argparse.Namespace):
    """The :class:`~render.evaluate.EvaluateRenderRequest` of ``evaluate render``'s options (UsageError when one
    is bad)."""
    from .evaluate import EvaluateRenderRequest

    return EvaluateRenderRequest(files=tuple(args.files), engine=args.engine, reference=args.reference,
                                 model=args.model, soundfont=args.soundfont, sample_rate_hz=args.sample_rate,
                                 measure_note_f1=not args.no_f1)


def reporter(args: argparse.Namespace):
    """``on_error(source, exc)``: one line on stderr per failed piece (its traceback too with --debug)."""
    from ostinato.events.errors import report

    def on_error(source: str, exc: Exception) -> None:
        report(exc, debug=args.debug, source=source)

    return on_error


# ---------------------------------------------------------------------------- the commands
def run_render(args: argparse.Namespace) -> int:
    from .render_command import render_files

    return render_files(render_request(args))


def run_train(args: argparse.Namespace) -> int:
    from .train_command import train_renderer

    train_renderer(train_request(args), on_error=reporter(args))
    return 0


def run_evaluate_render(args: argparse.Namespace) -> int:
    from ostinato.events.console import print_json, print_table

    from .evaluate import evaluate_render

    request = evaluate_request(args)
    record = evaluate_render(request, on_error=reporter(args), quiet=bool(args.quiet))
    if record["n_pieces"] == 0:
        return 1
    if args.quiet == 0 or not args.json:
        rows = [(k, v) for k, v in record.items() if k != "pieces" and v is not None]
        print_table(f"render quality of {request.engine} against {request.reference}", rows)
    if args.json:
        print_json(record)
    return 1 if record["n_failed"] else 0

