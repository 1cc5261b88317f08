"""The study's one metric, computed by one function for every caller.

DCASE Task 1B scores each device separately: the unweighted mean of the ten
class-wise accuracies on that device's evaluate clips; "avg" is the mean over the
devices A, B and C (study notes section 3). Training, sweeps, tables, statistics and
notebooks all call :func:`device_metrics`, so a number means the same thing everywhere.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from .constants import ALL_DEVICES, DEVICES, SCENES


def confusion_matrix(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Counts with true classes on rows and predicted classes on columns."""
    cm = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(cm, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return cm


def classwise_accuracy(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> np.ndarray:
    """Accuracy per true class; NaN for a class with no clip."""
    cm = confusion_matrix(y_true, y_pred, n_classes)
    support = cm.sum(axis=1)
    with np.errstate(invalid="ignore", divide="ignore"):
        return np.where(support > 0, np.diag(cm) / np.maximum(support, 1), np.nan)


def macro_accuracy(y_true: Sequence[int], y_pred: Sequence[int], n_classes: int) -> float:
    """Unweighted mean of class-wise accuracies over the classes present."""
    acc = classwise_accuracy(y_true, y_pred, n_classes)
    return float(np.nanmean(acc)) if np.isfinite(acc).any() else float("nan")


def device_metrics(
    y_true: Sequence[int],
    y_pred: Sequence[int],
    devices: Sequence[str],
    scenes: Sequence[str] = SCENES,
    device_names: Sequence[str] = ALL_DEVICES,
) -> dict:
    """Per-device macro accuracy, class-wise accuracies, confusion matrices and counts.

    Returns ``{"accuracy": {dev: acc, ..., "avg": mean}, "classwise": {dev: {scene: acc}},
    "confusion": {dev: [[...]]}, "n_eval": {dev: n}}`` for every device that has clips.
    Accuracies are fractions in [0, 1]. "avg" is the mean over the devices present (A, B
    and C on DCASE 2018/2019; all nine on the 2020 layout, as DCASE 2020 scored it).
    """
    y_true = np.asarray(y_true, dtype=np.int64)
    y_pred = np.asarray(y_pred, dtype=np.int64)
    devices = np.asarray(devices).astype(str)
    n = len(scenes)
    out: dict = {"accuracy": {}, "classwise": {}, "confusion": {}, "n_eval": {}}
    for dev in device_names:
        mask = devices == dev
        if not mask.any():
            continue
        cm = confusion_matrix(y_true[mask], y_pred[mask], n)
        cw = classwise_accuracy(y_true[mask], y_pred[mask], n)
        out["accuracy"][dev] = float(np.nanmean(cw))
        out["classwise"][dev] = {
            s: (None if np.isnan(a) else float(a)) for s, a in zip(scenes, cw, strict=True)
        }
        out["confusion"][dev] = cm.tolist()
        out["n_eval"][dev] = int(mask.sum())
    if out["accuracy"]:
        out["accuracy"]["avg"] = float(np.mean(list(out["accuracy"].values())))
    return out


def device_recall(
    true_device: Sequence[int], pred_device: Sequence[int],
    device_names: Sequence[str] = DEVICES,
) -> dict[str, float]:
    """Recall of a device classifier per true recording device (NaN for a device with
    no clip). Their mean is the released code's ``average='macro'`` device accuracy,
    the statistic its λ rule reads (study notes section 3), not the clip-weighted one."""
    acc = classwise_accuracy(true_device, pred_device, len(device_names))
    return {d: float(a) for d, a in zip(device_names, acc, strict=True)}
