#!/usr/bin/env bash
# TSN (ResNet-50, 8 segments, average consensus) on UCF101 split 1, with the fine-tuning recipe of
# the TSM repository's UCF101 script: lr 0.001 for a total batch of 64, x0.1 at epochs 10 and 20,
# 25 epochs, dropout 0.8, gradient clip 20, partial BN (the default), new classifier at 5x/10x lr.
#   KINETICS_CKPT=... bash scripts/ucf101_tsn.sh     fine-tune from a Kinetics checkpoint (best)
#   IMAGENET_WEIGHTS=resnet50.pth bash scripts/ucf101_tsn.sh    or from ImageNet weights
# NGPU processes of BATCH clips each (NGPU x BATCH = 64 as published); extra arguments are passed on.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
NGPU=${NGPU:-8}
BATCH=${BATCH:-$((64 / NGPU))}
if [ -n "${KINETICS_CKPT:-}" ]; then
  INIT=(--tune_from "$KINETICS_CKPT")
elif [ -n "${IMAGENET_WEIGHTS:-}" ]; then
  INIT=(--pretrain imagenet --pretrained_weights "$IMAGENET_WEIGHTS")
else
  echo "set KINETICS_CKPT or IMAGENET_WEIGHTS (local files; nothing is downloaded)" >&2
  exit 2
fi
"$PYTHON" -m torch.distributed.run --nproc_per_node "$NGPU" main.py ucf101 RGB --split 1 \
  --arch resnet50 --num_segments 8 --consensus_type avg --dropout 0.8 \
  --lr 0.001 --lr_steps 10 20 --epochs 25 --batch-size "$BATCH" --gd 20 --wd 5e-4 \
  --eval-freq 1 -j 8 "${INIT[@]}" "$@"
