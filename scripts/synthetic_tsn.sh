#!/usr/bin/env bash
# TSN on the synthetic benchmark (12 classes: 4 recognisable from one frame, 4 pairs of
# time-reversed classes that no order-agnostic model can separate; see docs/synthetic.md).
# From scratch (no pretrained weights), every BatchNorm trained, Adam with a cosine schedule.
# Runs on a CPU in tens of minutes or on one GPU in a few; NGPU=2 ... uses torchrun.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
source scripts/launch.sh   # launch: NGPU processes (torchrun), see there
[ -f data/synthetic/train_rawframes.txt ] || "$PYTHON" tools/synthetic.py --out data/synthetic
launch main.py synthetic RGB \
  --model tsn --arch resnet18 --num_segments 8 --consensus_type avg --crop_size 112 --scale_size 128 --npb \
  --optimizer adam --lr 1e-3 --wd 1e-4 --lr_type cos --warmup_epochs 1 --epochs 20 --batch-size 16 \
  --dropout 0.5 --eval-freq 1 -j 4 "$@"
