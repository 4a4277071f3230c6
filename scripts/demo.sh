#!/usr/bin/env bash
# `make demo`: the whole path on a CPU in a few minutes, no downloads.
#   1. generate the synthetic benchmark (tools/synthetic.py) into data/synthetic (kept if present)
#   2. train a small TSN (ResNet-18, 3 segments, 56 px) from scratch, with progress bars
#   3. test the best checkpoint with test_models.py (per-class accuracy, confusion matrix picture)
# Settings can be overridden from the environment, e.g. EPOCHS=10 CROP=96 bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EPOCHS=${EPOCHS:-4}
CROP=${CROP:-56}
SEGMENTS=${SEGMENTS:-3}
WORKERS=${WORKERS:-2}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

echo "== 1/3 synthetic benchmark -> data/synthetic"
"$PYTHON" tools/synthetic.py --out data/synthetic -j "$WORKERS"

RUN=STTNet_synthetic_RGB_resnet18_avg_segment${SEGMENTS}_e${EPOCHS}_demo
echo "== 2/3 training $RUN on the CPU"
"$PYTHON" main.py synthetic RGB --root_path data/synthetic --arch resnet18 --num_segments "$SEGMENTS" --crop_size "$CROP" \
  --scale_size $((CROP * 9 / 8)) --npb --optimizer adam --lr 1e-3 --wd 1e-4 --lr_type cos \
  --epochs "$EPOCHS" --batch-size 8 --dropout 0.3 -j "$WORKERS" --suffix demo \
  --root_log log --root_model checkpoint

echo "== 3/3 testing the best checkpoint on the test list"
"$PYTHON" test_models.py --weights "checkpoint/$RUN/ckpt.best.pth" -j "$WORKERS" --save_dir "log/$RUN/test"

echo
echo "logs, args.json and TensorBoard events: log/$RUN/   (tensorboard --logdir log)"
echo "checkpoints (last, best):               checkpoint/$RUN/ckpt.pth, ckpt.best.pth"
echo "test metrics and confusion matrix:      log/$RUN/test/ (metrics.json, confusion.png)"
