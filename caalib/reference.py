"""Reference results: a ledger computed on one machine, committed with what made it.

A reader without a GPU sees the study's findings only when somebody's GPU run is in the
repository, and a committed number deserves trust only when it says where it came from
and can be checked. A reference bundle, ``RESULTS_DIR/reference/<name>/``, holds

* ``ledger.csv`` / ``ledger.md``: the ledger as ``caa claims --profile`` wrote it;
* ``runs.csv``: every simulation run the ledger read, one row each: its config fields,
  accuracies (fractions, full precision), and two SHA-256 digests of its predictions,
  one of the predicted labels alone (what the metrics depend on) and one of the whole
  ``predictions.csv`` (scores included, so bit-identical reruns can be told from runs
  that merely agree on every label);
* ``arms.csv``: accuracy per configuration and device over the seeds (mean, sd, n);
* ``shift-curve/``: the device-shift curve of the same profile, when one was drawn;
* ``provenance.json``: commit (and whether the checkout had uncommitted changes), the
  exact command, the machine and its library versions (GPU, torch, CUDA, cuDNN), the
  wall time of the command and the runs' own training time, and the simulation's
  dataset settings.

:func:`check_reference` compares a rerun's runs with a bundle run by run
(``caa claims --check-reference``); docs/claims.md says how to reproduce one.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import re
import shutil
import subprocess
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import pandas as pd

from . import rundir
from .atomic import write_json, write_text
from .errors import CaaError
from .ledger import LEDGER_FILES, LEDGER_PROFILES, ledger_markdown, simulation_dir
from .results.output import staged_output
from .results.runs import load_runs
from .synth import SETTINGS_FILE

REFERENCE_DIR = "reference"
PROVENANCE_FILE = "provenance.json"
RUNS_FILE = "runs.csv"
ARMS_FILE = "arms.csv"
SHIFT_DIR = "shift-curve"
#: The files of a bundle (the shift curve's folder is there only when one was drawn).
BUNDLE_FILES: tuple[str, ...] = (*LEDGER_FILES, RUNS_FILE, ARMS_FILE, PROVENANCE_FILE)
#: Columns of runs.csv: what names a run, what it scored, and its digests.
RUN_FIELDS: tuple[str, ...] = (
    "name", "topology", "pooling", "strategy", "train_source", "cond_layer", "seed",
    "acc_a", "acc_b", "acc_c", "acc_avg", "iterations", "wall_time_s", "labels_sha256",
    "file_sha256",
)
ARM_FIELDS: tuple[str, ...] = ("topology", "pooling", "strategy", "train_source")
_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


class ReferenceError(CaaError):
    """A reference bundle cannot be written or read."""


def check_name(name: str) -> str:
    if not _NAME.match(name or ""):
        raise ReferenceError(f"reference name {name!r}: use letters, digits, '.', '_' and "
                             "'-' only (it becomes a directory name), e.g. h100-2026-11")
    return name


# ---------------------------------------------------------------- digests and tables


def labels_digest(predictions: pd.DataFrame) -> str:
    """SHA-256 of the (filename, predicted) pairs sorted by filename: equal exactly when
    two runs predicted the same label for every clip."""
    pairs = predictions[["filename", "predicted"]].astype(str).sort_values("filename")
    text = "".join(f"{f},{p}\n" for f, p in pairs.itertuples(index=False))
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


def file_digest(path: str | Path) -> str:
    """SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def simulation_runs(results_dir: str | Path, profile: str) -> pd.DataFrame:
    """runs.csv's rows: the finished simulation runs of ``profile`` under RESULTS_DIR,
    sorted by name (empty, with the columns, when there are none)."""
    prof = LEDGER_PROFILES[profile]
    sim = simulation_dir(results_dir, profile)
    if not (sim / rundir.RUNS_DIR).is_dir():
        return pd.DataFrame(columns=list(RUN_FIELDS))
    runs = load_runs(sim)
    runs = runs[runs["profile"] == prof.train].sort_values("name")
    rows = []
    for r in runs.itertuples():
        predictions = rundir.read_predictions(r.path)
        row = {f: getattr(r, f) for f in RUN_FIELDS[:-2]}
        row["labels_sha256"] = labels_digest(predictions)
        row["file_sha256"] = file_digest(Path(r.path) / rundir.PREDICTIONS_FILE)
        rows.append(row)
    return pd.DataFrame(rows, columns=list(RUN_FIELDS))


def arm_table(runs: pd.DataFrame) -> pd.DataFrame:
    """arms.csv: per configuration and device, accuracy in % over the seeds."""
    out = []
    keyed = runs.assign(train_source=runs["train_source"].fillna("").astype(str))
    for key, group in keyed.groupby(list(ARM_FIELDS), sort=True, dropna=False):
        row = dict(zip(ARM_FIELDS, key, strict=True))
        row["n_seeds"] = len(group)
        for dev in ("a", "b", "c", "avg"):
            values = 100 * pd.to_numeric(group[f"acc_{dev}"], errors="coerce").dropna()
            row[f"mean_{dev}"] = float(values.mean()) if len(values) else math.nan
            row[f"sd_{dev}"] = float(values.std(ddof=1)) if len(values) > 1 else math.nan
        out.append(row)
    columns = [*ARM_FIELDS, "n_seeds",
               *(f"{s}_{d}" for d in ("a", "b", "c", "avg") for s in ("mean", "sd"))]
    return pd.DataFrame(out, columns=columns)


# ---------------------------------------------------------------- provenance


def _git(args: Sequence[str], root: Path) -> str | None:
    try:
        done = subprocess.run(["git", "-C", str(root), *args], capture_output=True,
                              text=True, timeout=20, check=False)
    except (OSError, subprocess.SubprocessError):
        return None
    return done.stdout.strip() if done.returncode == 0 else None


#: Names the commit of a copy of the study that is no git checkout (a GPU machine sent
#: the working tree alone); git's own answer wins where there is one.
COMMIT_VARIABLE = "STUDY_COMMIT"


def code_version() -> dict[str, Any]:
    """The commit of this checkout of the study, where that came from, and whether
    tracked files differ from it (None where unknown: no git checkout, no variable)."""
    root = Path(__file__).resolve().parents[1]
    commit = _git(["rev-parse", "HEAD"], root)
    if commit is None:
        given = os.environ.get(COMMIT_VARIABLE) or None
        return {"commit": given, "commit_source": COMMIT_VARIABLE if given else None,
                "uncommitted_changes": None}
    status = _git(["status", "--porcelain", "--untracked-files=no"], root)
    return {"commit": commit, "commit_source": "git",
            "uncommitted_changes": bool(status) if status is not None else None}


def machine(accelerator: str = "auto") -> dict[str, Any]:
    """The device the runs trained on and the library versions that decide the numbers."""
    from .accelerator import resolve_torch_device
    from .bench.environment import environment

    return environment(resolve_torch_device(accelerator, field="accelerator"))


def provenance(results_dir: str | Path, profile: str, *, command: str, wall_time_s: float,
               runs: pd.DataFrame, data_dir: str | Path | None = None,
               code: dict[str, Any] | None = None,
               curve: Sequence[Path] = ()) -> dict[str, Any]:
    """provenance.json's content (see the module). ``code``: :func:`code_version` as the
    command started (the code it ran; default: now)."""
    prof = LEDGER_PROFILES[profile]
    data = Path(data_dir) if data_dir is not None else \
        simulation_dir(results_dir, profile) / "data"
    try:
        synth = json.loads((data / SETTINGS_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError):
        synth = None
    train_s = pd.to_numeric(runs["wall_time_s"], errors="coerce").sum() if len(runs) else 0.0
    shift_curve = None
    if curve:  # made by its own command, whose machine and commit are not recorded
        newest = max(p.stat().st_mtime for p in curve)
        shift_curve = {"from": f"{SHIFT_DIR}/{profile}", "files": [p.name for p in curve],
                       "modified_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ",
                                                     time.gmtime(newest)),
                       "made_by": f"caa shift-curve --profile {profile} (not this command)"}
    return {
        "created_utc": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        **(code if code is not None else code_version()),
        "command": command,
        "profile": profile,
        "ledger_profile": asdict(prof),
        "machine": machine(),
        "wall_time_s": round(float(wall_time_s), 1),
        "runs": int(len(runs)),
        "runs_trained_here": (int(runs["trained_here"].sum()) if "trained_here" in runs
                              else None),
        "runs_training_time_s": round(float(train_s), 1),
        "simulation_data": synth,
        "shift_curve": shift_curve,
    }


# ---------------------------------------------------------------- writing and reading


def curve_outputs(curve_dir: Path) -> list[Path]:
    """The tables and figure of a finished device-shift curve (never its run trees, their
    checkpoints, or a curve whose summary was not written)."""
    from .shift_curve import OUTPUT_FILES, SUMMARY_FILE

    if not (curve_dir / SUMMARY_FILE).is_file():
        return []
    return [curve_dir / name for name in OUTPUT_FILES if (curve_dir / name).is_file()]


def _owns_all(name: str) -> bool:
    return True


def write_reference(results_dir: str | Path, profile: str, name: str, *,
                    ledger: pd.DataFrame, command: str, wall_time_s: float,
                    data_dir: str | Path | None = None,
                    out_root: str | Path | None = None,
                    trained: set[str] | None = None,
                    code: dict[str, Any] | None = None) -> Path:
    """Write the bundle RESULTS_DIR/reference/NAME (or OUT_ROOT/NAME) whole, replacing an
    older bundle of that name only once the new one is complete. ``trained``: the runs
    the command trained itself (runs.csv's ``trained_here``; the others were there
    already, perhaps from another machine, which provenance.json does not describe)."""
    check_name(name)
    if profile not in LEDGER_PROFILES:
        raise ReferenceError(f"profile: {profile!r} is not one of {', '.join(LEDGER_PROFILES)}")
    runs = simulation_runs(results_dir, profile)
    if trained is not None:
        runs["trained_here"] = runs["name"].isin(trained)
    if runs.empty:
        raise ReferenceError(f"{simulation_dir(results_dir, profile)}: no finished "
                             f"`{profile}` simulation runs to make a reference of")
    root = Path(out_root) if out_root is not None else Path(results_dir) / REFERENCE_DIR
    out = root / name
    curve = curve_outputs(Path(results_dir) / SHIFT_DIR / profile)
    with staged_output(out, _owns_all, what="caa claims --reference") as stage:
        write_text(stage / LEDGER_FILES[0], ledger.to_csv(index=False))
        write_text(stage / LEDGER_FILES[1], ledger_markdown(ledger))
        write_text(stage / RUNS_FILE, runs.to_csv(index=False, float_format="%.17g"))
        write_text(stage / ARMS_FILE, arm_table(runs).to_csv(index=False,
                                                             float_format="%.4f"))
        if curve:
            (stage / SHIFT_DIR).mkdir()
            for path in curve:
                shutil.copy2(path, stage / SHIFT_DIR / path.name)
        write_json(stage / PROVENANCE_FILE, provenance(
            results_dir, profile, command=command, wall_time_s=wall_time_s, runs=runs,
            data_dir=data_dir, code=code, curve=curve))
    return out


@dataclass(frozen=True)
class Reference:
    """A committed bundle, as notebook 09 and the check read it."""

    name: str
    path: Path
    ledger: pd.DataFrame
    runs: pd.DataFrame
    provenance: dict[str, Any]

    def label(self) -> str:
        """One line: what made these numbers."""
        p, m = self.provenance, self.provenance.get("machine", {})
        device = m.get("device_name") or m.get("device_type") or "unknown device"
        libs = ("torch", "cuda", "cudnn") if m.get("device_type") == "cuda" else ("torch",)
        soft = ", ".join(f"{k} {m[k]}" for k in libs if m.get(k))
        commit = (p.get("commit") or "unknown")[:10]
        dirty = " (with uncommitted changes)" if p.get("uncommitted_changes") else ""
        minutes = float(p.get("wall_time_s") or math.nan) / 60
        return (f"profile `{p.get('profile')}` on {device} ({soft}); commit {commit}{dirty}; "
                f"{p.get('runs')} runs; {minutes:.1f} min; made {p.get('created_utc')} by "
                f"`{p.get('command')}`")


def figures(ref: Reference) -> list[Path]:
    """The bundle's figures (PNG) a reader is shown: its device-shift curve, when there."""
    return sorted((ref.path / SHIFT_DIR).glob("*.png"))


def read_reference(path: str | Path) -> Reference:
    """A bundle directory; a clear error naming the file that is missing or unreadable."""
    path = Path(path)
    for name in (LEDGER_FILES[0], RUNS_FILE, PROVENANCE_FILE):
        if not (path / name).is_file():
            raise ReferenceError(f"{path / name}: missing (not a reference bundle written by "
                                 "caa claims --reference)")
    try:
        prov = json.loads((path / PROVENANCE_FILE).read_text(encoding="utf-8"))
    except (OSError, ValueError) as exc:
        raise ReferenceError(f"{path / PROVENANCE_FILE}: unreadable JSON ({exc})") from None
    if not isinstance(prov, dict) or prov.get("profile") not in LEDGER_PROFILES:
        raise ReferenceError(f"{path / PROVENANCE_FILE}: no known ledger profile in "
                             "'profile'")
    if not isinstance(prov.get("machine", {}), dict):
        raise ReferenceError(f"{path / PROVENANCE_FILE}: 'machine' must be an object")
    try:
        runs = pd.read_csv(path / RUNS_FILE, dtype={"labels_sha256": str, "file_sha256": str,
                                                   "train_source": str})
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError) as exc:
        raise ReferenceError(f"{path / RUNS_FILE}: unreadable CSV ({exc})") from None
    missing = [c for c in RUN_FIELDS if c not in runs.columns]
    if missing:
        raise ReferenceError(f"{path / RUNS_FILE}: missing column(s) {', '.join(missing)}")
    for col in ("acc_a", "acc_b", "acc_c", "acc_avg"):
        values = pd.to_numeric(runs[col], errors="coerce")
        bad = values.isna() & runs[col].notna()
        if bad.any():
            raise ReferenceError(f"{path / RUNS_FILE}, line {int(bad.to_numpy().argmax()) + 2}: "
                                 f"{col} {runs[col][bad].iloc[0]!r} is not a number")
        runs[col] = values
    from .ledger import LEDGER_COLUMNS, _ledger_csv

    try:
        ledger = _ledger_csv(path / LEDGER_FILES[0])
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            KeyError) as exc:
        raise ReferenceError(f"{path / LEDGER_FILES[0]}: not a ledger ({exc})") from None
    lacking = [c for c in LEDGER_COLUMNS if c not in ledger.columns]
    if lacking:
        raise ReferenceError(f"{path / LEDGER_FILES[0]}: missing column(s) "
                             f"{', '.join(lacking)}")
    return Reference(path.name, path, ledger, runs, prov)


def references(results_dir: str | Path) -> list[Reference]:
    """The bundles under RESULTS_DIR/reference, by name."""
    root = Path(results_dir) / REFERENCE_DIR
    return [read_reference(p.parent) for p in sorted(root.glob(f"*/{PROVENANCE_FILE}"))]


# ---------------------------------------------------------------- the check


@dataclass
class ReferenceCheck:
    """A rerun against a bundle: one status per reference run, and what differs about
    the machine (exact equality is expected only on the same GPU model and software)."""

    reference: Reference
    status: pd.DataFrame  # name, status, detail
    machine_differences: list[str] = field(default_factory=list)

    @property
    def reproduced(self) -> bool:
        """Every reference run checked is there with equal accuracies and labels (a
        partial check: at least one was rerun, and none of those differs)."""
        checked = self.status[self.status["status"] != "not rerun"]
        return bool(len(checked)) and bool(checked["status"].isin(
            ["identical", "same labels"]).all())

    def text(self) -> str:
        counts = self.status["status"].value_counts()
        said = ", ".join(f"{n} {s}" for s, n in counts.items())
        lines = [f"reference {self.reference.name}: {len(self.status)} run(s): {said}"]
        lines += [f"  {r.status}: {r.name}: {r.detail}" for r in self.status.itertuples()
                  if r.status not in ("identical", "same labels", "not rerun")]
        if self.machine_differences:
            lines.append("  this machine differs from the reference's (exact reproduction "
                         "is expected only on the same GPU model and software): "
                         + "; ".join(self.machine_differences))
        lines.append("REPRODUCED" if self.reproduced else "NOT REPRODUCED")
        return "\n".join(lines)


#: Machine fields whose difference can change the numbers.
MACHINE_FIELDS: tuple[str, ...] = ("device_type", "device_name", "torch", "cuda", "cudnn")


def check_reference(bundle: str | Path, results_dir: str | Path,
                    here: dict[str, Any] | None = None, partial: bool = False
                    ) -> ReferenceCheck:
    """Compare the simulation runs of RESULTS_DIR (a rerun of the bundle's command) with
    the bundle: per run ``identical`` (same predictions file), ``same labels`` (same
    accuracies and predicted labels, scores differ), ``differs`` or ``missing``; with
    ``partial`` (some runs rerun, to test reproducibility in less time) a run absent from
    RESULTS_DIR is ``not rerun`` instead of ``missing``. ``here`` is this machine's
    description (default: :func:`machine`)."""
    ref = read_reference(bundle)
    profile = ref.provenance["profile"]
    fresh = simulation_runs(results_dir, profile).set_index("name")
    rows = []
    for r in ref.runs.itertuples():
        if r.name not in fresh.index:
            rows.append((r.name, "not rerun", "") if partial else
                        (r.name, "missing", f"no finished run {r.name} under "
                         f"{simulation_dir(results_dir, profile) / rundir.RUNS_DIR}"))
            continue
        new = fresh.loc[r.name]
        if new["file_sha256"] == r.file_sha256:
            rows.append((r.name, "identical", ""))
            continue
        diffs = [f"{c} {getattr(r, c)!r} -> {new[c]!r}" for c in ("acc_a", "acc_b", "acc_c",
                                                                  "acc_avg")
                 if not _same(getattr(r, c), new[c])]
        if new["labels_sha256"] != r.labels_sha256:
            diffs.append("predicted labels differ")
        rows.append((r.name, "differs" if diffs else "same labels", "; ".join(diffs)))
    status = pd.DataFrame(rows, columns=["name", "status", "detail"])
    here = machine() if here is None else here
    then = ref.provenance.get("machine", {})
    machine_diffs = [f"{k} {then.get(k)!r} (reference) vs {here.get(k)!r} (here)"
                     for k in MACHINE_FIELDS if then.get(k) != here.get(k)]
    return ReferenceCheck(ref, status, machine_diffs)


def _same(a: Any, b: Any) -> bool:
    fa, fb = float(a), float(b)
    return (math.isnan(fa) and math.isnan(fb)) or fa == fb


__all__ = ["ARMS_FILE", "BUNDLE_FILES", "PROVENANCE_FILE", "REFERENCE_DIR", "RUNS_FILE",
           "Reference", "ReferenceCheck", "ReferenceError", "arm_table", "check_name",
           "check_reference", "code_version", "figures", "file_digest", "labels_digest",
           "machine", "provenance", "read_reference", "references", "simulation_runs",
           "write_reference"]
