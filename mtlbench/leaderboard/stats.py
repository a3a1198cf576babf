"""Statistics a reviewer can trust, over the seeds of a table (scipy).

- Confidence intervals: Student's t interval of the mean over seeds, 95% (mean ± t_{0.975, n-1} s / √n; one
  seed gives none). A benchmark has 2 to 10 seeds, where the percentile bootstrap is far too narrow: with n ≤ 3
  its interval is the range of the seeds, and its coverage on normal data is 49% at n = 2, 75% at n = 3 and 89%
  at n = 8 (tests/test_stats.py simulates it), while the t interval holds 95% at every n.
- Paired comparisons: seeds pair (the same seed trains with the same masks and initial streams for every
  method), so a method is compared with another through the per-seed differences, with the exact two-sided
  sign-flip permutation test (scipy's ``permutation_test``, ``permutation_type="samples"``, all 2^n flips).
  Its smallest possible p-value is 2 / 2^n: with n seeds no difference can be significant below that. The
  interval shown beside a p-value is the t interval of the same paired differences, so the two never disagree
  about what they describe.
- Multiple comparisons: Holm's step-down correction over the comparisons of one table.
- Bold: the best mean of a column only when the paired test finds it better than every other eligible method
  (Holm over those comparisons); with too few seeds for that, nothing is bold.
- Across tables (Agarwal et al. 2021 Sec. 4): the interquartile mean and the probability of improvement, with
  stratified bootstrap intervals (each table's runs resampled among themselves); over independent datasets, the
  Iman-Davenport form of the Friedman test and the Nemenyi critical difference (Demšar 2006, Sec. 3.2.2).
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


def t_interval(values: Sequence[float], confidence: float = CONFIDENCE) -> tuple[float, float]:
    """Student's t interval of the mean: mean ± t_{(1+confidence)/2, n-1} s / √n (NaN, NaN below two values)."""
    from scipy.stats import t

    data = np.asarray(values, dtype=float)
    if len(data) < 2:
        return math.nan, math.nan
    mean, half = float(data.mean()), float(t.ppf((1 + confidence) / 2, len(data) - 1) * data.std(ddof=1)
                                           / math.sqrt(len(data)))
    return mean - half, mean + half


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


def power_note(seeds: int, comparisons: int, unit: str = "seed") -> list[str]:
    """What the seeds (or repeats) of a table can show: with too few, no paired test can reach significance
    after Holm, and a line under the table says so and how many it would take (none when enough)."""
    comparisons = max(comparisons, 1)
    needed = seeds_needed(comparisons)
    if seeds >= needed:
        return []
    return ["", f"A smoke run, not a finding: with {counted(seeds, unit)} no paired comparison here can be "
                f"significant (the exact test's smallest p-value is 2/2^{seeds} = {smallest_p(seeds):.3g}, above "
                f"{ALPHA} / {comparisons}, Holm's first step over {comparisons} comparisons), so nothing is bold. "
                f"{counted(needed, unit)} would be needed."]


def column_power_note(seeds: int, comparisons: dict[str, int], column: str = "budget",
                      unit: str = "seed") -> list[str]:
    """``power_note`` for a table whose columns compare different numbers of rows (a grouping budget some
    selectors cannot reach): the columns where no paired test can decide are named, since the others may bold."""
    undecidable = {name: n for name, n in comparisons.items() if seeds < seeds_needed(n)}
    if not undecidable or len(undecidable) == len(comparisons):
        return power_note(seeds, max(comparisons.values(), default=1), unit)
    most = max(undecidable.values())
    return ["", f"Too few {unit}s at {column}s {', '.join(undecidable)}: with {counted(seeds, unit)} no paired "
                f"comparison there can be significant (the exact test's smallest p-value is 2/2^{seeds} = "
                f"{smallest_p(seeds):.3g}, above {ALPHA} / {most}, Holm's first step over the {most} comparisons "
                f"of the {column}'s rows), so nothing there is bold; {counted(seeds_needed(most), unit)} would be "
                f"needed. The other {column}s can decide."]


def counted(n: int, unit: str) -> str:
    return f"{n} {unit}{'s' if n != 1 else ''}"


def significantly_best(samples: dict[str, "pd.Series"], higher_is_better: bool, eligible: list[str]) -> set[str]:
    """The eligible method with the best mean, if the paired test (by seed, Holm-adjusted over its comparisons)
    finds it better than every other eligible method; else nothing. Empty with fewer than two to compare."""
    means = {m: float(s.mean()) for m, s in samples.items() if m in eligible and len(s)}
    if len(means) < 2:
        return set()
    best = (max if higher_is_better else min)(means, key=means.get)
    raw = {}
    for method in means:
        if method != best:
            common = samples[method].index.intersection(samples[best].index)
            raw[method] = paired_p(samples[method][common], samples[best][common]) if len(common) else 1.0
    return {best} if all(p < ALPHA for p in holm(raw).values()) else set()


# ------------------------------------------------------------------ across tables (Agarwal et al. 2021)
def iqm(values: np.ndarray, axis: int | None = None) -> np.ndarray | float:
    """The interquartile mean: the mean of the middle 50% of the values (scipy's ``trim_mean``, 25% cut per
    side), Agarwal et al. 2021 Sec. 4.3."""
    from scipy.stats import trim_mean

    return trim_mean(values, 0.25, axis=axis)


def stratified_resamples(runs: Sequence[np.ndarray], reps: int, rng: np.random.Generator) -> np.ndarray:
    """``reps`` stratified bootstrap samples of the pooled runs: each table's runs are resampled with replacement
    among that table's own runs (Agarwal et al. 2021 Sec. 4.2); shape [reps, total runs]."""
    return np.concatenate([table[rng.integers(0, len(table), size=(reps, len(table)))] for table in runs], axis=1)


def percentile_interval(samples: np.ndarray, confidence: float) -> tuple[float, float]:
    """The central ``confidence`` interval of bootstrap samples (the percentile method)."""
    low, high = np.quantile(samples, [(1 - confidence) / 2, (1 + confidence) / 2])
    return float(low), float(high)


def iqm_interval(runs: Sequence[Sequence[float]], confidence: float = CONFIDENCE, seed: int = 0,
                 reps: int = RESAMPLES) -> tuple[float, float, float]:
    """IQM of every run of every table pooled, with its percentile interval under the stratified bootstrap."""
    tables = [np.asarray(table, dtype=float) for table in runs if len(table)]
    point = float(iqm(np.concatenate(tables)))
    samples = iqm(stratified_resamples(tables, reps, np.random.default_rng(seed)), axis=1)
    return (point, *percentile_interval(samples, confidence))


def improvement_probability(x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """P(X > Y) of one table from runs x [..., n] and y [..., k]: the Mann-Whitney U statistic over n * k,
    ties counting one half (Agarwal et al. 2021 Sec. 4.3, "Probability of improvement")."""
    diff = x[..., :, None] - y[..., None, :]
    return ((diff > 0) + 0.5 * (diff == 0)).mean(axis=(-2, -1))


def improvement_interval(pairs: Sequence[tuple[Sequence[float], Sequence[float]]], confidence: float = CONFIDENCE,
                         seed: int = 0, reps: int = RESAMPLES) -> tuple[float, float, float]:
    """The average over tables of P(X > Y), with its percentile interval under the stratified bootstrap (each
    table's X runs and Y runs resampled independently, among their own)."""
    rng = np.random.default_rng(seed)
    points, samples = [], []
    for x, y in pairs:
        x, y = np.asarray(x, dtype=float), np.asarray(y, dtype=float)
        points.append(improvement_probability(x, y))
        samples.append(improvement_probability(x[rng.integers(0, len(x), size=(reps, len(x)))],
                                               y[rng.integers(0, len(y), size=(reps, len(y)))]))
    return (float(np.mean(points)), *percentile_interval(np.mean(samples, axis=0), confidence))


def iman_davenport_p(blocks: np.ndarray) -> float:
    """The Iman-Davenport test of Demšar 2006 Sec. 3.2.2 (the Friedman statistic χ²_F made F-distributed,
    F_F = (N - 1) χ²_F / (N (k - 1) - χ²_F) with k - 1 and (k - 1)(N - 1) degrees of freedom), which Demšar
    recommends over χ²_F, whose approximation is undesirably conservative; ``blocks`` [N, k], higher is better."""
    from scipy.stats import f, friedmanchisquare

    n, k = blocks.shape
    chi2 = float(friedmanchisquare(*blocks.T).statistic)
    if chi2 >= n * (k - 1):  # every block ranks the methods alike: F_F is infinite
        return 0.0
    statistic = (n - 1) * chi2 / (n * (k - 1) - chi2)
    return float(f.sf(statistic, k - 1, (k - 1) * (n - 1)))


def nemenyi_critical_difference(methods: int, blocks: int, alpha: float = ALPHA) -> float:
    """Demšar 2006 Eq. for the Nemenyi test: q_alpha * sqrt(k (k + 1) / (6 N)), q_alpha the studentized range
    quantile over sqrt(2)."""
    from scipy.stats import studentized_range

    q = studentized_range.ppf(1 - alpha, methods, np.inf) / math.sqrt(2)
    return float(q * math.sqrt(methods * (methods + 1) / (6 * blocks)))
