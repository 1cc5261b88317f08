"""benchmarks/gpu_reference.sh, the prepared GPU check of the claims ledger, run on CPU
with the tiny profile: a GPU session has minutes, so the script must work the first time.

It must leave in OUT the reference bundle and the finished runs (no checkpoints), and a
second run over those runs, unpacked into another results directory, must train nothing
and write a bundle that the check calls reproduced.
"""

from __future__ import annotations

import os
import subprocess
import sys
import tarfile
from pathlib import Path

import pandas as pd
import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_reference.sh"


def _run(tmp: Path, results: Path, name: str) -> str:
    env = {**os.environ, "PROFILE": "tiny", "OUT": str(tmp / f"out-{name}"),
           "RESULTS": str(results), "NAME": name, "PYTHON": sys.executable, "JOBS": "1"}
    done = subprocess.run(["bash", str(SCRIPT)], env=env, capture_output=True, text=True,
                          timeout=600, cwd=tmp)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    return done.stdout


@pytest.mark.slow
def test_gpu_reference_script_packs_and_resumes(tmp_path: Path) -> None:
    first = tmp_path / "results"
    said = _run(tmp_path, first, "smoke")
    assert "12 simulation runs" in said and "12 missing" in said
    assert "ledger: exit 0" in said and "finished runs: 12" in said
    # two runs trained again on this CPU give the same predictions, byte for byte
    assert "rerunning: dcase2018-atrous-att-" in said  # the tiny profile trains atrous only
    assert "12 run(s): 11 not rerun, 1 identical" in said and "\nREPRODUCED" in said
    out = tmp_path / "out-smoke"
    with tarfile.open(out / "reference-smoke.tar.gz") as tar:
        assert sorted(tar.getnames()) == sorted(
            ["smoke", *(f"smoke/{f}" for f in ("ledger.csv", "ledger.md", "runs.csv",
                                                "arms.csv", "provenance.json"))])
    with tarfile.open(out / "sim-runs-tiny.tar.gz") as tar:
        names = tar.getnames()
        assert all(n.startswith("simulation/tiny/runs/") for n in names)
        assert sum(n.endswith("/DONE") for n in names) == 12
        assert not [n for n in names if n.endswith(".pt")]  # no checkpoints
        again = tmp_path / "again"
        tar.extractall(again, filter="data")
    said = _run(tmp_path, again, "again")
    assert "12 simulation runs" in said and ": 12 done" in said
    ref = pd.read_csv(first / "reference" / "smoke" / "runs.csv")
    new = pd.read_csv(again / "reference" / "again" / "runs.csv")
    assert ref["trained_here"].all() and not new["trained_here"].any()  # resumed: none
    pd.testing.assert_frame_equal(ref.drop(columns="trained_here"),  # the same runs, read
                                  new.drop(columns="trained_here"))  # back from the archive
    check = subprocess.run([sys.executable, "-m", "caalib", "claims", str(again),
                            "--check-reference", str(first / "reference" / "smoke")],
                           capture_output=True, text=True, cwd=ROOT, timeout=300)
    assert check.returncode == 0, check.stdout + check.stderr
    assert "12 identical" in check.stdout and check.stdout.rstrip().endswith("REPRODUCED")
