"""Which runs the explanations chapter scores, and the sentence it ends with."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from ..errors import CaaError
from .faithfulness import ATTENTION, GRADIENT

#: The two attention models the chapter compares: CAA-Net's atrous network and the
#: pooled CNN, both with attention.
COMPARED: tuple[tuple[str, str], ...] = (("atrous", "att"), ("pool", "att"))


def pick_study_runs(results_dir: str | Path, dataset: str,
                    strategy: str = "multi_task") -> list[Path]:
    """For each of ``COMPARED``, the finished run of ``strategy`` on ``dataset`` with the
    lowest seed (then the first by name); models without such a run are left out."""
    from ..results.runs import load_runs

    runs = load_runs(results_dir)
    picked = []
    for topology, pooling in COMPARED:
        sel = runs[(runs["dataset"] == dataset) & (runs["topology"] == topology)
                   & (runs["pooling"] == pooling) & (runs["strategy"] == strategy)]
        if not sel.empty:
            picked.append(Path(sel.sort_values(["seed", "name"]).iloc[0]["path"]))
    if not picked:
        raise CaaError(f"no finished {strategy} run with attention on {dataset} under "
                       f"{results_dir}: train the study's runs first (notebook 03)")
    return picked


def _mean(table: pd.DataFrame, topology: str, method: str, column: str) -> float | None:
    sel = table[(table["topology"] == topology) & (table["pooling"] == "att")
                & (table["method"] == method)]
    return None if sel.empty else float(sel[column].mean())


def verdict(table: pd.DataFrame) -> str:
    """One sentence from the faithfulness table: does atrous + attention's attention
    locate the evidence better than pooled + attention's, and than gradients?

    Compares the means over devices of localisation (1 = chance) and faithfulness
    (random deletion area minus the map's deletion area, 0 = no better than random).
    """
    rows = [("atrous + attention", "atrous", ATTENTION),
            ("pooled + attention", "pool", ATTENTION),
            ("integrated gradients (atrous)", "atrous", GRADIENT)]
    got = {label: (_mean(table, t, m, "localisation"), _mean(table, t, m, "faithfulness"))
           for label, t, m in rows}
    mine = got["atrous + attention"]
    if mine[0] is None:
        return "There is no atrous + attention run in the table, so nothing to compare."
    listed = "; ".join(f"{label}: localisation {loc:.2f}x chance, faithfulness {fa:+.3f}"
                       for label, (loc, fa) in got.items() if loc is not None)
    others = [label for label in list(got)[1:] if got[label][0] is not None]
    if not others:
        return f"Means over devices: {listed}. Nothing to compare it with."

    def words(k: int) -> str:
        return " and ".join(f"{'better' if mine[k] > got[o][k] else 'worse'} than {o}"
                            for o in others)

    n = int(table["n_clips"].min())
    return (f"Means over devices: {listed}. By localisation atrous + attention explains "
            f"{words(0)}; by deletion {words(1)} (at least {n} clips per device and model: "
            "a first look, not a significance test).")
