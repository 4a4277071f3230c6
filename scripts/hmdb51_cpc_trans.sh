#!/usr/bin/env bash
# CPC-Trans on HMDB51 split 1, from the UCF101 pre-training (as published: pre-trained on UCF101
# only; run scripts/ucf101_cpc_trans.sh first, or give PRE=<checkpoint>): linear probe and full
# fine-tune selected on HMDB51's validation list (the clips split 1 leaves unused), then one test
# on the official test list. Published fine-tuned top-1: 29.9 at 128 px, 34.6 at 224 px.
# Usage: ROOT=data/hmdb51 NGPU=4 bash scripts/hmdb51_cpc_trans.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
ROOT=${ROOT:-${STTNET_DATA:-data}/hmdb51}
CROP=${CROP:-128}
OUT=${OUT:-checkpoint/cpc_trans_hmdb51}
LOGS=${LOGS:-log/cpc_trans_hmdb51}
PRE=${PRE:-$(ls checkpoint/cpc_trans_ucf101/pre/*/ckpt.best.pth | head -1)}
source scripts/launch.sh   # launch: NGPU processes (torchrun), see there
best() { ls "$OUT/$1"/*/ckpt.best.pth | head -1; }
COMMON=(hmdb51 RGB --root_path "$ROOT" --split 1 --arch resnet18 --num_seq 5 --seq_stride 3 --crop_size "$CROP"
        --cpc_layers 2 --cpc_heads 4 --model cpc_trans_ft --tune_from "$PRE" --optimizer adam --lr 1e-3 --wd 1e-3
        --dropout 0.5 -b 32 -j 8)

launch main.py "${COMMON[@]}" --train_what last --epochs 100 --lr_steps 60 80 --root_model "$OUT/probe" --root_log "$LOGS/probe"
launch main.py "${COMMON[@]}" --train_what ft --epochs 150 --lr_steps 100 130 --root_model "$OUT/ft" --root_log "$LOGS/ft"
for stage in probe ft; do
    launch test_models.py --weights "$(best $stage)" --test_list "$ROOT/hmdb51_test_split_1_rawframes.txt" --softmax \
        --save_dir "$LOGS/test_$stage"
done
