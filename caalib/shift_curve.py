"""The device-shift curve: B/C accuracy of each training strategy as the shift grows.

The paper argues that conditioning on the recording device helps B and C; on one
dataset that is one point. The simulator's device shift is a knob
(``SynthProfile.shift``, docs/simulation.md), so the question can be asked along it:
this module synthesises one simulation dataset per shift strength, trains single-device,
joint, teacher-forcing and multi-task runs over seeds at each through the sweep
machinery (finished runs are skipped, ``jobs`` runs at once), and gathers their
accuracies into one table per seed and a summary over seeds (mean, std), which
:func:`caalib.results.shift_figure.shift_curve_figure` draws with seed bands.

On disk, under the curve's directory: ``shift-<s>/runs/<run>`` per shift (each its own
results directory, since the runs of two shifts share names), ``shift_curve_seeds.csv``,
``shift_curve_summary.csv`` and the figure ``shift_curve.{png,pdf,csv}``. The datasets go
to ``<data_root>/<synth profile>-shift-<s>`` and are reused when they match.

The tables and the figure are written all or nothing
(:func:`caalib.results.output.staged_output`): a failure while drawing leaves the
previous ones as they were, never new tables beside an old figure. That swaps the whole
curve directory, so the ``shift-<s>`` run trees are carried over (as hard links) and any
other sub-directory makes the curve refuse, before it trains anything.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from .constants import DEVICES
from .errors import CaaError, ConfigError
from .spec import STRATEGIES

SEEDS_FILE = "shift_curve_seeds.csv"
SUMMARY_FILE = "shift_curve_summary.csv"
FIGURE_NAME = "shift_curve"
#: The files of the curve directory that one invocation replaces together.
OUTPUT_FILES: tuple[str, ...] = (SEEDS_FILE, SUMMARY_FILE,
                                 *(f"{FIGURE_NAME}.{ext}" for ext in ("png", "pdf", "csv")))
#: The layout of every curve dataset (the claims concern the DCASE 2018 set's structure).
LAYOUT = "dcase2018"


@dataclass(frozen=True)
class CurveProfile:
    """What one size of the curve synthesises and trains.

    ``synth``: the simulation profile (caalib.synth.SYNTH_PROFILES) each shift is rendered
    with; ``train``: the training profile; ``overrides``: TrainConfig fields changed for
    every run; ``models``: (topology, pooling) pairs, each under the four strategies.
    """

    synth: str
    train: str
    shifts: tuple[float, ...]
    seeds: int
    models: tuple[tuple[str, str], ...]
    overrides: dict[str, Any] = field(default_factory=dict)


#: The paper's CAA-Net (atrous + attention) everywhere; the pooled network with
#: attention beside it where the budget allows.
#: The curve reads final metrics only: its runs score the evaluate split after the last
#: iteration alone where no rule reads earlier scores (execution only: same names, same
#: final metrics as any schedule).
CURVE_PROFILES: dict[str, CurveProfile] = {
    "tiny": CurveProfile("sim-tiny", "tiny", (0.0, 2.0), 1, (("atrous", "att"),),
                         {"iterations": 10, "eval_every": 10, "checkpoint_every": 10,
                          "eval_schedule": "final"}),
    "demo": CurveProfile("sim-demo", "demo", (0.0, 0.5, 1.0, 1.5, 2.0), 3,
                         (("atrous", "att"),), {"eval_schedule": "final"}),
    "gpu": CurveProfile("sim-gpu", "paper", (0.0, 0.5, 1.0, 1.5, 2.0), 5,
                        (("atrous", "att"), ("pool", "att")),
                        {"iterations": 1500, "eval_every": 500, "checkpoint_every": 500,
                         "eval_schedule": "final"}),
}


def shift_label(shift: float) -> str:
    """``shift-1.5``: the folder of one shift strength (``%g``, so 1.0 is ``1``)."""
    return f"shift-{float(shift):g}"


def owned_by_curve(name: str) -> bool:
    """The entries of the curve directory the tables and figure step writes."""
    return name in OUTPUT_FILES


def is_shift_dir(name: str) -> bool:
    """A shift level's run tree (``shift-<s>``): kept, never replaced, by the outputs."""
    return name.startswith("shift-")


def _check_curve_dir(out: Path, data_root: Path) -> None:
    """Refuse an output directory the final swap would refuse, before hours of training:
    one holding a sub-directory that is not a shift level's, or holding the data root."""
    root, real = Path(data_root).resolve(), out.resolve()
    if root == real or real in root.parents:
        raise CaaError(f"{out}: the curve directory would hold the data root {data_root}; "
                       "choose another --out or --data-root")
    if not out.is_dir():
        return
    foreign = sorted(p.name for p in out.iterdir()
                     if p.is_dir() and not p.is_symlink() and not is_shift_dir(p.name))
    if foreign:
        raise CaaError(f"{out}: holds director{'y' if len(foreign) == 1 else 'ies'} "
                       f"{', '.join(foreign)} that caa shift-curve did not write; choose "
                       "another output directory (its outputs replace the whole directory)")


def curve_profile(name: str, shifts: Sequence[float] | None = None,
                  seeds: int | None = None) -> CurveProfile:
    """``CURVE_PROFILES[name]`` with ``shifts`` / ``seeds`` replaced when given."""
    if name not in CURVE_PROFILES:
        raise ConfigError(f"profile: {name!r} is not one of {', '.join(CURVE_PROFILES)}")
    prof = CURVE_PROFILES[name]
    if shifts is not None:
        shifts = tuple(float(s) for s in shifts)
        bad = [s for s in shifts if not math.isfinite(s) or s < 0]
        if not shifts or bad:
            raise ConfigError(f"shifts: need finite numbers >= 0, got {list(shifts)}")
        if len(set(shifts)) != len(shifts):
            raise ConfigError(f"shifts: {list(shifts)} repeats a value")
    if seeds is not None and (not isinstance(seeds, int) or seeds < 1):
        raise ConfigError(f"seeds: must be a positive integer, got {seeds!r}")
    return CurveProfile(prof.synth, prof.train, tuple(sorted(shifts or prof.shifts)),
                        seeds or prof.seeds, prof.models, dict(prof.overrides))


def curve_configs(prof: CurveProfile) -> list[Any]:
    """The TrainConfigs of one shift level: Table II's six runs per model and seed."""
    from .training.sweep import enumerate_runs

    return enumerate_runs("II", prof.train, LAYOUT, seeds=prof.seeds, models=prof.models,
                          **prof.overrides)


def curve_dataset(data_root: str | Path, prof: CurveProfile, shift: float,
                  seed: int = 0, progress: bool = True) -> Path:
    """The simulation dataset at ``shift``, synthesised unless it already exists."""
    from .synth import ensure_synthesized

    data = Path(data_root) / f"{prof.synth}-{shift_label(shift)}"
    return ensure_synthesized(data, prof.synth, LAYOUT, seed, shift, progress=progress)[0]


def seed_rows(sweep: pd.DataFrame, shift: float) -> pd.DataFrame:
    """One row per (run, device it is scored on) from a sweep's summary frame: the
    single-device runs give their own device, the others A, B and C."""
    rows = []
    for r in sweep.itertuples():
        for dev in ([r.train_source] if isinstance(r.train_source, str) else DEVICES):
            acc = getattr(r, f"acc_{dev}")
            if acc is None or (isinstance(acc, float) and math.isnan(acc)):
                raise ConfigError(f"{r.run_name}: no accuracy on device {dev} "
                                  f"(status {r.status})")
            rows.append({"shift": float(shift), "topology": r.topology,
                         "pooling": r.pooling, "strategy": r.strategy, "device": dev,
                         "seed": int(r.seed), "accuracy": float(acc),
                         "run_name": r.run_name})
    return pd.DataFrame(rows)


def summarise(seeds: pd.DataFrame) -> pd.DataFrame:
    """Mean, standard deviation (n-1; empty for one seed), min, max and the seed count
    of each (shift, model, strategy, device), strategies in the paper's order."""
    keys = ["shift", "topology", "pooling", "strategy", "device"]
    out = (seeds.groupby(keys, sort=False)["accuracy"]
           .agg(mean="mean", std="std", min="min", max="max", n_seeds="count")
           .reset_index())
    out["strategy"] = pd.Categorical(out["strategy"], categories=STRATEGIES, ordered=True)
    out = out.sort_values(keys).reset_index(drop=True)
    out["strategy"] = out["strategy"].astype(str)
    return out


def run_shift_curve(profile: str, out_dir: str | Path, data_root: str | Path, *,
                    shifts: Sequence[float] | None = None, seeds: int | None = None,
                    jobs: int = 1, progress: bool = True) -> dict[str, Path]:
    """``caa shift-curve``: every shift level's dataset and runs (what is missing), then
    the per-seed table, the summary and the figure, all or nothing. Returns the written
    paths by name."""
    from .atomic import write_text
    from .results.output import staged_output
    from .results.shift_figure import shift_curve_figure
    from .training.sweep import run_sweep

    prof = curve_profile(profile, shifts, seeds)
    out = Path(out_dir)
    _check_curve_dir(out, Path(data_root))
    configs = curve_configs(prof)
    frames = []
    for shift in prof.shifts:
        data = curve_dataset(data_root, prof, shift, progress=progress)
        sweep = run_sweep(configs, out / shift_label(shift), data, progress=progress,
                          jobs=jobs)
        frames.append(seed_rows(sweep, shift))
    per_seed = pd.concat(frames, ignore_index=True)
    summary = summarise(per_seed)
    with staged_output(out, owned_by_curve, reads=[data_root], shares=is_shift_dir,
                       what="caa shift-curve") as stage:
        paths = {"seeds": write_text(stage / SEEDS_FILE, per_seed.to_csv(index=False)),
                 "summary": write_text(stage / SUMMARY_FILE, summary.to_csv(index=False))}
        figure = shift_curve_figure(summary, stage, name=FIGURE_NAME)
        paths.update({f"figure_{k}": v for k, v in figure.items()})
    return {key: out / path.relative_to(stage) for key, path in paths.items()}
