"""Leaderboard statistics against independent computations: scipy references, exact enumerations and Holm by hand."""
import itertools
import math

import numpy as np
import pandas as pd
import pytest

from mtlbench.leaderboard.stats import (holm, iman_davenport_p, improvement_interval, improvement_probability, iqm,
                                        iqm_interval, nemenyi_critical_difference, paired_p, seeds_needed,
                                        significantly_best, smallest_p, stratified_resamples, t_interval)


def test_the_t_interval_is_scipys_and_degenerate_cases_are_exact():
    from scipy import stats

    values = [1.0, 4.0, 2.5, 3.0, 0.5]
    reference = stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))
    assert t_interval(values) == pytest.approx(reference)
    # two seeds: mean ± 12.706 |a - b| / 2, wider than their range (where the percentile bootstrap stops)
    assert t_interval([1.0, 3.0]) == pytest.approx((2.0 - 12.7062, 2.0 + 12.7062), abs=1e-3)
    assert t_interval([2.0, 2.0, 2.0]) == (2.0, 2.0)
    assert all(math.isnan(v) for v in t_interval([1.0]))


@pytest.mark.parametrize("seeds", [2, 3, 5, 10])
def test_the_t_interval_covers_the_true_mean_95_percent_of_the_time_at_every_seed_count(seeds):
    """Simulated seeds from a normal distribution: the interval must hold its level where benchmarks live (the
    percentile bootstrap covers 49% at 2 seeds, 75% at 3 and 89% at 8; the t interval 95% at every n)."""
    from scipy.stats import bootstrap

    rng = np.random.default_rng(seeds)
    draws = rng.normal(3.0, 2.0, size=(4000, seeds))
    covered = np.mean([low <= 3.0 <= high for low, high in map(t_interval, draws)])
    assert abs(covered - 0.95) < 0.015  # 4000 draws: the binomial standard error is 0.0034
    percentile = [bootstrap((d,), np.mean, n_resamples=999, method="percentile", random_state=rng).confidence_interval
                  for d in draws[:300]]
    assert np.mean([i.low <= 3.0 <= i.high for i in percentile]) < 0.93  # what the t interval replaced


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


def test_bold_is_only_a_best_mean_the_paired_test_finds_better_than_every_other():
    seeds = range(8)
    clear = pd.Series([10.0 + 0.1 * s for s in seeds], index=seeds)
    worse = pd.Series([5.0 + 0.2 * s for s in seeds], index=seeds)  # worse on every seed: p = 2/256
    tied = pd.Series([10.0 + 0.1 * s + (0.3 if s % 2 else -0.3) for s in seeds], index=seeds)
    assert significantly_best({"clear": clear, "worse": worse}, True, ["clear", "worse"]) == {"clear"}
    assert significantly_best({"clear": clear, "worse": worse}, False, ["clear", "worse"]) == {"worse"}
    samples = {"clear": clear, "worse": worse, "tied": tied}
    assert significantly_best(samples, True, list(samples)) == set()  # the best ties with "tied": no bold
    assert significantly_best(samples, True, ["worse", "tied"]) == {"tied"}  # ineligible rows never bold
    two_seeds = {k: v.iloc[:2] for k, v in samples.items()}
    assert significantly_best(two_seeds, True, ["clear", "worse"]) == set()  # 2 seeds can show nothing


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


def test_iman_davenport_is_demsars_worked_example():
    # Demšar 2006 Sec. 3.2.2: k = 4 classifiers on N = 14 data sets with average ranks 3.143, 2.000, 2.893, 1.964
    # give chi2_F = 9.28 and F_F = 3.69 (F(3, 39)); blocks built to have exactly those ranks reproduce both.
    from scipy.stats import f

    ranks = np.array([3.143, 2.000, 2.893, 1.964]) * 14
    chi2 = 12 * 14 / (4 * 5) * (np.sum((ranks / 14) ** 2) - 4 * 25 / 4)
    assert chi2 == pytest.approx(9.28, abs=0.01)
    statistic = 13 * chi2 / (14 * 3 - chi2)
    assert statistic == pytest.approx(3.69, abs=0.01)
    rng = np.random.default_rng(0)
    blocks = rng.normal(size=(14, 4)) + np.array([0.0, 1.0, 0.3, 1.2])
    from scipy.stats import friedmanchisquare

    chi2 = friedmanchisquare(*blocks.T).statistic
    expected = f.sf(13 * chi2 / (14 * 3 - chi2), 3, 39)
    assert iman_davenport_p(blocks) == pytest.approx(expected)
    assert iman_davenport_p(np.tile([1.0, 2.0, 3.0], (5, 1))) == 0.0  # every block ranks alike: F is infinite


def test_the_nemenyi_critical_difference_uses_demsars_published_critical_values():
    # Demšar 2006, Table 5(a): q_0.05 for k = 2..6 classifiers
    for k, q in zip(range(2, 7), (1.960, 2.343, 2.569, 2.728, 2.850)):
        assert nemenyi_critical_difference(k, 10) == pytest.approx(q * math.sqrt(k * (k + 1) / 60), abs=2e-3)
