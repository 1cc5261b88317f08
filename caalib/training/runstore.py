"""The run directory: every file a run leaves, written atomically.

The layout is the contract ``caalib.results`` and ``caalib.stats`` read
(docs/architecture.md, "The run store"). Every file goes through ``caalib.atomic``, so a
run killed at any instant leaves each file either absent, the previous version or the
complete new one - which is what makes "start it again" a safe way to resume. ``DONE``
is written last: its presence means every other file is final.
"""

from __future__ import annotations

import contextlib
import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .. import rundir
from ..atomic import atomic_path, write_json, write_text
from ..errors import ConfigError
from .config import TrainConfig

# the names and columns are the run directory's, owned by caalib.rundir (its readers)
CONFIG = rundir.CONFIG_FILE
METRICS = rundir.METRICS_FILE
HISTORY = rundir.HISTORY_FILE
PREDICTIONS = rundir.PREDICTIONS_FILE
ATTENTION = rundir.ATTENTION_FILE
CHECKPOINT = "checkpoint.pt"  # the writer's own: no reader outside training opens it
DONE = rundir.DONE_FILE
LOCK = ".caa-lock"

RUN_FILES: tuple[str, ...] = (CONFIG, METRICS, HISTORY, PREDICTIONS, ATTENTION, CHECKPOINT, DONE)

HISTORY_COLUMNS: tuple[str, ...] = rundir.HISTORY_COLUMNS
PREDICTION_COLUMNS: tuple[str, ...] = rundir.PREDICTION_COLUMNS
METRICS_KEYS: tuple[str, ...] = (
    "accuracy", "classwise", "confusion", "n_eval", "device_accuracy", "iterations",
    "wall_time_s",
)


class RunLocked(ConfigError):
    """Another process is training this run directory right now."""


@contextlib.contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock (``.caa-lock``, an OS file lock released when the
    process dies) while training it; raise :class:`RunLocked` at once if another process
    holds it, so two sweeps on one results directory never write the same run."""
    from filelock import FileLock, Timeout

    run_dir = Path(run_dir)
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{run_dir}: cannot create the run directory "
                          f"({exc.strerror or exc})") from None
    lock = FileLock(str(run_dir / LOCK), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        raise RunLocked(f"{run_dir}: being trained by another process (lock {LOCK} held); "
                        "wait for it or stop it") from None
    try:
        yield
    finally:
        lock.release()


def is_locked(run_dir: Path) -> bool:
    """Whether another process holds the run's lock right now (probe, not kept)."""
    from filelock import FileLock, Timeout

    path = Path(run_dir) / LOCK
    if not path.exists():
        return False
    lock = FileLock(str(path), timeout=0)
    try:
        lock.acquire()
    except Timeout:
        return True
    except OSError:
        return False
    lock.release()
    return False


def check_run_dir(run_dir: Path) -> None:
    """Refuse a ``--out`` the study did not make: an existing file, or a directory
    holding anything but run files, so a user's own ``history.csv`` or ``metrics.json``
    is never overwritten."""
    run_dir = Path(run_dir)
    if run_dir.exists() and not run_dir.is_dir():
        raise ConfigError(f"{run_dir}: exists and is not a directory; a run needs a "
                          "directory of its own")
    if not run_dir.is_dir() or (run_dir / CONFIG).is_file():
        return
    ours = set(RUN_FILES) | {LOCK}
    foreign = sorted(p.name for p in run_dir.iterdir()
                     if p.name not in ours and not p.name.startswith(tuple(
                         f".{name}." for name in RUN_FILES)))
    if foreign:
        shown = ", ".join(foreign[:3]) + (f" (+{len(foreign) - 3} more)" if len(foreign) > 3
                                          else "")
        raise ConfigError(f"{run_dir}: exists and is not a run directory (holds {shown}); "
                          "refusing to write a run into it: choose a new or empty directory")
    # config.json is written before any other run file, and a checkpoint names its own
    # config (resume checks it); results without either are not ours to overwrite
    if not (run_dir / CHECKPOINT).is_file() and any(
            (run_dir / name).exists() for name in (METRICS, HISTORY, PREDICTIONS)):
        raise ConfigError(f"{run_dir}: holds run files but no {CONFIG} or {CHECKPOINT}; "
                          "refusing to overwrite them: choose a new or empty directory")


def write_config(run_dir: Path, config: TrainConfig) -> Path:
    return write_json(Path(run_dir) / CONFIG, config.to_dict())


def read_config(run_dir: Path) -> TrainConfig | None:
    """The run's config, None when there is none yet; ConfigError when malformed."""
    path = Path(run_dir) / CONFIG
    if not path.exists():
        return None
    return TrainConfig.load(path)


def is_done(run_dir: Path) -> bool:
    return (Path(run_dir) / DONE).exists()


def mark_done(run_dir: Path) -> None:
    write_text(Path(run_dir) / DONE, "done\n")


def clear_run(run_dir: Path) -> None:
    """Remove the run files (``force``): DONE first, so a crash midway never looks done."""
    for name in (DONE, *RUN_FILES):
        with contextlib.suppress(FileNotFoundError):
            (Path(run_dir) / name).unlink()
    remove_stale_temps(run_dir)


def remove_stale_temps(run_dir: Path) -> list[Path]:
    """Delete the temporaries a killed atomic write left (``.<file>.<random><suffix>``).

    They never break a resume (only the final names are read), but a run killed
    repeatedly would pile up checkpoint-sized files. Called when a process takes the
    run over, i.e. when no other process is writing it.
    """
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        return []
    removed = []
    for name in RUN_FILES:
        for tmp in run_dir.glob(f".{name}.*"):
            with contextlib.suppress(FileNotFoundError):
                tmp.unlink()
                removed.append(tmp)
    return removed


def write_metrics(run_dir: Path, metrics: dict[str, Any]) -> Path:
    return write_json(Path(run_dir) / METRICS, metrics)


def read_metrics(run_dir: Path) -> dict[str, Any]:
    path = Path(run_dir) / METRICS
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{path}: metrics file not found (run not finished?)") from None
    except json.JSONDecodeError as exc:
        raise ConfigError(f"{path}: line {exc.lineno}: not valid JSON ({exc.msg})") from None


def _write_csv(path: Path, frame: pd.DataFrame) -> Path:
    with atomic_path(path) as tmp:
        frame.to_csv(tmp, index=False, float_format="%.9g")
    return path


def write_history(run_dir: Path, rows: list[dict[str, Any]],
                  columns: tuple[str, ...] = HISTORY_COLUMNS) -> Path:
    """One row per iteration; evaluation columns empty between evaluations. ``columns``:
    ``rundir.history_columns`` of the run's evaluate devices."""
    frame = pd.DataFrame(rows, columns=list(columns))
    return _write_csv(Path(run_dir) / HISTORY, frame)


def write_predictions(run_dir: Path, frame: pd.DataFrame) -> Path:
    missing = [c for c in PREDICTION_COLUMNS if c not in frame.columns]
    if missing:
        raise ValueError(f"predictions lack columns {missing}")
    return _write_csv(Path(run_dir) / PREDICTIONS, frame[list(PREDICTION_COLUMNS)])


def write_attention(run_dir: Path, arrays: dict[str, np.ndarray]) -> Path:
    """``attention`` (N,K,T',F'), ``logmel`` (N,T,F) float32 and string arrays."""
    path = Path(run_dir) / ATTENTION
    with atomic_path(path) as tmp, open(tmp, "wb") as fh:
        np.savez_compressed(fh, **arrays)
    return path


def save_checkpoint(run_dir: Path, state: dict[str, Any]) -> Path:
    """``torch.save`` through a temporary file renamed into place."""
    import torch

    path = Path(run_dir) / CHECKPOINT
    with atomic_path(path) as tmp:
        torch.save(state, tmp)
        with open(tmp, "rb") as fh:
            os.fsync(fh.fileno())
    return path


def load_checkpoint(run_dir: Path, map_location: Any = "cpu") -> dict[str, Any] | None:
    """The checkpoint, None when there is none; ConfigError naming the file if unreadable."""
    import torch

    path = Path(run_dir) / CHECKPOINT
    if not path.exists():
        return None
    try:
        return torch.load(path, map_location=map_location, weights_only=True)
    except Exception as exc:  # a truncated or foreign file: say which, on one line
        first = next((ln.strip() for ln in str(exc).splitlines() if ln.strip()), "")
        raise ConfigError(
            f"{path}: unreadable checkpoint ({type(exc).__name__}: {first[:200]}); "
            "delete it, or start over with `caa train ... --force`"
        ) from None
