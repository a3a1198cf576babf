"""Statistics a reviewer can trust, over the seeds of a table (scipy).

- Confidence intervals: scipy's ``bootstrap`` of the mean, percentile method, 95%, 10,000 resamples from a fixed
  seed (BCa needs more seeds than a benchmark usually has; with one seed there is no interval).
- Paired comparisons: seeds pair (the same seed trains with the same masks and initial streams for every
  method), so a method is compared with another through the per-seed differences, with the exact two-sided
  sign-flip permutation test (scipy's ``permutation_test``, ``permutation_type="samples"``, all 2^n flips).
  Its smallest possible p-value is 2 / 2^n: with n seeds no difference can be significant below that.
- Multiple comparisons: Holm's step-down correction over the comparisons of one table.
"""
from __future__ import annotations

import math
from typing import TYPE_CHECKING, Sequence

import numpy as np

if TYPE_CHECKING:
    import pandas as pd

CONFIDENCE = 0.95
ALPHA = 0.05
RESAMPLES = 10_000


def bootstrap_interval(values: Sequence[float], confidence: float = CONFIDENCE, seed: int = 0) -> tuple[float, float]:
    """The percentile-bootstrap interval of the mean (NaN, NaN with fewer than two values)."""
    from scipy.stats import bootstrap

    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        return math.nan, math.nan
    if np.all(data == data[0]):
        return float(data[0]), float(data[0])
    result = bootstrap((data,), np.mean, confidence_level=confidence, n_resamples=RESAMPLES, method="percentile",
                       random_state=np.random.default_rng(seed))
    return float(result.confidence_interval.low), float(result.confidence_interval.high)


def paired_p(a: Sequence[float], b: Sequence[float]) -> float:
    """Two-sided exact p-value of the mean paired difference a - b (sign flips of every pair)."""
    from scipy.stats import permutation_test

    x, y = np.asarray(a, dtype=float), np.asarray(b, dtype=float)
    if len(x) != len(y) or len(x) < 1:
        raise ValueError("paired_p: the two samples must pair, seed by seed")
    if np.all(x == y) or len(x) == 1:  # one pair: both signs are as extreme, p = 1
        return 1.0
    result = permutation_test((x, y), lambda u, v, axis=-1: np.mean(u - v, axis=axis), permutation_type="samples",
                              alternative="two-sided", n_resamples=np.inf, vectorized=True)
    return float(result.pvalue)


def holm(pvalues: dict[str, float]) -> dict[str, float]:
    """Holm-adjusted p-values: the k-th smallest times (m - k + 1), made non-decreasing, capped at 1."""
    ordered = sorted(pvalues.items(), key=lambda item: item[1])
    adjusted, running = {}, 0.0
    for k, (name, p) in enumerate(ordered):
        running = max(running, min(1.0, (len(ordered) - k) * p))
        adjusted[name] = running
    return adjusted


def seeds_needed(comparisons: int, alpha: float = ALPHA) -> int:
    """The fewest seeds with which the exact paired test can reach alpha / comparisons (Holm's first step)."""
    return max(1, math.ceil(math.log2(2 * max(comparisons, 1) / alpha)))


def smallest_p(seeds: int) -> float:
    return 2.0 / 2 ** seeds


def not_worse_than_best(samples: dict[str, "pd.Series"], higher_is_better: bool, eligible: list[str]) -> set[str]:
    """The best of the eligible methods by mean, and every eligible method not significantly worse than it
    (paired by seed, Holm-adjusted over the comparisons); empty with fewer than two methods to compare."""
    means = {m: float(s.mean()) for m, s in samples.items() if m in eligible and len(s)}
    if len(means) < 2:
        return set()
    best = (max if higher_is_better else min)(means, key=means.get)
    raw = {}
    for method in means:
        if method != best:
            common = samples[method].index.intersection(samples[best].index)
            raw[method] = paired_p(samples[method][common], samples[best][common]) if len(common) else 1.0
    return {best} | {method for method, p in holm(raw).items() if p >= ALPHA}
