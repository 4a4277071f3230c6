#!/usr/bin/env bash
# TSN (ResNet-50, 8 segments, average consensus) on HMDB51 split 1, with the fine-tuning recipe of
# the TSM repository's UCF101 script, used unchanged (see scripts/tsn_launch.sh).
#   KINETICS_CKPT=... bash scripts/hmdb51_tsn.sh     fine-tune from a Kinetics checkpoint (best)
#   IMAGENET_WEIGHTS=resnet50.pth bash scripts/hmdb51_tsn.sh    or from ImageNet weights
# NGPU processes of BATCH clips each (NGPU x BATCH = 64 as published); extra arguments are passed on.
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/tsn_launch.sh
tsn_run hmdb51 "$@"
