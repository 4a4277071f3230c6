#!/usr/bin/env bash
# Something-Something V2 with multi-scale TRN (Zhou et al. 2018; Köpüklü et al. 2021): BN-Inception
# per frame (BGR 0-255 input, declared in its input_spec), 16 segments, relations at scales 16..2.
# Flips swap the left/right classes (the dataset's flip map). Then a test with 2 clips x 3 crops.
# ImageNet initialisation needs a local BN-Inception state dict with the released model's layer names:
#   PRETRAINED=/path/bn_inception.pth ROOT=data/somethingv2 NGPU=8 bash scripts/somethingv2_stmodeling.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
ROOT=${ROOT:-${STTNET_DATA:-data}/somethingv2}
PRETRAINED=${PRETRAINED:-}
OUT=${OUT:-checkpoint/stmodeling_somethingv2}
LOGS=${LOGS:-log/stmodeling_somethingv2}
source scripts/launch.sh   # launch: NGPU processes (torchrun), see there
INIT=()
if [ -n "$PRETRAINED" ]; then INIT=(--pretrain imagenet --pretrained_weights "$PRETRAINED"); fi

launch main.py somethingv2 RGB --root_path "$ROOT" --model tsn --arch BNInception --num_segments 16 --consensus_type TRNmultiscale \
    --img_feature_dim 256 --dropout 0.8 -b 8 --optimizer sgd --lr 0.001 --momentum 0.9 --wd 5e-4 \
    --epochs 60 --lr_steps 25 40 --gd 20 -j 8 --root_model "$OUT" --root_log "$LOGS" ${INIT[@]+"${INIT[@]}"} "$@"
launch test_models.py --weights "$(ls "$OUT"/*/ckpt.best.pth | head -1)" --num_clips 2 --test_crops 3 --softmax \
    --save_dir "$LOGS/test_2clip_3crop"
