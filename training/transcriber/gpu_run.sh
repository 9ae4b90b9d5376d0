#!/usr/bin/env bash
# A larger transcription-network run for a session whose task is lent the device machine (one H200,
# 16 cores, 10 minutes a call): render shards on 15 cores for ~4 minutes, then train a wider net on
# CUDA for ~4 minutes, and bring back the checkpoint and curve under $OUT. Untested so far: no session
# of this project has been lent a device since it was written; expect to fix a path on first use.
#
# Prepare here, once (the working tree that travels is capped at 64 MiB, so only TimGM6mb travels
# of the training fonts; OPL-3 and MuseScore_General are too large to carry):
#   echo /.gpu/ >> .git/info/exclude; echo /.whl/ >> .git/info/exclude; mkdir -p .gpu .whl
#   cp /usr/share/sounds/sf2/TimGM6mb.sf2 build/transcriber-data/grooves.json .gpu/
#   (cd /usr/share/lmms/samples && cp --parents instruments/*.ogg basses/*.ogg stringsnpads/*.ogg "$OLDPWD/.gpu/lmms/")  # 0.8 MB used
#   cp "$(.venv/bin/python -c 'from stemscribe.transcription.pitch_model import default_model_path as p; print(p())')" .gpu/nmp.onnx
#   python3 -m pip download --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
#     --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
#     -d .whl tinysoundfont soundfile pretty_midi mido av
# Then: run(command="bash training/transcriber/gpu_run.sh", carry=[".gpu", ".whl"], timeout_s=590)
set -euo pipefail
python3 -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade --target /tmp/site .whl/*.whl
export PYTHONPATH="/tmp/site:$PWD" PYTHONUNBUFFERED=1
export STEMSCRIBE_BASIC_PITCH_MODEL="$PWD/.gpu/nmp.onnx" STEMSCRIBE_TRAIN_FONTS="$PWD/.gpu/TimGM6mb.sf2"
export STEMSCRIBE_LMMS_SAMPLES="$PWD/.gpu/lmms"
data=/tmp/data
mkdir -p "$data" "$OUT"
cp .gpu/grooves.json "$data/"
nvidia-smi --query-gpu=name,memory.total --format=csv | tee "$OUT/gpu.txt"
# Seed 1: other clips than the CPU runs' seed 0, so the shards can be pooled later.
timeout 250 python3 -m training.transcriber.data --seed 1 --out "$data" --shards 0-59 --valid --workers 15 \
  2>&1 | tail -n 3 | tee "$OUT/data.log" || true
shards=$(ls "$data"/shard-*.npz | wc -l)
echo "shards rendered: $shards" | tee -a "$OUT/data.log"
# The shipped net grown to width 64 (function-preserving, `--widen`), not a fresh one: four minutes
# on a GPU start from where the CPU sessions got to.
step=$(python3 -c "import torch; print(torch.load('training/transcriber/checkpoint.pt', weights_only=False)['step'])")
timeout 260 python3 -m training.transcriber.train --data "$data" --out "$OUT" --device cuda --threads 8 \
  --resume training/transcriber/checkpoint.pt --widen 64 --lr 3e-4 --batch 32 --shards "$shards" \
  --steps-per-shard 1 --shard-base-step "$step" --steps 100000 --max-minutes 3.5 \
  --eval-every 200 --valid-clips 60 2>&1 | tail -n 20 | tee "$OUT/train.log" || true
ls -la "$OUT"
