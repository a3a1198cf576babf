"""The grouping track's benchmark, ``mtlbench bench --selection K``: Standley et al. 2020's Algorithm 1 (network
selection for budgets 1 to K SNT) timed on synthetic losses of K tasks: 2^K - 1 full-size networks and K
half-size ones."""
from __future__ import annotations

import argparse
import time
from itertools import combinations

import numpy as np

from ...arguments import positive_int
from .losses import LossTable, Network
from .selection import best_networks


def add_bench_options(group: argparse._MutuallyExclusiveGroup) -> None:
    group.add_argument("--selection", type=positive_int, metavar="K",
                       help="time Standley et al. 2020's network selection (Algorithm 1) for K synthetic tasks, "
                            "budgets 1 to K")


def synthetic_losses(k: int, seed: int = 0):
    """A loss table shaped like Standley et al. 2020's: each task has a base loss; in a network, a task's loss moves by
    the mean affinity to its companions (pairwise, plus noise, so higher-order effects exist); half-size networks
    are 5% worse."""
    rng = np.random.default_rng(seed)
    tasks = tuple(f"t{i}" for i in range(k))
    base = rng.uniform(0.05, 0.2, k)
    affinity = rng.normal(0.0, 0.05, (k, k))
    rows = [(Network((t,), 0.5), 0.5, {t: base[i] * rng.normal(1.05, 0.01)}) for i, t in enumerate(tasks)]
    for r in range(1, k + 1):
        for members in combinations(range(k), r):
            values = {tasks[i]: base[i] * (1 - (np.mean([affinity[i, j] for j in members if j != i]) if r > 1 else 0)
                                           + rng.normal(0, 0.01)) for i in members}
            rows.append((Network(tuple(tasks[i] for i in members)), 1.0, values))
    return LossTable.from_rows(tasks, rows)


def selection_timing(k: int, seed: int = 0) -> str:
    """Seconds of Algorithm 1 per budget (1 to K SNT in steps of 0.5) for K synthetic tasks."""
    table = synthetic_losses(k, seed)
    rows = [f"K = {k}: {len(table.networks)} candidate networks; Algorithm 1 per budget, each search started "
            f"from the previous budget's optimum", "", "| budget (SNT) | seconds | solutions explored | networks |",
            "|---|---|---|---|"]
    previous, total = None, 0.0
    for budget in [1 + 0.5 * i for i in range(2 * k - 1)]:
        start = time.perf_counter()
        found = best_networks(table, budget, incumbent=previous.rows if previous else None)
        seconds = time.perf_counter() - start
        total += seconds
        previous = found or previous
        rows.append(f"| {budget:g} | {seconds:.3f} | {found.visited} | {len(found.rows)} |")
    rows.append(f"\nall {2 * k - 1} budgets: {total:.2f} s")
    return "\n".join(rows)
