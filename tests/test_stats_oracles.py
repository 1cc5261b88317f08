"""caalib.stats against independent implementations: statsmodels for the two-proportion
z-test and McNemar's exact test, scipy.stats.bootstrap (with scikit-learn's balanced
accuracy as the statistic) for the percentile bootstrap."""

from __future__ import annotations

import inspect
import warnings

import numpy as np
import pytest
from scipy import stats as st

from caalib.stats import bootstrap_macro_accuracy, mcnemar_exact, ztest_proportions

proportion = pytest.importorskip("statsmodels.stats.proportion")
contingency = pytest.importorskip("statsmodels.stats.contingency_tables")
skm = pytest.importorskip("sklearn.metrics")

#: caalib's alternative -> statsmodels' spelling of the same hypothesis.
SM_ALTERNATIVE = {"greater": "larger", "less": "smaller", "two-sided": "two-sided"}
#: scipy >= 1.15 spells the generator ``rng``; older releases ``random_state``.
RNG_KW = "rng" if "rng" in inspect.signature(st.bootstrap).parameters else "random_state"


# ---------------------------------------------------------------- z-test
@pytest.mark.parametrize("alternative", ["greater", "less", "two-sided"])
@pytest.mark.parametrize("acc1, acc2, n1, n2", [
    (0.60, 0.50, 100, 100),
    (0.68, 0.65, 2878, 2878),   # the paper's first claim over all evaluate clips
    (0.68, 0.49, 360, 360),     # the second claim over the mobile-device clips
    (0.70, 0.40, 50, 150),      # unequal n: pooled estimate
    (0.312, 0.377, 180, 2518),  # p1 < p2, a macro accuracy (p n not an integer)
])
def test_ztest_matches_statsmodels(acc1, acc2, n1, n2, alternative) -> None:
    ours = ztest_proportions(acc1, acc2, n1, n2, alternative)
    z, p = proportion.proportions_ztest([acc1 * n1, acc2 * n2], [n1, n2],
                                        alternative=SM_ALTERNATIVE[alternative])
    assert ours.z == pytest.approx(z, rel=1e-9)
    assert ours.p == pytest.approx(p, rel=1e-9, abs=1e-15)
    pct = ztest_proportions(100 * acc1, 100 * acc2, n1, n2, alternative, percent=True)
    assert pct.z == pytest.approx(z, rel=1e-9)


# ---------------------------------------------------------------- McNemar
def _table(c1: np.ndarray, c2: np.ndarray) -> np.ndarray:
    """2 x 2 table: rows run 1 right/wrong, columns run 2 right/wrong."""
    return np.array([[np.sum(c1 & c2), np.sum(c1 & ~c2)],
                     [np.sum(~c1 & c2), np.sum(~c1 & ~c2)]])


@pytest.mark.parametrize("seed, n, p1, p2", [
    (0, 10, 0.5, 0.5), (1, 60, 0.8, 0.6), (2, 180, 0.6, 0.65), (3, 2878, 0.68, 0.66),
])
def test_mcnemar_matches_statsmodels(seed: int, n: int, p1: float, p2: float) -> None:
    rng = np.random.default_rng(seed)
    c1, c2 = rng.random(n) < p1, rng.random(n) < p2
    table = _table(c1, c2)
    ours = mcnemar_exact(c1, c2)
    sm = contingency.mcnemar(table, exact=True)
    assert (ours.b, ours.c, ours.n) == (table[0, 1], table[1, 0], n)
    assert min(ours.b, ours.c) == sm.statistic  # statsmodels reports the smaller count
    assert ours.p == pytest.approx(sm.pvalue, rel=1e-9)
    # One-sided (statsmodels has none): P(X >= b) for X ~ Binomial(b + c, 1/2).
    b, c = ours.b, ours.c
    assert mcnemar_exact(c1, c2, "greater").p == pytest.approx(st.binom.sf(b - 1, b + c, 0.5))
    assert mcnemar_exact(c1, c2, "less").p == pytest.approx(st.binom.cdf(b, b + c, 0.5))


def test_mcnemar_no_discordant_pairs_matches_statsmodels() -> None:
    c = np.array([True, False, True])
    assert mcnemar_exact(c, c).p == 1.0 == contingency.mcnemar(_table(c, c), exact=True).pvalue


# ---------------------------------------------------------------- bootstrap
def test_bootstrap_one_device_matches_scipy() -> None:
    """Key "a" depends on device A's clips alone, so the stratified bootstrap reduces to
    scipy's paired percentile bootstrap of device A's (true, predicted) pairs. Different
    random streams: the interval ends agree to Monte-Carlo error (here ~0.005 for an
    interval of width ~0.1), checked to 0.015."""
    rng = np.random.default_rng(0)
    n = 600
    y = rng.integers(0, 10, n)
    pred = np.where(rng.random(n) < 0.65, y, rng.integers(0, 10, n))
    dev = rng.choice(["a", "b", "c"], n, p=[0.5, 0.25, 0.25])
    ours = bootstrap_macro_accuracy(y, pred, dev, key="a", n_resamples=2000, seed=1)
    on = dev == "a"
    with warnings.catch_warnings():  # a resample may lose a class: dropped, as in ours
        warnings.simplefilter("ignore", UserWarning)
        ref = st.bootstrap((y[on], pred[on]), skm.balanced_accuracy_score, paired=True,
                           vectorized=False, method="percentile", n_resamples=2000,
                           confidence_level=0.95, **{RNG_KW: np.random.default_rng(2)})
        assert ours.estimate == pytest.approx(skm.balanced_accuracy_score(y[on], pred[on]))
    assert ours.low == pytest.approx(ref.confidence_interval.low, abs=0.015)
    assert ours.high == pytest.approx(ref.confidence_interval.high, abs=0.015)
