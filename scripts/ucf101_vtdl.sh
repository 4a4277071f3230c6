#!/usr/bin/env bash
# VTDL on UCF101 split 1 with I3D (scripts/vtdl_launch.sh): pre-train on the training list (90% of
# the official training split, queue K=5000) -> full fine-tune of the plain I3D (lr 5e-4) -> test;
# linear probe on frozen per-video features. Lists come from tools/gen_lists.py.
# Published (I3D, fine-tuned, 1 clip): full VTDL 82.3 on UCF101.
# Usage: ROOT=data/ucf101 NGPU=4 bash scripts/ucf101_vtdl.sh   (batch sizes are per GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/vtdl_launch.sh
vtdl_run ucf101 5000 5e-4
