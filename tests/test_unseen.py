"""The unseen-device comparison (caa unseen), the train/sweep flags of the unseen-device
policy and the augmentations, and results for more than three devices (2020 layout)."""

from __future__ import annotations

import json
import math
import statistics
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import balanced_accuracy_score

from caalib.cli import main
from caalib.errors import CaaError, ConfigError

pytestmark = pytest.mark.usefixtures("one_thread")

SEEN = ("a", "b", "c", "s1", "s2", "s3")
UNSEEN = ("s4", "s5", "s6")
EXPECTED_METHODS = [
    "joint", "teacher_forcing/nearest", "teacher_forcing/none", "multi_task/nearest",
    "multi_task/none", "joint + dir", "joint + freq_mixstyle", "joint + mixup",
]


@pytest.fixture(scope="module")
def comparison(tiny_dataset_2020: Path, tiny_features_2020: Path,
               tmp_path_factory: pytest.TempPathFactory) -> Path:
    """``caa unseen`` on the tiny profile: eight runs of 10 iterations, one seed."""
    results = tmp_path_factory.mktemp("unseen") / "results"
    assert main(["unseen", str(results), "--data", str(tiny_dataset_2020), "--profile",
                 "tiny", "--accelerator", "cpu", "--no-progress"]) == 0
    return results


def _per_device_accuracy(run_dir: Path) -> dict[str, float]:
    """Oracle: each device's mean class recall from predictions.csv (scikit-learn)."""
    pred = pd.read_csv(run_dir / "predictions.csv")
    return {dev: balanced_accuracy_score(g["scene_label"], g["predicted"])
            for dev, g in pred.groupby("source")}


# ---------------------------------------------------------------------- the comparison
def test_the_comparison_trains_every_method_and_writes_its_files(comparison: Path):
    out = comparison / "unseen"
    assert sorted(p.name for p in out.iterdir()) == [
        "comparison.csv", "comparison.md", "comparison.pdf", "comparison.png",
        "comparison_seeds.csv"]
    assert (out / "comparison.png").read_bytes()[:4] == b"\x89PNG"
    assert (out / "comparison.pdf").read_bytes()[:4] == b"%PDF"
    table = pd.read_csv(out / "comparison.csv", keep_default_na=False)
    assert list(table["method"]) == EXPECTED_METHODS
    assert set(table["n_seeds"]) == {1}
    runs = sorted(p.name for p in (comparison / "runs").iterdir())
    assert len(runs) == 8 and all(r.startswith("dcase2020-atrous-att-") for r in runs)
    assert sum(r.endswith("-unseen_none") for r in runs) == 2
    assert {r.split("-")[-1] for r in runs if "joint" in r} == {"s0", "dir", "freq_mixstyle",
                                                                "mixup"}
    md = (out / "comparison.md").read_text()
    table_lines = md.split("\n\n")[0].splitlines()
    assert len(table_lines) == 2 + 8 and "| multi_task/none | atrous + att, L4 | 1 |" in md
    paired = [line for line in md.splitlines() if line.startswith("| ") and "[" in line
              and not line.startswith("| method")]
    assert [line.split(" | ")[0][2:] for line in paired] == EXPECTED_METHODS[1:]


def test_paired_differences_are_those_of_the_predictions(comparison: Path):
    """Oracle: each method's share of clips right minus joint's, per device from
    predictions.csv with pandas, averaged over the seen (unseen) devices."""
    seeds = pd.read_csv(comparison / "unseen" / "comparison_seeds.csv",
                        keep_default_na=False).set_index("method")
    table = pd.read_csv(comparison / "unseen" / "comparison.csv",
                        keep_default_na=False, na_values=[""]).set_index("method")

    def share(method: str, devices: tuple[str, ...]) -> float:
        pred = pd.read_csv(comparison / "runs" / seeds.loc[method, "run_name"]
                           / "predictions.csv")
        right = (pred["scene_label"] == pred["predicted"]).groupby(pred["source"]).mean()
        return float(right[list(devices)].mean())

    assert table.loc["joint", ["seen_diff", "unseen_diff"]].isna().all()
    for method in EXPECTED_METHODS[1:]:
        for part, devices in (("seen", SEEN), ("unseen", UNSEEN)):
            expected = 100 * (share(method, devices) - share("joint", devices))
            row = table.loc[method]
            assert row[f"{part}_diff"] == pytest.approx(expected, abs=1e-9)
            assert row[f"{part}_diff_low"] <= row[f"{part}_diff"] <= row[f"{part}_diff_high"]
            assert 0 <= row[f"{part}_p"] <= 1 and row[f"{part}_mde"] > 0


def test_seen_and_unseen_are_means_over_their_devices(comparison: Path):
    seeds = pd.read_csv(comparison / "unseen" / "comparison_seeds.csv")
    table = pd.read_csv(comparison / "unseen" / "comparison.csv")
    for row in seeds.itertuples():
        acc = _per_device_accuracy(comparison / "runs" / row.run_name)
        assert sorted(acc) == sorted((*SEEN, *UNSEEN))
        assert row.seen == pytest.approx(np.mean([acc[d] for d in SEEN]), abs=1e-12)
        assert row.unseen == pytest.approx(np.mean([acc[d] for d in UNSEEN]), abs=1e-12)
        assert row.avg == pytest.approx(np.mean(list(acc.values())), abs=1e-12)
        cell = table[table["method"] == row.method].iloc[0]
        assert cell["seen"] == pytest.approx(100 * row.seen)
        assert cell["gap"] == pytest.approx(100 * (row.seen - row.unseen))


def test_a_second_call_trains_nothing_and_keeps_the_numbers(comparison: Path, capsys,
                                                            tiny_dataset_2020: Path):
    before = (comparison / "unseen" / "comparison.csv").read_text()
    assert main(["unseen", str(comparison), "--data", str(tiny_dataset_2020), "--profile",
                 "tiny", "--accelerator", "cpu", "--no-progress"]) == 0
    assert "8 runs (0 trained, 8 already done)" in capsys.readouterr().out
    assert (comparison / "unseen" / "comparison.csv").read_text() == before


def test_mean_and_std_over_seeds_by_hand():
    from caalib.results.unseen import comparison_table

    base = dict(topology="atrous", pooling="att", cond_layer=4, strategy="multi_task",
                unseen_source="none", augment="", method="multi_task/none")
    seeds = pd.DataFrame([{**base, "seed": 0, "seen": 0.50, "unseen": 0.20, "avg": 0.40},
                          {**base, "seed": 1, "seen": 0.70, "unseen": 0.30, "avg": 0.55},
                          {**base, "seed": 2, "seen": 0.60, "unseen": 0.10, "avg": 0.45}])
    row = comparison_table(seeds).iloc[0]
    assert row["n_seeds"] == 3
    assert row["seen"] == pytest.approx(60.0)
    assert row["seen_std"] == pytest.approx(statistics.stdev([50, 70, 60]))
    assert row["unseen_std"] == pytest.approx(statistics.stdev([20, 30, 10]))
    assert row["gap"] == pytest.approx(statistics.mean([30, 40, 50]))
    assert row["gap_std"] == pytest.approx(statistics.stdev([30, 40, 50]))
    one = comparison_table(seeds.iloc[:1]).iloc[0]
    assert one["n_seeds"] == 1 and np.isnan(one["seen_std"])


def test_the_output_is_all_or_nothing(comparison: Path):
    from caalib.results.unseen import write_comparison

    out = comparison / "unseen"
    before = {p.name: p.read_bytes() for p in out.iterdir()}
    (out / "foreign").mkdir()
    try:
        with pytest.raises(CaaError, match="foreign"):
            write_comparison(comparison, out, "tiny")
    finally:
        (out / "foreign").rmdir()
    assert {p.name: p.read_bytes() for p in out.iterdir()} == before
    with pytest.raises(CaaError, match="not finished"):
        write_comparison(comparison, comparison / "elsewhere", "tiny", names=["no-such-run"])
    assert not (comparison / "elsewhere").exists()


def test_the_comparison_needs_an_unseen_device(tiny_dataset_2018: Path, tmp_path: Path):
    from caalib.unseen_plan import run_comparison

    with pytest.raises(ConfigError, match="no device seen only in evaluation"):
        run_comparison(tmp_path, tiny_dataset_2018, "tiny")
    assert not (tmp_path / "runs").exists()


def test_the_plan_is_one_model_under_every_method():
    from caalib.unseen_plan import comparison_configs

    configs = comparison_configs("demo", seeds=2)
    assert len(configs) == 16 and len({c.run_name for c in configs}) == 16
    assert {(c.topology, c.pooling, c.dataset, c.iterations) for c in configs} == {
        ("atrous", "att", "dcase2020", 400)}
    one = [(c.strategy, c.unseen_source if c.conditioned else "", c.augment, c.cond_layer)
           for c in configs if c.seed == 0]
    assert one == [("joint", "", "", None),
                   ("teacher_forcing", "nearest", "", 4), ("teacher_forcing", "none", "", 4),
                   ("multi_task", "nearest", "", 4), ("multi_task", "none", "", 4),
                   ("joint", "", "dir", None), ("joint", "", "freq_mixstyle", None),
                   ("joint", "", "mixup", None)]
    with pytest.raises(ConfigError, match="seeds"):
        comparison_configs("demo", seeds=0)


# ---------------------------------------------------------------------- train / sweep flags
def test_sweep_flags_name_the_variants(tiny_dataset_2020: Path, tiny_features_2020: Path,
                                       tmp_path: Path, capsys):
    assert main(["sweep", "--table", "II", "--profile", "tiny", "--data",
                 str(tiny_dataset_2020), "--results", str(tmp_path), "--models", "atrous:att",
                 "--augment", "mixup+freq_mixstyle", "--mixup-alpha", "0.2",
                 "--unseen-source", "none", "--dry-run"]) == 0
    names = [line.split()[1] for line in capsys.readouterr().out.splitlines()
             if line.startswith("missing")]
    assert len(names) == 6
    for name in names:  # the set is spelled in one order; alpha off its default is named
        conditioned = "-teacher_forcing-" in name or "-multi_task-" in name
        tail = "-freq_mixstyle-mixup_a0.2"
        assert name.endswith(("-unseen_none" if conditioned else "") + tail), name


def test_a_hyper_parameter_without_its_augmentation_is_refused(tiny_dataset_2020: Path,
                                                               tmp_path: Path, capsys):
    assert main(["train", "--data", str(tiny_dataset_2020), "--topology", "atrous",
                 "--pooling", "att", "--strategy", "joint", "--profile", "tiny",
                 "--dir-p", "0.3", "--out", str(tmp_path / "run")]) == 1
    err = capsys.readouterr().err
    assert "dir_p" in err and "'dir' is off" in err
    assert not (tmp_path / "run").exists()
    assert main(["train", "--data", str(tiny_dataset_2020), "--topology", "atrous",
                 "--pooling", "att", "--strategy", "joint", "--profile", "tiny",
                 "--unseen-source", "none", "--out", str(tmp_path / "run")]) == 1
    assert "unseen_source" in capsys.readouterr().err


def test_train_flags_reach_the_config(tiny_dataset_2020: Path, tiny_features_2020: Path,
                                      tmp_path: Path):
    out = tmp_path / "run"
    assert main(["train", "--data", str(tiny_dataset_2020), "--topology", "pool",
                 "--pooling", "att", "--strategy", "teacher_forcing", "--cond-layer", "3",
                 "--profile", "tiny", "--iterations", "2", "--accelerator", "cpu",
                 "--unseen-source", "none", "--augment", "freq_mixstyle",
                 "--mixstyle-p", "0.5", "--no-progress", "--out", str(out)]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert (cfg["unseen_source"], cfg["augment"], cfg["mixstyle_p"], cfg["mixstyle_alpha"],
            cfg["dir_p"], cfg["mixup_alpha"]) == ("none", "freq_mixstyle", 0.5, 0.3, 0.6, 0.3)
    assert cfg["dataset"] == "dcase2020"


# ---------------------------------------------------------------------- beyond three devices
def test_per_run_tables_and_run_rows_list_every_device(comparison: Path):
    from caalib.results.runs import RunStoreWarning, load_runs
    from caalib.results.tables import classwise_table, device_table

    # the paper's tables key a run by its cell and seed: the variants of one cell beyond
    # the first are skipped, and said so (the comparison reads them all)
    with pytest.warns(RunStoreWarning, match="another variant"):
        runs = load_runs(comparison)
    assert len(runs) == 3
    acc_cols = [c for c in runs.columns if c.startswith("acc_")]
    assert acc_cols == ["acc_a", "acc_b", "acc_c", "acc_s1", "acc_s2", "acc_s3", "acc_s4",
                        "acc_s5", "acc_s6", "acc_avg"]
    run = Path(runs["path"].iloc[0])
    oracle = _per_device_accuracy(run)
    dev = device_table(run).set_index("device")
    assert list(dev.index) == [*SEEN, *UNSEEN, "avg"]
    for d, value in oracle.items():
        assert dev.loc[d, "accuracy"] == pytest.approx(100 * value)
        assert runs[f"acc_{d}"].iloc[0] == pytest.approx(value)
    assert dev.loc["avg", "n_eval"] == 90
    cw = classwise_table(run)
    assert list(cw.columns) == [*SEEN, *UNSEEN, "avg"]
    assert cw.loc["Average", "s5"] == pytest.approx(100 * oracle["s5"])


def test_sweep_rows_carry_every_device(comparison: Path, tiny_dataset_2020: Path):
    from caalib.training.sweep import run_sweep
    from caalib.unseen_plan import comparison_configs

    configs = comparison_configs("tiny", accelerator="cpu")[:1]
    frame = run_sweep(configs, comparison, tiny_dataset_2020, progress=False)
    assert list(frame["status"]) == ["skipped"]
    cols = [c for c in frame.columns if c.startswith("acc_")]
    assert cols == ["acc_a", "acc_b", "acc_c", "acc_s1", "acc_s2", "acc_s3", "acc_s4",
                    "acc_s5", "acc_s6", "acc_avg"]
    oracle = _per_device_accuracy(comparison / "runs" / configs[0].run_name)
    assert frame["acc_s6"].iloc[0] == pytest.approx(oracle["s6"])


def test_parallel_recordings_keep_every_device_that_heard_them():
    from caalib.datasets import parallel_mask, parallel_recordings

    def clip(rec: str, dev: str) -> dict:
        return {"filename": f"audio/bus-paris-1-{rec}-{dev}.wav", "scene_label": "bus",
                "source_label": dev, "split": "evaluate"}

    meta = pd.DataFrame(
        [clip("1", d) for d in ("s4", "a", "b", "c", "s1")]  # A, B, C and twins
        + [clip("2", d) for d in ("a", "b", "s2")]            # no C: not parallel
        + [clip("3", d) for d in ("a", "b", "c")]             # the 2018 case
        + [clip("4", d) for d in ("a", "b", "c", "c")])       # C twice: not parallel
    assert parallel_mask(meta).tolist() == [True] * 5 + [False] * 3 + [True] * 3 + [False] * 4
    par = parallel_recordings(meta)
    assert list(par["source_label"]) == ["a", "b", "c", "s1", "s4", "a", "b", "c"]
    assert list(par["recording"].str[-1]) == ["1"] * 5 + ["3"] * 3


def test_parallel_recordings_of_the_2020_set(tiny_dataset_2020: Path):
    from caalib.datasets import pick_parallel_recording, read_dataset

    rows = pick_parallel_recording(read_dataset(tiny_dataset_2020))
    # an evaluate recording of the 2020 set is heard by all nine devices
    assert list(rows["source_label"]) == [*SEEN, *UNSEEN]


def test_the_unseen_policy_changes_only_unseen_devices(comparison: Path):
    """Both policies train the same model (no unseen clip is in training) and condition
    seen devices alike: the seen devices' accuracies are equal to the last digit."""
    seeds = pd.read_csv(comparison / "unseen" / "comparison_seeds.csv",
                        keep_default_na=False).set_index("method")
    for strategy in ("teacher_forcing", "multi_task"):
        nearest, none = seeds.loc[f"{strategy}/nearest"], seeds.loc[f"{strategy}/none"]
        for dev in SEEN:
            assert nearest[f"acc_{dev}"] == none[f"acc_{dev}"]


# ---------------------------------------------------------------------- paired against joint
def _crafted_run(runs: Path, *, right, seed: int, strategy: str = "joint",
                 augment: str = "") -> Path:
    """A finished dcase2020 run (profile tiny) with two clips per scene and device, right
    where ``right(device, scene_index, replicate)`` says; wrong clips are predicted as
    the next scene. metrics.json is counted by the tests' own helper."""
    from helpers import metrics_by_counting

    from caalib.constants import SCENES
    from caalib.rundir import expected_run_name

    cfg = {"dataset": "dcase2020", "topology": "atrous", "pooling": "att",
           "strategy": strategy, "cond_layer": None if strategy == "joint" else 4,
           "train_source": None, "profile": "tiny", "seed": seed, "augment": augment}
    run = runs / expected_run_name(cfg)
    run.mkdir(parents=True)
    (run / "config.json").write_text(json.dumps(cfg))
    rows = [{"filename": f"audio/{scene}-city-{i}-0-{dev}.wav", "source": dev,
             "scene_label": scene,
             "predicted": scene if right(dev, k, i) else SCENES[(k + 1) % len(SCENES)]}
            for dev in (*SEEN, *UNSEEN) for k, scene in enumerate(SCENES) for i in range(2)]
    pred = pd.DataFrame(rows)
    pred.to_csv(run / "predictions.csv", index=False)
    (run / "metrics.json").write_text(json.dumps(metrics_by_counting(pred)))
    (run / "DONE").write_text("")
    return run


@pytest.fixture(scope="module")
def crafted(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Three seeds each of joint, joint + mixup and teacher forcing (20 clips a device:
    10 scenes x replicates 0 and 1).

    joint: right on replicate 0 everywhere (50 %).
    mixup, seen devices: seeds 0 and 1 right on replicate 1 and on replicate 0 of
    scenes 0-7 (90 %), seed 2 right everywhere (100 %); unseen devices: every seed
    right on replicate 0 of scenes 0-4 only (25 %).
    teacher forcing: right on replicate 1 everywhere (50 %, other clips than joint).
    """
    results = tmp_path_factory.mktemp("paired") / "results"
    runs = results / "runs"
    for seed in range(3):
        _crafted_run(runs, seed=seed, right=lambda d, k, i: i == 0)
        _crafted_run(runs, seed=seed, augment="mixup", right=lambda d, k, i, s=seed: (
            (i == 1 or k < 8 or s == 2) if d in SEEN else (i == 0 and k < 5)))
        _crafted_run(runs, seed=seed, strategy="teacher_forcing",
                     right=lambda d, k, i: i == 1)
    return results


def _midp_oracle(b: int, c: int) -> float:
    """statsmodels' exact two-sided McNemar p less the point mass at min(b, c)."""
    from scipy import stats
    from statsmodels.stats.contingency_tables import mcnemar

    exact = mcnemar([[0, b], [c, 0]], exact=True).pvalue
    return exact - stats.binom.pmf(min(b, c), b + c, 0.5)


def _connor_gap(delta: float, n: int, psi: float) -> float:
    """Connor's (1987) McNemar sample size at alpha 0.05 and power 0.8, as an equation
    in delta: zero at the minimum detectable effect."""
    from scipy import stats

    z_a, z_b = stats.norm.ppf(0.975), stats.norm.ppf(0.8)
    return delta * math.sqrt(n) - z_a * math.sqrt(psi) - z_b * math.sqrt(psi - delta ** 2)


def test_paired_columns_against_joint_by_hand(crafted: Path):
    from caalib.results.unseen import write_comparison

    paths = write_comparison(crafted, crafted / "unseen", "tiny")
    table = pd.read_csv(paths[".csv"], keep_default_na=False, na_values=[""]).set_index(
        "method")
    assert list(table.index) == ["joint", "teacher_forcing/nearest", "joint + mixup"]
    assert table.loc["joint", ["seen_diff", "unseen_p", "unseen_mde"]].isna().all()

    mixup = table.loc["joint + mixup"]
    # seen: seed-mean accuracy (18 + 18 + 20) / 60 against 10 / 20 on every device
    assert mixup["seen_diff"] == pytest.approx(100 * (56 / 60 - 0.5), abs=1e-9)
    assert mixup["seen_diff"] == pytest.approx(mixup["seen"] - table.loc["joint", "seen"])
    assert 0 < mixup["seen_diff_low"] <= mixup["seen_diff"] <= mixup["seen_diff_high"]
    # majority over seeds: mixup right on replicate 1 (10 a device) and replicate 0 of
    # scenes 0-7; only joint right on replicate 0 of scenes 8-9 (2 a device); 6 devices
    assert (mixup["seen_n_method_only"], mixup["seen_n_joint_only"]) == (60, 12)
    assert mixup["seen_p"] == pytest.approx(_midp_oracle(60, 12), rel=1e-9)
    # discordance, seed i against seed i: 12 of 20 clips (seeds 0, 1), 10 of 20 (seed 2)
    psi, delta = (0.6 + 0.6 + 0.5) / 3, mixup["seen_mde"] / 100
    assert _connor_gap(delta, 120, psi) == pytest.approx(0, abs=1e-6)
    # unseen: 25 % against 50 %; only joint right on replicate 0 of scenes 5-9, 3 devices
    assert mixup["unseen_diff"] == pytest.approx(-25.0, abs=1e-9)
    assert mixup["unseen_diff_low"] <= -25.0 <= mixup["unseen_diff_high"] < 0
    assert (mixup["unseen_n_method_only"], mixup["unseen_n_joint_only"]) == (0, 15)
    assert mixup["unseen_p"] == pytest.approx(_midp_oracle(0, 15), rel=1e-9)
    assert _connor_gap(mixup["unseen_mde"] / 100, 60, 0.25) == pytest.approx(0, abs=1e-6)

    # teacher forcing: as accurate as joint on other clips; a true difference of 0
    tf = table.loc["teacher_forcing/nearest"]
    for part, n_dev in (("seen", 6), ("unseen", 3)):
        assert tf[f"{part}_diff"] == pytest.approx(0.0, abs=1e-9)
        assert tf[f"{part}_diff_low"] < 0 < tf[f"{part}_diff_high"]
        assert (tf[f"{part}_n_method_only"], tf[f"{part}_n_joint_only"]) == (10 * n_dev,
                                                                             10 * n_dev)
        assert tf[f"{part}_p"] == pytest.approx(1.0)
        assert _connor_gap(tf[f"{part}_mde"] / 100, 20 * n_dev, 1.0) == pytest.approx(
            0, abs=1e-6)

    md = paths[".md"].read_text()
    assert ("| joint + mixup | atrous + att | +43.3 [" in md
            and f"| {mixup['seen_p']:.2g} | {mixup['seen_mde']:.1f} | -25.0 [" in md)
    assert (f"- Seen devices: the interval excludes 0 for joint + mixup (+43.3, MDE "
            f"{mixup['seen_mde']:.1f}); it includes 0 for teacher_forcing/nearest (MDE "
            f"{tf['seen_mde']:.1f})." in md)
    assert "- Unseen devices: the interval excludes 0 for joint + mixup (-25.0" in md


def test_paired_columns_refuse_runs_of_other_clips(crafted: Path, tmp_path: Path):
    import shutil

    from caalib.results.unseen import write_comparison

    results = tmp_path / "results"
    shutil.copytree(crafted / "runs", results / "runs")
    run = results / "runs" / "dcase2020-atrous-att-joint-tiny-s1-mixup"
    pred = pd.read_csv(run / "predictions.csv")
    pred["filename"] = pred["filename"].str.replace("city", "town")
    pred.to_csv(run / "predictions.csv", index=False)
    with pytest.raises(CaaError, match="other clips"):
        write_comparison(results, results / "unseen", "tiny")
    assert not (results / "unseen").exists()
