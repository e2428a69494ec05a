#!/usr/bin/env bash
# The sample files of the README's CLI tour, made with the shipped models (run from the repository root):
#   examples/song.mid    4 bars of violin and piano from chorale-midi
#   examples/tunes.abc   three 8-bar tunes from folk-abc in one file (X:1..3)
#   examples/score.mxl   song.mid as compressed MusicXML
set -euo pipefail
ostinato compose --model chorale-midi --bars 4 --seed 4 --tempo 96 --meter 4/4 --instruments 40,0 \
    --key 'G major' -o examples/song.mid -q
tmp=$(mktemp -d)
ostinato compose --model folk-abc -n 3 --seed 2 --bars 8 --format abc -o "$tmp" -q
for n in 1 2 3; do
    sed "s/^X:1$/X:$n/" "$tmp/00$n.abc"
    [ "$n" = 3 ] || echo
done > examples/tunes.abc
ostinato convert examples/song.mid --to musicxml --mxl -o "$tmp/mxl" -q
cp "$tmp/mxl/examples/song.mid.mxl" examples/score.mxl
rm -r "$tmp"
