#!/usr/bin/env bash
# STTNet on UCF101 split 1 with the published settings (specs/sttnet.md): ResNet-50, 16 segments,
# batch 4 per GPU, lr 1.5e-4 (x0.1 at epochs 25 and 35), 50 epochs, gradient clip 20, dropout 0.8,
# avg consensus, validation every epoch; aggregator + RBRF (lambda 0.01) + RBRC (lambda 0.1).
#   NGPU=4 TUNE_FROM=kinetics_sttnet.pth bash scripts/ucf101_sttnet.sh [more main.py flags]
#   LAUNCHER=launch ... for python -m torch.distributed.launch (the published form; torchrun is the
#   default); see scripts/launch.sh for every variable.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/sttnet_launch.sh
sttnet_launch ucf101 RGB --arch resnet50 --num_segments 16 --gd 20 --lr 1.5e-4 --lr_steps 25 35 --epochs 50 \
    --batch-size 4 --dropout 0.8 --consensus_type=avg --eval-freq=1 -j 4 --model sttnet "$@"
