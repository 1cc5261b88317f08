"""Training and evaluation of the four strategies, the run store and the paper's sweeps.

``TrainConfig`` (profiles ``tiny``/``demo``/``paper``) describes a run; ``train`` trains
it into a run directory (docs/architecture.md, "The run store"), resuming a partial one
and skipping a finished one; ``enumerate_runs`` / ``run_sweep`` cover the paper's tables.
The faithfulness switches (learning-rate decay, λ rule, attention head) are described
in docs/training.md.
"""

from ..spec import STRATEGIES
from .config import (
    EXECUTION_FIELDS,
    LAMBDA_MODES,
    LR_DECAY_MODES,
    PROFILES,
    TrainConfig,
)
from .data import RunData, attention_clips, batch_indices, holdout_mask, load_run_data
from .engine import Engine, lr_at, resolve_accelerator, summary_line, train
from .runstore import HISTORY_COLUMNS, METRICS_KEYS, PREDICTION_COLUMNS, RUN_FILES
from .sweep import (
    BEST_LAYER,
    MODELS,
    TABLE_DATASET,
    enumerate_runs,
    parse_models,
    plan_frame,
    run_status,
    run_sweep,
)

__all__ = [
    "BEST_LAYER", "EXECUTION_FIELDS", "HISTORY_COLUMNS", "LAMBDA_MODES", "LR_DECAY_MODES",
    "METRICS_KEYS", "MODELS", "PREDICTION_COLUMNS", "PROFILES", "RUN_FILES", "STRATEGIES",
    "TABLE_DATASET", "Engine", "RunData", "TrainConfig", "attention_clips", "batch_indices",
    "enumerate_runs", "holdout_mask", "load_run_data", "lr_at", "parse_models", "plan_frame",
    "resolve_accelerator", "run_status", "run_sweep", "summary_line", "train",
]
