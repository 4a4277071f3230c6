#!/usr/bin/env bash
# VTDL on HMDB51 split 1 with I3D (scripts/vtdl_launch.sh): pre-train on HMDB51's training list
# (queue K=3569) -> full fine-tune of the plain I3D (as UCF101 but lr 1e-3) -> test; linear probe
# on frozen per-video features. Model selection on the validation list (the clips split 1 leaves
# unused), never on the test list.
# Published (I3D, fine-tuned, 1 clip): full VTDL 52.9 on HMDB51.
# Usage: ROOT=data/hmdb51 NGPU=4 bash scripts/hmdb51_vtdl.sh   (batch sizes are per GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
source scripts/vtdl_launch.sh
vtdl_run hmdb51 3569 1e-3
