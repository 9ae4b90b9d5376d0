#!/usr/bin/env bash
# Builds the repo's Dockerfile with podman and runs the image as an API node and as a worker on this
# machine's PostgreSQL and RabbitMQ and moto's S3 server, then transcribes the bundled example through
# the native API and downloads its .mid and sheet music. For a machine with no Docker daemon and no
# registry to pull from: python:3.11-slim-bookworm is stood in for by a Debian bookworm rootfs
# (mmdebstrap: Debian's python3 3.11 with a venv at /usr/local, so `python`, `pip` and installed
# scripts resolve as in the official image). A real one already in podman's store is used as it is.
#
#   make install && sudo scripts/check_docker.sh        (root; about 5 minutes, most of it pip in the build)
#
# Needs podman, runc and mmdebstrap (installed with apt-get when missing), PostgreSQL on 127.0.0.1:5432
# (trust, and psql), RabbitMQ on 5672 (guest), pypi.org from inside the build, and .venv (moto's server,
# kombu, pretty_midi).
# STEMSCRIBE_DOCKER_KEEP=1 keeps the images for a rerun. Not part of .ci/run.
set -euo pipefail
cd "$(dirname "$0")/.."

BASE=docker.io/library/python:3.11-slim-bookworm
IMAGE=localhost/stemscribe:check
PG=${STEMSCRIBE_TEST_PG:-postgresql+psycopg://postgres@127.0.0.1:5432}
AMQP=${STEMSCRIBE_TEST_AMQP:-amqp://guest:guest@127.0.0.1:5672//}
run_id=check$$
work=$(mktemp -d /tmp/stemscribe-docker.XXXXXX)
log() { echo "== $*" >&2; }
free_port() { .venv/bin/python -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])'; }

need=()
command -v podman >/dev/null || need+=(podman)
command -v runc >/dev/null || need+=(runc)
command -v mmdebstrap >/dev/null || need+=(mmdebstrap)
if [ ${#need[@]} -gt 0 ]; then
  log "installing Debian packages: ${need[*]}"
  apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# runc, not crun: crun refuses cgroup v1 with a cgroup2 mount beside it ("cgroups in hybrid mode not
# supported"). Rlimits no higher than this shell's: podman's defaults (1048576 files) need
# CAP_SYS_RESOURCE, and a process limit above pid_max was refused as well.
nproc=$(cat /proc/sys/kernel/pid_max)
hard=$(ulimit -Hu)
if [ "$hard" != unlimited ] && [ "$hard" -lt "$nproc" ]; then nproc=$hard; fi
cat >"$work/containers.conf" <<EOF
[containers]
default_ulimits = ["nofile=$(ulimit -Hn):$(ulimit -Hn)", "nproc=$nproc:$nproc"]
[engine]
runtime = "runc"
cgroup_manager = "cgroupfs"
events_logger = "file"
EOF
export CONTAINERS_CONF=$work/containers.conf

drop_queues() {  # the run's durable queues and exchanges, as the scale-out tests leave none behind
  .venv/bin/python - "$AMQP" "$@" <<'PY'
import sys
from kombu import Connection

with Connection(sys.argv[1], connect_timeout=5) as conn:
    for prefix in sys.argv[2:]:
        for kind in ("transcribe", "separate", "callbacks"):
            channel = conn.channel()
            channel.queue_delete(f"{prefix}.{kind}")
            channel.exchange_delete(f"{prefix}.{kind}")
PY
}

api='' worker='' moto_pid='' made_base=''
cleanup() {
  set +e
  [ -n "$api" ] && podman logs "$api" >"$work/api.log" 2>&1
  [ -n "$worker" ] && podman logs "$worker" >"$work/worker.log" 2>&1
  for c in $api $worker; do podman rm -f "$c" >/dev/null; done
  [ -n "$moto_pid" ] && kill "$moto_pid"
  drop_queues "$run_id"
  psql -q -h 127.0.0.1 -U postgres -c "DROP DATABASE IF EXISTS $run_id" >/dev/null 2>&1
  if [ "${STEMSCRIBE_DOCKER_KEEP:-0}" != 1 ]; then
    podman rmi -f "$IMAGE" >/dev/null 2>&1
    [ -n "$made_base" ] && podman rmi -f "$BASE" >/dev/null 2>&1
  fi
  rm -f "$work/rootfs.tar"
  echo "logs in $work" >&2
}
trap cleanup EXIT

if ! podman image exists "$BASE"; then
  log "building a stand-in for $BASE (Debian bookworm, python3 3.11, venv at /usr/local)"
  # shellcheck disable=SC2016 # "$1" is the rootfs, expanded by mmdebstrap
  mmdebstrap --variant=minbase --include=python3,python3-venv,ca-certificates,netbase,tzdata \
    --customize-hook='chroot "$1" python3 -m venv /usr/local' \
    bookworm "$work/rootfs.tar" \
    "deb http://deb.debian.org/debian bookworm main" \
    "deb http://deb.debian.org/debian bookworm-updates main" \
    "deb http://deb.debian.org/debian-security bookworm-security main" >"$work/mmdebstrap.log" 2>&1
  podman import -q --change 'ENV PATH=/usr/local/bin:/usr/local/sbin:/usr/sbin:/usr/bin:/sbin:/bin' \
    --change 'ENV LANG=C.UTF-8' --change 'CMD ["python3"]' "$work/rootfs.tar" "$BASE" >/dev/null
  made_base=1
fi

# The host's CA bundle for pip in the build (a TLS-inspecting proxy's CA, where the host trusts one);
# mounted for the RUN steps only, so the image gets none of it.
log "building $IMAGE from ./Dockerfile"
cas=/etc/ssl/certs/ca-certificates.crt
podman build --pull=never --layers=false --network host -v "$cas:$cas:ro" -t "$IMAGE" . >"$work/build.log" 2>&1 \
  || { tail -n 30 "$work/build.log" >&2; exit 1; }

log "moto's S3 server, a fresh database and bucket"
moto_port=$(free_port)
.venv/bin/moto_server -H 127.0.0.1 -p "$moto_port" >"$work/moto.log" 2>&1 &
moto_pid=$!
for _ in $(seq 60); do curl -s -o /dev/null "http://127.0.0.1:$moto_port" && break; sleep 0.5; done
curl -sf -X PUT "http://127.0.0.1:$moto_port/$run_id" >/dev/null
psql -q -h 127.0.0.1 -U postgres -c "CREATE DATABASE $run_id"

env_file=$work/env
cat >"$env_file" <<EOF
STEMSCRIBE_DATABASE_URL=$PG/$run_id
STEMSCRIBE_BROKER_URL=$AMQP
STEMSCRIBE_QUEUE_PREFIX=$run_id
STEMSCRIBE_STORAGE_URL=s3://$run_id/check
STEMSCRIBE_SECRET_KEY=$(head -c 24 /dev/urandom | base64)
AWS_ENDPOINT_URL=http://127.0.0.1:$moto_port
AWS_ACCESS_KEY_ID=test
AWS_SECRET_ACCESS_KEY=test
AWS_DEFAULT_REGION=us-east-1
EOF
ctr() { podman run --network host --env-file "$env_file" "$@"; }

key=$(ctr --rm "$IMAGE" stemscribe keys create --name docker-check)
port=$(free_port)
api=$(ctr -d --name "$run_id-api" "$IMAGE" stemscribe serve --host 127.0.0.1 --port "$port")
worker=$(ctr -d --name "$run_id-worker" "$IMAGE" stemscribe worker --concurrency 1)
base_url=http://127.0.0.1:$port
for _ in $(seq 120); do curl -sf "$base_url/health" >/dev/null && break; sleep 1; done
log "API node up: $(curl -sf "$base_url/health")"

auth=(-H "Authorization: Bearer $key")
task=$(curl -sf "${auth[@]}" -F file=@stemscribe/data/example.flac "$base_url/v1/transcriptions" | jq -r .id)
log "submitted task $task"
state=queued
for _ in $(seq 300); do
  state=$(curl -sf "${auth[@]}" "$base_url/v1/transcriptions/$task" | jq -r .state)
  case $state in succeeded | failed | canceled) break ;; esac
  sleep 2
done
if [ "$state" != succeeded ]; then
  curl -s "${auth[@]}" "$base_url/v1/transcriptions/$task" >&2
  echo "FAIL: task $task ended $state" >&2
  exit 1
fi
curl -sf "${auth[@]}" -o "$work/example.mid" "$base_url/v1/transcriptions/$task.mid"
notes=$(.venv/bin/python -c 'import sys, pretty_midi
print(sum(len(i.notes) for i in pretty_midi.PrettyMIDI(sys.argv[1]).instruments))' "$work/example.mid")
[ "$notes" -gt 0 ] || { echo "FAIL: the .mid has no notes" >&2; exit 1; }
curl -sf "${auth[@]}" -o "$work/example.musicxml" "$base_url/v1/transcriptions/$task.musicxml"
curl -sf "${auth[@]}" -o "$work/example.pdf" "$base_url/v1/transcriptions/$task.pdf"
[ "$(head -c 4 "$work/example.pdf")" = %PDF ] || { echo "FAIL: $work/example.pdf is no PDF" >&2; exit 1; }
echo "OK: $IMAGE ran as API node and worker; task $task succeeded: $work/example.mid ($notes notes)," \
  "example.musicxml, example.pdf ($(stat -c %s "$work/example.pdf") bytes)"
