#!/usr/bin/env bash
# STTS project recipe (specs/clip_models.md) on HMDB51 split 1, from scratch: 32 frames spread over
# the whole video (one per chunk, the published code's sampling; no dropout in R(2+1)D / STTS, the
# models' own 0.5 between C3D's fcs), random 112x112 crop of frames scaled to 128 high + horizontal
# flip, batch 16 in all, Adam lr 1e-4, weight decay 5e-4, lr x0.1 when the validation loss plateaus, 100 epochs.
# Model selection on the validation list (the 1,666 clips the split file tags 0, written by
# tools/gen_lists.py as hmdb51_val_split_1), never on test; then one test of the best checkpoint
# on the official test list (tag 2) with CLIPS clips x 1 centre crop (softmax averaged).
#   ARCH=stts_a NGPU=2 bash scripts/hmdb51_stts.sh [more main.py flags]
# ARCH: stts (default), stts_a, r2plus1d, c3d. Data root: $STTNET_DATA/hmdb51 or ROOT=...
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/stts_launch.sh
stts_run hmdb51 "$@"
