#!/usr/bin/env bash
# Recipe: a folk ABC model (folk-rnn style) on all of music21's ABC folk collections (~13,000 tunes).
#
#   bash examples/train_folk_abc.sh                 # CPU: a few hours for the default steps
#   NPROC=4 bash examples/train_folk_abc.sh         # 4 GPUs (or CPU processes) with torchrun / DDP
#   STEPS=20000 CONFIG=base bash examples/train_folk_abc.sh
#
# Rerunning continues from the newest checkpoint (--resume). Held-out tunes (DESIGN.md split)
# are never trained on; bits per character on them are printed every EVAL steps and written
# to $OUT/model_card.md.
set -euo pipefail
here="$(cd "$(dirname "$0")" && pwd)"
DATA=${DATA:-music21:abc-folk}
OUT=${OUT:-models/folk-abc}
CONFIG=${CONFIG:-$here/configs/folk-abc.json}
STEPS=${STEPS:-4000}
EVAL=${EVAL:-250}
NPROC=${NPROC:-1}

args=(train symbolic --data "$DATA" --tokenizer abc --out "$OUT" --config "$CONFIG" --steps "$STEPS"
      --batch-size 32 --lr 1e-3 --eval-every "$EVAL" --checkpoint-every "$EVAL" --resume)
if [ "$NPROC" -gt 1 ]; then
  python -m torch.distributed.run --standalone --nproc_per_node="$NPROC" --module ostinato "${args[@]}"
else
  ostinato "${args[@]}"
fi
