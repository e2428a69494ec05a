#!/usr/bin/env bash
# Recipe: a multi-track MIDI model (REMI tokens with programs, MuseNet-style controls) on
# music21's part-writing collections: Bach chorales, Palestrina, Monteverdi, the trecento,
# string quartets (~1,900 scores). music21's parts name no instruments, so each piece's parts
# get an ensemble (strings, woodwinds, brass, organ, choir, ...) chosen from its key.
#
#   bash examples/train_multitrack_midi.sh
#   TOKENIZER=tsd NPROC=2 bash examples/train_multitrack_midi.sh
#   DATA='~/midi/**/*.mid' INSTRUMENTS=keep bash examples/train_multitrack_midi.sh   # your own MIDI
#
# Reading ~1,900 scores with music21 takes a while; it happens once (cached in $OUT/data)
# and in WORKERS processes. Rerunning continues from the newest checkpoint.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
DATA=${DATA:-music21:polyphonic}
OUT=${OUT:-models/chorale-midi}
CONFIG=${CONFIG:-small}
TOKENIZER=${TOKENIZER:-remi}
INSTRUMENTS=${INSTRUMENTS:-ensemble}
STEPS=${STEPS:-4000}
EVAL=${EVAL:-250}
WORKERS=${WORKERS:-2}
NPROC=${NPROC:-1}

args=(train symbolic --data "$DATA" --tokenizer "$TOKENIZER" --instruments "$INSTRUMENTS" --out "$OUT"
      --config "$CONFIG" --steps "$STEPS" --batch-size 16 --lr 6e-4 --eval-every "$EVAL"
      --checkpoint-every "$EVAL" --workers "$WORKERS" --resume)
if [ "$NPROC" -gt 1 ]; then
  python -m torch.distributed.run --standalone --nproc_per_node="$NPROC" --module ostinato "${args[@]}"
else
  ostinato "${args[@]}"
fi
