#!/usr/bin/env bash
# Shared by scripts/*_sttnet.sh (sourced): runs `main.py ARGS...` on NGPU processes through
# scripts/launch.sh (NGPU, LAUNCHER=torchrun|launch, PORT, PYTHON, DRY_RUN=1 prints the command);
#   TUNE_FROM=ckpt.pth adds --tune_from (the published runs fine-tune from a Kinetics checkpoint);
#   PRETRAINED=resnet50.pth adds --pretrain imagenet --pretrained_weights (local file, never downloaded).
source scripts/launch.sh

sttnet_launch() {
    local extra=()
    if [ -n "${TUNE_FROM:-}" ]; then extra+=("--tune_from=$TUNE_FROM"); fi
    if [ -n "${PRETRAINED:-}" ]; then extra+=(--pretrain imagenet --pretrained_weights "$PRETRAINED"); fi
    launch main.py "$@" ${extra[@]+"${extra[@]}"}
}
