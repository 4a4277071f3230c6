#!/usr/bin/env bash
# Jester with a spatio-temporal block (Köpüklü et al. 2021): SqueezeNet 1.1 per frame, 8 segments,
# MLP consensus over the 8 projected 256-d frame features, batch 16 per GPU. No horizontal flips
# (Jester's left/right gestures are classes; the dataset config turns them off).
# ImageNet initialisation needs a local torchvision squeezenet1_1 state dict (nothing is downloaded):
#   PRETRAINED=/path/squeezenet1_1-b8a52dc0.pth ROOT=data/jester NGPU=4 bash scripts/jester_stmodeling.sh
# Other blocks: CONSENSUS=TRNmultiscale (or TRN, LSTM, GRU, BLSTM, RNN_TANH, RNN_RELU, FCN, FCN3D, avg).
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
ROOT=${ROOT:-${STTNET_DATA:-data}/jester}
CONSENSUS=${CONSENSUS:-MLP}
PRETRAINED=${PRETRAINED:-}
source scripts/launch.sh   # launch: NGPU processes (torchrun), see there
INIT=()
if [ -n "$PRETRAINED" ]; then INIT=(--pretrain imagenet --pretrained_weights "$PRETRAINED"); fi

launch main.py jester RGB --root_path "$ROOT" --model tsn --arch squeezenet1_1 --num_segments 8 --consensus_type "$CONSENSUS" \
    --img_feature_dim 256 --dropout 0.5 -b 16 --optimizer sgd --lr 0.001 --momentum 0.9 --wd 5e-4 \
    --epochs 60 --lr_steps 25 40 --gd 20 -j 8 ${INIT[@]+"${INIT[@]}"} "$@"
