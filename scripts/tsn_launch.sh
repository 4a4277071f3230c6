# Shared by scripts/{ucf101,hmdb51}_tsn.sh (sourced): TSN (ResNet-50, 8 segments, average consensus)
# fine-tuned on split 1 with the TSM repository's UCF101 recipe: lr 0.001 for a total batch of 64,
# x0.1 at epochs 10 and 20, 25 epochs, dropout 0.8, gradient clip 20, partial BN (the default), new
# classifier at 5x/10x lr.
# Variables: KINETICS_CKPT (fine-tune from a Kinetics checkpoint) or IMAGENET_WEIGHTS (from ImageNet
# weights), local files, one of them required; NGPU processes (scripts/launch.sh) of BATCH (64 / NGPU)
# clips each. Extra arguments are passed on to main.py.
source scripts/launch.sh
tsn_run() {
    local dataset=$1; shift
    local batch=${BATCH:-$((64 / NGPU))}
    local init
    if [ -n "${KINETICS_CKPT:-}" ]; then
        init=(--tune_from "$KINETICS_CKPT")
    elif [ -n "${IMAGENET_WEIGHTS:-}" ]; then
        init=(--pretrain imagenet --pretrained_weights "$IMAGENET_WEIGHTS")
    else
        echo "set KINETICS_CKPT or IMAGENET_WEIGHTS (local files; nothing is downloaded)" >&2
        return 2
    fi
    launch main.py "$dataset" RGB --split 1 \
        --model tsn --arch resnet50 --num_segments 8 --consensus_type avg --dropout 0.8 \
        --lr 0.001 --lr_steps 10 20 --epochs 25 --batch-size "$batch" --gd 20 --wd 5e-4 \
        --eval-freq 1 -j 8 "${init[@]}" "$@"
}
