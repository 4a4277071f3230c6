#!/usr/bin/env bash
# VTDL on UCF101 split 1 with I3D: pre-train (MoCo + temporal-discriminative negative + TCA) ->
# full fine-tune of the plain I3D -> test; linear probe on frozen per-video features.
# Pre-training sees only the training list (90% of the official training split); every model
# selection (ckpt.best.pth) is on the held-out validation list; the official test list is read
# once, at the end, with 1 clip (the published protocol) and 10 clips. Temporal negative: frame
# ranges disjoint from the anchor's (selfsupervision/vtdl.py).
# Published (I3D, fine-tuned, 1 clip): full VTDL 82.3 on UCF101.
# Usage: ROOT=data/ucf101 NGPU=4 bash scripts/ucf101_vtdl.sh   (batch sizes are per GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
ROOT=${ROOT:-${STTNET_DATA:-data}/ucf101}
NGPU=${NGPU:-1}
ARCH=${ARCH:-i3d}
OUT=${OUT:-checkpoint/vtdl_ucf101}
LOGS=${LOGS:-log/vtdl_ucf101}
run() { if [ "$NGPU" -gt 1 ]; then torchrun --nproc_per_node "$NGPU" "$@"; else "$PYTHON" "$@"; fi; }
best() { ls "$OUT/$1"/*/ckpt.best.pth | head -1; }
DATA=(ucf101 RGB --root_path "$ROOT" --split 1 --arch "$ARCH" --crop_size 224 -j 8)
TEST_LIST="$ROOT/ucf101_test_split_1_rawframes.txt"

# 1. pre-training: 16-frame clips at stride 4, K=5000, m=0.999, t=0.07, TCA lambda ~ U(0, 0.1);
#    SGD lr 0.003, momentum 0.9, wd 1e-4, x0.1 at 120/160/200 of 240 epochs
run main.py "${DATA[@]}" --ssl vtdl --clip_len 16 --frame_stride 4 --moco_k 5000 --moco_m 0.999 --moco_t 0.07 \
    --tca_max 0.1 -b 8 --optimizer sgd --lr 0.003 --momentum 0.9 --wd 1e-4 --epochs 240 --lr_steps 120 160 200 \
    --root_model "$OUT/pre" --root_log "$LOGS/pre"
PRE=$(best pre)

# 2. full fine-tuning of the plain I3D from the query encoder (pre-training heads dropped): 64
#    frames, 224 px, batch 4, dropout 0.5, 45 epochs, lr 5e-4, x0.1 at 10 20 25 30 35 40
run main.py "${DATA[@]}" --tune_from "$PRE" --clip_len 64 --frame_stride 1 --dropout 0.5 -b 4 --optimizer sgd \
    --lr 5e-4 --momentum 0.9 --wd 1e-4 --epochs 45 --lr_steps 10 20 25 30 35 40 --root_model "$OUT/ft" --root_log "$LOGS/ft"

# 3. test on the official test list: 1 centre clip (published protocol) and 10 clips spread over the video
for clips in 1 10; do
    run test_models.py --weights "$(best ft)" --test_list "$TEST_LIST" --num_clips "$clips" --softmax \
        --save_dir "$LOGS/test_ft_${clips}clip"
done

# 4. linear probe on frozen features: one vector per video (query encoder, 10 clips of 16 frames
#    averaged), logistic regression fitted on the training list, scored on the test list
"$PYTHON" tools/extract_features.py "$PRE" --list "$ROOT/ucf101_train_split_1_rawframes.txt" --clips 10 \
    --out "$LOGS/features_train.npz"
"$PYTHON" tools/extract_features.py "$PRE" --list "$TEST_LIST" --clips 10 --out "$LOGS/features_test.npz" \
    --probe_train "$LOGS/features_train.npz"
