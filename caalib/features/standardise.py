"""Per-mel-bin standardisation (study notes section 1): statistics from training frames only."""

from __future__ import annotations

import numpy as np


def fit_standardiser(features: np.ndarray, chunk: int = 256) -> tuple[np.ndarray, np.ndarray]:
    """Mean and standard deviation (64,) of each mel bin over all frames of ``features``.

    Accumulated in float64 over chunks of clips, so a full dataset in float32 neither
    loses precision nor needs a float64 copy. Bins with zero spread get std 1, so that
    standardising leaves them at zero instead of dividing by zero.
    """
    features = np.asarray(features)
    if features.ndim < 2 or features.shape[0] == 0:
        raise ValueError(f"need (N, T, F) features with N > 0, got {features.shape}")
    flat = features.reshape(-1, features.shape[-1])
    total = np.zeros(flat.shape[1])
    count = flat.shape[0]
    step = chunk * (features.shape[1] if features.ndim == 3 else 1)
    for s in range(0, count, step):
        total += flat[s : s + step].sum(axis=0, dtype=np.float64)
    mean = total / count
    sq = np.zeros(flat.shape[1])
    for s in range(0, count, step):
        sq += np.square(flat[s : s + step] - mean).sum(axis=0)
    std = np.sqrt(sq / count)
    std = np.where(std > 0, std, 1.0)
    return mean.astype(np.float32), std.astype(np.float32)


def standardise(features: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    """``(features - mean) / std`` per mel bin, as float32."""
    return ((np.asarray(features) - mean) / std).astype(np.float32)
