#!/usr/bin/env bash
# Recipe: a WaveNet piano renderer trained on SoundFont-rendered piano (render/wavenet/MODEL_CARD.md).
#
#   bash examples/train_wavenet.sh                        # a CUDA GPU: about 1-2 hours (estimated) for the default steps
#   STEPS=20 BATCH=2 DEVICE=cpu bash examples/train_wavenet.sh   # a CPU: only to try it (about 30 s a step)
#   ostinato render song.mid -o song.wav --engine wavenet --model models/wavenet-piano
#
# The notes come from music21's corpus (Bach chorales and folk tunes, all played by General MIDI
# program 0, the acoustic grand piano) and are rendered by the soundfont engine (FluidSynth with
# FluidR3_GM) at 16 kHz; about 5% of pieces are held out (DESIGN.md split) for the held-out loss.
# Rerunning continues from the checkpoint in $OUT (--resume); raise STEPS to train further.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
OUT=${OUT:-models/wavenet-piano}
CONFIG=${CONFIG:-$here/configs/wavenet-piano.json}
STEPS=${STEPS:-60000}
EVAL=${EVAL:-1000}
PIECES=${PIECES:-200}
SECONDS_PER_PIECE=${SECONDS_PER_PIECE:-20}
BATCH=${BATCH:-16}
DEVICE=${DEVICE:-auto}
DATA=${DATA:-"music21:bach music21:essenFolksong music21:oneills1850"}

sources=()
for source in $DATA; do sources+=(--synthesize-from "$source"); done
resume=()
if [ -f "$OUT/checkpoint/state.json" ]; then resume=(--resume); fi
ostinato train renderer --engine wavenet --config "$CONFIG" "${sources[@]}" --max-pieces "$PIECES" \
  --max-seconds "$SECONDS_PER_PIECE" --out "$OUT" --steps "$STEPS" --eval-every "$EVAL" --batch-size "$BATCH" \
  --segment-s 0.5 --learning-rate 1e-3 --seed 0 --device "$DEVICE" "${resume[@]}"
