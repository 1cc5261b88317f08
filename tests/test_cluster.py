"""The Ray executor: same numbers as the local one, survives a killed worker, reports
failures without losing the other runs, and keeps Ray optional.

One local Ray instance (2 CPUs) is shared by the module: starting one costs ~20 s on
the 2 shared cores this suite runs on.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import pandas as pd
import pytest

from caalib.training import TrainConfig, run_sweep

FAST = dict(topology="pool", pooling="att", iterations=20, eval_every=10, checkpoint_every=10,
            accelerator="cpu")


def tiny(**overrides) -> TrainConfig:
    return TrainConfig.from_profile("tiny", **{**FAST, **overrides})


#: The run the kill test interrupts: long enough to be caught between its first
#: checkpoint and its end.
LONG = tiny(strategy="joint", iterations=60)
CONFIGS = [
    tiny(strategy="single", train_source="a"),
    tiny(strategy="single", train_source="b"),
    tiny(strategy="teacher_forcing", cond_layer=3),
    LONG,
]


def _metrics(results: Path, cfg: TrainConfig) -> dict:
    return json.loads((results / "runs" / cfg.run_name / "metrics.json").read_text())


# ---------------------------------------------------------------------- Ray optional
def test_import_does_not_import_ray():
    code = "import sys, caalib.cluster; assert 'ray' not in sys.modules, 'ray imported'"
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=Path(__file__).resolve().parent.parent)
    assert proc.returncode == 0, proc.stderr


def test_missing_ray_names_the_extra(monkeypatch, tmp_path):
    from caalib.cluster import ClusterError, run_sweep_ray
    from caalib.errors import CaaError

    monkeypatch.setitem(sys.modules, "ray", None)  # makes `import ray` fail
    with pytest.raises(ClusterError, match=r"pip install \.\[cluster\]") as info:
        run_sweep_ray(CONFIGS[:1], tmp_path / "results", tmp_path)
    assert isinstance(info.value, CaaError)


# ---------------------------------------------------------------------- with Ray
@pytest.fixture(scope="module")
def ray_instance():
    pytest.importorskip("ray", reason="Ray not installed (pip install .[cluster])")
    from caalib import cluster

    assert cluster.connect(num_cpus=2)
    yield
    cluster.shutdown()


@pytest.fixture(scope="module")
def local_results(tmp_path_factory, tiny_dataset_2018, tiny_features_2018) -> Path:
    out = tmp_path_factory.mktemp("local")
    run_sweep(CONFIGS, out, tiny_dataset_2018, progress=False)
    return out


@pytest.fixture(scope="module")
def ray_results(tmp_path_factory, tiny_dataset_2018, tiny_features_2018, ray_instance):
    from caalib.cluster import run_sweep_ray

    out = tmp_path_factory.mktemp("ray")
    frame = run_sweep_ray(CONFIGS, out, tiny_dataset_2018, progress=False)
    return out, frame


def test_ray_sweep_matches_local(ray_results, local_results, tiny_dataset_2018):
    from caalib.cluster import attempts

    out, frame = ray_results
    assert list(frame["run_name"]) == [c.run_name for c in CONFIGS]
    assert set(frame["status"]) == {"ran"}
    assert frame["error"].isna().all()
    local = run_sweep(CONFIGS, local_results, tiny_dataset_2018, progress=False)  # all skipped
    shared = [c for c in local.columns if c not in ("status", "wall_time_s")]
    pd.testing.assert_frame_equal(frame[shared], local[shared])
    for cfg in CONFIGS:
        assert (out / "runs" / cfg.run_name / "DONE").exists()
        assert _metrics(out, cfg)["accuracy"] == _metrics(local_results, cfg)["accuracy"]
        notes = attempts(out, cfg.run_name)
        assert [n["start_status"] for n in notes] == ["missing"]


def _kill_after_checkpoint(results: Path, run_name: str, report: dict) -> None:
    """SIGKILL the worker training ``run_name`` once it has a checkpoint and no DONE."""
    from caalib.cluster import attempts

    run_dir = results / "runs" / run_name
    deadline = time.monotonic() + 60
    while time.monotonic() < deadline:
        notes = attempts(results, run_name) if (run_dir / "checkpoint.pt").exists() else []
        if notes and not (run_dir / "DONE").exists():
            report["pid"] = notes[-1]["pid"]
            os.kill(report["pid"], signal.SIGKILL)
            report["done_after_kill"] = (run_dir / "DONE").exists()
            return
        time.sleep(0.02)


def test_killed_worker_resumes_from_checkpoint(tmp_path, tiny_dataset_2018, ray_results):
    from caalib.cluster import attempts, run_sweep_ray

    reference, _ = ray_results
    configs = [LONG, CONFIGS[0]]
    report: dict = {}
    killer = threading.Thread(target=_kill_after_checkpoint,
                              args=(tmp_path, LONG.run_name, report), daemon=True)
    killer.start()
    frame = run_sweep_ray(configs, tmp_path, tiny_dataset_2018, progress=False, max_retries=2)
    killer.join(timeout=5)
    assert "pid" in report, "the run finished before a checkpoint could be caught"
    assert report["done_after_kill"] is False

    assert list(frame["status"]) == ["ran", "ran"]
    notes = attempts(tmp_path, LONG.run_name)
    assert len(notes) == 2 and notes[0]["pid"] == report["pid"] != notes[1]["pid"]
    assert [n["start_status"] for n in notes] == ["missing", "partial"]  # resumed
    run_dir = tmp_path / "runs" / LONG.run_name
    hist = pd.read_csv(run_dir / "history.csv")
    assert list(hist["iteration"]) == list(range(1, LONG.iterations + 1))
    # killed and resumed ends exactly where the uninterrupted run did (CPU, same threads)
    for cfg in configs:
        assert _metrics(tmp_path, cfg)["accuracy"] == _metrics(reference, cfg)["accuracy"]
    resumed = pd.read_csv(run_dir / "predictions.csv")
    straight = pd.read_csv(reference / "runs" / LONG.run_name / "predictions.csv")
    pd.testing.assert_frame_equal(resumed, straight)


def test_failed_run_is_reported_and_done_runs_are_kept(ray_results, tiny_dataset_2018):
    from caalib.cluster import SweepFailed, run_sweep_ray

    out, _ = ray_results
    done = out / "runs" / CONFIGS[0].run_name / "metrics.json"
    before = done.stat().st_mtime_ns
    bad = tiny(strategy="joint", dataset="dcase2019")  # the data has the 2018 layout
    with pytest.raises(SweepFailed, match=bad.run_name) as info:
        run_sweep_ray([CONFIGS[0], bad], out, tiny_dataset_2018, progress=False)
    summary = info.value.summary
    assert list(summary["status"]) == ["skipped", "failed"]
    assert summary.loc[0, "acc_avg"] == _metrics(out, CONFIGS[0])["accuracy"]["avg"]
    assert "ConfigError" in summary.loc[1, "error"] and "layout" in summary.loc[1, "error"]
    assert done.stat().st_mtime_ns == before  # never redone


def test_gpus_per_run_needs_gpus(ray_instance, tmp_path, tiny_dataset_2018):
    from caalib.cluster import run_sweep_ray
    from caalib.errors import ConfigError

    with pytest.raises(ConfigError, match="no GPU"):
        run_sweep_ray(CONFIGS[:1], tmp_path, tiny_dataset_2018, gpus_per_run=0.5,
                      progress=False)
    with pytest.raises(ConfigError, match="gpus_per_run"):
        run_sweep_ray(CONFIGS[:1], tmp_path, tiny_dataset_2018, gpus_per_run=1.5,
                      progress=False)
