#!/usr/bin/env bash
# hark's engine beside faster-whisper (PyPI) on the same model: speed, memory, WER.
#   bash bench/speech.sh        (ROUNDS=3 by default; PARTS=speed or PARTS=wer for one half)
set -euo pipefail
cd "$(dirname "$0")/.."
bash scripts/fetch-model.sh models/whisper-tiny.en
[ -x target/bench-venv/bin/python ] || python3 -m venv target/bench-venv
target/bench-venv/bin/pip install -q faster-whisper==1.1.1 requests
cargo build --release -q -p hark
cargo build --release -q -p hark-speech --example wer
exec target/bench-venv/bin/python bench/speech.py
