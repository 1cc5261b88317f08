"""Do the heat maps explain? Explanations scored against the simulator's ground truth.

The synthetic datasets carry evidence masks (``caalib.synth.evidence``): where each
clip's scene-specific components dominate. This package rebuilds a trained run, takes
its attention maps and an attribution any CNN has (integrated gradients), and scores
both (``measures``): localisation, the pointing game, deletion and insertion curves
against a random order. It sits above training (it needs the run's weights and inputs)
and beside ``results``, which never import it. Definitions: docs/explanations.md.
"""

from __future__ import annotations

from .faithfulness import CURVE_COLUMNS, TABLE_COLUMNS, explain_runs, load_run, score_run
from .report import write_explain

__all__ = ["CURVE_COLUMNS", "TABLE_COLUMNS", "explain_runs", "load_run", "score_run",
           "write_explain"]
