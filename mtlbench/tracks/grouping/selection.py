"""Network selection: Standley et al. 2020 Algorithm 1 (GetBestNetworks), exact branch and bound.

S_b = argmin over S ⊆ C_0 with cost(S) <= b of L(S), L(S) = Σ_t min_{n ∈ S} L(n, t) (Sec. 3, 3.2). Algorithm 1
explores solutions recursively: FILTER drops the networks over the remaining budget and those that cannot
improve the running solution on any task; SORT puts the most promising network first (the authors' code ranks
by the largest improvement on a single task); each network is tried, and the networks tried before it at that
level are left out of its branch, so every solution is visited once. BETTER compares two solutions and is
pluggable (``OBJECTIVES``). On top of the paper's pruning, a branch is cut when even the best loss any of its
remaining networks has on each task could not beat the best solution found: a lower bound valid for every
objective whose key can only fall when a task's loss falls, so the result stays exact. And a branch is cut
when its newest network leaves an earlier one the best on no task: every solution below it does as well
without that network, at a lower cost, and that smaller solution is explored elsewhere. So a solution holds at
most K networks, and K = 5 with 36 networks takes milliseconds per budget.
"""
from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from ...registry import Registry
from .losses import LossTable

OBJECTIVES: Registry[type] = Registry("objective")
BUDGET_SLACK = 1e-9  # costs are sums of measured fractions: 0.1 + 0.2 must fit a budget of 0.3


class Objective:
    """BETTER of Algorithm 1 as a key: S_1 is better than S_2 when key(L(S_1, .)) < key(L(S_2, .)). A key
    must not increase when any task's loss decreases (the bound of ``best_networks`` relies on it)."""

    def key(self, task_losses: np.ndarray, tasks: tuple[str, ...]) -> tuple[float, ...]:
        raise NotImplementedError

    def bound(self, running: np.ndarray, losses: np.ndarray, costs: np.ndarray, remaining: float,
              tasks: tuple[str, ...]) -> tuple[float, ...]:
        """A key no solution of the branch can beat: S_r plus some of ``losses`` (costs ``costs``) within
        ``remaining``. By default each task's best loss anywhere in the branch."""
        return self.key(np.minimum(running, losses.min(0)), tasks)


@OBJECTIVES.register("lowest_total")
@dataclass(frozen=True)
class LowestTotal(Objective):
    """The paper's BETTER (Sec. 3.2): the lowest total loss over all tasks."""

    def key(self, task_losses: np.ndarray, tasks: tuple[str, ...]) -> tuple[float, ...]:
        return (float(task_losses.sum()),)

    def bound(self, running: np.ndarray, losses: np.ndarray, costs: np.ndarray, remaining: float,
              tasks: tuple[str, ...]) -> tuple[float, ...]:
        """Adding networks gains at most the sum of what each gains alone (a task's loss is a minimum), and
        the budget caps that sum at a fractional knapsack of the single gains. A task no network of S_r solves
        starts from its worst loss in the branch: any solution ends at or below it."""
        start = np.minimum(running, np.where(np.isfinite(losses), losses, -np.inf).max(0))
        gains = np.clip(start - losses, 0.0, None).sum(1)
        order = np.argsort(-gains / costs)
        spent = np.cumsum(costs[order])
        full = spent <= remaining + BUDGET_SLACK
        gain = gains[order][full].sum()
        if not full.all():
            cut = int(np.argmin(full))
            gain += gains[order][cut] * (remaining - (spent[cut - 1] if cut else 0.0)) / costs[order][cut]
        return (max(float(start.sum() - gain), super().bound(running, losses, costs, remaining, tasks)[0]),)


@OBJECTIVES.register("task_limits")
@dataclass(frozen=True)
class TaskLimits(Objective):
    """A hard requirement per task (Sec. 3.2, "other applications may have hard performance requirements"):
    a solution whose loss on a task exceeds its limit loses to every solution that meets all limits; among
    those, the lowest total wins (among violators, the smallest total excess)."""

    limits: dict[str, float] = field(default_factory=dict)

    def key(self, task_losses: np.ndarray, tasks: tuple[str, ...]) -> tuple[float, ...]:
        unknown = sorted(set(self.limits) - set(tasks))
        if unknown:
            raise ValueError(f"task_limits: no task {', '.join(unknown)} (tasks: {', '.join(tasks)})")
        excess = sum(max(0.0, float(task_losses[tasks.index(t)]) - limit) for t, limit in self.limits.items())
        return (excess, float(task_losses.sum()))


@dataclass(frozen=True)
class Selection:
    rows: tuple[int, ...]  # rows of the table the selection ran on
    key: tuple[float, ...]
    visited: int  # solutions explored (search effort)


def improvement(running: np.ndarray, losses: np.ndarray) -> np.ndarray:
    """SORT's score per candidate: its largest improvement on one task (inf where it adds an unsolved task)."""
    gain = np.where(np.isfinite(losses), np.where(np.isfinite(running), running, np.finfo(float).max) - losses,
                    -np.inf)
    return gain.max(1)


def keep_every_network_useful(chosen: np.ndarray, running: np.ndarray, candidates: np.ndarray) -> np.ndarray:
    """Which candidates leave each chosen network the only one with the solution's loss on some task."""
    at_best = chosen == running
    owned = at_best & (at_best.sum(0) == 1)  # [chosen, K]: the tasks each chosen network alone is best on
    still_owns = ((candidates[:, None, :] > running) & owned).any(2)  # [candidates, chosen]
    return still_owns.all(1)


def best_networks(table: LossTable, budget: float, objective: Objective = LowestTotal(),
                  incumbent: tuple[int, ...] | None = None) -> Selection | None:
    """Algorithm 1 from C_r = C_0, S_r = ∅, b_r = b; None when no set within the budget solves every task.

    ``incumbent``: a solution known to fit the budget (the optimum of a smaller budget), which the search starts
    from as its best so far, so the bound cuts from the first branch on."""
    losses, costs, tasks = table.losses, table.costs, table.tasks
    best: dict[str, Any] = {"rows": None, "key": (math.inf,), "visited": 0}
    if incumbent is not None and costs[list(incumbent)].sum() <= budget + BUDGET_SLACK:
        best["rows"], best["key"] = tuple(incumbent), objective.key(table.task_losses(list(incumbent)), tasks)

    def search(candidates: np.ndarray, chosen: tuple[int, ...], running: np.ndarray, remaining: float) -> None:
        best["visited"] += 1
        if np.isfinite(running).all():
            key = objective.key(running, tasks)
            if key < best["key"]:
                best["rows"], best["key"] = chosen, key
        affordable = candidates[costs[candidates] <= remaining + BUDGET_SLACK]  # FILTER, line 13
        candidates = affordable[(losses[affordable] < running).any(1)]  # FILTER, line 14
        if chosen:
            candidates = candidates[keep_every_network_useful(losses[list(chosen)], running, losses[candidates])]
        if not len(candidates):
            return
        if objective.bound(running, losses[candidates], costs[candidates], remaining, tasks) >= best["key"]:
            return
        candidates = candidates[np.argsort(-improvement(running, losses[candidates]), kind="stable")]  # SORT
        for i, n in enumerate(candidates):
            search(candidates[i + 1:], (*chosen, int(n)), np.minimum(running, losses[n]), remaining - costs[n])

    search(np.arange(len(table.networks)), (), np.full(len(tasks), np.inf), budget)
    if best["rows"] is None:
        return None
    return Selection(tuple(sorted(best["rows"])), best["key"], best["visited"])


def exhaustive(table: LossTable, budget: float, objective: Objective = LowestTotal()) -> tuple[float, ...] | None:
    """The best key over every subset within the budget (for tests: exponential in the number of networks)."""
    best = None
    for r in range(1, len(table.networks) + 1):
        for rows in itertools.combinations(range(len(table.networks)), r):
            if table.costs[list(rows)].sum() <= budget + BUDGET_SLACK:
                task_losses = table.task_losses(list(rows))
                if np.isfinite(task_losses).all():
                    key = objective.key(task_losses, table.tasks)
                    best = key if best is None or key < best else best
    return best
