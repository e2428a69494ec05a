"""``ostinato render`` and ``ostinato train renderer``: options in, typed calls to render/ out.

Only argparse here at import time; torch and the engines are imported inside the run functions.
"""

from __future__ import annotations

import argparse
import sys

AUDIO_SUFFIXES = (".wav", ".flac", ".ogg")
# ``train renderer --engine NAME`` runs ``<module>.run_train(args)`` of the engine's package.
TRAINERS = {"ddsp": "ostinato.render.ddsp.train_command", "wavenet": "ostinato.render.wavenet.train_command"}


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
    p.add_argument("--format", choices=("wav", "flac", "ogg"), help="audio format (default: from OUT's extension, "
                                                                     "else wav)")
    p.add_argument("-j", "--jobs", type=int, default=1, help="render this many files in parallel (default 1)")
    p.add_argument("--temperature", type=float, metavar="T",
                   help="wavenet: sampling temperature (default 1.0; lower is more conservative, 0 is greedy)")
    p.add_argument("--overwrite", action="store_true", help="replace existing outputs (default: skip them)")
    p.set_defaults(run=run_render)


def add_train_parsers(train_sub, common: argparse.ArgumentParser) -> None:
    """Add ``train renderer``."""
    p = train_sub.add_parser(
        "renderer", parents=[common], help="train an audio renderer (ddsp, wavenet)",
        description="Train a renderer on paired (notes, audio) data: recorded pairs in MAESTRO-v3/URMP/Slakh2100 "
                    "layouts (--pairs), or pairs made on the fly by the soundfont engine (--synthesize-from).")
    p.add_argument("--engine", default="ddsp", choices=sorted(TRAINERS), help="what to train (default ddsp)")
    data = p.add_mutually_exclusive_group(required=True)
    data.add_argument("--pairs", metavar="DIR", help="a MAESTRO-v3, URMP or Slakh2100 folder")
    data.add_argument("--synthesize-from", action="append", metavar="SOURCE",
                      help="notes to render with the soundfont engine: file, folder, glob or music21:<collection> "
                           "(repeatable)")
    p.add_argument("--soundfont", metavar="SF2", help="SoundFont for --synthesize-from (default FluidR3_GM)")
    p.add_argument("--out", required=True, metavar="DIR", help="model folder (best model, checkpoint/, log)")
    p.add_argument("--steps", type=int, default=2000, help="total optimisation steps (default 2000)")
    p.add_argument("--resume", action="store_true", help="continue from OUT/checkpoint")
    p.add_argument("--batch-size", type=int, default=8)
    p.add_argument("--segment-s", type=float, default=1.0, help="seconds of audio per training segment")
    p.add_argument("--learning-rate", type=float, default=2e-3)
    p.add_argument("--eval-every", type=int, default=100, help="steps between held-out evaluations and checkpoints")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--device", default="auto", choices=("auto", "cpu", "cuda"))
    p.add_argument("--max-pieces", type=int, metavar="N", help="at most N pieces from each source")
    p.add_argument("--max-seconds", type=float, default=20.0, help="cut each piece to this length (default 20)")
    p.add_argument("--assign-instruments", action="store_true",
                   help="give the parts of each synthesized piece GM instruments (deterministic per piece)")
    p.add_argument("--drums", type=float, default=0.0, metavar="FRACTION",
                   help="add a simple drum part to this fraction of synthesized pieces (default 0)")
    p.add_argument("--harmonics", type=int, default=48, help="ddsp: partials per voice (default 48)")
    p.add_argument("--hidden-size", type=int, default=128, help="ddsp: network width (default 128)")
    p.add_argument("--layers", type=int, default=2, help="ddsp: hidden layers (default 2)")
    p.add_argument("--config", metavar="tiny|piano|FILE",
                   help="wavenet: model config preset or JSON file of WaveNetConfig fields (default piano)")
    p.add_argument("--distribution", choices=("mulaw", "mol"),
                   help="wavenet: output as 8-bit mu-law classes or a mixture of logistics (default: the config's)")
    p.set_defaults(run=run_train)


# ---------------------------------------------------------------------------- render
def run_render(args: argparse.Namespace) -> int:
    from .render_command import render_files

    return render_files(args)


def run_train(args: argparse.Namespace) -> int:
    import importlib

    if args.engine != "wavenet" and (args.config or args.distribution):
        print("ostinato: train renderer: --config and --distribution are for --engine wavenet", file=sys.stderr)
        return 2

    try:
        module = importlib.import_module(TRAINERS[args.engine])
    except ModuleNotFoundError as exc:
        if exc.name != TRAINERS[args.engine]:
            raise
        print(f"ostinato: train renderer: the {args.engine} engine is not available in this version", file=sys.stderr)
        return 1
    return module.run_train(args)
