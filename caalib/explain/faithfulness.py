"""Score a trained run's explanations against the simulator's evidence masks.

A run is rebuilt exactly as it was evaluated: its ``config.json``, the clips and
standardisation its training chose (``caalib.training.data.load_run_data``, the one
definition of them), and the weights of its checkpoint. So this package sits above
training, like the training loop's own evaluation, and nothing under ``results`` or
``stats`` imports it.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
from tqdm.auto import tqdm

from ..constants import DEVICE_INDEX, SCENE_INDEX
from ..errors import CaaError
from .attribution import attention_maps, integrated_gradients, true_class_score
from .measures import (
    auc,
    fractions,
    localisation,
    order_of,
    perturbation_curve,
    pointing,
    to_grid,
)

#: Curve points (shares of bins deleted or inserted): 0, 1/STEPS, ..., 1.
STEPS = 10
#: Clips scored per device and run unless told otherwise (keeps ``make study`` quick).
MAX_CLIPS = 12
ATTENTION = "attention"
GRADIENT = "integrated_gradients"
RANDOM = "random"

TABLE_COLUMNS: tuple[str, ...] = (
    "run", "model", "topology", "pooling", "strategy", "source", "method", "n_clips",
    "localisation", "localisation_chance", "mass_in_mask", "mask_share", "pointing",
    "pointing_chance", "deletion_auc", "insertion_auc", "random_deletion_auc",
    "random_insertion_auc", "faithfulness",
)
CURVE_COLUMNS: tuple[str, ...] = (
    "run", "model", "source", "method", "curve", "fraction", "score",
)


@dataclass
class LoadedRun:
    """What scoring one run needs: the model in eval mode and its evaluate clips."""

    name: str
    config: dict
    model: object
    x: np.ndarray  # (N, T, F) standardised, as the model saw them
    meta: pd.DataFrame  # filename, scene_label, source of each row
    conditioned: bool  # teacher forcing: the model is fed the device


def model_label(cfg: dict) -> str:
    """``atrous + att`` style label of a run's network and pooling."""
    return f"{cfg['topology']} + {cfg['pooling']}"


def load_run(run_dir: str | Path, data_dir: str | Path) -> LoadedRun:
    """Rebuild a finished run's model and evaluate clips (a CaaError naming what is
    missing: the checkpoint, the features)."""
    import torch

    from ..features import default_feature_path
    from ..models import build_model
    from ..rundir import read_config_dict
    from ..training import TrainConfig
    from ..training.data import load_run_data
    from ..training.runstore import CHECKPOINT, load_checkpoint

    run_dir = Path(run_dir)
    cfg = TrainConfig.from_dict(read_config_dict(run_dir), source=str(run_dir))
    state = load_checkpoint(run_dir)
    if state is None:
        raise CaaError(f"{run_dir / CHECKPOINT}: no checkpoint; the run's weights are needed "
                       "to score its explanations")
    data = load_run_data(cfg, default_feature_path(data_dir, cfg.resampler), data_dir)
    torch.manual_seed(0)
    model = build_model(cfg.topology, cfg.pooling, cfg.strategy, cfg.cond_layer,
                        width=cfg.width, n_frames=data.n_frames, n_mels=data.n_mels,
                        attention=cfg.attention)
    model.load_state_dict(state["model"])
    model.eval()
    for p in model.parameters():  # gradients are taken with respect to the input only
        p.requires_grad_(False)
    return LoadedRun(run_dir.name, cfg.to_dict(), model, data.evaluate.x,
                     data.evaluate.meta, cfg.strategy == "teacher_forcing")


def pick_clips(meta: pd.DataFrame, evidence: dict[str, dict[str, np.ndarray]],
               max_clips: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Rows per device: clips whose scene mask has evidence, up to ``max_clips`` drawn
    with ``seed``, spread over scenes (round-robin over the scenes in sorted order)."""
    rng = np.random.default_rng(seed)
    out = {}
    for dev in sorted(meta["source"].unique()):
        rows = [i for i in np.flatnonzero(meta["source"].to_numpy() == dev)
                if evidence[meta["filename"].iloc[i]]["scene"].any()]
        by_scene: dict[str, list[int]] = {}
        for i in rng.permutation(rows):
            by_scene.setdefault(meta["scene_label"].iloc[i], []).append(int(i))
        chosen: list[int] = []
        queues = [by_scene[s] for s in sorted(by_scene)]
        while len(chosen) < max_clips and any(queues):
            for q in queues:
                if q and len(chosen) < max_clips:
                    chosen.append(q.pop(0))
        out[dev] = np.array(sorted(chosen), dtype=int)
    return out


def _mask(evidence: dict[str, dict[str, np.ndarray]], name: str, shape: tuple[int, int]
          ) -> np.ndarray:
    m = evidence[name]["scene"]
    if m.shape[0] < shape[0] or m.shape[1] != shape[1]:
        raise CaaError(f"evidence mask of {name}: {m.shape} does not cover the features "
                       f"{shape}; synthesise the dataset again")
    return m[: shape[0]]  # runs on the first N frames (max_frames) see the first N frames


def score_run(run: LoadedRun, evidence: dict[str, dict[str, np.ndarray]], *,
              max_clips: int = MAX_CLIPS, steps: int = STEPS, seed: int = 0,
              progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(table, curves) of one run: a row per device x method, the mean curves."""
    missing = [f for f in run.meta["filename"] if f not in evidence]
    if missing:
        raise CaaError(f"no evidence mask for {len(missing)} evaluate clips of {run.name} "
                       f"(first: {missing[0]}); was the run trained on this dataset?")
    cfg = run.config
    picks = pick_clips(run.meta, evidence, max_clips, seed)
    rows, curves = [], []
    total = sum(len(v) for v in picks.values())
    bar = tqdm(total=total, desc=f"explain {run.name}", unit="clip", disable=not progress)
    for dev, idx in picks.items():
        per: dict[str, dict[str, list]] = {}
        for i in idx:
            x = run.x[i]
            name = run.meta["filename"].iloc[i]
            target = SCENE_INDEX[run.meta["scene_label"].iloc[i]]
            source = DEVICE_INDEX[dev] if run.conditioned else None
            mask = _mask(evidence, name, x.shape)

            def score(batch: np.ndarray, target: int = target,
                      source: int | None = source) -> np.ndarray:
                return true_class_score(run.model, batch, target, source)

            maps = {}
            att = attention_maps(run.model, x[None], np.array([target]),
                                 None if source is None else np.array([source]))
            if att is not None:
                maps[ATTENTION] = to_grid(att[0], x.shape)
            maps[GRADIENT] = integrated_gradients(run.model, x, target, source)
            clip_rng = np.random.default_rng([seed, int(i)])
            random_order = clip_rng.permutation(x.size)
            base = np.zeros_like(x)  # the training mean, after standardisation
            rand_del = perturbation_curve(score, x, random_order, base, steps, "deletion")
            rand_ins = perturbation_curve(score, x, random_order, base, steps, "insertion")
            for method, values in maps.items():
                order = order_of(values, clip_rng)
                d = perturbation_curve(score, x, order, base, steps, "deletion")
                ins = perturbation_curve(score, x, order, base, steps, "insertion")
                loc, share = localisation(values, mask)
                hit, chance = pointing(values, mask)
                rec = per.setdefault(method, {k: [] for k in (
                    "loc", "share", "hit", "chance", "del", "ins", "rdel", "rins")})
                for k, v in (("loc", loc), ("share", share), ("hit", hit), ("chance", chance),
                             ("del", d), ("ins", ins), ("rdel", rand_del), ("rins", rand_ins)):
                    rec[k].append(v)
            bar.update(1)
        for method, rec in per.items():
            mass, share = np.array(rec["loc"]), np.array(rec["share"])
            d, ins = np.mean(rec["del"], axis=0), np.mean(rec["ins"], axis=0)
            rd, ri = np.mean(rec["rdel"], axis=0), np.mean(rec["rins"], axis=0)
            rows.append({
                "run": run.name, "model": model_label(cfg), "topology": cfg["topology"],
                "pooling": cfg["pooling"], "strategy": cfg["strategy"], "source": dev,
                "method": method, "n_clips": len(mass),
                "localisation": float(np.mean(mass / share)), "localisation_chance": 1.0,
                "mass_in_mask": float(mass.mean()), "mask_share": float(share.mean()),
                "pointing": float(np.mean(rec["hit"])),
                "pointing_chance": float(np.mean(rec["chance"])),
                "deletion_auc": auc(d), "insertion_auc": auc(ins),
                "random_deletion_auc": auc(rd), "random_insertion_auc": auc(ri),
                "faithfulness": auc(rd) - auc(d),
            })
            for curve, values in (("deletion", d), ("insertion", ins),
                                  ("random_deletion", rd), ("random_insertion", ri)):
                for f, s in zip(fractions(steps), values, strict=True):
                    curves.append({"run": run.name, "model": model_label(cfg), "source": dev,
                                   "method": method, "curve": curve, "fraction": float(f),
                                   "score": float(s)})
    bar.close()
    return (pd.DataFrame(rows, columns=list(TABLE_COLUMNS)),
            pd.DataFrame(curves, columns=list(CURVE_COLUMNS)))


def explain_runs(run_dirs: list[str | Path], data_dir: str | Path, *,
                 max_clips: int = MAX_CLIPS, steps: int = STEPS, seed: int = 0,
                 progress: bool = False) -> tuple[pd.DataFrame, pd.DataFrame]:
    """The faithfulness table and curves of several runs on one dataset."""
    from ..synth.evidence import read_evidence

    if not run_dirs:
        raise CaaError("no run directories given")
    evidence = read_evidence(data_dir)
    tables, curves = [], []
    for run_dir in run_dirs:
        table, curve = score_run(load_run(run_dir, data_dir), evidence, max_clips=max_clips,
                                 steps=steps, seed=seed, progress=progress)
        tables.append(table)
        curves.append(curve)
    return pd.concat(tables, ignore_index=True), pd.concat(curves, ignore_index=True)
