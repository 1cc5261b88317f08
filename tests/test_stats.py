"""Statistics: z-test arithmetic by hand, McNemar and bootstrap on crafted predictions."""

from __future__ import annotations

import math
from pathlib import Path

import numpy as np
import pytest
from helpers import make_run

from caalib.errors import CaaError
from caalib.stats import (
    bootstrap_macro_accuracy,
    mcnemar_exact,
    paired_runs_test,
    paper_claims,
    ztest_proportions,
)


def _upper_tail(z: float) -> float:
    return 0.5 * math.erfc(z / math.sqrt(2.0))


def test_ztest_by_hand_small() -> None:
    # p1 = 0.60, p2 = 0.50, n1 = n2 = 100: pooled p = (60 + 50) / 200 = 0.55
    # se = sqrt(0.55 * 0.45 * (1/100 + 1/100)) = sqrt(0.00495) = 0.0703562
    # z = 0.10 / 0.0703562 = 1.421338; one-tailed p = 1 - Phi(1.421338) = 0.077609
    r = ztest_proportions(0.60, 0.50, 100, 100)
    assert r.se == pytest.approx(math.sqrt(0.00495))
    assert r.z == pytest.approx(1.421338, abs=1e-6)
    assert r.p == pytest.approx(0.077609, abs=1e-6)
    assert r.p == pytest.approx(_upper_tail(r.z))
    assert ztest_proportions(0.60, 0.50, 100, 100, "less").p == pytest.approx(1 - r.p)
    assert ztest_proportions(0.60, 0.50, 100, 100, "two-sided").p == pytest.approx(2 * r.p)


def test_ztest_paper_claim_all_clips() -> None:
    # 68.0 % vs 65.0 %, n = 2,878 each: pooled p = 0.665
    # se = sqrt(0.665 * 0.335 * 2 / 2878) = sqrt(1.548123e-4) = 0.0124424
    # z = 0.030 / 0.0124424 = 2.41112, p = 0.00795 (< 0.01, as the paper says)
    r = ztest_proportions(68.0, 65.0, 2878, 2878, percent=True)
    assert r.se == pytest.approx(math.sqrt(0.665 * 0.335 * 2 / 2878))
    assert r.z == pytest.approx(2.41112, abs=1e-4)
    assert r.p == pytest.approx(0.00795, abs=1e-5)
    # Unequal n use the pooled estimate: p = (0.7*50 + 0.4*150) / 200 = 0.475
    r2 = ztest_proportions(0.7, 0.4, 50, 150)
    assert r2.se == pytest.approx(math.sqrt(0.475 * 0.525 * (1 / 50 + 1 / 150)))


@pytest.mark.parametrize("args, kw, msg", [
    ((68.0, 65.0, 100, 100), {}, "percent=True"),
    ((0.6, 1.2, 100, 100), {}, "acc2"),
    ((0.6, 0.5, 0, 100), {}, "n1"),
    ((0.6, 0.5, 10.5, 100), {}, "n1"),
    ((0.6, 0.5, 10, 10), {"alternative": "bigger"}, "alternative"),
    ((101.0, 50.0, 10, 10), {"percent": True}, "acc1"),
])
def test_ztest_validates(args, kw, msg) -> None:
    with pytest.raises(ValueError, match=msg):
        ztest_proportions(*args, **kw)


def test_paper_claims_table() -> None:
    df = paper_claims()
    assert len(df) == 8
    allc = df[df["n"] == 2878].set_index("acc2")
    assert allc.loc[65.0, "holds"] and allc.loc[49.0, "holds"]
    bc = df[df["n"] == 360].set_index("acc2")
    assert not bc.loc[65.0, "holds"]  # with only the mobile clips, 68 vs 65 is not p < 0.01
    assert bc.loc[65.0, "p"] == pytest.approx(0.1969, abs=1e-4)
    assert df[df["acc2"] == 49.0]["holds"].all()


def test_mcnemar_identical_and_one_sided() -> None:
    rng = np.random.default_rng(0)
    c = rng.random(200) < 0.6
    same = mcnemar_exact(c, c)
    assert (same.b, same.c, same.p) == (0, 0, 1.0)
    better = c.copy()
    better[~c] = rng.random(int((~c).sum())) < 0.5  # run 1 fixes about half of the errors
    r = mcnemar_exact(better, c)
    assert r.c == 0 and r.b > 20 and r.p < 1e-6
    # exact binomial: b=3, c=1 -> two-sided p = 2 * P(X >= 3 | n=4) = 2 * 5/16
    r4 = mcnemar_exact([1, 1, 1, 0, 1], [0, 0, 0, 1, 1])
    assert (r4.b, r4.c) == (3, 1) and r4.p == pytest.approx(0.625)
    assert mcnemar_exact([1, 1, 1, 0], [0, 0, 0, 1], "greater").p == pytest.approx(5 / 16)
    with pytest.raises(ValueError, match="equal length"):
        mcnemar_exact([1, 0], [1])


def test_bootstrap_ci_contains_estimate_narrows_and_is_deterministic() -> None:
    def data(n: int, seed: int):
        rng = np.random.default_rng(seed)
        y = rng.integers(0, 10, n)
        pred = np.where(rng.random(n) < 0.7, y, (y + 1) % 10)
        dev = rng.choice(["a", "b", "c"], n)
        return y, pred, dev

    small = bootstrap_macro_accuracy(*data(150, 1), n_resamples=200, seed=3)
    large = bootstrap_macro_accuracy(*data(3000, 1), n_resamples=200, seed=3)
    for r in (small, large):
        assert r.low <= r.estimate <= r.high
    assert (large.high - large.low) < 0.5 * (small.high - small.low)
    again = bootstrap_macro_accuracy(*data(150, 1), n_resamples=200, seed=3)
    assert (again.low, again.high) == (small.low, small.high)
    dev_b = bootstrap_macro_accuracy(*data(150, 1), key="b", n_resamples=50, seed=0)
    assert dev_b.low <= dev_b.estimate <= dev_b.high
    with pytest.raises(ValueError, match="key"):
        bootstrap_macro_accuracy([0], [0], ["a"], key="b", n_resamples=5)


def test_paired_runs_test(tmp_path: Path) -> None:
    r1 = make_run(tmp_path, seed=0, acc={"a": 1.0, "b": 1.0, "c": 0.5})
    r2 = make_run(tmp_path, seed=1, acc={"a": 0.5, "b": 1.0, "c": 0.5})
    res = paired_runs_test(r1, r2)
    assert (res.b, res.c, res.n) == (20, 0, 120)
    assert res.p == pytest.approx(2 * 0.5**20)
    on_b = paired_runs_test(r1, r2, source="b")
    assert (on_b.b, on_b.c, on_b.p) == (0, 0, 1.0)
    single = make_run(tmp_path, strategy="single", cond_layer=None, train_source="c",
                      acc={"c": 0.5})
    with pytest.raises(CaaError, match="share no evaluate clips on source a"):
        paired_runs_test(r1, single, source="a")
    with pytest.raises(CaaError, match="not a finished run"):
        paired_runs_test(tmp_path, r1)
    (r2 / "predictions.csv").unlink()
    with pytest.raises(CaaError, match="predictions.csv: no predictions"):
        paired_runs_test(r1, r2)


def test_bad_predictions_named(tmp_path: Path) -> None:
    r1 = make_run(tmp_path, seed=0)
    path = r1 / "predictions.csv"
    lines = path.read_text().splitlines()
    lines[3] = lines[3].replace(",airport,", ",airpot,", 1)
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(CaaError, match=r"predictions.csv, line 4: unknown scene 'airpot'"):
        paired_runs_test(r1, r1)
