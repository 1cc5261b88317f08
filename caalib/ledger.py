"""The claims ledger: each of the paper's claims, what the evidence says, with the power to say it.

``caa claims --profile tiny|demo|gpu RESULTS_DIR`` builds ``RESULTS_DIR/claims/ledger.csv``
(and ``ledger.md``): for every claim of ``results/paper/claims.csv``

* the paper's own numbers (:func:`caalib.claims.paper_evidence`);
* a controlled simulation: the runs the claim needs, trained on a synthetic dataset
  (several seeds) through the sweep machinery, compared clip by clip
  (:mod:`caalib.paired_stats`: paired bootstrap CI, McNemar mid-p, minimum detectable
  effect), with a verdict by the rules of docs/claims.md ("The simulation column"),
  fixed before any result was seen;
* the real data: the same comparison on the ``paper``-profile runs of DCASE 2018 found
  in ``RESULTS_DIR/runs`` when there are any, empty otherwise.

Which runs a claim needs comes from its row of claims.csv (:func:`claim_comparison`);
how large the simulation is comes from :data:`LEDGER_PROFILES`, the one place that maps
a ledger profile to a synthetic-data profile, a training profile, seeds and models.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import rundir
from .atomic import write_text
from .claims import CLAIM_TABLES, Claim, claim_units, load_claims, paper_evidence
from .constants import DEVICES, PAPER_BEST_LAYERS
from .errors import CaaError, DatasetError
from .paired_stats import ALPHA, POWER, paired_comparison
from .results.output import staged_output
from .results.runs import load_runs
from .spec import CONDITIONED_STRATEGIES, STRATEGIES

# ---------------------------------------------------------------- profiles (one place)


@dataclass(frozen=True)
class LedgerProfile:
    """How large the simulation column is.

    ``synth``: the synthetic-data profile (:mod:`caalib.synth`); ``train``: the training
    profile, with ``overrides`` of its fields; ``seeds`` per configuration; ``models``:
    the (topology, pooling) pairs trained (a claim about other models is not simulated).
    """

    name: str
    synth: str
    train: str
    seeds: int
    models: tuple[tuple[str, str], ...]
    overrides: dict[str, Any] = field(default_factory=dict)
    n_resamples: int = 2000


_MODELS = (("pool", "att"), ("atrous", "att"))

#: The ledger reads final metrics alone, so its runs score the evaluate split after the
#: last iteration only, unless a rule reads earlier scores (the released λ of multi-task
#: runs); an execution-only setting: run names and final metrics are those of any schedule.
_FINAL = {"eval_schedule": "final"}

#: Ledger profiles. ``synth`` names the simulation's dataset profile: the simulation
#: profiles built for this question (docs/simulation.md: the real set's 11:1 imbalance,
#: parallel recordings, location splits, device shift 1.5, large evaluate splits).
LEDGER_PROFILES: dict[str, LedgerProfile] = {
    # the test suite's: seconds, 2 seeds -- underpowered by design, every verdict inconclusive
    "tiny": LedgerProfile("tiny", synth="sim-tiny", train="tiny", seeds=2,
                          models=(("atrous", "att"),),
                          overrides={"iterations": 10, "eval_every": 10,
                                     "checkpoint_every": 10, **_FINAL}, n_resamples=300),
    # 2 CPU cores, well under an hour
    "demo": LedgerProfile("demo", synth="sim-demo", train="demo", seeds=5, models=_MODELS,
                          overrides=dict(_FINAL)),
    # one H100/H200, about ten minutes: paper-size models, 1,500 iterations
    "gpu": LedgerProfile("gpu", synth="sim-gpu", train="paper", seeds=5, models=_MODELS,
                         overrides={"iterations": 1500, **_FINAL}),
}

#: Seeds per configuration below which no simulation verdict is other than inconclusive.
MIN_SEEDS = 5
#: The largest equivalence margin (percentage points) a "similar" claim may be held to.
EQUIVALENCE_MAX = 3.0
LEDGER_VERDICTS: tuple[str, ...] = ("supported", "contradicted", "inconclusive")

#: Files of the ledger in RESULTS_DIR/claims.
LEDGER_FILES: tuple[str, ...] = ("ledger.csv", "ledger.md")
LEDGER_COLUMNS: tuple[str, ...] = (
    "claim", "statement", "source", "paper_evidence", "estimate", "ci_low", "ci_high",
    "p_value", "mde", "n_seeds", "verdict", "paper_verdict", "paper_effect", "comparison",
    "profile", "real_data",
)
#: Where the explanation study writes its faithfulness table (columns below).
FAITHFULNESS_CSV = Path("explain") / "faithfulness.csv"
FAITHFULNESS_COLUMNS: tuple[str, ...] = ("run", "model", "localisation", "localisation_chance")
#: The ``method`` of the attention rows of that table (the others are gradient maps).
ATTENTION_METHOD = "attention"


class LedgerError(CaaError):
    """The ledger cannot be built (a missing run, runs that do not share clips)."""


# ---------------------------------------------------------------- claims -> comparisons


@dataclass(frozen=True)
class Arm:
    """One configuration: a model under a strategy (conditioned at the paper's best layer)."""

    topology: str
    pooling: str
    strategy: str

    @property
    def cond_layer(self) -> int | None:
        if self.strategy in CONDITIONED_STRATEGIES:
            return PAPER_BEST_LAYERS[(self.topology, self.pooling)]
        return None

    def label(self) -> str:
        return f"{self.topology}+{self.pooling} {self.strategy}"


@dataclass(frozen=True)
class Comparison:
    """What the simulation compares for a claim: better arms against worse arms, on
    ``devices`` (their accuracies averaged), ``kind`` ``wins`` (better > worse) or
    ``similar`` (no difference)."""

    kind: str
    better: tuple[Arm, ...]
    worse: tuple[Arm, ...]
    devices: tuple[str, ...]

    def describe(self) -> str:
        dev = "Avg of " + "/".join(d.upper() for d in self.devices) if len(self.devices) > 1 \
            else f"device {self.devices[0].upper()}"
        sign = ">" if self.kind == "wins" else "~"
        return (f"{', '.join(a.label() for a in self.better)} {sign} "
                f"{', '.join(a.label() for a in self.worse)} ({dev})")


def claim_comparison(claim: Claim, models: Sequence[tuple[str, str]]) -> Comparison | str:
    """The paired comparison that simulates ``claim`` with ``models``, or why there is none.

    Table II claims (``wins``, ``best``, ``ztest``, two-level ``similar``) become one
    contrast: every cell of a better level against every cell of a worse level (for
    ``best``: every competitor), restricted to the cells that have a partner agreeing on
    every key but the factor, on the claim's devices (``avg``: A, B and C). Claims on
    devices (different clips), on Table I's layers or on DCASE 2019 only are not
    simulated; the string says why.
    """
    if claim.check == "none":
        return f"needs {claim.needs}"
    if "table2" not in CLAIM_TABLES[claim.table]:
        return (f"rests on {claim.table} (conditioned layers or DCASE 2019), which the "
                "simulation does not train")
    if "device" in claim.factor:
        return "compares devices, i.e. different clips: no paired comparison"
    if claim.check == "differs" or (claim.check == "similar" and len(claim.better) != 2):
        return "a spread over more than two levels is not simulated"
    scope = claim.scope
    dev = scope.get("device", ("avg",))
    devices = DEVICES if "avg" in dev else tuple(d for d in DEVICES if d in dev)
    cells = []
    for topology, pooling in models:
        for strategy in STRATEGIES:
            cell = {"network": topology, "pooling": pooling, "strategy": strategy}
            if all(cell[k] in v for k, v in scope.items() if k in cell):
                cells.append(cell)
    rest_keys = [k for k in ("network", "pooling", "strategy") if k not in claim.factor]

    def level(c: dict[str, str]) -> tuple[object, ...]:
        return tuple(c[k] for k in claim.factor)

    def rest(c: dict[str, str]) -> tuple[object, ...]:
        return tuple(c[k] for k in rest_keys)

    if claim.check == "similar":
        good = [c for c in cells if level(c) == claim.better[0]]
        bad = [c for c in cells if level(c) == claim.better[1]]
    else:
        good = [c for c in cells if level(c) in claim.better]
        bad = [c for c in cells if level(c) in claim.worse] if claim.worse \
            else [c for c in cells if level(c) not in claim.better]
    shared = {rest(c) for c in good} & {rest(c) for c in bad}
    good = [c for c in good if rest(c) in shared]
    bad = [c for c in bad if rest(c) in shared]
    if not good or not bad:
        wanted = "/".join(claim.factor)
        return (f"needs {wanted} levels of models the simulation does not train "
                f"(it trains {', '.join(f'{t}+{p}' for t, p in models)})")

    def arm(c: dict[str, str]) -> Arm:
        return Arm(c["network"], c["pooling"], c["strategy"])

    kind = "similar" if claim.check == "similar" else "wins"
    return Comparison(kind, tuple(arm(c) for c in good), tuple(arm(c) for c in bad), devices)


def paper_effect(claim: Claim) -> float:
    """The effect the paper claims, in points: the mean of its own units' differences
    (a ``ztest``: the two quoted numbers); NaN for ``similar`` and unchecked claims."""
    if claim.check == "ztest":
        return claim.quoted[0] - claim.quoted[1]
    if claim.check in ("wins", "best"):
        return float(claim_units(claim)["diff"].mean())
    return math.nan


def needed_runs(comparison: Comparison) -> list[tuple[Arm, str | None]]:
    """(arm, train_source) of every run a comparison reads, per seed."""
    out: list[tuple[Arm, str | None]] = []
    for a in (*comparison.better, *comparison.worse):
        for src in comparison.devices if a.strategy == "single" else (None,):
            if (a, src) not in out:
                out.append((a, src))
    return out


# ---------------------------------------------------------------- verdict rules


def simulation_verdict(kind: str, estimate: float, low: float, high: float, mde: float,
                       n_seeds: int, claimed: float) -> str:
    """The simulation column's verdict (docs/claims.md), all numbers in points.

    ``wins``: supported when n_seeds >= MIN_SEEDS, the CI lies above 0 and the MDE is
    at most the paper's claimed effect; contradicted when n_seeds >= MIN_SEEDS and the CI
    lies below 0, or the comparison could see the paper's effect (MDE <= it), the CI
    excludes it and does not lie above 0. ``similar``: supported when n_seeds >=
    MIN_SEEDS, MDE <= EQUIVALENCE_MAX and the CI lies inside (-MDE, MDE); contradicted
    when n_seeds >= MIN_SEEDS and the CI lies wholly outside [-MDE, MDE]. Anything
    else, an underpowered comparison included, is inconclusive.
    """
    if kind not in ("wins", "similar"):
        raise ValueError(f"kind must be 'wins' or 'similar', got {kind!r}")
    values = (estimate, low, high, mde)
    if n_seeds < MIN_SEEDS or any(math.isnan(v) for v in values):
        return "inconclusive"
    if kind == "wins":
        powered = not math.isnan(claimed) and claimed > 0 and mde <= claimed
        if low > 0 and powered:
            return "supported"
        if high < 0 or (powered and high < claimed and low <= 0):
            return "contradicted"
        return "inconclusive"
    if mde <= EQUIVALENCE_MAX and -mde < low and high < mde:
        return "supported"
    if low > mde or high < -mde:
        return "contradicted"
    return "inconclusive"


def faithfulness_verdict(deltas: Sequence[float], n_resamples: int = 2000,
                         seed: int = 0) -> dict[str, Any]:
    """Whether attention beats chance at locating the evidence (docs/claims.md).

    ``deltas``: localisation minus its chance level, one per run. Estimate their mean
    with a percentile bootstrap CI over runs; supported when there are at least
    MIN_SEEDS runs and the CI lies above 0, contradicted when at least MIN_SEEDS and it
    lies at or below 0, else inconclusive. No MDE (no paired clips).
    """
    d = np.asarray(deltas, dtype=float)
    d = d[np.isfinite(d)]
    if d.size == 0:
        return {"estimate": math.nan, "ci_low": math.nan, "ci_high": math.nan,
                "n_seeds": 0, "verdict": "inconclusive"}
    rng = np.random.default_rng(seed)
    means = d[rng.integers(0, d.size, (n_resamples, d.size))].mean(axis=1)
    low, high = np.quantile(means, [0.025, 0.975])
    verdict = "inconclusive"
    if d.size >= MIN_SEEDS:
        verdict = "supported" if low > 0 else "contradicted" if high <= 0 else "inconclusive"
    return {"estimate": 100 * float(d.mean()), "ci_low": 100 * float(low),
            "ci_high": 100 * float(high), "n_seeds": int(d.size), "verdict": verdict}


# ---------------------------------------------------------------- runs -> numbers


def _arm_rows(runs: pd.DataFrame, arm: Arm, source: str | None) -> pd.DataFrame:
    sel = runs[(runs["topology"] == arm.topology) & (runs["pooling"] == arm.pooling)
               & (runs["strategy"] == arm.strategy)]
    if arm.cond_layer is not None:
        sel = sel[sel["cond_layer"] == arm.cond_layer]
    if source is not None:
        sel = sel[sel["train_source"] == source]
    return sel


def arm_correctness(runs: pd.DataFrame, comparison: Comparison
                    ) -> tuple[list[np.ndarray], list[np.ndarray], np.ndarray] | str:
    """0/1 correctness ``[seeds, clips]`` per arm (better, worse) and the clips' devices.

    Every arm uses the seeds all its runs have; clips are the comparison's devices'
    evaluate clips sorted by filename, and must be the same for every arm. A string
    says what is missing.
    """
    frames: dict[tuple[Arm, str | None], dict[int, pd.DataFrame]] = {}
    for arm, src in needed_runs(comparison):
        sel = _arm_rows(runs, arm, src)
        if sel.empty:
            return f"no run of {arm.label()}" + (f" on {src.upper()}" if src else "")
        frames[(arm, src)] = {int(r.seed): rundir.read_predictions(r.path)
                              for r in sel.itertuples()}
    reference: pd.Series | None = None
    strata = None
    arrays: dict[Arm, np.ndarray] = {}
    for arm in (*comparison.better, *comparison.worse):
        srcs = comparison.devices if arm.strategy == "single" else (None,)
        seeds = sorted(set.intersection(*(set(frames[(arm, s)]) for s in srcs)))
        if not seeds:
            return f"no seed of {arm.label()} with a run on every device"
        rows = []
        for seed in seeds:
            parts = []
            for d in comparison.devices:
                pred = frames[(arm, d if arm.strategy == "single" else None)][seed]
                parts.append(pred[pred["source"] == d].sort_values("filename"))
            joined = pd.concat(parts, ignore_index=True)
            if reference is None:
                reference = joined["filename"]
                strata = joined["source"].to_numpy(dtype=str)
            elif not joined["filename"].equals(reference):
                raise LedgerError(f"{arm.label()} seed {seed} was scored on other clips than "
                                  f"{comparison.better[0].label()}: the runs of a comparison "
                                  "must come from one dataset")
            rows.append(joined["correct"].to_numpy(dtype=float))
        arrays[arm] = np.vstack(rows)
    assert strata is not None
    return ([arrays[a] for a in comparison.better], [arrays[a] for a in comparison.worse],
            strata)


def compare(runs: pd.DataFrame, comparison: Comparison, n_resamples: int = 2000,
            seed: int = 0) -> dict[str, Any] | str:
    """The comparison's numbers in points (estimate, CI, p, MDE, seeds), or what is missing.

    MDE: :func:`caalib.paired_stats.paired_mde` with psi the mean discordance of seed
    pairs and n the effective number of clips of the device-averaged difference,
    D^2 / sum_d 1/n_d (docs/claims.md). p: two-sided McNemar mid-p on the per-clip
    majority over each side's seeds and arms.
    """
    got = arm_correctness(runs, comparison)
    if isinstance(got, str):
        return got
    better, worse, strata = got
    num = paired_comparison(better, worse, strata, n_resamples=n_resamples, seed=seed)
    eff = num.effect
    return {"estimate": 100 * eff.estimate, "ci_low": 100 * eff.low, "ci_high": 100 * eff.high,
            "p_value": num.test.p, "mde": 100 * num.mde, "n_seeds": eff.n_seeds,
            "n_clips": eff.n_clips}


def _fmt_numbers(num: dict[str, Any]) -> str:
    return (f"{num['estimate']:+.1f} points [{num['ci_low']:+.1f}, {num['ci_high']:+.1f}], "
            f"MDE {num['mde']:.1f}, p = {num['p_value']:.2g}, {num['n_seeds']} seed(s)")


def _runs_of(results_dir: Path) -> pd.DataFrame:
    """The finished runs of a results directory; an empty frame when it has no runs/."""
    if not (results_dir / rundir.RUNS_DIR).is_dir():
        return pd.DataFrame(columns=["profile", "dataset"])
    return load_runs(results_dir)


def real_data_column(runs: pd.DataFrame, comparison: Comparison | str, claimed: float,
                     dataset: str = "dcase2018") -> str:
    """The real-data column: the same comparison on the ``paper``-profile runs of
    ``dataset`` among ``runs`` (a results directory's, :func:`_runs_of`); empty when
    there are none or they lack an arm (never filled in otherwise)."""
    if isinstance(comparison, str) or runs.empty:
        return ""
    runs = runs[(runs["profile"] == "paper") & (runs["dataset"] == dataset)]
    if runs.empty:
        return ""
    num = compare(runs, comparison)
    if isinstance(num, str):
        return ""
    v = simulation_verdict(comparison.kind, num["estimate"], num["ci_low"], num["ci_high"],
                           num["mde"], num["n_seeds"], claimed)
    return f"{v}: {_fmt_numbers(num)}"


# ---------------------------------------------------------------- running what is missing


def simulation_configs(profile: LedgerProfile, comparisons: Sequence[Comparison],
                       dataset: str = "dcase2018") -> list[Any]:
    """The TrainConfigs the simulation needs (each once), for every seed."""
    from .training.config import TrainConfig

    seen: dict[str, Any] = {}
    for seed in range(profile.seeds):
        for comp in comparisons:
            for arm, src in needed_runs(comp):
                cfg = TrainConfig.from_profile(
                    profile.train, topology=arm.topology, pooling=arm.pooling,
                    strategy=arm.strategy, train_source=src, cond_layer=arm.cond_layer,
                    dataset=dataset, seed=seed, **profile.overrides)
                seen.setdefault(cfg.run_name, cfg)
    return list(seen.values())


def planned_configs(profile: str, claims_path: str | Path | None = None) -> list[Any]:
    """Every run the simulation of ``profile`` trains (``caa claims --dry-run``)."""
    if profile not in LEDGER_PROFILES:
        raise LedgerError(f"profile: {profile!r} is not one of {', '.join(LEDGER_PROFILES)}")
    prof = LEDGER_PROFILES[profile]
    comparisons = [claim_comparison(c, prof.models) for c in load_claims(claims_path)]
    return simulation_configs(prof, [c for c in comparisons if isinstance(c, Comparison)])


def simulation_sizes(profile: str, data_dir: str | Path | None = None) -> tuple[int, int]:
    """(evaluate clips, frames per clip) the simulation's runs are priced at: those of
    ``data_dir`` when it holds a dataset, else of the profile's synthetic set as it will
    be synthesised (``caa claims --dry-run``, ``--jobs auto``)."""
    if data_dir is not None and (Path(data_dir) / "meta.csv").is_file():
        from .features.cache import dataset_sizes

        return dataset_sizes(data_dir)
    from .features.recipe import SAMPLE_RATE, n_frames
    from .synth.profiles import SYNTH_PROFILES, profile_counts

    synth = SYNTH_PROFILES[LEDGER_PROFILES[profile].synth]
    sizes = profile_counts(synth, "dcase2018")
    return (sizes["evaluate_a"] + 2 * sizes["evaluate_bc"],
            max(1, n_frames(round(synth.clip_seconds * SAMPLE_RATE))))


def simulation_dir(results_dir: str | Path, profile: str) -> Path:
    """Where a ledger profile keeps its dataset and runs: RESULTS_DIR/simulation/<profile>."""
    return Path(results_dir) / "simulation" / profile


def ensure_data(profile: LedgerProfile, data_dir: Path, progress: bool,
                explicit: bool = False) -> Path:
    """The simulation's dataset: synthesised in ``data_dir`` when missing.

    A dataset already there is used when it is the profile's simulation set (same
    synthesis settings; masks of an older definition are rewritten). Another dataset is
    refused at the default place (it would be read as the simulation's evidence), and
    used with a warning when the user named it (``explicit``: ``caa claims --data``),
    since the verdicts are then about that data.
    """
    from .synth import ensure_synthesized

    try:
        return ensure_synthesized(data_dir, profile.synth, layout="dcase2018", seed=0,
                                  progress=progress)[0]
    except DatasetError as exc:
        if not explicit:
            raise LedgerError(f"{exc} (it is not the `{profile.synth}` simulation set this "
                              "profile reads; pass it with --data to use it anyway)") from None
    rundir.warn(f"{data_dir}: not the `{profile.synth}` simulation set (synth.json "
                "differs or is missing); the simulation's verdicts are about this data")
    return data_dir


def run_simulation(profile: LedgerProfile, comparisons: Sequence[Comparison],
                   results_dir: Path, data_dir: Path, jobs: int = 1,
                   progress: bool = True) -> pd.DataFrame:
    """Train (through :func:`caalib.training.sweep.run_sweep`) every run not yet done."""
    from .training.sweep import run_sweep

    configs = simulation_configs(profile, comparisons)
    return run_sweep(configs, results_dir, data_dir, progress=progress, jobs=jobs)


# ---------------------------------------------------------------- the ledger


def _faithfulness(results_dir: Path) -> dict[str, Any] | str:
    path = results_dir / FAITHFULNESS_CSV
    if not path.is_file():
        return "not measured (no explain/faithfulness.csv: run caa explain)"
    try:
        table = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise LedgerError(f"{path}: not a readable CSV ({exc})") from None
    missing = [c for c in FAITHFULNESS_COLUMNS if c not in table.columns]
    if missing:
        raise LedgerError(f"{path}: missing column(s) {', '.join(missing)}")
    for col in ("localisation", "localisation_chance"):
        values = pd.to_numeric(table[col], errors="coerce")
        if values.isna().any() or not np.isfinite(values).all() or (values < 0).any():
            raise LedgerError(f"{path}: column {col}: every value must be a finite number "
                              ">= 0 (caa explain writes attention mass in the mask over the "
                              "mask's share: 1 = chance)")
    if "method" in table.columns:  # caa explain also scores gradients: the claim is attention's
        table = table[table["method"] == ATTENTION_METHOD]
    if table.empty:
        return "not measured (explain/faithfulness.csv has no attention rows)"
    delta = table["localisation"].astype(float) - table["localisation_chance"].astype(float)
    deltas = delta.groupby(table["run"].astype(str), sort=True).mean()  # devices -> one a run
    out = faithfulness_verdict(deltas.to_numpy())
    out["comparison"] = (f"attention localisation minus chance (1 = chance: mass in the "
                         f"evidence mask over the mask's share), the mean over devices of "
                         f"each of {len(deltas)} run(s) of {path.name} (no MDE: not a paired "
                         "clip comparison)")
    return out


def build_ledger(results_dir: str | Path, profile: str, *, data_dir: str | Path | None = None,
                 jobs: int = 1, progress: bool = True, claims_path: str | Path | None = None,
                 train: bool = True, simulation_runs: str | Path | None = None
                 ) -> pd.DataFrame:
    """The ledger (:data:`LEDGER_COLUMNS`), training what the simulation lacks first.

    With ``train=False`` nothing is trained: claims whose runs are missing are
    inconclusive with what is missing in ``comparison``. ``simulation_runs`` reads the
    simulation's runs from another results directory (notebook 09 previews the ledger
    on the study's own runs with it) instead of :func:`simulation_dir`.
    """
    if profile not in LEDGER_PROFILES:
        raise LedgerError(f"profile: {profile!r} is not one of {', '.join(LEDGER_PROFILES)}")
    prof = LEDGER_PROFILES[profile]
    results_dir = Path(results_dir)
    claims = load_claims(claims_path)
    evidence = paper_evidence(claims).set_index("claim")
    comparisons = {c.claim: claim_comparison(c, prof.models) for c in claims}
    wanted = [c for c in comparisons.values() if isinstance(c, Comparison)]
    sim = Path(simulation_runs) if simulation_runs is not None else \
        simulation_dir(results_dir, profile)
    if train and wanted:
        data = ensure_data(prof, Path(data_dir) if data_dir else sim / "data", progress,
                           explicit=data_dir is not None)
        run_simulation(prof, wanted, sim, data, jobs=jobs, progress=progress)
    sim_runs = _runs_of(sim)
    if not sim_runs.empty:
        sim_runs = sim_runs[sim_runs["profile"] == prof.train]
    real_runs = _runs_of(results_dir)
    rows = []
    for c in claims:
        ev = evidence.loc[c.claim]
        comp = comparisons[c.claim]
        claimed = paper_effect(c)
        row: dict[str, Any] = {
            "claim": c.claim, "statement": c.statement, "source": c.source,
            "paper_evidence": ev["paper_evidence"], "estimate": math.nan,
            "ci_low": math.nan, "ci_high": math.nan, "p_value": math.nan, "mde": math.nan,
            "n_seeds": 0, "verdict": "inconclusive", "paper_verdict": ev["verdict"],
            "paper_effect": claimed, "profile": profile, "real_data": "",
        }
        if c.claim == "attention_locates_evidence":
            faith = _faithfulness(results_dir)
            if isinstance(faith, str):
                row["comparison"] = faith
            else:
                row.update(faith)
        elif isinstance(comp, str):
            row["comparison"] = f"not simulated: {comp}"
        else:
            num = compare(sim_runs, comp, n_resamples=prof.n_resamples) \
                if not sim_runs.empty else "no simulation runs"
            if isinstance(num, str):
                row["comparison"] = f"{comp.describe()}; not run: {num}"
            else:
                row.update({k: num[k] for k in ("estimate", "ci_low", "ci_high", "p_value",
                                                "mde", "n_seeds")})
                row["verdict"] = simulation_verdict(comp.kind, num["estimate"], num["ci_low"],
                                                    num["ci_high"], num["mde"],
                                                    num["n_seeds"], claimed)
                under = " (underpowered: fewer than 5 seeds)" if num["n_seeds"] < MIN_SEEDS \
                    else ""
                row["comparison"] = f"{comp.describe()}; {num['n_clips']} clips{under}"
            row["real_data"] = real_data_column(real_runs, comp, claimed)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(LEDGER_COLUMNS))


def _cell(value: Any, digits: int = 1) -> str:
    if isinstance(value, float):
        return "–" if math.isnan(value) else f"{value:.{digits}f}"
    return str(value).replace("|", "\\|").replace("\n", " ")


def profile_scope(profile: str) -> str:
    """What a profile's simulation verdicts are about: the models it trains, not the paper's
    unless they are paper-size (a verdict on 1/16-width models is about those models)."""
    prof = LEDGER_PROFILES.get(profile)
    if prof is None:
        return ""
    from .training.config import PROFILES

    train = {**PROFILES[prof.train], **prof.overrides}
    width = train["width"]
    size = "paper-size" if width == 1 else f"{width:.3g} of the paper's width"
    scope = (f"Scope: the simulation's verdicts are about the models this profile trains "
             f"({size}, {train['iterations']:,} iterations, on the synthetic `{prof.synth}` "
             "set of docs/simulation.md)")
    if width != 1:
        scope += ("; scaled-down models can rank differently from the paper's, so a verdict "
                  "here tests the claim on these models, not the published ones (the `gpu` "
                  "profile trains paper-size models)")
    return scope + "."


def ledger_markdown(ledger: pd.DataFrame) -> str:
    """ledger.md: the verdict table and what each number means."""
    profile = ledger["profile"].iloc[0] if len(ledger) else ""
    lines = [
        f"# The claims ledger (simulation profile `{profile}`)",
        "",
        "Effects are better minus worse accuracy in percentage points with a 95 % paired "
        "bootstrap CI (clips and seeds resampled); MDE is the smallest difference the "
        f"comparison detects at alpha {ALPHA} with power {POWER}; p is McNemar's mid-p. "
        "Verdicts by the rules of docs/claims.md, written before any result was seen; "
        f"fewer than {MIN_SEEDS} seeds is always inconclusive.",
        "",
        profile_scope(profile),
        "",
        "| claim | paper's own numbers | estimate | 95 % CI | MDE | p | seeds | simulation | "
        "real data | compared |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in ledger.itertuples():
        ci = "–" if math.isnan(r.ci_low) else f"[{r.ci_low:+.1f}, {r.ci_high:+.1f}]"
        est = "–" if math.isnan(r.estimate) else f"{r.estimate:+.1f}"
        p = "–" if math.isnan(r.p_value) else f"{r.p_value:.2g}"
        lines.append(f"| {r.claim} | {r.paper_verdict} | {est} | {ci} | {_cell(r.mde)} | {p} "
                     f"| {r.n_seeds} | **{r.verdict}** | {_cell(r.real_data) or '–'} "
                     f"| {_cell(r.comparison)} |")
    return "\n".join(lines) + "\n"


def owned_by_ledger(name: str) -> bool:
    """The entries of RESULTS_DIR/claims the ledger writes."""
    return name in LEDGER_FILES


def write_ledger(results_dir: str | Path, profile: str, *, out_dir: str | Path | None = None,
                 **kwargs: Any) -> tuple[list[Path], pd.DataFrame]:
    """``caa claims --profile``: ledger.csv and ledger.md in ``out_dir`` (default
    RESULTS_DIR/claims), both or neither; other files there are kept."""
    ledger = build_ledger(results_dir, profile, **kwargs)
    out = Path(out_dir) if out_dir is not None else Path(results_dir) / "claims"
    with staged_output(out, owned_by_ledger, what="caa claims") as stage:
        write_text(stage / LEDGER_FILES[0], ledger.to_csv(index=False))
        write_text(stage / LEDGER_FILES[1], ledger_markdown(ledger))
    return [out / name for name in LEDGER_FILES], ledger


def _ledger_csv(path: Path) -> pd.DataFrame:
    ledger = pd.read_csv(path, keep_default_na=False, na_values=[""],
                         dtype={"real_data": str})
    ledger["real_data"] = ledger["real_data"].fillna("")  # empty, not NaN
    return ledger


def read_ledger(results_dir: str | Path) -> pd.DataFrame | None:
    """RESULTS_DIR/claims/ledger.csv when it exists (notebook 09), else None."""
    path = Path(results_dir) / "claims" / LEDGER_FILES[0]
    return _ledger_csv(path) if path.is_file() else None


def preview_ledger(results_dir: str | Path, profile: str) -> pd.DataFrame:
    """The ledger on the study's own runs of RESULTS_DIR, training nothing (notebook 09
    before ``caa claims`` has run): ``profile``'s comparisons where it is a ledger profile,
    the tiny one's otherwise."""
    return build_ledger(results_dir, profile if profile in LEDGER_PROFILES else "tiny",
                        train=False, simulation_runs=results_dir, progress=False)


def shift_figures(results_dir: str | Path) -> list[Path]:
    """The device-shift curves drawn under RESULTS_DIR/shift-curve/<profile>/ (PNG)."""
    from .shift_curve import FIGURE_NAME

    return sorted(Path(results_dir).glob(f"shift-curve/*/{FIGURE_NAME}.png"))


#: What notebook 09 shows of a ledger.
SHOWN_COLUMNS: tuple[str, ...] = (
    "claim", "paper_verdict", "estimate", "ci_low", "ci_high", "mde", "p_value", "n_seeds",
    "verdict", "real_data", "comparison")
