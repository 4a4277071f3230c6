# Shared by scripts/{ucf101,hmdb51}_vtdl.sh (sourced): VTDL with I3D on split 1, pre-train (MoCo +
# temporal-discriminative negative + TCA) -> full fine-tune of the plain I3D -> test; linear probe
# on frozen per-video features.
# Pre-training sees only the training list; every model selection (ckpt.best.pth) is on the
# validation list; the official test list is read once, at the end, with 1 clip (the published
# protocol) and 10 clips. Temporal negative: frame ranges disjoint from the anchor's
# (selfsupervision/vtdl.py).
# Variables: ROOT ($STTNET_DATA/<dataset>, else data/<dataset>), NGPU (scripts/launch.sh; batch
# sizes are per GPU), ARCH (i3d), OUT (checkpoint/vtdl_<dataset>), LOGS (log/vtdl_<dataset>),
# BN_SPLITS (4: on one process, MoCo's shuffling BN is emulated by encoding the batch in 4
# BatchNorm groups; with NGPU > 1 the keys are shuffled across the processes instead).
source scripts/launch.sh
vtdl_run() {  # vtdl_run <dataset> <queue size K> <fine-tuning lr>
    local dataset=$1 moco_k=$2 ft_lr=$3
    local arch=${ARCH:-i3d}
    local root=${ROOT:-${STTNET_DATA:-data}/$dataset}
    local out=${OUT:-checkpoint/vtdl_$dataset} logs=${LOGS:-log/vtdl_$dataset}
    local shuffle_bn=(--bn_splits "${BN_SPLITS:-4}")
    if (( NGPU > 1 )); then shuffle_bn=(); fi
    local data=("$dataset" RGB --root_path "$root" --split 1 --arch "$arch" --crop_size 224 -j 8)
    local test_list="$root/${dataset}_test_split_1_rawframes.txt"

    # 1. pre-training: 16-frame clips at stride 4, K=moco_k, m=0.999, t=0.07, TCA lambda ~ U(0, 0.1);
    #    SGD lr 0.003, momentum 0.9, wd 1e-4, x0.1 at 120/160/200 of 240 epochs
    launch main.py "${data[@]}" --ssl vtdl --clip_len 16 --frame_stride 4 --moco_k "$moco_k" --moco_m 0.999 \
        --moco_t 0.07 --tca_max 0.1 -b 8 --optimizer sgd --lr 0.003 --momentum 0.9 --wd 1e-4 --epochs 240 \
        --lr_steps 120 160 200 ${shuffle_bn[@]+"${shuffle_bn[@]}"} --root_model "$out/pre" --root_log "$logs/pre"
    local pre
    pre=$(ls "$out"/pre/*/ckpt.best.pth | head -1)

    # 2. full fine-tuning of the plain I3D from the query encoder (pre-training heads dropped): 64
    #    frames, 224 px, batch 4, dropout 0.5, 45 epochs, lr ft_lr, x0.3 at each of 10 20 25 30 35 40
    launch main.py "${data[@]}" --tune_from "$pre" --clip_len 64 --frame_stride 1 --dropout 0.5 -b 4 \
        --optimizer sgd --lr "$ft_lr" --momentum 0.9 --wd 1e-4 --epochs 45 --lr_steps 10 20 25 30 35 40 --lr_decay 0.3 \
        --root_model "$out/ft" --root_log "$logs/ft"
    local ft
    ft=$(ls "$out"/ft/*/ckpt.best.pth | head -1)

    # 3. test on the official test list: 1 centre clip (published protocol) and 10 clips spread over the video
    local clips
    for clips in 1 10; do
        launch test_models.py --weights "$ft" --test_list "$test_list" --num_clips "$clips" --softmax \
            --save_dir "$logs/test_ft_${clips}clip"
    done

    # 4. linear probe on frozen features: one vector per video (query encoder, 10 clips of 16 frames
    #    averaged), logistic regression fitted on the training list, scored on the test list
    "$PYTHON" tools/extract_features.py "$pre" --list "$root/${dataset}_train_split_1_rawframes.txt" --clips 10 \
        --out "$logs/features_train.npz"
    "$PYTHON" tools/extract_features.py "$pre" --list "$test_list" --clips 10 --out "$logs/features_test.npz" \
        --probe_train "$logs/features_train.npz"
}
