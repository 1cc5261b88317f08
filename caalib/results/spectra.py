"""The device shift in the inputs: per-device mean log-mel spectra and parallel recordings.

The paper's problem is a device shift: the same scene, recorded at the same moment by
the in-ear device A and the phones B and C, looks different in the log-mel domain. These
functions make that visible on any dataset in the DCASE layout (real or synthetic): the
average log-mel spectrum per device, and one recording heard by all three devices (its
audio and the study's reference log-mel). Which clips form a parallel recording is
:mod:`caalib.datasets`' business (:func:`~caalib.datasets.parallel_mask`,
:func:`~caalib.datasets.pick_parallel_recording`); the figures drawn from these numbers
are in :mod:`caalib.results.figures`. Notebooks 01 and 02 and ``caa device-spectrum`` /
``caa receptive-field`` call them.

The feature code (torch) is imported only by the functions that decode audio.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ..constants import ALL_DEVICES, DEVICES, FEATURE_SAMPLE_RATE
from ..datasets import parallel_mask, pick_parallel_recording, read_dataset
from ..errors import DatasetError


def device_mean_spectrum(feature: np.ndarray, meta: pd.DataFrame,
                         rows: np.ndarray | pd.Series | None = None) -> pd.DataFrame:
    """Average log-mel per mel bin (rows) and device (columns) over frames and clips.

    ``feature`` (N, T, F) and ``meta`` (N rows, ``source_label``) come from
    :func:`caalib.features.load_features`. ``rows`` (a boolean mask or indices)
    restricts the average, e.g. to parallel recordings so that every device averages
    the very same scenes and moments and only the device differs.
    """
    if len(meta) != feature.shape[0]:
        raise ValueError(f"{feature.shape[0]} feature rows but {len(meta)} meta rows")
    dev = meta["source_label"].astype(str).to_numpy()
    idx = np.arange(len(meta)) if rows is None else np.arange(len(meta))[np.asarray(rows)]
    per_clip = feature[idx].mean(axis=1)  # (n, F)
    cols = {}
    for d in ALL_DEVICES:  # every device present: A, B, C (and S1-S6 on 2020)
        sel = dev[idx] == d
        if sel.any():
            cols[d] = per_clip[sel].mean(axis=0)
    out = pd.DataFrame(cols)
    out.index.name = "mel_bin"
    return out


def parallel_device_spectrum(feature: np.ndarray, meta: pd.DataFrame) -> pd.DataFrame:
    """:func:`device_mean_spectrum` over the clips of three-device recordings only.

    Every device then averages the very same moments, so the difference between the
    columns is the device and nothing else. ``attrs["n_parallel"]`` and
    ``attrs["n_clips"]`` say how many clips went in, of how many. Raises a
    :class:`~caalib.errors.DatasetError` when no recording is on all three devices.
    """
    mask = parallel_mask(meta)
    if not mask.any():
        raise DatasetError(f"none of the {len(meta)} clips belongs to a recording present "
                           f"on all three devices {DEVICES}")
    spectrum = device_mean_spectrum(feature, meta, rows=mask)
    spectrum.attrs.update(n_parallel=int(mask.sum()), n_clips=len(mask))
    return spectrum


def device_shift(spectrum: pd.DataFrame, reference: str = "a") -> pd.DataFrame:
    """Each device's mean log-mel minus the reference device's, per mel bin."""
    return spectrum.sub(spectrum[reference], axis=0).drop(columns=reference)


def read_parallel(data_dir: str | os.PathLike[str], rows: pd.DataFrame) -> dict[str, Any]:
    """Audio (mono, at the feature rate) and reference log-mels of the given clips.

    Returns ``{"device": [...], "filename": [...], "audio": [...], "sr": int,
    "logmel": [(T, 64), ...]}``; the log-mel is the study's oracle recipe.
    """
    from ..features import read_clip, reference_logmel

    sr = FEATURE_SAMPLE_RATE
    out: dict[str, Any] = {"device": [], "filename": [], "audio": [], "logmel": [], "sr": sr}
    for _, row in rows.iterrows():
        audio, _silent = read_clip(Path(data_dir) / row["filename"])  # mono, 44.1 kHz
        out["device"].append(str(row["source_label"]))
        out["filename"].append(str(row["filename"]))
        out["audio"].append(np.asarray(audio, dtype=np.float32))
        out["logmel"].append(reference_logmel(audio, sr))
    return out


def example_logmel(data_dir: str | os.PathLike[str], scene: str | None = None,
                   device: str = "a") -> tuple[str, np.ndarray]:
    """(filename, log-mel (T, 64)) of one evaluate clip of a parallel recording."""
    rows = pick_parallel_recording(read_dataset(data_dir), scene=scene)
    rec = read_parallel(data_dir, rows[rows["source_label"] == device])
    return rec["filename"][0], rec["logmel"][0]


__all__ = ["device_mean_spectrum", "device_shift", "example_logmel",
           "parallel_device_spectrum", "read_parallel"]
