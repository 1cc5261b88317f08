"""Run a sweep's runs as Ray tasks, on one multi-GPU machine or an existing Ray cluster.

The run store already makes a run restartable (atomic files, a checkpoint, ``DONE``
last), so fault tolerance here is mostly bookkeeping: each pending run is one Ray task;
a task whose worker dies is retried by Ray and the retry resumes from the run's
checkpoint; a run that fails for good becomes a ``failed`` row instead of sinking the
sweep. Ray is an optional extra (``pip install .[cluster]``), imported only when a
sweep is actually sent to it.

Assumes a shared filesystem: every node sees ``data_dir``, the feature cache and
``results_dir`` at the same absolute paths (docs/cluster.md).
"""

from __future__ import annotations

import contextlib
import logging
import os
import shutil
import socket
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from .accelerator import usable_cpus
from .atomic import write_json
from .errors import CaaError, ConfigError
from .training.sweep import SweepFailed

#: Where each task attempt leaves a small JSON note (pid, node, the run's status when
#: the attempt began), under the results directory. It is how a user - or a test - can
#: see that a retried run resumed from its checkpoint.
ATTEMPTS_DIR = Path(".cluster") / "attempts"
INSTALL_HINT = (
    "Ray is not installed; run `pip install .[cluster]` (or `pip install 'ray[default]'`)"
)


class ClusterError(CaaError):
    """The Ray executor cannot run (Ray missing, cluster unreachable, bad resources)."""


def _import_ray() -> Any:
    try:
        import ray
    except ImportError:
        raise ClusterError(INSTALL_HINT) from None
    return ray


def _transient_exceptions() -> list[type[BaseException]]:
    """Errors worth another attempt (a flaky shared filesystem, memory pressure).

    Everything else - in particular every ``CaaError`` (bad config, bad data) - would
    fail the same way again, so Ray is not asked to retry it.
    """
    kinds: list[type[BaseException]] = [OSError, MemoryError]
    with contextlib.suppress(ImportError, AttributeError):
        import torch

        kinds.append(torch.cuda.OutOfMemoryError)
    return kinds


def _code_root() -> str:
    """The directory holding the ``caalib`` package, so workers can import it."""
    return str(Path(__file__).resolve().parent.parent)


def connect(address: str | None = None, *, num_cpus: int | None = None) -> bool:
    """Make sure Ray is initialised; True when this call initialised it (release it after).

    An already initialised Ray (a notebook, a test fixture) is used as it is. With
    ``address`` ("auto", "host:6379" or "ray://host:10001") we join that cluster and
    ship ``caalib``'s location in ``PYTHONPATH``; without one a private local instance
    is started with ``num_cpus`` (default: the cores we may use), no dashboard and quiet
    logs, under a fresh temporary directory in /tmp.
    """
    ray = _import_ray()
    if ray.is_initialized():
        return False
    pythonpath = os.pathsep.join(p for p in (_code_root(), os.environ.get("PYTHONPATH")) if p)
    quiet = dict(log_to_driver=False, logging_level=logging.WARNING)
    if address is not None:
        try:
            ray.init(address=address, runtime_env={"env_vars": {"PYTHONPATH": pythonpath}},
                     **quiet)
        except Exception as exc:  # ConnectionError, ValueError, RuntimeError, ...
            raise ClusterError(
                f"cannot connect to the Ray cluster at {address!r}: {type(exc).__name__}: {exc}"
            ) from None
        return True  # joined: ray.shutdown() later only disconnects this driver
    # a local instance: its processes (and so its workers) inherit the environment
    # ray.init sees, so PYTHONPATH is set for the call and restored after it
    temp_dir = tempfile.mkdtemp(prefix="caa-ray-", dir="/tmp")
    saved = os.environ.get("PYTHONPATH")
    os.environ["PYTHONPATH"] = pythonpath
    try:
        ray.init(
            num_cpus=num_cpus or usable_cpus(), include_dashboard=False,
            object_store_memory=128 * 1024**2, _temp_dir=temp_dir, **quiet,
        )
    except Exception:
        shutil.rmtree(temp_dir, ignore_errors=True)
        raise
    finally:
        if saved is None:
            os.environ.pop("PYTHONPATH", None)
        else:
            os.environ["PYTHONPATH"] = saved
    _LOCAL_TEMP_DIRS.append(temp_dir)
    return True


_LOCAL_TEMP_DIRS: list[str] = []


def shutdown() -> None:
    """Stop a local instance started by :func:`connect` (removing its temp directory),
    or disconnect from a cluster it joined - the cluster itself keeps running."""
    ray = _import_ray()
    ray.shutdown()
    while _LOCAL_TEMP_DIRS:
        shutil.rmtree(_LOCAL_TEMP_DIRS.pop(), ignore_errors=True)


# ---------------------------------------------------------------------- the task
def _train_task(config: dict[str, Any], results_dir: str, data_dir: str,
                feature_path: str) -> dict[str, Any]:
    """One run inside a Ray worker: note the attempt, then train (resuming if partial).

    The engine sets torch's threads from the config's ``cpu_threads`` (part of the run's
    identity); the task reserves as many Ray CPUs, so local, ``--jobs`` and Ray runs
    compute the same numbers.
    """
    from .training import TrainConfig, engine
    from .training.sweep import run_status

    cfg = TrainConfig.from_dict(config, source=f"run {config.get('dataset')}")
    note_dir = Path(results_dir) / ATTEMPTS_DIR / cfg.run_name
    note_dir.mkdir(parents=True, exist_ok=True)
    write_json(note_dir / f"{time.time_ns()}-{os.getpid()}.json", {
        "run_name": cfg.run_name, "pid": os.getpid(), "node": socket.gethostname(),
        "start_status": run_status(cfg, results_dir), "started": time.time(),
    })
    run_dir = Path(results_dir) / "runs" / cfg.run_name
    return engine.train(cfg, run_dir, data_dir=data_dir, feature_path=feature_path,
                        progress=False)


def attempts(results_dir: str | Path, run_name: str) -> list[dict[str, Any]]:
    """The attempt notes of one run, oldest first."""
    import json

    note_dir = Path(results_dir) / ATTEMPTS_DIR / run_name
    notes = [json.loads(p.read_text(encoding="utf-8")) for p in note_dir.glob("*.json")]
    return sorted(notes, key=lambda n: n["started"])


# ---------------------------------------------------------------------- the driver
def _check_gpus_per_run(gpus_per_run: float | None) -> None:
    """Ray accepts fractions up to one GPU, whole numbers above."""
    if gpus_per_run is None:
        return
    if (isinstance(gpus_per_run, bool) or not isinstance(gpus_per_run, int | float)
            or not gpus_per_run >= 0
            or (gpus_per_run > 1 and gpus_per_run != int(gpus_per_run))):
        raise ConfigError(
            f"gpus_per_run: must be a fraction in [0, 1] or a whole number, got {gpus_per_run!r}"
        )


def _gpus_for_task(ray: Any, gpus_per_run: float | None) -> float:
    have = float(ray.cluster_resources().get("GPU", 0))
    if gpus_per_run is None:
        return 1.0 if have > 0 else 0.0
    if gpus_per_run > 0 and have == 0:
        raise ConfigError(f"gpus_per_run: {gpus_per_run} requested but the cluster has no GPU")
    return float(gpus_per_run)


def _error_text(exc: BaseException) -> str:
    """One line: the task's own exception when Ray wraps one, else Ray's error."""
    cause = getattr(exc, "cause", None)
    err = cause if isinstance(cause, BaseException) else exc
    lines = str(err).strip().splitlines()
    return f"{type(err).__name__}: {lines[-1] if lines else ''}".strip()


def run_sweep_ray(
    configs: Sequence[Any],
    results_dir: str | Path,
    data_dir: str | Path,
    *,
    address: str | None = None,
    gpus_per_run: float | None = None,
    max_retries: int = 3,
    progress: bool = True,
    force: bool = False,
    feature_path: str | Path | None = None,
) -> pd.DataFrame:
    """Train every config not yet done as a Ray task; same summary frame as ``run_sweep``.

    Each pending run gets one CPU and, when the cluster has GPUs, one GPU
    (``gpus_per_run`` overrides: a fraction packs several runs on a GPU, 0 keeps them on
    CPU). A run whose worker dies or raises a transient error is retried up to
    ``max_retries`` times and resumes from its checkpoint; a run that still fails gets
    status ``failed`` and its ``error``, the others carry on, and ``SweepFailed`` (with
    ``.summary``) is raised at the end. Ctrl-C cancels what is left; running it again
    picks up where it stopped. Without ``address`` a local Ray instance is started and
    stopped; an existing cluster (or an already initialised Ray) is left running.
    """
    from tqdm.auto import tqdm

    from .training import runstore
    from .training.sweep import _row, run_status, with_data

    ray = _import_ray()
    if not isinstance(max_retries, int) or max_retries < 0:
        raise ConfigError(f"max_retries: must be a non-negative integer, got {max_retries!r}")
    _check_gpus_per_run(gpus_per_run)
    results_dir = Path(results_dir).resolve()
    data_dir = Path(data_dir).resolve()
    # once, here: tasks must not race to write the cache
    configs, paths = with_data(configs, data_dir, progress, feature_path)
    unique: dict[str, Any] = {}
    for cfg in configs:
        unique.setdefault(cfg.run_name, cfg)
    runs_dir = results_dir / "runs"
    if force:  # cleared here, once: a retried task must resume, not start over
        for name in unique:
            runstore.clear_run(runs_dir / name)
    pending = [c for c in unique.values() if run_status(c, results_dir) != "done"]
    pending_names = {c.run_name for c in pending}

    start = time.perf_counter()
    outcome: dict[str, tuple[str, dict[str, Any] | None, str | None]] = {}
    for cfg in unique.values():
        if cfg.run_name not in pending_names:
            run_dir = runs_dir / cfg.run_name
            existing = runstore.read_config(run_dir)  # as train() would refuse a mismatch
            diff = existing.differences(cfg) if existing is not None else []
            if diff:
                raise ConfigError(
                    f"{run_dir / runstore.CONFIG}: the directory holds a run with another "
                    f"config (differs in: {', '.join(diff)}); use another results directory"
                )
            outcome[cfg.run_name] = ("skipped", runstore.read_metrics(run_dir), None)
    if pending:
        paths = {k: Path(v).resolve() for k, v in paths.items()}
        owned = connect(address)
        try:
            outcome.update(_submit_and_collect(
                ray, pending, results_dir, data_dir, paths, gpus_per_run,
                max_retries, tqdm(total=len(unique), initial=len(unique) - len(pending),
                                  desc="sweep (ray)", unit="run", disable=not progress),
            ))
        finally:
            if owned:
                shutdown()

    rows = []
    for name, cfg in unique.items():
        status, metrics, error = outcome[name]
        rows.append(_row(cfg, status, metrics, error))
    frame = pd.DataFrame(rows)
    frame.attrs["wall_time_s"] = time.perf_counter() - start
    failed = frame[frame["status"] == "failed"]
    if len(failed):
        listing = "; ".join(f"{r.run_name} ({r.error})" for r in failed.itertuples())
        raise SweepFailed(
            f"{len(failed)} of {len(frame)} runs failed: "
            f"{listing}; fix the cause and run the sweep again (finished runs are kept)",
            frame,
        )
    return frame


def _submit_and_collect(
    ray: Any, pending: list[Any], results_dir: Path, data_dir: Path,
    feature_paths: dict[str, Path], gpus_per_run: float | None, max_retries: int, bar: Any,
) -> dict[str, tuple[str, dict[str, Any] | None, str | None]]:
    """Submit one task per pending run and gather them as they finish (Ctrl-C cancels)."""
    num_gpus = _gpus_for_task(ray, gpus_per_run)
    remote = ray.remote(_train_task)

    def task(cpus: int) -> Any:
        return remote.options(
            num_cpus=cpus, num_gpus=num_gpus, max_retries=max_retries,
            retry_exceptions=_transient_exceptions(), name="caa-train",
        )

    refs = {
        task(cfg.cpu_threads).remote(
            cfg.to_dict(), str(results_dir), str(data_dir),
            str(feature_paths[cfg.resampler])): cfg
        for cfg in pending
    }
    out: dict[str, tuple[str, dict[str, Any] | None, str | None]] = {}
    remaining = list(refs)
    try:
        while remaining:
            done, remaining = ray.wait(remaining, num_returns=1, timeout=1.0)
            for ref in done:
                cfg = refs[ref]
                try:
                    out[cfg.run_name] = ("ran", ray.get(ref), None)
                except ray.exceptions.RayError as exc:
                    out[cfg.run_name] = ("failed", None, _error_text(exc))
                bar.set_postfix_str(cfg.run_name, refresh=False)
                bar.update(1)
    except KeyboardInterrupt:
        # queued tasks are dropped; running ones get a KeyboardInterrupt of their own
        # and stop between two atomic writes, so their checkpoints stay usable
        for ref in remaining:
            with contextlib.suppress(Exception):
                ray.cancel(ref, force=False)
        raise
    finally:
        bar.close()
    return out
