#!/usr/bin/env bash
# Puts the Silero VAD 16 kHz weights (silero_vad_16k.safetensors, MIT, ~1.2 MB; from the
# PyPI wheel silero-vad 6.2.3; releases before 6.2.1 do not ship this file) and
# their licence into the given folder, unless they are already there.
#   bash scripts/fetch-vad.sh DIR
set -euo pipefail
dest=${1:?usage: fetch-vad.sh DIR}
if [ -f "$dest/silero_vad_16k.safetensors" ]; then
  exit 0
fi
command -v python3 >/dev/null || { echo "python3 with pip is needed to fetch the VAD weights" >&2; exit 1; }
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
echo "fetching the Silero VAD weights (~1.2 MB, from a 6 MB wheel) from PyPI into $dest" >&2
python3 -m pip download --quiet --no-deps --disable-pip-version-check \
  "silero-vad==6.2.3" -d "$tmp"
python3 - "$tmp" "$dest" <<'PY'
import hashlib, pathlib, sys, zipfile
src, dest = pathlib.Path(sys.argv[1]), pathlib.Path(sys.argv[2])
wheel = next(src.glob("silero_vad-*.whl"))
# The file as silero-vad 6.2.1-6.2.3 ship it: a different file means a different model.
want = "c59271c284ae9c8335d795d60e0bfdb71aaaceec578d9bd9ffc1b8153c319ea1"
dest.mkdir(parents=True, exist_ok=True)
with zipfile.ZipFile(wheel) as z:
    weights = z.read("silero_vad/data/silero_vad_16k.safetensors")
    if hashlib.sha256(weights).hexdigest() != want:
        sys.exit("silero_vad_16k.safetensors in the wheel is not the expected file")
    licences = [n for n in z.namelist() if n.endswith(".dist-info/licenses/LICENSE")]
    if licences:
        (dest / "LICENSE").write_bytes(z.read(licences[0]))
    # Written last and renamed into place, so the check above never sees half a file.
    part = dest / "silero_vad_16k.safetensors.part"
    part.write_bytes(weights)
    part.replace(dest / "silero_vad_16k.safetensors")
PY
