#!/usr/bin/env bash
# GPU check of the claims ledger (docs/claims.md): the `gpu` profile's simulation on one GPU,
# written as the reference bundle RESULTS/reference/NAME with its provenance.
#
#   NAME=h100-2026-12 OUT=/some/dir bash benchmarks/gpu_reference.sh
#   PROFILE=tiny OUT=/tmp/x RESULTS=/tmp/x/results bash benchmarks/gpu_reference.sh  # CPU smoke
#
# Settings (environment): NAME (default gpu-<date>), OUT (copies of what it made; default
# results/bench), RESULTS (default results), PROFILE (default gpu), JOBS (default auto),
# BUDGET_S (default 480: the ledger is stopped then, keeping every finished run), PYTHON.
# Without internet, carry the wheels of benchmarks/gpu_wheels.sh in .whl/.
#
# Steps, each timed: versions and nvidia-smi; the plan (caa claims --dry-run: runs and the
# FLOP floor); the simulation dataset (caa synth on every core); the ledger (caa claims
# --reference NAME --jobs JOBS). Then, whatever happened, OUT receives
#   reference-NAME.tar.gz  the bundle (ledger, runs.csv, arms.csv, provenance.json), and
#   sim-runs-PROFILE.tar.gz  every finished simulation run without its checkpoints,
# so a run stopped by the budget keeps its runs: unpack the second into RESULTS
# (tar -xzf sim-runs-gpu.tar.gz -C results) and run the script again; only the missing
# runs are trained.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/gpu_env.sh"
PROFILE="${PROFILE:-gpu}"
NAME="${NAME:-gpu-$(date -u +%Y%m%d)}"
OUT="${OUT:-results/bench}"
RESULTS="${RESULTS:-results}"
JOBS="${JOBS:-auto}"
BUDGET_S="${BUDGET_S:-480}"
SIM="$RESULTS/simulation/$PROFILE"
mkdir -p "$OUT"
status=0
stage() { echo "== $1 ($(date -u +%H:%M:%S))"; }
t0=$SECONDS

stage "machine"
nvidia-smi --query-gpu=name,driver_version,memory.total --format=csv 2>/dev/null \
  || echo "(no nvidia-smi)"
echo "cores: $(nproc)"

stage "plan: caa claims --profile $PROFILE --dry-run"
caa claims --profile "$PROFILE" "$RESULTS" --dry-run | tail -n 3

stage "simulation dataset"
SYNTH=$("$PY" -c "from caalib.ledger import LEDGER_PROFILES as P; print(P['$PROFILE'].synth)")
s=$SECONDS
caa synth --profile "$SYNTH" --workers "$(nproc)" --skip-existing --quiet "$SIM/data" \
  || { echo "!! caa synth failed"; exit 1; }
echo "synth $SYNTH: $((SECONDS - s)) s, $(du -sh "$SIM/data" | cut -f1) on disk"

stage "ledger: caa claims --profile $PROFILE --jobs $JOBS --reference $NAME (budget ${BUDGET_S} s)"
s=$SECONDS
timeout --signal=INT --kill-after=30 "$BUDGET_S" "$PY" -m caalib claims --profile "$PROFILE" \
  "$RESULTS" --jobs "$JOBS" --reference "$NAME" 2>&1 | tr '\r' '\n' \
  | grep --line-buffered -v -E '^\s*$|(it|clip|run)/s'
rc=${PIPESTATUS[0]}
echo "ledger: exit $rc after $((SECONDS - s)) s"
if [ "$rc" -ne 0 ]; then
  status=1
  [ "$rc" -eq 124 ] || [ "$rc" -eq 130 ] && echo "!! stopped by the ${BUDGET_S} s budget"
fi

stage "packing into $OUT"
if [ -d "$RESULTS/reference/$NAME" ]; then
  tar -czf "$OUT/reference-$NAME.tar.gz" -C "$RESULTS/reference" "$NAME"
  cat "$RESULTS/reference/$NAME/provenance.json"
fi
if [ -d "$SIM/runs" ]; then
  OUT_ABS="$(cd "$OUT" && pwd)"
  (cd "$RESULTS" && find "simulation/$PROFILE/runs" -mindepth 2 -maxdepth 2 -type f \
     \( -name config.json -o -name metrics.json -o -name predictions.csv \
        -o -name history.csv -o -name DONE \) -print0 \
   | tar -czf "$OUT_ABS/sim-runs-$PROFILE.tar.gz" --null -T -)
  echo "finished runs: $(find "$SIM/runs" -mindepth 2 -maxdepth 2 -name DONE | wc -l)"
fi
ls -l "$OUT"
echo "total: $((SECONDS - t0)) s"
exit $status
