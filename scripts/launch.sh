#!/usr/bin/env bash
# Sourced by every script: `launch ENTRY.py ARGS...` runs main.py / test_models.py on NGPU processes.
#   NGPU      processes, one per GPU, default 1 (a plain `$PYTHON ENTRY.py`). A script's batch size
#             is per process. For a subset of the GPUs, name them: CUDA_VISIBLE_DEVICES=2,3 NGPU=2
#   LAUNCHER  torchrun (default: python -m torch.distributed.run --standalone) or launch
#             (python -m torch.distributed.launch --master_port PORT, the published form; the
#             --local_rank it passes is parsed)
#   PORT      rendezvous port for LAUNCHER=launch (default 29500)
#   PYTHON    interpreter (default python)
#   DRY_RUN=1 prints each command instead of running it.
NGPU=${NGPU:-1}
LAUNCHER=${LAUNCHER:-torchrun}
PORT=${PORT:-29500}
PYTHON=${PYTHON:-python}

launch() {
    local cmd
    if [ "$NGPU" -le 1 ]; then
        cmd=("$PYTHON" "$@")
    elif [ "$LAUNCHER" = torchrun ]; then
        cmd=("$PYTHON" -m torch.distributed.run --standalone "--nproc_per_node=$NGPU" "$@")
    elif [ "$LAUNCHER" = launch ]; then
        cmd=("$PYTHON" -m torch.distributed.launch --master_port "$PORT" "--nproc_per_node=$NGPU" "$@")
    else
        echo "LAUNCHER must be 'torchrun' or 'launch' (got '$LAUNCHER')" >&2
        return 2
    fi
    if [ -n "${DRY_RUN:-}" ]; then printf '%q ' "${cmd[@]}"; echo; else "${cmd[@]}"; fi
}
