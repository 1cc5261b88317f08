"""The arrays one run trains and evaluates on, and the order it sees them in.

Everything a run needs is held in memory (the paper-size DCASE 2018 cache is about
0.8 GB), so data loading is never the bottleneck and the batch order can be a pure
function of ``(seed, iteration)``: a resumed run needs no sampler state to continue
exactly where it stopped.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np
import pandas as pd

from ..constants import DEVICE_INDEX, DEVICES, SCENE_INDEX, SCENES
from ..errors import ConfigError, FeatureError
from .config import TrainConfig


@dataclass
class Split:
    """Standardised features and labels of one subset of clips."""

    x: np.ndarray  # (N, T, F) float32, standardised
    scene: np.ndarray  # (N,) int64
    device: np.ndarray  # (N,) int64
    meta: pd.DataFrame  # filename, device (letter), scene_label, identifier, segment

    def __len__(self) -> int:
        return len(self.scene)


@dataclass
class RunData:
    """Train / held-out / evaluate subsets plus the attention clips of one run."""

    train: Split
    evaluate: Split
    holdout: Split | None
    mean: np.ndarray  # (F,) float32
    std: np.ndarray  # (F,) float32
    attention_index: np.ndarray  # rows of ``evaluate`` whose attention maps are kept
    attention_logmel: np.ndarray  # (n, T, F) unstandardised log-mel of those rows

    @property
    def n_frames(self) -> int:
        return int(self.train.x.shape[1])

    @property
    def n_mels(self) -> int:
        return int(self.train.x.shape[2])


# ---------------------------------------------------------------------- sampler
@lru_cache(maxsize=8)
def epoch_permutation(n: int, seed: int, epoch: int) -> np.ndarray:
    """The order of epoch ``epoch``: a permutation drawn from ``default_rng([seed, epoch])``."""
    perm = np.random.default_rng([seed, epoch]).permutation(n)
    perm.setflags(write=False)
    return perm


def batch_indices(n: int, batch_size: int, seed: int, step: int, count: int = 1) -> np.ndarray:
    """Training-set rows of steps ``step .. step+count-1`` as a (count, batch_size) array.

    Sample position ``p = step * batch_size + j`` is row ``perm_e[p % n]`` of epoch
    ``e = p // n``; batches run across epoch boundaries, so every clip is seen once per
    epoch and the order depends on nothing but ``(seed, step)``.
    """
    if n < 1:
        raise ValueError("the training set is empty")
    pos = np.arange(step * batch_size, (step + count) * batch_size, dtype=np.int64)
    epochs = pos // n
    out = np.empty_like(pos)
    for epoch in np.unique(epochs):
        sel = epochs == epoch
        out[sel] = epoch_permutation(n, seed, int(epoch))[pos[sel] % n]
    return out.reshape(count, batch_size)


# ---------------------------------------------------------------------- selection
def holdout_mask(devices: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A ``fraction`` of the rows of each device, drawn by ``seed``, as a boolean mask.

    Stratified by device so the held-out device accuracy weighs A, B and C as the
    training data does; each device with at least two clips keeps one out and one in.
    """
    rng = np.random.default_rng([seed, 1_000_003])
    mask = np.zeros(len(devices), dtype=bool)
    for dev in np.unique(devices):
        rows = np.flatnonzero(devices == dev)
        if len(rows) < 2:
            continue
        k = min(len(rows) - 1, max(1, int(round(fraction * len(rows)))))
        mask[rng.choice(rows, size=k, replace=False)] = True
    return mask


def attention_clips(meta: pd.DataFrame, devices: tuple[str, ...]) -> np.ndarray:
    """Rows of ``meta`` (the evaluate split) whose attention maps a run keeps.

    For each scene, one parallel recording: the first ``(identifier, segment)`` in
    sorted order that is present on all three devices (or, where none is, on the most
    devices), then its clips on ``devices`` in device order.
    """
    rows: list[int] = []
    for scene in SCENES:
        sub = meta[meta["scene_label"] == scene]
        if sub.empty:
            continue
        groups = sub.groupby(["identifier", "segment"], sort=True)["device"].agg(set)
        best = None
        for key in groups.index:  # sorted; a later group wins only with more devices
            if best is None or len(groups[key]) > len(groups[best]):
                best = key
        ident, seg = best
        for dev in devices:
            hit = sub.index[(sub["identifier"] == ident) & (sub["segment"] == seg)
                            & (sub["device"] == dev)]
            rows.extend(int(meta.index.get_loc(i)) for i in hit[:1])
    return np.asarray(rows, dtype=np.int64)


# ---------------------------------------------------------------------- loading
def _split(x: np.ndarray, meta: pd.DataFrame, mean: np.ndarray, std: np.ndarray) -> Split:
    from ..features import standardise

    return Split(
        x=np.ascontiguousarray(standardise(x, mean, std)),
        scene=meta["scene_label"].map(SCENE_INDEX).to_numpy(np.int64),
        device=meta["device"].map(DEVICE_INDEX).to_numpy(np.int64),
        meta=meta.reset_index(drop=True),
    )


def load_run_data(config: TrainConfig, feature_path: str | Path, data_dir: str | Path) -> RunData:
    """Select, crop and standardise the clips of ``config`` from the feature cache.

    The split comes from the dataset's fold files (``read_dataset``); the features from
    the cache. Standardisation statistics are fitted on the clips the run trains on
    (held-out clips excluded) and applied to every subset.
    """
    from ..datasets import read_dataset
    from ..features import fit_standardiser, load_features

    feature_path = Path(feature_path)
    if not feature_path.exists():
        raise FeatureError(f"{feature_path}: feature file not found")
    fs = load_features(feature_path)
    made_with = fs.attrs.get("resampler")
    if made_with != config.resampler:
        raise FeatureError(
            f"{feature_path}: made with resampler {made_with!r} (recipe version "
            f"{fs.attrs.get('recipe_version')!r}), but the run asks for "
            f"{config.resampler!r}; re-extract it (caa features --resampler "
            f"{config.resampler} --force)"
        )
    ds = read_dataset(data_dir)
    layout = ds.attrs.get("layout")
    if layout is not None and layout != config.dataset:
        raise ConfigError(
            f"dataset: the config says {config.dataset!r} but {data_dir} has the "
            f"{layout!r} layout"
        )
    feat_meta = fs.meta.reset_index(drop=True)
    row_of = pd.Series(np.arange(len(feat_meta)), index=feat_meta["filename"].astype(str))
    if row_of.index.has_duplicates:
        raise FeatureError(f"{feature_path}: duplicate filenames in the feature file")

    meta = pd.DataFrame({
        "filename": ds["filename"].astype(str).to_numpy(),
        "device": ds["source_label"].astype(str).to_numpy(),
        "scene_label": ds["scene_label"].astype(str).to_numpy(),
        "identifier": ds["identifier"].astype(str).to_numpy(),
        "segment": ds["segment"].astype(int).to_numpy(),
        "split": ds["split"].astype(str).to_numpy(),
    })
    all_eval = meta[meta["split"] == "evaluate"].reset_index(drop=True)
    meta = meta[meta["device"].isin(config.eval_devices)]
    missing = sorted(set(meta["filename"]) - set(row_of.index))
    if missing:
        raise FeatureError(
            f"{feature_path}: {len(missing)} clips of {data_dir} are missing from the "
            f"feature file (first: {missing[0]}); re-extract the features"
        )
    train_meta = meta[meta["split"] == "train"]
    eval_meta = meta[meta["split"] == "evaluate"]
    for name, part in (("train", train_meta), ("evaluate", eval_meta)):
        if part.empty:
            raise FeatureError(
                f"{data_dir}: no {name} clips for devices {', '.join(config.eval_devices)}"
            )

    holdout_meta = None
    if config.uses_holdout:
        mask = holdout_mask(train_meta["device"].to_numpy(), config.holdout_fraction,
                            config.seed)
        holdout_meta, train_meta = train_meta[mask], train_meta[~mask]

    t = config.max_frames

    def take(part: pd.DataFrame) -> np.ndarray:
        x = fs.feature[row_of.loc[part["filename"]].to_numpy()]
        return x[:, :t] if t is not None else x

    train_x = take(train_meta)
    mean, std = fit_standardiser(train_x)  # training clips only (held-out excluded)
    eval_x = take(eval_meta)
    eval_meta = eval_meta.reset_index(drop=True)
    # the parallel recording is chosen among all devices, so a single-device run shows
    # the same recordings as the others
    chosen = all_eval["filename"].iloc[attention_clips(all_eval, config.eval_devices)]
    position = pd.Series(np.arange(len(eval_meta)), index=eval_meta["filename"])
    att = position.loc[chosen].to_numpy(np.int64)
    return RunData(
        train=_split(train_x, train_meta, mean, std),
        evaluate=_split(eval_x, eval_meta, mean, std),
        holdout=None if holdout_meta is None else _split(take(holdout_meta), holdout_meta,
                                                         mean, std),
        mean=mean,
        std=std,
        attention_index=att,
        attention_logmel=eval_x[att].copy(),
    )


def device_counts(split: Split) -> dict[str, int]:
    """Clips per device letter (for logging and tests)."""
    return {d: int((split.device == i).sum()) for i, d in enumerate(DEVICES)}
