"""TABA's allocation step, Sun et al. 2023 Eq. 2 and 4: exact dynamic programming over integer label costs.

    argmax_{N_1..N_K} sum_i g_i(I_i, N_i)  s.t.  sum_i N_i c_i <= B,   g_i(I_i, N) = I_i (1 - beta_i^N) / (1 - beta_i)

The DP runs over the budget spent: after task i, ``best[b]`` is the highest total of tasks 1..i with at most b
spent. Adding task i is a max-plus convolution of ``best`` (on each residue class of b modulo c_i) with g_i,
which is concave in N when I_i > 0 (its increments I_i beta_i^(k-1) do not grow), so the best split point
moves monotonically and divide and conquer finds it in O(B log B) instead of O(B^2 / c_i). A task with
I_i <= 0 gains nothing from a label (g_i <= 0 = g_i(0)) and gets none.
"""
from __future__ import annotations

from typing import Sequence

import numpy as np


def gathered(informativeness: float, beta: float, n: np.ndarray | int) -> np.ndarray:
    """Eq. 4: the total informativeness of n new labels, sum_{k=1..n} beta^(k-1) I (n I when beta = 1)."""
    n = np.asarray(n, dtype=np.float64)
    if beta == 1.0:
        return informativeness * n
    return informativeness * (1.0 - beta ** n) / (1.0 - beta)


def concave_max_plus(values: np.ndarray, gain: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """out[j] = max_{m <= j} values[m] + gain[j - m] for a concave ``gain``, and the best j - m."""
    n = len(values)
    out, taken = np.empty(n), np.zeros(n, dtype=np.int64)

    def solve(lo: int, hi: int, first: int, last: int) -> None:
        if lo > hi:
            return
        j = (lo + hi) // 2
        m = np.arange(first, min(j, last) + 1)
        scores = values[m] + gain[j - m]
        best = int(np.argmax(scores))
        out[j], taken[j] = scores[best], j - m[best]
        solve(lo, j - 1, first, m[best])
        solve(j + 1, hi, m[best], last)

    solve(0, n - 1, 0, n - 1)
    return out, taken


def allocate(informativeness: Sequence[float], beta: Sequence[float], costs: Sequence[int],
             budget: int) -> tuple[int, ...]:
    """The N_i maximising Eq. 2 with integer costs c_i >= 1 and an integer budget B >= 0."""
    if not len(informativeness) == len(beta) == len(costs):
        raise ValueError("informativeness, beta and costs need one value per task")
    if any(not float(c).is_integer() or c < 1 for c in costs) or budget < 0 or not float(budget).is_integer():
        raise ValueError(f"costs must be integers >= 1 and the budget an integer >= 0, got {list(costs)}, {budget}")
    if any(not 0.0 <= b <= 1.0 for b in beta):
        raise ValueError(f"each beta must lie in [0, 1] (Eq. 4), got {list(beta)}")
    budget = int(budget)
    best = np.zeros(budget + 1)
    choices = []
    for value, b, cost in zip(informativeness, beta, map(int, costs)):
        taken = np.zeros(budget + 1, dtype=np.int64)
        if value > 0:
            gain = gathered(value, b, np.arange(budget // cost + 1))
            for residue in range(min(cost, budget + 1)):
                best[residue::cost], taken[residue::cost] = concave_max_plus(best[residue::cost], gain)
        choices.append(taken)
    counts, left = [], budget
    for taken, cost in zip(reversed(choices), reversed([int(c) for c in costs])):
        counts.append(int(taken[left]))
        left -= counts[-1] * cost
    return tuple(reversed(counts))
