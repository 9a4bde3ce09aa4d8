#!/usr/bin/env bash
# Runs a small hark cluster on this machine: two API nodes (`hark serve --workers 0`) and a
# `hark worker`, sharing the local PostgreSQL (database hark_cluster, created if missing)
# and a local S3-compatible server (s3s-fs, bucket "hark", files under ./hark-cluster/s3).
# Each process has a data dir of its own; none of them holds state. Ctrl-C stops them all.
#
#   ./scripts/cluster.sh            # PostgreSQL at 127.0.0.1:5432 (user postgres)
#   PGURL=postgres://me@db:5432 ./scripts/cluster.sh
set -euo pipefail
cd "$(dirname "$0")/.."
PGURL=${PGURL:-postgres://postgres@127.0.0.1:5432}
DATABASE_URL="$PGURL/hark_cluster"
work=./hark-cluster
mkdir -p "$work/s3/hark" "$work/a" "$work/b" "$work/worker"

bash scripts/fetch-model.sh "$work/models/whisper-tiny.en"
[ -x target/tools/bin/s3s-fs ] || cargo install --quiet --locked s3s-fs --version 0.14.1 \
  --features binary --root target/tools --target-dir target/tools/build
cargo build --release --locked -p hark
bin=target/release/hark

psql "$PGURL/postgres" -qAt -c "SELECT 1 FROM pg_database WHERE datname = 'hark_cluster'" \
  | grep -q 1 || psql "$PGURL/postgres" -qAt -c "CREATE DATABASE hark_cluster"

# Every hark process reads these (see `hark serve --help`).
export HARK_DATABASE_URL=$DATABASE_URL
export HARK_BLOB_URL=s3://hark/audio
export AWS_ENDPOINT_URL=http://127.0.0.1:9014 AWS_REGION=us-east-1
export AWS_ACCESS_KEY_ID=${AWS_ACCESS_KEY_ID:-hark-local}
export AWS_SECRET_ACCESS_KEY=${AWS_SECRET_ACCESS_KEY:-hark-local-secret-key}
export HARK_MODEL_DIR=$work/models/whisper-tiny.en

pids=()
trap 'kill "${pids[@]}" 2>/dev/null || true; wait 2>/dev/null || true' EXIT INT TERM
target/tools/bin/s3s-fs --host 127.0.0.1 --port 9014 \
  --access-key "$AWS_ACCESS_KEY_ID" --secret-key "$AWS_SECRET_ACCESS_KEY" "$work/s3" \
  >"$work/s3.log" 2>&1 &
pids+=($!)

# The first admin, on the first run only (the name is taken afterwards).
if password=$("$bin" --data-dir "$work/a" admin create-user --username admin --role admin 2>/dev/null); then
  echo "created user 'admin' with password: $password (shown once)"
fi

"$bin" --data-dir "$work/a" serve --listen 127.0.0.1:8081 --workers 0 >"$work/a.log" 2>&1 &
pids+=($!)
"$bin" --data-dir "$work/b" serve --listen 127.0.0.1:8082 --workers 0 >"$work/b.log" 2>&1 &
pids+=($!)
"$bin" --data-dir "$work/worker" worker --listen 127.0.0.1:8090 --workers 2 >"$work/worker.log" 2>&1 &
pids+=($!)

# A password in the URL is not printed.
shown_url=$(printf %s "$DATABASE_URL" | sed -E 's#//([^:@/]*):[^@/]*@#//\1:****@#')
for port in 8081 8082 8090; do
  for _ in $(seq 100); do
    curl -sf "http://127.0.0.1:$port/healthz" >/dev/null && break
    sleep 0.1
  done
done
cat <<EOF
hark cluster running (logs in $work/*.log):
  API node A   http://127.0.0.1:8081/
  API node B   http://127.0.0.1:8082/
  worker       http://127.0.0.1:8090/healthz  (/readyz, /metrics)
  PostgreSQL   $shown_url
  S3 (s3s-fs)  $AWS_ENDPOINT_URL  bucket hark, prefix audio/
Make a token with:
  HARK_DATABASE_URL=$shown_url $bin admin create-token --username admin --name cli
Ctrl-C stops everything.
EOF
wait
