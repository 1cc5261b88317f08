"""Training engine: the four strategies, the run store, λ and learning-rate rules, resume.

Runs use the pooled network with attention (the cheap topology, and a head that writes
attention.npz) at the tiny profile on the session's tiny synthetic dataset.
"""

from __future__ import annotations

import json
import math
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from caalib.constants import DEVICES, SCENES
from caalib.errors import ConfigError, DatasetError, FeatureError
from caalib.training import (
    HISTORY_COLUMNS,
    PREDICTION_COLUMNS,
    Engine,
    TrainConfig,
    attention_clips,
    batch_indices,
    load_run_data,
    lr_at,
    train,
)
from caalib.training.data import ATTENTION_RECORDINGS_PER_SCENE
from caalib.training.runstore import load_checkpoint

ROOT = Path(__file__).resolve().parents[1]


# ---------------------------------------------------------------------- caalib.datasets
def install_datasets_standin() -> None:
    """Put a minimal ``caalib.datasets`` (the documented contract) in place while the
    real module is absent; a no-op once it exists."""
    try:
        import caalib.datasets  # noqa: F401
        return
    except ModuleNotFoundError as exc:
        if exc.name != "caalib.datasets":
            raise
    import types

    from caalib.constants import DEVICE_INDEX, SCENE_INDEX

    def detect_layout(data_dir):
        setup = Path(data_dir) / "evaluation_setup"
        return "dcase2018" if (setup / "fold1_train.txt").exists() else "dcase2019"

    def read_dataset(data_dir):
        data_dir = Path(data_dir)
        if not (data_dir / "meta.csv").is_file():
            raise DatasetError(f"{data_dir / 'meta.csv'}: not found")
        meta = pd.read_csv(data_dir / "meta.csv", sep="\t")
        setup, layout = data_dir / "evaluation_setup", detect_layout(data_dir)
        if layout == "dcase2018":
            train_files = pd.read_csv(setup / "fold1_train.txt", sep="\t", header=None)[0]
            eval_files = pd.read_csv(setup / "fold1_evaluate.txt", sep="\t", header=None)[0]
        else:
            train_files = pd.read_csv(setup / "fold1_train.csv", sep="\t")["filename"]
            eval_files = pd.read_csv(setup / "fold1_evaluate.csv", sep="\t")["filename"]
        split = {**dict.fromkeys(train_files, "train"), **dict.fromkeys(eval_files, "evaluate")}
        meta["split"] = meta["filename"].map(split).fillna("")
        meta["scene"] = meta["scene_label"].map(SCENE_INDEX)
        meta["device"] = meta["source_label"].map(DEVICE_INDEX)
        meta["segment"] = meta["filename"].str.rsplit("-", n=2).str[1].astype(int)
        meta.attrs.update(layout=layout, data_dir=str(data_dir))
        return meta

    module = types.ModuleType("caalib.datasets")
    module.read_dataset, module.detect_layout = read_dataset, detect_layout
    sys.modules["caalib.datasets"] = module
    import caalib

    caalib.datasets = module


install_datasets_standin()
FAST = dict(topology="pool", pooling="att", iterations=20, eval_every=10, checkpoint_every=10)


def tiny(**overrides) -> TrainConfig:
    return TrainConfig.from_profile("tiny", **{**FAST, **overrides})


STRATEGY_CONFIGS = {
    "single": tiny(strategy="single", train_source="b"),
    "joint": tiny(strategy="joint"),
    "teacher_forcing": tiny(strategy="teacher_forcing", cond_layer=2),
    # threshold 0: the released rule must switch λ at the first evaluation
    "multi_task": tiny(strategy="multi_task", cond_layer=3, lambda_threshold=0.0),
}


@pytest.fixture(scope="module")
def strategy_runs(tmp_path_factory, tiny_dataset_2018, tiny_features_2018):
    root = tmp_path_factory.mktemp("runs")
    out = {}
    for name, cfg in STRATEGY_CONFIGS.items():
        run_dir = root / cfg.run_name
        metrics = train(cfg, run_dir, data_dir=tiny_dataset_2018, progress=False)
        out[name] = (cfg, run_dir, metrics)
    return out


# ---------------------------------------------------------------------- config
def test_profiles_and_run_name():
    paper = TrainConfig.from_profile("paper", strategy="multi_task", cond_layer=4)
    assert (paper.batch_size, paper.iterations, paper.width, paper.max_frames,
            paper.eval_every) == (16, 15_000, 1.0, None, 100)
    assert (paper.lr, paper.beta1, paper.beta2, paper.eps, paper.weight_decay) == (
        1e-3, 0.9, 0.999, 1e-8, 0.0)
    assert (paper.lr_decay, paper.lambda_mode, paper.attention) == ("released",) * 3
    assert paper.run_name == "dcase2018-atrous-att-multi_task-L4-paper-s0"
    single = TrainConfig.from_profile("demo", topology="nopool", pooling="roi+att",
                                      strategy="single", train_source="c", seed=3)
    assert single.run_name == "dcase2018-nopool-roi_att-single-c-demo-s3"
    clean = paper.replace(lambda_mode="clean", lr_decay="paper")
    assert clean.run_name != paper.run_name  # variants never share a directory


@pytest.mark.parametrize("overrides, field", [
    (dict(strategy="solo"), "strategy"),
    (dict(strategy="single"), "train_source"),
    (dict(strategy="teacher_forcing"), "cond_layer"),
    (dict(strategy="multi_task", cond_layer=5), "cond_layer"),
    (dict(strategy="joint", cond_layer=2), "cond_layer"),
    (dict(topology="pool", pooling="roi"), "pooling"),  # pool has no roi head
    (dict(iterations="ten"), "iterations"),
    (dict(fast="yes"), "fast"),
    (dict(lambda_mode="oracle"), "lambda_mode"),
    (dict(bogus=1), "bogus"),
])
def test_invalid_config_names_the_field(overrides, field):
    with pytest.raises(ConfigError, match=field):
        TrainConfig.from_profile("tiny", **overrides)


def test_config_json_roundtrip_and_bad_files(tmp_path):
    cfg = tiny(strategy="multi_task", cond_layer=1)
    path = tmp_path / "config.json"
    path.write_text(json.dumps(cfg.to_dict()))
    assert TrainConfig.load(path) == cfg
    bad = cfg.to_dict() | {"batch_size": "16"}
    path.write_text(json.dumps(bad))
    with pytest.raises(ConfigError, match=r"config\.json.*batch_size"):
        TrainConfig.load(path)
    path.write_text('{"dataset": "dcase2018",\n  "topology": }')
    with pytest.raises(ConfigError, match="line 2"):
        TrainConfig.load(path)
    partial = {k: v for k, v in cfg.to_dict().items() if k != "strategy"}
    path.write_text(json.dumps(partial))
    with pytest.raises(ConfigError, match="strategy"):
        TrainConfig.load(path)


# ---------------------------------------------------------------------- sampler, selection
def test_batch_order_is_a_pure_function_of_seed_and_step():
    n, b = 23, 4
    block = batch_indices(n, b, seed=7, step=0, count=30)
    singles = np.stack([batch_indices(n, b, seed=7, step=s)[0] for s in range(30)])
    assert np.array_equal(block, singles)
    flat = block.reshape(-1)
    for epoch in range(len(flat) // n):  # every clip exactly once per epoch
        assert sorted(flat[epoch * n:(epoch + 1) * n]) == list(range(n))
    assert not np.array_equal(block, batch_indices(n, b, seed=8, step=0, count=30))
    assert np.array_equal(batch_indices(n, b, 7, 12, 3), block[12:15])


def test_attention_clips_pick_first_parallel_recording_per_scene():
    rows = []
    for ident, seg, devs in [("x-1", 0, "ab"), ("x-2", 3, "abc"), ("x-2", 1, "abc"),
                             ("y-0", 0, "abc")]:
        for d in devs:
            rows.append(dict(identifier=ident, segment=seg, source=d,
                             scene_label="park" if ident != "y-0" else "bus",
                             filename=f"{ident}-{seg}-{d}"))
    meta = pd.DataFrame(rows)
    picked = meta.iloc[attention_clips(meta, DEVICES, per_scene=1)]
    assert list(picked["filename"]) == ["y-0-0-a", "y-0-0-b", "y-0-0-c",
                                        "x-2-1-a", "x-2-1-b", "x-2-1-c"]
    only_b = meta.iloc[attention_clips(meta, ("b",), per_scene=1)]
    assert list(only_b["filename"]) == ["y-0-0-b", "x-2-1-b"]
    # more recordings per scene: three-device ones first (in sorted order), then the rest
    three = meta.iloc[attention_clips(meta, DEVICES, per_scene=3)]
    assert list(three["filename"]) == ["y-0-0-a", "y-0-0-b", "y-0-0-c",
                                       "x-2-1-a", "x-2-1-b", "x-2-1-c",
                                       "x-2-3-a", "x-2-3-b", "x-2-3-c", "x-1-0-a", "x-1-0-b"]
    assert list(meta.iloc[attention_clips(meta, ("c",), per_scene=3)]["filename"]) == [
        "y-0-0-c", "x-2-1-c", "x-2-3-c"]
    with pytest.raises(ValueError, match="per_scene"):
        attention_clips(meta, DEVICES, per_scene=0)


def test_learning_rate_rules():
    released = tiny()
    paper = tiny(lr_decay="paper")
    assert [lr_at(released, s) for s in (0, 199, 200, 14_999)] == [1e-3] * 4
    assert [lr_at(paper, s) for s in (0, 199, 200, 399, 400)] == pytest.approx(
        [1e-3, 1e-3, 9e-4, 9e-4, 8.1e-4])


# ---------------------------------------------------------------------- the four strategies
def test_each_strategy_writes_the_run_store(strategy_runs):
    for name, (cfg, run_dir, metrics) in strategy_runs.items():
        for f in ("config.json", "metrics.json", "history.csv", "predictions.csv",
                  "attention.npz", "checkpoint.pt", "DONE"):
            assert (run_dir / f).is_file(), (name, f)
        stored = TrainConfig.load(run_dir / "config.json")
        assert stored.replace(data_fingerprint=None) == cfg
        assert len(stored.data_fingerprint) == 64  # the data is part of the identity
        on_disk = json.loads((run_dir / "metrics.json").read_text())
        assert on_disk["accuracy"] == pytest.approx(metrics["accuracy"])
        for key in ("accuracy", "classwise", "confusion", "n_eval", "device_accuracy",
                    "device_recall", "iterations", "wall_time_s"):
            assert key in on_disk, (name, key)
        devs = list(cfg.eval_sources)
        assert sorted(on_disk["accuracy"]) == sorted(devs + ["avg"])
        assert on_disk["iterations"] == cfg.iterations
        assert all(0 <= v <= 1 for v in on_disk["accuracy"].values())
        assert (on_disk["device_accuracy"] is None) == (name != "multi_task")

        hist = pd.read_csv(run_dir / "history.csv")
        assert tuple(hist.columns) == HISTORY_COLUMNS
        assert list(hist["iteration"]) == list(range(1, cfg.iterations + 1))
        evals = hist.dropna(subset=["acc_avg"])
        assert list(evals["iteration"]) == [10, 20]
        assert hist["loss"].notna().all()

        pred = pd.read_csv(run_dir / "predictions.csv")
        assert tuple(pred.columns) == PREDICTION_COLUMNS
        assert set(pred["source"]) == set(devs)
        scores = pred[[f"score_{s}" for s in SCENES]].to_numpy()
        # log-probabilities (the released attention head's Σ A·log p sums to at most 1)
        assert (scores <= 0).all() and (np.exp(scores).sum(axis=1) <= 1 + 1e-4).all()
        assert list(pred["predicted"]) == list(np.asarray(SCENES)[scores.argmax(axis=1)])

        att = np.load(run_dir / "attention.npz")
        n = len(att["filename"])
        assert att["attention"].shape[:2] == (n, len(SCENES)) and att["attention"].ndim == 4
        assert att["logmel"].shape[0] == n and att["logmel"].shape[2] == 64
        assert set(att["source"]) == set(devs)
        assert set(att["filename"]) <= set(pred["filename"])
        # unstandardised log-mel: raw log magnitudes, far from zero mean / unit variance
        assert abs(float(att["logmel"].mean())) > 1


def test_attention_clips_are_parallel_recordings_shared_by_all_runs(strategy_runs):
    joint = np.load(strategy_runs["joint"][1] / "attention.npz")
    single = np.load(strategy_runs["single"][1] / "attention.npz")
    assert set(single["filename"]) == set(joint["filename"][joint["source"] == "b"])
    stems = {}
    for f in joint["filename"]:  # scene-city-location-segment shared by the three devices
        stems.setdefault(str(f).rsplit("-", 1)[0], []).append(str(f)[-5])
    # several recordings per scene where the data has them, so the heat-map browser's
    # Clip control has a choice; each scene's first (the one Fig. 7 draws) is on all three
    scene_of = {str(f).rsplit("-", 1)[0]: str(s)
                for f, s in zip(joint["filename"], joint["scene_label"], strict=True)}
    first = {}
    for stem in stems:
        first.setdefault(scene_of[stem], stem)
    assert set(first) == set(SCENES)
    assert all(stems[stem] == list(DEVICES) for stem in first.values())
    per_scene = pd.Series([scene_of[stem] for stem in stems]).value_counts()
    assert per_scene.max() == ATTENTION_RECORDINGS_PER_SCENE


def test_released_lambda_switches_after_first_evaluation(strategy_runs):
    cfg, run_dir, metrics = strategy_runs["multi_task"]
    hist = pd.read_csv(run_dir / "history.csv")
    lam = hist.set_index("iteration")["lambda"]
    assert (lam.loc[1:10] == 1.0).all()
    assert np.allclose(lam.loc[11:], 1e-4)
    assert metrics["lambda_switch_iteration"] == 10
    state = load_checkpoint(run_dir)
    assert [name for _, name, _ in state["decision_log"]] == ["evaluate", "evaluate"]
    # the other strategies have no device loss and no λ
    hist_joint = pd.read_csv(strategy_runs["joint"][1] / "history.csv")
    assert hist_joint["lambda"].isna().all() and hist_joint["loss_device"].isna().all()
    assert hist_joint["device_acc"].isna().all()


def released_lambda(device_acc: float) -> float:
    """Study notes section 3, as written: 1e-4 while the macro device accuracy of the
    latest evaluation is >= 0.98, else 1 (no latch)."""
    return 1e-4 if device_acc >= 0.98 else 1.0


def test_history_records_device_recall_and_lambda_in_force(strategy_runs):
    """Every multi-task row carries the λ the notes' rule gives for the latest
    evaluation's mean of per-device recalls, recomputed here from the recall columns."""
    cfg, run_dir, _ = strategy_runs["multi_task"]
    hist = pd.read_csv(run_dir / "history.csv")
    evals = hist.dropna(subset=["acc_avg"])
    recall = evals[[f"device_recall_{d}" for d in DEVICES]].to_numpy()
    assert ((recall >= 0) & (recall <= 1)).all()
    assert np.allclose(evals["device_acc"], recall.mean(axis=1))
    latest = None
    for _, row in hist.iterrows():
        expected = 1.0 if latest is None else (1e-4 if latest >= cfg.lambda_threshold else 1.0)
        assert row["lambda"] == pytest.approx(expected), row["iteration"]
        if not math.isnan(row["device_acc"]):
            latest = row["device_acc"]


def test_released_lambda_is_macro_and_returns_to_one(tmp_path, tiny_dataset_2018,
                                                     tiny_features_2018, monkeypatch):
    """CNN-d's evaluate predictions are scripted so that the clip-weighted accuracy is
    0.98 while the mean of per-device recalls is 0.967: the released rule reads the
    latter, so λ must go back to 1 after having been lowered."""
    cfg = tiny(strategy="multi_task", cond_layer=3, iterations=20, eval_every=5,
               checkpoint_every=20)
    data = load_run_data(cfg, tiny_features_2018, tiny_dataset_2018)
    true_dev = np.asarray(data.evaluate.source)
    counts = np.bincount(true_dev, minlength=3)
    assert tuple(counts) == (30, 10, 10)  # the tiny 2018 evaluate split
    # per evaluation: how many clips of each device CNN-d gets wrong
    script = [(0, 0, 0), (0, 1, 0), (0, 0, 0), (0, 1, 0)]
    # by hand: (0, 1, 0) -> micro 49/50 = 0.98, macro (1 + 0.9 + 1) / 3 = 0.9667
    expected_acc = [1.0, (1 + 0.9 + 1) / 3, 1.0, (1 + 0.9 + 1) / 3]
    calls = {"n": 0}
    real_predict = Engine.predict

    def scripted(self, name, rows=None, want_attention=False):
        out = real_predict(self, name, rows=rows, want_attention=want_attention)
        if name == "evaluate" and rows is None:
            wrong = script[min(calls["n"], len(script) - 1)]
            calls["n"] += 1
            pred = true_dev.copy()
            for dev, k in enumerate(wrong):
                idx = np.flatnonzero(true_dev == dev)[:k]
                pred[idx] = (dev + 1) % 3
            logp = np.full((len(pred), 3), -20.0, dtype=np.float32)
            logp[np.arange(len(pred)), pred] = 0.0
            out["source"] = logp
        return out

    monkeypatch.setattr(Engine, "predict", scripted)
    metrics = train(cfg, tmp_path / "run", data_dir=tiny_dataset_2018, progress=False)
    hist = pd.read_csv(tmp_path / "run" / "history.csv").set_index("iteration")
    evals = hist.dropna(subset=["acc_avg"])
    assert list(evals.index) == [5, 10, 15, 20]
    assert np.allclose(evals["device_acc"], expected_acc)
    assert np.allclose(evals["device_recall_b"], [1.0, 0.9, 1.0, 0.9])
    lam = hist["lambda"]
    assert (lam.loc[1:5] == 1.0).all()
    for first, acc in zip((6, 11, 16), expected_acc[:3], strict=True):
        assert np.allclose(lam.loc[first:first + 4], released_lambda(acc)), first
    assert np.allclose(lam.loc[11:15], 1.0)  # back to 1: no latch, macro not micro
    assert metrics["lambda_switch_iteration"] == 5
    assert metrics["lambda_returns"] == 2
    assert metrics["device_accuracy"] == pytest.approx(expected_acc[3])
    assert metrics["device_recall"]["b"] == pytest.approx(0.9)


def test_clean_lambda_uses_held_out_training_clips(tmp_path, tiny_dataset_2018,
                                                   tiny_features_2018, monkeypatch):
    cfg = tiny(strategy="multi_task", cond_layer=4, lambda_mode="clean",
               lambda_threshold=0.0, iterations=10, eval_every=5)
    data = load_run_data(cfg, tiny_features_2018, tiny_dataset_2018)
    held, trained = set(data.holdout.meta["filename"]), set(data.train.meta["filename"])
    assert held and not held & trained
    full = load_run_data(cfg.replace(lambda_mode="released"), tiny_features_2018,
                         tiny_dataset_2018)
    assert held | trained == set(full.train.meta["filename"])
    for dev in DEVICES:  # stratified by device, about 10 %
        n_dev = int((full.train.meta["source"] == dev).sum())
        n_held = int((data.holdout.meta["source"] == dev).sum())
        assert n_held == max(1, round(0.1 * n_dev))

    # make the evaluate split's device accuracy useless for the decision: if it were
    # consulted, λ would never switch (threshold 0 cannot be reached by -1)
    real_evaluate = Engine.evaluate

    def evaluate_without_device(self):
        out = real_evaluate(self)
        out["device_accuracy"] = -1.0
        return out

    monkeypatch.setattr(Engine, "evaluate", evaluate_without_device)
    metrics = train(cfg, tmp_path / "clean", data_dir=tiny_dataset_2018, progress=False)
    assert metrics["lambda_switch_iteration"] == 5
    state = load_checkpoint(tmp_path / "clean")
    assert [name for _, name, _ in state["decision_log"]] == ["holdout", "holdout"]
    # and the released rule, fed the same useless accuracy, never switches
    released = cfg.replace(lambda_mode="released")
    metrics = train(released, tmp_path / "released", data_dir=tiny_dataset_2018,
                    progress=False)
    assert metrics["lambda_switch_iteration"] is None


def test_learned_lambda_and_paper_lr_decay(tmp_path, tiny_dataset_2018, tiny_features_2018):
    cfg = tiny(strategy="multi_task", cond_layer=2, lambda_mode="learned", lr_decay="paper",
               lr_decay_every=4, iterations=12, eval_every=6, checkpoint_every=6)
    train(cfg, tmp_path / "run", data_dir=tiny_dataset_2018, progress=False)
    hist = pd.read_csv(tmp_path / "run" / "history.csv")
    expected = [1e-3 * 0.9 ** ((i - 1) // 4) for i in hist["iteration"]]
    assert hist["lr"].to_numpy() == pytest.approx(expected)
    lam = hist["lambda"].to_numpy()
    assert np.isfinite(lam).all() and lam[0] == pytest.approx(1.0, abs=0.01)
    assert not np.allclose(lam, lam[0])  # the log-variances are being learned
    state = load_checkpoint(tmp_path / "run")
    assert state["weighting"]["log_vars"].shape == (2,)


# ---------------------------------------------------------------------- run directory rules
def test_finished_run_is_skipped_and_other_configs_refused(strategy_runs, tiny_dataset_2018):
    cfg, run_dir, metrics = strategy_runs["joint"]
    stamps = {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()}
    again = train(cfg, run_dir, data_dir=tiny_dataset_2018, progress=False)
    assert again["accuracy"] == pytest.approx(metrics["accuracy"])
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == stamps
    # execution-only fields do not make another run
    train(cfg.replace(checkpoint_every=5, compile=False, accelerator="cpu"), run_dir,
          data_dir=tiny_dataset_2018, progress=False)
    assert {p.name: p.stat().st_mtime_ns for p in run_dir.iterdir()} == stamps
    with pytest.raises(ConfigError, match="seed"):
        train(cfg.replace(seed=1), run_dir, data_dir=tiny_dataset_2018, progress=False)


def test_missing_inputs_name_the_path(tmp_path, tiny_dataset_2018):
    cfg = tiny()
    with pytest.raises(DatasetError, match="nowhere"):
        train(cfg, tmp_path / "a", data_dir=tmp_path / "nowhere", progress=False)
    with pytest.raises(FeatureError, match="nofeatures.h5"):
        train(cfg, tmp_path / "b", data_dir=tiny_dataset_2018,
              feature_path=tmp_path / "nofeatures.h5", progress=False)
    run = tmp_path / "c"
    run.mkdir()
    (run / "config.json").write_text(json.dumps(cfg.to_dict() | {"width": "wide"}))
    with pytest.raises(ConfigError, match="width"):
        train(cfg, run, data_dir=tiny_dataset_2018, progress=False)
    with pytest.raises(ConfigError, match="dataset"):
        train(cfg.replace(dataset="dcase2019"), tmp_path / "d", data_dir=tiny_dataset_2018,
              progress=False)


# ---------------------------------------------------------------------- kill and resume
_CLI = ("import sys; sys.path[:0] = [sys.argv.pop(1), sys.argv.pop(1)]; "
        "import test_training; from caalib.cli import main; raise SystemExit(main())")


def _cli_train(data: Path, out: Path) -> list[str]:
    # `python -m caalib train ...`, with the datasets stand-in installed when needed
    return [sys.executable, "-c", _CLI, str(ROOT), str(ROOT / "tests"),
            "train", "--data", str(data), "--topology", "pool",
            "--pooling", "att", "--strategy", "multi_task", "--cond-layer", "3",
            "--profile", "tiny", "--accelerator", "cpu",
            "--no-progress", "--out", str(out)]


def test_killed_run_resumes_to_identical_results(tmp_path, tiny_dataset_2018,
                                                 tiny_features_2018):
    out = tmp_path / "killed"
    env = {**os.environ,
           "PYTHONPATH": os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))}
    proc = subprocess.Popen(_cli_train(tiny_dataset_2018, out), cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while not (out / "checkpoint.pt").exists() and proc.poll() is None:
        assert time.monotonic() < deadline, "no checkpoint within 120 s"
        time.sleep(0.02)
    proc.send_signal(signal.SIGKILL)
    proc.wait()
    assert not (out / "DONE").exists(), "the run finished before it could be killed"
    done = load_checkpoint(out)["iteration"]
    assert 0 < done < 30
    subprocess.run(_cli_train(tiny_dataset_2018, out), cwd=ROOT, env=env, check=True,
                   capture_output=True)
    assert (out / "DONE").exists()

    cfg = TrainConfig.from_profile("tiny", topology="pool", pooling="att",
                                   strategy="multi_task", cond_layer=3,
                                   accelerator="cpu")
    ref = tmp_path / "straight"
    train(cfg, ref, data_dir=tiny_dataset_2018, progress=False)

    def metrics(run: Path) -> dict:
        m = json.loads((run / "metrics.json").read_text())
        m.pop("wall_time_s")
        return m

    assert metrics(out) == metrics(ref)
    assert (out / "predictions.csv").read_bytes() == (ref / "predictions.csv").read_bytes()
    assert (out / "history.csv").read_bytes() == (ref / "history.csv").read_bytes()
    a, b = np.load(out / "attention.npz"), np.load(ref / "attention.npz")
    assert np.array_equal(a["attention"], b["attention"])


def test_checkpoint_restores_every_tensor(strategy_runs):
    cfg, run_dir, _ = strategy_runs["teacher_forcing"]
    state = load_checkpoint(run_dir)
    assert state["iteration"] == cfg.iterations
    assert len(state["history"]) == cfg.iterations
    assert isinstance(state["rng"]["torch"], torch.Tensor)
    assert not math.isnan(state["history"][-1]["loss"])


# ---------------------------------------------------------------------- review regressions
def _comparable(run: Path) -> tuple:
    m = json.loads((run / "metrics.json").read_text())
    m.pop("wall_time_s")
    return m, (run / "history.csv").read_bytes(), (run / "predictions.csv").read_bytes()


@pytest.mark.parametrize("overrides", [
    # learned λ: its log-variances and their Adam moments must come back from the checkpoint
    dict(lambda_mode="learned", lr_decay="paper", lr_decay_every=3),
    # clean λ: the switch (threshold 0 -> at the first evaluation) and its log come back
    dict(lambda_mode="clean", lambda_threshold=0.0),
], ids=["learned", "clean"])
def test_interrupted_anywhere_resumes_identically(tmp_path, tiny_dataset_2018,
                                                  tiny_features_2018, monkeypatch, overrides):
    from caalib.training import runstore

    cfg = tiny(strategy="multi_task", cond_layer=2, iterations=12, eval_every=4,
               checkpoint_every=4, accelerator="cpu", **overrides)
    ref = tmp_path / "straight"
    train(cfg, ref, data_dir=tiny_dataset_2018, progress=False)
    state = load_checkpoint(ref)
    if cfg.lambda_mode == "learned":
        n_params = sum(1 for _ in Engine(cfg, load_run_data(cfg, tiny_features_2018,
                                                             tiny_dataset_2018),
                                         torch.device("cpu")).model.parameters())
        assert len(state["optimizer"]["state"]) == n_params + 1  # + the log-variances
    else:
        assert state["lambda"] == {"low": True, "step": 4, "returns": 0}

    real_history, real_done = runstore.write_history, runstore.mark_done
    calls = {"n": 0}

    def killed_after_checkpoint(*args, **kwargs):  # dies between checkpoint.pt and history
        calls["n"] += 1
        if calls["n"] == 2:
            raise KeyboardInterrupt
        return real_history(*args, **kwargs)

    def killed_before_done(*args, **kwargs):  # dies with metrics written, DONE not
        raise KeyboardInterrupt

    for name, target, fake in [("history", "write_history", killed_after_checkpoint),
                               ("done", "mark_done", killed_before_done)]:
        run = tmp_path / name
        monkeypatch.setattr(runstore, target, fake)
        with pytest.raises(KeyboardInterrupt):
            train(cfg, run, data_dir=tiny_dataset_2018, progress=False)
        monkeypatch.setattr(runstore, "write_history", real_history)
        monkeypatch.setattr(runstore, "mark_done", real_done)
        assert not (run / "DONE").exists()
        # what a SIGKILL inside an atomic write leaves behind
        (run / ".checkpoint.pt.dead1234.pt").write_bytes(b"half a checkpo")
        torch.manual_seed(999)  # the resumed run must not depend on the process's RNG
        train(cfg, run, data_dir=tiny_dataset_2018, progress=False)
        assert (run / "DONE").exists()
        assert not list(run.glob(".checkpoint.pt.*")), "stale temporary left behind"
        assert _comparable(run) == _comparable(ref), name


def test_refused_resume_leaves_the_directory_as_it_was(tmp_path, tiny_dataset_2018,
                                                       tiny_features_2018):
    cfg = tiny(strategy="joint", iterations=10, eval_every=5, checkpoint_every=5)
    run = tmp_path / "run"
    train(cfg, run, data_dir=tiny_dataset_2018, progress=False)
    (run / "DONE").unlink()
    (run / "config.json").unlink()  # only the checkpoint says whose run this is
    with pytest.raises(ConfigError, match="checkpoint.*seed"):
        train(cfg.replace(seed=1), run, data_dir=tiny_dataset_2018, progress=False)
    assert not (run / "config.json").exists()  # not relabelled as the seed-1 run
    train(cfg, run, data_dir=tiny_dataset_2018, progress=False)  # its own config resumes
    assert (run / "DONE").exists()


def test_unreadable_checkpoint_is_one_line(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "checkpoint.pt").write_bytes(b"not a checkpoint at all")
    with pytest.raises(ConfigError, match="checkpoint.pt: unreadable") as info:
        load_checkpoint(run)
    assert "\n" not in str(info.value)


def test_config_json_missing_a_switch_is_refused(tmp_path):
    """A config.json without ``lambda_mode`` must not read as the released rule."""
    cfg = tiny(strategy="multi_task", cond_layer=1, lambda_mode="clean")
    path = tmp_path / "config.json"
    on_disk = {k: v for k, v in cfg.to_dict().items() if k not in ("lambda_mode", "accelerator")}
    path.write_text(json.dumps(on_disk))
    with pytest.raises(ConfigError, match=r"config\.json: field 'lambda_mode' missing"):
        TrainConfig.load(path)
    on_disk["lambda_mode"] = "clean"  # execution-only fields may be absent
    path.write_text(json.dumps(on_disk))
    assert TrainConfig.load(path) == cfg.replace(accelerator="auto")


# ---------------------------------------------------------------------- precision, resampler
def test_precision_resolves_and_is_part_of_the_identity():
    cpu = tiny(accelerator="cpu")
    assert (cpu.precision, cpu.tf32) == ("fp32", False)
    assert not cpu.run_name.endswith(("bf16", "tf32"))
    gpu = tiny(accelerator="cuda")  # resolution needs no GPU: it reads the config
    assert (gpu.precision, gpu.tf32) == ("bf16", True)
    assert gpu.run_name.endswith("-bf16")
    fp32 = tiny(accelerator="cuda", precision="fp32")
    assert (fp32.precision, fp32.tf32) == ("fp32", False)  # true fp32, as released
    assert fp32.run_name == cpu.run_name
    assert tiny(accelerator="cuda", fast=False).precision == "fp32"
    assert tiny(accelerator="cuda", precision="fp32", tf32=True).run_name.endswith("-tf32")
    assert set(gpu.differences(fp32)) == {"precision", "tf32"}
    with pytest.raises(ConfigError, match="precision"):
        tiny(precision="fp16")


def test_stored_config_must_hold_a_resolved_precision(tmp_path):
    path = tmp_path / "config.json"
    data = tiny(accelerator="cpu").to_dict()
    path.write_text(json.dumps(data | {"precision": "auto"}))
    with pytest.raises(ConfigError, match="precision"):
        TrainConfig.load(path)
    old = {k: v for k, v in data.items() if k not in ("precision", "tf32", "resampler")}
    path.write_text(json.dumps(old))
    with pytest.raises(ConfigError, match="older version"):
        TrainConfig.load(path)


def test_bf16_run_is_not_reused_for_fp32_and_refused_on_cpu(tmp_path, tiny_dataset_2018):
    from caalib.training import runstore

    bf16 = tiny(strategy="joint", accelerator="cuda")
    with pytest.raises(ConfigError, match="precision: bf16.*needs CUDA"):
        train(bf16.replace(accelerator="cpu"), tmp_path / "x", data_dir=tiny_dataset_2018,
              progress=False)
    # a finished bf16 run (made elsewhere) in the directory an fp32 request names
    run_dir = tmp_path / "run"
    run_dir.mkdir()
    runstore.write_config(run_dir, bf16)
    runstore.write_metrics(run_dir, {"accuracy": {"a": 0.9, "avg": 0.9}})
    runstore.mark_done(run_dir)
    with pytest.raises(ConfigError, match="precision"):
        train(tiny(strategy="joint", accelerator="cpu"), run_dir, data_dir=tiny_dataset_2018,
              progress=False)


def test_soxr_resampler_run_uses_its_own_feature_file(tmp_path, tiny_dataset_2018,
                                                      tiny_features_2018):
    from caalib.features import load_features

    cfg = tiny(strategy="single", train_source="a", iterations=4, eval_every=4,
               checkpoint_every=4, resampler="soxr_hq")
    assert cfg.run_name.endswith("-rs_soxr_hq")
    with pytest.raises(FeatureError, match="resampler 'kaiser_best'.*'soxr_hq'"):
        train(cfg, tmp_path / "wrong", data_dir=tiny_dataset_2018,
              feature_path=tiny_features_2018, progress=False)
    train(cfg, tmp_path / "run", data_dir=tiny_dataset_2018, progress=False)
    soxr_file = tiny_dataset_2018 / "features" / "logmel-soxr_hq.h5"
    soxr, released = load_features(soxr_file), load_features(tiny_features_2018)
    assert soxr.attrs["resampler"] == "soxr_hq" and released.attrs["resampler"] == "kaiser_best"
    a48 = (released.meta["source_label"] == "a").to_numpy()  # the 48 kHz clips
    assert not np.array_equal(soxr.feature[a48], released.feature[a48])
    assert np.array_equal(soxr.feature[~a48], released.feature[~a48])  # 44.1 kHz: untouched


# ---------------------------------------------------------------------- evaluation schedule
@pytest.mark.parametrize("overrides", [
    dict(strategy="joint"),
    dict(strategy="multi_task", cond_layer=2, lambda_mode="clean", lambda_threshold=0.5),
], ids=["joint", "multi_task-clean"])
def test_sparse_evaluation_gives_identical_final_metrics(tmp_path, tiny_dataset_2018,
                                                         tiny_features_2018, overrides):
    cfg = tiny(iterations=40, eval_every=2, checkpoint_every=40, **overrides)
    dense = train(cfg.replace(eval_schedule="dense"), tmp_path / "dense",
                  data_dir=tiny_dataset_2018, progress=False)
    sparse = train(cfg, tmp_path / "sparse", data_dir=tiny_dataset_2018, progress=False)
    final = train(cfg.replace(eval_schedule="final"), tmp_path / "final",
                  data_dir=tiny_dataset_2018, progress=False)
    for key in ("accuracy", "classwise", "confusion", "device_accuracy"):
        assert sparse[key] == dense[key], key
        assert final[key] == dense[key], key
    for name in ("sparse", "final"):
        assert ((tmp_path / name / "predictions.csv").read_text()
                == (tmp_path / "dense" / "predictions.csv").read_text())
    rows = {name: pd.read_csv(tmp_path / name / "history.csv")
            for name in ("dense", "sparse", "final")}
    evals = {k: list(v.dropna(subset=["acc_avg"])["iteration"]) for k, v in rows.items()}
    assert evals["dense"] == list(range(2, 41, 2))
    assert evals["sparse"] == list(range(4, 41, 4))  # 40 // 10 = 4 steps: ten evaluations
    assert evals["final"] == [40]
    # the λ rule still decides at every eval_every (clean: on the held-out clips)
    pd.testing.assert_series_equal(rows["dense"]["lambda"], rows["sparse"]["lambda"])
    pd.testing.assert_series_equal(rows["dense"]["lambda"], rows["final"]["lambda"])
    # an execution-only field: a finished dense run is reused for a sparse request
    again = train(cfg, tmp_path / "dense", data_dir=tiny_dataset_2018, progress=False)
    assert again["accuracy"] == dense["accuracy"]


def test_released_lambda_keeps_every_evaluation(tmp_path, tiny_dataset_2018,
                                                tiny_features_2018):
    cfg = tiny(strategy="multi_task", cond_layer=2, iterations=40, eval_every=2,
               checkpoint_every=40)
    for schedule in ("auto", "final"):  # the λ rule reads each one: no schedule thins them
        run = tmp_path / schedule
        train(cfg.replace(eval_schedule=schedule), run, data_dir=tiny_dataset_2018,
              progress=False)
        hist = pd.read_csv(run / "history.csv")
        assert list(hist.dropna(subset=["acc_avg"])["iteration"]) == list(range(2, 41, 2))
