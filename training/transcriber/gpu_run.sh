#!/usr/bin/env bash
# A larger transcription-network run for a session whose task is lent the device machine (one H200,
# 16 cores, 10 minutes a call): render shards on 15 cores for ~4 minutes, then train a wider net on
# CUDA for ~4 minutes, and bring back the checkpoint and curve under $OUT. Never run on a device yet (no
# session of this project has been lent one); smoke-tested end to end on CPU (below) on 2026-12-03: one
# shard + valid rendered (1,726 s of audio in 55 s on one core), widened 32 -> 64, resumed at step 11500,
# 5 steps, validated, last.pt (2.6 MB) and curve.json written. The CUDA path itself is untested.
#
# Prepare here, once: `bash training/transcriber/gpu_prepare.sh` (the working tree that travels is capped
# at 64 MiB, so only TimGM6mb travels of the training fonts; OPL-3 and MuseScore_General are too large).
# Then: run(command="bash training/transcriber/gpu_run.sh", carry=[".gpu", ".whl"], timeout_s=590)
#
# Smoke test on this machine's CPU before spending device time (same script, small and short; ~4 min):
#   GPU_RUN_DEVICE=cpu GPU_RUN_WORKERS=2 GPU_RUN_SHARDS=0-1 GPU_RUN_RENDER_S=150 GPU_RUN_TRAIN_S=90 \
#   GPU_RUN_MINUTES=0.5 GPU_RUN_BATCH=4 GPU_RUN_EVAL_EVERY=10 GPU_RUN_SKIP_WHEELS=1 GPU_RUN_DATA=/tmp/gpu-data \
#   OUT=/tmp/gpu-out PATH="$PWD/.venv/bin:$PATH" \
#   bash training/transcriber/gpu_run.sh
set -euo pipefail
device=${GPU_RUN_DEVICE:-cuda}
workers=${GPU_RUN_WORKERS:-15}
shard_range=${GPU_RUN_SHARDS:-0-59}
render_s=${GPU_RUN_RENDER_S:-250}
train_s=${GPU_RUN_TRAIN_S:-260}
minutes=${GPU_RUN_MINUTES:-3.5}
batch=${GPU_RUN_BATCH:-32}
eval_every=${GPU_RUN_EVAL_EVERY:-200}
if [ -z "${GPU_RUN_SKIP_WHEELS:-}" ]; then  # the smoke test here runs in .venv, which has them
  python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
fi
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
export STEMSCRIBE_TRAIN_FONTS="$PWD/.gpu/TimGM6mb.sf2"
export STEMSCRIBE_LMMS_SAMPLES="$PWD/.gpu/lmms"
data=${GPU_RUN_DATA:-/tmp/data}
mkdir -p "$data" "$OUT"
gunzip -c .gpu/grooves.json.gz > "$data/grooves.json"
(nvidia-smi --query-gpu=name,memory.total --format=csv || echo "no nvidia-smi: device $device") | tee "$OUT/gpu.txt"
# Seed 1: other clips than the CPU runs' seed 0, so the shards can be pooled later.
timeout "$render_s" python3 -m training.transcriber.data --seed 1 --out "$data" --shards "$shard_range" --valid \
  --workers "$workers" \
  2>&1 | tail -n 3 | tee "$OUT/data.log" || true
shards=$(ls "$data"/shard-*.npz | wc -l)
echo "shards rendered: $shards" | tee -a "$OUT/data.log"
# The shipped net grown to width 64 (function-preserving, `--widen`), not a fresh one: four minutes
# on a GPU start from where the CPU sessions got to.
step=$(python3 -c "import torch; print(torch.load('training/transcriber/checkpoint.pt', weights_only=False)['step'])")
timeout "$train_s" python3 -m training.transcriber.train --data "$data" --out "$OUT" --device "$device" --threads 8 \
  --resume training/transcriber/checkpoint.pt --widen 64 --lr 3e-4 --batch "$batch" --shards "$shards" \
  --steps-per-shard 1 --shard-base-step "$step" --steps 100000 --max-minutes "$minutes" \
  --eval-every "$eval_every" --valid-clips 60 2>&1 | tail -n 20 | tee "$OUT/train.log" || true
ls -la "$OUT"
