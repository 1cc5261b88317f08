"""Faithfulness measures on crafted maps and models with known answers, and `caa explain`."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch

from caalib.explain.attribution import integrated_gradients, true_class_score
from caalib.explain.faithfulness import LoadedRun, pick_clips, score_run
from caalib.explain.measures import (
    auc,
    localisation,
    order_of,
    perturbation_curve,
    pointing,
    to_grid,
)
from caalib.results.grid import bin_cells

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


def test_uneven_cells_take_the_floor_rule_and_a_finer_map_is_refused() -> None:
    # bin i lies in cell i * cells // bins: 5 bins on 2 cells: 0, 0, 0 (4 // 5), 1 (6 // 5),
    # 1; 7 bins on 3 cells: 0, 0, 0 (6 // 7), 1 (9 // 7), 1, 2 (15 // 7), 2
    assert bin_cells(5, 2).tolist() == [0, 0, 0, 1, 1]
    assert bin_cells(7, 3).tolist() == [0, 0, 0, 1, 1, 2, 2]
    small = np.array([[1.0, 2.0, 3.0], [4.0, 5.0, 6.0]])
    assert to_grid(small, (5, 7)).tolist() == (
        [[1.0, 1.0, 1.0, 2.0, 2.0, 3.0, 3.0]] * 3 + [[4.0, 4.0, 4.0, 5.0, 5.0, 6.0, 6.0]] * 2)
    with pytest.raises(ValueError, match="3 input bins cannot be assigned to 4 cells"):
        to_grid(np.ones((2, 4)), (5, 3))  # more frequency cells than bins
    with pytest.raises(ValueError, match="2-D"):
        to_grid(np.ones(4), (5, 3))


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


# A 2 x 3 map and a linear score, worked by hand. Flat bins 0..5 (row by row):
#   map     3  0  5      weights  0.1  0    0.4      input x = 1, baseline = 0,
#           1  4  2               0    0.3  0.2      so score = sum of the kept weights
# The map's order (largest first): bins 2 (5), 4 (4), 0 (3), 5 (2), 3 (1), 1 (0).
# steps = 3: 0, 2, 4 and 6 bins perturbed.
HAND_MAP = np.array([[3.0, 0.0, 5.0], [1.0, 4.0, 2.0]])
HAND_W = np.array([[0.1, 0.0, 0.4], [0.0, 0.3, 0.2]])
HAND_OTHER = np.array([1, 3, 5, 0, 4, 2])  # an order standing in for a random one


def _hand_score(batch: np.ndarray) -> np.ndarray:
    return (batch * HAND_W).sum(axis=(1, 2))


def test_deletion_insertion_and_faithfulness_worked_by_hand() -> None:
    x, base = np.ones((2, 3)), np.zeros((2, 3))
    order = order_of(HAND_MAP)
    assert order.tolist() == [2, 4, 0, 5, 3, 1]
    d = perturbation_curve(_hand_score, x, order, base, 3, "deletion")
    # 1; 1 - 0.4 - 0.3 = 0.3 (bins 2, 4 gone); 0.3 - 0.1 - 0.2 = 0 (bins 0, 5); 0
    assert d == pytest.approx([1.0, 0.3, 0.0, 0.0])
    # trapezoids over thirds: ((1 + 0.3) / 2 + (0.3 + 0) / 2 + 0) / 3 = 0.8 / 3
    assert auc(d) == pytest.approx(0.8 / 3)
    ins = perturbation_curve(_hand_score, x, order, base, 3, "insertion")
    # 0; 0.4 + 0.3 = 0.7; 0.7 + 0.1 + 0.2 = 1; 1
    assert ins == pytest.approx([0.0, 0.7, 1.0, 1.0])
    # ((0 + 0.7) / 2 + (0.7 + 1) / 2 + (1 + 1) / 2) / 3 = 2.2 / 3
    assert auc(ins) == pytest.approx(2.2 / 3)
    other = perturbation_curve(_hand_score, x, HAND_OTHER, base, 3, "deletion")
    # bins 1, 3 gone (weights 0): 1; then 5, 0: 1 - 0.2 - 0.1 = 0.7; then all: 0
    assert other == pytest.approx([1.0, 1.0, 0.7, 0.0])
    # ((1 + 1) / 2 + (1 + 0.7) / 2 + (0.7 + 0) / 2) / 3 = 2.2 / 3
    assert auc(other) == pytest.approx(2.2 / 3)
    # faithfulness (docs/explanations.md): the other order's area minus the map's,
    # 2.2 / 3 - 0.8 / 3 = 1.4 / 3: the map's bins matter more
    assert auc(other) - auc(d) == pytest.approx(1.4 / 3)


class _MeanSquaredModel(torch.nn.Module):
    """Class 0's score is mean(x)^2 whatever the order bins go in (so a random order's
    curve is known by hand too); its attention is :data:`HAND_MAP` for every class."""

    def forward(self, x: torch.Tensor, source: torch.Tensor | None = None) -> _Out:
        n = x.shape[0]
        logit0 = 2.0 * torch.log(x.mean(dim=(1, 2)))
        scene = torch.stack([logit0, *[torch.zeros_like(logit0)] * 9], dim=1)
        att = torch.tensor(HAND_MAP, dtype=torch.float32).expand(n, 10, 2, 3)
        return _Out(scene, att)


def test_score_run_tabulates_a_run_worked_by_hand() -> None:
    mask = np.array([[False, False, True], [False, True, False]])  # bins 2 and 4
    run = LoadedRun("toy", {"topology": "pool", "pooling": "att", "strategy": "joint"},
                    _MeanSquaredModel(), np.ones((1, 2, 3)),
                    pd.DataFrame({"filename": ["x.wav"], "scene_label": ["airport"],
                                  "source": ["a"]}), False)
    table, curves = score_run(run, {"x.wav": {"scene": mask, "shared": ~mask}}, steps=3)
    table = table.set_index("method")
    # every curve, any order: 0, 2, 4, 6 of the 6 bins at 0 leave a mean of 1, 2/3, 1/3,
    # 0, a score of 1, 4/9, 1/9, 0; insertion the same backwards. Area:
    # ((1 + 4/9) / 2 + (4/9 + 1/9) / 2 + (1/9 + 0) / 2) / 3 = (19 / 18) / 3 = 19 / 54
    for col in ("deletion_auc", "insertion_auc", "random_deletion_auc",
                "random_insertion_auc"):
        assert table[col].tolist() == pytest.approx([19 / 54] * 2, rel=1e-6), col
    # so no map beats a random order: faithfulness 0
    assert table["faithfulness"].tolist() == pytest.approx([0.0, 0.0], abs=1e-6)
    # attention: mass (5 + 4) / 15 = 0.6 in the mask, a third of the grid: 1.8x chance;
    # its peak (5, bin 2) is in the mask
    att = table.loc["attention"]
    assert (att["mass_in_mask"], att["mask_share"], att["localisation"]) == pytest.approx(
        (0.6, 1 / 3, 1.8))
    assert (att["pointing"], att["pointing_chance"]) == pytest.approx((1.0, 1 / 3))
    # integrated gradients of log(mean^2): the same gradient at every bin, a uniform map:
    # chance itself (mass 1/3 on 1/3 of the grid; a tie, the hit shared: 2 of 6 bins)
    ig = table.loc["integrated_gradients"]
    assert (ig["mass_in_mask"], ig["localisation"], ig["pointing"]) == pytest.approx(
        (1 / 3, 1.0, 1 / 3))
    assert (table["n_clips"] == 1).all() and (table["source"] == "a").all()
    dele = curves[(curves["method"] == "attention") & (curves["curve"] == "deletion")]
    assert dele["fraction"].tolist() == pytest.approx([0, 1 / 3, 2 / 3, 1])
    assert dele["score"].tolist() == pytest.approx([1, 4 / 9, 1 / 9, 0], abs=1e-6)


# ------------------------------------------------------------------------- pick_clips
def _pick_meta() -> tuple[pd.DataFrame, dict[str, dict[str, np.ndarray]]]:
    """Positions 0-7 (the index is not): device a has airport at 0, 1, 2, bus at 3, park
    at 4 and 5 (5's mask empty: no evidence); b one airport clip at 6; c one at 7, empty."""
    rows = [("a", "airport"), ("a", "airport"), ("a", "airport"), ("a", "bus"),
            ("a", "park"), ("a", "park"), ("b", "airport"), ("c", "tram")]
    meta = pd.DataFrame({"filename": [f"clip{i}.wav" for i in range(len(rows))],
                         "source": [d for d, _ in rows], "scene_label": [s for _, s in rows]},
                        index=[70, 60, 50, 40, 30, 20, 10, 0])
    evidence = {}
    for i in range(len(rows)):
        scene = np.zeros((4, 64), bool)
        if i not in (5, 7):
            scene[1, 3] = True
        evidence[f"clip{i}.wav"] = {"scene": scene, "shared": ~scene}
    return meta, evidence


def test_pick_clips_spreads_over_scenes_in_sorted_order() -> None:
    meta, evidence = _pick_meta()
    # device a's scenes with evidence, sorted: airport (0, 1, 2), bus (3), park (4).
    # Round-robin: 2 clips = one airport, the bus; 4 = one of each, then a second airport
    two = pick_clips(meta, evidence, 2, seed=0)["a"]
    assert len(two) == 2 and two[0] in (0, 1, 2) and two[1] == 3
    four = pick_clips(meta, evidence, 4, seed=0)["a"]
    assert len(four) == 4 and four.tolist() == sorted(four.tolist())  # rows, ascending
    assert set(four) - {0, 1, 2} == {3, 4} and len(set(four) & {0, 1, 2}) == 2
    assert four.dtype.kind == "i"


def test_pick_clips_takes_all_a_device_has_and_skips_empty_masks() -> None:
    meta, evidence = _pick_meta()
    picks = pick_clips(meta, evidence, 10, seed=3)
    assert sorted(picks) == ["a", "b", "c"]
    assert picks["a"].tolist() == [0, 1, 2, 3, 4]  # fewer than 10: every clip, not 5
    assert picks["b"].tolist() == [6]  # positions, not the index labels (10)
    assert picks["c"].tolist() == []  # no clip with evidence: none
    assert pick_clips(meta, evidence, 0)["a"].tolist() == []


def test_pick_clips_is_deterministic_in_its_seed() -> None:
    meta, evidence = _pick_meta()
    first = pick_clips(meta, evidence, 4, seed=5)
    again = pick_clips(meta, evidence, 4, seed=5)
    assert all(np.array_equal(first[d], again[d]) for d in "abc")
    # which two of the three airport clips are drawn depends on the seed alone
    pairs = {tuple(pick_clips(meta, evidence, 4, seed=s)["a"][:2]) for s in range(12)}
    assert len(pairs) > 1 and pairs <= {(0, 1), (0, 2), (1, 2)}


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
    # the numbers themselves are worked by hand above (a toy run); here, their range
    aucs = table[["deletion_auc", "insertion_auc", "random_deletion_auc",
                  "random_insertion_auc"]].to_numpy()
    assert ((aucs >= 0) & (aucs <= 1)).all() and table["faithfulness"].abs().le(1).all()
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
