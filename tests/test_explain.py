"""Faithfulness measures on crafted maps and models with known answers, and `caa explain`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from caalib.explain.attribution import integrated_gradients, true_class_score
from caalib.explain.measures import (
    auc,
    localisation,
    order_of,
    perturbation_curve,
    pointing,
    to_grid,
)

T, F = 10, 16
BAND = slice(4, 6)  # mel bins 4 and 5: 2 of 16, an eighth of the grid


def _mask() -> np.ndarray:
    m = np.zeros((T, F), dtype=bool)
    m[:, BAND] = True
    return m


def test_localisation_and_pointing_of_perfect_inverted_and_uniform_maps() -> None:
    mask = _mask()
    share = 2 / 16
    assert localisation(mask.astype(float), mask) == pytest.approx((1.0, share))
    assert localisation((~mask).astype(float), mask) == pytest.approx((0.0, share))
    assert localisation(np.ones((T, F)), mask) == pytest.approx((share, share))
    assert pointing(mask.astype(float), mask) == pytest.approx((1.0, share))
    assert pointing((~mask).astype(float), mask) == pytest.approx((0.0, share))
    assert pointing(np.ones((T, F)), mask) == pytest.approx((share, share))
    # negative attributions carry no mass: an all-negative map is uniform
    assert localisation(-np.ones((T, F)), mask) == pytest.approx((share, share))
    with pytest.raises(ValueError, match="mask"):
        localisation(np.ones((T, F)), np.zeros((T, F), bool))


def test_a_pooled_map_covers_the_grid_in_equal_blocks() -> None:
    small = np.arange(6.0).reshape(2, 3)
    assert np.array_equal(to_grid(small, (4, 6)), np.kron(small, np.ones((2, 2))))


def test_auc_by_trapezoids() -> None:
    assert auc(np.full(5, 0.3)) == pytest.approx(0.3)
    assert auc(np.linspace(1, 0, 9)) == pytest.approx(0.5)
    assert auc(np.array([1.0, 0, 0, 0, 0, 0, 0, 0, 0])) == pytest.approx(0.5 / 8)


def _band_score(batch: np.ndarray) -> np.ndarray:
    """A 'model' whose score is the mean of the input over the band."""
    return batch[:, :, BAND].mean(axis=(1, 2))


def test_deleting_the_band_first_drops_the_score_at_once() -> None:
    x, base = np.ones((T, F)), np.zeros((T, F))
    order = order_of(_mask().astype(float), np.random.default_rng(0))
    curve = perturbation_curve(_band_score, x, order, base, 8, "deletion")
    # an eighth of the bins is the band: after the first step nothing is left
    assert curve[0] == 1.0 and np.all(curve[1:] == 0.0)
    assert auc(curve) == pytest.approx(0.5 / 8)
    ins = perturbation_curve(_band_score, x, order, base, 8, "insertion")
    assert ins[0] == 0.0 and np.all(ins[1:] == 1.0)
    rand = perturbation_curve(_band_score, x, np.random.default_rng(1).permutation(T * F),
                              base, 8, "deletion")
    assert auc(rand) > 0.3  # a random order removes the band gradually: area near 1/2
    with pytest.raises(ValueError, match="mode"):
        perturbation_curve(_band_score, x, order, base, 8, "shuffle")


@dataclass
class _Out:
    scene: torch.Tensor
    attention: torch.Tensor | None = None


class _BandModel(torch.nn.Module):
    """Class 0's logit is 3x the mean over the band; the other classes' logits are 0."""

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None) -> _Out:
        logit0 = 3.0 * x[:, :, BAND].mean(dim=(1, 2))
        logits = torch.stack([logit0, *[torch.zeros_like(logit0)] * 9], dim=1)
        return _Out(torch.log_softmax(logits, dim=1))


class _Linear(torch.nn.Module):
    def __init__(self, w: torch.Tensor) -> None:
        super().__init__()
        self.w = w

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None) -> _Out:
        return _Out((x * self.w).sum(dim=(1, 2))[:, None].repeat(1, 10))


def test_integrated_gradients_of_a_linear_score_is_weight_times_input() -> None:
    rng = np.random.default_rng(0)
    w = rng.normal(size=(T, F))
    x, b = rng.normal(size=(T, F)), rng.normal(size=(T, F))
    ig = integrated_gradients(_Linear(torch.tensor(w, dtype=torch.float32)), x, 0, None, b)
    assert np.allclose(ig, w * (x - b), atol=1e-5)


def test_gradients_find_the_band_and_deletion_by_them_drops_first() -> None:
    model = _BandModel()
    x = np.abs(np.random.default_rng(2).normal(1.0, 0.3, (T, F)))
    ig = integrated_gradients(model, x, 0, None, 0.0, steps=64)
    assert np.all(ig[:, ~_mask()[0]] == 0.0) and np.all(ig[:, BAND] > 0)
    # completeness: the attributions sum to the log-score's change from the baseline
    f = lambda v: np.log(true_class_score(model, v[None], 0, None))[0]  # noqa: E731
    assert ig.sum() == pytest.approx(f(x) - f(np.zeros_like(x)), rel=1e-3)
    assert localisation(ig, _mask()) == pytest.approx((1.0, 2 / 16))

    def score(batch: np.ndarray) -> np.ndarray:
        return true_class_score(model, batch, 0, None)

    base = np.zeros_like(x)
    by_ig = perturbation_curve(score, x, order_of(ig), base, 8, "deletion")
    rand = perturbation_curve(score, x, np.random.default_rng(3).permutation(x.size), base, 8,
                              "deletion")
    chance = 0.1  # softmax of ten equal logits once the band is gone
    assert by_ig[0] > 0.5 and np.allclose(by_ig[1:], chance, atol=1e-6)
    assert auc(rand) - auc(by_ig) > 0.1


# ---------------------------------------------------------------- the command end to end
@pytest.fixture(scope="module")
def attention_run(tmp_path_factory, tiny_dataset_2018, tiny_features_2018) -> Path:
    from caalib.training import TrainConfig, train

    cfg = TrainConfig.from_profile("tiny", topology="pool", pooling="att", strategy="joint",
                                   accelerator="cpu", iterations=10)
    run_dir = tmp_path_factory.mktemp("explain") / "runs" / cfg.run_name
    train(cfg, run_dir, data_dir=tiny_dataset_2018, progress=False)
    return run_dir


@pytest.mark.usefixtures("one_thread")
def test_caa_explain_writes_the_table_and_curves(attention_run: Path,
                                                 tiny_dataset_2018: Path) -> None:
    from caalib.cli import main
    from caalib.explain import TABLE_COLUMNS

    assert main(["explain", str(attention_run), "--data", str(tiny_dataset_2018),
                 "--max-clips", "2", "--steps", "2"]) == 0
    out = attention_run.parent.parent / "explain"
    assert sorted(p.name for p in out.iterdir()) == [
        "faithfulness.csv", "faithfulness_curves.csv", "faithfulness_curves.pdf",
        "faithfulness_curves.png"]
    table = pd.read_csv(out / "faithfulness.csv")
    assert tuple(table.columns) == TABLE_COLUMNS
    assert sorted(set(zip(table["source"], table["method"], strict=True))) == [
        (d, m) for d in "abc" for m in ("attention", "integrated_gradients")]
    assert (table["n_clips"] == 2).all()
    assert np.allclose(table["faithfulness"],
                       table["random_deletion_auc"] - table["deletion_auc"])
    assert ((table["pointing_chance"] > 0) & (table["pointing_chance"] < 1)).all()
    curves = pd.read_csv(out / "faithfulness_curves.csv")
    assert len(curves) == 6 * 4 * 3  # rows x curves x points


def test_caa_explain_without_masks_fails_and_writes_nothing(attention_run: Path,
                                                            tmp_path: Path, capsys) -> None:
    from caalib.cli import main

    out = tmp_path / "explain"
    assert main(["explain", str(attention_run), "--data", str(tmp_path / "real"),
                 "--out", str(out)]) == 1
    assert "evidence.npz" in capsys.readouterr().err
    assert not out.exists()


def test_the_chapter_sentence_reads_the_table() -> None:
    from caalib.explain.summary import verdict

    rows = [("atrous", "attention", 2.0, 0.10), ("pool", "attention", 1.5, 0.20),
            ("atrous", "integrated_gradients", 3.0, 0.05)]
    table = pd.DataFrame([{"topology": t, "pooling": "att", "method": m, "localisation": loc,
                           "faithfulness": fa, "n_clips": 4, "source": d}
                          for t, m, loc, fa in rows for d in "abc"])
    text = verdict(table)
    assert "localisation 2.00x chance, faithfulness +0.100" in text
    assert ("By localisation atrous + attention explains better than pooled + attention and "
            "worse than integrated gradients (atrous); by deletion worse than pooled + "
            "attention and better than integrated gradients (atrous)") in text
