#!/usr/bin/env bash
# Which spatio-temporal block reads frame order? Every block trained on the synthetic benchmark
# (4 appearance classes + 4 pairs of time-reversed classes) with one shared budget, 3 seeds.
#
# Budget (identical for every block and seed): ResNet-18 from scratch, 8 segments, 64 px crops of
# 80x106 frames, img_feature_dim 256, dropout 0.5, EPOCHS epochs of SGD (lr 0.01, momentum 0.9,
# wd 5e-4, cosine schedule, batch 8, partial BN off since nothing is pretrained), model selection
# on the validation list, one test on the test list (1 clip x 1 centre crop, softmax).
# `avg` (TSN) cannot tell a video from its time reversal: it should sit near 4/12 + 8/12 x 1/2 =
# 67% at best; a block that uses frame order can go beyond that.
# Results: <OUT>/results.csv (test top-1 per seed, mean, std) and <OUT>/summary.md.
# Runtime: meant for one GPU. The CPU budget of docs/results.md (benchmark v3; the STTNet ablation's
# budget, so that `avg` is its TSN row; about 4-5 minutes of CPU per run):
#   DATA=data/synthetic_v3 ARCH=tinynet SEGMENTS=4 FEATURE_DIM=128 DROPOUT=0.2 BATCH=16 EPOCHS=40 \
#   OPTIM="--optimizer adam --lr 2e-3 --wd 1e-4 --warmup_epochs 3" EXTRA="--gd 20" OMP_NUM_THREADS=1 WORKERS=1 \
#   bash scripts/synthetic_stmodeling_blocks.sh
# Usage: bash scripts/synthetic_stmodeling_blocks.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DATA=${DATA:-data/synthetic_stmodeling}
OUT=${OUT:-runs/synthetic_stmodeling}
SEEDS=${SEEDS:-"0 1 2"}
EPOCHS=${EPOCHS:-30}
BLOCKS=${BLOCKS:-"avg MLP TRN TRNmultiscale RNN_TANH RNN_RELU LSTM GRU BLSTM FCN FCN3D"}
# The budget, overridable as a whole (docs/results.md records what each table used).
ARCH=${ARCH:-resnet18}
SEGMENTS=${SEGMENTS:-8}
CROP=${CROP:-64}
SCALE=${SCALE:-72}
FEATURE_DIM=${FEATURE_DIM:-256}
DROPOUT=${DROPOUT:-0.5}
BATCH=${BATCH:-8}
OPTIM=${OPTIM:-"--optimizer sgd --lr 0.01 --momentum 0.9 --wd 5e-4"}
EXTRA=${EXTRA:-}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
WORKERS=${WORKERS:-2}

if [ ! -f "$DATA/train_rawframes.txt" ]; then
    "$PYTHON" tools/synthetic.py --out "$DATA" --videos_per_class 40 10 10 --size 80 106 --seed 0 --formats rawframes
fi
for seed in $SEEDS; do
    for block in $BLOCKS; do
        dir="$OUT/seed$seed/$block"
        "$PYTHON" main.py synthetic RGB --root_path "$DATA" --model tsn --arch "$ARCH" --num_segments "$SEGMENTS" \
            --consensus_type "$block" --img_feature_dim "$FEATURE_DIM" --dropout "$DROPOUT" --crop_size "$CROP" \
            --scale_size "$SCALE" --no_partialbn -b "$BATCH" $OPTIM $EXTRA \
            --lr_type cos --epochs "$EPOCHS" --seed "$seed" -j "$WORKERS" --no_progress \
            --root_model "$dir/ckpt" --root_log "$dir/log"
        for view in test test_reversed; do   # test_reversed: the same views played backwards
            "$PYTHON" test_models.py --weights "$(ls "$dir"/ckpt/*/ckpt.best.pth | head -1)" --softmax -j "$WORKERS" \
                --no_progress --save_dir "$dir/$view" $([ "$view" = test ] || echo --reverse_time)
        done
    done
done

"$PYTHON" tools/summarize_runs.py "$OUT" --names $BLOCKS --seeds $SEEDS --label block --pairs --reversal
