"""Our runs beside the paper's Tables I-III, plus per-run class-wise and device tables.

Conventions: accuracies in these tables are in percent (the paper's unit); ``ours`` is
the mean over seeds, ``ours_std`` the sample standard deviation over seeds (NaN for a
single seed), ``n_seeds`` how many runs went in, ``diff = ours - paper``. Paper
configurations we have not run yet keep their row with ``ours`` NaN; configurations of
ours that the paper does not report get a row with ``paper`` NaN.

Single-device training trains three models (one per device) that are each evaluated on
their own device only; the single-device row is assembled from those three runs and its
Avg is the mean of the three device accuracies (per seed, then over seeds).
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_text
from ..constants import ALL_DEVICES, DEVICES, SCENE_TITLES, SCENES
from ..errors import CaaError
from ..rundir import PROFILES, read_metrics, runs_root
from .output import staged_output
from .paper import (
    LAYERS,
    NETWORK_TITLES,
    NETWORKS,
    PAPER_BEST_LAYERS,
    POOLINGS,
    STRATEGIES,
    TABLE_DEVICES,
    load_paper_table,
)
from .runs import load_runs

T1_COLUMNS = ["network", "pooling", "layer", "paper", "ours", "ours_std", "n_seeds", "diff"]
T23_COLUMNS = ["dataset", "network", "pooling", "strategy", "device", "layer", "paper", "ours",
               "ours_std", "n_seeds", "diff"]


def _one_profile(runs: pd.DataFrame, profile: str | None) -> pd.DataFrame:
    """Runs of one training profile: mixing tiny and paper-size runs would be meaningless."""
    if profile is not None:
        return runs[runs["profile"] == profile]
    profiles = sorted(runs["profile"].dropna().unique())
    if len(profiles) > 1:
        raise CaaError(f"runs of several profiles {profiles}; choose one (profile=...)")
    return runs


def _summarise(df: pd.DataFrame, keys: list[str], value: str) -> pd.DataFrame:
    """Mean, std and count over seeds of ``value`` (a fraction) in percent."""
    if df.empty:
        return pd.DataFrame(columns=[*keys, "ours", "ours_std", "n_seeds"])
    v = df.assign(_v=df[value] * 100.0).dropna(subset=["_v"])
    g = v.groupby(keys, dropna=False)["_v"]
    out = pd.concat([g.mean().rename("ours"), g.std(ddof=1).rename("ours_std"),
                     g.count().rename("n_seeds")], axis=1).reset_index()
    return out


def _order(df: pd.DataFrame) -> pd.DataFrame:
    """Paper order: topology, pooling, then strategy/device/layer where present."""
    cats = {"network": NETWORKS, "pooling": POOLINGS, "strategy": STRATEGIES,
            "device": TABLE_DEVICES}
    keys = [c for c in ("dataset", "network", "pooling", "strategy", "device", "layer")
            if c in df.columns]
    sort = df.copy()
    for c, order in cats.items():
        if c in sort.columns:
            sort[c] = pd.Categorical(sort[c], categories=list(order), ordered=True)
    idx = sort.sort_values(keys, kind="stable").index
    return df.loc[idx].reset_index(drop=True)


def table1(runs: pd.DataFrame, profile: str | None = None,
           paper_dir: str | Path | None = None) -> pd.DataFrame:
    """Table I: DCASE 2018 teacher forcing, Avg accuracy per model and conditioned layer."""
    runs = _one_profile(runs, profile)
    tf = runs[(runs["dataset"] == "dcase2018") & (runs["strategy"] == "teacher_forcing")
              & runs["cond_layer"].notna()]
    ours = _summarise(tf.rename(columns={"topology": "network", "cond_layer": "layer"}),
                      ["network", "pooling", "layer"], "acc_avg")
    ours["layer"] = ours["layer"].astype(int)
    paper = load_paper_table("table1", paper_dir).rename(columns={"accuracy": "paper"})
    out = paper.merge(ours, on=["network", "pooling", "layer"], how="outer")
    out["n_seeds"] = out["n_seeds"].fillna(0).astype(int)
    out["diff"] = out["ours"] - out["paper"]
    return _order(out[T1_COLUMNS].astype({"ours": float, "ours_std": float}))


def best_layers(t1: pd.DataFrame, source: str = "paper") -> dict[tuple[str, str], int]:
    """The conditioned layer per model used by Tables II/III.

    ``source="paper"``: the paper's Table I choice (study notes section 5).
    ``source="ours"``: argmax of our Table I Avg (lowest layer on ties); models with no
    Table I run of ours fall back to the paper's layer.
    """
    if source == "paper":
        return dict(PAPER_BEST_LAYERS)
    if source != "ours":
        raise CaaError(f"layers must be 'paper' or 'ours', got {source!r}")
    out = dict(PAPER_BEST_LAYERS)
    have = t1.dropna(subset=["ours"]).sort_values("layer")
    for (net, pool), grp in have.groupby(["network", "pooling"]):
        out[(net, pool)] = int(grp.loc[grp["ours"].idxmax(), "layer"])
    return out


def _single_rows(single: pd.DataFrame) -> pd.DataFrame:
    """Device rows from each device's own single-device runs, and their Avg per seed."""
    parts = []
    for dev in DEVICES:
        d = single[single["train_source"] == dev]
        s = _summarise(d, ["topology", "pooling"], f"acc_{dev}")
        parts.append(s.assign(device=dev))
    per_seed = single.assign(_acc=[r[f"acc_{r['train_source']}"] for _, r in single.iterrows()]
                             if not single.empty else [])
    if not per_seed.empty:
        wide = per_seed.pivot_table(index=["topology", "pooling", "seed"],
                                    columns="train_source", values="_acc", aggfunc="mean")
        wide = wide.reindex(columns=list(DEVICES))
        complete = wide.dropna()
        avg = complete.mean(axis=1).rename("acc_avg").reset_index()
        parts.append(_summarise(avg, ["topology", "pooling"], "acc_avg").assign(device="avg"))
    return pd.concat(parts, ignore_index=True) if parts else pd.DataFrame()


def _strategy_table(runs: pd.DataFrame, dataset: str, table: str, layers: str | dict,
                    profile: str | None, paper_dir: str | Path | None) -> pd.DataFrame:
    runs = _one_profile(runs, profile)
    runs = runs[runs["dataset"] == dataset]
    if isinstance(layers, dict):
        chosen = layers
    else:
        chosen = best_layers(table1(runs, paper_dir=paper_dir), layers)
    parts = []
    single = runs[(runs["strategy"] == "single") & runs["train_source"].notna()]
    s = _single_rows(single)
    if not s.empty:
        parts.append(s.assign(strategy="single"))
    joint = runs[runs["strategy"] == "joint"]
    for dev in TABLE_DEVICES:
        j = _summarise(joint, ["topology", "pooling"], f"acc_{dev}")
        parts.append(j.assign(strategy="joint", device=dev))
    for strat in ("teacher_forcing", "multi_task"):
        r = runs[(runs["strategy"] == strat) & runs["cond_layer"].notna()]
        want = [chosen.get((t, p)) for t, p in zip(r["topology"], r["pooling"], strict=True)]
        keep = [w is not None and int(c) == w
                for w, c in zip(want, r["cond_layer"], strict=True)]
        r = r[keep]
        for dev in TABLE_DEVICES:
            parts.append(_summarise(r, ["topology", "pooling"], f"acc_{dev}")
                         .assign(strategy=strat, device=dev))
    ours = pd.concat([p for p in parts if not p.empty] or [pd.DataFrame(
        columns=["topology", "pooling", "ours", "ours_std", "n_seeds", "strategy", "device"])],
        ignore_index=True).rename(columns={"topology": "network"})
    ours["dataset"] = dataset
    paper = load_paper_table(table, paper_dir).rename(columns={"accuracy": "paper"})
    keys = ["dataset", "network", "pooling", "strategy", "device"]
    out = paper.merge(ours, on=keys, how="outer")
    out["n_seeds"] = out["n_seeds"].fillna(0).astype(int)
    out["ours"] = out["ours"].astype(float)
    out["ours_std"] = out["ours_std"].astype(float)
    out["diff"] = out["ours"] - out["paper"]
    cond = out["strategy"].isin(["teacher_forcing", "multi_task"])
    out["layer"] = pd.array([chosen.get((n, p)) if c else None for n, p, c in
                             zip(out["network"], out["pooling"], cond, strict=True)], dtype="Int64")
    return _order(out[T23_COLUMNS])


def table2(runs: pd.DataFrame, layers: str | dict = "paper", profile: str | None = None,
           paper_dir: str | Path | None = None) -> pd.DataFrame:
    """Table II: DCASE 2018, four training strategies, devices A, B, C and Avg."""
    return _strategy_table(runs, "dcase2018", "table2", layers, profile, paper_dir)


def table3(runs: pd.DataFrame, layers: str | dict = "paper", profile: str | None = None,
           paper_dir: str | Path | None = None) -> pd.DataFrame:
    """Table III: DCASE 2019, same layout as Table II (the paper ran the att models).

    The conditioned layers come from Table I (DCASE 2018) as in the paper.
    """
    if isinstance(layers, str) and layers == "ours":
        layers = best_layers(table1(_one_profile(runs, profile), paper_dir=paper_dir), "ours")
    return _strategy_table(runs, "dcase2019", "table3", layers, profile, paper_dir)


def classwise_table(run_dir: str | Path) -> pd.DataFrame:
    """Class-wise accuracy (percent) per device of one run; last row is the macro mean."""
    met = read_metrics(run_dir)
    cw = met["classwise"]
    cols = [d for d in ALL_DEVICES if d in cw]  # every device scored (nine on 2020)
    data = {d: [np.nan if cw[d].get(s) is None else 100.0 * cw[d][s] for s in SCENES]
            for d in cols}
    df = pd.DataFrame(data, index=[SCENE_TITLES[s] for s in SCENES])
    df.index.name = "scene"
    if cols:
        df["avg"] = df[cols].mean(axis=1)
    df.loc["Average"] = df.mean(axis=0)
    return df


def device_table(run_dir: str | Path) -> pd.DataFrame:
    """Accuracy (percent) and clip count per device of one run, with Avg."""
    met = read_metrics(run_dir)
    acc, n = met["accuracy"], met["n_eval"]
    rows = [{"device": k, "accuracy": 100.0 * acc[k], "n_eval": n.get(k)}
            for k in (*ALL_DEVICES, "avg") if acc.get(k) is not None]
    if rows and rows[-1]["device"] == "avg":
        rows[-1]["n_eval"] = sum(int(v) for v in n.values()) if n else None
    df = pd.DataFrame(rows, columns=["device", "accuracy", "n_eval"])
    df["n_eval"] = df["n_eval"].astype("Int64")
    return df


def _fmt(v: object) -> str:
    if v is None or (isinstance(v, float) and np.isnan(v)) or v is pd.NA:
        return "—"
    if isinstance(v, float | np.floating):
        return f"{v:.1f}"
    return str(v)


def to_markdown(df: pd.DataFrame, index: bool = False) -> str:
    """A GitHub-flavoured Markdown table (no tabulate dependency), one decimal."""
    if index:
        df = df.reset_index()
    head = "| " + " | ".join(str(c) for c in df.columns) + " |"
    sep = "|" + "|".join("---" for _ in df.columns) + "|"
    body = ["| " + " | ".join(_fmt(v) for v in row) + " |"
            for row in df.itertuples(index=False)]
    return "\n".join([head, sep, *body]) + "\n"


def _cell(ours: float, std: float, paper: float) -> str:
    o = "—" if pd.isna(ours) else (f"{ours:.1f}" if pd.isna(std) else f"{ours:.1f}±{std:.1f}")
    return f"{o} ({_fmt(paper)})"


def wide_markdown(t: pd.DataFrame) -> str:
    """Table II/III laid out like the paper: "ours±std (paper)" per strategy x device."""
    t = t.copy()
    t["cell"] = [_cell(o, s, p)
                 for o, s, p in zip(t["ours"], t["ours_std"], t["paper"], strict=True)]
    t["col"] = t["strategy"].astype(str) + " " + t["device"].astype(str).str.upper()
    cols = [f"{s} {d.upper()}" for s in STRATEGIES for d in TABLE_DEVICES]
    w = t.pivot_table(index=["network", "pooling"], columns="col", values="cell",
                      aggfunc="first", sort=False).reindex(columns=cols)
    w = w.reset_index()
    w["network"] = w["network"].map(lambda n: NETWORK_TITLES.get(n, n))
    return to_markdown(w.fillna("—"))


#: The top-level names ``write_tables`` owns in its output directory.
TABLE_FILES: frozenset[str] = frozenset(
    f"{t}.{ext}" for t in ("table1", "table2", "table3") for ext in ("csv", "md"))


def owned_by_tables(name: str) -> bool:
    """Whether ``write_tables`` owns an entry of its output directory (replaces or
    removes it): the table files, the per-run ``runs/`` and the per-profile folders."""
    return name in TABLE_FILES or name == "runs" or name in PROFILES


def _texts(df: pd.DataFrame, base: str, md: str | None = None,
           index: bool = False) -> dict[str, str]:
    return {f"{base}.csv": df.to_csv(index=index),
            f"{base}.md": md if md is not None else to_markdown(df, index)}


def write_tables(results_dir: str | Path, out_dir: str | Path, *, layers: str = "paper",
                 profile: str | None = None, per_run: bool = True,
                 paper_dir: str | Path | None = None) -> list[Path]:
    """Write Tables I-III (CSV + Markdown) and per-run class-wise/device tables.

    With runs of several profiles and no ``profile`` given, each profile gets its own
    sub-directory of ``out_dir``. All or nothing: every table is computed first, then
    written into a staging directory that replaces ``out_dir`` whole
    (:func:`caalib.results.output.staged_output`; files of ``out_dir`` the tables do not
    own, see :func:`owned_by_tables`, are kept). On any failure the previous
    ``out_dir`` is left as it was. Returns the written paths.
    """
    runs = load_runs(results_dir)
    out_dir = Path(out_dir)
    profiles = [profile] if profile else sorted(runs["profile"].dropna().unique()) or [None]
    texts: dict[str, str] = {}
    for prof in profiles:
        sub = runs if prof is None else runs[runs["profile"] == prof]
        d = f"{prof}/" if (len(profiles) > 1 and prof) else ""
        texts.update(_texts(table1(sub, paper_dir=paper_dir), f"{d}table1"))
        for name, fn in (("table2", table2), ("table3", table3)):
            t = fn(sub, layers=layers, paper_dir=paper_dir)
            texts.update(_texts(t, f"{d}{name}", md=wide_markdown(t)))
        if per_run:
            for row in sub.itertuples():
                rd = f"{d}runs/{row.name}"
                texts.update(_texts(classwise_table(row.path), f"{rd}/classwise", index=True))
                texts.update(_texts(device_table(row.path), f"{rd}/device"))
    reads = [results_dir, runs_root(results_dir)]
    with staged_output(out_dir, owned_by_tables, reads=reads, what="caa tables") as stage:
        for rel, text in texts.items():
            write_text(stage / rel, text)
    return [out_dir / rel for rel in texts]


__all__ = ["LAYERS", "best_layers", "classwise_table", "device_table", "table1", "table2",
           "table3", "to_markdown", "owned_by_tables", "wide_markdown", "write_tables"]
