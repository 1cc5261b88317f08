"""Which cell of a coarse (pooled) map each input bin falls in: one rule for the heat-map
browser's outlines (``widgets.mask_on_grid``) and the faithfulness measures
(``caalib.explain.measures.to_grid``), so a cell the browser outlines is the cell the
measures count. It lives here, not in ``caalib.explain``, because ``results`` never
imports ``explain`` (docs/architecture.md); ``explain`` builds on ``results``.
"""

from __future__ import annotations

import numpy as np


def bin_cells(n_bins: int, n_cells: int) -> np.ndarray:
    """(n_bins,) the cell of each input bin on an axis of ``n_cells`` cells: bin ``i``
    lies in cell ``i * n_cells // n_bins``, so each cell covers a run of
    ``floor(n_bins / n_cells)`` or one more consecutive bins, in order.

    A ValueError for an axis of more cells than bins (a map finer than its input is no
    pooled map; spreading it would drop cells silently) or of none.
    """
    if not 0 < n_cells <= n_bins:
        raise ValueError(f"{n_bins} input bins cannot be assigned to {n_cells} cells "
                         "(a map needs 1 to as many cells as its input has bins)")
    return np.arange(n_bins) * n_cells // n_bins
