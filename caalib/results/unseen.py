"""Seen-device against unseen-device accuracy: CAA-Net's conditioning beside the
augmentations that won DCASE 2020 onwards (docs/unseen-devices.md, "The comparison").

A run of a dataset with devices seen only in evaluation (the 2020 layout's S4-S6) gets
two numbers: ``seen``, the mean of its per-device accuracies over the devices it trained
on (``caalib.constants.TRAIN_DEVICES``: A, B, C, S1-S3), and ``unseen``, the mean over
the others it was scored on (S4-S6). Each device counts once, whatever its clip count,
as DCASE scores devices. A method is a strategy with its unseen-device policy (the
conditioned strategies only) and its augmentations; its cell is the mean and the sample
standard deviation (n - 1; empty for one seed) over seeds, in percent.

Beside the spread over seeds, every method other than joint training is set against
joint training of the same model on the same evaluate clips, for the seen and for the
unseen devices apart, with the claims ledger's numbers (:func:`caalib.paired_stats.
paired_comparison`, docs/claims.md S2-S4): the difference in points with its paired
bootstrap interval, McNemar's mid-p on the per-clip majority over seeds, and the minimum
detectable effect -- so a reader sees whether the comparison could tell two methods
apart at all. Those read each run's predictions.csv; on devices with equal clips per
scene (the synthetic sets) the difference is exactly that of the two ``seen`` (or
``unseen``) means.

The runs are read through :mod:`caalib.rundir` (never the training code): every finished
run of the dataset and profile under ``<results>/runs``, or only the names given. The
table, its per-seed rows and a figure go to one directory, all or nothing
(:func:`caalib.results.output.staged_output`).
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import numpy as np
import pandas as pd

from ..atomic import write_text
from ..constants import EVAL_DEVICES, SCENES, TRAIN_DEVICES
from ..errors import CaaError
from ..paired_stats import ALPHA, POWER, paired_comparison
from ..rundir import NAME_DEFAULTS, read_metrics, read_predictions, runs_root, scan_runs, warn
from ..spec import AUGMENTATIONS, CONDITIONED_STRATEGIES, STRATEGIES, UNSEEN_SOURCE_POLICIES
from .output import staged_output

#: The name of every file :func:`write_comparison` owns (``comparison.csv`` is also the
#: CSV beside the figure ``comparison.{png,pdf}``).
COMPARISON_NAME = "comparison"
COMPARISON_FILES: frozenset[str] = frozenset(
    f"{COMPARISON_NAME}{suffix}" for suffix in (".csv", ".md", ".png", ".pdf", "_seeds.csv"))
TABLE_COLUMNS = ["method", "topology", "pooling", "cond_layer", "strategy", "unseen_source",
                 "augment", "n_seeds", "seen", "seen_std", "unseen", "unseen_std", "gap",
                 "gap_std", "avg", "avg_std"]
#: The method every other one is paired against (same model, same clips).
BASELINE = "joint"
#: Per device group (``seen_``, ``unseen_``): method - joint in points, its 95 % paired
#: bootstrap interval, the clips only the method's / only joint's seed majority gets
#: right, McNemar's mid-p and the minimum detectable effect in points. Empty for joint.
PAIRED_FIELDS = ("diff", "diff_low", "diff_high", "n_method_only", "n_joint_only", "p",
                 "mde")
PAIRED_COLUMNS = [f"{part}_{f}" for part in ("seen", "unseen") for f in PAIRED_FIELDS]
_GROUP_KEYS = ["method", "topology", "pooling", "cond_layer", "strategy", "unseen_source",
               "augment"]


def method_label(strategy: str, unseen_source: str, augment: str) -> str:
    """``joint``, ``teacher_forcing/nearest``, ``joint + freq_mixstyle``: the strategy,
    its unseen-device policy where it conditions, then each augmentation."""
    label = strategy + (f"/{unseen_source}" if strategy in CONDITIONED_STRATEGIES else "")
    return " + ".join([label, *(augment.split("+") if augment else [])])


def _method_order(strategy: str, unseen_source: str, augment: str) -> tuple:
    names = augment.split("+") if augment else []
    return (len(names), STRATEGIES.index(strategy) if strategy in STRATEGIES else 99,
            UNSEEN_SOURCE_POLICIES.index(unseen_source)
            if unseen_source in UNSEEN_SOURCE_POLICIES else 99,
            [AUGMENTATIONS.index(n) if n in AUGMENTATIONS else 99 for n in names])


def comparison_seeds(results_dir: str | Path, profile: str, dataset: str = "dcase2020",
                     names: Iterable[str] | None = None) -> pd.DataFrame:
    """One row per finished run of ``dataset`` and ``profile`` (of ``names`` only, when
    given): its method, seed, per-device accuracies and ``seen``/``unseen``/``avg``
    (fractions). A second run of the same model, method and seed (another variant) is
    skipped with a warning; a name given but not finished here is a CaaError."""
    seen_devices, all_devices = TRAIN_DEVICES[dataset], EVAL_DEVICES[dataset]
    unseen_devices = tuple(d for d in all_devices if d not in seen_devices)
    if not unseen_devices:
        raise CaaError(f"dataset {dataset}: evaluates no device it does not train on; "
                       "nothing is unseen")
    wanted = None if names is None else set(names)
    rows, taken = [], {}
    for run_dir, cfg in scan_runs(results_dir):
        if wanted is not None and run_dir.name not in wanted:
            continue
        if cfg["dataset"] != dataset or cfg["profile"] != profile or cfg["strategy"] == "single":
            continue
        # the policy is the conditioned strategies' alone: blank for joint training
        policy = (cfg.get("unseen_source") or NAME_DEFAULTS["unseen_source"]
                  if cfg["strategy"] in CONDITIONED_STRATEGIES else "")
        augment = cfg.get("augment") or ""
        key = (cfg["topology"], cfg["pooling"], cfg["cond_layer"], cfg["strategy"], policy,
               augment, cfg["seed"])
        if key in taken:
            warn(f"{run_dir}: skipped: the same model, method and seed as {taken[key]} "
                 "(another variant); it would count as a second seed")
            continue
        taken[key] = run_dir.name
        acc = read_metrics(run_dir)["accuracy"]
        missing = [d for d in all_devices if d not in acc]
        if missing:
            raise CaaError(f"{run_dir}: not scored on device(s) {', '.join(missing)}")
        row = {"run_name": run_dir.name, "topology": cfg["topology"],
               "pooling": cfg["pooling"], "cond_layer": cfg["cond_layer"],
               "strategy": cfg["strategy"], "unseen_source": policy, "augment": augment,
               "method": method_label(cfg["strategy"], policy, augment),
               "seed": int(cfg["seed"])}
        row.update({f"acc_{d}": float(acc[d]) for d in all_devices})
        row["seen"] = float(np.mean([acc[d] for d in seen_devices]))
        row["unseen"] = float(np.mean([acc[d] for d in unseen_devices]))
        row["avg"] = float(acc["avg"])
        rows.append(row)
    if wanted is not None:
        absent = sorted(wanted - {r["run_name"] for r in rows})
        if absent:
            raise CaaError(f"{runs_root(results_dir)}: {len(absent)} run(s) of the comparison "
                           f"are not finished there (first: {absent[0]})")
    frame = pd.DataFrame(rows)
    if frame.empty:
        raise CaaError(f"{runs_root(results_dir)}: no finished {dataset} run of profile "
                       f"{profile} to compare")
    order = sorted(range(len(frame)), key=lambda i: (
        _method_order(frame["strategy"][i], frame["unseen_source"][i], frame["augment"][i]),
        frame["topology"][i], frame["pooling"][i], frame["seed"][i]))
    return frame.iloc[order].reset_index(drop=True)


def comparison_table(seeds: pd.DataFrame) -> pd.DataFrame:
    """Per model and method (in :func:`comparison_seeds`' order): the seed count and the
    mean and sample standard deviation over seeds of ``seen``, ``unseen``, ``gap``
    (seen - unseen) and ``avg``, in percent."""
    data = seeds.assign(gap=seeds["seen"] - seeds["unseen"])
    grouped = data.groupby(_GROUP_KEYS, sort=False, dropna=False)
    out = grouped.size().rename("n_seeds").reset_index()
    for col in ("seen", "unseen", "gap", "avg"):
        out[col] = 100.0 * grouped[col].mean().to_numpy()
        out[f"{col}_std"] = 100.0 * grouped[col].std(ddof=1).to_numpy()
    out["cond_layer"] = out["cond_layer"].astype("Int64")
    return out[TABLE_COLUMNS]


def _correctness(preds: dict[str, pd.DataFrame], runs: list[str],
                 devices: tuple[str, ...]) -> tuple[np.ndarray, pd.Series, np.ndarray]:
    """0/1 correctness ``[seeds, clips]`` of ``runs`` (in order) on ``devices``' clips,
    sorted by filename, with the filenames and each clip's device."""
    rows, files, strata = [], None, None
    for name in runs:
        pred = preds[name]
        part = pred[pred["source"].isin(devices)].sort_values("filename")
        if files is None:
            files = part["filename"].reset_index(drop=True)
            strata = part["source"].to_numpy(dtype=str)
        elif not part["filename"].reset_index(drop=True).equals(files):
            raise CaaError(f"run {name}: scored on other clips than run {runs[0]}; the runs "
                           "of a comparison must come from one dataset")
        rows.append(part["correct"].to_numpy(dtype=float))
    return np.vstack(rows), files, strata


def paired_table(results_dir: str | Path, seeds: pd.DataFrame, dataset: str = "dcase2020",
                 n_resamples: int = 2000, seed: int = 0) -> pd.DataFrame:
    """:data:`PAIRED_COLUMNS` per row of :func:`comparison_table` (same order): each
    method against joint training of the same model, on the seen and the unseen devices'
    evaluate clips apart, from the runs' predictions.csv. Each side keeps all its seeds
    (the ledger's arms); ``seed`` fixes the bootstrap draw."""
    seen_devices = TRAIN_DEVICES[dataset]
    parts = (("seen", seen_devices),
             ("unseen", tuple(d for d in EVAL_DEVICES[dataset] if d not in seen_devices)))
    root = runs_root(results_dir)
    preds = {name: read_predictions(root / name) for name in seeds["run_name"]}
    out = []
    baseline: dict[tuple[str, str, str], tuple] = {}
    for keys, group in seeds.groupby(_GROUP_KEYS, sort=False, dropna=False):
        row = dict.fromkeys(PAIRED_COLUMNS, np.nan)
        method, topology, pooling = keys[0], keys[1], keys[2]
        base = seeds[(seeds["method"] == BASELINE) & (seeds["topology"] == topology)
                     & (seeds["pooling"] == pooling)]
        if method != BASELINE and not base.empty:
            for part, devices in parts:
                arm, files, strata = _correctness(preds, list(group["run_name"]), devices)
                key = (topology, pooling, part)
                if key not in baseline:  # joint's matrix, once per model and device group
                    baseline[key] = _correctness(preds, list(base["run_name"]), devices)
                ref, ref_files, _ = baseline[key]
                if not files.equals(ref_files):
                    raise CaaError(f"{method} and {BASELINE} ({topology} + {pooling}) were "
                                   f"scored on other {part}-device clips: the runs of a "
                                   "comparison must come from one dataset")
                num = paired_comparison([arm], [ref], strata, n_resamples=n_resamples,
                                        seed=seed)
                row.update({f"{part}_diff": 100 * num.effect.estimate,
                            f"{part}_diff_low": 100 * num.effect.low,
                            f"{part}_diff_high": 100 * num.effect.high,
                            f"{part}_n_method_only": num.test.b,
                            f"{part}_n_joint_only": num.test.c,
                            f"{part}_p": num.test.p, f"{part}_mde": 100 * num.mde})
        out.append(row)
    frame = pd.DataFrame(out, columns=PAIRED_COLUMNS)
    for part in ("seen", "unseen"):
        for col in (f"{part}_n_method_only", f"{part}_n_joint_only"):
            frame[col] = frame[col].astype("Int64")
    return frame


def _model(r) -> str:
    return f"{r.topology} + {r.pooling}" + ("" if pd.isna(r.cond_layer)
                                            else f", L{r.cond_layer}")


def _cell(mean: float, std: float) -> str:
    return f"{mean:.1f}" if pd.isna(std) else f"{mean:.1f} ± {std:.1f}"


def comparison_markdown(table: pd.DataFrame) -> str:
    """The table as a person reads it: "mean ± std" per column, one decimal."""
    lines = ["| method | model | seeds | seen devices | unseen devices | seen - unseen | all |",
             "|---|---|---|---|---|---|---|"]
    for r in table.itertuples():
        lines.append(f"| {r.method} | {_model(r)} | {r.n_seeds} | {_cell(r.seen, r.seen_std)} | "
                     f"{_cell(r.unseen, r.unseen_std)} | {_cell(r.gap, r.gap_std)} | "
                     f"{_cell(r.avg, r.avg_std)} |")
    paired = _paired_markdown(table) if PAIRED_COLUMNS[0] in table.columns else []
    if paired:
        lines += ["", *paired]
    return "\n".join(lines) + "\n"


def _diff(r: pd.Series, part: str) -> str:
    return (f"{r[f'{part}_diff']:+.1f} [{r[f'{part}_diff_low']:+.1f}, "
            f"{r[f'{part}_diff_high']:+.1f}]")


def _paired_markdown(table: pd.DataFrame) -> list[str]:
    """The paired table against joint training, then which intervals exclude 0, each
    with its MDE: what the comparison can and cannot tell apart, without a verdict."""
    rows = table[table[PAIRED_COLUMNS[0]].notna()]
    if rows.empty:
        return []
    lines = [f"Against {BASELINE} training of the same model, on the same clips "
             "(method - joint, accuracy points):", "",
             "| method | model | seen: difference [95 % CI] | p | MDE | unseen: difference "
             "[95 % CI] | p | MDE |", "|---|---|---|---|---|---|---|---|"]
    for _, r in rows.iterrows():
        lines.append(f"| {r['method']} | {_model(r)} | {_diff(r, 'seen')} | {r['seen_p']:.2g} | "
                     f"{r['seen_mde']:.1f} | {_diff(r, 'unseen')} | {r['unseen_p']:.2g} | "
                     f"{r['unseen_mde']:.1f} |")
    lines += ["", "The interval resamples clips within each device and each method's seeds; "
              "p is McNemar's two-sided mid-p on the per-clip majority over seeds; the MDE "
              f"is the smallest difference these clips detect at alpha {ALPHA} with power "
              f"{POWER}, given how often the two methods disagree (docs/claims.md).", ""]
    for part, devices in (("seen", "seen devices"), ("unseen", "unseen devices")):
        excl = rows[(rows[f"{part}_diff_low"] > 0) | (rows[f"{part}_diff_high"] < 0)]
        incl = rows.drop(excl.index)
        said = [f"{r['method']} ({r[f'{part}_diff']:+.1f}, MDE {r[f'{part}_mde']:.1f})"
                for _, r in excl.iterrows()]
        rest = [f"{r['method']} (MDE {r[f'{part}_mde']:.1f})" for _, r in incl.iterrows()]
        lines.append(f"- {devices.capitalize()}: the interval excludes 0 for "
                     f"{', '.join(said) if said else 'no method'}; it includes 0 for "
                     f"{', '.join(rest) if rest else 'no method'}.")
    return lines


def comparison_figure(table: pd.DataFrame):
    """Seen and unseen accuracy per method: paired bars, one standard deviation over
    seeds as error bars (none for one seed)."""
    from .style import apply_style, plt, sns

    apply_style()
    labels = [m if len(set(zip(table["topology"], table["pooling"], strict=True))) == 1
              else f"{m} ({t}+{p})" for m, t, p in
              zip(table["method"], table["topology"], table["pooling"], strict=True)]
    y = np.arange(len(table))
    colours = sns.color_palette("colorblind", 2)
    fig, ax = plt.subplots(figsize=(7.0, 0.45 * len(table) + 1.4))
    for k, (col, name) in enumerate((("seen", "seen devices"), ("unseen", "unseen devices"))):
        err = table[f"{col}_std"].to_numpy(dtype=float)
        ax.barh(y + (k - 0.5) * 0.38, table[col].to_numpy(dtype=float), height=0.38,
                xerr=None if np.isnan(err).all() else np.nan_to_num(err), capsize=2,
                color=colours[k], label=name)
    ax.axvline(100.0 / len(SCENES), color="0.4", linestyle=":", linewidth=1, label="chance")
    ax.set_yticks(y, labels)
    ax.invert_yaxis()
    ax.set_xlabel("accuracy (%), mean over seeds")
    n = int(table["n_seeds"].max())
    ax.set_title(f"Seen against unseen devices ({n} seed{'s' if n != 1 else ''})")
    ax.legend(loc="lower right", frameon=True)
    return fig


def owned_by_comparison(name: str) -> bool:
    return name in COMPARISON_FILES


def write_comparison(results_dir: str | Path, out_dir: str | Path, profile: str,
                     dataset: str = "dcase2020", names: Iterable[str] | None = None,
                     ) -> dict[str, Path]:
    """``comparison.csv`` (the table with the paired columns against joint training,
    also the figure's CSV), ``comparison.md``,
    ``comparison_seeds.csv`` and ``comparison.{png,pdf}`` in ``out_dir``, all or
    nothing. Returns the final paths by suffix."""
    from .style import save_figure

    seeds = comparison_seeds(results_dir, profile, dataset, names)
    table = comparison_table(seeds)
    table = pd.concat([table, paired_table(results_dir, seeds, dataset)], axis=1)
    out = Path(out_dir)
    reads = [results_dir, runs_root(results_dir)]
    with staged_output(out, owned_by_comparison, reads=reads, what="caa unseen") as stage:
        save_figure(comparison_figure(table), stage, COMPARISON_NAME, data=table)
        write_text(stage / f"{COMPARISON_NAME}.md", comparison_markdown(table))
        write_text(stage / f"{COMPARISON_NAME}_seeds.csv", seeds.to_csv(index=False))
    return {suffix: out / f"{COMPARISON_NAME}{suffix}"
            for suffix in (".csv", ".md", "_seeds.csv", ".png", ".pdf")}


__all__ = ["BASELINE", "COMPARISON_FILES", "PAIRED_COLUMNS", "comparison_figure",
           "comparison_markdown", "comparison_seeds", "comparison_table", "method_label",
           "paired_table", "write_comparison"]
