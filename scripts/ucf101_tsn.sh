#!/usr/bin/env bash
# TSN (ResNet-50, 8 segments, average consensus) on UCF101 split 1, with the fine-tuning recipe of
# the TSM repository's UCF101 script (see scripts/tsn_launch.sh).
#   KINETICS_CKPT=... bash scripts/ucf101_tsn.sh     fine-tune from a Kinetics checkpoint (best)
#   IMAGENET_WEIGHTS=resnet50.pth bash scripts/ucf101_tsn.sh    or from ImageNet weights
# NGPU processes of BATCH clips each (NGPU x BATCH = 64 as published); extra arguments are passed on.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tsn_launch.sh
tsn_run ucf101 "$@"
