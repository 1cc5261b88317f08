"""Helpers for the data chapter (notebook 01): counts, a parallel recording, device spectra.

The paper's problem is a device shift: the same scene, recorded at the same moment by
the in-ear device A and the phones B and C, looks different in the log-mel domain. These
helpers make that visible on any dataset in the DCASE layout (real or synthetic): how
many clips each device has, one recording heard by all three devices, and the average
log-mel spectrum per device. They live here, not in the notebook, so tests reach them.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .constants import DEVICES, SCENES
from .errors import DatasetError

SPLITS: tuple[str, ...] = ("train", "evaluate")


def clip_counts(meta: pd.DataFrame) -> pd.DataFrame:
    """Clips per scene (rows) and split/device (columns), with totals.

    ``meta`` is :func:`caalib.datasets.read_dataset`'s frame. Clips in no split (the
    2019 Milan clips) get a column of their own so nothing is silently dropped.
    """
    missing = [c for c in ("scene_label", "source_label", "split") if c not in meta.columns]
    if missing:
        raise DatasetError(f"clip table lacks column(s) {missing}")
    split = meta["split"].fillna("").replace("", "none")
    splits = [s for s in (*SPLITS, "none") if (split == s).any()]
    table = pd.crosstab(meta["scene_label"], [split, meta["source_label"]])
    cols = [(s, d) for s in splits for d in DEVICES if (s, d) in table.columns]
    rows = [s for s in SCENES if s in table.index]
    table = table.reindex(index=rows, columns=pd.MultiIndex.from_tuples(cols)).fillna(0)
    table = table.astype(int)
    table.index.name = "scene"
    table.columns.names = ["split", "device"]
    table.loc["total"] = table.sum(axis=0)
    table[("all", "all")] = table.sum(axis=1)
    return table


def device_split_counts(meta: pd.DataFrame) -> pd.DataFrame:
    """Clips per device (rows) and split (columns): the imbalance the paper blames."""
    split = meta["split"].fillna("").replace("", "none")
    table = pd.crosstab(meta["source_label"], split).reindex(index=list(DEVICES)).fillna(0)
    order = [s for s in (*SPLITS, "none") if s in table.columns]
    table = table[order].astype(int)
    table["all"] = table.sum(axis=1)
    table.index.name = "device"
    return table


def recording_key(meta: pd.DataFrame) -> pd.Series:
    """scene-city-location-segment: the same key for a clip and its parallel twins."""
    if "segment" in meta.columns and "identifier" in meta.columns:
        return (meta["scene_label"].astype(str) + "-" + meta["identifier"].astype(str)
                + "-" + meta["segment"].astype(str))
    # Fall back on the file name: audio/<scene>-<city>-<loc>-<segment>-<device>.wav
    return meta["filename"].map(lambda f: Path(str(f)).stem.rsplit("-", 1)[0])


def parallel_recordings(meta: pd.DataFrame, split: str | None = "evaluate") -> pd.DataFrame:
    """Rows of every recording present on all three devices, ordered by key then device."""
    rows = meta if split is None else meta[meta["split"] == split]
    key = recording_key(rows)
    full = key.groupby(key).transform("size") == len(DEVICES)
    has_all = rows.assign(recording=key)[full & rows.groupby(key)["source_label"]
                                          .transform("nunique").eq(len(DEVICES))]
    dev_order = has_all["source_label"].map({d: i for i, d in enumerate(DEVICES)})
    return (has_all.assign(_d=dev_order).sort_values(["recording", "_d"])
            .drop(columns="_d").reset_index(drop=True))


def pick_parallel_recording(meta: pd.DataFrame, scene: str | None = None,
                            split: str | None = "evaluate") -> pd.DataFrame:
    """One recording heard by devices A, B and C (three rows, in device order).

    Picks the first recording (by key) of ``scene``, or of any scene when ``scene`` is
    None, so the choice is the same every run.
    """
    par = parallel_recordings(meta, split)
    if scene is not None:
        if scene not in SCENES:
            raise ValueError(f"unknown scene {scene!r}")
        par = par[par["scene_label"] == scene]
    if par.empty:
        where = f" of scene {scene!r}" if scene else ""
        raise DatasetError(f"no recording{where} in split {split!r} is present on all "
                           f"three devices {DEVICES}")
    first = par["recording"].iloc[0]
    return par[par["recording"] == first].reset_index(drop=True)


def read_parallel(data_dir: str | os.PathLike[str], rows: pd.DataFrame) -> dict[str, Any]:
    """Audio (mono, at the feature rate) and reference log-mels of the given clips.

    Returns ``{"device": [...], "filename": [...], "audio": [...], "sr": int,
    "logmel": [(T, 64), ...]}``; the log-mel is the study's oracle recipe.
    """
    from .constants import FEATURE_SAMPLE_RATE
    from .features import read_clip, reference_logmel

    sr = FEATURE_SAMPLE_RATE
    out: dict[str, Any] = {"device": [], "filename": [], "audio": [], "logmel": [], "sr": sr}
    for _, row in rows.iterrows():
        audio, _silent = read_clip(Path(data_dir) / row["filename"])  # mono, 44.1 kHz
        out["device"].append(str(row["source_label"]))
        out["filename"].append(str(row["filename"]))
        out["audio"].append(np.asarray(audio, dtype=np.float32))
        out["logmel"].append(reference_logmel(audio, sr))
    return out


def device_mean_spectrum(feature: np.ndarray, meta: pd.DataFrame,
                         rows: np.ndarray | pd.Series | None = None) -> pd.DataFrame:
    """Average log-mel per mel bin (rows) and device (columns) over frames and clips.

    ``feature`` (N, T, F) and ``meta`` (N rows, ``source_label``) come from
    :func:`caalib.features.load_features`. ``rows`` (a boolean mask or indices)
    restricts the average, e.g. to parallel recordings so that every device averages
    the very same scenes and moments and only the device differs.
    """
    if len(meta) != feature.shape[0]:
        raise ValueError(f"{feature.shape[0]} feature rows but {len(meta)} meta rows")
    dev = meta["source_label"].astype(str).to_numpy()
    idx = np.arange(len(meta)) if rows is None else np.arange(len(meta))[np.asarray(rows)]
    per_clip = feature[idx].mean(axis=1)  # (n, F)
    cols = {}
    for d in DEVICES:
        sel = dev[idx] == d
        if sel.any():
            cols[d] = per_clip[sel].mean(axis=0)
    out = pd.DataFrame(cols)
    out.index.name = "mel_bin"
    return out


def device_shift(spectrum: pd.DataFrame, reference: str = "a") -> pd.DataFrame:
    """Each device's mean log-mel minus the reference device's, per mel bin."""
    return spectrum.sub(spectrum[reference], axis=0).drop(columns=reference)


def parallel_mask(meta: pd.DataFrame, split: str | None = None) -> np.ndarray:
    """Boolean mask over ``meta`` of the clips that belong to a three-device recording.

    ``meta`` needs ``filename`` and ``source_label`` (the feature file's meta suffices);
    ``split`` restricts to one split when ``meta`` has a ``split`` column.
    """
    key = recording_key(meta)
    ok = meta.groupby(key)["source_label"].transform("nunique").eq(len(DEVICES)).to_numpy()
    if split is not None and "split" in meta.columns:
        ok &= (meta["split"] == split).to_numpy()
    return ok


def plot_parallel(rec: dict[str, Any]) -> Any:
    """Waveforms (top row) and log-mels (bottom row) of one recording on each device."""
    import matplotlib.pyplot as plt

    n = len(rec["device"])
    fig, axes = plt.subplots(2, n, figsize=(4.2 * n, 5.2), squeeze=False,
                             constrained_layout=True)
    vmin = min(float(m.min()) for m in rec["logmel"])
    vmax = max(float(m.max()) for m in rec["logmel"])
    for j in range(n):
        audio, mel = rec["audio"][j], rec["logmel"][j]
        t = np.arange(len(audio)) / rec["sr"]
        axes[0, j].plot(t, audio, lw=0.3, color="tab:blue")
        axes[0, j].set_title(f"device {rec['device'][j].upper()}: "
                             f"{Path(rec['filename'][j]).name}", fontsize=9)
        axes[0, j].set_xlabel("time (s)")
        im = axes[1, j].imshow(mel.T, origin="lower", aspect="auto", cmap="magma",
                               vmin=vmin, vmax=vmax)
        axes[1, j].set_xlabel("frame")
        axes[1, j].set_ylabel("mel bin")
    axes[0, 0].set_ylabel("amplitude")
    fig.colorbar(im, ax=axes[1, :].tolist(), label="log-mel (shared scale)")
    return fig


def plot_device_spectra(spectrum: pd.DataFrame, title: str = "") -> Any:
    """Mean log-mel per device (left) and each device's difference to device A (right)."""
    import matplotlib.pyplot as plt

    fig, (ax, ax_d) = plt.subplots(1, 2, figsize=(11, 3.6), constrained_layout=True)
    for dev in spectrum.columns:
        ax.plot(spectrum.index, spectrum[dev], label=f"device {dev.upper()}")
    ax.set_xlabel("mel bin")
    ax.set_ylabel("mean log-mel")
    ax.legend()
    ax.set_title(title or "average log-mel spectrum per device", fontsize=10)
    if "a" in spectrum.columns and spectrum.shape[1] > 1:
        shift = device_shift(spectrum)
        for dev in shift.columns:
            ax_d.plot(shift.index, shift[dev], label=f"{dev.upper()} - A")
        ax_d.axhline(0, color="grey", lw=0.8)
        ax_d.legend()
    ax_d.set_xlabel("mel bin")
    ax_d.set_ylabel("difference in log-mel")
    ax_d.set_title("device shift relative to device A", fontsize=10)
    return fig


# -- helpers of the significance chapter (notebook 05) ---------------------------------

#: The comparisons notebook 05 makes between training strategies of one model.
STRATEGY_PAIRS: tuple[tuple[str, str], ...] = (
    ("multi_task", "single"),
    ("multi_task", "joint"),
    ("teacher_forcing", "joint"),
    ("multi_task", "teacher_forcing"),
)


def pick_runs(runs: pd.DataFrame, topology: str, pooling: str, strategy: str,
              dataset: str = "dcase2018") -> pd.DataFrame:
    """The runs of one model and strategy, one per device for ``single``, lowest seed.

    Conditioned strategies use the paper's best layer (Table I) when such a run exists,
    as Table II does; otherwise the lowest layer present.
    """
    from .results.paper import PAPER_BEST_LAYERS

    sel = runs[(runs["dataset"] == dataset) & (runs["topology"] == topology)
               & (runs["pooling"] == pooling) & (runs["strategy"] == strategy)]
    if sel.empty:
        return sel
    if strategy in ("teacher_forcing", "multi_task"):
        layer = PAPER_BEST_LAYERS.get((topology, pooling))
        layers = sorted(int(v) for v in sel["cond_layer"].dropna().unique())
        chosen = layer if layer in layers else (layers[0] if layers else None)
        sel = sel[sel["cond_layer"] == chosen]
    sel = sel.sort_values("seed", kind="stable")
    if strategy == "single":
        return sel.drop_duplicates("train_device").sort_values("train_device")
    return sel.head(1)


def _avg(sel: pd.DataFrame, strategy: str) -> float:
    if strategy == "single":  # three runs, each on its own device (Table II's row)
        vals = [sel.loc[sel["train_device"] == d, f"acc_{d}"] for d in DEVICES]
        vals = [float(v.iloc[0]) for v in vals if len(v)]
        return float(np.mean(vals)) if len(vals) == len(DEVICES) else float("nan")
    return float(sel["acc_avg"].iloc[0])


def _n_eval(run_dir: str | os.PathLike[str]) -> dict[str, int]:
    from .rundir import read_metrics

    return {k: int(v) for k, v in read_metrics(run_dir)["n_eval"].items()}


def strategy_tests(runs: pd.DataFrame, dataset: str = "dcase2018") -> pd.DataFrame:
    """Our runs tested like the paper (one-tailed z on Avg) and paired (exact McNemar).

    For every model with runs of both strategies of a pair in :data:`STRATEGY_PAIRS`:
    a one-tailed two-proportion z-test of the Avg accuracies with n = all evaluate
    clips (the paper's kind of test, which ignores that both systems saw the same
    clips), and two-sided exact McNemar tests on the per-clip predictions, per device
    (single-device runs only cover their own device) and, where both runs cover every
    device, on all clips. Accuracies are fractions. Pairs with a missing run are left
    out; an empty frame means no pair could be formed.
    """
    from .stats import mcnemar_exact, pair_predictions, read_predictions, ztest_proportions

    cols = ["model", "topology", "pooling", "run1", "run2", "strategy1", "strategy2", "test",
            "device", "acc1", "acc2", "n", "b", "c", "z", "p", "alternative"]
    rows: list[dict[str, Any]] = []
    models = runs.loc[runs["dataset"] == dataset, ["topology", "pooling"]].drop_duplicates()
    for topology, pooling in models.itertuples(index=False):
        model = f"{topology}+{pooling}"
        for s1, s2 in STRATEGY_PAIRS:
            r1 = pick_runs(runs, topology, pooling, s1, dataset)
            r2 = pick_runs(runs, topology, pooling, s2, dataset)
            if r1.empty or r2.empty:
                continue
            base = {"model": model, "topology": topology, "pooling": pooling,
                    "strategy1": s1, "strategy2": s2}
            a1, a2 = _avg(r1, s1), _avg(r2, s2)
            n = sum(_n_eval(r1["path"].iloc[0]).values())
            if np.isfinite(a1) and np.isfinite(a2) and n > 0:
                z = ztest_proportions(a1, a2, n, n, "greater")
                rows.append({**base, "run1": r1["name"].iloc[0], "run2": ", ".join(r2["name"]),
                             "test": "z (one-tailed, Avg)", "device": "avg", "acc1": a1,
                             "acc2": a2, "n": n, "z": z.z, "p": z.p, "alternative": "greater"})
            p1 = read_predictions(r1["path"].iloc[0]) if s1 != "single" else None
            preds2 = {d: read_predictions(p) for d, p in
                      zip(r2["train_device"], r2["path"], strict=True)} if s2 == "single" else {
                      None: read_predictions(r2["path"].iloc[0])}
            if p1 is None:
                continue
            merged_all = []
            name1 = r1["name"].iloc[0]
            for key, p2 in preds2.items():
                name2 = (r2["name"].iloc[0] if key is None
                         else r2.loc[r2["train_device"] == key, "name"].iloc[0])
                m = pair_predictions(p1, p2, name1, name2, device=key)  # same clips
                merged_all.append(m)
                for dev in DEVICES if key is None else (key,):
                    md = m[m["device_1"] == dev]
                    if md.empty:
                        continue
                    mc = mcnemar_exact(md["correct_1"], md["correct_2"], "two-sided")
                    rows.append({**base, "run1": r1["name"].iloc[0],
                                 "run2": r2["name"].iloc[0] if key is None else
                                 r2.loc[r2["train_device"] == key, "name"].iloc[0],
                                 "test": "McNemar (exact)", "device": dev,
                                 "acc1": float(md["correct_1"].mean()),
                                 "acc2": float(md["correct_2"].mean()), "n": len(md),
                                 "b": mc.b, "c": mc.c, "p": mc.p, "alternative": "two-sided"})
            m = pd.concat(merged_all, ignore_index=True)
            if set(m["device_1"]) == set(DEVICES) and s2 != "single":
                mc = mcnemar_exact(m["correct_1"], m["correct_2"], "two-sided")
                rows.append({**base, "run1": r1["name"].iloc[0], "run2": r2["name"].iloc[0],
                             "test": "McNemar (exact)", "device": "all",
                             "acc1": float(m["correct_1"].mean()),
                             "acc2": float(m["correct_2"].mean()), "n": len(m), "b": mc.b,
                             "c": mc.c, "p": mc.p, "alternative": "two-sided"})
    return pd.DataFrame(rows, columns=cols)


def bootstrap_runs(runs: pd.DataFrame, n_resamples: int = 1000, seed: int = 0,
                   confidence_level: float = 0.95) -> pd.DataFrame:
    """A percentile bootstrap CI of each run's headline accuracy from its predictions.

    The headline is Avg for runs evaluated on all devices and the run's own device for
    single-device runs (fractions; "accuracy" is the macro accuracy of the metric).
    """
    from .constants import SCENE_INDEX
    from .stats import bootstrap_macro_accuracy, read_predictions

    rows = []
    for run in runs.itertuples(index=False):
        pred = read_predictions(run.path)
        key = run.train_device if run.strategy == "single" and run.train_device else "avg"
        ci = bootstrap_macro_accuracy(
            pred["scene_label"].map(SCENE_INDEX), pred["predicted"].map(SCENE_INDEX),
            pred["device"], key=key, n_resamples=n_resamples, seed=seed,
            confidence_level=confidence_level)
        rows.append({"run": run.name, "topology": run.topology, "pooling": run.pooling,
                     "strategy": run.strategy, "train_device": run.train_device,
                     "cond_layer": run.cond_layer, "device": key, "accuracy": ci.estimate,
                     "ci_low": ci.low, "ci_high": ci.high, "n_clips": len(pred)})
    return pd.DataFrame(rows, columns=["run", "topology", "pooling", "strategy", "train_device",
                                       "cond_layer", "device", "accuracy", "ci_low",
                                       "ci_high", "n_clips"])


# -- helpers of the receptive-field chapter (notebook 02) ------------------------------

def receptive_field_table(measure: bool = True) -> pd.DataFrame:
    """Per topology and block: exact RF, the paper's formula and (optionally) the measured RF.

    ``rf_time``/``rf_freq`` (what :func:`caalib.results.figures.receptive_field_figure`
    draws) are the measured sizes when ``measure`` is true, else the analytic ones, so
    the figure shows what the networks really see.
    """
    from .receptive_field import measured_receptive_fields, receptive_field_rows

    table = pd.DataFrame(receptive_field_rows())
    if measure:
        sizes = {}
        for topology in table["topology"].unique():
            for m in measured_receptive_fields(topology):
                sizes[(topology, m.block)] = (*m.size, m.filled)
        keys = list(zip(table["topology"], table["block"], strict=True))
        table["measured_time"] = [sizes[k][0] for k in keys]
        table["measured_freq"] = [sizes[k][1] for k in keys]
        table["measured_filled"] = [sizes[k][2] for k in keys]
        table["rf_time"], table["rf_freq"] = table["measured_time"], table["measured_freq"]
    else:
        table["rf_time"], table["rf_freq"] = table["block_rf"], table["block_rf"]
    return table


def example_logmel(data_dir: str | os.PathLike[str], scene: str | None = None,
                   device: str = "a") -> tuple[str, np.ndarray]:
    """(filename, log-mel (T, 64)) of one evaluate clip of a parallel recording."""
    from .datasets import read_dataset

    rows = pick_parallel_recording(read_dataset(data_dir), scene=scene)
    rec = read_parallel(data_dir, rows[rows["source_label"] == device])
    return rec["filename"][0], rec["logmel"][0]


# -- helpers of the figures chapter (notebook 06) --------------------------------------

def headline_run(runs: pd.DataFrame, dataset: str = "dcase2018") -> pd.Series:
    """The run behind Figs. 6 and 7: multi-task atrous + attention (the paper's CAA-Net).

    Falls back on the best multi-task run with an attention head by Avg when the
    CAA-Net run is missing, and raises a CaaError naming what is missing otherwise.
    """
    from .errors import CaaError

    caa = pick_runs(runs, "atrous", "att", "multi_task", dataset)
    if not caa.empty:
        return caa.iloc[0]
    mt = runs[(runs["dataset"] == dataset) & (runs["strategy"] == "multi_task")
              & runs["pooling"].isin(["att", "roi+att"])].sort_values("acc_avg", ascending=False)
    if mt.empty:
        raise CaaError(f"no finished multi-task run with an attention head on {dataset}: "
                       "train the plan's runs first (notebook 03)")
    return mt.iloc[0]
