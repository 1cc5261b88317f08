"""Run identity, the determinism contract, locks, --jobs and never overwriting what the
study did not write (issue: nothing silently wrong, nothing lost).

Each test stages one fault found by a fault-injection review and checks what the user
now gets: a refusal naming the file, a run reported and skipped, or identical numbers.
"""

from __future__ import annotations

import json
import os
import shutil
import time
from pathlib import Path

import h5py
import numpy as np
import pytest
import soundfile as sf

from caalib.cli import main
from caalib.errors import ConfigError, FeatureError
from caalib.features import extract_features, load_features
from caalib.training import TrainConfig, enumerate_runs, run_sweep, runstore, train
from caalib.training.sweep import SweepFailed, plan_frame

SIZES = dict(iterations=6, eval_every=3, checkpoint_every=3)
FAST = dict(topology="pool", pooling="att", **SIZES)


def tiny(**overrides) -> TrainConfig:
    return TrainConfig.from_profile("tiny", **{**FAST, **overrides})


def _acc(run_dir: Path) -> dict:
    return json.loads((run_dir / "metrics.json").read_text())["accuracy"]


@pytest.fixture(scope="module")
def other_dataset(tiny_dataset_2018, tmp_path_factory) -> Path:
    """The tiny set with one clip's samples changed in place: same name, same size,
    mtime restored - only the content differs."""
    root = tmp_path_factory.mktemp("other") / "tiny2018b"
    shutil.copytree(tiny_dataset_2018, root, ignore=shutil.ignore_patterns("features"))
    return root


def _tamper(root: Path, name: str) -> None:
    path = root / name
    st = path.stat()
    audio, sr = sf.read(path, always_2d=True)
    info = sf.info(str(path))
    sf.write(path, audio[::-1] * 0.9, sr, subtype=info.subtype)  # same length and format
    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns))
    assert path.stat().st_size == st.st_size and path.stat().st_mtime_ns == st.st_mtime_ns


# ------------------------------------------------------------------ determinism contract
def test_cpu_threads_is_part_of_the_identity():
    one, two = tiny(accelerator="cpu"), tiny(accelerator="cpu", cpu_threads=2)
    assert one.cpu_threads == 1 and one.differences(two) == ["cpu_threads"]
    assert two.run_name == one.run_name + "-cpu2"
    with pytest.raises(ConfigError, match="cpu_threads"):
        tiny(cpu_threads=0)


def test_jobs_and_environment_give_identical_metrics(tmp_path, tiny_dataset_2018,
                                                     tiny_features_2018, monkeypatch):
    configs = enumerate_runs("II", "tiny", "dcase2018", models=[("pool", "att")], **SIZES)[:4]
    serial = run_sweep(configs, tmp_path / "serial", tiny_dataset_2018, progress=False)
    # the thread count of the machine (or an old override variable) must not matter
    monkeypatch.setenv("CAA_NUM_THREADS", "2")
    parallel = run_sweep(configs, tmp_path / "jobs2", tiny_dataset_2018, progress=False,
                         jobs=2)
    assert list(parallel["status"]) == ["ran"] * 4
    for cfg in configs:
        a = _acc(tmp_path / "serial" / "runs" / cfg.run_name)
        b = _acc(tmp_path / "jobs2" / "runs" / cfg.run_name)
        assert a == b, cfg.run_name
        preds = [(tmp_path / d / "runs" / cfg.run_name / "predictions.csv").read_text()
                 for d in ("serial", "jobs2")]
        assert preds[0] == preds[1]
    assert list(serial["acc_avg"]) == list(parallel["acc_avg"])
    with pytest.raises(ConfigError, match="jobs"):
        run_sweep(configs, tmp_path / "x", tiny_dataset_2018, progress=False, jobs=0)


# ------------------------------------------------------------------ run identity: the data
def test_another_dataset_is_another_run(tmp_path, tiny_dataset_2018, tiny_features_2018,
                                        other_dataset):
    from caalib.datasets import read_dataset

    _tamper(other_dataset, read_dataset(other_dataset)["filename"].iloc[3])
    cfg = tiny(strategy="joint")
    run = tmp_path / "run"
    first = train(cfg, run, data_dir=tiny_dataset_2018, progress=False)
    stamps = {p.name: p.stat().st_mtime_ns for p in run.iterdir()}
    # finished run, other data: refused, not the old dataset's accuracy
    with pytest.raises(ConfigError, match="data_fingerprint.*other data"):
        train(cfg, run, data_dir=other_dataset, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in run.iterdir()} == stamps
    # a partial run resumed with other data: refused too, never a model of both
    (run / "DONE").unlink()
    with pytest.raises(ConfigError, match="data_fingerprint"):
        train(cfg, run, data_dir=other_dataset, progress=False)
    assert train(cfg, run, data_dir=tiny_dataset_2018, progress=False)["accuracy"] == (
        first["accuracy"])
    # a sweep on the other data reports the run instead of "already done"
    results = tmp_path / "results"
    train(cfg, results / "runs" / cfg.run_name, data_dir=tiny_dataset_2018, progress=False)
    with pytest.raises(SweepFailed, match="other data") as info:
        run_sweep([cfg], results, other_dataset, progress=False)
    assert list(info.value.summary["status"]) == ["failed"]
    plan = plan_frame([cfg], results, other_dataset)
    assert list(plan["status"]) == ["conflict"]
    assert list(plan_frame([cfg], results, tiny_dataset_2018)["status"]) == ["done"]


def test_a_copy_of_the_dataset_is_the_same_data(tmp_path, tiny_dataset_2018,
                                                tiny_features_2018):
    """Content, not paths or timestamps, decides: a copy reuses the finished run."""
    copy = tmp_path / "copy"
    shutil.copytree(tiny_dataset_2018, copy, ignore=shutil.ignore_patterns("features"))
    cfg = tiny(strategy="joint")
    run = tmp_path / "run"
    first = train(cfg, run, data_dir=tiny_dataset_2018, progress=False)
    stamp = (run / "metrics.json").stat().st_mtime_ns
    assert train(cfg, run, data_dir=copy, progress=False) == first
    assert (run / "metrics.json").stat().st_mtime_ns == stamp


def test_clip_replaced_with_size_and_mtime_kept_rebuilds_the_cache(tmp_path,
                                                                   tiny_dataset_2018):
    from caalib.datasets import read_dataset

    root = tmp_path / "d"
    shutil.copytree(tiny_dataset_2018, root, ignore=shutil.ignore_patterns("features"))
    out = extract_features(root, progress=False)
    name = read_dataset(root)["filename"].iloc[0]
    before = load_features(out).feature[0].copy()
    stamp = out.stat().st_mtime_ns
    time.sleep(0.01)
    assert extract_features(root, progress=False) == out
    assert out.stat().st_mtime_ns == stamp  # unchanged inputs: reused
    _tamper(root, name)
    extract_features(root, progress=False)
    assert out.stat().st_mtime_ns != stamp
    assert not np.array_equal(load_features(out).feature[0], before)


def test_explicit_feature_file_of_other_data_is_refused(tmp_path, tiny_dataset_2018,
                                                        tiny_features_2018, other_dataset):
    with pytest.raises(FeatureError, match="does not hold the features"):
        train(tiny(strategy="joint"), tmp_path / "run", data_dir=other_dataset,
              feature_path=tiny_features_2018, progress=False)


# ------------------------------------------------------------------ never overwrite
def test_train_out_refuses_a_directory_it_did_not_make(tmp_path, tiny_dataset_2018,
                                                       tiny_features_2018):
    mine = tmp_path / "analysis"
    mine.mkdir()
    (mine / "history.csv").write_text("my,own\n1,2\n")
    (mine / "metrics.json").write_text('{"mine": true}')
    with pytest.raises(ConfigError, match="no config.json"):
        train(tiny(strategy="joint"), mine, data_dir=tiny_dataset_2018, progress=False)
    (mine / "notes.txt").write_text("x")
    for force in (False, True):
        with pytest.raises(ConfigError, match="not a run directory.*notes.txt"):
            train(tiny(strategy="joint"), mine, data_dir=tiny_dataset_2018, force=force,
                  progress=False)
    assert (mine / "history.csv").read_text() == "my,own\n1,2\n"
    assert json.loads((mine / "metrics.json").read_text()) == {"mine": True}
    afile = tmp_path / "file.txt"
    afile.write_text("keep")
    with pytest.raises(ConfigError, match="not a directory"):
        train(tiny(strategy="joint"), afile, data_dir=tiny_dataset_2018, progress=False)
    assert afile.read_text() == "keep"


def test_features_out_refuses_a_foreign_hdf5(tmp_path, tiny_dataset_2018, capsys):
    foreign = tmp_path / "mine.h5"
    with h5py.File(foreign, "w") as h5:
        h5["data"] = np.arange(5)
    before = foreign.read_bytes()
    with pytest.raises(FeatureError, match="did not write"):
        extract_features(tiny_dataset_2018, foreign, progress=False)
    assert main(["features", str(tiny_dataset_2018), "--out", str(foreign), "--quiet"]) == 1
    assert "did not write" in capsys.readouterr().err
    assert foreign.read_bytes() == before


# ------------------------------------------------------------------ locks, corrupt runs
def test_locked_run_is_left_to_its_owner_and_said(tmp_path, tiny_dataset_2018,
                                                  tiny_features_2018):
    configs = enumerate_runs("II", "tiny", "dcase2018", models=[("pool", "att")], **SIZES)[:2]
    results = tmp_path / "results"
    held = results / "runs" / configs[0].run_name
    with runstore.run_lock(held):
        with pytest.raises(runstore.RunLocked, match="another process"):
            train(configs[0], held, data_dir=tiny_dataset_2018, progress=False)
        summary = run_sweep(configs, results, tiny_dataset_2018, progress=False)
    assert list(summary["status"]) == ["locked", "ran"]
    assert "lock" in summary["error"].iloc[0]
    again = run_sweep(configs, results, tiny_dataset_2018, progress=False)  # lock released
    assert list(again["status"]) == ["ran", "skipped"]


def test_corrupt_run_is_reported_and_the_sweep_carries_on(tmp_path, tiny_dataset_2018,
                                                          tiny_features_2018, capsys):
    configs = enumerate_runs("II", "tiny", "dcase2018", models=[("pool", "att")], **SIZES)[:3]
    results = tmp_path / "results"
    run_sweep(configs[:1], results, tiny_dataset_2018, progress=False)
    (results / "runs" / configs[0].run_name / "metrics.json").write_text("[")
    assert list(plan_frame(configs, results)["status"]) == ["corrupt", "missing", "missing"]
    with pytest.raises(SweepFailed, match="1 of 3 runs failed") as info:
        run_sweep(configs, results, tiny_dataset_2018, progress=False)
    assert list(info.value.summary["status"]) == ["failed", "ran", "ran"]
    assert "metrics.json" in info.value.summary["error"].iloc[0]
    for cfg in configs[1:]:
        assert (results / "runs" / cfg.run_name / "DONE").exists()


def test_paper_profile_on_cpu_states_its_time_before_starting(tmp_path, tiny_dataset_2018,
                                                             monkeypatch, capsys):
    import caalib.training as training

    started = []
    monkeypatch.setattr(training, "train", lambda *a, **k: started.append(1) or {
        "accuracy": {"a": 0.5, "avg": 0.5}, "iterations": 1, "wall_time_s": 0.0})
    assert main(["train", "--data", str(tiny_dataset_2018), "--topology", "atrous",
                 "--pooling", "att", "--strategy", "joint", "--profile", "paper",
                 "--accelerator", "cpu", "--no-progress", "--out", str(tmp_path / "r")]) == 0
    err = capsys.readouterr().err
    assert "paper-size training on the CPU" in err and "at least" in err and " h," in err
    assert started == [1]  # stated before training, which then starts
    assert main(["train", "--data", str(tiny_dataset_2018), "--topology", "pool",
                 "--pooling", "att", "--strategy", "joint", "--profile", "tiny",
                 "--accelerator", "cpu", "--no-progress", "--out", str(tmp_path / "t")]) == 0
    assert "paper-size" not in capsys.readouterr().err


def test_disk_full_while_training_is_one_line_and_keeps_the_checkpoint(
        tmp_path, tiny_dataset_2018, tiny_features_2018, monkeypatch, capsys):
    import errno

    cfg = tiny(strategy="joint", iterations=6, eval_every=3, checkpoint_every=3)
    run = tmp_path / "run"
    real = runstore.save_checkpoint
    calls = {"n": 0}

    def full_disk(run_dir, state):
        calls["n"] += 1
        if calls["n"] == 2:  # the second checkpoint finds the disk full
            raise OSError(errno.ENOSPC, "No space left on device")
        return real(run_dir, state)

    monkeypatch.setattr(runstore, "save_checkpoint", full_disk)
    with pytest.raises(ConfigError, match="No space left on device.*resume"):
        train(cfg, run, data_dir=tiny_dataset_2018, progress=False)
    assert runstore.load_checkpoint(run)["iteration"] == 3 and not (run / "DONE").exists()
    monkeypatch.setattr(runstore, "save_checkpoint", real)
    resumed = train(cfg, run, data_dir=tiny_dataset_2018, progress=False)
    straight = train(cfg, tmp_path / "straight", data_dir=tiny_dataset_2018, progress=False)
    assert resumed["accuracy"] == straight["accuracy"]


# ------------------------------------------------------------------ data kept between runs
def test_reused_data_gives_identical_metrics_and_predictions(tmp_path, tiny_dataset_2018,
                                                             tiny_features_2018):
    """A sweep's processes keep the loaded features between runs: same numbers as loading
    them afresh for every run, in this process and in worker processes."""
    runs = enumerate_runs("II", "tiny", "dcase2018", models=[("pool", "att")], **SIZES)
    configs = [runs[0], runs[1], runs[3], runs[5]]  # single a, single b, joint, multi-task
    afresh = run_sweep(configs, tmp_path / "afresh", tiny_dataset_2018, progress=False,
                       reuse_data=False)
    for name, jobs in (("kept1", 1), ("kept2", 2)):
        kept = run_sweep(configs, tmp_path / name, tiny_dataset_2018, progress=False,
                         jobs=jobs)
        assert list(kept["status"]) == ["ran"] * 4
        assert list(kept["acc_avg"]) == list(afresh["acc_avg"])
        for cfg in configs:
            run = Path("runs") / cfg.run_name
            assert _acc(tmp_path / name / run) == _acc(tmp_path / "afresh" / run)
            assert ((tmp_path / name / run / "predictions.csv").read_text()
                    == (tmp_path / "afresh" / run / "predictions.csv").read_text())


@pytest.fixture
def own_dataset(tiny_dataset_2018, tmp_path) -> tuple[Path, Path]:
    """A copy of the tiny set with its own feature file (free to change)."""
    root = tmp_path / "own"
    shutil.copytree(tiny_dataset_2018, root, ignore=shutil.ignore_patterns("features"))
    return root, extract_features(root, progress=False)


def test_a_changed_feature_file_is_read_again_not_served_stale(own_dataset, monkeypatch):
    import caalib.datasets
    import caalib.features
    from caalib.training import load_run_data
    from caalib.training.data import data_reuse

    root, path = own_dataset
    reads = {"features": 0, "tables": 0}
    real_load, real_read = caalib.features.load_features, caalib.datasets.read_dataset
    monkeypatch.setattr(caalib.features, "load_features", lambda p: reads.__setitem__(
        "features", reads["features"] + 1) or real_load(p))
    monkeypatch.setattr(caalib.datasets, "read_dataset", lambda d: reads.__setitem__(
        "tables", reads["tables"] + 1) or real_read(d))
    cfg = tiny(strategy="joint")
    with data_reuse():
        first = load_run_data(cfg, path, root)
        assert np.array_equal(load_run_data(cfg, path, root).train.x, first.train.x)
        assert reads == {"features": 1, "tables": 1}
        # the features changed in place (fingerprint attribute kept): read again
        with h5py.File(path, "r+") as h5:
            h5["feature"][...] = h5["feature"][()] * 0.5 + 1.0
        changed = load_run_data(cfg, path, root)
        assert reads["features"] == 2
        assert not np.array_equal(changed.attention_logmel, first.attention_logmel)
        assert np.array_equal(changed.attention_logmel, first.attention_logmel * 0.5 + 1.0)
        # re-extracted (atomically replaced): read again, the original numbers are back
        extract_features(root, progress=False, force=True)
        again = load_run_data(cfg, path, root)
        assert reads["features"] == 3
        assert np.array_equal(again.train.x, first.train.x)
        # meta.csv touched: the dataset table is read again
        meta = root / "meta.csv"
        meta.write_bytes(meta.read_bytes())
        load_run_data(cfg, path, root)
        assert reads == {"features": 3, "tables": 2}
    # outside a sweep nothing is kept: every call reads
    load_run_data(cfg, path, root)
    assert reads == {"features": 4, "tables": 3}


def test_a_dataset_changed_between_runs_of_one_process_is_refused(tmp_path, own_dataset,
                                                                  monkeypatch):
    import caalib.features
    from caalib.datasets import read_dataset
    from caalib.training.data import data_reuse

    root, path = own_dataset
    checks = []
    real = caalib.features.verify_features
    monkeypatch.setattr(caalib.features, "verify_features",
                        lambda p, d: checks.append(1) or real(p, d))
    configs = enumerate_runs("II", "tiny", "dcase2018", models=[("pool", "att")], **SIZES)
    with data_reuse():
        for i, cfg in enumerate(configs[:2]):
            train(cfg, tmp_path / f"r{i}", data_dir=root, feature_path=path, progress=False)
        assert len(checks) == 1  # nothing changed: the second run rechecked by stat
        _tamper(root, read_dataset(root)["filename"].iloc[2])  # size and mtime kept
        with pytest.raises(FeatureError, match="does not hold the features"):
            train(configs[2], tmp_path / "r2", data_dir=root, feature_path=path,
                  progress=False)
        assert len(checks) == 2
        assert not (tmp_path / "r2").exists()
