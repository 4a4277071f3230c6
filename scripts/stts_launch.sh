# Shared by scripts/{ucf101,hmdb51}_stts.sh: train with the STTS recipe, then test the best checkpoint.
# Variables: ARCH (stts), NGPU (scripts/launch.sh), EPOCHS (100), CLIPS (10 test clips), DATA_FORMAT (rawframes),
# ROOT (dataset root; default $STTNET_DATA/<dataset>).
source scripts/launch.sh
stts_run() {
    local dataset=$1; shift
    local arch=${ARCH:-stts} epochs=${EPOCHS:-100} clips=${CLIPS:-10}
    local format=${DATA_FORMAT:-rawframes}
    local root=${ROOT:-${STTNET_DATA:?set STTNET_DATA or ROOT}/$dataset}
    if (( 16 % NGPU )); then echo "NGPU must divide the batch of 16 (got $NGPU)" >&2; return 2; fi
    local run_dir="runs/${dataset}_stts/$arch"
    launch main.py "$dataset" RGB --root_path "$root" --data_format "$format" --split 1 \
        --arch "$arch" --clip_len 32 --clip_sampling chunks --crop_size 112 --scale_size 128 \
        --batch-size $((16 / NGPU)) --optimizer adam --lr 1e-4 --wd 5e-4 --lr_type plateau \
        --epochs "$epochs" --eval-freq 1 -j 8 --root_model "$run_dir/ckpt" --root_log "$run_dir/log" "$@"
    local best
    best=$(ls -t "$run_dir"/ckpt/*/ckpt.best.pth | head -1)
    launch test_models.py --weights "$best" --root_path "$root" --num_clips "$clips" --test_crops 1 \
        --softmax -j 8 --save_dir "$run_dir/test"     # the dataset's official test list
}
