"""The fast path's numerics check (caalib.training.numerics): the engine's fast update
against its true-fp32 update from one init on the same learnable data."""

from __future__ import annotations

import numpy as np
import pytest

from caalib.training import TrainConfig
from caalib.training.numerics import check_fast_numerics, compare_runs, synthetic_data


def _config(strategy: str = "multi_task", cond_layer: int | None = 4) -> TrainConfig:
    return TrainConfig.from_profile(
        "tiny", strategy=strategy, cond_layer=cond_layer, accelerator="cpu",
        train_source="a" if strategy == "single" else None)


def test_bf16_on_cpu_stays_close_to_fp32() -> None:
    report = check_fast_numerics(_config(), steps=6)
    assert report.device == "cpu" and "bf16" in report.candidate
    assert len(report.loss_reference) == len(report.loss_candidate) == 6
    # bf16 autocast really ran: the curves differ, but only slightly
    assert report.loss_reference != report.loss_candidate
    assert report.max_loss_rel_diff <= report.rtol
    assert report.ok, report.to_dict()
    # the same curves fail a tolerance below bf16's rounding
    strict = compare_runs(report.loss_reference, report.loss_candidate,
                          report.accuracy_reference, report.accuracy_candidate,
                          rtol=1e-9, acc_tol=1.0)
    assert strict["ok"] is False


@pytest.mark.parametrize("strategy, cond_layer", [
    ("single", None), ("joint", None), ("teacher_forcing", 2), ("multi_task", 4),
])
def test_same_arithmetic_gives_the_same_curve(strategy: str, cond_layer: int | None) -> None:
    """Without autocast the CPU candidate is the reference's arithmetic: one init, one
    batch order, bit-identical losses - so a gap in the bf16 check is the arithmetic."""
    report = check_fast_numerics(_config(strategy, cond_layer), steps=3, cpu_autocast=False)
    assert report.loss_reference == report.loss_candidate
    assert report.accuracy_diff == 0 and report.max_loss_rel_diff == 0 and report.ok
    assert all(np.isfinite(report.loss_reference))


def test_compare_runs_catches_a_diverging_path() -> None:
    ref = [2.3, 2.2, 2.0, 1.8]
    assert compare_runs(ref, [2.31, 2.21, 2.0, 1.79], 0.5, 0.5, 0.05, 0.1)["ok"]
    assert not compare_runs(ref, [2.3, 2.2, 2.6, 2.9], 0.5, 0.5, 0.05, 0.1)["ok"]
    assert not compare_runs(ref, ref, 0.5, 0.2, 0.05, 0.1)["ok"]  # accuracy gap
    assert not compare_runs(ref, [2.3, float("nan"), 2.0, 1.8], 0.5, 0.5, 1e9, 1)["ok"]
    with pytest.raises(ValueError, match="length"):
        compare_runs(ref, ref[:2], 0.5, 0.5, 0.05, 0.1)


def test_synthetic_data_is_an_engine_run_data() -> None:
    data = synthetic_data(24, frames=16, mels=8, batch=4, steps=5, seed=3)
    assert data.x.shape == (24, 16, 8) and data.x.dtype == np.float32
    assert data.order.shape == (5, 4) and data.order.max() < 24
    assert set(data.scene) == set(range(10)) and set(data.source) == {0, 1, 2}
    again = synthetic_data(24, frames=16, mels=8, batch=4, steps=5, seed=3)
    assert np.array_equal(data.x, again.x) and np.array_equal(data.order, again.order)
    run = data.run_data()
    assert (run.n_frames, run.n_mels) == (16, 8) and run.holdout is None
    assert len(run.train) == len(run.evaluate) == 24
