"""The run directory as its readers see it: one owner of the on-disk contract.

Training writes run directories (``caalib.training.runstore``); the tables, the
figures, the heat-map browser, the statistics and the notebooks read them. When each
reader parsed the files itself, each with its own few checks, a corrupted, duplicated
or misplaced file could pass one of them and come out as a plausible number: a backup
copy counted as a second seed, a boolean read as 100 %, a truncated predictions file
tested as if complete. This module is the one place that knows the file names, the
fields and columns, what makes each file sound, where runs live and which runs are the
same run, and every reader goes through it (docs/architecture.md, "The run store").

Two kinds of trouble, two answers:

* A file that is malformed or contradicts itself or its neighbours raises
  :class:`RunStoreError`, one line naming the file (and line or field).
* A sound run in the wrong place (a directory whose name is not its config's run name,
  a run in a sub-folder) is skipped by the readers of many runs with a
  :class:`RunStoreWarning` naming it, never silently.

It sits below both ``caalib.training`` and ``caalib.results`` and imports neither, so
the results never import training. The few names of the training config it needs
(strategies, profiles, the run-name rule, the execution-only fields) are repeated here;
tests check them against ``caalib.training.config``.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from .constants import ALL_DEVICES, DATASETS, DEVICES, SCENES, TRAIN_DEVICES
from .errors import CaaError
from .spec import ModelSpecError, validate_spec

# ---------------------------------------------------------------------- file names
RUNS_DIR = "runs"  #: where a results directory keeps its runs: ``<results>/runs/<name>/``
CONFIG_FILE = "config.json"
METRICS_FILE = "metrics.json"
HISTORY_FILE = "history.csv"
PREDICTIONS_FILE = "predictions.csv"
ATTENTION_FILE = "attention.npz"
DONE_FILE = "DONE"

# ---------------------------------------------------------------------- contents
#: config.json fields every reader needs (and the table cell a run belongs to).
CONFIG_FIELDS: tuple[str, ...] = (
    "dataset", "topology", "pooling", "strategy", "cond_layer", "train_source",
    "profile", "seed",
)
#: Fields that change how fast a run goes, not what it computes (as TrainConfig).
EXECUTION_FIELDS: frozenset[str] = frozenset(
    {"accelerator", "fast", "compile", "checkpoint_every", "eval_schedule"})
#: Switches that name a variant in the run name, with the value a config written before
#: the switch existed counts as.
#: The unseen-device policy and the augmentations with their published
#: hyper-parameters (caalib.training.augment): what a config written before they existed
#: did, so such a config may lack them.
UNSEEN_AND_AUGMENT_DEFAULTS: dict[str, Any] = {
    "unseen_source": "nearest", "augment": "", "mixstyle_p": 0.4, "mixstyle_alpha": 0.3,
    "dir_p": 0.6, "mixup_alpha": 0.3,
}
NAME_DEFAULTS: dict[str, Any] = {
    "lr_decay": "released", "lambda_mode": "released", "attention": "released",
    "resampler": "kaiser_best", "precision": "fp32", "tf32": False, "cpu_threads": 1,
    **UNSEEN_AND_AUGMENT_DEFAULTS,
}
#: Each augmentation's hyper-parameters and the letters that name them in a run name.
AUGMENT_PARAMETERS: dict[str, tuple[tuple[str, str], ...]] = {
    "dir": (("dir_p", "p"),),
    "freq_mixstyle": (("mixstyle_p", "p"), ("mixstyle_alpha", "a")),
    "mixup": (("mixup_alpha", "a"),),
}
PROFILES: tuple[str, ...] = ("tiny", "demo", "paper")

ACCURACY_KEYS: tuple[str, ...] = (*ALL_DEVICES, "avg")
LABEL_COLUMNS: tuple[str, ...] = ("filename", "source", "scene_label", "predicted")
SCORE_COLUMNS: tuple[str, ...] = tuple(f"score_{s}" for s in SCENES)
PREDICTION_COLUMNS: tuple[str, ...] = (*LABEL_COLUMNS, *SCORE_COLUMNS)
HISTORY_COLUMNS: tuple[str, ...] = (
    "iteration", "loss", "loss_scene", "loss_device", "lr", "lambda",
    "acc_a", "acc_b", "acc_c", "acc_avg",
    "device_recall_a", "device_recall_b", "device_recall_c", "device_acc",
)


def history_columns(devices: tuple[str, ...] = DEVICES) -> tuple[str, ...]:
    """The history.csv columns of a run scored on ``devices``: :data:`HISTORY_COLUMNS`
    for A, B and C, with ``acc_<d>`` and ``device_recall_<d>`` added for each other
    device (the 2020 layout's simulated ones), so 2018/2019 histories stay as they were."""
    extra = [d for d in devices if d not in DEVICES]
    if not extra:
        return HISTORY_COLUMNS
    cols = list(HISTORY_COLUMNS)
    at = cols.index("acc_avg")
    cols[at:at] = [f"acc_{d}" for d in extra]
    at = cols.index("device_acc")
    cols[at:at] = [f"device_recall_{d}" for d in extra]
    return tuple(cols)


#: The history columns the readers use (older histories lack some of the others).
HISTORY_REQUIRED: tuple[str, ...] = ("iteration", "loss", "acc_avg")
ATTENTION_ARRAYS: tuple[str, ...] = (
    "attention", "logmel", "filename", "source", "scene_label", "predicted",
)
#: Names an older study wrote, now renamed (old name -> new name). A file or config
#: holding an old name is refused, naming the rename: such runs predate the current
#: feature recipe and must be retrained anyway.
RENAMED_CONFIG_FIELDS: dict[str, str] = {"train_device": "train_source",
                                         "device": "accelerator"}
RENAMED_COLUMNS: dict[str, str] = {"device": "source"}

#: How far a recorded accuracy may sit from the one recomputed from its parts.
TOLERANCE = 1e-6


class RunStoreError(CaaError):
    """A run directory's file is missing, malformed or contradicts another; names it."""


class RunStoreWarning(UserWarning):
    """A run was skipped (misplaced, misnamed, a duplicate); the message names it."""


def warn(message: str) -> None:
    """Emit a :class:`RunStoreWarning` (one line; the CLI prints it as such)."""
    warnings.warn(message.replace("\n", " "), RunStoreWarning, stacklevel=3)


# ---------------------------------------------------------------------- value checks
def _is_int(value: Any) -> bool:
    return isinstance(value, int | np.integer) and not isinstance(value, bool | np.bool_)


def _is_real(value: Any) -> bool:
    """A finite real number; ``True``/``False`` are not numbers here."""
    return (isinstance(value, int | float | np.integer | np.floating)
            and not isinstance(value, bool | np.bool_) and math.isfinite(float(value)))


def _fraction(value: Any, path: Path, field: str, *, null: bool = False) -> float | None:
    if value is None and null:
        return None
    if not _is_real(value) or not 0.0 <= float(value) <= 1.0:
        raise RunStoreError(f"{path}: field {field} = {value!r} is not a fraction in [0, 1]"
                            + (" or null" if null else ""))
    return float(value)


def read_json_object(path: str | Path) -> dict[str, Any]:
    """A JSON file that must hold an object; one-line errors naming the file."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise RunStoreError(f"{path}: missing") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise RunStoreError(f"{path}: unreadable ({exc})") from None
    try:
        obj = json.loads(text)
    except json.JSONDecodeError as exc:
        raise RunStoreError(f"{path}, line {exc.lineno}: invalid JSON ({exc.msg})") from None
    if not isinstance(obj, dict):
        raise RunStoreError(f"{path}: expected a JSON object, got {type(obj).__name__}")
    return obj


# ---------------------------------------------------------------------- renamed names
def renamed_field(cfg: Mapping[str, Any], renames: Mapping[str, str]) -> str | None:
    """A one-line message when ``cfg`` holds a field that was renamed, else None."""
    for old, new in renames.items():
        if old in cfg and new not in cfg:
            return (f"field {old!r} was renamed {new!r} (written by an older version of the "
                    "study: retrain the run)")
    return None


def renamed_column(names: Any, what: str) -> str | None:
    """A one-line message when ``names`` (columns or arrays) hold a renamed one."""
    names = set(names)
    for old, new in RENAMED_COLUMNS.items():
        if old in names and new not in names:
            return (f"{what} {old!r} was renamed {new!r} (written by an older version of the "
                    "study: retrain the run)")
    return None


# ---------------------------------------------------------------------- config.json
def read_config_dict(run_dir: str | Path) -> dict[str, Any]:
    """A run's config.json as a dict, its :data:`CONFIG_FIELDS` checked.

    Types and ranges of the fields readers use, their consistency (``train_source``
    only and always for ``single``, ``cond_layer`` only and always for the conditioned
    strategies) and the types of the variant switches in the run name. Unknown extra
    fields are kept: the training config grows.
    """
    path = Path(run_dir) / CONFIG_FILE
    if not path.is_file():
        raise RunStoreError(f"{path}: missing (a run directory needs its config)")
    cfg = read_json_object(path)
    old = renamed_field(cfg, RENAMED_CONFIG_FIELDS)
    if old:
        raise RunStoreError(f"{path}: {old}")
    missing = [f for f in CONFIG_FIELDS if f not in cfg]
    if missing:
        raise RunStoreError(f"{path}: missing field(s) {missing}")

    def bad(field: str, allowed: str) -> RunStoreError:
        return RunStoreError(f"{path}: field {field} = {cfg[field]!r} is not {allowed}")

    if cfg["dataset"] not in DATASETS:
        raise bad("dataset", f"one of {', '.join(DATASETS)}")
    try:  # the model's part: the study's one rule (caalib.spec)
        validate_spec(cfg["topology"], cfg["pooling"], cfg["strategy"], cfg["cond_layer"],
                      cfg.get("attention", "released"))
    except ModelSpecError as exc:
        raise RunStoreError(f"{path}: field {exc}") from None
    if cfg["profile"] not in PROFILES:
        raise bad("profile", f"one of {', '.join(PROFILES)}")
    if not _is_int(cfg["seed"]) or cfg["seed"] < 0:
        raise bad("seed", "a non-negative integer")
    if cfg["strategy"] == "single":
        trainable = TRAIN_DEVICES[cfg["dataset"]]
        if cfg["train_source"] not in trainable:
            raise bad("train_source", f"one of {', '.join(trainable)} (strategy single)")
    elif cfg["train_source"] is not None:
        raise bad("train_source", f"null (strategy {cfg['strategy']} trains on all sources)")
    for field in ("lr_decay", "lambda_mode", "attention", "resampler", "precision"):
        if field in cfg and (not isinstance(cfg[field], str) or not cfg[field]
                             or "/" in cfg[field]):
            raise bad(field, "a name")
    if "tf32" in cfg and cfg["tf32"] is not None and not isinstance(cfg["tf32"], bool):
        raise bad("tf32", "true, false or null")
    if "cpu_threads" in cfg and cfg["cpu_threads"] is not None and (
            not _is_int(cfg["cpu_threads"]) or cfg["cpu_threads"] < 1):
        raise bad("cpu_threads", "a positive integer")
    if "unseen_source" in cfg and (not isinstance(cfg["unseen_source"], str)
                                   or not cfg["unseen_source"] or "/" in cfg["unseen_source"]):
        raise bad("unseen_source", "a name")
    if "augment" in cfg and (not isinstance(cfg["augment"], str) or "/" in cfg["augment"]):
        raise bad("augment", "a '+'-joined list of names (or empty)")
    for field in ("mixstyle_p", "mixstyle_alpha", "dir_p", "mixup_alpha"):
        if field in cfg and not _is_real(cfg[field]):
            raise bad(field, "a number")
    if cfg.get("data_fingerprint") is not None and not isinstance(cfg["data_fingerprint"], str):
        raise bad("data_fingerprint", "a string or null")
    return dict(cfg)


def _switch(cfg: Mapping[str, Any], field: str) -> Any:
    value = cfg.get(field)
    return NAME_DEFAULTS[field] if value is None else value


def expected_run_name(cfg: Mapping[str, Any]) -> str:
    """The directory name training gives a run of this config.

    ``<dataset>-<topology>-<pooling, + as _>-<strategy>[-<train_source>][-L<cond_layer>]
    -<profile>-s<seed>``, then a suffix per variant switch off its default: ``-lr_<mode>``,
    ``-lambda_<mode>`` (multi-task only), ``-att_<mode>``, ``-rs_<resampler>``, and
    ``-bf16`` / ``-bf16_notf32`` (bf16 with / without TF32) or ``-tf32`` (fp32 with TF32),
    and ``-cpu<n>`` for ``cpu_threads`` other than 1.
    The rule of ``caalib.training.config.TrainConfig.run_name``, repeated so that no
    reader imports training; a config without a newer switch counts as its default.
    """
    parts = [str(cfg["dataset"]), str(cfg["topology"]), str(cfg["pooling"]).replace("+", "_"),
             str(cfg["strategy"])]
    if cfg.get("train_source") is not None:
        parts.append(str(cfg["train_source"]))
    if cfg.get("cond_layer") is not None:
        parts.append(f"L{cfg['cond_layer']}")
    parts += [str(cfg["profile"]), f"s{cfg['seed']}"]
    if _switch(cfg, "lr_decay") != "released":
        parts.append(f"lr_{_switch(cfg, 'lr_decay')}")
    if cfg["strategy"] == "multi_task" and _switch(cfg, "lambda_mode") != "released":
        parts.append(f"lambda_{_switch(cfg, 'lambda_mode')}")
    if _switch(cfg, "attention") != "released":
        parts.append(f"att_{_switch(cfg, 'attention')}")
    if _switch(cfg, "resampler") != "kaiser_best":
        parts.append(f"rs_{_switch(cfg, 'resampler')}")
    if _switch(cfg, "precision") == "bf16":
        parts.append("bf16" if _switch(cfg, "tf32") else "bf16_notf32")
    elif _switch(cfg, "tf32"):
        parts.append("tf32")
    if _switch(cfg, "cpu_threads") != 1:
        parts.append(f"cpu{_switch(cfg, 'cpu_threads')}")
    return "-".join(parts + variant_suffixes(cfg))


def variant_suffixes(cfg: Mapping[str, Any]) -> list[str]:
    """The run-name parts of the unseen-device policy and the augmentations, after every
    older switch: ``unseen_<policy>`` off ``nearest``, then per augmentation on its name
    plus each hyper-parameter off its published default (``freq_mixstyle_p0.5``)."""
    parts = []
    if _switch(cfg, "unseen_source") != "nearest":
        parts.append(f"unseen_{_switch(cfg, 'unseen_source')}")
    augment = str(_switch(cfg, "augment") or "")
    for name in augment.split("+") if augment else []:
        extra = "".join(f"_{tag}{float(_switch(cfg, field)):g}"
                        for field, tag in AUGMENT_PARAMETERS.get(name, ())
                        if float(_switch(cfg, field)) != NAME_DEFAULTS[field])
        parts.append(name + extra)
    return parts


def run_identity(cfg: Mapping[str, Any]) -> dict[str, Any]:
    """What makes two runs the same run: the config minus :data:`EXECUTION_FIELDS`.

    Every other field counts, unknown ones included (``data_fingerprint``,
    ``cpu_threads``); a variant switch a config predates counts as its default, so an
    old run and a new one of the same variant compare equal.
    """
    merged = {**NAME_DEFAULTS, **{k: v for k, v in cfg.items() if v is not None
                                  or k not in NAME_DEFAULTS}}
    return {k: merged[k] for k in sorted(merged) if k not in EXECUTION_FIELDS}


def identity_differences(a: Mapping[str, Any], b: Mapping[str, Any]) -> list[str]:
    """The identity fields in which two configs differ (sorted).

    ``data_fingerprint`` counts only when both configs know it, as in training (a run
    made before its data was fingerprinted holds none).
    """
    ia, ib = run_identity(a), run_identity(b)
    return sorted(k for k in set(ia) | set(ib)
                  if ia.get(k, _ABSENT) != ib.get(k, _ABSENT)
                  and not (k == "data_fingerprint" and (ia.get(k) is None or ib.get(k) is None)))


_ABSENT = object()


# ---------------------------------------------------------------------- metrics.json
def read_metrics(run_dir: str | Path) -> dict[str, Any]:
    """A run's metrics.json, checked whole; returns the parsed object.

    ``accuracy``: devices among a/b/c plus ``avg``, each a real fraction in [0, 1] (not
    a bool, not null), ``avg`` the mean of the devices within 1e-6. ``n_eval``,
    ``classwise`` and ``confusion``: one entry per device of ``accuracy``; counts
    positive integers, class-wise accuracies fractions or null, confusion matrices
    10 x 10 of counts summing to ``n_eval``, and the three agreeing with each other and
    with ``accuracy``. ``device_accuracy``: null or a fraction; ``iterations`` and
    ``wall_time_s``, when present, non-negative.
    """
    path = Path(run_dir) / METRICS_FILE
    met = read_json_object(path)
    acc = met.get("accuracy")
    if not isinstance(acc, dict) or not acc:
        raise RunStoreError(f"{path}: field accuracy = {acc!r} is not an object of "
                            "per-device fractions")
    unknown = sorted(set(acc) - set(ACCURACY_KEYS))
    if unknown:
        raise RunStoreError(f"{path}: field accuracy has unknown key(s) {unknown}; "
                            f"allowed: {', '.join(ACCURACY_KEYS)}")
    for key in ACCURACY_KEYS:
        if key in acc:
            _fraction(acc[key], path, f"accuracy.{key}")
    devices = [d for d in ALL_DEVICES if d in acc]
    if not devices or "avg" not in acc:
        raise RunStoreError(f"{path}: field accuracy needs at least one device and avg, "
                            f"got {sorted(acc)}")
    mean = float(np.mean([acc[d] for d in devices]))
    if abs(acc["avg"] - mean) > TOLERANCE:
        raise RunStoreError(f"{path}: field accuracy.avg = {acc['avg']!r} is not the mean "
                            f"of the devices {devices} ({mean:.6f})")

    for field in ("n_eval", "classwise", "confusion"):
        value = met.get(field)
        if not isinstance(value, dict) or sorted(value) != sorted(devices):
            got = sorted(value) if isinstance(value, dict) else repr(value)
            raise RunStoreError(f"{path}: field {field} must hold exactly the devices of "
                                f"accuracy {devices}, got {got}")
    for dev in devices:
        n = met["n_eval"][dev]
        if not _is_int(n) or n < 1:
            raise RunStoreError(f"{path}: field n_eval.{dev} = {n!r} is not a positive "
                                "number of clips")
        cw = met["classwise"][dev]
        if not isinstance(cw, dict) or sorted(cw) != sorted(SCENES):
            raise RunStoreError(f"{path}: field classwise.{dev} must hold the ten scenes")
        for s in SCENES:
            _fraction(cw[s], path, f"classwise.{dev}.{s}", null=True)
        present = [cw[s] for s in SCENES if cw[s] is not None]
        if not present or abs(float(np.mean(present)) - acc[dev]) > TOLERANCE:
            raise RunStoreError(f"{path}: field accuracy.{dev} = {acc[dev]!r} is not the mean "
                                f"of classwise.{dev}")
        cm = met["confusion"][dev]
        ok = (isinstance(cm, list) and len(cm) == len(SCENES)
              and all(isinstance(r, list) and len(r) == len(SCENES) for r in cm)
              and all(_is_int(v) and v >= 0 for r in cm for v in r))
        if not ok:
            raise RunStoreError(f"{path}: field confusion.{dev} is not a "
                                f"{len(SCENES)} x {len(SCENES)} matrix of counts")
        cm = np.asarray(cm, dtype=np.int64)
        if int(cm.sum()) != n:
            raise RunStoreError(f"{path}: field confusion.{dev} counts {int(cm.sum())} clips, "
                                f"n_eval.{dev} = {n}")
        for i, s in enumerate(SCENES):
            support = int(cm[i].sum())
            want = None if support == 0 else cm[i, i] / support
            have = cw[s]
            if (want is None) != (have is None) or (
                    want is not None and abs(want - have) > TOLERANCE):
                raise RunStoreError(f"{path}: field classwise.{dev}.{s} = {have!r} disagrees "
                                    f"with confusion.{dev} ({want!r})")
    _fraction(met.get("device_accuracy"), path, "device_accuracy", null=True)
    recall = met.get("device_recall")
    if recall is not None:
        if not isinstance(recall, dict) or not set(recall) <= set(ALL_DEVICES):
            raise RunStoreError(f"{path}: field device_recall = {recall!r} is not an object "
                                "of per-device fractions")
        for dev, value in recall.items():
            _fraction(value, path, f"device_recall.{dev}", null=True)
    if met.get("iterations") is not None and (not _is_int(met["iterations"])
                                              or met["iterations"] < 0):
        raise RunStoreError(f"{path}: field iterations = {met['iterations']!r} is not a "
                            "non-negative integer")
    if met.get("wall_time_s") is not None and (not _is_real(met["wall_time_s"])
                                               or met["wall_time_s"] < 0):
        raise RunStoreError(f"{path}: field wall_time_s = {met['wall_time_s']!r} is not a "
                            "non-negative number of seconds")
    return met


def eval_sources(metrics: Mapping[str, Any]) -> list[str]:
    """The devices a run was scored on (from a checked metrics dict), in device order."""
    return [d for d in ALL_DEVICES if d in metrics["accuracy"]]


# ---------------------------------------------------------------------- predictions.csv
def _line(i: int) -> int:
    return i + 2  # header on line 1


def read_predictions(run_dir: str | Path,
                     metrics: Mapping[str, Any] | None = None) -> pd.DataFrame:
    """A run's predictions.csv, checked against its metrics.json; adds ``correct``.

    Columns :data:`LABEL_COLUMNS` required (no empty cell, known scenes and sources, no
    duplicate filename; a file with the old ``device`` column is refused as renamed); the
    ten :data:`SCORE_COLUMNS` all or none, finite when present. Complete: per source
    exactly ``n_eval`` rows of ``metrics`` (read from the
    run when not given), and the macro accuracy of the rows equal to the recorded one,
    so a truncated file or one from another run is refused. Extra columns are kept.
    """
    run_dir = Path(run_dir)
    path = run_dir / PREDICTIONS_FILE
    if not path.is_file():
        raise RunStoreError(f"{path}: no predictions file")
    try:
        df = pd.read_csv(path, dtype=str, keep_default_na=False)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunStoreError(f"{path}: unreadable CSV ({first})") from None
    old = renamed_column(df.columns, "column")
    if old:
        raise RunStoreError(f"{path}: {old}")
    missing = [c for c in LABEL_COLUMNS if c not in df.columns]
    if missing:
        raise RunStoreError(f"{path}: missing column(s) {missing}")
    scores = [c for c in SCORE_COLUMNS if c in df.columns]
    if scores and len(scores) != len(SCORE_COLUMNS):
        lack = [c for c in SCORE_COLUMNS if c not in df.columns]
        raise RunStoreError(f"{path}: missing column(s) {lack} (score columns are all or none)")
    if df.empty:
        raise RunStoreError(f"{path}: no rows")
    for col in LABEL_COLUMNS:
        empty = (df[col].isna() | (df[col].astype(str).str.strip() == "")).to_numpy()
        if empty.any():
            i = int(empty.nonzero()[0][0])
            raise RunStoreError(f"{path}, line {_line(i)}: empty {col} (truncated file?)")
    for col in ("scene_label", "predicted"):
        bad = (~df[col].isin(SCENES)).to_numpy()
        if bad.any():
            i = int(bad.nonzero()[0][0])
            raise RunStoreError(f"{path}, line {_line(i)}: unknown scene {df[col].iloc[i]!r} "
                                f"in {col}")
    bad = (~df["source"].isin(ALL_DEVICES)).to_numpy()
    if bad.any():
        i = int(bad.nonzero()[0][0])
        raise RunStoreError(f"{path}, line {_line(i)}: unknown source {df['source'].iloc[i]!r}")
    dup = df["filename"].duplicated().to_numpy()
    if dup.any():
        i = int(dup.nonzero()[0][0])
        raise RunStoreError(f"{path}, line {_line(i)}: duplicate filename "
                            f"{df['filename'].iloc[i]!r}")
    for col in scores:
        values = pd.to_numeric(df[col], errors="coerce").to_numpy(dtype=float)
        bad = ~np.isfinite(values)
        if bad.any():
            i = int(bad.nonzero()[0][0])
            raise RunStoreError(f"{path}, line {_line(i)}: {col} = {df[col].iloc[i]!r} is not "
                                "a finite number")
        df[col] = values

    met = read_metrics(run_dir) if metrics is None else metrics
    n_eval = met["n_eval"]
    counts = df["source"].value_counts()
    wrong = [f"source {d}: {int(counts.get(d, 0))} rows for {n_eval.get(d, 0)} clips"
             for d in ALL_DEVICES if int(counts.get(d, 0)) != int(n_eval.get(d, 0))]
    if wrong:
        raise RunStoreError(f"{path}: does not match n_eval of {run_dir / METRICS_FILE} "
                            f"({'; '.join(wrong)}); truncated, or from another run?")
    correct = (df["scene_label"] == df["predicted"]).to_numpy()
    for dev in eval_sources(met):
        on = (df["source"] == dev).to_numpy()
        per_scene = pd.Series(correct[on]).groupby(df["scene_label"].to_numpy()[on]).mean()
        macro = float(per_scene.mean())
        if abs(macro - met["accuracy"][dev]) > TOLERANCE:
            raise RunStoreError(f"{path}: gives accuracy {macro:.6f} on source {dev}, "
                                f"{run_dir / METRICS_FILE} records {met['accuracy'][dev]:.6f} "
                                "(from another run?)")
    df["correct"] = correct
    return df


# ---------------------------------------------------------------------- history.csv
def read_history(run_dir: str | Path) -> pd.DataFrame:
    """A run's history.csv: :data:`HISTORY_REQUIRED` columns, iterations strictly
    increasing non-negative integers, accuracy columns fractions or empty."""
    path = Path(run_dir) / HISTORY_FILE
    if not path.is_file():
        raise RunStoreError(f"{path}: missing")
    try:
        h = pd.read_csv(path)
    except (pd.errors.ParserError, pd.errors.EmptyDataError, UnicodeDecodeError,
            OSError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunStoreError(f"{path}: unreadable CSV ({first})") from None
    missing = [c for c in HISTORY_REQUIRED if c not in h.columns]
    if missing:
        raise RunStoreError(f"{path}: missing column(s) {missing}")
    if h.empty:
        raise RunStoreError(f"{path}: no rows")
    it = pd.to_numeric(h["iteration"], errors="coerce").to_numpy(dtype=float)
    bad = ~np.isfinite(it) | (it < 0) | (it != np.round(it))
    if bad.any():
        i = int(bad.nonzero()[0][0])
        raise RunStoreError(f"{path}, line {_line(i)}: iteration {h['iteration'].iloc[i]!r} is "
                            "not a non-negative integer")
    back = np.flatnonzero(np.diff(it) <= 0)
    if back.size:
        i = int(back[0]) + 1
        raise RunStoreError(f"{path}, line {_line(i)}: iteration {int(it[i])} does not follow "
                            f"{int(it[i - 1])} (iterations must increase)")
    h["iteration"] = it.astype(np.int64)
    for col in [c for c in h.columns if c.startswith("acc_")] + ["loss"]:
        values = pd.to_numeric(h[col], errors="coerce")
        bad = (values.isna() & h[col].notna()).to_numpy()
        if col != "loss":
            bad = bad | ((values < 0) | (values > 1)).to_numpy()
        if bad.any():
            i = int(bad.nonzero()[0][0])
            what = "a number" if col == "loss" else "a fraction in [0, 1]"
            raise RunStoreError(f"{path}, line {_line(i)}: {col} = {h[col].iloc[i]!r} is not "
                                f"{what}")
        h[col] = values.astype(float)
    return h


# ---------------------------------------------------------------------- attention.npz
def read_attention(run_dir: str | Path) -> dict[str, np.ndarray]:
    """A run's attention.npz, checked: every array of :data:`ATTENTION_ARRAYS`,
    ``attention`` (N, K=10, T', F') finite, ``logmel`` (N, T, F), N rows everywhere,
    known scenes and sources (an old file with a ``device`` array is refused as renamed).
    String arrays come back as ``str``, maps as float32."""
    path = Path(run_dir) / ATTENTION_FILE
    if not path.is_file():
        raise RunStoreError(f"{path}: missing (only attention heads record it)")
    try:
        with np.load(path, allow_pickle=False) as npz:
            old = renamed_column(npz.files, "array")
            if old:
                raise RunStoreError(f"{path}: {old}")
            missing = [k for k in ATTENTION_ARRAYS if k not in npz.files]
            if missing:
                raise RunStoreError(f"{path}: missing array(s) {', '.join(missing)}")
            arrays = {k: npz[k] for k in ATTENTION_ARRAYS}
    except RunStoreError:
        raise
    except Exception as exc:  # zip, pickle or header errors: a damaged file, one line
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        raise RunStoreError(f"{path}: unreadable attention file ({first})") from None
    att, mel = arrays["attention"], arrays["logmel"]
    if att.ndim != 4:
        raise RunStoreError(f"{path}: field 'attention' must be (N, K, T', F'), got {att.shape}")
    if mel.ndim != 3:
        raise RunStoreError(f"{path}: field 'logmel' must be (N, T, F), got {mel.shape}")
    n = att.shape[0]
    for key in ("logmel", "filename", "source", "scene_label", "predicted"):
        if arrays[key].ndim < 1 or len(arrays[key]) != n:
            rows = len(arrays[key]) if arrays[key].ndim else 0
            raise RunStoreError(f"{path}: field {key!r} has {rows} rows, 'attention' has {n}")
    if att.shape[1] != len(SCENES):
        raise RunStoreError(
            f"{path}: field 'attention' has {att.shape[1]} classes, expected {len(SCENES)}")
    if not np.issubdtype(att.dtype, np.floating) or not np.isfinite(att).all():
        raise RunStoreError(f"{path}: field 'attention' holds non-finite or non-float values")
    out: dict[str, np.ndarray] = {
        "attention": att.astype(np.float32, copy=False),
        "logmel": mel.astype(np.float32, copy=False),
    }
    for key in ("filename", "source", "scene_label", "predicted"):
        out[key] = arrays[key].astype(str)
    for key in ("scene_label", "predicted"):
        bad = sorted(set(out[key]) - set(SCENES))
        if bad:
            raise RunStoreError(f"{path}: field {key!r} holds unknown scene(s) {bad}")
    bad = sorted(set(out["source"]) - set(ALL_DEVICES))
    if bad:
        raise RunStoreError(f"{path}: field 'source' holds unknown source(s) {bad}")
    return out


# ---------------------------------------------------------------------- where runs live
def runs_root(path: str | Path) -> Path:
    """Where the runs of ``path`` live: ``<path>/runs`` when it exists, else ``path``
    itself (a runs directory given directly)."""
    path = Path(path)
    if not path.is_dir():
        raise RunStoreError(f"{path}: results directory not found")
    sub = path / RUNS_DIR
    return sub if sub.is_dir() else path


def is_finished(run_dir: str | Path) -> bool:
    """A run counts once ``DONE`` is written (last, after every other file)."""
    return (Path(run_dir) / DONE_FILE).is_file()


def check_name(run_dir: Path, cfg: Mapping[str, Any]) -> str | None:
    """None when the directory is named as its config says, else why not (one line)."""
    expected = expected_run_name(cfg)
    if run_dir.name == expected:
        return None
    return (f"{run_dir}: the directory name differs from its config's run name "
            f"{expected!r} (a copy, a renamed run or an edited config.json?)")


def scan_runs(path: str | Path, include_unfinished: bool = False
              ) -> list[tuple[Path, dict[str, Any]]]:
    """The runs of a results (or runs) directory with their checked configs, by name.

    Only the direct children of :func:`runs_root` holding metrics.json count, and of
    those only the finished ones unless ``include_unfinished``. A run whose directory is
    not named :func:`expected_run_name` of its config is skipped with a
    :class:`RunStoreWarning` (a backup copy, a hand-renamed run, an edited config), as
    are a sub-folder holding runs (e.g. ``runs/old/<run>``) and runs beside ``runs/``
    in the results directory. A malformed config.json of a counted run raises
    :class:`RunStoreError`.
    """
    root = runs_root(path)
    if root != Path(path):
        stray = sorted(p.name for p in Path(path).iterdir()
                       if p.is_dir() and p != root and (p / METRICS_FILE).is_file())
        if stray:
            warn(f"{path}: {len(stray)} run(s) outside {root.name}/ not read (e.g. "
                 f"{stray[0]}); runs are read only directly under {root}")
    found: list[tuple[Path, dict[str, Any]]] = []
    for child in sorted(p for p in root.iterdir() if p.is_dir()):
        if not (child / METRICS_FILE).is_file():
            nested = sorted(p.parent.name for p in child.glob(f"*/{METRICS_FILE}"))
            if nested:
                warn(f"{child}: skipped: a sub-folder holding {len(nested)} run(s) (e.g. "
                     f"{nested[0]}); runs are read only directly under {root}")
            continue
        if not include_unfinished and not is_finished(child):
            continue  # still training, or died: its metrics may be intermediate
        cfg = read_config_dict(child)
        problem = check_name(child, cfg)
        if problem:
            warn(f"{problem}; skipped")
            continue
        found.append((child, cfg))
    return found


def check_run(run_dir: str | Path) -> dict[str, Any]:
    """One run named explicitly (``caa compare``, ``caa figures --run``): it must be a
    finished run with a sound config; a name that differs from its config's run name
    is a :class:`RunStoreWarning` (the user chose the directory). Returns the config."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise RunStoreError(f"{run_dir}: run directory not found")
    if not is_finished(run_dir):
        raise RunStoreError(f"{run_dir / DONE_FILE}: missing: not a finished run")
    cfg = read_config_dict(run_dir)
    problem = check_name(run_dir, cfg)
    if problem:
        warn(problem)
    return cfg
