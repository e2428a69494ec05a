"""Load a piece, print its first notes, and write it back as MIDI and ABC.

    python examples/load_and_write.py                        # Bach's chorale BWV 66.6 from music21's corpus
    python examples/load_and_write.py song.mid -o out/       # any MIDI, ABC, MusicXML or kern file
"""

import argparse
from pathlib import Path

from ostinato import events


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("source", nargs="?", default="music21:bach/bwv66.6")
    parser.add_argument("-o", "--out", type=Path, default=Path("example_out"))
    args = parser.parse_args()

    table = events.read(args.source)
    print(table)
    print(" onset_s  offset_s  pitch  velocity  program  track")
    for i in range(min(len(table), 10)):
        print(f"{table.onset_s[i]:8.3f}  {table.offset_s[i]:8.3f}  {table.pitch[i]:5d}  {table.velocity[i]:8d}"
              f"  {table.program[i]:7d}  {table.track[i]:5d}")

    stem = Path(args.source.replace("music21:", "").replace("/", "_")).stem
    for suffix in (".mid", ".abc"):
        out = args.out / (stem + suffix)
        events.write(table, out)
        print(f"wrote {out}")


if __name__ == "__main__":
    main()
