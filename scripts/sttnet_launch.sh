#!/usr/bin/env bash
# Shared by scripts/*_sttnet.sh (sourced): runs `main.py ARGS...` on GPUS processes.
#   LAUNCHER=launch    python -m torch.distributed.launch --master_port PORT --nproc_per_node=GPUS (the published form)
#   LAUNCHER=torchrun  torchrun (python -m torch.distributed.run) with the same options
#   GPUS (default 1), PORT (default 29500), PYTHON (default python);
#   TUNE_FROM=ckpt.pth adds --tune_from (the published runs fine-tune from a Kinetics checkpoint);
#   PRETRAINED=resnet50.pth adds --pretrain imagenet --pretrained_weights (local file, never downloaded);
#   DRY_RUN=1 prints the command instead of running it.
PYTHON=${PYTHON:-python}
LAUNCHER=${LAUNCHER:-launch}
GPUS=${GPUS:-1}
PORT=${PORT:-29500}

sttnet_launch() {
    local launcher
    case "$LAUNCHER" in
        launch) launcher=("$PYTHON" -m torch.distributed.launch) ;;
        torchrun) launcher=("$PYTHON" -m torch.distributed.run) ;;
        *) echo "LAUNCHER must be 'launch' or 'torchrun' (got '$LAUNCHER')" >&2; return 2 ;;
    esac
    local cmd=("${launcher[@]}" --master_port "$PORT" "--nproc_per_node=$GPUS" main.py "$@")
    if [ -n "${TUNE_FROM:-}" ]; then cmd+=("--tune_from=$TUNE_FROM"); fi
    if [ -n "${PRETRAINED:-}" ]; then cmd+=(--pretrain imagenet --pretrained_weights "$PRETRAINED"); fi
    if [ -n "${DRY_RUN:-}" ]; then printf '%q ' "${cmd[@]}"; echo; else "${cmd[@]}"; fi
}
