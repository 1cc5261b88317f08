#!/usr/bin/env bash
# Wheels for a GPU machine that has PyTorch but no internet: what caalib needs beyond an
# image with torch, torchaudio, numpy, scipy, pandas, h5py, matplotlib, seaborn, numba,
# statsmodels and tqdm (an audio stack, and resampy 0.2.2, which exists only as an sdist and
# is built into a wheel here). Run on a machine with internet, from the repository root:
#
#   bash benchmarks/gpu_wheels.sh            # wheels for CPython 3.12, x86-64 Linux, in .whl/
#   PY_VERSION=3.11 WHEELS=dir bash benchmarks/gpu_wheels.sh
#
# Copy .whl/ to the GPU machine beside the checkout; benchmarks/gpu_env.sh installs it into
# a scratch site directory (nothing is installed into the machine's own Python).
set -euo pipefail
ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
WHEELS="${WHEELS:-.whl}"
PY_VERSION="${PY_VERSION:-3.12}"
PY="${PYTHON:-$(command -v python3)}"
mkdir -p "$WHEELS"
# versions this study is tested with; setuptools < 81 keeps pkg_resources for resampy 0.2.2;
# lazy_loader, msgpack and joblib (librosa's) in case the image lacks them
PACKAGES=(soundfile==0.14.0 cffi==2.1.1 pycparser==3.12 librosa==0.11.0 soxr==1.1.0
          decorator==5.3.1 pooch==1.9.0 platformdirs==4.14.8 audioread==3.1.0
          setuptools==80.9.0 lazy_loader==0.6 msgpack==1.2.4 joblib==1.6.0)
"$PY" -m pip download --no-deps --only-binary=:all: --python-version "$PY_VERSION" \
  --implementation cp --platform manylinux_2_28_x86_64 --platform manylinux_2_27_x86_64 \
  --platform manylinux_2_17_x86_64 --platform manylinux2014_x86_64 --platform any \
  -d "$WHEELS" "${PACKAGES[@]}"
"$PY" -m pip wheel --no-deps --no-build-isolation -w "$WHEELS" resampy==0.2.2
ls -l "$WHEELS"
