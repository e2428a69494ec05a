"""Render a piece with the DDSP model and with FluidSynth, and compare them.

    python examples/render_piece.py                          # Bach's chorale BWV 66.6, strings + drums
    python examples/render_piece.py song.mid -o out/ -r 22050
    python examples/render_piece.py --model my_model/        # a model from `ostinato train renderer`
"""

import argparse
from pathlib import Path

from ostinato import events, render
from ostinato.render.paired import add_drum_part, assign_instruments


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", default="music21:bach/bwv66.6")
    parser.add_argument("-o", "--out", type=Path, default=Path("example_out"))
    parser.add_argument("-r", "--sample-rate", type=int, default=22050)
    parser.add_argument("--model", default=None, help="ddsp model folder (default: the shipped model)")
    args = parser.parse_args()

    table = events.read(args.source)
    if args.source.startswith("music21:"):  # the corpus has no instruments: give it some, and drums
        table = add_drum_part(assign_instruments(table, args.source), args.source)
    print(table, "programs", table.programs, "drums" if table.has_drums else "")

    stem = Path(args.source.replace("music21:", "").replace("/", "_")).stem
    renders = {}
    for engine, options in (("ddsp", {"model": args.model}), ("soundfont", {})):
        renderer = render.get_renderer(engine, **options)
        audio = renderer.render(table, args.sample_rate)  # float32 [2, n_samples]
        out = args.out / f"{stem}_{engine}.flac"
        render.write_audio(audio, args.sample_rate, out)
        renders[engine] = audio
        print(f"wrote {out}: {audio.shape[1] / args.sample_rate:.2f} s")
    distance = render.stft_distance(renders["ddsp"], renders["soundfont"])
    print(f"multi-resolution STFT distance ddsp -> soundfont: {distance:.3f}")


if __name__ == "__main__":
    main()
