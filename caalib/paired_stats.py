"""Paired comparisons of two configurations scored on the same clips, with their power.

The claims ledger asks of every comparison three things a single p-value does not say:
how large the difference is and how sure we are of it (:func:`paired_bootstrap`, a
confidence interval from resampling clips *and* training seeds), whether the per-clip
outcomes differ beyond chance (:func:`mcnemar_midp`), and what the comparison could have
seen at all (:func:`paired_mde`, the minimum detectable effect). A comparison whose MDE
is larger than the effect the paper claims cannot support the claim, whatever its
estimate (docs/claims.md, "The simulation column").

Inputs are 0/1 correctness arrays, not run directories: the ledger
(:mod:`caalib.ledger`) gathers them from predictions.csv through :mod:`caalib.rundir`.
Accuracies here are plain proportions of clips correct per device (on balanced devices
within a rounding of the macro accuracy the tables print), averaged over devices.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
from scipy import optimize
from scipy import stats as _st

from .stats import McNemarResult, discordant_counts

#: The ledger's test level and power (docs/claims.md).
ALPHA = 0.05
POWER = 0.8


@dataclass(frozen=True)
class PairedEffect:
    """Better minus worse accuracy (fractions), its percentile CI and bootstrap SE."""

    estimate: float
    low: float
    high: float
    se: float
    confidence_level: float
    n_resamples: int
    n_clips: int
    n_seeds: int


def mcnemar_midp(correct1: Sequence[bool], correct2: Sequence[bool]) -> McNemarResult:
    """Two-sided McNemar mid-p test on paired per-clip correctness.

    With b clips only system 1 got right and c only system 2, k = min(b, c) and
    X ~ Binomial(b + c, 1/2): the exact two-sided p is 2 P(X <= k) (capped at 1), the
    mid-p 2 [P(X <= k) - P(X = k) / 2] -- the exact test's half-weight on the observed
    count, which keeps its size close to alpha instead of far below it. No discordant
    clip gives p = 1.
    """
    b, c, n_clips = discordant_counts(correct1, correct2)
    n = b + c
    if n == 0:
        p = 1.0
    else:
        k = min(b, c)
        below = float(_st.binom.cdf(k, n, 0.5)) - 0.5 * float(_st.binom.pmf(k, n, 0.5))
        p = min(1.0, 2.0 * below)
    return McNemarResult(b=b, c=c, statistic=float(b), p=p, n=n_clips)


def paired_mde(n_clips: int, discordance: float, alpha: float = ALPHA,
               power: float = POWER) -> float:
    """Minimum detectable difference in accuracy (a fraction) of a paired comparison.

    Connor's (1987) sample size for McNemar's test, solved for the difference: with n
    clips, a share psi of them discordant (one system right, the other wrong) and
    delta = p10 - p01 the accuracy difference,

        delta sqrt(n) = z(1 - alpha/2) sqrt(psi) + z(power) sqrt(psi - delta^2),

    the smallest |delta| a two-sided test at ``alpha`` detects with probability
    ``power``. ``inf`` when no delta <= psi satisfies it (too few clips); with psi = 0
    (the two systems agree on every clip) there is no discordance to estimate it from,
    and the bound psi >= delta is used with psi = 1/n (one discordant clip).
    """
    if not (isinstance(n_clips, int | np.integer) and n_clips > 0):
        raise ValueError(f"n_clips must be a positive integer, got {n_clips!r}")
    if not 0 <= discordance <= 1:
        raise ValueError(f"discordance must be a fraction in [0, 1], got {discordance!r}")
    if not 0 < alpha < 1 or not 0 < power < 1:
        raise ValueError(f"alpha and power must lie in (0, 1), got {alpha}, {power}")
    psi = max(float(discordance), 1.0 / n_clips)
    za, zb = _st.norm.ppf(1 - alpha / 2), _st.norm.ppf(power)
    root_n = math.sqrt(n_clips)

    def gap(delta: float) -> float:
        return delta * root_n - za * math.sqrt(psi) - zb * math.sqrt(max(psi - delta * delta, 0.0))

    hi = psi  # |p10 - p01| <= p10 + p01 = psi, and psi <= sqrt(psi)
    if gap(hi) < 0:
        return math.inf
    return float(optimize.brentq(gap, 0.0, hi, xtol=1e-12))


def paired_bootstrap(better: Sequence[np.ndarray], worse: Sequence[np.ndarray],
                     strata: Sequence[str], *, n_resamples: int = 2000,
                     confidence_level: float = 0.95, seed: int = 0) -> PairedEffect:
    """Percentile bootstrap of the accuracy difference between two groups of systems.

    ``better`` and ``worse`` are lists of *arms* (one configuration each); an arm is an
    array ``[seeds, clips]`` of 0/1 correctness, every arm over the same clips in the
    same order, labelled by ``strata`` (the recording device of each clip). The
    statistic is the mean over strata of [mean over ``better`` arms of the seed-mean
    accuracy - the same for ``worse``]. Each resample draws clips with replacement within
    each stratum, the *same* clips for every arm (the pairing), and independently for
    each arm its seeds with replacement (training variation). ``seed`` fixes the draw.
    """
    arms = [np.atleast_2d(np.asarray(a, dtype=float)) for a in (*better, *worse)]
    if not better or not worse:
        raise ValueError("paired_bootstrap needs at least one arm on each side")
    strata = np.asarray(strata).astype(str)
    n_clips = strata.size
    if n_clips == 0:
        raise ValueError("no clips to compare")
    for i, a in enumerate(arms):
        if a.ndim != 2 or a.shape[1] != n_clips or a.shape[0] < 1:
            raise ValueError(f"arm {i}: expected [seeds, {n_clips}] correctness, got {a.shape}")
        if not np.isin(a, (0.0, 1.0)).all():
            raise ValueError(f"arm {i}: correctness must be 0/1")
    if n_resamples < 1:
        raise ValueError(f"n_resamples must be positive, got {n_resamples}")
    if not 0 < confidence_level < 1:
        raise ValueError(f"confidence_level must be in (0, 1), got {confidence_level}")
    groups = [np.flatnonzero(strata == s) for s in dict.fromkeys(strata)]
    signs = np.array([1.0 / len(better)] * len(better) + [-1.0 / len(worse)] * len(worse))

    def statistic(weights: np.ndarray, seed_picks: list[np.ndarray]) -> float:
        total = 0.0
        for g in groups:
            w = weights[g]
            per_arm = [(a[pick][:, g] @ w).mean() / w.sum() for a, pick in zip(arms, seed_picks,
                                                                              strict=True)]
            total += float(np.dot(signs, per_arm))
        return total / len(groups)

    all_seeds = [np.arange(a.shape[0]) for a in arms]
    point = statistic(np.ones(n_clips), all_seeds)
    rng = np.random.default_rng(seed)
    values = np.empty(n_resamples)
    for r in range(n_resamples):
        weights = np.zeros(n_clips)
        for g in groups:
            np.add.at(weights, g[rng.integers(0, g.size, g.size)], 1.0)
        picks = [rng.integers(0, a.shape[0], a.shape[0]) for a in arms]
        values[r] = statistic(weights, picks)
    tail = (1 - confidence_level) / 2
    low, high = np.quantile(values, [tail, 1 - tail])
    return PairedEffect(estimate=point, low=float(low), high=float(high),
                        se=float(values.std(ddof=1)) if n_resamples > 1 else 0.0,
                        confidence_level=confidence_level, n_resamples=n_resamples,
                        n_clips=n_clips, n_seeds=min(a.shape[0] for a in arms))


def discordance(better: Sequence[np.ndarray], worse: Sequence[np.ndarray]) -> float:
    """Mean share of clips on which a better arm's seed and a worse arm's seed disagree.

    Every better arm is set against every worse arm, seed i against seed i (the seeds
    both have); the mean over those pairs is the psi of :func:`paired_mde`.
    """
    shares = []
    for a in better:
        for b in worse:
            a2, b2 = np.atleast_2d(a).astype(bool), np.atleast_2d(b).astype(bool)
            k = min(a2.shape[0], b2.shape[0])
            shares += [float(np.mean(a2[i] != b2[i])) for i in range(k)]
    if not shares:
        raise ValueError("discordance needs at least one arm on each side")
    return float(np.mean(shares))


def majority(arm: np.ndarray) -> np.ndarray:
    """Per clip, whether more than half of an arm's seeds got it right."""
    a = np.atleast_2d(np.asarray(arm, dtype=float))
    return a.mean(axis=0) > 0.5


def effective_clips(strata: Sequence[str]) -> int:
    """Clips of a device-averaged difference, D^2 / sum_d 1/n_d for D devices of n_d
    clips (the n of :func:`paired_mde`; equal devices give the plain total), rounded to
    the nearest clip (truncating would turn 3 devices of 20 clips into 59)."""
    counts = np.unique(np.asarray(strata).astype(str), return_counts=True)[1]
    if counts.size == 0:
        raise ValueError("no clips to compare")
    return max(round(counts.size ** 2 / float((1.0 / counts).sum())), 1)


@dataclass(frozen=True)
class PairedComparison:
    """What the ledger reports of one paired comparison: the bootstrap effect, the
    McNemar mid-p test on the per-clip majorities, and the MDE (fractions)."""

    effect: PairedEffect
    test: McNemarResult
    mde: float


def paired_comparison(better: Sequence[np.ndarray], worse: Sequence[np.ndarray],
                      strata: Sequence[str], *, n_resamples: int = 2000,
                      seed: int = 0) -> PairedComparison:
    """The three numbers the claims ledger puts on a comparison (docs/claims.md, S2-S4):
    :func:`paired_bootstrap`; :func:`mcnemar_midp` of the majority over each side's seeds
    and arms; :func:`paired_mde` at :data:`ALPHA` and :data:`POWER` with psi the mean
    :func:`discordance` and n the :func:`effective_clips`."""
    effect = paired_bootstrap(better, worse, strata, n_resamples=n_resamples, seed=seed)
    test = mcnemar_midp(majority(np.vstack(better)), majority(np.vstack(worse)))
    mde = paired_mde(effective_clips(strata), discordance(better, worse), ALPHA, POWER)
    return PairedComparison(effect=effect, test=test, mde=mde)
