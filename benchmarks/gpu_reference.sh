#!/usr/bin/env bash
# GPU check of the claims ledger (docs/claims.md): the `gpu` profile's simulation on one GPU,
# written as the reference bundle RESULTS/reference/NAME with its provenance.
#
#   NAME=h100-2026-12 OUT=/some/dir bash benchmarks/gpu_reference.sh
#   PROFILE=tiny OUT=/tmp/x RESULTS=/tmp/x/results bash benchmarks/gpu_reference.sh  # CPU smoke
#
# Settings (environment): NAME (default gpu-<date>), OUT (copies of what it made; default
# results/bench), RESULTS (default results; relative paths are the caller's), PROFILE
# (default gpu), JOBS (default auto), STUDY_COMMIT (the commit, for a copy that is no git
# checkout; provenance.json records it),
# TOTAL_S (default 540: the whole script's budget; the ledger is stopped in time to leave
# RERUN_S, default 75, for the rerun check, keeping every finished run), PYTHON.
# Without internet, carry the wheels of benchmarks/gpu_wheels.sh in .whl/.
#
# Steps, each timed: versions and nvidia-smi; the plan (caa claims --dry-run: runs and the
# FLOP floor); the simulation dataset (caa synth on every core); the ledger (caa claims
# --reference NAME --jobs JOBS); the rerun check (two of its runs, a pooled joint one and
# CAA-Net multi-task, trained again in RESULTS/rerun-check and compared with the bundle by
# caa claims --check-reference --partial: are reruns on this GPU exact?). Then, whatever
# happened, OUT receives
#   reference-NAME.tar.gz  the bundle (ledger, runs.csv, arms.csv, provenance.json), and
#   sim-runs-PROFILE.tar.gz  every finished simulation run without its checkpoints,
# so a run stopped by the budget keeps its runs: unpack the second into RESULTS
# (tar -xzf sim-runs-gpu.tar.gz -C results) and run the script again; only the missing
# runs are trained (the runs record the dataset's content fingerprint, so this needs the
# same synthesis, i.e. the same numpy/scipy, on the next machine). The exit status says
# whether the ledger was written; the rerun check's verdict is printed, not returned.
set -uo pipefail
source "$(dirname "${BASH_SOURCE[0]}")/gpu_env.sh"
PROFILE="${PROFILE:-gpu}"
NAME="${NAME:-gpu-$(date -u +%Y%m%d)}"
OUT="$(from_caller "${OUT:-$ROOT/results/bench}")"
RESULTS="$(from_caller "${RESULTS:-$ROOT/results}")"
export STUDY_COMMIT="${STUDY_COMMIT:-$(git -C "$ROOT" rev-parse HEAD 2>/dev/null)}"
JOBS="${JOBS:-auto}"
TOTAL_S="${TOTAL_S:-540}"
RERUN_S="${RERUN_S:-75}"
SIM="$RESULTS/simulation/$PROFILE"
RERUN="$RESULTS/rerun-check"
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

left() { echo $((TOTAL_S - (SECONDS - t0))); }
BUDGET_S=$(( $(left) - RERUN_S - 20 ))
[ "$BUDGET_S" -ge 10 ] || BUDGET_S=10
stage "ledger: caa claims --profile $PROFILE --jobs $JOBS --reference $NAME (budget ${BUDGET_S} s)"
s=$SECONDS
timeout --signal=INT --kill-after=20 "$BUDGET_S" "$PY" -m caalib claims --profile "$PROFILE" \
  "$RESULTS" --jobs "$JOBS" --reference "$NAME" 2>&1 | tr '\r' '\n' \
  | grep --line-buffered -v -E '^\s*$|(it|clip|run)/s'
rc=${PIPESTATUS[0]}
echo "ledger: exit $rc after $((SECONDS - s)) s"
if [ "$rc" -ne 0 ]; then
  status=1
  case "$rc" in 124|130|137) echo "!! stopped by the ${BUDGET_S} s budget" ;; esac
fi

stage "rerun check: two runs trained again, compared with the bundle"
if [ -d "$RESULTS/reference/$NAME" ] && [ "$(left)" -ge 30 ]; then
  s=$SECONDS
  rm -rf "$RERUN"
  timeout --signal=INT --kill-after=10 $(( $(left) - 15 )) "$PY" - "$PROFILE" "$RERUN" \
    "$SIM/data" <<'PY'
import sys
from caalib.ledger import planned_configs, simulation_dir
from caalib.training.sweep import run_sweep

profile, rerun, data = sys.argv[1:4]
configs = [c for c in planned_configs(profile) if c.seed == 0]
picked = [next(c for c in configs if (c.topology, c.strategy) == want)
          for want in (("pool", "joint"), ("atrous", "multi_task"))
          if any((c.topology, c.strategy) == want for c in configs)]
print("rerunning:", ", ".join(c.run_name for c in picked))
run_sweep(picked, simulation_dir(rerun, profile), data, progress=False)
PY
  echo "rerun: exit $? after $((SECONDS - s)) s"
  caa claims "$RERUN" --check-reference "$RESULTS/reference/$NAME" --partial | tail -n 4
else
  echo "skipped: no bundle, or under 30 s left"
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
