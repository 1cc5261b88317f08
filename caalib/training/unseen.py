"""What a conditioned strategy feeds for a recording device it has no slot for.

Teacher forcing and multi-task condition a block on a one-hot over the devices seen in
training; the 2020 layout's S4-S6 appear only in evaluation. ``TrainConfig.unseen_source``
chooses (docs/unseen-devices.md):

- ``"nearest"``: the known device closest to the clip. Multi-task does this by itself
  (CNN-d can only answer a known device). Teacher forcing has no CNN-d, so its nearest
  device is the nearest centroid of the clips' mean spectra (the time-averaged
  standardised log-mel) of each known device's training clips: the device whose
  response the clip's spectrum resembles most, with nothing learnt.
- ``"none"``: no conditioning for those clips (a zero one-hot: the conditioning
  adds only its bias), for both strategies.

Clips of known devices are conditioned as before under either policy; a split without
an unseen device is passed through untouched.
"""

from __future__ import annotations

import numpy as np


def source_centroids(x: np.ndarray, source: np.ndarray, n_sources: int) -> np.ndarray:
    """(n_sources, F): the mean over clips and frames of ``x`` (N, T, F) per source index
    (NaN rows for a source without clips, which is then never the nearest)."""
    out = np.full((n_sources, x.shape[2]), np.nan)
    clip_means = x.astype(np.float64).mean(axis=1)
    for k in range(n_sources):
        rows = source == k
        if rows.any():
            out[k] = clip_means[rows].mean(axis=0)
    return out


def nearest_source(x: np.ndarray, centroids: np.ndarray) -> np.ndarray:
    """(N,) index of the centroid nearest (Euclidean) to each clip's mean spectrum."""
    clip_means = x.astype(np.float64).mean(axis=1)  # (N, F)
    dist = ((clip_means[:, None, :] - centroids[None, :, :]) ** 2).sum(axis=2)
    return np.nan_to_num(dist, nan=np.inf).argmin(axis=1)


def conditioning_sources(source: np.ndarray, n_sources: int, policy: str, *,
                         x: np.ndarray | None = None,
                         centroids: np.ndarray | None = None,
                         ) -> tuple[np.ndarray, np.ndarray | None]:
    """(indices to condition on, rows to leave unconditioned or None).

    Known rows keep their index. Unseen rows (index >= ``n_sources``) get the nearest
    known device (``"nearest"``: from ``x`` and ``centroids``, teacher forcing) or index 0
    masked out (``"none"``). Returns the input and None when no row is unseen."""
    unseen = source >= n_sources
    if not unseen.any():
        return source, None
    out = source.copy()
    if policy == "none":
        out[unseen] = 0
        return out, unseen
    if x is None or centroids is None:
        raise ValueError("the nearest known device needs the clips and the centroids")
    out[unseen] = nearest_source(x[unseen], centroids)
    return out, None
