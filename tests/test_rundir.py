"""The run-directory contract (caalib.rundir) and the fault-injection findings it closes.

Each finding of the review has a test named after it; every expected number below is
worked out by hand from the crafted runs (helpers.make_run: per device and class,
round(acc * n_per_class) of n_per_class clips right).
"""

from __future__ import annotations

import ast
import errno
import json
import os
import shutil
import subprocess
import sys
import warnings
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from helpers import make_run

from caalib import rundir
from caalib.errors import CaaError
from caalib.results.runs import RunStoreError, load_runs
from caalib.results.tables import table1, write_tables
from caalib.rundir import RunStoreWarning
from caalib.stats import paired_runs_test

ATT_L4 = {"network": "atrous", "pooling": "att", "layer": 4}


def _t1_row(runs: pd.DataFrame, **kv) -> pd.Series:
    t = table1(runs)
    m = np.ones(len(t), dtype=bool)
    for k, v in kv.items():
        m &= (t[k] == v).to_numpy()
    assert m.sum() == 1
    return t[m].iloc[0]


def _load(results: Path) -> tuple[pd.DataFrame, list[str]]:
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        runs = load_runs(results)
    return runs, [str(w.message) for w in caught if issubclass(w.category, RunStoreWarning)]


def _edit_json(path: Path, **changes) -> None:
    obj = json.loads(path.read_text())
    obj.update(changes)
    path.write_text(json.dumps(obj))


def _snapshot(d: Path) -> dict[str, bytes]:
    return {str(p.relative_to(d)): p.read_bytes() for p in sorted(d.rglob("*")) if p.is_file()}


# ---------------------------------------------------------------- finding 1: backup copy
def test_finding1_backup_copy_is_not_a_second_seed(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs", acc={"a": 0.75, "b": 0.5, "c": 0.5})
    shutil.copytree(run, run.with_name(run.name + "-backup"))
    runs, warned = _load(tmp_path)
    assert list(runs["name"]) == [run.name]
    r = _t1_row(runs, **ATT_L4)
    assert r["n_seeds"] == 1 and np.isnan(r["ours_std"])  # was n_seeds 2, std 0.0
    assert r["ours"] == pytest.approx((75 + 50 + 50) / 3)
    assert len(warned) == 1 and f"{run.name}-backup" in warned[0]
    assert "differs from its config's run name" in warned[0]


# ---------------------------------------------------------------- finding 2: sub-folder
def test_finding2_run_in_a_sub_folder_is_not_averaged_in(tmp_path: Path) -> None:
    make_run(tmp_path / "runs", seed=0, acc={"a": 0.75, "b": 0.5, "c": 0.5})
    make_run(tmp_path / "runs" / "old", seed=1, acc={"a": 1.0, "b": 1.0, "c": 1.0})
    runs, warned = _load(tmp_path)
    assert list(runs["seed"]) == [0]
    r = _t1_row(runs, **ATT_L4)
    assert r["n_seeds"] == 1 and r["ours"] == pytest.approx(175 / 3)  # not (175/3 + 100) / 2
    assert len(warned) == 1 and "old" in warned[0] and "sub-folder" in warned[0]
    # Given the runs directory itself, its direct children are the runs.
    with pytest.warns(RunStoreWarning, match="sub-folder"):
        assert list(load_runs(tmp_path / "runs")["seed"]) == [0]
    # A run beside runs/ in the results directory is not read either, and said so.
    make_run(tmp_path, seed=2)
    runs, warned = _load(tmp_path)
    assert list(runs["seed"]) == [0] and any("outside runs/" in w for w in warned)


# ---------------------------------------------------------------- finding 3: edited config
def test_finding3_config_edited_to_another_topology_is_skipped(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs", acc={"a": 0.75, "b": 0.5, "c": 0.5})
    _edit_json(run / "config.json", topology="pool")
    runs, warned = _load(tmp_path)
    assert runs.empty
    assert _t1_row(runs, network="pool", pooling="att", layer=4)["n_seeds"] == 0
    assert _t1_row(runs, **ATT_L4)["n_seeds"] == 0
    assert len(warned) == 1
    assert "'dcase2018-pool-att-teacher_forcing-L4-tiny-s0'" in warned[0]


# ---------------------------------------------------------------- finding 4: true / []
def test_finding4_bool_accuracies_and_non_object_metrics(tmp_path: Path, capsys) -> None:
    run = make_run(tmp_path / "runs", acc={"a": 1.0, "b": 1.0, "c": 1.0})
    met = json.loads((run / "metrics.json").read_text())
    met["accuracy"] = {"a": True, "b": True, "c": True, "avg": True}
    (run / "metrics.json").write_text(json.dumps(met))
    with pytest.raises(RunStoreError, match=r"metrics.json: field accuracy.a = True is not a "
                                            r"fraction"):
        load_runs(tmp_path)  # was read as 1.0 and printed as 100.0
    met["accuracy"] = True
    (run / "metrics.json").write_text(json.dumps(met))
    with pytest.raises(RunStoreError, match="field accuracy = True"):
        load_runs(tmp_path)
    (run / "metrics.json").write_text("[]")
    with pytest.raises(RunStoreError) as exc:
        load_runs(tmp_path)
    assert str(exc.value) == f"{run / 'metrics.json'}: expected a JSON object, got list"

    from caalib.cli import main

    assert main(["tables", str(tmp_path), "--out", str(tmp_path / "t")]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("caa tables: error: ") and "metrics.json" in err
    assert not (tmp_path / "t").exists()


# ---------------------------------------------------------------- finding 5: predictions
@pytest.fixture()
def pair(tmp_path: Path) -> tuple[Path, Path]:
    r1 = make_run(tmp_path / "runs", seed=0, n_per_class=5,
                  acc={"a": 1.0, "b": 0.6, "c": 0.4})
    r2 = make_run(tmp_path / "runs", seed=1, n_per_class=5,
                  acc={"a": 0.6, "b": 0.6, "c": 0.4})
    return r1, r2


def test_finding5_truncated_predictions_refused(pair, capsys) -> None:
    r1, r2 = pair
    # sound: a differs on 2 of 5 clips in each of 10 scenes: b = 20, c = 0, n = 150
    res = paired_runs_test(r1, r2)
    assert (res.b, res.c, res.n) == (20, 0, 150)
    path = r2 / "predictions.csv"
    lines = path.read_text().splitlines()
    path.write_text("\n".join(lines[:18]) + "\n")  # header + 17 of 150 clips
    with pytest.raises(RunStoreError, match=r"predictions.csv: does not match n_eval .*"
                                            r"source a: 17 rows for 50 clips"):
        paired_runs_test(r1, r2)

    from caalib.cli import main

    assert main(["compare", str(r1), str(r2)]) == 1  # was: McNemar on 17 clips, exit 0
    err = capsys.readouterr().err
    assert err.startswith("caa compare: error: ") and err.count("\n") == 1


def test_finding5_partial_last_line(pair) -> None:
    r1, r2 = pair
    path = r2 / "predictions.csv"
    lines = path.read_text().splitlines()
    lines[-1] = ",".join(lines[-1].split(",")[:3])  # cut after scene_label of the last row
    path.write_text("\n".join(lines))
    with pytest.raises(RunStoreError, match=r"predictions.csv, line 151: empty predicted"):
        paired_runs_test(r1, r2)


@pytest.mark.parametrize("damage, message", [
    (lambda df: pd.concat([df, df.iloc[[3]]]), "line 152: duplicate filename"),
    (lambda df: df.drop(columns="score_tram"), r"missing column\(s\) \['score_tram'\]"),
    (lambda df: df.drop(columns="predicted"), r"missing column\(s\) \['predicted'\]"),
    (lambda df: df.assign(score_bus=df["score_bus"].where(df.index != 7, np.inf)),
     "line 9: score_bus = 'inf' is not a finite number"),
    (lambda df: df.assign(score_bus=df["score_bus"].where(df.index != 7, np.nan)),
     "line 9: score_bus = '' is not a finite number"),
    (lambda df: df.assign(source=df["source"].where(df.index != 0, "d")),
     "line 2: unknown source 'd'"),
])
def test_finding5_malformed_predictions(pair, damage, message) -> None:
    r1, r2 = pair
    path = r2 / "predictions.csv"
    damage(pd.read_csv(path)).to_csv(path, index=False)
    with pytest.raises(RunStoreError, match=message):
        paired_runs_test(r1, r2)


def test_finding5_predictions_of_another_run(pair) -> None:
    r1, r2 = pair
    shutil.copy(r1 / "predictions.csv", r2 / "predictions.csv")  # same clips, other run
    # r1's rows give device a 1.0 (5 of 5 per scene), r2's metrics record 0.6.
    with pytest.raises(RunStoreError, match=r"gives accuracy 1.000000 on source a, .* "
                                            r"records 0.600000"):
        paired_runs_test(r1, r2)


def test_finding5_runs_must_cover_the_same_clips(tmp_path: Path) -> None:
    r1 = make_run(tmp_path / "runs", seed=0, n_per_class=5)
    r2 = make_run(tmp_path / "runs", seed=1, n_per_class=4)
    # r2 lacks clip i = 4 of every scene and device: 10 x 3 = 30 clips only in r1.
    with pytest.raises(CaaError, match="do not cover the same clips: 30 only in the first, "
                                       "0 only in the second"):
        paired_runs_test(r1, r2)
    single = make_run(tmp_path / "runs", seed=2, n_per_class=5, strategy="single",
                      cond_layer=None, train_source="b", acc={"b": 0.6})
    with pytest.raises(CaaError, match="100 only in the first"):  # a and c clips of r1
        paired_runs_test(r1, single)
    on_b = paired_runs_test(r1, single, source="b")  # r1 b: 0.5 -> 2 or 3 of 5 right
    # r1 gets round(0.5 * 5) = 2 right per scene on b, single gets 3: b = 0, c = 10
    assert (on_b.b, on_b.c, on_b.n) == (0, 10, 50)


def test_compare_needs_finished_runs(pair) -> None:
    r1, r2 = pair
    (r2 / "DONE").unlink()
    with pytest.raises(RunStoreError, match="DONE: missing: not a finished run"):
        paired_runs_test(r1, r2)


# ---------------------------------------------------------------- finding 6: all or nothing
@pytest.fixture()
def results(tmp_path: Path) -> Path:
    root = tmp_path / "results" / "runs"
    make_run(root, seed=0, acc={"a": 0.75, "b": 0.5, "c": 0.5}, attention=True, history=True)
    make_run(root, seed=1, acc={"a": 1.0, "b": 0.5, "c": 0.75}, history=True)
    make_run(root, topology="pool", pooling="max", strategy="joint", cond_layer=None,
             acc={"a": 0.5, "b": 0.25, "c": 0.25})
    return tmp_path / "results"


def _failing_after(real, n: int):
    calls = {"n": 0}

    def fake(target, *args, **kwargs):
        calls["n"] += 1
        if calls["n"] > n:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(target))
        return real(target, *args, **kwargs)
    return fake


def test_finding6_tables_disk_full_keeps_previous_output(results: Path, tmp_path: Path,
                                                          monkeypatch, capsys) -> None:
    import caalib.results.tables as tables

    out = tmp_path / "tables"
    write_tables(results, out)
    (out / "significance_ours.csv").write_text("notebook 05's table\n")  # not ours
    before = _snapshot(out)
    assert len(before) == 6 + 3 * 4 + 1

    monkeypatch.setattr(tables, "write_text", _failing_after(tables.write_text, 5))
    with pytest.raises(CaaError) as exc:
        write_tables(results, out)
    msg = str(exc.value)
    assert "\n" not in msg and msg.startswith(f"{out}: output not written (")
    assert "No space left on device" in msg and "previous contents are unchanged" in msg
    assert _snapshot(out) == before  # was: 14-22 new files mixed with the old ones
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results", "tables"]  # no staging

    from caalib.cli import main

    assert main(["tables", str(results), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("caa tables: error: ")
    assert _snapshot(out) == before


def test_finding6_tables_malformed_input_keeps_previous_output(results: Path,
                                                                tmp_path: Path) -> None:
    out = tmp_path / "tables"
    write_tables(results, out)
    before = _snapshot(out)
    run = next((results / "runs").glob("*pool-max*"))
    _edit_json(run / "metrics.json", n_eval={"a": 40, "b": -1, "c": 40})
    with pytest.raises(RunStoreError, match=r"n_eval.b = -1"):
        write_tables(results, out)
    assert _snapshot(out) == before


def test_finding6_tables_replace_their_own_files_and_keep_others(results: Path,
                                                                  tmp_path: Path) -> None:
    out = tmp_path / "tables"
    write_tables(results, out)
    (out / "significance_ours.csv").write_text("kept\n")
    gone = next((results / "runs").glob("*pool-max*"))
    shutil.rmtree(gone)
    write_tables(results, out)
    assert (out / "significance_ours.csv").read_text() == "kept\n"
    assert not (out / "runs" / gone.name).exists()  # stale per-run tables removed
    assert len(list((out / "runs").iterdir())) == 2
    (out / "mine").mkdir()
    with pytest.raises(CaaError, match="holds directory mine that caa tables did not write"):
        write_tables(results, out)
    with pytest.raises(CaaError, match="would replace"):
        write_tables(results, results)  # never swap the run store away
    assert len(list((results / "runs").iterdir())) == 2


def test_finding6_figures_all_or_nothing(results: Path, tmp_path: Path, monkeypatch,
                                         capsys) -> None:
    import caalib.results.figures as figures
    from caalib.cli import main

    out = tmp_path / "figures"
    assert main(["figures", str(results), "--out", str(out)]) == 0
    (out / "device_spectrum.png").write_bytes(b"notebook 01")
    before = _snapshot(out)
    assert len(before) == 4 * 3 + 1  # fig5-dcase2018, fig6, fig7, training_curves

    monkeypatch.setattr(figures, "save_figure", _failing_after(figures.save_figure, 2))
    assert main(["figures", str(results), "--out", str(out)]) == 1
    err = capsys.readouterr().err
    assert err.count("\n") == 1 and err.startswith("caa figures: error: ")
    assert "No space left on device" in err
    assert _snapshot(out) == before
    monkeypatch.undo()

    # Malformed input met after three figures were drawn: nothing of them is kept.
    run = next((results / "runs").glob("*s1"))
    h = pd.read_csv(run / "history.csv")
    h.loc[3, "iteration"] = 5
    h.to_csv(run / "history.csv", index=False)
    with pytest.raises(RunStoreError, match=r"history.csv, line 5: iteration 5 does not "
                                            r"follow 20"):
        figures.write_figures(results, out)
    assert _snapshot(out) == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["figures", "results"]


# ---------------------------------------------------------------- warnings on the CLI
def test_cli_prints_each_warning_on_one_line(results: Path, tmp_path: Path, capsys) -> None:
    from caalib.cli import main

    run = next((results / "runs").glob("*atrous*s0"))
    shutil.copytree(run, results / "runs" / "copy")
    make_run(results / "runs" / "old", seed=5)
    assert main(["tables", str(results), "--out", str(tmp_path / "t")]) == 0
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 2 and all(e.startswith("caa tables: warning: ") for e in err)
    assert any("copy" in e and "skipped" in e for e in err)
    assert any("old" in e and "sub-folder" in e for e in err)


# ---------------------------------------------------------------- duplicates and variants
def test_same_cell_and_seed_counts_once(results: Path) -> None:
    base = next((results / "runs").glob("*atrous*s0"))
    variant = base.with_name(base.name + "-lr_paper")
    shutil.copytree(base, variant)
    _edit_json(variant / "config.json", lr_decay="paper")
    runs, warned = _load(results)
    assert sorted(runs["name"]) == sorted(p.name for p in (results / "runs").iterdir()
                                          if p != variant)
    assert _t1_row(runs, **ATT_L4)["n_seeds"] == 2  # seeds 0 and 1, not 0, 0 and 1
    assert len(warned) == 1 and variant.name in warned[0] and base.name in warned[0]
    assert "differs in lr_decay" in warned[0]


def test_seeds_of_different_variants_are_flagged(results: Path) -> None:
    run = next((results / "runs").glob("*atrous*s1"))
    renamed = run.with_name(run.name + "-rs_soxr_hq")
    run.rename(renamed)
    _edit_json(renamed / "config.json", resampler="soxr_hq")
    runs, warned = _load(results)
    assert _t1_row(runs, **ATT_L4)["n_seeds"] == 2
    assert len(warned) == 1 and "differ in resampler" in warned[0]


# ---------------------------------------------------------------- the run-name rule
def _configs():
    from caalib.training.config import TrainConfig

    plain = {"accelerator": "cpu", "precision": "fp32", "tf32": False}
    specs = [
        dict(strategy="single", train_source="a"),
        dict(strategy="joint", topology="pool", pooling="flatten"),
        dict(strategy="teacher_forcing", cond_layer=2, pooling="roi+att"),
        dict(strategy="multi_task", cond_layer=4, dataset="dcase2019", seed=3),
        dict(strategy="multi_task", cond_layer=1, lambda_mode="clean", lr_decay="paper"),
        dict(strategy="joint", lambda_mode="clean"),  # no λ suffix outside multi-task
        dict(strategy="multi_task", cond_layer=3, lambda_mode="learned", attention="paper",
             resampler="soxr_hq", precision="bf16", tf32=True),
        dict(strategy="joint", precision="bf16", tf32=False),
        dict(strategy="single", train_source="c", tf32=True),
        dict(strategy="joint", pooling="max", cpu_threads=4),
    ]
    for i, spec in enumerate(specs):
        yield TrainConfig.from_profile(("tiny", "demo", "paper")[i % 3], **{**plain, **spec})


def test_expected_run_name_matches_training() -> None:
    for cfg in _configs():
        d = cfg.to_dict()
        assert rundir.expected_run_name(d) == cfg.run_name
        old = {k: v for k, v in d.items()
               if k not in rundir.NAME_DEFAULTS or v != rundir.NAME_DEFAULTS[k]}
        assert rundir.expected_run_name(old) == cfg.run_name  # predates the switches
    by_hand = {
        "dcase2018-atrous-roi_att-teacher_forcing-L2-demo-s0": dict(
            strategy="teacher_forcing", topology="atrous", pooling="roi+att", cond_layer=2,
            train_source=None, profile="demo"),
        "dcase2019-pool-max-single-b-tiny-s7-lr_paper-rs_soxr_hq-bf16_notf32": dict(
            strategy="single", topology="pool", pooling="max", cond_layer=None,
            train_source="b", dataset="dcase2019", profile="tiny", seed=7, lr_decay="paper",
            resampler="soxr_hq", precision="bf16", tf32=False),
        "dcase2018-nopool-att-multi_task-L1-paper-s0-lambda_clean-att_paper-tf32": dict(
            strategy="multi_task", topology="nopool", pooling="att", cond_layer=1,
            train_source=None, lambda_mode="clean", attention="paper", tf32=True),
        "dcase2018-atrous-max-joint-paper-s1-cpu8": dict(
            strategy="joint", topology="atrous", pooling="max", cond_layer=None,
            train_source=None, seed=1, cpu_threads=8),
    }
    for name, spec in by_hand.items():
        cfg = {"dataset": "dcase2018", "profile": "paper", "seed": 0, **spec}
        assert rundir.expected_run_name(cfg) == name


def test_run_identity() -> None:
    from caalib.training.config import TrainConfig

    cfg = next(_configs())
    d = cfg.to_dict()
    assert rundir.run_identity(d) == cfg.identity()
    assert not set(rundir.run_identity(d)) & {"accelerator", "fast", "compile",
                                              "checkpoint_every"}
    other_machine = {**d, "accelerator": "cuda", "fast": False, "checkpoint_every": 7}
    assert rundir.run_identity(other_machine) == rundir.run_identity(d)
    extra = {**d, "data_fingerprint": "abc", "cpu_threads": 4, "future_field": 1}
    assert rundir.identity_differences(d, extra) == ["cpu_threads", "future_field"]
    other_data = {**extra, "data_fingerprint": "abd"}  # counts once both sides know it
    assert rundir.identity_differences(extra, other_data) == ["data_fingerprint"]
    old = {k: v for k, v in d.items()
           if k not in ("resampler", "precision", "tf32", "cpu_threads", "data_fingerprint")}
    assert rundir.identity_differences(d, old) == []
    assert isinstance(TrainConfig.from_dict(d), TrainConfig)


def test_vocabulary_agrees_with_training() -> None:
    from caalib.training import config as tc

    assert rundir.EXECUTION_FIELDS == tc.EXECUTION_FIELDS
    assert rundir.RENAMED_CONFIG_FIELDS == tc.RENAMED_FIELDS
    assert rundir.PROFILES == tc.PROFILES_NAMES
    from caalib.training import runstore

    assert rundir.PREDICTION_COLUMNS == runstore.PREDICTION_COLUMNS
    assert rundir.HISTORY_COLUMNS == runstore.HISTORY_COLUMNS
    assert (rundir.CONFIG_FILE, rundir.METRICS_FILE, rundir.HISTORY_FILE,
            rundir.PREDICTIONS_FILE, rundir.ATTENTION_FILE, rundir.DONE_FILE) == (
        runstore.CONFIG, runstore.METRICS, runstore.HISTORY, runstore.PREDICTIONS,
        runstore.ATTENTION, runstore.DONE)


def test_rundir_imports_neither_training_nor_results() -> None:
    tree = ast.parse(Path(rundir.__file__).read_text())
    imported = [n.module or "" for n in ast.walk(tree) if isinstance(n, ast.ImportFrom)]
    imported += [a.name for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names]
    assert not [m for m in imported if "training" in m or "results" in m]
    code = ("import sys, caalib.rundir; "
            "print([m for m in sys.modules if m.startswith(('caalib.training', "
            "'caalib.results'))])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         check=True)
    assert out.stdout.strip() == "[]"


# ---------------------------------------------------------------- config.json
@pytest.mark.parametrize("change, message", [
    ({"seed": True}, "field seed = True is not a non-negative integer"),
    ({"seed": -1}, "field seed = -1"),
    ({"pooling": "flatten"}, "field pooling: 'flatten' is not a pooling of topology 'atrous'"),
    ({"cond_layer": None}, "field cond_layer: required for strategy 'teacher_forcing'"),
    ({"cond_layer": 5}, "field cond_layer: 5 is not one of 1, 2, 3, 4"),
    ({"train_source": "a"}, "train_source = 'a' is not null"),
    ({"profile": "huge"}, "profile = 'huge'"),
    ({"dataset": "dcase2021"}, "dataset = 'dcase2021'"),
    ({"tf32": "yes"}, "tf32 = 'yes'"),
    ({"lr_decay": 1}, "lr_decay = 1 is not a name"),
])
def test_config_fields_checked(tmp_path: Path, change, message) -> None:
    run = make_run(tmp_path / "runs")
    _edit_json(run / "config.json", **change)
    with pytest.raises(RunStoreError, match=message):
        rundir.read_config_dict(run)


def test_config_tolerates_unknown_fields(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs")
    _edit_json(run / "config.json", data_fingerprint="f00", cpu_threads=1, precision="fp32",
               tf32=False, resampler="kaiser_best")
    assert rundir.read_config_dict(run)["data_fingerprint"] == "f00"
    assert len(load_runs(tmp_path)) == 1
    (run / "config.json").write_text('["dcase2018"]')
    with pytest.raises(RunStoreError, match="config.json: expected a JSON object, got list"):
        rundir.read_config_dict(run)


# ---------------------------------------------------------------- metrics.json
def test_sound_metrics_read_back(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs", acc={"a": 0.75, "b": 0.5, "c": 0.25})
    met = rundir.read_metrics(run)
    assert met["accuracy"] == {"a": 0.75, "b": 0.5, "c": 0.25, "avg": 0.5}
    assert met["n_eval"] == {"a": 40, "b": 40, "c": 40}


@pytest.mark.parametrize("edit, message", [
    (lambda m: m["accuracy"].update(avg=0.6), r"accuracy.avg = 0.6 is not the mean .*0.500000"),
    (lambda m: m["accuracy"].update(avg=0.5 + 2e-6), "accuracy.avg"),
    (lambda m: m["accuracy"].update(d=0.5), r"unknown key\(s\) \['d'\]"),
    (lambda m: m["accuracy"].pop("avg"), "needs at least one device and avg"),
    (lambda m: m["accuracy"].update(b=None), "accuracy.b = None is not a fraction"),
    (lambda m: m["n_eval"].update(b=True), "n_eval.b = True is not a positive"),
    (lambda m: m["n_eval"].pop("c"), "n_eval must hold exactly the devices"),
    (lambda m: m["n_eval"].update(a=41), "confusion.a counts 40 clips, n_eval.a = 41"),
    (lambda m: m["classwise"]["a"].update(bus=1.0), "accuracy.a = 0.75 is not the mean"),
    (lambda m: m.update(device_accuracy=True), "device_accuracy = True"),
    (lambda m: m.update(device_accuracy=1.5), "device_accuracy = 1.5"),
    (lambda m: m["confusion"]["b"].pop(), r"confusion.b is not a 10 x 10 matrix"),
    (lambda m: m.update(iterations=-3), "iterations = -3"),
])
def test_metrics_checked(tmp_path: Path, edit, message) -> None:
    run = make_run(tmp_path / "runs", acc={"a": 0.75, "b": 0.5, "c": 0.25})
    met = json.loads((run / "metrics.json").read_text())
    edit(met)
    (run / "metrics.json").write_text(json.dumps(met))
    with pytest.raises(RunStoreError, match=message) as exc:
        rundir.read_metrics(run)
    assert str(exc.value).startswith(str(run / "metrics.json")) and "\n" not in str(exc.value)


def test_single_run_scored_on_its_own_device_only(tmp_path: Path) -> None:
    run = make_run(tmp_path / "runs", strategy="single", cond_layer=None, train_source="b",
                   acc={"b": 0.5})
    _edit_json(run / "config.json", train_source="c")
    run.rename(run.with_name(run.name.replace("-single-b-", "-single-c-")))
    with pytest.raises(RunStoreError, match=r"single-device run on c scored on devices \['b'\]"):
        load_runs(tmp_path)


# ---------------------------------------------------------------- unfinished, browser
def test_unfinished_runs_skipped_silently(tmp_path: Path) -> None:
    make_run(tmp_path / "runs", done=False)
    runs, warned = _load(tmp_path)
    assert runs.empty and warned == []


def test_browser_lists_the_runs_the_tables_read(tmp_path: Path) -> None:
    pytest.importorskip("ipywidgets")
    from caalib.results import widgets

    run = make_run(tmp_path / "runs", attention=True)
    shutil.copytree(run, run.with_name("backup"))
    with pytest.warns(RunStoreWarning, match="backup"):
        assert widgets.attention_runs(tmp_path) == [run]
