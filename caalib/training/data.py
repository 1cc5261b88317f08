"""The arrays one run trains and evaluates on, and the order it sees them in.

Everything a run needs is held in memory (the paper-size DCASE 2018 cache is about
0.8 GB), so data loading is never the bottleneck and the batch order can be a pure
function of ``(seed, iteration)``: a resumed run needs no sampler state to continue
exactly where it stopped.

A sweep loads each feature file and the dataset's table once per process, not once per
run (`data_reuse`, `set_data_reuse`): the loaded arrays are kept, keyed by the file's
stat and content fingerprint, and every run still checks that nothing changed.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from functools import lru_cache
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..constants import ALL_DEVICES, DEVICE_INDEX, DEVICES, SCENE_INDEX, SCENES
from ..errors import ConfigError, FeatureError
from .config import TrainConfig


@dataclass
class Split:
    """Standardised features and labels of one subset of clips."""

    x: np.ndarray  # (N, T, F) float32, standardised
    scene: np.ndarray  # (N,) int64
    source: np.ndarray  # (N,) int64: the recording device's index in DEVICES
    meta: pd.DataFrame  # filename, source (letter), scene_label, identifier, segment

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
def holdout_mask(sources: np.ndarray, fraction: float, seed: int) -> np.ndarray:
    """A ``fraction`` of the rows of each source, drawn by ``seed``, as a boolean mask.

    Stratified by source so the held-out device accuracy weighs A, B and C as the
    training data does; each source with at least two clips keeps one out and one in.
    """
    rng = np.random.default_rng([seed, 1_000_003])
    mask = np.zeros(len(sources), dtype=bool)
    for dev in np.unique(sources):
        rows = np.flatnonzero(sources == dev)
        if len(rows) < 2:
            continue
        k = min(len(rows) - 1, max(1, int(round(fraction * len(rows)))))
        mask[rng.choice(rows, size=k, replace=False)] = True
    return mask


#: Parallel recordings per scene whose attention maps a run keeps: enough for the heat-map
#: browser to offer a choice of clips per (scene, device), few enough that a paper-size run's
#: attention.npz stays tens of MB (each clip holds a map per class).
ATTENTION_RECORDINGS_PER_SCENE = 3


def attention_clips(meta: pd.DataFrame, sources: tuple[str, ...],
                    per_scene: int = ATTENTION_RECORDINGS_PER_SCENE) -> np.ndarray:
    """Rows of ``meta`` (the evaluate split) whose attention maps a run keeps.

    For each scene, up to ``per_scene`` parallel recordings: the ``(identifier, segment)``
    groups present on the most sources, ties in sorted order (so the first is the first
    recording heard by all three sources, the one Fig. 7 draws), then each recording's
    clips on ``sources`` in source order.
    """
    if per_scene < 1:
        raise ValueError(f"per_scene must be at least 1, got {per_scene}")
    rows: list[int] = []
    for scene in SCENES:
        sub = meta[meta["scene_label"] == scene]
        if sub.empty:
            continue
        groups = sub.groupby(["identifier", "segment"], sort=True)["source"].agg(set)
        ranked = sorted(range(len(groups)), key=lambda k: (-len(groups.iloc[k]), k))
        for k in ranked[:per_scene]:
            ident, seg = groups.index[k]
            for dev in sources:
                hit = sub.index[(sub["identifier"] == ident) & (sub["segment"] == seg)
                                & (sub["source"] == dev)]
                rows.extend(int(meta.index.get_loc(i)) for i in hit[:1])
    return np.asarray(rows, dtype=np.int64)


# ---------------------------------------------------------------------- per-process reuse
#: Feature files a process keeps loaded while reuse is on (the paper-size DCASE 2018 file
#: is about 0.8 GB; a sweep's runs share one file per resampler).
MAX_KEPT_FEATURE_FILES = 1
_MAX_KEPT_TABLES = 2
_MAX_KEPT_VERIFICATIONS = 8

Stamp = tuple[Any, ...]


@dataclass
class _FeatureSource:
    """What a run reads of a feature file: its features (read-only), attributes and the
    row of each clip name."""

    feature: np.ndarray
    attrs: dict[str, Any]
    row_of: pd.Series
    stamp: Stamp | None = None


@dataclass
class _TableSource:
    """What a run reads of the dataset: one row per clip of meta.csv, and its layout."""

    meta: pd.DataFrame
    layout: str | None
    stamp: Stamp | None = None
    attention: dict[tuple[str, ...], np.ndarray] = field(default_factory=dict)


_lock = threading.RLock()
_reuse = False
_features: OrderedDict[str, _FeatureSource] = OrderedDict()
_tables: OrderedDict[str, _TableSource] = OrderedDict()
_verified: OrderedDict[tuple[str, str], tuple[Stamp, str]] = OrderedDict()


def set_data_reuse(enabled: bool = True) -> None:
    """Keep loaded feature files and dataset tables in this process between runs
    (``enabled``), or drop them and load afresh for every run (the default).

    A sweep's worker processes call this at start (``ProcessPoolExecutor(initializer=)``).
    """
    global _reuse
    with _lock:
        _reuse = bool(enabled)
        if not _reuse:
            clear_data_cache()


@contextmanager
def data_reuse() -> Iterator[None]:
    """Reuse loaded data in this process inside the block (a sweep's ``jobs=1`` path);
    what was kept is dropped at the end unless reuse was on before."""
    before = _reuse
    set_data_reuse(True)
    try:
        yield
    finally:
        set_data_reuse(before)


def clear_data_cache() -> None:
    """Drop every feature file, dataset table and verification this process keeps."""
    with _lock:
        _features.clear()
        _tables.clear()
        _verified.clear()


def _stat_row(path: Path) -> tuple[int, int, int, int] | None:
    from ..features.pipeline import stat_row

    try:
        return stat_row(os.stat(path))
    except OSError:
        return None


def _feature_stamp(path: Path) -> Stamp | None:
    """The file's stat and recorded content fingerprint; None when unreadable. An atomic
    re-extraction (a new inode) or any write moves it."""
    import h5py

    row = _stat_row(path)
    if row is None:
        return None
    try:
        with h5py.File(path, "r") as h5:
            fp = h5.attrs.get("fingerprint")
    except Exception:  # damaged or foreign: load_features names the problem
        return None
    return row, None if fp is None else str(fp)


def _table_stamp(data_dir: Path) -> Stamp:
    """The stat of every file the dataset table is read from: meta.csv and the files of
    ``evaluation_setup/`` (and the folder itself, which moves when one is added)."""
    setup = data_dir / "evaluation_setup"
    try:
        files = sorted(setup.iterdir()) if setup.is_dir() else []
    except OSError:  # unreadable: read_dataset reports it
        files = []
    return (_stat_row(data_dir / "meta.csv"), _stat_row(setup),
            tuple((p.name, _stat_row(p)) for p in files))


def _remember(cache: OrderedDict, key: Any, value: Any, limit: int) -> None:
    cache[key] = value
    cache.move_to_end(key)
    while len(cache) > limit:
        cache.popitem(last=False)


def _read_features(path: Path) -> _FeatureSource:
    from ..features import load_features

    fs = load_features(path)
    feature = fs.feature
    feature.setflags(write=False)  # shared by the runs of this process
    feat_meta = fs.meta.reset_index(drop=True)
    row_of = pd.Series(np.arange(len(feat_meta)), index=feat_meta["filename"].astype(str))
    return _FeatureSource(feature=feature, attrs=fs.attrs, row_of=row_of)


def _kept(cache: OrderedDict, key: str, stamp_of: Any, read: Any, limit: int) -> Any:
    """``read()`` through ``cache`` while reuse is on: a kept copy is served while
    ``stamp_of()`` is what it was read with; otherwise the stale copy (and the oldest, down
    to ``limit``) is freed before reading, and the new copy kept only if its stamp did not
    move while it was read."""
    if not _reuse:
        return read()
    with _lock:
        stamp = stamp_of()
        hit = cache.get(key)
        if hit is not None and stamp is not None and hit.stamp == stamp:
            cache.move_to_end(key)
            return hit
        cache.pop(key, None)  # free the stale copy before reading the new one
        while len(cache) >= limit:
            cache.popitem(last=False)
        source = read()
        if stamp is not None and stamp_of() == stamp:  # not changed while read
            source.stamp = stamp
            _remember(cache, key, source, limit)
        return source


def _feature_source(path: Path) -> _FeatureSource:
    """The feature file at ``path``: from this process's cache while reuse is on and the
    file's stat and fingerprint are those it was read with, else read (and kept)."""
    return _kept(_features, str(path.resolve()), lambda: _feature_stamp(path),
                 lambda: _read_features(path), MAX_KEPT_FEATURE_FILES)


def _read_table(data_dir: Path) -> _TableSource:
    from ..datasets import read_dataset

    ds = read_dataset(data_dir)
    meta = pd.DataFrame({
        "filename": ds["filename"].astype(str).to_numpy(),
        "source": ds["source_label"].astype(str).to_numpy(),
        "scene_label": ds["scene_label"].astype(str).to_numpy(),
        "identifier": ds["identifier"].astype(str).to_numpy(),
        "segment": ds["segment"].astype(int).to_numpy(),
        "split": ds["split"].astype(str).to_numpy(),
    })
    return _TableSource(meta=meta, layout=ds.attrs.get("layout"))


def _table_source(data_dir: Path) -> _TableSource:
    """The dataset table of ``data_dir``, kept like `_feature_source` while reuse is on
    (keyed by the stat of meta.csv and the fold files)."""
    return _kept(_tables, str(data_dir.resolve()), lambda: _table_stamp(data_dir),
                 lambda: _read_table(data_dir), _MAX_KEPT_TABLES)


def verified_fingerprint(feature_path: str | Path, data_dir: str | Path) -> str:
    """`caalib.features.verify_features`: the feature file's content fingerprint after
    checking that it describes ``data_dir`` as it is now.

    While reuse is on, a check passed in this process is taken again as long as the
    feature file, meta.csv, the fold files and every listed clip keep the stat (size,
    mtime, ctime, inode) they had before it - the trust the feature file itself puts in
    a clip's recorded stat; anything else is checked in full again.
    """
    from ..features import verify_features

    feature_path, data_dir = Path(feature_path), Path(data_dir)
    if not _reuse:
        return verify_features(feature_path, data_dir)
    key = (str(feature_path.resolve()), str(data_dir.resolve()))
    with _lock:
        stamp = _verification_stamp(feature_path, data_dir)  # before the check: a
        hit = _verified.get(key)  # change made while it runs is seen by the next run
        if stamp is not None and hit is not None and hit[0] == stamp:
            _verified.move_to_end(key)
            return hit[1]
        _verified.pop(key, None)
        fp = verify_features(feature_path, data_dir)
        if stamp is not None:
            _remember(_verified, key, (stamp, fp), _MAX_KEPT_VERIFICATIONS)
        return fp


def _verification_stamp(feature_path: Path, data_dir: Path) -> Stamp | None:
    """The stat of everything `verify_features` reads; None where something is missing or
    unreadable (the full check then names it)."""
    try:
        names = _table_source(data_dir).meta["filename"]
    except Exception:  # verify_features reports the problem
        return None
    feature = _feature_stamp(feature_path)
    clips = tuple(_stat_row(data_dir / n) for n in names)
    if feature is None or None in clips:
        return None
    return feature, _table_stamp(data_dir), clips


# ---------------------------------------------------------------------- loading
def _split(x: np.ndarray, meta: pd.DataFrame, mean: np.ndarray, std: np.ndarray) -> Split:
    from ..features import standardise

    return Split(
        x=np.ascontiguousarray(standardise(x, mean, std)),
        scene=meta["scene_label"].map(SCENE_INDEX).to_numpy(np.int64),
        source=meta["source"].map(DEVICE_INDEX).to_numpy(np.int64),
        meta=meta.reset_index(drop=True),
    )


def load_run_data(config: TrainConfig, feature_path: str | Path, data_dir: str | Path) -> RunData:
    """Select, crop and standardise the clips of ``config`` from the feature cache.

    The split comes from the dataset's fold files (``read_dataset``); the features from
    the cache. Standardisation statistics are fitted on the clips the run trains on
    (held-out clips excluded) and applied to every subset.
    """
    from ..features import fit_standardiser

    feature_path, data_dir = Path(feature_path), Path(data_dir)
    if not feature_path.exists():
        raise FeatureError(f"{feature_path}: feature file not found")
    fs = _feature_source(feature_path)
    made_with = fs.attrs.get("resampler")
    if made_with != config.resampler:
        raise FeatureError(
            f"{feature_path}: made with resampler {made_with!r} (recipe version "
            f"{fs.attrs.get('recipe_version')!r}), but the run asks for "
            f"{config.resampler!r}; re-extract it (caa features --resampler "
            f"{config.resampler} --force)"
        )
    table = _table_source(data_dir)
    layout = table.layout
    if layout is not None and layout != config.dataset:
        raise ConfigError(
            f"dataset: the config says {config.dataset!r} but {data_dir} has the "
            f"{layout!r} layout"
        )
    row_of = fs.row_of
    if row_of.index.has_duplicates:
        raise FeatureError(f"{feature_path}: duplicate filenames in the feature file")

    meta = table.meta[table.meta["source"].isin(config.eval_sources)]
    missing = sorted(set(meta["filename"]) - set(row_of.index))
    if missing:
        raise FeatureError(
            f"{feature_path}: {len(missing)} clips of {data_dir} are missing from the "
            f"feature file (first: {missing[0]}); re-extract the features"
        )
    # training never sees a device the model has no slot for (the 2020 layout's S4-S6)
    train_meta = meta[(meta["split"] == "train") & meta["source"].isin(config.train_sources)]
    eval_meta = meta[meta["split"] == "evaluate"]
    for name, part, sources in (("train", train_meta, config.train_sources),
                                ("evaluate", eval_meta, config.eval_sources)):
        if part.empty:
            raise FeatureError(
                f"{data_dir}: no {name} clips for sources {', '.join(sources)}"
            )

    holdout_meta = None
    if config.uses_holdout:
        mask = holdout_mask(train_meta["source"].to_numpy(), config.holdout_fraction,
                            config.seed)
        holdout_meta, train_meta = train_meta[mask], train_meta[~mask]

    t = config.max_frames

    def take(part: pd.DataFrame) -> np.ndarray:  # a copy: the cached array is shared
        x = fs.feature[row_of.loc[part["filename"]].to_numpy()]
        return x[:, :t] if t is not None else x

    train_x = take(train_meta)
    mean, std = fit_standardiser(train_x)  # training clips only (held-out excluded)
    eval_x = take(eval_meta)
    eval_meta = eval_meta.reset_index(drop=True)
    # the parallel recording is chosen among all sources, so a single-source run shows
    # the same recordings as the others
    chosen = table.attention.get(config.eval_sources)
    if chosen is None:
        all_eval = table.meta[table.meta["split"] == "evaluate"].reset_index(drop=True)
        chosen = all_eval["filename"].iloc[
            attention_clips(all_eval, config.eval_sources)].to_numpy()
        chosen.setflags(write=False)
        table.attention[config.eval_sources] = chosen
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


def source_counts(split: Split) -> dict[str, int]:
    """Clips per source letter (for logging and tests): A, B, C and any other present."""
    return {d: int((split.source == i).sum()) for i, d in enumerate(ALL_DEVICES)
            if d in DEVICES or (split.source == i).any()}
