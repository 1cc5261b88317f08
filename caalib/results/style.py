"""One look for every figure: theme, device colours, and atomic PNG + PDF + CSV output."""

from __future__ import annotations

import os
from pathlib import Path

import matplotlib

if not os.environ.get("DISPLAY") and "inline" not in matplotlib.get_backend().lower():
    matplotlib.use("Agg")  # headless: tests, CI, command line

import matplotlib.pyplot as plt  # noqa: E402
import pandas as pd  # noqa: E402
import seaborn as sns  # noqa: E402

from ..atomic import atomic_path, write_text  # noqa: E402

DEVICE_COLORS: dict[str, str] = {"a": "#1f77b4", "b": "#ff7f0e", "c": "#2ca02c",
                                 "avg": "#444444"}
DEVICE_LABELS: dict[str, str] = {"a": "Device A", "b": "Device B", "c": "Device C",
                                 "avg": "Avg"}


def apply_style() -> None:
    """Seaborn's paper context with a white grid: readable at a column's width."""
    sns.set_theme(context="paper", style="whitegrid", font_scale=1.1)
    plt.rcParams.update({"figure.dpi": 100, "savefig.dpi": 150, "savefig.bbox": "tight",
                         "axes.titlesize": "medium"})


def save_figure(fig: plt.Figure, out_dir: str | Path, name: str,
                data: pd.DataFrame | None = None) -> dict[str, Path]:
    """Write ``name``.png, ``name``.pdf (and ``name``.csv from ``data``) atomically."""
    out_dir = Path(out_dir)
    paths: dict[str, Path] = {}
    try:
        for fmt in ("png", "pdf"):
            target = out_dir / f"{name}.{fmt}"
            with atomic_path(target) as tmp:
                fig.savefig(tmp, format=fmt)
            paths[fmt] = target
    finally:
        plt.close(fig)
    if data is not None:
        paths["csv"] = write_text(out_dir / f"{name}.csv", data.to_csv(index=False))
    return paths
