"""The paper's figures redrawn from run directories, each with the data behind it.

Every function that writes a figure writes ``<name>.png``, ``<name>.pdf`` and
``<name>.csv`` (the plotted numbers) into ``out_dir`` atomically and returns their
paths. Scene names are spelled as in the paper (``caalib.constants.SCENE_TITLES``).
Besides Figs. 5-7 and the training curves (``caa figures``): the receptive fields over
a log-mel (``caa receptive-field``) and the device shift of the data (``caa
device-spectrum``), and two pictures notebook 01 only shows (:func:`plot_parallel`,
:func:`plot_device_spectra`). Which runs Figs. 6/7 and the curves come from is
:mod:`caalib.results.selection`'s rule.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..constants import DEVICES, SCENE_INDEX, SCENE_TITLES, SCENES
from ..errors import CaaError
from ..rundir import read_attention, read_history, read_metrics, runs_root
from .output import relocate, staged_output
from .paper import NETWORK_TITLES, NETWORKS, POOLINGS, load_paper_table
from .runs import load_runs
from .selection import FigureRuns, choose_dataset, curve_runs, figure_runs
from .spectra import device_shift
from .style import DEVICE_COLORS, DEVICE_LABELS, apply_style, plt, save_figure, sns

#: The paper's short pooling labels in Fig. 5.
POOLING_SHORT = {"flatten": "fla", "max": "max", "avg": "avg", "roi": "roi", "att": "att",
                 "roi+att": "r+a"}


def fig5_name(dataset: str) -> str:
    """The file name (without extension) of Fig. 5 of one dataset: ``fig5-<dataset>``."""
    return f"fig5-{dataset}"


#: Fig. 5's width: per group of bars (pooling x layer) of the fullest panel, and at least
#: enough for its legend, so a few models do not leave most of the figure empty.
FIG5_GROUP_WIDTH_IN = 0.95
FIG5_MIN_WIDTH_IN = 6.5
#: Legend text (points) of Figs. 5 and 6: legible at the exported size.
LEGEND_FONTSIZE = 9


def fig5(runs: pd.DataFrame, out_dir: str | Path, *, dataset: str = "dcase2018",
         name: str | None = None, paper_dir: str | Path | None = None) -> dict[str, Path]:
    """Accuracy per device for topology x pooling x conditioned layer (teacher forcing).

    One panel per topology; bars per device (mean over seeds), our Avg as a black dot and
    the paper's Table I Avg as a red cross (the paper prints Fig. 5's per-device numbers
    only as bars, so Avg is what can be compared). ``name`` defaults to
    :func:`fig5_name` (the name ``caa figures`` writes).
    """
    name = name or fig5_name(dataset)
    tf = runs[(runs["dataset"] == dataset) & (runs["strategy"] == "teacher_forcing")
              & runs["cond_layer"].notna()]
    if tf.empty:
        raise CaaError(f"no finished teacher-forcing runs on {dataset} to draw {name}")
    long = tf.melt(id_vars=["topology", "pooling", "cond_layer", "seed"],
                   value_vars=["acc_a", "acc_b", "acc_c", "acc_avg"], var_name="device",
                   value_name="accuracy")
    long["device"] = long["device"].str.removeprefix("acc_")
    long["accuracy"] = long["accuracy"] * 100
    data = (long.groupby(["topology", "pooling", "cond_layer", "device"])["accuracy"]
            .agg(accuracy="mean", std="std", n_seeds="count").reset_index()
            .rename(columns={"cond_layer": "layer"}))
    data["layer"] = data["layer"].astype(int)
    paper = load_paper_table("table1", paper_dir).rename(
        columns={"network": "topology", "accuracy": "paper_avg"})
    data = data.merge(paper, on=["topology", "pooling", "layer"], how="left")
    topologies = [t for t in NETWORKS if t in set(data["topology"])]
    groups_of = {
        topo: sorted({(p, layer) for p, layer in zip(d["pooling"], d["layer"], strict=True)},
                     key=lambda g: (POOLINGS.index(g[0]), g[1]))
        for topo, d in data.groupby("topology")}
    slots = max(len(g) for g in groups_of.values())  # bar groups of the fullest panel
    fig_width = max(FIG5_MIN_WIDTH_IN, 1.5 + FIG5_GROUP_WIDTH_IN * slots)
    apply_style()
    fig, axes = plt.subplots(len(topologies), 1,
                             figsize=(fig_width, 3.4 * len(topologies) + 0.8),
                             squeeze=False, sharey=True, layout="constrained")
    width = 0.26
    for ax, topo in zip(axes[:, 0], topologies, strict=True):
        d = data[data["topology"] == topo]
        groups = groups_of[topo]
        x = np.arange(len(groups))
        for k, dev in enumerate(DEVICES):
            vals = [_pick(d, g, dev, "accuracy") for g in groups]
            ax.bar(x + (k - 1) * width, vals, width, color=DEVICE_COLORS[dev],
                   label=DEVICE_LABELS[dev])
        ax.plot(x, [_pick(d, g, "avg", "accuracy") for g in groups], "o", color="black",
                label="Avg (ours)")
        ax.plot(x, [_pick(d, g, "avg", "paper_avg") for g in groups], "x", color="red",
                markersize=8, mew=2, label="Avg (paper, Table I)")
        ax.set_xticks(x, [f"{POOLING_SHORT[p]}\nL{layer}" for p, layer in groups])
        ax.set_title(NETWORK_TITLES.get(topo, topo))
        ax.set_ylabel("Accuracy [%]")
        ax.set_ylim(0, 100)
        ax.set_xlim(-0.6, slots - 0.4)  # the same bar width in every panel
    handles, labels = axes[0, 0].get_legend_handles_labels()
    fig.legend(handles, labels, ncol=5 if fig_width >= 8 else 3, loc="outside lower center",
               fontsize=LEGEND_FONTSIZE)
    fig.suptitle(f"Teacher forcing, conditioned layer L1-L4 ({dataset})")
    return save_figure(fig, out_dir, name, data)


def _pick(d: pd.DataFrame, group: tuple[str, int], dev: str, col: str) -> float:
    m = (d["pooling"] == group[0]) & (d["layer"] == group[1]) & (d["device"] == dev)
    return float(d.loc[m, col].iloc[0]) if m.any() else np.nan


def fig6(run_dir: str | Path, out_dir: str | Path, *, name: str = "fig6") -> dict[str, Path]:
    """Row-normalised confusion matrices on devices A, B and C of one run, annotated."""
    run_dir = Path(run_dir)
    conf = read_metrics(run_dir)["confusion"]  # checked: 10 x 10 counts per device
    devs = [d for d in DEVICES if d in conf]
    titles = [SCENE_TITLES[s] for s in SCENES]
    rows = []
    apply_style()
    # the colour bar gets an axis of its own, so the last matrix is as large as the others
    fig, axes = plt.subplots(1, len(devs) + 1, figsize=(6.0 * len(devs) + 0.9, 5.6),
                             squeeze=False,
                             gridspec_kw={"width_ratios": [1.0] * len(devs) + [0.05]})
    cbar_ax = axes[0, -1]
    for ax, dev in zip(axes[0, :-1], devs, strict=True):
        cm = np.asarray(conf[dev], dtype=float)
        with np.errstate(invalid="ignore", divide="ignore"):
            norm = cm / cm.sum(axis=1, keepdims=True)
        for i, t in enumerate(SCENES):
            for j, p in enumerate(SCENES):
                rows.append({"device": dev, "true": t, "predicted": p,
                             "count": int(cm[i, j]), "fraction": norm[i, j]})
        sns.heatmap(norm * 100, ax=ax, vmin=0, vmax=100, cmap="Blues", annot=True, fmt=".0f",
                    annot_kws={"size": 7}, cbar=dev == devs[-1], square=True,
                    cbar_ax=cbar_ax if dev == devs[-1] else None,
                    cbar_kws={"label": "% of the true class's clips"},
                    xticklabels=titles, yticklabels=titles if dev == devs[0] else False)
        ax.set_title(DEVICE_LABELS[dev])
        ax.set_xlabel("Predicted")
        if dev == devs[0]:
            ax.set_ylabel("True")
        ax.tick_params(axis="x", labelrotation=60)
    fig.suptitle(f"Confusion matrices [% of row], {run_dir.name}")
    return save_figure(fig, out_dir, name, pd.DataFrame(rows))


def fig7(run_dir: str | Path, out_dir: str | Path, *, name: str = "fig7") -> dict[str, Path]:
    """Attention heat maps: devices (rows) x scenes (columns), time across, mel bins up.

    Each panel is the attention map of the clip's *true* scene class (the map the paper
    shows "in each class of acoustic scene"), for the parallel recordings stored in
    attention.npz. The CSV lists each panel's clip and map statistics; the maps
    themselves are in attention.npz.
    """
    run_dir = Path(run_dir)
    z = read_attention(run_dir)  # checked: shapes, rows, scenes and sources
    att = z["attention"]
    devices, scenes, predicted = z["source"], z["scene_label"], z["predicted"]
    apply_style()
    fig, axes = plt.subplots(len(DEVICES), len(SCENES), figsize=(2.0 * len(SCENES), 5.4),
                             squeeze=False, sharex=True, sharey=True)
    rows = []
    vmax = float(np.nanmax(att)) if att.size else 1.0
    image = None
    for i, dev in enumerate(DEVICES):
        for j, scene in enumerate(SCENES):
            ax = axes[i, j]
            hit = np.flatnonzero((devices == dev) & (scenes == scene))
            if i == 0:
                ax.set_title(SCENE_TITLES[scene], fontsize="small")
            if j == 0:
                ax.set_ylabel(f"{DEVICE_LABELS[dev]}\nmel bin", fontsize="small")
            if i == len(DEVICES) - 1:
                ax.set_xlabel("frame", fontsize="small")
            if hit.size == 0:
                ax.text(0.5, 0.5, "n/a", ha="center", va="center", transform=ax.transAxes)
                ax.grid(False)
                continue
            k = int(hit[0])
            amap = att[k, SCENE_INDEX[scene]]  # (T', F')
            image = ax.imshow(amap.T, origin="lower", aspect="auto", cmap="jet",
                              vmin=0.0, vmax=vmax, interpolation="nearest")
            ax.grid(False)
            rows.append({"device": dev, "scene": scene, "filename": str(z["filename"][k]),
                         "predicted": predicted[k], "frames": amap.shape[0],
                         "mel_bins": amap.shape[1], "mean": float(amap.mean()),
                         "max": float(amap.max()),
                         "peak_frame": int(np.unravel_index(amap.argmax(), amap.shape)[0]),
                         "peak_bin": int(np.unravel_index(amap.argmax(), amap.shape)[1])})
    if image is not None:
        fig.colorbar(image, ax=axes, shrink=0.6, label="attention")
    fig.suptitle(f"Attention of the true class, {run_dir.name}")
    return save_figure(fig, out_dir, name, pd.DataFrame(rows))


#: Font size (points) of the receptive-field figure's legends; 8 pt is the least that reads
#: at the exported size.
RF_LEGEND_FONTSIZE = 8.5


def receptive_field_figure(out_dir: str | Path, rf_table: pd.DataFrame,
                           logmel: np.ndarray | None = None, *,
                           name: str = "receptive_field") -> dict[str, Path]:
    """Receptive field of each block drawn as rectangles over a log-mel spectrogram.

    ``rf_table`` has columns topology, block, rf_time, rf_freq (frames and mel bins, as
    computed by the models' receptive-field code, passed in so this layer need not import
    it); ``logmel`` is (T, F), time-major as the features are stored. One panel per
    topology; rectangles are centred on the spectrogram and clipped to it.
    """
    need = {"topology", "block", "rf_time", "rf_freq"}
    if not need <= set(rf_table.columns):
        raise CaaError(f"rf_table needs columns {sorted(need)}, got {list(rf_table.columns)}")
    if logmel is None:
        logmel = np.zeros((320, 64), dtype=np.float32)
    logmel = np.asarray(logmel)
    if logmel.ndim != 2:
        raise CaaError(f"logmel must be (T, F), got shape {logmel.shape}")
    n_t, n_f = logmel.shape
    topologies = list(dict.fromkeys(rf_table["topology"]))
    apply_style()
    fig, axes = plt.subplots(1, len(topologies), figsize=(5.0 * len(topologies), 3.2),
                             squeeze=False)
    colors = plt.get_cmap("viridis")
    from matplotlib.patches import Rectangle

    for ax, topo in zip(axes[0], topologies, strict=True):
        ax.imshow(logmel.T, origin="lower", aspect="auto", cmap="gray")
        ax.grid(False)
        d = rf_table[rf_table["topology"] == topo].sort_values("block")
        for k, r in enumerate(d.itertuples()):
            w, h = min(float(r.rf_time), n_t), min(float(r.rf_freq), n_f)
            ax.add_patch(Rectangle(((n_t - w) / 2 - 0.5, (n_f - h) / 2 - 0.5), w, h,
                                   fill=False, lw=2,
                                   color=colors(k / max(len(d) - 1, 1)),
                                   label=f"block {r.block}: {r.rf_time}×{r.rf_freq}"))
        ax.set_title(NETWORK_TITLES.get(topo, str(topo)))
        ax.set_xlabel("frame")
        ax.set_ylabel("mel bin")
        # in points at the exported size (the figure is saved at its figsize): legible
        ax.legend(fontsize=RF_LEGEND_FONTSIZE, loc="upper right")
    return save_figure(fig, out_dir, name, rf_table.reset_index(drop=True))


def training_curves(run_dirs: Sequence[str | Path], out_dir: str | Path, *,
                    name: str = "training_curves") -> dict[str, Path]:
    """Loss and evaluation accuracy (Avg) against iteration for each run's history.csv."""
    frames = []
    for rd in map(Path, run_dirs):
        frames.append(read_history(rd).assign(run=rd.name))
    if not frames:
        raise CaaError("no runs given for training curves")
    data = pd.concat(frames, ignore_index=True)
    apply_style()
    fig, (ax_l, ax_a) = plt.subplots(1, 2, figsize=(11, 3.8))
    for run, h in data.groupby("run", sort=False):
        ax_l.plot(h["iteration"], h["loss"], label=run)
        ev = h.dropna(subset=["acc_avg"])
        ax_a.plot(ev["iteration"], ev["acc_avg"] * 100, marker=".", label=run)
    ax_l.set(xlabel="iteration", ylabel="training loss", yscale="log", title="Loss")
    ax_a.set(xlabel="iteration", ylabel="Avg accuracy [%]", title="Evaluation (Avg of A, B, C)")
    ax_a.legend(fontsize="x-small")
    return save_figure(fig, out_dir, name, data)


def plot_parallel(rec: dict[str, Any]) -> Any:
    """Waveforms (top row) and log-mels (bottom row) of one recording on each device.

    ``rec`` is :func:`caalib.results.spectra.read_parallel`'s dict. Returns the figure
    (shown by notebook 01, not written).
    """
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


def device_spectrum_figure(out_dir: str | Path, spectrum: pd.DataFrame, *,
                           name: str = "device_spectrum",
                           title: str = "average log-mel per device (parallel recordings)"
                           ) -> dict[str, Path]:
    """The device shift: :func:`plot_device_spectra` of ``spectrum`` (mel bins x devices,
    :func:`caalib.results.spectra.parallel_device_spectrum`), with the spectrum as CSV."""
    apply_style()
    fig = plot_device_spectra(spectrum, title)
    return save_figure(fig, out_dir, name, spectrum.reset_index())


#: What ``write_figures`` owns in its output directory (see caalib.results.output).
_FIGURE_NAMES = re.compile(r"(fig5-.+|fig6|fig7|training_curves)\.(png|pdf|csv)")


def owned_by_figures(name: str) -> bool:
    """Whether ``write_figures`` owns an entry of its output directory."""
    return _FIGURE_NAMES.fullmatch(name) is not None


def write_figures(results_dir: str | Path, out_dir: str | Path, *, profile: str | None = None,
                  run: str | Path | None = None, dataset: str | None = None
                  ) -> tuple[list[Path], FigureRuns]:
    """``caa figures``: Fig. 5 per dataset, Figs. 6/7 and the training curves, all or nothing.

    Figs. 6/7 and the training curves are of ``dataset`` (default
    :func:`~caalib.results.selection.choose_dataset`: DCASE 2018 when there are runs of
    it). Figs. 6 and 7 come from :func:`~caalib.results.selection.figure_runs`: ``run``
    when given, else the paper's CAA-Net run (with a stated fallback), the rule notebook
    06 uses; the curves from :func:`~caalib.results.selection.curve_runs`, as notebook
    03 draws them. Everything is drawn into a staging directory that then replaces
    ``out_dir`` whole (:func:`caalib.results.output.staged_output`; files it does not
    own, see :func:`owned_by_figures`, are kept), so a failure leaves the previous
    figures as they were. Returns the written paths and the runs behind Figs. 6/7.
    """
    runs = load_runs(results_dir)
    if profile:
        runs = runs[runs["profile"] == profile]
    if runs.empty:
        raise CaaError(f"{results_dir}: no finished runs"
                       + (f" of profile {profile}" if profile else ""))
    dataset = choose_dataset(runs, dataset)
    chosen = figure_runs(runs, dataset, run)
    hist = curve_runs(runs, dataset)
    out_dir = Path(out_dir)
    reads = [results_dir, runs_root(results_dir)] + ([Path(run)] if run is not None else [])
    with staged_output(out_dir, owned_by_figures, reads=reads, what="caa figures") as stage:
        made: list[Path] = []
        for ds in sorted(set(runs["dataset"])):
            tf = runs[(runs["dataset"] == ds) & (runs["strategy"] == "teacher_forcing")]
            if not tf.empty:
                made += fig5(runs, stage, dataset=ds).values()
        made += fig6(chosen.fig6.path, stage).values()
        if chosen.fig7 is not None:
            made += fig7(chosen.fig7.path, stage).values()
        if hist:
            made += training_curves(hist, stage).values()
        made = relocate(made, stage, out_dir)
    return made, chosen
