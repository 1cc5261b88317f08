"""The paper's tables as lists of runs, and a runner that trains only what is missing.

- Table I: teacher forcing, each of the 14 models conditioned at block 1, 2, 3 and 4
  (DCASE 2018): 56 runs per seed.
- Table II: each of the 14 models under single-device training (A, B, C), joint
  training, teacher forcing and multi-task training, the conditioned strategies at the
  model's best layer of Table I (DCASE 2018): 84 runs per seed.
- Table III: pool/nopool/atrous with attention, the same six runs each, at the same
  best layers (DCASE 2019): 18 runs per seed.

Runs are keyed by their run name, so a Table II teacher-forcing run that Table I also
holds is trained once, and re-running a sweep only trains what is not ``DONE``
(partial runs resume from their checkpoint).
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

import pandas as pd

from ..constants import DEVICES, PAPER_BEST_LAYERS
from ..errors import CaaError, ConfigError
from ..spec import MODELS as _PAPER_MODELS
from . import runstore
from .config import PROFILES, TrainConfig
from .data import data_reuse, set_data_reuse

TABLES: tuple[str, ...] = ("I", "II", "III")
TABLE_DATASET: dict[str, str] = {"I": "dcase2018", "II": "dcase2018", "III": "dcase2019"}

#: The paper's 14 models in table order.
MODELS: tuple[tuple[str, str], ...] = _PAPER_MODELS
#: Table I's best conditioned layer per model (study notes section 5).
BEST_LAYER: dict[tuple[str, str], int] = PAPER_BEST_LAYERS
TABLE_III_MODELS: tuple[tuple[str, str], ...] = (
    ("pool", "att"), ("nopool", "att"), ("atrous", "att"),
)


def parse_models(spec: str | None) -> list[tuple[str, str]] | None:
    """``"atrous:att,pool:att"`` -> ``[("atrous", "att"), ("pool", "att")]``."""
    if spec is None or not spec.strip():
        return None
    out = []
    for item in spec.split(","):
        topology, sep, pooling = item.strip().partition(":")
        if not sep or (topology, pooling) not in BEST_LAYER:
            allowed = ", ".join(f"{t}:{p}" for t, p in MODELS)
            raise ConfigError(f"models: {item.strip()!r} is not one of {allowed}")
        out.append((topology, pooling))
    return out


def _strategy_runs(topology: str, pooling: str, **common: Any) -> list[TrainConfig]:
    layer = BEST_LAYER[(topology, pooling)]
    base = dict(topology=topology, pooling=pooling, **common)
    runs = [
        TrainConfig.from_profile(strategy="single", train_source=dev, cond_layer=None, **base)
        for dev in DEVICES
    ]
    runs.append(TrainConfig.from_profile(strategy="joint", cond_layer=None, **base))
    for strategy in ("teacher_forcing", "multi_task"):
        runs.append(TrainConfig.from_profile(strategy=strategy, cond_layer=layer, **base))
    return runs


def enumerate_runs(
    table: str,
    profile: str,
    dataset: str | None = None,
    seeds: int = 1,
    models: Iterable[tuple[str, str]] | None = None,
    **overrides: Any,
) -> list[TrainConfig]:
    """The configs of paper table ``table`` ("I", "II" or "III") at ``profile``.

    ``dataset`` defaults to the table's own (DCASE 2018 for I and II, 2019 for III);
    pass the layout of the data at hand to run a table's design on another set.
    ``models`` keeps only the listed (topology, pooling) pairs; ``overrides`` go to
    every config (e.g. ``lambda_mode="clean"``).
    """
    table = str(table).upper()
    if table not in TABLES:
        raise ConfigError(f"table: {table!r} is not one of {', '.join(TABLES)}")
    if profile not in PROFILES:
        raise ConfigError(f"profile: {profile!r} is not one of {', '.join(PROFILES)}")
    if not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds: must be a positive integer, got {seeds!r}")
    dataset = dataset or TABLE_DATASET[table]
    universe = TABLE_III_MODELS if table == "III" else MODELS
    wanted = None if models is None else {tuple(m) for m in models}
    if wanted is not None:
        unknown = wanted - set(BEST_LAYER)
        if unknown:
            raise ConfigError(f"models: unknown model {sorted(unknown)[0]}")
    chosen = [m for m in universe if wanted is None or m in wanted]
    configs: list[TrainConfig] = []
    for seed in range(seeds):
        common = dict(profile=profile, dataset=dataset, seed=seed, **overrides)
        for topology, pooling in chosen:
            if table == "I":
                configs += [
                    TrainConfig.from_profile(topology=topology, pooling=pooling,
                                             strategy="teacher_forcing", cond_layer=layer,
                                             **common)
                    for layer in (1, 2, 3, 4)
                ]
            else:
                configs += _strategy_runs(topology, pooling, **common)
    return configs


def run_status(config: TrainConfig, results_dir: str | Path) -> str:
    """``done``, ``partial`` (a checkpoint exists), ``missing``, ``locked`` (another
    process is training it), or ``conflict`` when the directory holds a run of another
    config or an unreadable one (training it would raise ConfigError). With a
    ``data_fingerprint`` in ``config`` (see :func:`with_data`), a run trained on other
    data is a conflict too; a finished run whose metrics.json is unreadable is
    ``corrupt``."""
    run_dir = Path(results_dir) / "runs" / config.run_name
    try:
        existing = runstore.read_config(run_dir)
    except ConfigError:
        return "conflict"
    if existing is not None and existing.differences(config):
        return "conflict"
    if runstore.is_locked(run_dir):
        return "locked"
    if runstore.is_done(run_dir):
        try:
            runstore.read_metrics(run_dir)
        except ConfigError:
            return "corrupt"
        return "done"
    if (run_dir / runstore.CHECKPOINT).exists():
        return "partial"
    return "missing"


def with_data(configs: Sequence[TrainConfig], data_dir: str | Path, progress: bool = True,
              feature_path: str | Path | None = None,
              ) -> tuple[list[TrainConfig], dict[str, Path]]:
    """Extract (or reuse) the feature files the configs need, once, before any run
    starts (parallel runs must not race to write a cache), and stamp each config with
    the dataset's content fingerprint so a run trained on other data is recognised.
    A ``feature_path`` given by the caller serves every config after checking that it
    still describes ``data_dir``. Returns the stamped configs and the feature file per
    resampler."""
    from ..features import (
        dataset_fingerprint,
        default_feature_path,
        extract_features,
        load_feature_fingerprint,
        verify_features,
    )

    data_dir = Path(data_dir)
    paths: dict[str, Path] = {}
    fingerprints: dict[str, str] = {}  # per resampler: one read, one hash of the folds
    stamped = []
    for cfg in configs:
        if cfg.resampler not in paths:
            if feature_path is not None:
                paths[cfg.resampler] = Path(feature_path)
                feature_fp = verify_features(feature_path, data_dir)
            else:
                paths[cfg.resampler] = extract_features(
                    data_dir, default_feature_path(data_dir, cfg.resampler),
                    progress=progress, resampler=cfg.resampler)
                feature_fp = load_feature_fingerprint(paths[cfg.resampler])
            fingerprints[cfg.resampler] = dataset_fingerprint(data_dir, feature_fp)
        stamped.append(cfg.replace(data_fingerprint=fingerprints[cfg.resampler]))
    return stamped, paths


def _row(config: TrainConfig, status: str, metrics: dict[str, Any] | None,
         error: str | None = None) -> dict[str, Any]:
    acc = (metrics or {}).get("accuracy", {}) if isinstance(metrics, dict) else {}
    return {
        "run_name": config.run_name, "topology": config.topology, "pooling": config.pooling,
        "strategy": config.strategy, "train_source": config.train_source,
        "cond_layer": config.cond_layer, "seed": config.seed, "status": status,
        # A, B and C always (the paper's columns), then any other device scored (2020)
        **{f"acc_{k}": acc.get(k) for k in (
            *DEVICES, *(d for d in config.eval_sources if d not in DEVICES), "avg")},
        "wall_time_s": (metrics or {}).get("wall_time_s") if isinstance(metrics, dict) else None,
        "error": error,
    }


class SweepFailed(ConfigError):
    """Some runs failed; ``summary`` holds every run's row, failures included."""

    def __init__(self, message: str, summary: pd.DataFrame) -> None:
        super().__init__(message)
        self.summary = summary


def _train_one(config: dict[str, Any], run_dir: str, data_dir: str, feature_path: str,
               force: bool) -> tuple[str, dict[str, Any] | None, str | None]:
    """One run, in this process or a worker process: (status, metrics, error)."""
    from .engine import train

    cfg = TrainConfig.from_dict(config, source=f"sweep config of {Path(run_dir).name}")
    try:
        return "ran", train(cfg, run_dir, data_dir=data_dir, feature_path=feature_path,
                            force=force, progress=False), None
    except runstore.RunLocked as exc:
        return "locked", None, str(exc)
    except CaaError as exc:
        return "failed", None, str(exc)


def run_sweep(
    configs: Sequence[TrainConfig],
    results_dir: str | Path,
    data_dir: str | Path,
    progress: bool = True,
    force: bool = False,
    feature_path: str | Path | None = None,
    jobs: int = 1,
    reuse_data: bool = True,
) -> pd.DataFrame:
    """Train every config not yet done under ``<results_dir>/runs/<run_name>/``.

    Finished runs are skipped (``status`` "skipped"), partial ones resume, runs another
    process is training are left to it ("locked", said in ``error``), and a run that
    fails (a corrupt file, another config or dataset in its directory) gets status
    "failed" while the others carry on; :class:`SweepFailed` is raised at the end if any
    failed. ``jobs`` > 1 trains that many runs at once in worker processes; each run's
    numbers depend only on its config (its ``cpu_threads`` included), so they equal
    ``jobs=1``'s. With ``reuse_data`` each process (this one for ``jobs=1``, each worker
    otherwise) loads the feature file and the dataset's table once and keeps them for its
    next runs (`caalib.training.data.data_reuse`; the numbers are the same either way).
    """
    from contextlib import nullcontext

    from tqdm.auto import tqdm

    if not isinstance(jobs, int) or isinstance(jobs, bool) or jobs < 1:
        raise ConfigError(f"jobs: must be a positive integer, got {jobs!r}")
    stamped, paths = with_data(configs, data_dir, progress, feature_path)
    unique: dict[str, TrainConfig] = {}
    for cfg in stamped:
        unique.setdefault(cfg.run_name, cfg)
    runs_dir = Path(results_dir) / "runs"
    status_before = {name: run_status(cfg, results_dir) for name, cfg in unique.items()}
    tasks = {name: (cfg.to_dict(), str(runs_dir / name), str(data_dir),
                    str(paths[cfg.resampler]), force) for name, cfg in unique.items()}
    outcome: dict[str, tuple[str, dict[str, Any] | None, str | None]] = {}
    bar = tqdm(total=len(unique), desc="sweep", unit="run", disable=not progress)
    start = time.perf_counter()
    try:
        if jobs == 1:
            with data_reuse() if reuse_data else nullcontext():
                for name, args in tasks.items():
                    bar.set_postfix_str(name, refresh=True)
                    outcome[name] = _train_one(*args)
                    bar.update(1)
        else:
            import multiprocessing
            from concurrent.futures import ProcessPoolExecutor, as_completed

            ctx = multiprocessing.get_context("spawn")  # torch state must not be forked
            # workers live for the whole pool: each keeps the data it loaded for its next run
            init = dict(initializer=set_data_reuse, initargs=(True,)) if reuse_data else {}
            with ProcessPoolExecutor(max_workers=jobs, mp_context=ctx, **init) as pool:
                futures = {pool.submit(_train_one, *args): name for name, args in tasks.items()}
                for fut in as_completed(futures):
                    name = futures[fut]
                    try:
                        outcome[name] = fut.result()
                    except Exception as exc:  # a worker died (OOM kill, signal)
                        outcome[name] = ("failed", None, f"{type(exc).__name__}: {exc}")
                    bar.set_postfix_str(name, refresh=False)
                    bar.update(1)
    finally:
        bar.close()
    rows = []
    for name, cfg in unique.items():
        status, metrics, error = outcome[name]
        if status == "ran" and status_before[name] == "done" and not force:
            status = "skipped"
        rows.append(_row(cfg, status, metrics, error))
    frame = pd.DataFrame(rows)
    frame.attrs["wall_time_s"] = time.perf_counter() - start
    failed = frame[frame["status"] == "failed"]
    if len(failed):
        listing = "; ".join(f"{r.run_name} ({r.error})" for r in failed.itertuples())
        raise SweepFailed(
            f"{len(failed)} of {len(frame)} runs failed: {listing}; fix the cause and run "
            "the sweep again (finished runs are kept)", frame)
    return frame


def plan_frame(configs: Sequence[TrainConfig], results_dir: str | Path,
               data_dir: str | Path | None = None) -> pd.DataFrame:
    """What ``run_sweep`` would do: one row per distinct run with its status. With
    ``data_dir``, runs trained on other data show as ``conflict`` (this reads the
    dataset's feature cache fingerprint, extracting features if there is none)."""
    if data_dir is not None:
        configs, _ = with_data(configs, data_dir, progress=False)
    seen: dict[str, TrainConfig] = {}
    for cfg in configs:
        seen.setdefault(cfg.run_name, cfg)
    return pd.DataFrame([
        {"run_name": c.run_name, "status": run_status(c, results_dir)} for c in seen.values()
    ], columns=["run_name", "status"])
