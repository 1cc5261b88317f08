"""Tables from crafted run directories in the run-store format of docs/architecture.md."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import make_run

from caalib.constants import DEVICES
from caalib.errors import CaaError
from caalib.results.runs import RunStoreError, load_runs
from caalib.results.tables import (
    classwise_table,
    device_table,
    table1,
    table2,
    table3,
    write_tables,
)


@pytest.fixture()
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results" / "runs"
    # Table I / II teacher forcing atrous att L4, two seeds -> mean/std.
    make_run(root, seed=0, acc={"a": 0.75, "b": 0.5, "c": 0.5})
    make_run(root, seed=1, acc={"a": 1.0, "b": 0.5, "c": 0.75})
    # another layer of the same model (Table I only; Table II uses L4).
    make_run(root, cond_layer=3, acc={"a": 1.0, "b": 1.0, "c": 1.0})
    # single-device atrous att: one run per device.
    for dev, a in zip(DEVICES, (0.75, 0.5, 0.25), strict=True):
        make_run(root, strategy="single", cond_layer=None, train_source=dev, acc={dev: a})
    # joint pool max, unfinished run that must be ignored, and a 2019 run.
    make_run(root, topology="pool", pooling="max", strategy="joint", cond_layer=None,
             acc={"a": 0.5, "b": 0.25, "c": 0.25})
    make_run(root, topology="pool", pooling="max", strategy="joint", cond_layer=None,
             seed=7, acc={"a": 0.0, "b": 0.0, "c": 0.0}, done=False)
    make_run(root, dataset="dcase2019", strategy="multi_task",
             acc={"a": 0.5, "b": 0.5, "c": 0.25})
    (root / "not-a-run").mkdir()
    return tmp_path / "results"


def _row(t: pd.DataFrame, **kv) -> pd.Series:
    m = np.ones(len(t), dtype=bool)
    for k, v in kv.items():
        m &= (t[k] == v).to_numpy()
    assert m.sum() == 1, kv
    return t[m].iloc[0]


def test_load_runs_finds_finished_runs_only(results: Path) -> None:
    runs = load_runs(results)
    assert len(runs) == 8  # 3 tf + 3 single + joint + 2019; unfinished skipped
    assert not (runs["seed"] == 7).any()
    single_b = runs[(runs["strategy"] == "single") & (runs["train_source"] == "b")].iloc[0]
    assert single_b["acc_b"] == 0.5 and np.isnan(single_b["acc_a"])
    assert len(load_runs(results, include_unfinished=True)) == 9


def test_table1_mean_std_and_missing(results: Path) -> None:
    t1 = table1(load_runs(results))
    assert len(t1) == 56  # every paper row kept
    r = _row(t1, network="atrous", pooling="att", layer=4)
    seeds = [np.mean([75, 50, 50]), np.mean([100, 50, 75])]
    assert r["n_seeds"] == 2
    assert r["ours"] == pytest.approx(np.mean(seeds))
    assert r["ours_std"] == pytest.approx(np.std(seeds, ddof=1))
    assert r["paper"] == 67.0 and r["diff"] == pytest.approx(r["ours"] - 67.0)
    r3 = _row(t1, network="atrous", pooling="att", layer=3)
    assert r3["ours"] == pytest.approx(100.0) and r3["n_seeds"] == 1 and np.isnan(r3["ours_std"])
    missing = _row(t1, network="pool", pooling="flatten", layer=1)
    assert np.isnan(missing["ours"]) and missing["n_seeds"] == 0 and np.isnan(missing["diff"])


def test_table2_single_device_assembly_and_layers(results: Path) -> None:
    runs = load_runs(results)
    t2 = table2(runs)
    kw = {"network": "atrous", "pooling": "att"}
    assert _row(t2, strategy="single", device="a", **kw)["ours"] == pytest.approx(75.0)
    assert _row(t2, strategy="single", device="c", **kw)["ours"] == pytest.approx(25.0)
    single_avg = _row(t2, strategy="single", device="avg", **kw)
    assert single_avg["ours"] == pytest.approx(50.0)
    assert single_avg["diff"] == pytest.approx(50.0 - 65.0)
    # Teacher forcing uses the paper's best layer (4), not our better layer 3 ...
    tf = _row(t2, strategy="teacher_forcing", device="avg", **kw)
    assert tf["layer"] == 4 and tf["n_seeds"] == 2
    assert tf["ours"] == pytest.approx(np.mean([np.mean([75, 50, 50]), np.mean([100, 50, 75])]))
    # ... unless asked to use ours.
    tf_ours = _row(table2(runs, layers="ours"), strategy="teacher_forcing", device="avg", **kw)
    assert tf_ours["layer"] == 3 and tf_ours["ours"] == pytest.approx(100.0)
    joint = _row(t2, network="pool", pooling="max", strategy="joint", device="b")
    assert joint["ours"] == pytest.approx(25.0) and joint["paper"] == 57.2
    assert np.isnan(_row(t2, network="nopool", pooling="roi", strategy="joint",
                         device="a")["ours"])
    assert len(t2) == 224


def test_table3_uses_2019_runs(results: Path) -> None:
    t3 = table3(load_runs(results))
    r = _row(t3, network="atrous", pooling="att", strategy="multi_task", device="c")
    assert r["ours"] == pytest.approx(25.0) and r["paper"] == 52.6
    assert np.isnan(_row(t3, network="atrous", pooling="att", strategy="single",
                         device="a")["ours"])


def test_mixed_profiles_need_a_choice(results: Path) -> None:
    make_run(results / "runs", profile="demo", acc={"a": 0.5, "b": 0.5, "c": 0.5})
    runs = load_runs(results)
    with pytest.raises(CaaError, match="profile"):
        table1(runs)
    assert _row(table1(runs, profile="demo"), network="atrous", pooling="att",
                layer=4)["n_seeds"] == 1


def test_per_run_tables(results: Path) -> None:
    run = next((results / "runs").glob("dcase2018-atrous-att-teacher_forcing-L4-tiny-s0"))
    cw = classwise_table(run)
    assert list(cw.columns) == ["a", "b", "c", "avg"]
    assert cw.loc["Metro station", "a"] == pytest.approx(75.0)
    assert cw.loc["Average", "b"] == pytest.approx(50.0)
    dt = device_table(run)
    assert dt["device"].tolist() == ["a", "b", "c", "avg"]
    assert dt["accuracy"].tolist() == pytest.approx([75.0, 50.0, 50.0, 175 / 3])
    assert dt["n_eval"].tolist() == [40, 40, 40, 120]


def test_write_tables(results: Path, tmp_path: Path) -> None:
    out = tmp_path / "tables"
    written = write_tables(results, out)
    for name in ("table1", "table2", "table3"):
        assert (out / f"{name}.csv").stat().st_size > 100
        assert (out / f"{name}.md").read_text().startswith("| ")
    back = pd.read_csv(out / "table1.csv")
    assert len(back) == 56
    assert "72.4" in (out / "table2.md").read_text()  # paper numbers shown in the wide layout
    assert len(list((out / "runs").glob("*/classwise.csv"))) == 8
    assert not [p for p in out.rglob(".*")]  # no temporary files left
    assert all(p.exists() for p in written)


def test_bad_run_files_are_named(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs")
    (run / "metrics.json").write_text('{"accuracy": {"a": 70}}')
    with pytest.raises(RunStoreError, match=r"metrics.json.*accuracy.a"):
        load_runs(tmp_path)
    (run / "metrics.json").write_text("{oops")
    with pytest.raises(RunStoreError, match=r"metrics.json, line 1"):
        load_runs(tmp_path)
    (run / "config.json").write_text('{"dataset": "dcase2018"}')
    with pytest.raises(RunStoreError, match=r"config.json: missing field"):
        load_runs(tmp_path)
    with pytest.raises(RunStoreError, match="not found"):
        load_runs(tmp_path / "nowhere")


def test_empty_results_dir(tmp_path: Path) -> None:
    runs = load_runs(tmp_path)
    assert runs.empty
    assert table1(runs)["ours"].isna().all()
    assert table2(runs)["ours"].isna().all()


def test_cli_tables_and_figures(results: Path, tmp_path: Path, capsys) -> None:
    from caalib.cli import main

    assert main(["tables", str(results), "--out", str(tmp_path / "t"), "--no-per-run"]) == 0
    assert (tmp_path / "t" / "table2.md").is_file() and not (tmp_path / "t" / "runs").exists()
    assert main(["tables", str(tmp_path / "missing")]) == 1
    assert "results directory not found" in capsys.readouterr().err
