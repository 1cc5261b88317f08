"""``caa explain``'s files: the faithfulness table and the curves (PNG + PDF + CSV)."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..atomic import write_text
from ..results.output import relocate, staged_output
from ..results.style import DEVICE_COLORS, apply_style, plt, save_figure
from .faithfulness import ATTENTION, explain_runs

TABLE_FILE = "faithfulness.csv"
CURVES_NAME = "faithfulness_curves"
OWNED = (TABLE_FILE, *(f"{CURVES_NAME}.{ext}" for ext in ("png", "pdf", "csv")))


def curves_figure(curves: pd.DataFrame) -> plt.Figure:
    """Deletion curves per run (panels): each method in each device's colour, attention
    solid and gradients dashed, random order dotted."""
    apply_style()
    runs = list(dict.fromkeys(curves["run"]))
    fig, axes = plt.subplots(1, len(runs), figsize=(4.2 * len(runs), 3.4), squeeze=False,
                             sharey=True)
    for ax, run in zip(axes[0], runs, strict=True):
        part = curves[curves["run"] == run]
        for (dev, method, curve), c in part.groupby(["source", "method", "curve"], sort=True):
            if curve not in ("deletion", "random_deletion"):
                continue
            if curve == "random_deletion" and method != ATTENTION and \
                    ATTENTION in set(part["method"]):
                continue  # one random curve per device is enough
            style = ":" if curve == "random_deletion" else (
                "-" if method == ATTENTION else "--")
            label = f"{dev}: random" if curve == "random_deletion" else f"{dev}: {method}"
            ax.plot(c["fraction"], c["score"], style, color=DEVICE_COLORS.get(dev, "0.3"),
                    label=label)
        ax.set_title(f"{part['model'].iloc[0]}\n{run}", fontsize=7)
        ax.set_xlabel("share of bins deleted (most important first)")
        ax.legend(fontsize=6)
    axes[0][0].set_ylabel("true-class score")
    fig.tight_layout()
    return fig


def write_explain(run_dirs: list[str | Path], data_dir: str | Path, out_dir: str | Path, *,
                  max_clips: int, steps: int, seed: int = 0, progress: bool = False
                  ) -> tuple[pd.DataFrame, list[Path]]:
    """Score the runs and write ``out_dir``'s files all or nothing; (table, paths)."""
    table, curves = explain_runs(run_dirs, data_dir, max_clips=max_clips, steps=steps,
                                 seed=seed, progress=progress)
    out = Path(out_dir)
    reads = [data_dir, *run_dirs]
    with staged_output(out, lambda name: name in OWNED, reads=reads,
                       what="caa explain") as stage:
        paths = [write_text(stage / TABLE_FILE, table.to_csv(index=False))]
        paths += list(save_figure(curves_figure(curves), stage, CURVES_NAME, curves).values())
    return table, relocate(paths, stage, out)
