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
from ..errors import ConfigError
from . import runstore
from .config import PAPER_POOLINGS, PROFILES, TrainConfig

TABLES: tuple[str, ...] = ("I", "II", "III")
TABLE_DATASET: dict[str, str] = {"I": "dcase2018", "II": "dcase2018", "III": "dcase2019"}

#: The paper's 14 models in table order.
MODELS: tuple[tuple[str, str], ...] = tuple(
    (topology, pooling) for topology, poolings in PAPER_POOLINGS.items() for pooling in poolings
)
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
        TrainConfig.from_profile(strategy="single", train_device=dev, cond_layer=None, **base)
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
    """``done``, ``partial`` (a checkpoint exists), ``missing``, or ``conflict`` when the
    directory holds a run of another config (training it would raise ConfigError)."""
    run_dir = Path(results_dir) / "runs" / config.run_name
    try:
        existing = runstore.read_config(run_dir)
    except ConfigError:
        return "conflict"
    if existing is not None and existing.differences(config):
        return "conflict"
    if runstore.is_done(run_dir):
        return "done"
    if (run_dir / runstore.CHECKPOINT).exists():
        return "partial"
    return "missing"


def _row(config: TrainConfig, status: str, metrics: dict[str, Any] | None) -> dict[str, Any]:
    acc = (metrics or {}).get("accuracy", {})
    return {
        "run_name": config.run_name, "topology": config.topology, "pooling": config.pooling,
        "strategy": config.strategy, "train_device": config.train_device,
        "cond_layer": config.cond_layer, "seed": config.seed, "status": status,
        **{f"acc_{k}": acc.get(k) for k in (*DEVICES, "avg")},
        "wall_time_s": (metrics or {}).get("wall_time_s"),
    }


def run_sweep(
    configs: Sequence[TrainConfig],
    results_dir: str | Path,
    data_dir: str | Path,
    progress: bool = True,
    force: bool = False,
    feature_path: str | Path | None = None,
) -> pd.DataFrame:
    """Train every config not yet done under ``<results_dir>/runs/<run_name>/``.

    Finished runs are skipped (``status`` "skipped"), partial ones resume. Returns one
    summary row per distinct run with its accuracies.
    """
    from tqdm.auto import tqdm

    from .engine import train

    unique: dict[str, TrainConfig] = {}
    for cfg in configs:
        unique.setdefault(cfg.run_name, cfg)
    runs_dir = Path(results_dir) / "runs"
    rows = []
    bar = tqdm(list(unique.values()), desc="sweep", unit="run", disable=not progress)
    start = time.perf_counter()
    for cfg in bar:
        bar.set_postfix_str(cfg.run_name, refresh=True)
        run_dir = runs_dir / cfg.run_name
        status = "skipped" if run_status(cfg, results_dir) == "done" and not force else "ran"
        metrics = train(cfg, run_dir, data_dir=data_dir, feature_path=feature_path,
                        force=force, progress=progress)
        rows.append(_row(cfg, status, metrics))
    bar.close()
    frame = pd.DataFrame(rows)
    frame.attrs["wall_time_s"] = time.perf_counter() - start
    return frame


def plan_frame(configs: Sequence[TrainConfig], results_dir: str | Path) -> pd.DataFrame:
    """What ``run_sweep`` would do: one row per distinct run with its status."""
    seen: dict[str, TrainConfig] = {}
    for cfg in configs:
        seen.setdefault(cfg.run_name, cfg)
    return pd.DataFrame([
        {"run_name": c.run_name, "status": run_status(c, results_dir)} for c in seen.values()
    ], columns=["run_name", "status"])
