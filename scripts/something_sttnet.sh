#!/usr/bin/env bash
# STTNet on Something-Something V1 with the published settings (specs/sttnet.md): ResNet-50,
# 16 segments, batch 8 per GPU, lr 1.3e-3 (x0.1 at epochs 35, 45 and 55), 65 epochs, gradient
# clip 20, dropout 0.8, avg consensus, validation every epoch. Horizontal flips swap the
# left/right classes (the dataset config's flip map; only for this dataset).
#   NGPU=8 PRETRAINED=resnet50-imagenet.pth bash scripts/something_sttnet.sh [more main.py flags]
#   LAUNCHER=launch ... for python -m torch.distributed.launch (the published form; torchrun is the
#   default); see scripts/launch.sh for every variable.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sttnet_launch.sh
sttnet_launch something RGB --arch resnet50 --num_segments 16 --gd 20 --lr 1.3e-3 --lr_steps 35 45 55 --epochs 65 \
    --batch-size 8 --dropout 0.8 --consensus_type=avg --eval-freq=1 -j 4 --model sttnet "$@"
