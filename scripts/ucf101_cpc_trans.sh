#!/usr/bin/env bash
# CPC-Trans on UCF101 split 1 (ResNet-18 + 2-layer, 4-head transformer, 128 px, N=5 steps at
# stride 3, P=3 predicted): pre-train without labels -> linear probe and full fine-tune -> test.
# Pre-training sees only the training list (90% of the official training split); every model
# selection (ckpt.best.pth) is on the held-out validation list; the official test list is read
# once, at the end. Lists come from tools/gen_lists.py (ucf101_{train,val,test}_split_1_rawframes.txt).
# Published (UCF101 pre-training, fine-tuned top-1): 58.9 at 128 px, 63.5 at 224 px (CROP=224).
# Pre-training / fine-tuning epochs are not given by the paper: the values below are ours.
# Usage: ROOT=data/ucf101 NGPU=4 bash scripts/ucf101_cpc_trans.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
ROOT=${ROOT:-${STTNET_DATA:-data}/ucf101}
CROP=${CROP:-128}
OUT=${OUT:-checkpoint/cpc_trans_ucf101}
LOGS=${LOGS:-log/cpc_trans_ucf101}
source scripts/launch.sh   # launch: NGPU processes (torchrun), see there
best() { ls "$OUT/$1"/*/ckpt.best.pth | head -1; }
COMMON=(ucf101 RGB --root_path "$ROOT" --split 1 --arch resnet18 --num_seq 5 --seq_stride 3 --crop_size "$CROP"
        --cpc_layers 2 --cpc_heads 4 --optimizer adam -j 8)

# 1. pre-training: dense InfoNCE, Adam lr 1e-3, wd 1e-5; best = lowest validation InfoNCE
launch main.py "${COMMON[@]}" --ssl cpc_trans --pred_step 3 -b 32 --lr 1e-3 --wd 1e-5 --epochs 300 --lr_steps 250 \
    --root_model "$OUT/pre" --root_log "$LOGS/pre"
PRE=$(best pre)

# 2. linear probe: encoder, transformer and ConvGRU frozen; BN1d + Linear trained
launch main.py "${COMMON[@]}" --model cpc_trans_ft --train_what last --tune_from "$PRE" -b 32 --lr 1e-3 --wd 1e-3 \
    --dropout 0.5 --epochs 100 --lr_steps 60 80 --root_model "$OUT/probe" --root_log "$LOGS/probe"

# 3. full fine-tune: Adam lr 1e-3, wd 1e-3, encoder at lr/10
launch main.py "${COMMON[@]}" --model cpc_trans_ft --train_what ft --tune_from "$PRE" -b 32 --lr 1e-3 --wd 1e-3 \
    --dropout 0.5 --epochs 150 --lr_steps 100 130 --root_model "$OUT/ft" --root_log "$LOGS/ft"

# 4. test on the official test list: windows of N steps over the whole video (--test_windows of
#    the run, 10 by default), softmax averaged over windows
for stage in probe ft; do
    launch test_models.py --weights "$(best $stage)" --test_list "$ROOT/ucf101_test_split_1_rawframes.txt" --softmax \
        --save_dir "$LOGS/test_$stage"
done
