"""The FLOP floor of `caa sweep --dry-run` and the evaluation schedule it counts."""

from __future__ import annotations

import pytest

from caalib.training import TrainConfig
from caalib.training.estimate import evaluations, floor


def test_evaluation_counts_follow_the_schedule():
    mt = TrainConfig.from_profile("paper", strategy="multi_task", cond_layer=4, accelerator="cpu")
    assert evaluations(mt) == 150  # the released λ reads every 100th iteration
    joint = mt.replace(strategy="joint", cond_layer=None)
    assert evaluations(joint) == 10  # every 1,500 iterations, the last one included
    assert evaluations(joint.replace(eval_schedule="dense")) == 150
    clean = mt.replace(lambda_mode="clean")  # decides on held-out clips: sparse scoring
    assert evaluations(clean) == 10
    assert evaluations(joint.replace(eval_schedule="final")) == 1  # the last iteration only
    assert evaluations(clean.replace(eval_schedule="final")) == 1
    assert evaluations(mt.replace(eval_schedule="final")) == 150  # λ still reads them


def test_floor_of_the_paper_run_matches_the_study_notes():
    """Study notes section 6: ~89 GMAC forward per 10 s clip, ~0.53 TFLOP per training
    sample, ~1.3e17 FLOP for one 15,000 x 16 run."""
    cfg = TrainConfig.from_profile("paper", strategy="multi_task", cond_layer=4, accelerator="cpu")
    f = floor([cfg], n_eval_clips=2878)
    assert f.train_flops == pytest.approx(1.3e17, rel=0.02)
    # 150 evaluations of 2,878 clips at 2 x 89.4 GMAC each
    assert f.eval_flops == pytest.approx(150 * 2878 * 2 * 89.40e9, rel=0.01)
    assert f.rate > 0 and f.hours > 0 and "at least" in f.text()
