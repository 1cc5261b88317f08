"""The notebook series: committed clean, parametrised, and executing end to end (tiny).

Also the helpers the notebooks call, from the modules that own them (caalib.datasets,
caalib.results.spectra, caalib.results.selection, caalib.stats), on crafted metadata and
run stores, so their logic is checked without running a notebook. That ``caa`` writes
the same files as the notebooks is in test_cli_notebooks_agree.py.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import nbformat
import numpy as np
import pandas as pd
import pytest
from helpers import metrics_by_counting

from caalib.constants import DEVICES, SCENES
from caalib.datasets import (
    clip_counts,
    device_split_counts,
    parallel_mask,
    pick_parallel_recording,
    recording_key,
)
from caalib.errors import CaaError, DatasetError
from caalib.results.selection import headline_run, pick_runs
from caalib.results.spectra import device_mean_spectrum, device_shift, parallel_device_spectrum
from caalib.stats import (
    COMPACT_TEST_COLUMNS,
    bootstrap_runs,
    compact_tests,
    for_display,
    significance_summary,
    strategy_tests,
)
from caalib.study import KERNEL_NAME, notebooks

NOTEBOOKS = notebooks()
PARAMETERS = {
    "profile": "demo", "data_dir": "../data/demo", "dataset": "dcase2018",
    "results_dir": "../results", "figures_dir": "../figures",
}


# ---------------------------------------------------------------- committed notebooks
def test_series_is_numbered_from_one_without_gaps() -> None:
    # 01-07 are the paper's study; later chapters (claims, explanations) follow them
    assert len(NOTEBOOKS) >= 7
    assert [nb.name[:2] for nb in NOTEBOOKS] == [f"{i:02d}" for i in range(1, len(NOTEBOOKS) + 1)]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_committed_clean_and_parametrised(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    spec = nb.metadata["kernelspec"]
    assert spec["name"] == KERNEL_NAME and spec["display_name"] == KERNEL_NAME
    assert spec["language"] == "python"
    code = [c for c in nb.cells if c.cell_type == "code"]
    assert "outputs" not in nb.metadata and "widgets" not in nb.metadata
    for cell in code:
        assert cell.get("outputs") == [], f"{path.name}: a code cell carries outputs"
        assert cell.get("execution_count") is None, f"{path.name}: execution count left in"
    assert nb.cells[0].cell_type == "markdown", f"{path.name}: should open with prose"
    first = code[0]
    assert "parameters" in first.metadata.get("tags", []), f"{path.name}: no parameters cell"
    values: dict[str, object] = {}
    exec(first.source, {}, values)  # noqa: S102 - our own assignments
    assert {k: values.get(k) for k in PARAMETERS} == PARAMETERS
    # the one chapter-specific parameter: how many runs 03 trains at once (caa study sets it)
    assert set(values) - set(PARAMETERS) <= ({"jobs"} if path.name.startswith("03") else set())
    tagged = [c for c in nb.cells if "parameters" in c.metadata.get("tags", [])]
    assert len(tagged) == 1


# what ipykernel reports for a Python kernel, less the interpreter version (which varies
# between machines); JupyterLab rewrites a notebook on first save when any of it is missing
LANGUAGE_INFO = {
    "name": "python", "codemirror_mode": {"name": "ipython", "version": 3},
    "file_extension": ".py", "mimetype": "text/x-python", "nbconvert_exporter": "python",
    "pygments_lexer": "ipython3",
}


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.name)
def test_notebook_metadata_complete(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    info = dict(nb.metadata["language_info"])
    info.pop("version", None)
    assert info == LANGUAGE_INFO, f"{path.name}: incomplete language_info"
    assert set(nb.metadata["kernelspec"]) == {"name", "display_name", "language"}
    # byte-for-byte what nbformat writes (indent 1), so a save does not reformat it
    assert path.read_text(encoding="utf-8") == nbformat.writes(nb) + "\n"


def test_language_info_is_what_ipykernel_reports() -> None:
    from ipykernel.ipkernel import IPythonKernel

    reported = dict(IPythonKernel.language_info)
    reported.pop("version")
    assert reported == LANGUAGE_INFO


# ---------------------------------------------------------------- the notebooks' helpers
def _meta() -> pd.DataFrame:
    """Two scenes; recording r0 on all devices, r1 on A and B only, r2 on A (train)."""
    rows = []
    for scene in ("bus", "airport"):
        for seg, devs, split in ((0, DEVICES, "evaluate"), (1, ("a", "b"), "evaluate"),
                                 (2, ("a",), "train")):
            for d in devs:
                rows.append({"filename": f"audio/{scene}-lyon-1-{seg}-{d}.wav",
                             "scene_label": scene, "identifier": "lyon-1", "source_label": d,
                             "split": split, "segment": seg})
    rows.append({"filename": "audio/park-milan-1-0-a.wav", "scene_label": "park",
                 "identifier": "milan-1", "source_label": "a", "split": "", "segment": 0})
    return pd.DataFrame(rows)


def test_clip_counts_table() -> None:
    meta = _meta()
    t = clip_counts(meta)
    assert list(t.index) == ["airport", "bus", "park", "total"]
    assert t.loc["bus", ("evaluate", "a")] == 2 and t.loc["bus", ("evaluate", "c")] == 1
    assert t.loc["park", ("none", "a")] == 1  # clips in no split are kept, not dropped
    assert t.loc["total", ("all", "all")] == len(meta)
    d = device_split_counts(meta)
    assert d.loc["a", "train"] == 2 and d.loc["c", "all"] == 2
    assert d["all"].sum() == len(meta)
    with pytest.raises(DatasetError, match="split"):
        clip_counts(meta.drop(columns="split"))


def test_parallel_recording_picks_a_full_triple() -> None:
    meta = _meta()
    rows = pick_parallel_recording(meta)
    assert list(rows["source_label"]) == ["a", "b", "c"]
    assert rows["recording"].nunique() == 1 and rows["scene_label"].iloc[0] == "airport"
    bus = pick_parallel_recording(meta, scene="bus")
    assert set(bus["filename"].str.contains("bus-lyon-1-0-")) == {True}
    with pytest.raises(DatasetError, match="park"):
        pick_parallel_recording(meta, scene="park")
    # The file-name fallback agrees with identifier + segment.
    no_seg = meta.drop(columns=["segment"])
    assert list(recording_key(no_seg)) == list(
        meta["scene_label"] + "-" + meta["identifier"] + "-" + meta["segment"].astype(str))
    mask = parallel_mask(meta)
    assert mask.sum() == 6 and mask.dtype == bool


def test_device_mean_spectrum_and_shift() -> None:
    meta = _meta()
    n, t, f = len(meta), 5, 4
    offset = {"a": 0.0, "b": -1.0, "c": 2.0}
    feature = np.ones((n, t, f), dtype=np.float32)
    feature += np.array([offset[d] for d in meta["source_label"]])[:, None, None]
    feature[:, :, 0] += 10  # a spectral shape common to all devices
    spec = device_mean_spectrum(feature, meta)
    assert list(spec.columns) == list(DEVICES) and spec.shape == (f, 3)
    assert spec.loc[0, "a"] == pytest.approx(11.0)
    shift = device_shift(spec)
    assert list(shift.columns) == ["b", "c"]
    np.testing.assert_allclose(shift["b"], -1.0)
    np.testing.assert_allclose(shift["c"], 2.0)
    only = device_mean_spectrum(feature, meta, rows=meta["source_label"] != "c")
    assert list(only.columns) == ["a", "b"]
    with pytest.raises(ValueError, match="meta rows"):
        device_mean_spectrum(feature[:3], meta)
    par = parallel_device_spectrum(feature, meta)  # the clips of the full triples only
    assert par.attrs == {"n_parallel": 6, "n_clips": len(meta)}
    pd.testing.assert_frame_equal(par, device_mean_spectrum(feature, meta,
                                                            rows=parallel_mask(meta)))
    with pytest.raises(DatasetError, match="three devices"):
        parallel_device_spectrum(feature[:1], meta.iloc[:1])


def _craft_run(root: Path, strategy: str, correct: np.ndarray, files: list[str],
               devices: list[str], labels: list[str], train_source: str | None = None,
               cond_layer: int | None = None, seed: int = 0) -> Path:
    name = "-".join(p for p in ("dcase2018-atrous-att", strategy, train_source or "",
                                f"L{cond_layer}" if cond_layer else "", "tiny", f"s{seed}") if p)
    run = root / "runs" / name
    run.mkdir(parents=True)
    keep = [i for i, d in enumerate(devices) if train_source in (None, d)]
    pred = [labels[i] if correct[i] else SCENES[(SCENES.index(labels[i]) + 1) % 10]
            for i in keep]
    frame = pd.DataFrame({"filename": [files[i] for i in keep],
                          "source": [devices[i] for i in keep],
                          "scene_label": [labels[i] for i in keep], "predicted": pred})
    frame.to_csv(run / "predictions.csv", index=False)
    met = metrics_by_counting(frame)  # counted by the helper, not by caalib.metrics
    met.update({"device_accuracy": None, "iterations": 1, "wall_time_s": 0.1})
    (run / "metrics.json").write_text(json.dumps(met))
    (run / "config.json").write_text(json.dumps({
        "dataset": "dcase2018", "topology": "atrous", "pooling": "att", "strategy": strategy,
        "cond_layer": cond_layer, "train_source": train_source, "profile": "tiny", "seed": seed}))
    (run / "DONE").write_text("")
    return run


@pytest.fixture()
def crafted_runs(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 60
    devices = [DEVICES[i % 3] for i in range(n)]
    labels = [SCENES[i % 10] for i in range(n)]
    files = [f"audio/{labels[i]}-x-0-{i}-{devices[i]}.wav" for i in range(n)]
    mt = rng.random(n) < 0.8
    mt[:6] = True
    joint = mt.copy()
    joint[:6] = False  # joint wrong where multi-task is right on six clips: b = 6, c = 0
    _craft_run(tmp_path, "multi_task", mt, files, devices, labels, cond_layer=4)
    _craft_run(tmp_path, "multi_task", mt, files, devices, labels, cond_layer=2)
    _craft_run(tmp_path, "joint", joint, files, devices, labels)
    for d in DEVICES:
        _craft_run(tmp_path, "single", rng.random(n) < 0.5, files, devices, labels, train_source=d)
    return tmp_path


def test_strategy_tests_on_crafted_runs(crafted_runs: Path) -> None:
    from caalib.results import load_runs

    runs = load_runs(crafted_runs)
    picked = pick_runs(runs, "atrous", "att", "multi_task")
    assert list(picked["cond_layer"]) == [4]  # the paper's best layer for atrous + att
    assert list(pick_runs(runs, "atrous", "att", "single")["train_source"]) == ["a", "b", "c"]
    tests = strategy_tests(runs)
    pairs = set(zip(tests["strategy1"], tests["strategy2"], strict=True))
    assert pairs == {("multi_task", "single"), ("multi_task", "joint")}  # no teacher forcing
    vs_joint = tests[(tests["strategy2"] == "joint") & (tests["device"] == "all")].iloc[0]
    assert (vs_joint["b"], vs_joint["c"], vs_joint["n"]) == (6, 0, 60)
    assert vs_joint["p"] == pytest.approx(2 * 0.5**6)
    z = tests[tests["test"].str.startswith("z") & (tests["strategy2"] == "single")].iloc[0]
    single_avg = runs[runs["strategy"] == "single"].apply(
        lambda r: r[f"acc_{r['train_source']}"], axis=1).mean()
    assert z["acc2"] == pytest.approx(single_avg) and z["n"] == 60
    per_dev = tests[(tests["strategy2"] == "single") & tests["test"].str.startswith("McNemar")]
    assert sorted(per_dev["device"]) == ["a", "b", "c"] and set(per_dev["n"]) == {20}
    assert strategy_tests(runs[runs["strategy"] != "joint"].iloc[:0]).empty


def test_compact_tests_and_summary_sentence(crafted_runs: Path) -> None:
    from caalib.results import load_runs

    tests = strategy_tests(load_runs(crafted_runs))
    compact = compact_tests(tests)
    assert list(compact.columns) == list(COMPACT_TEST_COLUMNS) and len(compact) == len(tests)
    assert compact["p"].tolist() == pytest.approx(tests["p"].tolist())
    assert (compact["significant"] == (tests["p"] < 0.05)).all()
    assert compact["effect"].tolist() == pytest.approx(
        (100 * (tests["acc1"] - tests["acc2"])).tolist())
    assert set(compact["comparison"]) == {"multi-task vs single-device", "multi-task vs joint"}
    z = tests[tests["test"].str.startswith("z") & (tests["strategy2"] == "single")].iloc[0]
    sentence = significance_summary(tests)
    assert sentence.startswith("On this run, multi-task vs single-device (atrous+att")
    assert f"z = {z['z']:.3f}, p = {z['p']:.3g}" in sentence
    verdict = "significant" if z["p"] < 0.05 else "not significant"
    assert f", {verdict} at 0.05." in sentence
    n_sig = int((tests["p"] < 0.05).sum())
    assert f"{n_sig} of the {len(tests)} tests" in sentence
    assert "no pair" in significance_summary(tests.iloc[:0])
    # one mark for a missing value, whatever pandas would print
    frame = pd.DataFrame({"x": [1.23456, np.nan], "k": pd.array([1, None], dtype="Int64")})
    shown = for_display(frame, 2)
    assert shown.to_dict("list") == {"x": [1.23, "–"], "k": [1, "–"]}
    assert "NaN" not in shown.to_string() and "<NA>" not in shown.to_string()


def test_bootstrap_runs_and_headline_run(crafted_runs: Path) -> None:
    from caalib.results import load_runs

    runs = load_runs(crafted_runs)
    boot = bootstrap_runs(runs, n_resamples=50)
    assert len(boot) == len(runs)
    assert (boot["ci_low"] <= boot["accuracy"] + 1e-9).all()
    assert (boot["accuracy"] <= boot["ci_high"] + 1e-9).all()
    single = boot[boot["strategy"] == "single"]
    assert list(single["device"]) == list(single["train_source"])
    head = headline_run(runs)
    assert head.row["strategy"] == "multi_task" and head.row["cond_layer"] == 4
    assert "paper's CAA-Net" in head.reason
    joint = headline_run(runs[runs["strategy"] == "joint"])  # a fallback, with its reason
    assert joint.row["strategy"] == "joint" and "no multi-task run" in joint.reason
    with pytest.raises(CaaError, match="no finished run on dcase2019"):
        headline_run(runs, "dcase2019")


# ---------------------------------------------------------------- the series, headless
@pytest.mark.slow
def test_every_notebook_runs_headless_on_tiny(tiny_dataset_2018: Path, tmp_path: Path) -> None:
    pytest.importorskip("papermill")
    from caalib.plan import study_runs
    from caalib.study import run_study

    results, figures = tmp_path / "results", tmp_path / "figures"
    start = time.perf_counter()
    out = run_study(profile="tiny", data_dir=tiny_dataset_2018, dataset="dcase2018",
                    results_dir=results, figures_dir=figures, progress=False)
    elapsed = time.perf_counter() - start
    print("notebook seconds:", {k: round(v, 1) for k, v in out.seconds.items()},
          f"total {elapsed:.1f}")

    assert [p.name for p in out.executed] == [nb.name for nb in NOTEBOOKS]
    for executed in out.executed:
        nb = nbformat.read(executed, as_version=4)
        errors = [o for c in nb.cells if c.cell_type == "code" for o in c.get("outputs", [])
                  if o.get("output_type") == "error"]
        assert not errors, f"{executed.name}: {errors[0]}"
        assert any(c.get("outputs") for c in nb.cells if c.cell_type == "code")

    for name in ("device_spectrum", "receptive_field", "training_curves", "fig5-dcase2018",
                 "fig6", "fig7"):
        for ext in ("png", "pdf", "csv"):
            path = figures / f"{name}.{ext}"
            assert path.is_file() and path.stat().st_size > 0, f"missing {path}"

    tables = results / "tables"
    for name in ("table1", "table2", "table3", "significance_paper", "significance_ours",
                 "bootstrap_ci"):
        assert (tables / f"{name}.csv").is_file(), f"missing {name}.csv"
    for name in ("table1", "table2", "table3"):
        assert (tables / f"{name}.md").is_file()
    t2 = pd.read_csv(tables / "table2.csv")
    assert t2["ours"].notna().any()
    assert not pd.read_csv(tables / "significance_ours.csv").empty

    for cfg in study_runs("tiny", "dcase2018"):
        run = results / "runs" / cfg.run_name
        met = json.loads((run / "metrics.json").read_text())
        assert 0.0 <= met["accuracy"]["avg"] <= 1.0, run
    # The browser of notebook 07 found the attention runs the sweep wrote.
    nb07 = nbformat.read(results / "notebooks" / "07_heatmap_browser.ipynb", as_version=4)
    shown = [o for c in nb07.cells if c.cell_type == "code" for o in c.get("outputs", [])]
    assert any("application/vnd.jupyter.widget-view+json" in o.get("data", {}) for o in shown)
