"""The device-shift curve as a figure: accuracy per device against shift strength.

One row of panels per model, one panel per device (A, B, C), one line per training
strategy with a band of one standard deviation over seeds (none for a single seed).
B and C are where the paper's claims live; A shows what the shift costs the reference.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..constants import DEVICES
from ..spec import STRATEGIES
from .style import DEVICE_LABELS, apply_style, plt, save_figure, sns

#: Columns the summary must hold (caalib.shift_curve.summarise writes them).
SUMMARY_COLUMNS = ("shift", "topology", "pooling", "strategy", "device", "mean", "std",
                   "n_seeds")


def shift_curve_figure(summary: pd.DataFrame, out_dir: str | Path, *,
                       name: str = "shift_curve") -> dict[str, Path]:
    """Draw ``summary`` (one row per shift, model, strategy and device: mean and std of
    accuracy over seeds, fractions) and write ``name``.{png,pdf,csv}; the CSV is
    ``summary`` itself, the numbers behind every line and band."""
    missing = [c for c in SUMMARY_COLUMNS if c not in summary.columns]
    if missing:
        raise ValueError(f"shift-curve summary: missing column(s) {', '.join(missing)}")
    apply_style()
    models = list(dict.fromkeys(zip(summary["topology"], summary["pooling"], strict=True)))
    strategies = [s for s in STRATEGIES if s in set(summary["strategy"])]
    colours = dict(zip(strategies, sns.color_palette("colorblind", len(strategies)),
                       strict=True))
    fig, axes = plt.subplots(len(models), len(DEVICES), squeeze=False, sharex=True,
                             sharey=True, figsize=(3.2 * len(DEVICES), 2.6 * len(models)))
    for i, (topology, pooling) in enumerate(models):
        mine = summary[(summary["topology"] == topology) & (summary["pooling"] == pooling)]
        for j, dev in enumerate(DEVICES):
            ax = axes[i, j]
            for strategy in strategies:
                line = mine[(mine["strategy"] == strategy) & (mine["device"] == dev)]
                if line.empty:
                    continue
                line = line.sort_values("shift")
                x = line["shift"].to_numpy(float)
                mean = 100 * line["mean"].to_numpy(float)
                std = 100 * np.nan_to_num(line["std"].to_numpy(float))
                ax.plot(x, mean, marker="o", ms=3, color=colours[strategy],
                        label=strategy.replace("_", " "))
                ax.fill_between(x, mean - std, mean + std, color=colours[strategy],
                                alpha=0.2, linewidth=0)
            ax.set_title(f"{topology} + {pooling}: {DEVICE_LABELS[dev]}")
            if i == len(models) - 1:
                ax.set_xlabel("device shift strength")
            if j == 0:
                ax.set_ylabel("accuracy (%)")
    handles, labels = axes[0, 0].get_legend_handles_labels()
    if handles:
        fig.legend(handles, labels, loc="lower center", ncol=len(handles),
                   bbox_to_anchor=(0.5, 1.0), frameon=False)
    fig.tight_layout()
    return save_figure(fig, out_dir, name, summary)
