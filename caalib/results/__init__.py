"""Turning run directories into the paper's tables and figures, beside the paper's numbers.

``paper`` holds the paper's Tables I-III as data (results/paper/*.csv) and their
consistency checks; ``runs`` reads a results directory; ``selection`` picks the runs a
figure or test uses (one rule for the notebooks and ``caa``); ``tables`` and ``figures``
build the comparisons; ``spectra`` the device shift of the inputs; ``output`` makes
output directories all-or-nothing. Nothing here imports ``caalib.training`` (runs are
read as files, through ``caalib.rundir``) or ``caalib.stats`` (which builds on this).
"""

from __future__ import annotations

from .paper import PAPER_BEST_LAYERS, load_paper_table
from .runs import RunStoreError, RunStoreWarning, load_runs

__all__ = ["PAPER_BEST_LAYERS", "RunStoreError", "RunStoreWarning", "load_paper_table",
           "load_runs"]
