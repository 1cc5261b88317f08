# Sourced by the GPU check scripts: the repository on PYTHONPATH, wheels from .whl/ (made
# by benchmarks/gpu_wheels.sh) installed into a scratch site directory when present, and a
# check that everything caalib imports is there before any timed work starts.
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
CALLER_DIR="$PWD"
# a path the caller gave (OUT=..., RESULTS=...) read from where the caller stood
from_caller() { case "$1" in /*) echo "$1" ;; *) echo "$CALLER_DIR/$1" ;; esac; }
cd "$ROOT"
PY="${PYTHON:-$(command -v python || command -v python3)}"
if [ -d "$ROOT/.whl" ] && ls "$ROOT"/.whl/*.whl >/dev/null 2>&1; then
  SITE="${GPU_SITE:-/tmp/caa-site}"
  "$PY" -m pip install -q --no-index --no-deps --no-compile --no-cache-dir --upgrade \
    --target "$SITE" "$ROOT"/.whl/*.whl || { echo "!! installing .whl/ failed"; exit 1; }
  export PYTHONPATH="$SITE${PYTHONPATH:+:$PYTHONPATH}"
fi
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
export PYTHONUNBUFFERED=1
"$PY" - <<'PY' || { echo "!! a package caalib needs is missing (see benchmarks/gpu_wheels.sh)"; exit 1; }
import importlib
import torch
for name in ("caalib.cli", "soundfile", "librosa", "resampy", "soxr", "h5py", "scipy",
             "pandas", "matplotlib", "tqdm"):
    importlib.import_module(name)
print("python", __import__("sys").version.split()[0], "| torch", torch.__version__, "| cuda",
      torch.version.cuda, "| cudnn", torch.backends.cudnn.version(), "| gpu",
      torch.cuda.get_device_name(0) if torch.cuda.is_available() else None)
PY
caa() { "$PY" -m caalib "$@"; }
