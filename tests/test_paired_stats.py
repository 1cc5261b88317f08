"""Paired comparisons (caalib.paired_stats) against independent oracles.

McNemar against statsmodels and a hand count; the minimum detectable effect against
Connor's sample-size formula written out here and a simulated power; the paired
bootstrap against scipy.stats.bootstrap and hand-worked cases.
"""

from __future__ import annotations

import math

import numpy as np
import pytest
from scipy import stats
from statsmodels.stats.contingency_tables import mcnemar as sm_mcnemar

from caalib.paired_stats import (
    discordance,
    majority,
    mcnemar_midp,
    paired_bootstrap,
    paired_mde,
)


def _pairs(b: int, c: int, both: int = 5, neither: int = 3) -> tuple[np.ndarray, np.ndarray]:
    x = [1] * b + [0] * c + [1] * both + [0] * neither
    y = [0] * b + [1] * c + [1] * both + [0] * neither
    return np.array(x, bool), np.array(y, bool)


def test_mcnemar_midp_hand_case() -> None:
    # b = 0, c = 3: exact two-sided p = 2 (1/8) = 0.25; mid-p = 2 (1/8 - 1/16) = 0.125
    r = mcnemar_midp(*_pairs(0, 3))
    assert (r.b, r.c) == (0, 3)
    assert r.p == pytest.approx(0.125)
    assert mcnemar_midp(*_pairs(0, 0)).p == 1.0


@pytest.mark.parametrize("b, c", [(3, 9), (10, 4), (1, 12), (40, 25), (16, 18)])
def test_mcnemar_midp_is_statsmodels_exact_less_the_point_mass(b: int, c: int) -> None:
    x, y = _pairs(b, c)
    exact = sm_mcnemar([[5, b], [c, 3]], exact=True).pvalue  # two-sided exact binomial
    assert exact < 1
    expected = exact - stats.binom.pmf(min(b, c), b + c, 0.5)
    assert mcnemar_midp(x, y).p == pytest.approx(expected, rel=1e-9)
    assert mcnemar_midp(x, y).p < exact


def test_mcnemar_midp_of_a_tie_is_one() -> None:
    # b = c: P(X <= k) = 1/2 + P(X = k)/2, so the mid-p is exactly 1
    assert mcnemar_midp(*_pairs(17, 17)).p == pytest.approx(1.0)


def _connor_n(delta: float, psi: float, alpha: float = 0.05, power: float = 0.8) -> float:
    za, zb = stats.norm.ppf(1 - alpha / 2), stats.norm.ppf(power)
    return (za * math.sqrt(psi) + zb * math.sqrt(psi - delta ** 2)) ** 2 / delta ** 2


@pytest.mark.parametrize("n, psi", [(120, 0.3), (2878, 0.15), (360, 0.5), (1000, 0.05)])
def test_mde_inverts_connors_sample_size(n: int, psi: float) -> None:
    mde = paired_mde(n, psi)
    assert 0 < mde <= psi
    assert _connor_n(mde, psi) == pytest.approx(n, rel=1e-6)


def test_mde_has_the_stated_power_in_simulation() -> None:
    n, psi = 2000, 0.2
    delta = paired_mde(n, psi)
    rng = np.random.default_rng(1)
    counts = rng.multinomial(n, [(psi + delta) / 2, (psi - delta) / 2, 1 - psi], size=4000)
    b, c = counts[:, 0], counts[:, 1]
    p = np.minimum(1.0, 2 * stats.binom.cdf(np.minimum(b, c), b + c, 0.5))
    assert np.mean(p < 0.05) == pytest.approx(0.8, abs=0.04)


def test_mde_too_few_clips_and_bad_input() -> None:
    assert paired_mde(5, 0.1) == math.inf
    with pytest.raises(ValueError, match="n_clips"):
        paired_mde(0, 0.2)
    with pytest.raises(ValueError, match="discordance"):
        paired_mde(100, 1.5)


def test_bootstrap_one_seed_agrees_with_scipy_paired_bootstrap() -> None:
    rng = np.random.default_rng(3)
    x = (rng.random(400) < 0.7).astype(float)
    y = (rng.random(400) < 0.6).astype(float)
    ours = paired_bootstrap([x[None]], [y[None]], ["a"] * 400, n_resamples=4000, seed=5)
    ref = stats.bootstrap((x, y), lambda u, v, axis=-1: u.mean(axis) - v.mean(axis),
                          paired=True, vectorized=True, n_resamples=4000,
                          method="percentile", random_state=np.random.default_rng(9))
    assert ours.estimate == pytest.approx(x.mean() - y.mean())
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.012)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.012)
    assert ours.se == pytest.approx(ref.standard_error, rel=0.08)


def test_bootstrap_resamples_seeds_hand_case() -> None:
    # better: one seed all right, one all wrong; worse: all wrong. Clip resampling
    # changes nothing; the seed mean is 0, 1/2 or 1 with probabilities 1/4, 1/2, 1/4.
    better = np.vstack([np.ones(30), np.zeros(30)])
    eff = paired_bootstrap([better], [np.zeros((1, 30))], ["b"] * 30, n_resamples=2000)
    assert eff.estimate == pytest.approx(0.5)
    assert (eff.low, eff.high) == (0.0, 1.0)
    assert eff.n_seeds == 1


def test_bootstrap_averages_devices_and_pairs_clips() -> None:
    # device a: 3 clips, better right on all, worse on 1 -> +2/3; device b: 1 clip, both
    # right -> 0. Mean over devices: 1/3 (a pooled-clip mean would give 1/2).
    better = np.array([[1, 1, 1, 1]], float)
    worse = np.array([[1, 0, 0, 1]], float)
    eff = paired_bootstrap([better], [worse], ["a", "a", "a", "b"], n_resamples=500)
    assert eff.estimate == pytest.approx(1 / 3)
    # identical arms: every resample gives exactly 0 (the same clips for both sides)
    same = paired_bootstrap([worse], [worse.copy()], ["a", "a", "a", "b"], n_resamples=200)
    assert (same.estimate, same.low, same.high) == (0.0, 0.0, 0.0)
    again = paired_bootstrap([better], [worse], ["a", "a", "a", "b"], n_resamples=500)
    assert (again.low, again.high) == (eff.low, eff.high)  # fixed rng seed


def test_bootstrap_refuses_mismatched_arms() -> None:
    with pytest.raises(ValueError, match="arm 1"):
        paired_bootstrap([np.ones((1, 4))], [np.ones((1, 3))], ["a"] * 4)
    with pytest.raises(ValueError, match="0/1"):
        paired_bootstrap([np.full((1, 2), 0.5)], [np.ones((1, 2))], ["a"] * 2)


def test_discordance_and_majority_by_hand() -> None:
    a = np.array([[1, 1, 0, 0], [1, 0, 0, 0], [1, 1, 1, 0]])
    b = np.array([[1, 0, 0, 1], [0, 0, 0, 0]])
    # seed 0: clips 1 and 3 differ (2/4); seed 1: clip 0 differs (1/4); seed 2 has no partner
    assert discordance([a], [b]) == pytest.approx((0.5 + 0.25) / 2)
    assert majority(a).tolist() == [True, True, False, False]


def test_effective_clips_by_hand() -> None:
    from caalib.paired_stats import effective_clips

    # D^2 / sum 1/n_d: three devices of 20 clips are 60 (not 59.999... truncated)
    assert effective_clips(["a"] * 20 + ["b"] * 20 + ["c"] * 20) == 60
    assert effective_clips(["a"] * 10 + ["b"] * 30) == 30  # 4 / (1/10 + 1/30)
    assert effective_clips(["a"] * 10 + ["b"] * 20) == 27  # 4 / (1/10 + 1/20) = 26.7
    with pytest.raises(ValueError, match="no clips"):
        effective_clips([])
