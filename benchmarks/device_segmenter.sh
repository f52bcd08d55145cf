#!/usr/bin/env bash
# The segmentation work of issue 4 that needs a GPU, as one call of the device machine (models/segmenter_lite.md,
# "On a GPU"): time the networks on CUDA, train the full-size network from scratch for about MINUTES, and score it
# on the held-out crops. A call carries 64 MiB in all, so first, here:
#
#   mkdir -p out/device
#   python -m facecap_core.data.pack out/seg-v11 out/device/seg.pack.npz --negatives 0.2 --no-landmarks   # 50.4 MiB
#   python benchmarks/eval_segmentation.py --no-detect --draws 1 --save-crops out/device/eval_crops.npz    # 4 MiB
#     (one draw of occluders per face: the default eight would not fit beside the pack)
#   pip download PyMaxflow==1.3.2 --python-version 3.12 --only-binary=:all: --platform manylinux2014_x86_64 \
#       --no-deps -d out/device                                  # the graph cut, for the device's Python 3.12
#   mkdir -p /tmp/facecap-models && mv models/*.pt models/*.onnx models/*.npz /tmp/facecap-models/   # 50 MB
#
# then run `bash benchmarks/device_segmenter.sh` there with carry ["out/device"], and move the models back.
# $OUT receives: cuda.txt (latency), train_full.log, segmenter_full.md (its card: validation figures), eval_full.txt
# (Table 1 on the held-out crops). The full network's weights (453 MB) cannot come back (16 MiB per file).
#
#   bash benchmarks/device_segmenter.sh [DIR=out/device] [MINUTES=6]
# Dry run on a CPU: DEVICE=cpu PROBE=4 NET="--channels 8,16,32,64,128 --fc-width 512" bash ... out/device 0.2
set -uo pipefail
DIR=${1:-out/device}
MINUTES=${2:-6}
DEVICE=${DEVICE:-cuda}
PROBE=${PROBE:-200}                         # iterations that measure the speed before the schedule is set
NET=${NET:---width 1.0 --fc-width 4096}     # the paper's network
OUT=${OUT:-/tmp/facecap-device-out}
RUN=/tmp/facecap-full
rm -rf "$RUN" /tmp/facecap-seg  # a fresh run each call (train would resume an old checkpoint)
mkdir -p "$OUT"
export PYTHONPATH=$PWD

python3 -m pip install --no-index --quiet "$DIR"/*.whl 2>/dev/null || echo "no PyMaxflow wheel installed"
python3 -m facecap_core.data.pack --unpack "$DIR/seg.pack.npz" /tmp/facecap-seg || exit 1
if [ "$DEVICE" = cuda ]; then
    python3 benchmarks/bench_segment_cuda.py > "$OUT/cuda.txt" 2>&1
fi

train() {  # the recipe of the lineage's first run (from scratch, lr 0.01 poly), with the soft-IOU term
    python3 -m facecap_core.segment.train --data /tmp/facecap-seg --out "$RUN/segmenter_full" --run-dir "$RUN" \
        $NET --device "$DEVICE" --batch-size 32 --warmup 500 --lr 0.01 --lr-schedule poly --ema 0.999 \
        --iou-loss 2.0 --threads 8 --val-every 1000 --checkpoint-minutes 60 --no-progress "$@"
}
# a short first sitting measures iterations per second; the schedule is then sized to the minutes left
train --iters 1000000 --finetune-iters 0 --stop-at "$PROBE" --log-every $(( PROBE < 10 ? PROBE : 10 )) > "$OUT/train_full.log" 2>&1
RATE=$(grep -o '[0-9.]* it/s' "$RUN/train.log" | tail -1 | cut -d' ' -f1)
ITERS=$(python3 -c "print(max($PROBE + 10, int(float('${RATE:-1}') * 60 * $MINUTES / 1.1)))")
echo "probe: ${RATE:-?} it/s → $ITERS iterations + $((ITERS / 10)) with negatives" | tee -a "$OUT/train_full.log"
train --iters "$ITERS" --finetune-iters $((ITERS / 10)) --resume >> "$OUT/train_full.log" 2>&1
cp "$RUN/segmenter_full.md" "$OUT/" 2>/dev/null
python3 benchmarks/eval_segmentation.py --crops "$DIR/eval_crops.npz" --model "$RUN/segmenter_full.pt" \
    --threads 16 > "$OUT/eval_full.txt" 2>&1
tail -n 3 "$OUT/train_full.log"; grep -E "^\[|fused \(ours\)" "$OUT/eval_full.txt"
