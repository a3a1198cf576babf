"""Leaderboard statistics against independent computations: scipy references, exact enumerations and Holm by hand."""
import itertools
import math

import numpy as np
import pandas as pd
import pytest

from mtlbench.leaderboard.stats import (bootstrap_interval, holm, improvement_interval, improvement_probability,
                                        iqm, iqm_interval, nemenyi_critical_difference, not_worse_than_best,
                                        paired_p, seeds_needed, smallest_p, stratified_resamples)


def test_the_bootstrap_interval_is_scipys_percentile_interval_and_degenerate_cases_are_exact():
    from scipy.stats import bootstrap

    values = [1.0, 4.0, 2.5, 3.0, 0.5]
    reference = bootstrap((np.array(values),), np.mean, confidence_level=0.95, n_resamples=10_000,
                          method="percentile", random_state=np.random.default_rng(0)).confidence_interval
    assert bootstrap_interval(values) == pytest.approx((reference.low, reference.high))
    low, high = bootstrap_interval(values)
    assert min(values) <= low < np.mean(values) < high <= max(values)
    assert bootstrap_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)
    assert all(math.isnan(v) for v in bootstrap_interval([1.0]))


def test_the_paired_test_is_the_exact_sign_flip_enumeration():
    a = np.array([3.1, 2.0, 4.2, 1.5, 2.8])
    b = np.array([2.0, 2.5, 3.0, 0.5, 2.0])
    d = a - b
    flips = [np.mean(d * signs) for signs in itertools.product([-1, 1], repeat=len(d))]
    expected = np.mean(np.abs(flips) >= abs(np.mean(d)) - 1e-12)
    assert paired_p(a, b) == pytest.approx(expected)
    assert paired_p(np.arange(6) + 1.0, np.zeros(6)) == pytest.approx(2 / 64)  # all six differences positive
    assert paired_p([1.0, 2.0], [1.0, 2.0]) == 1.0 and paired_p([3.0], [1.0]) == 1.0


def test_holm_by_hand():
    adjusted = holm({"a": 0.01, "b": 0.04, "c": 0.03})
    # sorted 0.01, 0.03, 0.04 -> 3 x 0.01 = 0.03, 2 x 0.03 = 0.06, 1 x 0.04 = 0.04 -> made monotone: 0.06
    assert adjusted == pytest.approx({"a": 0.03, "c": 0.06, "b": 0.06})
    assert holm({"a": 0.6, "b": 0.9}) == {"a": 1.0, "b": 1.0}


def test_holm_equals_statsmodels_where_installed():
    multitest = pytest.importorskip("statsmodels.stats.multitest")
    p = {"m1": 0.002, "m2": 0.03, "m3": 0.04, "m4": 0.2}
    _, reference, _, _ = multitest.multipletests(list(p.values()), method="holm")
    assert list(holm(p).values()) == pytest.approx(sorted(reference))


def test_seeds_needed_follow_the_smallest_exact_p_value():
    assert smallest_p(6) == pytest.approx(2 / 64)
    assert seeds_needed(1) == 6  # 2/2^6 = 0.031 <= 0.05, 2/2^5 = 0.0625 is not
    assert seeds_needed(7) == 9  # Holm's first step needs p <= 0.05 / 7 = 0.0071: 2/2^9 = 0.0039
    for comparisons in (1, 3, 7, 20):
        n = seeds_needed(comparisons)
        assert smallest_p(n) <= 0.05 / comparisons < smallest_p(n - 1)


def test_bold_is_the_best_and_what_is_not_significantly_worse():
    seeds = range(8)
    clear = pd.Series([10.0 + 0.1 * s for s in seeds], index=seeds)
    worse = pd.Series([5.0 + 0.2 * s for s in seeds], index=seeds)  # worse on every seed: p = 2/256
    tied = pd.Series([10.0 + 0.1 * s + (0.3 if s % 2 else -0.3) for s in seeds], index=seeds)
    samples = {"clear": clear, "worse": worse, "tied": tied}
    assert not_worse_than_best(samples, True, list(samples)) == {"clear", "tied"}
    assert not_worse_than_best(samples, True, ["worse", "tied"]) == {"tied"}  # ineligible rows never bold
    two_seeds = {k: v.iloc[:2] for k, v in samples.items()}
    assert not_worse_than_best(two_seeds, True, list(samples)) == set(samples)  # nothing can be told apart


# ------------------------------------------------------------------ across tables (Agarwal et al. 2021, Demšar 2006)
def test_iqm_is_the_mean_of_the_middle_half_by_hand():
    assert iqm(np.array([1.0, 2.0, 3.0, 4.0, 100.0, -50.0, 5.0, 6.0])) == pytest.approx(np.mean([2, 3, 4, 5]))
    assert iqm(np.array([7.0, 9.0])) == 8.0  # too few values to trim


def test_the_stratified_bootstrap_resamples_each_table_among_its_own_runs():
    tables = [np.array([0.0, 1.0, 2.0]), np.array([100.0, 101.0])]
    samples = stratified_resamples(tables, 500, np.random.default_rng(0))
    assert samples.shape == (500, 5)
    assert np.isin(samples[:, :3], tables[0]).all() and np.isin(samples[:, 3:], tables[1]).all()
    point, low, high = iqm_interval([[1.0, 2.0, 3.0], [2.0, 4.0]])
    assert point == pytest.approx(iqm(np.array([1.0, 2.0, 3.0, 2.0, 4.0])))
    assert 1.0 <= low <= point <= high <= 4.0
    assert iqm_interval([[5.0, 5.0], [5.0]]) == (5.0, 5.0, 5.0)


def test_the_probability_of_improvement_is_the_mann_whitney_statistic_by_hand():
    # x = [1, 2, 3] against y = [2, 2]: pairs (1,2) (1,2) lose, (2,2) (2,2) tie, (3,2) (3,2) win -> (0+0+.5+.5+1+1)/6
    assert improvement_probability(np.array([1.0, 2.0, 3.0]), np.array([2.0, 2.0])) == pytest.approx(0.5)
    assert improvement_probability(np.array([3.0, 4.0]), np.array([1.0])) == 1.0
    from scipy.stats import mannwhitneyu

    x, y = np.array([0.3, 1.2, 2.2, 0.9]), np.array([0.5, 0.1, 1.9])
    assert improvement_probability(x, y) == pytest.approx(mannwhitneyu(x, y).statistic / (len(x) * len(y)))
    point, low, high = improvement_interval([(x, y), (np.array([5.0]), np.array([1.0, 2.0]))])
    assert point == pytest.approx((improvement_probability(x, y) + 1.0) / 2)
    assert 0.0 <= low <= point <= high <= 1.0


def test_the_nemenyi_critical_difference_uses_demsars_published_critical_values():
    # Demšar 2006, Table 5(a): q_0.05 for k = 2..6 classifiers
    for k, q in zip(range(2, 7), (1.960, 2.343, 2.569, 2.728, 2.850)):
        assert nemenyi_critical_difference(k, 10) == pytest.approx(q * math.sqrt(k * (k + 1) / 60), abs=2e-3)
