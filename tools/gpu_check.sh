#!/usr/bin/env bash
# Every CUDA path of the project in one run (about 5-8 minutes on one H100/H200), on synthetic
# data generated here (no dataset needed):
#   DDP over NCCL (2 GPUs; with one GPU, 2 processes over gloo, since NCCL refuses two ranks on
#   one device), --amp bf16 and fp16 (GradScaler), --channels_last, --compile (training and
#   validation), STTNet at the published 4 x 16 x 224 shape, a clip model, VTDL pre-training under
#   DDP, --resume, test_models.py, --decode_device cuda (nvJPEG for frames, NVDEC for videos, the
#   transforms on the GPU, then test_models.py decoding there too; not in the dry run); then
#   tools/benchmark_train.py (full step vs bare loop, ResNet-50 8 x 224, bf16, with and without
#   channels_last; the fixed cost per step with a trivial network) and the data-wait share of a
#   real run with N loader workers.
# Every step runs even when an earlier one failed; each failure is shown with the end of its log,
# and the script exits 1 with the list of failed steps. Results go to <out>/results.md, a block
# for docs/benchmarks.md; logs to <out>/logs/.
#
#   tools/gpu_check.sh [--out DIR] [--workers N]
#   tools/gpu_check.sh --cpu          # dry run on the CPU at tiny sizes (gloo, no CUDA)
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python}
OUT=gpu_check
CPU=0
WORKERS=$(nproc)
while [ $# -gt 0 ]; do
  case "$1" in
    --cpu) CPU=1; shift ;;
    --out) OUT=$2; shift 2 ;;
    --workers) WORKERS=$2; shift 2 ;;
    *) echo "usage: $0 [--cpu] [--out DIR] [--workers N]" >&2; exit 2 ;;
  esac
done
mkdir -p "$OUT/logs"
OUT=$(cd "$OUT" && pwd)
DATA=$OUT/data
RUNS=$OUT/runs
RESULTS=$OUT/results.md
FAILED=()
export PYTHONWARNINGS=ignore

if [ "$CPU" = 1 ]; then
  export CUDA_VISIBLE_DEVICES=""
  export OMP_NUM_THREADS=${OMP_NUM_THREADS:-1}
  NGPU=0
  VIDEOS="4 2 2"; DATA_VIDEOS="8 2 2"; SIZE="48 64"
  TSN="--arch resnet18 --num_segments 2 --crop_size 32 --scale_size 36 -b 4"
  STTNET="--arch resnet18 --num_segments 4 --crop_size 64 --scale_size 72 -b 2"
  CLIP="--arch r3d18 --clip_len 4 --crop_size 32 --scale_size 36 -b 2"
  VTDL="--arch r3d18 --clip_len 2 --crop_size 32 --scale_size 36 -b 2 --moco_k 16"
  BENCH="--arch resnet18 --num_segments 2 --crop_size 32 --batch_size 2 --iters 2 --rounds 2 --device cpu"
  TRIVIAL="--num_segments 2 --crop_size 16 --batch_size 4 --iters 50 --rounds 3 --device cpu"
  WAIT="--arch resnet18 --num_segments 2 --crop_size 32 --scale_size 36 -b 4"
  WORKERS=1
else
  NGPU=$("$PYTHON" -c "import torch; print(torch.cuda.device_count())")
  [ "$NGPU" -ge 1 ] || { echo "gpu_check: no CUDA device visible (use --cpu for the dry run)" >&2; exit 1; }
  VIDEOS="8 4 4"; DATA_VIDEOS="48 4 4"; SIZE="128 170"
  TSN="--arch resnet50 --num_segments 8 --crop_size 224 -b 8"
  STTNET="--arch resnet50 --num_segments 16 --crop_size 224 -b 4"   # the published 4 x 16 x 224
  CLIP="--arch stts_a --clip_len 16 --crop_size 112 -b 8"
  VTDL="--arch r3d18 --clip_len 8 --crop_size 112 -b 8 --moco_k 128"
  BENCH="--arch resnet50 --num_segments 8 --crop_size 224 --batch_size 8 --iters 20 --rounds 5 --device cuda"
  TRIVIAL="--num_segments 2 --crop_size 16 --batch_size 4 --iters 200 --rounds 5 --device cuda"
  WAIT="--arch resnet50 --num_segments 8 --crop_size 224 -b 16"
fi
if [ "$NGPU" -ge 2 ] || [ "$CPU" = 1 ]; then
  DDP_NOTE="2 processes, $([ "$CPU" = 1 ] && echo gloo || echo NCCL)"; DDP_BACKEND=""
else
  DDP_NOTE="2 processes on 1 GPU over gloo (NCCL refuses two ranks on one device)"; DDP_BACKEND="--dist_backend gloo"
fi

# step NAME COMMAND...: run, time, keep the log, record PASS/FAIL.
step() {
  local name=$1; shift
  local log=$OUT/logs/$name.log start=$SECONDS
  printf '%-28s ' "$name"
  if "$@" >"$log" 2>&1; then
    echo "ok   ($((SECONDS - start)) s)"
    echo "| $name | pass | $((SECONDS - start)) |" >>"$OUT/steps.md"
  else
    echo "FAIL ($((SECONDS - start)) s), end of $log:"
    tail -n 25 "$log" | sed 's/^/    /'
    echo "| $name | **FAIL** | $((SECONDS - start)) |" >>"$OUT/steps.md"
    FAILED+=("$name")
  fi
}

# The last train/validation line of a run (its log.txt).
last_line() { grep "$2" "$RUNS/log/$1/log.txt" | tail -n 1; }
run_dir() { ls -d "$RUNS"/log/*"$1"* 2>/dev/null | head -n 1 | xargs -r basename; }

TRAIN="$PYTHON main.py synthetic RGB --root_path $DATA --data_format rawframes --epochs 1 --lr 0.001 \
  --root_log $RUNS/log --root_model $RUNS/ckpt --no_progress --print-freq 5 -j 2"
TORCHRUN="$PYTHON -m torch.distributed.run --standalone --nproc_per_node 2"
: >"$OUT/steps.md"
{
  echo "## gpu_check $(date -u +%Y-%m-%dT%H:%MZ)"
  "$PYTHON" - <<'EOF'
import os, torch
dev = torch.cuda.get_device_name(0) if torch.cuda.is_available() else "CPU (dry run)"
print(f"Machine: {dev} x {torch.cuda.device_count()}, {os.cpu_count()} CPUs, torch {torch.__version__}, "
      f"CUDA {torch.version.cuda}, cuDNN {torch.backends.cudnn.version()}")
EOF
} >"$RESULTS.head"

echo "gpu_check: logs in $OUT/logs"
step data "$PYTHON" tools/synthetic.py --out "$DATA" --videos_per_class $VIDEOS --size $SIZE \
  --formats rawframes videos -j "$(nproc)"
step ddp_tsn_bf16 $TORCHRUN main.py synthetic RGB --root_path "$DATA" --data_format rawframes --epochs 1 \
  --lr 0.001 --root_log "$RUNS/log" --root_model "$RUNS/ckpt" --no_progress --print-freq 5 -j 2 \
  --model tsn $TSN --amp bf16 $DDP_BACKEND --suffix ddp
step fp16_channels_last $TRAIN --model tsn $TSN --amp fp16 --channels_last --suffix fp16_cl
step compile_bf16 $TRAIN --model tsn $TSN --amp bf16 --compile --suffix compiled
step sttnet_published_shape $TRAIN --model sttnet $STTNET --amp bf16 --suffix sttnet
step clip_model $TRAIN $CLIP --amp bf16 --suffix clip
step ddp_vtdl $TORCHRUN main.py synthetic RGB --root_path "$DATA" --data_format rawframes --epochs 1 \
  --lr 0.001 --root_log "$RUNS/log" --root_model "$RUNS/ckpt" --no_progress --print-freq 5 -j 2 \
  --ssl vtdl $VTDL --amp bf16 $DDP_BACKEND --suffix vtdl
FIRST=$RUNS/ckpt/$(run_dir fp16_cl)/ckpt.pth
step resume $TRAIN --model tsn $TSN --amp fp16 --channels_last --suffix fp16_cl --epochs 2 --resume "$FIRST"
RESUMED=$RUNS/ckpt/$(ls "$RUNS/ckpt" | grep "e2_fp16_cl" | head -n 1)/ckpt.pth
step test_models "$PYTHON" test_models.py synthetic --weights "$RESUMED" --root_path "$DATA" \
  --data_format rawframes --num_clips 2 --test_crops 3 --amp bf16 -j 2 --no_progress --save_dir "$RUNS/test"
if [ "$CPU" = 0 ]; then   # decoding on the GPU: frames (nvJPEG), then videos (NVDEC), in the main process
  GPUDEC="$PYTHON main.py synthetic RGB --root_path $DATA --epochs 1 --lr 0.001 --root_log $RUNS/log \
    --root_model $RUNS/ckpt --no_progress --print-freq 5 --model tsn $TSN --amp bf16 --decode_device cuda"
  step gpu_decode_frames $GPUDEC --data_format rawframes --jpeg_decoder torchcodec --suffix gpudec
  step gpu_decode_test "$PYTHON" test_models.py synthetic --root_path "$DATA" --amp bf16 --no_progress \
    --weights "$RUNS/ckpt/$(run_dir _gpudec)/ckpt.pth" --save_dir "$RUNS/test_gpudec"
  step gpu_decode_video $GPUDEC --data_format video --decoder torchcodec --suffix gpuvid
fi
step bench_bf16_channels_last "$PYTHON" tools/benchmark_train.py $BENCH --amp bf16 --channels_last
step bench_bf16 "$PYTHON" tools/benchmark_train.py $BENCH --amp bf16
step bench_fixed_cost "$PYTHON" tools/benchmark_train.py --arch trivial $TRIVIAL
step data_for_wait "$PYTHON" tools/synthetic.py --out "$DATA/wait" --videos_per_class $DATA_VIDEOS \
  --size $SIZE --formats rawframes -j "$(nproc)"
step data_wait $PYTHON main.py synthetic RGB --root_path "$DATA/wait" --data_format rawframes --epochs 2 \
  --lr 0.001 --root_log "$RUNS/log" --root_model "$RUNS/ckpt" --no_progress --print-freq 10 \
  --model tsn $WAIT --amp bf16 --channels_last -j "$WORKERS" --eval-freq 2 --suffix wait

{
  cat "$RESULTS.head"
  echo
  echo "| step | result | seconds |"
  echo "| --- | --- | ---: |"
  cat "$OUT/steps.md"
  echo
  echo "DDP: $DDP_NOTE."
  for name in ddp fp16_cl compiled sttnet clip vtdl gpudec gpuvid wait; do
    dir=$(run_dir "_$name")
    [ -n "$dir" ] && echo "- $dir: $(last_line "$dir" " train: ")"
  done
  for bench in bench_bf16_channels_last bench_bf16 bench_fixed_cost; do
    echo
    echo "$bench (tools/benchmark_train.py):"
    echo
    grep -E "^\||overhead|fixed cost|K=" "$OUT/logs/$bench.log"
  done
  echo
  dir=$(run_dir "_wait")
  share=$(last_line "$dir" " train: " | grep -o "([0-9.]*% of the epoch)")
  echo "Data wait ($WORKERS loader workers, epoch 2 of $dir): ${share:-?} (target <= 5%)."
} >"$RESULTS" 2>/dev/null
rm -f "$RESULTS.head"
echo
cat "$RESULTS"
if [ ${#FAILED[@]} -gt 0 ]; then
  echo
  echo "gpu_check: FAILED: ${FAILED[*]}" >&2
  exit 1
fi
echo "gpu_check: every step passed"
