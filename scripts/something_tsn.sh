#!/usr/bin/env bash
# TSN (ResNet-50, 8 segments, average consensus) on Something-Something V1 from ImageNet weights,
# with the TSM repository's Something-Something recipe without the temporal shift: lr 0.01 for a
# total batch of 64, x0.1 at epochs 20 and 40, 50 epochs, dropout 0.5, gradient clip 20, weight
# decay 5e-4, every BatchNorm trained (--npb). The horizontal flip swaps the left/right classes
# (dataset table). For V2: DATASET=somethingv2.
#   IMAGENET_WEIGHTS=resnet50.pth bash scripts/something_tsn.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
source scripts/launch.sh   # launch: NGPU processes (torchrun), see there
BATCH=${BATCH:-$((64 / NGPU))}
DATASET=${DATASET:-something}
: "${IMAGENET_WEIGHTS:?set IMAGENET_WEIGHTS to a local torchvision resnet50 state dict (nothing is downloaded)}"
launch main.py "$DATASET" RGB \
  --model tsn --arch resnet50 --num_segments 8 --consensus_type avg --dropout 0.5 --npb \
  --lr 0.01 --lr_steps 20 40 --epochs 50 --batch-size "$BATCH" --gd 20 --wd 5e-4 \
  --eval-freq 1 -j 8 --pretrain imagenet --pretrained_weights "$IMAGENET_WEIGHTS" "$@"
