#!/usr/bin/env bash
# What does each part of STTNet add? Five models on the synthetic benchmark v2 (4 appearance classes +
# 4 pairs of time-reversed classes), one shared budget, 5 seeds, compared seed by seed:
#   tsn                  TSN, avg consensus
#   aggregator           + SCSA aggregator                      (--no_rbrf --no_rbrc)
#   aggregator_rbrf      + aggregator + RBRF spatial pretext    (--no_rbrc)
#   aggregator_rbrc      + aggregator + RBRC temporal pretext   (--no_rbrf)
#   sttnet               aggregator + RBRF + RBRC (the full model, default weights 0.01 / 0.1)
#   sttnet_clean_query   the full model, its aggregator's query path fed the clean maps in training
#                        (--rbrc_query clean; not in the default list)
#
# Budget (identical for every model and seed; the CPU budget of docs/results.md, about 4 minutes
# of CPU per run): TinyNet from scratch, SEGMENTS (4) segments, 64 px centre views of the 72x72
# frames + label-aware flips (synthetic's --train_aug center), aggregator width 64, dropout 0.2,
# EPOCHS (40) epochs of Adam (lr 2e-3 after a 3-epoch linear warm-up, wd 1e-4, cosine, batch 16,
# gradient clip 20, partial BN off since nothing is pretrained); the best validation epoch is
# tested once on the test list (1 clip x 1 centre crop, softmax), forwards and played backwards.
# Without the warm-up, some seeds stall early and never recover (docs/results.md, version 3).
# avg pooling cannot tell a video from its time reversal (at best 4/12 + 8/12 x 1/2 = 67%); the
# aggregator attends across frames, so it can.
# Results: <OUT>/results.csv (test top-1 per seed, mean, std; last-epoch training pretext accuracy)
# and <OUT>/summary.md (with the gain of every model over TSN of the same seed and a paired t-test).
# NGPU>1 uses torchrun.
#   bash scripts/synthetic_sttnet_ablation.sh          (MODELS="tsn sttnet" SEEDS=0 EPOCHS=2 for a try)
# For the published scale (ResNet, 8 segments, 112 px of larger frames, SGD) on a GPU, set ARCH,
# SEGMENTS, CROP, SCALE, BATCH, OPTIM, EXTRA and DATA (generated with --size) accordingly.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DATA=${DATA:-data/synthetic}
OUT=${OUT:-runs/synthetic_sttnet_ablation}
SEEDS=${SEEDS:-"0 1 2 3 4"}
EPOCHS=${EPOCHS:-40}
MODELS=${MODELS:-"tsn aggregator aggregator_rbrf aggregator_rbrc sttnet"}
# The budget, overridable as a whole (docs/results.md records what each table used).
ARCH=${ARCH:-tinynet}
SEGMENTS=${SEGMENTS:-4}
CROP=${CROP:-64}
SCALE=${SCALE:-72}
BATCH=${BATCH:-16}
DROPOUT=${DROPOUT:-0.2}
OPTIM=${OPTIM:-"--optimizer adam --lr 2e-3 --wd 1e-4 --warmup_epochs 3"}
EXTRA=${EXTRA:-"--scsa_dim 64"}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}
WORKERS=${WORKERS:-2}

flags_of() {
    case "$1" in
        tsn) echo "--model tsn" ;;
        aggregator) echo "--model sttnet --no_rbrf --no_rbrc" ;;
        aggregator_rbrf) echo "--model sttnet --no_rbrc" ;;
        aggregator_rbrc) echo "--model sttnet --no_rbrf" ;;
        sttnet) echo "--model sttnet" ;;
        sttnet_clean_query) echo "--model sttnet --rbrc_query clean" ;;
        *) echo "unknown model '$1' in MODELS" >&2; exit 2 ;;
    esac
}
for name in $MODELS; do flags_of "$name" > /dev/null; done
source scripts/launch.sh   # launch: NGPU processes (torchrun), see there

if [ ! -f "$DATA/train_rawframes.txt" ]; then
    "$PYTHON" tools/synthetic.py --out "$DATA" --seed 0 --formats rawframes
fi
for seed in $SEEDS; do
    for name in $MODELS; do
        dir="$OUT/seed$seed/$name"
        # shellcheck disable=SC2046
        launch main.py synthetic RGB --root_path "$DATA" --arch "$ARCH" --num_segments "$SEGMENTS" $(flags_of "$name") \
            --consensus_type avg --dropout "$DROPOUT" --crop_size "$CROP" --scale_size "$SCALE" --no_partialbn -b "$BATCH" \
            $OPTIM $EXTRA --lr_type cos --gd 20 --epochs "$EPOCHS" \
            --seed "$seed" -j "$WORKERS" --no_progress --root_model "$dir/ckpt" --root_log "$dir/log"
        for view in test test_reversed; do   # test_reversed: the same views played backwards
            "$PYTHON" test_models.py --weights "$(ls "$dir"/ckpt/*/ckpt.best.pth | head -1)" --softmax -j "$WORKERS" \
                --no_progress --save_dir "$dir/$view" $([ "$view" = test ] || echo --reverse_time)
        done
    done
done

# the gain over TSN, seed by seed, where TSN is among the models run
baseline=$(case " $MODELS " in *" tsn "*) echo "--baseline tsn" ;; esac)
# shellcheck disable=SC2086
"$PYTHON" tools/summarize_runs.py "$OUT" --names $MODELS --seeds $SEEDS --pairs --reversal --pretext rbrf_acc rbrc_acc \
    $baseline --data "$DATA"
