"""Turning run directories into the paper's tables and figures, beside the paper's numbers.

``paper`` holds the paper's Tables I-III as data (results/paper/*.csv) and their
consistency checks; ``runs`` reads a results directory; ``tables`` and ``figures`` build
the comparisons; ``output`` makes their output directories all-or-nothing. Nothing here
imports ``caalib.training``: runs are read as files, through ``caalib.rundir``.
"""

from __future__ import annotations

from .paper import PAPER_BEST_LAYERS, load_paper_table
from .runs import RunStoreError, RunStoreWarning, load_runs

__all__ = ["PAPER_BEST_LAYERS", "RunStoreError", "RunStoreWarning", "load_paper_table",
           "load_runs"]
