#!/usr/bin/env bash
# `make demo`: the whole path on a CPU in a few minutes, no downloads.
#   1. generate the synthetic benchmark v3 (tools/synthetic.py, 72x72 frames) into data/synthetic
#      (kept if present; a folder of another benchmark version is refused: delete it)
#   2. train a small STTNet from scratch (TinyNet backbone, 4 segments, the SCSA aggregator with
#      both self-supervised heads, 64 px centre views + label-aware flips, 40 epochs of Adam with a
#      3-epoch warm-up: about 4 minutes of CPU) with progress bars, TensorBoard events and a text log
#      (MODEL=tsn CONSENSUS=TRN trains the TSN + TRN demo instead)
#   3. test the best checkpoint with test_models.py (per-class accuracy, confusion matrix picture),
#      then on the same views played backwards to measure its use of frame order
# Settings can be overridden from the environment, e.g. EPOCHS=20 MODEL=tsn CONSENSUS=avg bash scripts/demo.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
EPOCHS=${EPOCHS:-40}
ARCH=${ARCH:-tinynet}
MODEL=${MODEL:-sttnet}
CONSENSUS=${CONSENSUS:-avg}
CROP=${CROP:-64}
SEGMENTS=${SEGMENTS:-4}
WORKERS=${WORKERS:-2}
# The figures depend on the intra-op thread count (README, "Reproducibility"): fixed here, not
# inherited from an OMP_NUM_THREADS set for other work.
THREADS=${THREADS:-2}
export OMP_NUM_THREADS=$THREADS

echo "== 1/3 synthetic benchmark -> data/synthetic"
"$PYTHON" tools/synthetic.py --out data/synthetic -j "$WORKERS"

case "$MODEL" in
    # the aggregator sized to TinyNet's 128 channels (256 is ResNet-50's)
    sttnet) TITLE=STTNet; MODEL_FLAGS="--scsa_dim 64" ;;
    tsn) TITLE=TSN; MODEL_FLAGS="--img_feature_dim 128" ;;
    *) echo "MODEL must be sttnet or tsn (got '$MODEL')" >&2; exit 2 ;;
esac
SUFFIX=demo
RUN=${TITLE}_synthetic_RGB_${ARCH}_${CONSENSUS}_segment${SEGMENTS}_e${EPOCHS}_${SUFFIX}
echo "== 2/3 training $RUN on the CPU"
# shellcheck disable=SC2086
"$PYTHON" main.py synthetic RGB --root_path data/synthetic --model "$MODEL" $MODEL_FLAGS --arch "$ARCH" \
  --num_segments "$SEGMENTS" --consensus_type "$CONSENSUS" --crop_size "$CROP" --scale_size $((CROP * 9 / 8)) --npb \
  --optimizer adam --lr 2e-3 --wd 1e-4 --warmup_epochs 3 --lr_type cos --epochs "$EPOCHS" --batch-size 16 --dropout 0.2 \
  -j "$WORKERS" --suffix "$SUFFIX" --root_log log --root_model checkpoint

echo "== 3/3 testing the best checkpoint on the test list (2 clips x 3 crops)"
"$PYTHON" test_models.py --weights "checkpoint/$RUN/ckpt.best.pth" --num_clips 2 --test_crops 3 -j "$WORKERS" \
  --save_dir "log/$RUN/test"
echo "   ... and on the same views played backwards (--reverse_time), to see whether it uses frame order"
"$PYTHON" test_models.py --weights "checkpoint/$RUN/ckpt.best.pth" --num_clips 2 --test_crops 3 -j "$WORKERS" \
  --reverse_time --no_progress --save_dir "log/$RUN/test_reversed"
"$PYTHON" - "log/$RUN/test/scores.npz" "log/$RUN/test_reversed/scores.npz" <<'PY'
import sys
import numpy as np
sys.path.insert(0, ".")
from ops.evaluation import pair_direction_accuracy, reversal_direction_accuracy
from tools.synthetic import APPEARANCE, time_reversed_partner
d, r = np.load(sys.argv[1]), np.load(sys.argv[2])
partner = time_reversed_partner()
shapes = d["labels"] < len(APPEARANCE)
print(f"appearance-class accuracy {100 * np.mean(d['scores'][shapes].argmax(1) == d['labels'][shapes]):.1f}% "
      "(the 4 shape classes, told apart in any single frame)")
print(f"pair-direction accuracy {pair_direction_accuracy(d['scores'], d['labels'], partner):.1f}% "
      "(time-reversed pairs told apart; 50% = blind to frame order)")
print(f"reversal-direction accuracy {reversal_direction_accuracy(d['scores'], r['scores'], d['labels'], partner):.1f}% "
      "(each paired video against itself played backwards; exactly 50% = blind to frame order)")
PY

echo
echo "logs, args.json and TensorBoard events: log/$RUN/   ($PYTHON -m tensorboard.main --logdir log)"
echo "checkpoints (last, best):               checkpoint/$RUN/ckpt.pth, ckpt.best.pth"
echo "test metrics and confusion matrix:      log/$RUN/test/ (metrics.json, confusion.png)"
echo "the same on the reversed views:         log/$RUN/test_reversed/"
