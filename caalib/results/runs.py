"""Read a results directory (the run store of docs/architecture.md) into a DataFrame.

A run counts once it is finished: it has ``metrics.json`` *and* the ``DONE`` marker.
Directories without ``metrics.json`` are not runs; a run without ``DONE`` is still
training (or died) and its metrics may be from an intermediate evaluation, so it is
skipped rather than mixed into a table.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pandas as pd

from ..constants import DATASETS, DEVICES
from ..errors import CaaError

#: config.json fields the tables need (docs/architecture.md, "The run store").
CONFIG_FIELDS: tuple[str, ...] = (
    "dataset", "topology", "pooling", "strategy", "cond_layer", "train_device",
    "profile", "seed",
)
ACC_COLUMNS: tuple[str, ...] = ("acc_a", "acc_b", "acc_c", "acc_avg")
RUN_COLUMNS: tuple[str, ...] = (
    "name", *CONFIG_FIELDS, *ACC_COLUMNS, "device_accuracy", "iterations", "wall_time_s",
    "path",
)


class RunStoreError(CaaError):
    """A run directory's config.json or metrics.json is unusable."""


def _read_json(path: Path) -> dict[str, Any]:
    try:
        obj = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise RunStoreError(f"{path}, line {exc.lineno}: invalid JSON ({exc.msg})") from exc
    except OSError as exc:
        raise RunStoreError(f"{path}: unreadable ({exc})") from exc
    if not isinstance(obj, dict):
        raise RunStoreError(f"{path}: expected a JSON object")
    return obj


def _fraction(value: Any, path: Path, field: str) -> float:
    if value is None:
        return float("nan")
    if not isinstance(value, int | float) or not 0.0 <= value <= 1.0:
        raise RunStoreError(f"{path}: field {field} = {value!r} is not a fraction in [0, 1]")
    return float(value)


def read_run(run_dir: str | Path) -> dict[str, Any]:
    """One run's config fields, accuracies (fractions) and path as a flat dict."""
    run_dir = Path(run_dir)
    cfg_path, met_path = run_dir / "config.json", run_dir / "metrics.json"
    if not cfg_path.is_file():
        raise RunStoreError(f"{cfg_path}: missing (a run directory needs its config)")
    cfg = _read_json(cfg_path)
    missing = [f for f in CONFIG_FIELDS if f not in cfg]
    if missing:
        raise RunStoreError(f"{cfg_path}: missing field(s) {missing}")
    if cfg["dataset"] not in DATASETS:
        raise RunStoreError(f"{cfg_path}: field dataset = {cfg['dataset']!r} "
                            f"not one of {DATASETS}")
    if cfg["cond_layer"] is not None and cfg["cond_layer"] not in (1, 2, 3, 4):
        raise RunStoreError(f"{cfg_path}: field cond_layer = {cfg['cond_layer']!r}")
    if cfg["train_device"] is not None and cfg["train_device"] not in DEVICES:
        raise RunStoreError(f"{cfg_path}: field train_device = {cfg['train_device']!r}")
    met = _read_json(met_path)
    acc = met.get("accuracy")
    if not isinstance(acc, dict):
        raise RunStoreError(f"{met_path}: missing field accuracy")
    row: dict[str, Any] = {"name": run_dir.name}
    row.update({f: cfg[f] for f in CONFIG_FIELDS})
    for key in (*DEVICES, "avg"):
        row[f"acc_{key}"] = _fraction(acc.get(key), met_path, f"accuracy.{key}")
    row["device_accuracy"] = _fraction(met.get("device_accuracy"), met_path, "device_accuracy")
    row["iterations"] = met.get("iterations")
    row["wall_time_s"] = met.get("wall_time_s")
    row["path"] = str(run_dir)
    return row


def find_run_dirs(results_dir: str | Path, include_unfinished: bool = False) -> list[Path]:
    """Every directory under ``results_dir`` holding metrics.json (and DONE), sorted."""
    root = Path(results_dir)
    if not root.is_dir():
        raise RunStoreError(f"{root}: results directory not found")
    dirs = sorted(p.parent for p in root.rglob("metrics.json"))
    return [d for d in dirs if include_unfinished or (d / "DONE").exists()]


def load_runs(results_dir: str | Path, include_unfinished: bool = False) -> pd.DataFrame:
    """One row per finished run found recursively under ``results_dir``.

    Columns: :data:`RUN_COLUMNS`; accuracies are fractions as in metrics.json (NaN for
    devices a single-device run was not evaluated on). An empty frame (same columns)
    when there is no run yet.
    """
    rows = [read_run(d) for d in find_run_dirs(results_dir, include_unfinished)]
    df = pd.DataFrame(rows, columns=list(RUN_COLUMNS))
    df["cond_layer"] = df["cond_layer"].astype("Int64")
    df["seed"] = df["seed"].astype("Int64")
    for col in (*ACC_COLUMNS, "device_accuracy", "wall_time_s"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    return df.reset_index(drop=True)
