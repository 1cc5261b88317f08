"""Faithfulness measures of one explanation map, each with its chance level.

Pure numpy on (T, F) arrays (the map-to-input cell rule is ``caalib.results.grid``'s,
shared with the heat-map browser), so they are tested on crafted maps with known answers
(tests/test_explain.py) before they meet a model. Definitions: docs/explanations.md.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from ..results.grid import bin_cells

#: Score of a batch of perturbed inputs (n, T, F) -> (n,) true-class probabilities.
ScoreFn = Callable[[np.ndarray], np.ndarray]


def to_grid(values: np.ndarray, shape: tuple[int, int]) -> np.ndarray:
    """A (T', F') map on the (T, F) input grid: each input bin takes the value of the map
    cell it falls in (``caalib.results.grid.bin_cells``, the rule the browser outlines
    cells by; a ValueError for a map finer than the input)."""
    values = np.asarray(values, dtype=np.float64)
    if values.ndim != 2:
        raise ValueError(f"a map must be 2-D (T', F'), got shape {values.shape}")
    (t, f), (tc, fc) = shape, values.shape
    return values[np.ix_(bin_cells(t, tc), bin_cells(f, fc))]


def as_mass(values: np.ndarray) -> np.ndarray:
    """Non-negative and summing to 1 (negative attributions count as none; a map with
    no positive value is uniform: it points nowhere)."""
    m = np.clip(np.asarray(values, dtype=np.float64), 0.0, None)
    total = m.sum()
    return m / total if total > 0 else np.full(m.shape, 1.0 / m.size)


def localisation(values: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(mass inside ``mask``, the mask's share of the grid): chance is equality.

    A map that puts all its mass in the mask scores 1 against a share of, say, 0.1 (a
    ratio of 10); a uniform map scores the share itself (a ratio of 1).
    """
    mask = np.asarray(mask, dtype=bool)
    if not mask.any():
        raise ValueError("localisation needs a mask with at least one bin")
    return float(as_mass(values)[mask].sum()), float(mask.mean())


def pointing(values: np.ndarray, mask: np.ndarray) -> tuple[float, float]:
    """(hit, chance) of the pointing game: is the most-attended bin in the mask?

    Ties share the hit (a uniform map scores the mask's share, its chance level); chance
    is the probability that a bin drawn at random lies in the mask.
    """
    values = np.asarray(values, dtype=np.float64)
    mask = np.asarray(mask, dtype=bool)
    top = values == values.max()
    return float(mask[top].mean()), float(mask.mean())


def order_of(values: np.ndarray, rng: np.random.Generator | None = None) -> np.ndarray:
    """Flat bin indices, most important first; ties broken at random when ``rng`` is
    given (a stable order would favour the top-left of the grid), else stably."""
    flat = np.asarray(values, dtype=np.float64).ravel()
    if rng is None:
        return np.argsort(-flat, kind="stable")
    jitter = rng.permutation(flat.size)
    return np.lexsort((jitter, -flat))


def fractions(steps: int) -> np.ndarray:
    """The shares of bins perturbed at each point of a curve: 0, 1/steps, ..., 1."""
    return np.linspace(0.0, 1.0, steps + 1)


def perturbation_curve(score: ScoreFn, x: np.ndarray, order: np.ndarray,
                       baseline: np.ndarray, steps: int, mode: str) -> np.ndarray:
    """(steps + 1,) true-class scores as bins are deleted or inserted in ``order``.

    ``deletion``: start from ``x`` and replace the first k bins of ``order`` by
    ``baseline``; ``insertion``: start from ``baseline`` and restore them from ``x``.
    All points of one curve go through ``score`` as one batch.
    """
    if mode not in ("deletion", "insertion"):
        raise ValueError(f"mode must be deletion or insertion, got {mode!r}")
    shape = x.shape
    flat_x, flat_b = x.ravel(), np.broadcast_to(baseline, shape).ravel()
    counts = np.round(fractions(steps) * flat_x.size).astype(int)
    batch = np.empty((steps + 1, flat_x.size), dtype=x.dtype)
    for i, k in enumerate(counts):
        if mode == "deletion":
            batch[i] = flat_x
            batch[i, order[:k]] = flat_b[order[:k]]
        else:
            batch[i] = flat_b
            batch[i, order[:k]] = flat_x[order[:k]]
    return np.asarray(score(batch.reshape(steps + 1, *shape)), dtype=np.float64)


def auc(curve: np.ndarray) -> float:
    """Area under a curve sampled at ``fractions(len(curve) - 1)`` (trapezoids)."""
    curve = np.asarray(curve, dtype=np.float64)
    return float(np.sum((curve[1:] + curve[:-1]) / 2.0) / (curve.size - 1))
