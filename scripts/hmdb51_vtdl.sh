#!/usr/bin/env bash
# VTDL on HMDB51 split 1 with I3D: pre-train on HMDB51's training list (queue K=3569) -> full
# fine-tune of the plain I3D -> test; linear probe on frozen per-video features. Model
# selection on the validation list (the clips split 1 leaves unused), never on the test list.
# Published (I3D, fine-tuned, 1 clip): full VTDL 52.9 on HMDB51.
# Usage: ROOT=data/hmdb51 NGPU=4 bash scripts/hmdb51_vtdl.sh   (batch sizes are per GPU)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
ROOT=${ROOT:-${STTNET_DATA:-data}/hmdb51}
NGPU=${NGPU:-1}
ARCH=${ARCH:-i3d}
OUT=${OUT:-checkpoint/vtdl_hmdb51}
LOGS=${LOGS:-log/vtdl_hmdb51}
run() { if [ "$NGPU" -gt 1 ]; then torchrun --nproc_per_node "$NGPU" "$@"; else "$PYTHON" "$@"; fi; }
best() { ls "$OUT/$1"/*/ckpt.best.pth | head -1; }
DATA=(hmdb51 RGB --root_path "$ROOT" --split 1 --arch "$ARCH" --crop_size 224 -j 8)
TEST_LIST="$ROOT/hmdb51_test_split_1_rawframes.txt"

run main.py "${DATA[@]}" --ssl vtdl --clip_len 16 --frame_stride 4 --moco_k 3569 --moco_m 0.999 --moco_t 0.07 \
    --tca_max 0.1 -b 8 --optimizer sgd --lr 0.003 --momentum 0.9 --wd 1e-4 --epochs 240 --lr_steps 120 160 200 \
    --root_model "$OUT/pre" --root_log "$LOGS/pre"
PRE=$(best pre)

# full fine-tuning of the plain I3D: as UCF101 but lr 1e-3
run main.py "${DATA[@]}" --tune_from "$PRE" --clip_len 64 --frame_stride 1 --dropout 0.5 -b 4 --optimizer sgd \
    --lr 1e-3 --momentum 0.9 --wd 1e-4 --epochs 45 --lr_steps 10 20 25 30 35 40 --root_model "$OUT/ft" --root_log "$LOGS/ft"
for clips in 1 10; do
    run test_models.py --weights "$(best ft)" --test_list "$TEST_LIST" --num_clips "$clips" --softmax \
        --save_dir "$LOGS/test_ft_${clips}clip"
done
# linear probe on frozen query-encoder features (10 clips per video), logistic regression
"$PYTHON" tools/extract_features.py "$PRE" --list "$ROOT/hmdb51_train_split_1_rawframes.txt" --clips 10 \
    --out "$LOGS/features_train.npz"
"$PYTHON" tools/extract_features.py "$PRE" --list "$TEST_LIST" --clips 10 --out "$LOGS/features_test.npz" \
    --probe_train "$LOGS/features_train.npz"
