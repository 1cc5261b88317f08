"""Read a results directory (the run store of docs/architecture.md) into a DataFrame.

Which directories are runs and whether their files are sound is decided by
:mod:`caalib.rundir`, the one reader of the on-disk contract; this module turns the
runs it accepts into table rows. The rules, in the order they apply:

* Runs live directly under ``<results>/runs/`` (or directly under the directory given,
  when that is a runs directory). A sub-folder holding runs (``runs/old/<run>``) is not
  read, with a :class:`RunStoreWarning`.
* A run counts once it is finished: it has ``metrics.json`` *and* the ``DONE`` marker.
  Directories without ``metrics.json`` are not runs; a run without ``DONE`` is still
  training (or died) and its metrics may be from an intermediate evaluation, so it is
  skipped rather than mixed into a table.
* A run whose directory name is not its config's run name (a backup copy, a renamed
  directory, a hand-edited config.json) is skipped with a warning naming it.
* Two runs that would fill the same table cell with the same seed (a duplicate, or two
  variants such as ``-lr_paper`` beside the released one) are never counted as two
  seeds: the first by name is kept (the released variant, whose name is a prefix of
  the others) and a warning names both. A cell whose seeds come from different
  variants is kept but warned about.
* A finished run with a malformed or self-contradicting config.json or metrics.json
  stops the load with a one-line :class:`RunStoreError` naming the file: a damaged
  run store is repaired (or the run deleted) rather than tabulated without it, since
  a table quietly missing a seed looks as complete as one that is not.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pandas as pd

from ..constants import ALL_DEVICES, DEVICES
from ..rundir import (
    CONFIG_FIELDS,
    METRICS_FILE,
    RunStoreError,
    RunStoreWarning,
    eval_sources,
    identity_differences,
    read_config_dict,
    read_metrics,
    scan_runs,
    warn,
)

ACC_COLUMNS: tuple[str, ...] = ("acc_a", "acc_b", "acc_c", "acc_avg")
RUN_COLUMNS: tuple[str, ...] = (
    "name", *CONFIG_FIELDS, *ACC_COLUMNS, "device_accuracy", "iterations", "wall_time_s",
    "path",
)
#: The fields of a table cell (CONFIG_FIELDS without the seed).
CELL_FIELDS: tuple[str, ...] = tuple(f for f in CONFIG_FIELDS if f != "seed")


def read_run(run_dir: str | Path, config: dict[str, Any] | None = None) -> dict[str, Any]:
    """One run's config fields, accuracies (fractions) and path as a flat dict.

    ``config`` is the run's checked config when the caller has it already. A
    single-device run must have been scored on its own device only.
    """
    run_dir = Path(run_dir)
    cfg = read_config_dict(run_dir) if config is None else config
    met = read_metrics(run_dir)
    if cfg["strategy"] == "single" and eval_sources(met) != [cfg["train_source"]]:
        raise RunStoreError(f"{run_dir / METRICS_FILE}: a single-device run on "
                            f"{cfg['train_source']} scored on devices {eval_sources(met)}")
    acc = met["accuracy"]
    row: dict[str, Any] = {"name": run_dir.name}
    row.update({f: cfg[f] for f in CONFIG_FIELDS})
    for key in (*DEVICES, "avg"):
        row[f"acc_{key}"] = float(acc[key]) if key in acc else float("nan")
    for key in ALL_DEVICES:  # the 2020 layout's simulated devices, where scored
        if key not in DEVICES and key in acc:
            row[f"acc_{key}"] = float(acc[key])
    dev_acc = met.get("device_accuracy")
    row["device_accuracy"] = float("nan") if dev_acc is None else float(dev_acc)
    row["iterations"] = met.get("iterations")
    row["wall_time_s"] = met.get("wall_time_s")
    row["path"] = str(run_dir)
    return row


def find_run_dirs(results_dir: str | Path, include_unfinished: bool = False) -> list[Path]:
    """The run directories :func:`load_runs` reads, sorted by name (see the module)."""
    return [d for d, _ in _unique(scan_runs(results_dir, include_unfinished))]


def _unique(runs: list[tuple[Path, dict[str, Any]]]) -> list[tuple[Path, dict[str, Any]]]:
    """Drop the runs that would count as a second seed of a cell already filled."""
    kept: dict[tuple, tuple[Path, dict[str, Any]]] = {}
    out = []
    for run_dir, cfg in runs:  # sorted by name: the released variant comes first
        key = tuple(cfg[f] for f in CONFIG_FIELDS)
        if key in kept:
            first, first_cfg = kept[key]
            diff = identity_differences(first_cfg, cfg)
            what = (f"another variant (differs in {', '.join(diff)})" if diff
                    else "a duplicate")
            warn(f"{run_dir}: skipped: {what} of {first.name}, same table cell and seed "
                 f"{cfg['seed']}; it would count as a second seed")
            continue
        kept[key] = (run_dir, cfg)
        out.append((run_dir, cfg))
    cells: dict[tuple, list[tuple[Path, dict[str, Any]]]] = {}
    for run_dir, cfg in out:
        cells.setdefault(tuple(cfg[f] for f in CELL_FIELDS), []).append((run_dir, cfg))
    for members in cells.values():
        first, first_cfg = members[0]
        diff = sorted({f for _, cfg in members[1:] for f in identity_differences(first_cfg, cfg)
                       if f != "seed"})
        if diff:
            warn(f"{first.parent}: the seeds of {first.name} and "
                 f"{', '.join(d.name for d, _ in members[1:])} differ in {', '.join(diff)}; "
                 "their mean mixes variants")
    return out


def load_runs(results_dir: str | Path, include_unfinished: bool = False) -> pd.DataFrame:
    """One row per finished run directly under ``<results_dir>/runs`` (see the module).

    ``results_dir`` may also be a runs directory itself. Columns: :data:`RUN_COLUMNS`;
    accuracies are fractions as in metrics.json (NaN for devices a single-device run
    was not evaluated on). A device other than A, B and C (the 2020 layout's) gets an
    ``acc_<device>`` column before ``acc_avg`` when some run was scored on it. An empty
    frame (same columns) when there is no run yet.
    """
    runs = _unique(scan_runs(results_dir, include_unfinished))
    rows = [read_run(d, cfg) for d, cfg in runs]
    extra = [f"acc_{d}" for d in ALL_DEVICES if any(f"acc_{d}" in r for r in rows)
             and d not in DEVICES]
    columns = list(RUN_COLUMNS)
    columns[columns.index("acc_avg"):columns.index("acc_avg")] = extra
    df = pd.DataFrame(rows, columns=columns)
    df["cond_layer"] = df["cond_layer"].astype("Int64")
    df["seed"] = df["seed"].astype("Int64")
    for col in (*ACC_COLUMNS, *extra, "device_accuracy", "wall_time_s"):
        df[col] = pd.to_numeric(df[col], errors="coerce").astype(float)
    return df.reset_index(drop=True)


__all__ = ["ACC_COLUMNS", "CONFIG_FIELDS", "RUN_COLUMNS", "RunStoreError", "RunStoreWarning",
           "find_run_dirs", "load_runs", "read_run"]
