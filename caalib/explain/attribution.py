"""Explanation maps of a trained model: its own attention, and integrated gradients.

Integrated gradients (Sundararajan et al., 2017) is written out here rather than taken
from a library: it is a dozen lines, and its completeness property (the attributions
sum to the score's change from the baseline) is what the tests check it by.
"""

from __future__ import annotations

import numpy as np
import torch

#: Interpolation steps of integrated gradients (a Riemann sum at the midpoints).
IG_STEPS = 16


def _forward(model: torch.nn.Module, x: torch.Tensor, source: torch.Tensor | None):
    return model(x, source=source)


def true_class_score(model: torch.nn.Module, x: np.ndarray, target: int,
                     source: int | None, batch_size: int = 64) -> np.ndarray:
    """(n,) the model's score (probability, ``exp`` of its log-probability output) of
    class ``target`` for each input (n, T, F); ``source`` feeds a teacher-forced model."""
    out = []
    with torch.no_grad():
        for start in range(0, len(x), batch_size):
            xb = torch.as_tensor(np.ascontiguousarray(x[start:start + batch_size]),
                                 dtype=torch.float32)
            sb = None if source is None else torch.full((len(xb),), source, dtype=torch.long)
            out.append(torch.exp(_forward(model, xb, sb).scene[:, target]).double().numpy())
    return np.concatenate(out)


def attention_maps(model: torch.nn.Module, x: np.ndarray, target: np.ndarray,
                   source: np.ndarray | None) -> np.ndarray | None:
    """(n, T', F') the attention each clip's true class gets, None for a head without."""
    with torch.no_grad():
        xb = torch.as_tensor(np.ascontiguousarray(x), dtype=torch.float32)
        sb = None if source is None else torch.as_tensor(source, dtype=torch.long)
        att = _forward(model, xb, sb).attention
    if att is None:
        return None
    idx = torch.as_tensor(target, dtype=torch.long)
    return att[torch.arange(len(idx)), idx].double().numpy()


def integrated_gradients(model: torch.nn.Module, x: np.ndarray, target: int,
                         source: int | None, baseline: np.ndarray | float = 0.0,
                         steps: int = IG_STEPS) -> np.ndarray:
    """(T, F) integrated gradients of the true-class log-score of one input (T, F).

    The path runs from ``baseline`` (the training mean: 0 after standardisation) to
    ``x`` in ``steps`` midpoint steps, all in one batch.
    """
    xt = torch.as_tensor(x, dtype=torch.float32)
    bt = torch.as_tensor(np.broadcast_to(baseline, x.shape).copy(), dtype=torch.float32)
    alphas = (torch.arange(steps, dtype=torch.float32) + 0.5) / steps
    path = (bt + alphas[:, None, None] * (xt - bt)).requires_grad_(True)
    sb = None if source is None else torch.full((steps,), source, dtype=torch.long)
    score = _forward(model, path, sb).scene[:, target].sum()
    (grad,) = torch.autograd.grad(score, path)
    return ((xt - bt) * grad.mean(dim=0)).double().numpy()
