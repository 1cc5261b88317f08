"""Sweeps: the paper's tables as run lists, and a runner that only trains what is missing."""

from __future__ import annotations

import pytest

from caalib.errors import ConfigError
from caalib.training import BEST_LAYER, MODELS, enumerate_runs, parse_models, run_sweep
from caalib.training.sweep import plan_frame

try:  # the caalib.datasets stand-in of test_training, while the real module is absent
    from test_training import install_datasets_standin
except ImportError:  # pragma: no cover
    install_datasets_standin = None
if install_datasets_standin is not None:
    install_datasets_standin()


def test_table_sizes():
    t1 = enumerate_runs("I", "paper")
    assert len(t1) == 56 and len({c.run_name for c in t1}) == 56
    assert {c.strategy for c in t1} == {"teacher_forcing"}
    assert {c.cond_layer for c in t1} == {1, 2, 3, 4}
    assert {c.dataset for c in t1} == {"dcase2018"}
    t2 = enumerate_runs("II", "paper")
    assert len(t2) == 14 * 6 and len({c.run_name for c in t2}) == 84
    t3 = enumerate_runs("III", "demo")
    assert len(t3) == 18 and {c.dataset for c in t3} == {"dcase2019"}
    assert {(c.topology, c.pooling) for c in t3} == {("pool", "att"), ("nopool", "att"),
                                                      ("atrous", "att")}
    assert len(enumerate_runs("III", "tiny", seeds=3)) == 54
    assert len(MODELS) == 14 and set(BEST_LAYER) == set(MODELS)


def test_table_two_uses_best_layers_and_all_strategies():
    runs = enumerate_runs("II", "tiny", models=[("atrous", "att"), ("pool", "flatten")])
    assert len(runs) == 12
    atrous = [c for c in runs if c.topology == "atrous"]
    assert sorted((c.strategy, c.train_source) for c in atrous if c.strategy == "single") == [
        ("single", "a"), ("single", "b"), ("single", "c")]
    cond = {c.strategy: c.cond_layer for c in atrous if c.cond_layer is not None}
    assert cond == {"teacher_forcing": 4, "multi_task": 4}
    flat = {c.strategy: c.cond_layer for c in runs if c.pooling == "flatten"}
    assert flat["multi_task"] == 1 and flat["joint"] is None
    # Table II's teacher-forcing run is one of Table I's runs (same directory)
    t1 = {c.run_name for c in enumerate_runs("I", "tiny")}
    assert {c.run_name for c in runs if c.strategy == "teacher_forcing"} <= t1


def test_model_filters_and_errors():
    assert parse_models("atrous:att, pool:att") == [("atrous", "att"), ("pool", "att")]
    assert parse_models(None) is None
    with pytest.raises(ConfigError, match="pool:roi"):
        parse_models("pool:roi")
    with pytest.raises(ConfigError, match="table"):
        enumerate_runs("IV", "tiny")
    with pytest.raises(ConfigError, match="profile"):
        enumerate_runs("I", "huge")


def test_tiny_sweep_runs_once(tmp_path, tiny_dataset_2018, tiny_features_2018, capsys):
    configs = enumerate_runs("II", "tiny", "dcase2018", models=[("pool", "att")],
                             iterations=6, eval_every=3, checkpoint_every=3)[:2]
    results = tmp_path / "results"
    assert list(plan_frame(configs, results)["status"]) == ["missing", "missing"]
    first = run_sweep(configs, results, tiny_dataset_2018, progress=False)
    assert list(first["status"]) == ["ran", "ran"]
    assert first["acc_avg"].notna().all()
    runs = sorted((results / "runs").iterdir())
    assert [p.name for p in runs] == sorted(c.run_name for c in configs)
    stamps = {p: p.stat().st_mtime_ns for run in runs for p in run.iterdir()}
    second = run_sweep(configs, results, tiny_dataset_2018, progress=False)
    assert list(second["status"]) == ["skipped", "skipped"]
    assert list(second["acc_avg"]) == list(first["acc_avg"])
    assert {p: p.stat().st_mtime_ns for run in runs for p in run.iterdir()} == stamps

    from caalib.cli import main

    assert main(["sweep", "--table", "II", "--profile", "tiny", "--data",
                 str(tiny_dataset_2018), "--results", str(results), "--models", "pool:att",
                 "--dry-run"]) == 0
    out = capsys.readouterr().out
    # the two finished runs were made with other sizes than the tiny profile's, in the
    # directories the profile's runs would use: dry-run flags them instead of "done"
    assert "6 runs: 4 missing, 2 conflict" in out
    assert out.count("dcase2018-pool-att-") == 6


def test_a_sweep_loads_the_data_once_per_process(tmp_path, tiny_dataset_2018,
                                                 tiny_features_2018, monkeypatch):
    import caalib.datasets
    import caalib.features
    from caalib.training import data

    counts = {"load_features": 0, "read_dataset": 0, "verify_features": 0}

    def counted(module, name):
        real = getattr(module, name)

        def wrapper(*args, **kwargs):
            counts[name] += 1
            return real(*args, **kwargs)

        monkeypatch.setattr(module, name, wrapper)

    counted(caalib.features, "load_features")
    counted(caalib.features, "verify_features")
    counted(caalib.datasets, "read_dataset")
    configs = enumerate_runs("II", "tiny", "dcase2018", models=[("pool", "att")],
                             iterations=2, eval_every=2, checkpoint_every=2)[:4]
    summary = run_sweep(configs, tmp_path / "kept", tiny_dataset_2018, progress=False)
    assert list(summary["status"]) == ["ran"] * 4
    # one HDF5 read, one dataset table, one full check of the features for four runs
    assert counts == {"load_features": 1, "read_dataset": 1, "verify_features": 1}
    assert not data._features and not data._tables  # dropped when the sweep ends
    counts.update(load_features=0, read_dataset=0, verify_features=0)
    run_sweep(configs, tmp_path / "afresh", tiny_dataset_2018, progress=False,
              reuse_data=False)
    assert counts == {"load_features": 4, "read_dataset": 4, "verify_features": 4}
