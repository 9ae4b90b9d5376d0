#!/usr/bin/env bash
# Prepare what `gpu_run.sh` carries to the device machine, on this machine (needs `make install`, the
# Debian packages of README "Development" and the package registry): .gpu/ (TimGM6mb, LMMS's one-note
# samples, MMA's groove cache; basic-pitch's graph travels in stemscribe/weights) and .whl/ (cp312 wheels the device lacks), both
# git-excluded. ~3 minutes, most of it building the groove cache with mma. Then smoke-test (gpu_run.sh's
# header) and run(command="bash training/transcriber/gpu_run.sh", carry=[".gpu", ".whl"], timeout_s=590).
set -euo pipefail
cd "$(dirname "$0")/../.."
py=.venv/bin/python
for path in /.gpu/ /.whl/; do grep -qxF "$path" .git/info/exclude 2>/dev/null || echo "$path" >> .git/info/exclude; done
mkdir -p .gpu/lmms .whl build/transcriber-data
cp /usr/share/sounds/sf2/TimGM6mb.sf2 .gpu/
(cd /usr/share/lmms/samples && cp --parents instruments/*.ogg basses/*.ogg stringsnpads/*.ogg "$OLDPWD/.gpu/lmms/")
$py -c 'from pathlib import Path; from training.transcriber.data import training_grooves as g; print(len(g(Path("build/transcriber-data/grooves.json"))), "grooves")'
rm -f .gpu/grooves.json && gzip -9 -c build/transcriber-data/grooves.json > .gpu/grooves.json.gz  # 9.6 -> ~1 MB
python3 -m pip download -q --no-deps --only-binary=:all: --python-version 3.12 --implementation cp \
  --platform manylinux_2_28_x86_64 --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 \
  -d .whl tinysoundfont soundfile pretty_midi mido av
du -cb .gpu .whl | tail -n 1 | awk '{printf "carried beside the repo: %.1f MiB (the limit is 64 MiB with the repo)\n", $1 / 1048576}'
