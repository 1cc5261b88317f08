#!/usr/bin/env bash
# GPU check of the training fast path: run on a CUDA machine from anywhere.
#
#   bash benchmarks/gpu_check.sh                 # results under results/bench
#   OUT=/some/dir bash benchmarks/gpu_check.sh   # results under $OUT
#   PYTHON=/path/to/python bash benchmarks/gpu_check.sh
#
# Needs torch with CUDA (numpy, pandas; h5py/scipy for the rest of caalib). librosa,
# soundfile and soxr are optional: without them the feature timing is skipped. Runs
# python benchmarks/bench_training.py (= caa bench without the rest of the CLI) for:
#   1. the paper-size atrous + att multi-task model (cond layer 4), batch 16, 320x64,
#      modes released, default, fast;
#   2. the same model, fast under torch.compile (skipped after COMPILE_TIMEOUT s);
#   3. the pool topology (att head) for contrast.
# Targets (fast vs the others): >= 5x released, >= 2x default, >= 40 % of the measured
# bf16 matmul rate, peak memory <= 8 GiB. Total time on an H100: a few minutes (the
# engine no longer autotunes with cudnn.benchmark, which cost ~100 s per process).
# Raise STEPS for steadier figures.
set -uo pipefail

ROOT="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
cd "$ROOT"
export PYTHONPATH="$ROOT${PYTHONPATH:+:$PYTHONPATH}"
OUT="${OUT:-results/bench}"
PY="${PYTHON:-$(command -v python || command -v python3)}"
STEPS="${STEPS:-40}"
COMPILE_TIMEOUT="${COMPILE_TIMEOUT:-240}"
mkdir -p "$OUT"
status=0

echo "== nvidia-smi"
nvidia-smi 2>&1 | tee "$OUT/nvidia-smi.txt" || echo "(nvidia-smi not available)"
echo "== python: $PY"
"$PY" -c "import torch; print('torch', torch.__version__, 'cuda', torch.version.cuda, \
'cudnn', torch.backends.cudnn.version(), 'gpu', torch.cuda.is_available() and \
torch.cuda.get_device_name(0))" || exit 1

bench() {  # bench NAME TIMEOUT ARGS...
  local name="$1" limit="$2"; shift 2
  echo "== $name: $*"
  timeout --signal=INT "$limit" "$PY" benchmarks/bench_training.py --accelerator cuda \
    --out "$OUT/$name.json" "$@" 2>&1 | tee "$OUT/$name.log"
  local rc=${PIPESTATUS[0]}
  if [ "$rc" -ne 0 ]; then echo "!! $name exited with $rc"; status=1; fi
}

MODEL=(--topology atrous --pooling att --strategy multi_task --cond-layer 4
       --batch 16 --frames 320 --mels 64)

bench atrous-att-mt 240 "${MODEL[@]}" --steps "$STEPS" --warmup 8 \
  --modes released,default,fast --feature-clips 64
bench atrous-att-mt-compiled "$COMPILE_TIMEOUT" "${MODEL[@]}" --steps "$STEPS" --warmup 8 \
  --modes fast,compiled --no-features
bench pool-att-mt 120 --topology pool --pooling att --strategy multi_task --cond-layer 3 \
  --batch 16 --frames 320 --mels 64 --steps "$STEPS" --warmup 8 \
  --modes released,default,fast --no-features

echo "== numerics: fast path vs fp32 on tiny data (GPU)"
"$PY" - <<'PY' 2>&1 | tee "$OUT/numerics.log"
import json
from caalib.bench import BenchSettings, check_fast_numerics
s = BenchSettings(width=0.25, batch=16, frames=128, accelerator="cuda", features=False)
r = check_fast_numerics(s, steps=20)
print(json.dumps(r.to_dict(), indent=1))
print("NUMERICS", "OK" if r.ok else "MISMATCH")
PY

echo "== files in $OUT"
ls -l "$OUT"
exit $status
