"""The baselines of Standley et al. 2020 Table 4 and its task-affinity tables (Tables 1-2), from trained candidates.

- Random (Sec. 4.3): valid random groupings, scored on the test split and averaged. A grouping is drawn as the
  authors' code draws it (network_selection/main.cpp, ``do_one_random``): networks in random order, each kept
  if it fits the remaining budget, until no further network fits; a draw that leaves a task unsolved is
  redrawn. Vectorised over draws.
- Pessimal (Sec. 4.3): the worst such grouping, "though the solution's performance on each task is still the
  best among its networks". The authors take the worst of 10^7 random draws; mtlbench finds the exact worst
  by branch and bound over the same groupings (maximal within the budget, solving every task).
- Traditional MTL: one network of all tasks whose encoder is b SNT.
- Independent: K single-task networks of b / K SNT each.
"""
from __future__ import annotations

import math

import numpy as np

from .losses import LossTable, Network
from .selection import BUDGET_SLACK


def random_groupings(table: LossTable, budget: float, trials: int, seed: int = 0) -> float | None:
    """Mean total loss of ``trials`` random valid groupings (None if no grouping within the budget is valid)."""
    rng = np.random.default_rng(seed)
    totals: list[np.ndarray] = []
    drawn = 0
    while sum(map(len, totals)) < trials:
        batch = max(trials, 1000)
        order = np.argsort(rng.random((batch, len(table.networks))), axis=1)
        remaining = np.full(batch, float(budget))
        running = np.full((batch, len(table.tasks)), np.inf)
        for column in order.T:
            fits = table.costs[column] <= remaining + BUDGET_SLACK
            remaining = np.where(fits, remaining - table.costs[column], remaining)
            running = np.where(fits[:, None], np.minimum(running, table.losses[column]), running)
        valid = np.isfinite(running).all(1)
        totals.append(running[valid].sum(1))
        drawn += batch
        if drawn >= 100 * max(trials, 1000) and not sum(map(len, totals)):
            return None
    return float(np.concatenate(totals)[:trials].mean())


def pessimal(table: LossTable, budget: float) -> tuple[float, tuple[int, ...]] | None:
    """The worst total loss of a grouping that solves every task and that no further network fits into."""
    losses, costs = table.losses, table.costs
    n = len(table.networks)
    order = np.argsort(-np.where(np.isfinite(losses), losses, 0).sum(1) / costs)
    suffix_cost = np.concatenate([np.cumsum(costs[order][::-1])[::-1], [0.0]])
    best: dict = {"total": -math.inf, "rows": None}

    def search(i: int, chosen: tuple[int, ...], running: np.ndarray, remaining: float, left_out: float) -> None:
        # the total can only fall as networks are added; an unsolved task ends at most at its worst loss left
        worst_left = np.where(np.isfinite(losses[order[i:]]), losses[order[i:]], -np.inf).max(0, initial=-np.inf)
        ceiling = np.where(np.isfinite(running), running, worst_left)
        if not np.isfinite(ceiling).all() or ceiling.sum() <= best["total"]:
            return
        if left_out <= remaining - suffix_cost[i] + BUDGET_SLACK:
            return  # a network left out would still fit after adding every remaining one: never maximal
        if i == n:
            best["total"], best["rows"] = float(running.sum()), chosen
            return
        row = int(order[i])
        if costs[row] <= remaining + BUDGET_SLACK:
            search(i + 1, (*chosen, row), np.minimum(running, losses[row]), remaining - costs[row], left_out)
        search(i + 1, chosen, running, remaining, min(left_out, costs[row]))

    search(0, (), np.full(len(table.tasks), np.inf), float(budget), math.inf)
    return None if best["rows"] is None else (best["total"], tuple(sorted(best["rows"])))


def traditional(table: LossTable, budget: float) -> tuple[int, ...] | None:
    """The all-task network whose size is the budget, if trained."""
    return rows_if_present(table, [Network(table.tasks, budget)])


def independent(table: LossTable, budget: float) -> tuple[int, ...] | None:
    """K single-task networks of b / K SNT, if trained."""
    size = budget / len(table.tasks)
    return rows_if_present(table, [Network((t,), size) for t in table.tasks])


def rows_if_present(table: LossTable, networks: list[Network]) -> tuple[int, ...] | None:
    index = {(n.tasks, round(n.size, 6)): i for i, n in enumerate(table.networks)}
    rows = [index.get((n.tasks, round(n.size, 6))) for n in networks]
    return None if None in rows else tuple(rows)


def relative_performance(table: LossTable, alone_size: float = 0.5) -> np.ndarray:
    """Table 1: entry [with, on] is how much better (in percent) task ``on`` does in the full-size pair network
    with task ``with`` than alone in a single-task network of ``alone_size`` (the same total SNT); NaN on the
    diagonal."""
    k = len(table.tasks)
    out = np.full((k, k), np.nan)
    for i, on in enumerate(table.tasks):
        alone = table.losses[table.rows_of([Network((on,), alone_size)])[0], i]
        for j, other in enumerate(table.tasks):
            if other != on:
                pair = Network(tuple(t for t in table.tasks if t in (on, other)))
                together = table.losses[table.rows_of([pair])[0], i]
                out[j, i] = 100 * (alone - together) / alone
    return out


def affinity(relative: np.ndarray) -> np.ndarray:
    """Table 2: the mean of Table 1 and its transpose."""
    return (relative + relative.T) / 2
