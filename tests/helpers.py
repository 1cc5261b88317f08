"""Test helpers shared by several test modules: crafted run directories.

Importable as ``helpers`` because pytest puts this folder (the rootdir conftest's) on
``sys.path``; no test edits ``sys.path`` itself. The metrics.json these helpers write is
counted here from the predictions with pandas, never by :mod:`caalib.metrics`, so a test
that reads it back does not check the metric against itself.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from caalib.constants import ALL_DEVICES, DEVICES, SCENES


def metrics_by_counting(pred: pd.DataFrame) -> dict:
    """metrics.json's metric fields for a predictions frame (columns source, scene_label,
    predicted), counted independently of :mod:`caalib.metrics`.

    Per device with clips: the confusion counts (pandas crosstab), the fraction right
    per true scene (None for a scene without clips), their unweighted mean over the
    scenes present, the clip count; "avg" is the mean over those devices.
    """
    out: dict = {"accuracy": {}, "classwise": {}, "confusion": {}, "n_eval": {}}
    for dev in ALL_DEVICES:
        on = pred[pred["source"] == dev]
        if on.empty:
            continue
        counts = pd.crosstab(on["scene_label"], on["predicted"])
        counts = counts.reindex(index=list(SCENES), columns=list(SCENES), fill_value=0)
        right = (on["scene_label"] == on["predicted"]).groupby(on["scene_label"]).mean()
        classwise = {s: (float(right[s]) if s in right.index else None) for s in SCENES}
        present = [a for a in classwise.values() if a is not None]
        out["accuracy"][dev] = sum(present) / len(present)
        out["classwise"][dev] = classwise
        out["confusion"][dev] = [[int(v) for v in row] for row in counts.to_numpy()]
        out["n_eval"][dev] = len(on)
    if out["accuracy"]:
        out["accuracy"]["avg"] = sum(out["accuracy"].values()) / len(out["accuracy"])
    return out


def make_run(
    root: Path,
    *,
    dataset: str = "dcase2018",
    topology: str = "atrous",
    pooling: str = "att",
    strategy: str = "teacher_forcing",
    cond_layer: int | None = 4,
    train_source: str | None = None,
    profile: str = "tiny",
    seed: int = 0,
    acc: dict[str, float] | None = None,
    n_per_class: int = 4,
    done: bool = True,
    attention: bool = False,
    history: bool = False,
) -> Path:
    """Write one run directory whose per-device macro accuracies equal ``acc`` exactly.

    Per device and class, ``round(acc * n_per_class)`` of ``n_per_class`` clips are
    right, so choose accuracies that are multiples of 1/n_per_class. Wrong clips are
    predicted as the next scene. Returns the run directory.
    """
    devices = [train_source] if strategy == "single" else list(DEVICES)
    acc = acc or {d: 0.5 for d in devices}
    name = f"{dataset}-{topology}-{pooling.replace('+', '_')}-{strategy}"
    name += f"-{train_source}" if train_source else ""
    name += f"-L{cond_layer}" if cond_layer else ""
    run = root / f"{name}-{profile}-s{seed}"
    run.mkdir(parents=True)
    config = {"dataset": dataset, "topology": topology, "pooling": pooling,
              "strategy": strategy, "cond_layer": cond_layer, "train_source": train_source,
              "profile": profile, "seed": seed}
    (run / "config.json").write_text(json.dumps(config))
    rows = []
    for dev in devices:
        k = round(acc[dev] * n_per_class)
        for s, scene in enumerate(SCENES):
            for i in range(n_per_class):
                pred = scene if i < k else SCENES[(s + 1) % len(SCENES)]
                rows.append({"filename": f"audio/{scene}-city-{i}-0-{dev}.wav", "source": dev,
                             "scene_label": scene, "predicted": pred})
    pred = pd.DataFrame(rows)
    for s in SCENES:
        pred[f"score_{s}"] = np.where(pred["predicted"] == s, -0.1, -5.0)
    pred.to_csv(run / "predictions.csv", index=False)
    met = metrics_by_counting(pred)
    met.update({"device_accuracy": 0.9 if strategy == "multi_task" else None,
                "iterations": 10, "wall_time_s": 1.0})
    (run / "metrics.json").write_text(json.dumps(met))
    if history:
        it = np.arange(0, 50, 10)
        h = pd.DataFrame({"iteration": it, "loss": 2.0 / (1 + it), "loss_scene": 1.5 / (1 + it),
                          "loss_device": 0.5 / (1 + it), "lr": 1e-3, "lambda": 1.0,
                          "acc_a": 0.1 + it / 100, "acc_b": 0.1 + it / 200,
                          "acc_c": 0.1 + it / 300, "device_accuracy": np.nan})
        h["acc_avg"] = h[["acc_a", "acc_b", "acc_c"]].mean(axis=1)
        h.loc[1, ["acc_a", "acc_b", "acc_c", "acc_avg"]] = np.nan  # no evaluation there
        h.to_csv(run / "history.csv", index=False)
    if attention:
        rng = np.random.default_rng(seed)
        n = len(SCENES) * len(devices)
        att = rng.random((n, len(SCENES), 8, 4)).astype(np.float32)
        np.savez(run / "attention.npz", attention=att,
                 logmel=rng.standard_normal((n, 16, 8)).astype(np.float32),
                 filename=np.array([f"audio/{s}-x-0-0-{d}.wav" for d in devices
                                    for s in SCENES]),
                 source=np.array([d for d in devices for _ in SCENES]),
                 scene_label=np.array([s for _ in devices for s in SCENES]),
                 predicted=np.array([s for _ in devices for s in SCENES]))
    if done:
        (run / "DONE").write_text("")
    return run


def craft_attention_run(
    root: Path, name: str, scenes: tuple[str, ...] = ("airport", "bus", "park"),
    devices: tuple[str, ...] = ("a", "b", "c"), frames: int = 32, mels: int = 16,
    seed: int = 0, topology: str = "atrous", strategy: str = "multi_task",
    cond_layer: int | None = 4,
) -> Path:
    """A finished run directory (config.json, DONE) with an attention.npz of one clip per
    scene/device; ``name`` should be the config's run name (pooling att, profile tiny).

    Each clip's maps are distinct random fields, so a different selection must render a
    different picture; the prediction is wrong for the device-C clips.
    """
    rng = np.random.default_rng(seed)
    run = root / "runs" / name
    run.mkdir(parents=True)
    rows = [(s, d) for s in scenes for d in devices]
    n, k = len(rows), len(SCENES)
    att = rng.random((n, k, frames // 4, mels // 4)).astype(np.float32)
    att /= att.sum(axis=(2, 3), keepdims=True)
    np.savez(
        run / "attention.npz",
        attention=att,
        logmel=rng.normal(size=(n, frames, mels)).astype(np.float32),
        filename=np.array([f"audio/{s}-city-1-{i}-{d}.wav" for i, (s, d) in enumerate(rows)]),
        source=np.array([d for _, d in rows]),
        scene_label=np.array([s for s, _ in rows]),
        predicted=np.array([s if d != "c" else "tram" for s, d in rows]),
    )
    (run / "config.json").write_text(json.dumps({
        "dataset": "dcase2018", "topology": topology, "pooling": "att",
        "strategy": strategy, "cond_layer": cond_layer, "train_source": None,
        "profile": "tiny", "seed": 0,
    }))
    (run / "metrics.json").write_text("{}")  # not read by the browser
    (run / "DONE").write_text("")
    return run
