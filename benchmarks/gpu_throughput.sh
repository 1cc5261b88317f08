#!/usr/bin/env bash
# Issue 14's GPU check (sweep throughput) on one GPU, in one command:
#
#   OUT=/some/dir bash benchmarks/gpu_throughput.sh        # about 9 minutes; results in OUT
#   BUDGET_S=300 OUT=/tmp/x bash benchmarks/gpu_throughput.sh
#   SMOKE=1 OUT=/tmp/x bash benchmarks/gpu_throughput.sh   # CPU, tiny sizes, under a minute
#
# STUDY_COMMIT names the commit where the checkout is no git repository (recorded).
# gpu_env.sh installs the wheels of benchmarks/gpu_wheels.sh from .whl/ (when present) and
# checks the imports first; then benchmarks/gpu_throughput.py runs with budget BUDGET_S
# (default 520 s, leaving the wheel install and a margin inside a 10-minute command),
# stopped hard 30 s past it. OUT receives gpu_throughput.json and gpu_throughput.md,
# rewritten after every stage, and gpu_throughput.log, the printed output.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/gpu_env.sh"
OUT="$(from_caller "${OUT:-$ROOT/results/bench}")"
BUDGET_S="${BUDGET_S:-520}"
mkdir -p "$OUT"
args=(--out "$OUT" --budget-s "$BUDGET_S")
if [ -n "${SMOKE:-}" ]; then args+=(--smoke); fi
if [ -n "${STUDY_COMMIT:-}" ]; then args+=(--commit "$STUDY_COMMIT"); fi
timeout --signal=TERM --kill-after=15 "$((BUDGET_S + 30))" \
  "$PY" benchmarks/gpu_throughput.py "${args[@]}" "$@" 2>&1 | tee "$OUT/gpu_throughput.log"
exit "${PIPESTATUS[0]}"
