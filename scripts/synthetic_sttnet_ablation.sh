#!/usr/bin/env bash
# What does each part of STTNet add? Five models on the synthetic benchmark (4 appearance classes +
# 4 pairs of time-reversed classes), one shared budget, 3 seeds:
#   tsn                  TSN, avg consensus
#   aggregator           + SCSA aggregator                      (--no_rbrf --no_rbrc)
#   aggregator_rbrf      + aggregator + RBRF spatial pretext    (--no_rbrc)
#   aggregator_rbrc      + aggregator + RBRC temporal pretext   (--no_rbrf)
#   sttnet               aggregator + RBRF + RBRC (the full model, default weights 0.01 / 0.1)
#
# Budget (identical for every model and seed): ResNet-18 from scratch, 8 segments, 112 px crops of
# 128x170 frames (4x4 maps), dropout 0.5, EPOCHS epochs of SGD (lr 0.01, momentum 0.9, wd 5e-4,
# cosine, batch 8, gradient clip 20, partial BN off since nothing is pretrained); the best
# validation epoch is tested once on the test list (1 clip x 1 centre crop, softmax).
# avg pooling cannot tell a video from its time reversal (at best 4/12 + 8/12 x 1/2 = 67%); the
# aggregator attends across frames, so it can.
# Results: <OUT>/results.csv (test top-1 per seed, mean, std; last-epoch training pretext accuracy)
# and <OUT>/summary.md. Meant for one GPU (NGPU>1 uses torchrun); on a CPU lower EPOCHS and SEEDS.
#   bash scripts/synthetic_sttnet_ablation.sh          (MODELS="tsn sttnet" SEEDS=0 EPOCHS=2 for a try)
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DATA=${DATA:-data/synthetic}
OUT=${OUT:-runs/synthetic_sttnet_ablation}
SEEDS=${SEEDS:-"0 1 2"}
EPOCHS=${EPOCHS:-30}
MODELS=${MODELS:-"tsn aggregator aggregator_rbrf aggregator_rbrc sttnet"}
# The budget, overridable as a whole (docs/results.md records what each table used).
ARCH=${ARCH:-resnet18}
CROP=${CROP:-112}
SCALE=${SCALE:-128}
BATCH=${BATCH:-8}
OPTIM=${OPTIM:-"--optimizer sgd --lr 0.01 --momentum 0.9 --wd 5e-4"}
EXTRA=${EXTRA:-}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

flags_of() {
    case "$1" in
        tsn) echo "--model tsn" ;;
        aggregator) echo "--model sttnet --no_rbrf --no_rbrc" ;;
        aggregator_rbrf) echo "--model sttnet --no_rbrc" ;;
        aggregator_rbrc) echo "--model sttnet --no_rbrf" ;;
        sttnet) echo "--model sttnet" ;;
        *) echo "unknown model '$1' in MODELS" >&2; exit 2 ;;
    esac
}
for name in $MODELS; do flags_of "$name" > /dev/null; done
source scripts/launch.sh   # launch: NGPU processes (torchrun), see there

if [ ! -f "$DATA/train_rawframes.txt" ]; then
    "$PYTHON" tools/synthetic.py --out "$DATA" --videos_per_class 40 10 10 --seed 0 --formats rawframes
fi
for seed in $SEEDS; do
    for name in $MODELS; do
        dir="$OUT/seed$seed/$name"
        # shellcheck disable=SC2046
        launch main.py synthetic RGB --root_path "$DATA" --arch "$ARCH" --num_segments 8 $(flags_of "$name") \
            --consensus_type avg --dropout 0.5 --crop_size "$CROP" --scale_size "$SCALE" --no_partialbn -b "$BATCH" \
            $OPTIM $EXTRA --lr_type cos --gd 20 --epochs "$EPOCHS" \
            --seed "$seed" -j 4 --no_progress --root_model "$dir/ckpt" --root_log "$dir/log"
        for view in test test_reversed; do   # test_reversed: the same views played backwards
            "$PYTHON" test_models.py --weights "$(ls "$dir"/ckpt/*/ckpt.best.pth | head -1)" --softmax -j 4 \
                --no_progress --save_dir "$dir/$view" $([ "$view" = test ] || echo --reverse_time)
        done
    done
done

"$PYTHON" tools/summarize_runs.py "$OUT" --names $MODELS --seeds $SEEDS --pairs --reversal --pretext rbrf_acc rbrc_acc
