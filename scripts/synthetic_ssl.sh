#!/usr/bin/env bash
# Does self-supervised pre-training help on the synthetic benchmark? Random init vs CPC-Trans vs
# VTDL, 3 seeds, each evaluated by a linear probe and by full fine-tuning, same budget for all.
#
# Budget (identical for every method and seed): the same 144 training videos (12 per class,
# 64x80 px frames, 24-48 frames), 48 px crops, PRE_EPOCHS (16) pre-training epochs (batch 8, selection
# on the validation list's pretext loss), FT_EPOCHS (8) fine-tuning epochs (batch 8, selection on
# validation top-1), cosine learning-rate schedules, one test on the 48 test videos.
# Networks: CPC-Trans = ResNet-18 (256-d last stage) + 2-layer transformer + ConvGRU, N=5 steps at
# stride 3; VTDL = R3D-18 on 8-frame clips at stride 2, queue 128, key-encoder momentum 0.99 (the
# published 0.999 assumes ~10^5 steps: over the ~300 steps here the key encoder would stay ~75%
# its random initialisation), shuffling BN over 4 groups of the batch on the one process
# (--bn_splits 4). Random init = the same networks without pre-training.
# Linear probe = logistic regression (scikit-learn) on frozen features from tools/extract_features.py
# (5 clips per video averaged), fitted on the training list and scored on the test list.
# Pretext accuracy (top-1 / top-5 of the InfoNCE retrieval, train and validation) is recorded per
# epoch in <OUT>/pretext_curves.csv; final numbers in <OUT>/results.csv and <OUT>/summary.md.
#
# Runtime on a quiet 2-core CPU (OMP_NUM_THREADS=2): a CPC-Trans pre-training epoch takes ~8 s,
# a VTDL one ~45 s (3 R3D-18 passes per clip), an R3D-18 fine-tuning epoch ~30 s; about half an
# hour per seed with PRE_EPOCHS=16. Scale with PRE_EPOCHS, FT_EPOCHS, SEEDS, CROP,
# VIDEOS_PER_CLASS, SIZE (frame height and width). A seed whose last fine-tuning has finished is
# not rerun, so seeds can run side by side (SEEDS=1 ...) and a final call with all of them only
# summarises. Usage: bash scripts/synthetic_ssl.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
DATA=${DATA:-data/synthetic_ssl}
OUT=${OUT:-runs/synthetic_ssl}
SEEDS=${SEEDS:-"0 1 2"}
PRE_EPOCHS=${PRE_EPOCHS:-16}
FT_EPOCHS=${FT_EPOCHS:-8}
CROP=${CROP:-48}
VIDEOS_PER_CLASS=${VIDEOS_PER_CLASS:-"12 4 4"}
SIZE=${SIZE:-"64 80"}
export OMP_NUM_THREADS=${OMP_NUM_THREADS:-2}

if [ ! -f "$DATA/train_rawframes.txt" ]; then
    "$PYTHON" tools/synthetic.py --out "$DATA" --videos_per_class $VIDEOS_PER_CLASS --size $SIZE --seed 0
fi
BASE=(synthetic RGB --root_path "$DATA" --crop_size "$CROP" -b 8 -j 1 --no_progress --print_freq 0)
CPC=(--arch resnet18 --num_seq 5 --seq_stride 3 --cpc_layers 2 --cpc_heads 4 --cpc_ff_dim 512)
VTDL=(--arch r3d18 --clip_len 8 --frame_stride 2)
best() { ls "$1"/*/ckpt.best.pth | head -1; }

probe() {  # probe <name> <checkpoint> [extract_features options]: linear probe -> $dir/features_<name>_test.probe.json
    local name=$1 ckpt=$2; shift 2
    "$PYTHON" tools/extract_features.py "$ckpt" --subset train --clips 5 -j 1 --no_progress \
        --out "$dir/features_${name}_train.npz" "$@"
    "$PYTHON" tools/extract_features.py "$ckpt" --subset test --clips 5 -j 1 --no_progress \
        --out "$dir/features_${name}_test.npz" --probe_train "$dir/features_${name}_train.npz" "$@"
}

finetune() {  # finetune <name> [main.py options]: full fine-tune, test -> $dir/ft_<name>/metrics.json
    local name=$1; shift
    "$PYTHON" main.py "${BASE[@]}" --seed "$seed" --epochs "$FT_EPOCHS" --lr_type cos --root_model "$dir/ckpt_ft_$name" \
        --root_log "$dir/log_ft_$name" "$@"
    "$PYTHON" test_models.py --weights "$(best "$dir/ckpt_ft_$name")" --softmax -j 1 --no_progress \
        --save_dir "$dir/ft_$name"
}

for seed in $SEEDS; do
    dir="$OUT/seed$seed"
    if [ -f "$dir/ft_r3d_random/metrics.json" ]; then
        echo "seed $seed: done already ($dir), not rerun"
        continue
    fi
    mkdir -p "$dir"
    # pre-training (same data, epochs and batch for both methods)
    "$PYTHON" main.py "${BASE[@]}" "${CPC[@]}" --ssl cpc_trans --pred_step 3 --optimizer adam --lr 1e-3 --wd 1e-5 \
        --epochs "$PRE_EPOCHS" --lr_type cos --seed "$seed" --root_model "$dir/ckpt_pre_cpc" --root_log "$dir/log_pre_cpc"
    "$PYTHON" main.py "${BASE[@]}" "${VTDL[@]}" --ssl vtdl --moco_k 128 --moco_m 0.99 --bn_splits 4 --optimizer sgd --lr 0.01 --wd 1e-4 \
        --epochs "$PRE_EPOCHS" --lr_type cos --seed "$seed" --root_model "$dir/ckpt_pre_vtdl" --root_log "$dir/log_pre_vtdl"
    cpc=$(best "$dir/ckpt_pre_cpc")
    vtdl=$(best "$dir/ckpt_pre_vtdl")

    # linear probes: pre-trained vs the same network at random init
    probe cpc_trans "$cpc"
    probe cpc_random "$cpc" --random_init --seed "$seed"
    probe vtdl "$vtdl"
    probe r3d_random "$vtdl" --random_init --seed "$seed"

    # full fine-tuning (Adam 1e-3 / wd 1e-3, encoder at lr/10 for CPC-Trans; SGD 0.01 for R3D-18)
    finetune cpc_trans "${CPC[@]}" --model cpc_trans_ft --train_what ft --tune_from "$cpc" --optimizer adam --lr 1e-3 --wd 1e-3
    finetune cpc_random "${CPC[@]}" --model cpc_trans_ft --train_what ft --optimizer adam --lr 1e-3 --wd 1e-3
    finetune vtdl "${VTDL[@]}" --tune_from "$vtdl" --optimizer sgd --lr 0.01 --wd 1e-4 --dropout 0.5
    finetune r3d_random "${VTDL[@]}" --optimizer sgd --lr 0.01 --wd 1e-4 --dropout 0.5
done

"$PYTHON" - "$OUT" $SEEDS <<'EOF'
import csv, glob, json, os, re, sys
import numpy as np
out, seeds = sys.argv[1], sys.argv[2:]
line = re.compile(r"^epoch (\d+) (train|validation)\b.*?pretext_top1 ([\d.]+) pretext_top5 ([\d.]+)")
with open(os.path.join(out, "pretext_curves.csv"), "w", newline="") as f:
    w = csv.writer(f)
    w.writerow(["seed", "method", "epoch", "split", "pretext_top1", "pretext_top5"])
    for seed in seeds:
        for method in ("cpc", "vtdl"):
            for log in glob.glob(f"{out}/seed{seed}/log_pre_{method}/*/log.txt"):
                for text in open(log):
                    m = line.match(text)
                    if m:
                        w.writerow([seed, method, m[1], m[2], m[3], m[4]])
rows = []
for name in ("cpc_random", "cpc_trans", "r3d_random", "vtdl"):
    for protocol in ("probe", "ft"):
        accs = []
        for seed in seeds:
            path = (f"{out}/seed{seed}/features_{name}_test.probe.json" if protocol == "probe"
                    else f"{out}/seed{seed}/ft_{name}/metrics.json")
            accs.append(json.load(open(path))["top1"])
        rows.append([name, protocol, *accs, np.mean(accs), np.std(accs)])
with open(os.path.join(out, "results.csv"), "w", newline="") as f:
    csv.writer(f).writerows([["model", "protocol", *[f"seed{s}" for s in seeds], "mean", "std"], *rows])
with open(os.path.join(out, "summary.md"), "w") as f:
    f.write("| model | protocol | test top-1 (mean ± std over seeds) |\n| --- | --- | --- |\n")
    for r in rows:
        f.write(f"| {r[0]} | {'linear probe' if r[1] == 'probe' else 'fine-tune'} | {r[-2]:.1f} ± {r[-1]:.1f} |\n")
print(open(os.path.join(out, "summary.md")).read())
EOF
