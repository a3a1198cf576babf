"""TABA's allocation (Sun et al. 2023 Eq. 2 and 4): the exact DP against brute force, and its limiting cases."""
import itertools
import json

import numpy as np
import pytest

from mtlbench.tracks.budget import allocate, gathered
from mtlbench.cli import main


def total(informativeness, beta, counts):
    return sum(float(gathered(i, b, n)) for i, b, n in zip(informativeness, beta, counts))


def brute_force(informativeness, beta, costs, budget):
    ranges = [range(budget // c + 1) for c in costs]
    feasible = (n for n in itertools.product(*ranges) if sum(c * k for c, k in zip(costs, n)) <= budget)
    return max(total(informativeness, beta, n) for n in feasible)


def test_gathering_function_is_eq_4():
    for i, b in [(1.13, 0.999), (2.0, 0.5), (0.7, 0.0)]:
        assert np.isclose(gathered(i, b, 7), sum(b ** (k - 1) * i for k in range(1, 8)))
    assert gathered(1.5, 1.0, 4) == 6.0 and gathered(1.5, 0.9, 0) == 0.0


@pytest.mark.parametrize("seed", range(40))
def test_dp_equals_brute_force_and_respects_the_budget(seed):
    rng = np.random.default_rng(seed)
    k = int(rng.integers(2, 4))
    informativeness = rng.uniform(-0.5, 3.0, k).round(3).tolist()
    beta = rng.choice([0.0, 0.5, 0.8, 0.95, 1.0], k).tolist()
    costs = rng.integers(1, 6, k).tolist()
    budget = int(rng.integers(0, 25))
    counts = allocate(informativeness, beta, costs, budget)
    assert sum(c * n for c, n in zip(costs, counts)) <= budget
    assert np.isclose(total(informativeness, beta, counts), brute_force(informativeness, beta, costs, budget))


def test_with_beta_one_the_whole_budget_goes_to_the_best_informativeness_per_cost():
    """Paper 000 Sec. 5.3: without a reduction of information, one task takes everything."""
    assert allocate([1.0, 2.0, 1.2], [1.0, 1.0, 1.0], [1, 3, 1], 600) == (0, 0, 600)
    assert allocate([1.0, 30.0], [1.0, 1.0], [1, 20], 6300) == (0, 315)


def test_a_task_whose_labels_carry_no_information_gets_none():
    assert allocate([-0.3, 1.0], [0.9, 0.9], [1, 1], 50)[0] == 0


def test_paper_000_taskonomy_scale_instance_stays_within_budget():
    counts = allocate([0.73, 0.23, 2.24, 2.74, 2.17], [0.9964, 0.9997, 0.9998, 0.9999, 0.9998], [10, 3, 3, 2, 3],
                      210_000)
    assert sum(c * n for c, n in zip([10, 3, 3, 2, 3], counts)) <= 210_000
    assert counts[3] > 0


def test_invalid_inputs_are_refused():
    with pytest.raises(ValueError, match="beta must lie in"):
        allocate([1.0], [1.5], [1], 10)
    with pytest.raises(ValueError, match="costs must be integers"):
        allocate([1.0], [0.5], [0], 10)


def test_allocate_command_prints_the_allocation(capsys):
    args = ["allocate", "--costs", "1,20", "--budget", "6300", "--informativeness", "1.13,2.03",
            "--beta", "0.999,0.997"]
    assert main(args) == 0
    text = capsys.readouterr().out
    assert main(args + ["--json"]) == 0
    result = json.loads(capsys.readouterr().out)
    assert result["counts"] == list(allocate([1.13, 2.03], [0.999, 0.997], [1, 20], 6300))
    assert result["spent"] <= 6300 and str(result["counts"][0]) in text
