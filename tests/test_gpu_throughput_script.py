"""benchmarks/gpu_throughput.py, issue 14's one-shot GPU check, on the CPU.

A GPU session gets one try at this script, so its smoke mode runs every stage here at
tiny sizes: the stages must all report numeric times, the Table II totals must be the
sums of their parts, the schedule counts must be the ones worked out by hand below, and
a budget too small for a stage must skip it with a reason while keeping what came
before.
"""

from __future__ import annotations

import importlib.util
import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCRIPT = ROOT / "benchmarks" / "gpu_throughput.py"
STAGES = ("environment", "table_ii", "synth", "features", "rehearsal")
#: DCASE 2018 Task 1B development set, evaluate split (study notes section 4).
EVAL_CLIPS = {"a": 2518, "b": 180, "c": 180}


def _script():
    """The script as a module (registered first: its dataclasses resolve their
    annotations through sys.modules)."""
    name = "gpu_throughput_script"
    if name not in sys.modules:
        spec = importlib.util.spec_from_file_location(name, SCRIPT)
        module = importlib.util.module_from_spec(spec)
        sys.modules[name] = module
        spec.loader.exec_module(module)
    return sys.modules[name]


def _rel(a: float, b: float) -> float:
    return abs(a - b) / max(abs(b), 1e-12)


@pytest.fixture(scope="module")
def smoke(tmp_path_factory: pytest.TempPathFactory) -> dict:
    """One smoke run from the repository root, as the GPU session runs it (caalib found
    through the script's own path, not an installation or PYTHONPATH)."""
    out = tmp_path_factory.mktemp("gpu_throughput")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, str(SCRIPT.relative_to(ROOT)), "--smoke",
                           "--out", str(out / "out"), "--scratch", str(out / "scratch")],
                          cwd=ROOT, env=env, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    data = json.loads((out / "out" / "gpu_throughput.json").read_text())
    return {"data": data, "stdout": done.stdout,
            "md": (out / "out" / "gpu_throughput.md").read_text()}


def test_every_stage_ran_with_numeric_times_and_peak_memory(smoke):
    stages = smoke["data"]["stages"]
    assert tuple(stages) == STAGES
    for key, st in stages.items():
        assert st["status"] == "done", (key, st.get("reason"))
        assert isinstance(st["wall_s"], float) and st["wall_s"] > 0, key
        assert isinstance(st["expected_s"], int | float), key
        assert st["peak"], key
        assert st["title"] in smoke["md"] and st["title"] in smoke["stdout"]
    for key in ("synth", "features", "rehearsal"):  # child processes: sampled memory
        assert stages[key]["peak"]["largest_process_hwm_bytes"] > 10 * 2**20, key
        assert stages[key]["cpu_s"] > 0
    assert stages["synth"]["result"]["clips"] == 150  # tiny: 90 A + 30 B + 30 C
    rehearsal = stages["rehearsal"]["result"]
    assert rehearsal["iterations"] == 10 and 0 <= rehearsal["accuracy"]["avg"] <= 1
    # multi-task with the released λ scores the evaluate split every eval_every (10)
    assert rehearsal["history_rows_with_evaluation"] == 1
    assert "EXTRAPOLATION" in smoke["stdout"]


def test_table_ii_totals_are_the_sums_of_their_parts(smoke):
    stage = smoke["data"]["stages"]["table_ii"]
    est = stage["estimate"]
    inputs = est["inputs"]
    rows = est["per_model"]
    assert len(rows) == 14 and sum(r["runs"] for r in rows) == 84 == est["runs"]
    assert est["eval_clips"] == EVAL_CLIPS and sum(EVAL_CLIPS.values()) == 2878
    assert _rel(est["before_s"], sum(r["before_s"] for r in rows)) < 1e-9
    assert _rel(est["after_s"], sum(r["after_s"] for r in rows) + est["after_fixed_s"]) < 1e-9
    assert _rel(est["before_h"], est["before_s"] / 3600) < 1e-9
    for r in rows:
        assert _rel(r["before_s"], r["train_s"] + r["eval_dense_s"]
                    + r["runs"] * inputs["process_overhead_s"]) < 1e-9
        serial = r["train_s"] + r["eval_after_s"] + r["runs"] * inputs["sweep_overhead_s"]
        assert _rel(r["after_s"], serial / r["packing_factor"]) < 1e-9
        assert r["packing_factor"] == inputs["packing"][r["class"]] >= 1.0
    assert 0 < est["after_s"] < est["before_s"]
    assert est["meets_goal"] == (est["after_h"] <= 6.0)


def test_schedules_and_prices_match_the_hand_count(smoke):
    """Smoke prices Table II at the tiny sizes with 200 iterations and eval_every 10:
    dense = 20 evaluations a run; sparse = every 10 * (200 // 10 // 10) = 20 steps, 10 a
    run, except multi-task (its released λ reads every evaluation): 20."""
    stage = smoke["data"]["stages"]["table_ii"]
    rates = stage["rates"]
    for r in stage["estimate"]["per_model"]:
        assert (r["evaluations_dense"], r["evaluations_after"]) == (6 * 20, 5 * 10 + 20)
    row = next(r for r in stage["estimate"]["per_model"] if r["model"] == "pool:avg")
    assert row["sample"] == "pool:max"
    joint, mt = rates["pool:max"]["joint"], rates["pool:max"]["multi_task"]
    # three single-device runs (their own device's clips), joint, teacher forcing, MT
    assert _rel(row["train_s"], 200 * (5 * joint["step_s"] + mt["step_s"])) < 1e-9
    dense = 20 * (3 * 2878 / joint["eval_clips_per_s"] + 2878 / mt["eval_clips_per_s"])
    after = (10 * 3 * 2878 / joint["eval_clips_per_s"]
             + 20 * 2878 / mt["eval_clips_per_s"])
    assert _rel(row["eval_dense_s"], dense) < 1e-9
    assert _rel(row["eval_after_s"], after) < 1e-9


def test_packing_and_the_real_size_repricing_are_recorded(smoke):
    data = smoke["data"]
    packing = data["stages"]["table_ii"]["packing"]
    pooled = packing["pooled"]
    assert pooled["status"] == "done" and pooled["jobs"] == 2
    assert len(pooled["serial_loops_s"]) == len(pooled["packed_loops_s"]) == 2
    assert _rel(pooled["factor"], sum(pooled["serial_loops_s"]) / pooled["packed_span_s"]) < 1e-9
    assert packing["full-resolution"]["status"] == "skipped"
    final = data["summary"]["estimate_real_overhead"]
    overhead = data["stages"]["rehearsal"]["result"]["overhead_s"]
    assert final["inputs"]["process_overhead_s"] == overhead > 0
    assert "the rehearsal" in final["inputs"]["process_overhead_source"]
    assert any(line.startswith("Table II (84 runs") for line in data["summary"]["lines"])


def test_paper_size_pricing_worked_by_hand():
    """Paper profile: 15,000 iterations, an evaluation every 100 when dense (150) and
    every 1,500 otherwise (10), multi-task always dense. Rates 10 ms a step and 1,000
    clips/s for every model, 9 s per process, pooled runs packed 2x."""
    gt = _script()
    from caalib.training.sweep import enumerate_runs

    configs = enumerate_runs("II", "paper", "dcase2018", accelerator="cpu")
    rate = {"step_s": 0.01, "eval_clips_per_s": 1000.0}
    rates = {m: {"joint": rate, "multi_task": rate}
             for m in ("pool:max", "pool:att", "nopool:att", "atrous:att")}
    est = gt.price_table(configs, rates, {"pooled": 2.0, "full-resolution": 1.0},
                         process_overhead_s=9.0, sweep_overhead_s=0.0, worker_start_s=5.0)
    train = 6 * 150.0  # per model: 6 runs x 15,000 x 10 ms
    dense = 150 * 4 * 2878 / 1000  # 3 single-device runs score 2,878 clips together
    after = 10 * 3 * 2878 / 1000 + 150 * 2878 / 1000
    assert _rel(est["before_s"], 14 * (train + dense + 6 * 9.0)) < 1e-12
    assert _rel(est["after_s"], 4 * (train + after) / 2 + 10 * (train + after) + 2 * 5.0) < 1e-12
    assert all((r["evaluations_dense"], r["evaluations_after"]) == (900, 5 * 10 + 150)
               for r in est["per_model"])


def test_a_tiny_budget_skips_later_stages_and_keeps_earlier_results(tmp_path):
    gt = _script()
    before = (os.environ.get("PYTHONPATH"),)
    rc = gt.main(["--smoke", "--budget-s", "3", "--out", str(tmp_path / "out"),
                  "--scratch", str(tmp_path / "scratch")])
    assert rc == 0
    assert (os.environ.get("PYTHONPATH"),) == before  # main leaves the process as it was
    data = json.loads((tmp_path / "out" / "gpu_throughput.json").read_text())
    stages = data["stages"]
    assert tuple(stages) == STAGES
    assert stages["environment"]["status"] == "done"
    assert stages["environment"]["result"]["usable_cpus"] >= 1
    for key in STAGES[1:]:
        assert stages[key]["status"] == "skipped", key
        assert "budget" in stages[key]["reason"], stages[key]["reason"]
        assert stages[key]["wall_s"] == 0.0
    assert "skipped" in (tmp_path / "out" / "gpu_throughput.md").read_text()


def test_an_interrupted_stage_keeps_what_came_before(tmp_path, monkeypatch):
    """SIGTERM (the session's time limit) reaches a stage as KeyboardInterrupt: the stage
    is marked, the later ones are listed as not reached, and the files are written."""
    gt = _script()

    def killed(ctx, rec):
        rec["partial"] = "measured before the signal"
        raise KeyboardInterrupt("signal 15")

    monkeypatch.setattr(gt, "stage_table_ii", killed)
    rc = gt.main(["--smoke", "--out", str(tmp_path / "out"),
                  "--scratch", str(tmp_path / "scratch")])
    assert rc == 130
    stages = json.loads((tmp_path / "out" / "gpu_throughput.json").read_text())["stages"]
    assert tuple(stages) == STAGES
    assert stages["environment"]["status"] == "done"
    assert stages["table_ii"]["status"] == "interrupted"
    assert stages["table_ii"]["partial"] == "measured before the signal"
    assert {stages[k]["status"] for k in STAGES[2:]} == {"not reached"}
