"""Significance tests for the paper's claims and for comparing our own runs.

Three questions, three tools:

* The paper's claims (68.0 % vs 65.0 %, p < 0.01; 68.0 % vs 49.0 %, p < 0.001) are a
  one-tailed two-proportion z-test on *accuracies only* -- no per-clip predictions are
  published -- so :func:`ztest_proportions` recomputes them from the printed numbers and
  an assumed number of test clips. The paper does not say which n it used; see
  :func:`paper_claims`.
* Two of *our* runs evaluated on the same clips are paired data: :func:`mcnemar_exact`
  (exact binomial on the discordant pairs) is the right test there, and
  :func:`paired_runs_test` applies it to two run directories.
* How uncertain one run's per-device macro accuracy is: :func:`bootstrap_macro_accuracy`.

Over a whole results directory (notebook 05 and ``caa significance`` call the same
functions): :func:`strategy_tests` compares the training strategies of each model both
ways, :func:`bootstrap_runs` gives every run's confidence interval, and
:func:`write_significance` writes them with the paper's claims as three CSV files, all
or nothing. Which runs are compared is :func:`caalib.results.selection.pick_runs`' rule
(the runs Tables II/III count); this module reads runs through :mod:`caalib.results`
and :mod:`caalib.rundir`, never through ``caalib.training``, and nothing in
:mod:`caalib.results` imports it.

Accuracies passed to :func:`ztest_proportions` are fractions in [0, 1] by default; pass
``percent=True`` for numbers as printed in the paper. Both are validated, because a
percent silently read as a fraction (or the reverse) gives a plausible-looking z.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats as _st

from . import rundir
from .atomic import write_text
from .constants import DEVICES, SCENE_INDEX
from .errors import CaaError
from .metrics import device_metrics
from .results.output import staged_output
from .results.runs import load_runs
from .results.selection import choose_dataset, pick_runs
from .results.tables import owned_by_tables

#: DCASE 2018 Task 1B evaluate split (study notes section 4; paper section IV-A).
DCASE2018_EVAL_CLIPS: dict[str, int] = {"a": 2518, "b": 180, "c": 180}

_ALTERNATIVES = ("greater", "less", "two-sided")


@dataclass(frozen=True)
class ZTestResult:
    """z statistic, p-value and the pooled standard error (in fraction units)."""

    z: float
    p: float
    se: float


@dataclass(frozen=True)
class McNemarResult:
    """Discordant counts (b: only run 1 right, c: only run 2 right), statistic = b, p."""

    b: int
    c: int
    statistic: float
    p: float
    n: int


@dataclass(frozen=True)
class BootstrapResult:
    """Point estimate and percentile confidence interval (fractions in [0, 1])."""

    estimate: float
    low: float
    high: float
    confidence_level: float
    n_resamples: int


def ztest_proportions(
    acc1: float,
    acc2: float,
    n1: int,
    n2: int,
    alternative: str = "greater",
    *,
    percent: bool = False,
) -> ZTestResult:
    """Two-proportion z-test with pooled standard error.

    ``z = (p1 - p2) / sqrt(p (1 - p) (1/n1 + 1/n2))`` with the pooled
    ``p = (p1 n1 + p2 n2) / (n1 + n2)``. ``alternative="greater"`` tests p1 > p2
    (one-tailed, the paper's choice), ``"less"`` p1 < p2, ``"two-sided"`` p1 != p2.

    A macro (class-averaged) accuracy is not a proportion of clips, so ``p n`` need not
    be an integer; the test then treats the accuracy as if it were one -- which is what
    the paper's claim implicitly does.
    """
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    hi = 100.0 if percent else 1.0
    unit = "percent" if percent else "fraction"
    for name, acc in (("acc1", acc1), ("acc2", acc2)):
        if not (isinstance(acc, int | float | np.floating | np.integer) and 0 <= acc <= hi):
            raise ValueError(f"{name}={acc!r} is not a {unit} in [0, {hi:g}]"
                             + ("" if percent else " (pass percent=True for percentages)"))
    for name, n in (("n1", n1), ("n2", n2)):
        if not (isinstance(n, int | np.integer) and n > 0):
            raise ValueError(f"{name}={n!r} must be a positive integer number of clips")
    p1, p2 = float(acc1) / hi, float(acc2) / hi
    pooled = (p1 * n1 + p2 * n2) / (n1 + n2)
    se = math.sqrt(pooled * (1.0 - pooled) * (1.0 / n1 + 1.0 / n2))
    if se == 0.0:
        z = 0.0 if p1 == p2 else math.copysign(math.inf, p1 - p2)
    else:
        z = (p1 - p2) / se
    if alternative == "greater":
        p = float(_st.norm.sf(z))
    elif alternative == "less":
        p = float(_st.norm.cdf(z))
    else:
        p = float(2.0 * _st.norm.sf(abs(z)))
    return ZTestResult(z=float(z), p=min(p, 1.0), se=se)


#: Plausible test-set sizes the paper could have used for its z-tests (per system).
PAPER_N_CHOICES: dict[str, int] = {
    "all evaluate clips (A+B+C)": sum(DCASE2018_EVAL_CLIPS.values()),  # 2,878
    "device A clips": DCASE2018_EVAL_CLIPS["a"],  # 2,518
    "devices B+C clips": DCASE2018_EVAL_CLIPS["b"] + DCASE2018_EVAL_CLIPS["c"],  # 360
    "one mobile device (B or C)": DCASE2018_EVAL_CLIPS["b"],  # 180
}

#: The paper's two claims: (better %, worse %, stated p bound, description).
PAPER_CLAIMS: tuple[tuple[float, float, float, str], ...] = (
    (68.0, 65.0, 0.01, "multi-task atrous att vs single-device atrous att"),
    (68.0, 49.0, 0.001, "multi-task atrous att vs single-device nopool roi"),
)


def paper_claims(n_choices: dict[str, int] | None = None) -> pd.DataFrame:
    """Recompute the paper's two one-tailed z-tests under each plausible n.

    The paper reports Avg accuracies (mean over devices of macro accuracies) and
    "p < 0.01" / "p < 0.001" without saying how many clips entered the test. The
    candidates: all 2,878 evaluate clips (the same n for both systems); only device A's
    2,518; only the 360 mobile-device clips (the paper's robustness argument is about B
    and C); a single mobile device's 180. Returns one row per claim x n with columns
    claim, acc1, acc2, n_choice, n, z, p, se, stated_bound, holds.
    """
    rows = []
    for acc1, acc2, bound, claim in PAPER_CLAIMS:
        for label, n in (n_choices or PAPER_N_CHOICES).items():
            r = ztest_proportions(acc1, acc2, n, n, "greater", percent=True)
            rows.append({
                "claim": claim, "acc1": acc1, "acc2": acc2, "n_choice": label, "n": n,
                "z": r.z, "p": r.p, "se": r.se, "stated_bound": bound,
                "holds": r.p < bound,
            })
    return pd.DataFrame(rows)


def discordant_counts(correct1: np.ndarray, correct2: np.ndarray) -> tuple[int, int, int]:
    """(b, c, n) of two systems' per-clip correctness on the same n clips: b clips only
    system 1 got right, c only system 2."""
    c1 = np.asarray(correct1, dtype=bool)
    c2 = np.asarray(correct2, dtype=bool)
    if c1.shape != c2.shape or c1.ndim != 1:
        raise ValueError(f"correct1 and correct2 must be 1-D of equal length, "
                         f"got shapes {c1.shape} and {c2.shape}")
    return int(np.sum(c1 & ~c2)), int(np.sum(~c1 & c2)), int(c1.size)


def mcnemar_exact(
    correct1: Sequence[bool], correct2: Sequence[bool], alternative: str = "two-sided"
) -> McNemarResult:
    """Exact McNemar test on paired per-clip correctness of two systems.

    Only discordant clips carry information: b = run 1 right and run 2 wrong, c = the
    reverse. Under H0 b ~ Binomial(b + c, 1/2). ``alternative="greater"`` tests that run
    1 is better. No discordant pairs gives p = 1.
    """
    if alternative not in _ALTERNATIVES:
        raise ValueError(f"alternative must be one of {_ALTERNATIVES}, got {alternative!r}")
    b, c, n = discordant_counts(correct1, correct2)
    p = 1.0 if b + c == 0 else float(_st.binomtest(b, b + c, 0.5, alternative=alternative).pvalue)
    return McNemarResult(b=b, c=c, statistic=float(b), p=p, n=n)


def bootstrap_macro_accuracy(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    devices: Sequence[str],
    *,
    key: str = "avg",
    n_resamples: int = 1000,
    confidence_level: float = 0.95,
    seed: int = 0,
) -> BootstrapResult:
    """Stratified percentile bootstrap CI of a per-device macro accuracy.

    Clips are resampled with replacement *within each device*, so every resample keeps
    the evaluate split's device counts (2,518 / 180 / 180) and the "avg" over devices
    stays defined. ``key`` is a device letter or "avg". The metric is
    :func:`caalib.metrics.device_metrics`, the study's only definition of accuracy.
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    devices = np.asarray(devices).astype(str)
    if not (y_true.shape == y_pred.shape == devices.shape) or y_true.ndim != 1:
        raise ValueError("y_true, y_pred and devices must be 1-D of equal length")
    if y_true.size == 0:
        raise ValueError("no clips to bootstrap")
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level}")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    point = device_metrics(y_true, y_pred, devices)["accuracy"]
    if key not in point:
        raise ValueError(f"key {key!r} not available; devices present: {sorted(point)}")
    rng = np.random.default_rng(seed)
    groups = [np.flatnonzero(devices == d) for d in DEVICES if (devices == d).any()]
    values = np.empty(n_resamples)
    for i in range(n_resamples):
        idx = np.concatenate([g[rng.integers(0, g.size, g.size)] for g in groups])
        values[i] = device_metrics(y_true[idx], y_pred[idx], devices[idx])["accuracy"][key]
    alpha = (1 - confidence_level) / 2
    low, high = np.nanquantile(values, [alpha, 1 - alpha])
    return BootstrapResult(estimate=float(point[key]), low=float(low), high=float(high),
                           confidence_level=confidence_level, n_resamples=n_resamples)


def read_predictions(run_dir: str | Path) -> pd.DataFrame:
    """A run's predictions.csv with a boolean ``correct`` column, checked complete
    against its metrics.json (:func:`caalib.rundir.read_predictions`)."""
    return rundir.read_predictions(run_dir)


def pair_predictions(p1: pd.DataFrame, p2: pd.DataFrame, name1: str | Path, name2: str | Path,
                     source: str | None = None) -> pd.DataFrame:
    """Two runs' predictions side by side (suffixes ``_1``/``_2``), clip by clip.

    Restricted to ``source`` (a recording device, a/b/c) when given. The two runs must
    cover exactly the same clips there, recorded on the same source with the same
    label: a paired test on the clips that happen to be in both would quietly test a
    subset.
    """
    where = ""
    if source is not None:
        if source not in DEVICES:
            raise CaaError(f"source must be one of {DEVICES}, got {source!r}")
        p1, p2 = p1[p1["source"] == source], p2[p2["source"] == source]
        where = f" on source {source}"
    s1, s2 = set(p1["filename"]), set(p2["filename"])
    if not s1 & s2:
        raise CaaError(f"{name1} and {name2} share no evaluate clips{where}")
    if s1 != s2:
        only1, only2 = sorted(s1 - s2), sorted(s2 - s1)
        example = (only1 or only2)[0]
        raise CaaError(f"{name1} and {name2} do not cover the same clips{where}: "
                       f"{len(only1)} only in the first, {len(only2)} only in the second "
                       f"(e.g. {example!r}); compare runs evaluated on the same clips "
                       "(a single-device run: on its own device)")
    merged = p1.merge(p2, on="filename", suffixes=("_1", "_2"), validate="one_to_one")
    for col, what in (("source", "source"), ("scene_label", "label")):
        bad = merged[f"{col}_1"] != merged[f"{col}_2"]
        if bad.any():
            raise CaaError(f"{name1} and {name2} disagree on the {what} of "
                           f"{merged['filename'][bad].iloc[0]!r}")
    return merged


def paired_runs_test(
    run_dir1: str | Path, run_dir2: str | Path, source: str | None = None,
    alternative: str = "two-sided",
) -> McNemarResult:
    """McNemar's exact test on two finished runs' predictions (optionally one source).

    Both predictions files must be complete (:func:`caalib.rundir.read_predictions`) and
    cover the same clips (:func:`pair_predictions`): a single-device run only covers its
    own source, so compare it to another run on that source (``source=``).
    """
    for run_dir in (run_dir1, run_dir2):
        rundir.check_run(run_dir)
    p1, p2 = read_predictions(run_dir1), read_predictions(run_dir2)
    merged = pair_predictions(p1, p2, run_dir1, run_dir2, source)
    return mcnemar_exact(merged["correct_1"].to_numpy(), merged["correct_2"].to_numpy(),
                         alternative=alternative)


# -- our runs, strategy against strategy (notebook 05, caa significance) ---------------

#: The comparisons made between training strategies of one model (strategy 1 vs 2).
STRATEGY_PAIRS: tuple[tuple[str, str], ...] = (
    ("multi_task", "single"),
    ("multi_task", "joint"),
    ("teacher_forcing", "joint"),
    ("multi_task", "teacher_forcing"),
)

STRATEGY_TEST_COLUMNS: tuple[str, ...] = (
    "model", "topology", "pooling", "run1", "run2", "strategy1", "strategy2", "test",
    "device", "acc1", "acc2", "n", "b", "c", "z", "p", "alternative")
BOOTSTRAP_COLUMNS: tuple[str, ...] = (
    "run", "topology", "pooling", "strategy", "train_source", "cond_layer", "device",
    "accuracy", "ci_low", "ci_high", "n_clips")


def _avg(sel: pd.DataFrame, strategy: str) -> float:
    if strategy == "single":  # three runs, each on its own device (Table II's row)
        vals = [sel.loc[sel["train_source"] == d, f"acc_{d}"] for d in DEVICES]
        vals = [float(v.iloc[0]) for v in vals if len(v)]
        return float(np.mean(vals)) if len(vals) == len(DEVICES) else float("nan")
    return float(sel["acc_avg"].iloc[0])


def _n_eval(run_dir: str | Path) -> dict[str, int]:
    return {k: int(v) for k, v in rundir.read_metrics(run_dir)["n_eval"].items()}


def strategy_tests(runs: pd.DataFrame, dataset: str = "dcase2018") -> pd.DataFrame:
    """Our runs tested like the paper (one-tailed z on Avg) and paired (exact McNemar).

    For every model with runs of both strategies of a pair in :data:`STRATEGY_PAIRS`
    (chosen by :func:`caalib.results.selection.pick_runs`): a one-tailed two-proportion
    z-test of the Avg accuracies with n = all evaluate clips (the paper's kind of test,
    which ignores that both systems saw the same clips), and two-sided exact McNemar
    tests on the per-clip predictions, per device (single-device runs only cover their
    own device) and, where both runs cover every device, on all clips. Accuracies are
    fractions. Pairs with a missing run are left out; an empty frame (columns
    :data:`STRATEGY_TEST_COLUMNS`) means no pair could be formed.
    """
    rows: list[dict[str, Any]] = []
    read: dict[str, pd.DataFrame] = {}

    def predictions(path: Any) -> pd.DataFrame:  # a run's file read once, whatever pairs it
        if str(path) not in read:
            read[str(path)] = read_predictions(path)
        return read[str(path)]

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
            if s1 == "single":  # the McNemar pairs start from a run scored on all devices
                continue
            p1 = predictions(r1["path"].iloc[0])
            preds2 = {d: predictions(p) for d, p in
                      zip(r2["train_source"], r2["path"], strict=True)} if s2 == "single" else {
                      None: predictions(r2["path"].iloc[0])}
            merged_all = []
            name1 = r1["name"].iloc[0]
            for key, p2 in preds2.items():
                name2 = (r2["name"].iloc[0] if key is None
                         else r2.loc[r2["train_source"] == key, "name"].iloc[0])
                m = pair_predictions(p1, p2, name1, name2, source=key)  # same clips
                merged_all.append(m)
                for dev in DEVICES if key is None else (key,):
                    md = m[m["source_1"] == dev]
                    if md.empty:
                        continue
                    mc = mcnemar_exact(md["correct_1"], md["correct_2"], "two-sided")
                    rows.append({**base, "run1": name1, "run2": name2,
                                 "test": "McNemar (exact)", "device": dev,
                                 "acc1": float(md["correct_1"].mean()),
                                 "acc2": float(md["correct_2"].mean()), "n": len(md),
                                 "b": mc.b, "c": mc.c, "p": mc.p, "alternative": "two-sided"})
            m = pd.concat(merged_all, ignore_index=True)
            if set(m["source_1"]) == set(DEVICES) and s2 != "single":
                mc = mcnemar_exact(m["correct_1"], m["correct_2"], "two-sided")
                rows.append({**base, "run1": name1, "run2": r2["name"].iloc[0],
                             "test": "McNemar (exact)", "device": "all",
                             "acc1": float(m["correct_1"].mean()),
                             "acc2": float(m["correct_2"].mean()), "n": len(m), "b": mc.b,
                             "c": mc.c, "p": mc.p, "alternative": "two-sided"})
    return pd.DataFrame(rows, columns=list(STRATEGY_TEST_COLUMNS))


def bootstrap_runs(runs: pd.DataFrame, n_resamples: int = 1000, seed: int = 0,
                   confidence_level: float = 0.95) -> pd.DataFrame:
    """A percentile bootstrap CI of each run's headline accuracy from its predictions.

    The headline is Avg for runs evaluated on all devices and the run's own device for
    single-device runs (fractions; "accuracy" is the macro accuracy of the metric).
    Columns :data:`BOOTSTRAP_COLUMNS`, one row per run.
    """
    rows = []
    for run in runs.itertuples(index=False):
        pred = read_predictions(run.path)
        key = run.train_source if run.strategy == "single" and run.train_source else "avg"
        ci = bootstrap_macro_accuracy(
            pred["scene_label"].map(SCENE_INDEX), pred["predicted"].map(SCENE_INDEX),
            pred["source"], key=key, n_resamples=n_resamples, seed=seed,
            confidence_level=confidence_level)
        rows.append({"run": run.name, "topology": run.topology, "pooling": run.pooling,
                     "strategy": run.strategy, "train_source": run.train_source,
                     "cond_layer": run.cond_layer, "device": key, "accuracy": ci.estimate,
                     "ci_low": ci.low, "ci_high": ci.high, "n_clips": len(pred)})
    return pd.DataFrame(rows, columns=list(BOOTSTRAP_COLUMNS))


# -- the significance tables as files ---------------------------------------------------

#: The files ``write_significance`` owns in its output directory (beside Tables I-III),
#: by the name of the table each holds.
SIGNIFICANCE_FILES: dict[str, str] = {
    "paper": "significance_paper.csv",   # the paper's two z-tests under each n
    "ours": "significance_ours.csv",     # strategy_tests
    "bootstrap": "bootstrap_ci.csv",     # bootstrap_runs
}


def owned_by_significance(name: str) -> bool:
    """Whether ``write_significance`` owns an entry of its output directory."""
    return name in SIGNIFICANCE_FILES.values()


def default_resamples(profile: str | None) -> int:
    """Bootstrap resamples per run: 200 on the ``tiny`` test profile, else 1,000."""
    return 200 if profile == "tiny" else 1000


def significance_tables(runs: pd.DataFrame, dataset: str = "dcase2018",
                        n_resamples: int = 1000, seed: int = 0) -> dict[str, pd.DataFrame]:
    """The three significance tables of ``runs`` on ``dataset``, keyed as
    :data:`SIGNIFICANCE_FILES`: the paper's claims (:func:`paper_claims`), our strategy
    tests (:func:`strategy_tests`) and every run's bootstrap CI (:func:`bootstrap_runs`)."""
    runs = runs[runs["dataset"] == dataset]
    return {"paper": paper_claims(), "ours": strategy_tests(runs, dataset),
            "bootstrap": bootstrap_runs(runs, n_resamples=n_resamples, seed=seed)}


def write_significance(results_dir: str | Path, out_dir: str | Path, *,
                       profile: str | None = None, dataset: str | None = None,
                       n_resamples: int | None = None, seed: int = 0
                       ) -> tuple[list[Path], dict[str, pd.DataFrame]]:
    """``caa significance`` and notebook 05: the significance tables as CSV, all or nothing.

    The runs are the finished runs of ``results_dir`` of one ``profile`` (required when
    there are several) on ``dataset`` (default:
    :func:`caalib.results.selection.choose_dataset`); ``n_resamples`` defaults to
    :func:`default_resamples` of the profile. Every table is computed first, then the
    three files of :data:`SIGNIFICANCE_FILES` replace their predecessors in ``out_dir``
    at once (:func:`caalib.results.output.staged_output`): everything else there (the
    tables of ``caa tables`` included) is kept. Returns the written paths and the tables.
    """
    runs = load_runs(results_dir)
    profiles = sorted(runs["profile"].dropna().unique())
    if profile is not None:
        runs = runs[runs["profile"] == profile]
    elif len(profiles) > 1:
        raise CaaError(f"{results_dir}: runs of several profiles {profiles}; choose one "
                       "(profile=..., --profile)")
    else:
        profile = profiles[0] if profiles else None
    dataset = choose_dataset(runs, dataset)
    n = default_resamples(profile) if n_resamples is None else n_resamples
    tables = significance_tables(runs, dataset, n_resamples=n, seed=seed)
    out_dir = Path(out_dir)
    reads = [results_dir, rundir.runs_root(results_dir)]
    with staged_output(out_dir, owned_by_significance, reads=reads, shares=owned_by_tables,
                       what="caa significance") as stage:
        for key, table in tables.items():
            write_text(stage / SIGNIFICANCE_FILES[key], table.to_csv(index=False))
    return [out_dir / SIGNIFICANCE_FILES[k] for k in tables], tables


# -- the significance results for a reader (notebook 05) -------------------------------

#: The columns of :func:`compact_tests`, the table notebook 05 shows (the full table,
#: :data:`STRATEGY_TEST_COLUMNS`, is ``significance_ours.csv``).
COMPACT_TEST_COLUMNS: tuple[str, ...] = (
    "model", "comparison", "test", "devices", "n", "effect", "p", "significant")

_STRATEGY_WORDS = {"multi_task": "multi-task", "single": "single-device", "joint": "joint",
                   "teacher_forcing": "teacher forcing"}


def _strategy_words(strategy: str) -> str:
    return _STRATEGY_WORDS.get(strategy, strategy)


def compact_tests(tests: pd.DataFrame, alpha: float = 0.05) -> pd.DataFrame:
    """The key columns of :func:`strategy_tests`, one row per test, for reading.

    ``comparison`` is "strategy 1 vs strategy 2", ``devices`` the clips tested (``avg``,
    ``all`` or one device), ``effect`` acc1 - acc2 in percentage points (positive: the
    first strategy is better), ``p`` the p-value and ``significant`` whether p < ``alpha``.
    Columns :data:`COMPACT_TEST_COLUMNS`.
    """
    if not 0 < alpha < 1:
        raise ValueError(f"alpha must lie in (0, 1), got {alpha}")
    out = pd.DataFrame({
        "model": tests["model"],
        "comparison": [f"{_strategy_words(a)} vs {_strategy_words(b)}"
                       for a, b in zip(tests["strategy1"], tests["strategy2"], strict=True)],
        "test": tests["test"].str.split(" ").str[0],
        "devices": tests["device"],
        "n": tests["n"].astype("Int64"),
        "effect": 100.0 * (tests["acc1"].astype(float) - tests["acc2"].astype(float)),
        "p": tests["p"].astype(float),
        "significant": tests["p"].astype(float) < alpha,
    }, columns=list(COMPACT_TEST_COLUMNS))
    return out.reset_index(drop=True)


def for_display(table: pd.DataFrame, decimals: int = 3, missing: str = "–") -> pd.DataFrame:
    """``table`` rounded, with every missing value (NaN, None, ``<NA>``) shown as ``missing``.

    pandas prints a float column's gaps as ``NaN`` and a nullable column's as ``<NA>``;
    a reader should see one mark for "no value". Only for display: the result holds
    objects, not numbers.
    """
    shown = table.round(decimals).astype(object)
    return shown.where(table.notna(), missing)


def significance_summary(tests: pd.DataFrame, alpha: float = 0.05,
                         model: str = "atrous+att") -> str:
    """One sentence on what our strategy tests found, from the results themselves.

    The headline is the paper's own comparison made on our runs: the one-tailed z-test
    of multi-task against single-device training of ``model`` (the paper's CAA-Net
    topology by default), falling back to that model's, then any model's, first z-test;
    followed by how many of all the tests reach ``alpha``.
    """
    if tests.empty:
        return "On this run, no pair of training strategies of one model could be tested."
    z_rows = tests[tests["test"].str.startswith("z")]
    pick = z_rows[(z_rows["model"] == model) & (z_rows["strategy1"] == "multi_task")
                  & (z_rows["strategy2"] == "single")]
    for candidate in (z_rows[z_rows["model"] == model], z_rows):
        if pick.empty:
            pick = candidate
    n_sig = int((tests["p"].astype(float) < alpha).sum())
    tail = (f"{n_sig} of the {len(tests)} tests of our runs "
            f"{'is' if n_sig == 1 else 'are'} significant at {alpha:g}.")
    if pick.empty:
        return f"On this run, {tail}"
    row = pick.iloc[0]
    s1, s2 = _strategy_words(row["strategy1"]), _strategy_words(row["strategy2"])
    verdict = "significant" if row["p"] < alpha else "not significant"
    direction = "better" if row["acc1"] > row["acc2"] else (
        "worse" if row["acc1"] < row["acc2"] else "equal")
    return (f"On this run, {s1} vs {s2} ({row['model']}, one-tailed z-test on Avg, "
            f"n = {int(row['n'])}): {100 * row['acc1']:.1f} % vs {100 * row['acc2']:.1f} % "
            f"({s1} {direction}), z = {row['z']:.3f}, p = {row['p']:.3g}, {verdict} at "
            f"{alpha:g}. {tail[0].upper()}{tail[1:]}")
