"""Cheaper candidate losses than training every network to convergence (Standley et al. 2020 Sec. 3.3).

- ESA (Sec. 3.3.1): every candidate's validation loss after a pass through a fraction of the training data (20% in
  the paper). mtlbench records it during the candidate's own training (``grouping/early.py``): with a
  learning-rate schedule that steps per epoch, the network at that point is the network an early-stopped run
  would stop at, so the ESA table costs no extra training here; its saving is reported as the fraction.
- HOA (Sec. 3.3.2): only networks of one or two tasks are trained; a network of three or more tasks is predicted,
  per task, as the mean of the losses on that task of the pair networks inside it. As in the authors' code
  (network_selection/main.cpp, ``higher_order_approximation``), pairs of the same encoder size are averaged.

How well each predicts, as Sec. 3.3 and 5 measure it (``esa_agreement``, ``hoa_agreement``): ESA's Pearson r between
every (network, task) validation loss after the early pass and the fully trained network's test loss (the paper:
r = 0.49; on the authors' released losses this gives 0.33, and no other pairing of their files we tried gives 0.49);
HOA's Pearson r between predicted and trained losses of the networks of three or more tasks, its average max ratio
error, mean over (network, task) of max(predicted / true, true / predicted) - 1 (the paper: 5.2%), and how much it
overestimates performance, mean of true / predicted - 1 (the paper: "about 1.4%"). On the release's validation
losses (results.txt) these are 5.23% and 1.41%: tests/test_grouping.py checks both.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from .losses import LossFileError, LossTable, Network


def pair(a: str, b: str, size: float, tasks: tuple[str, ...]) -> Network:
    return Network(tuple(t for t in tasks if t in (a, b)), size)


def higher_order(table: LossTable) -> LossTable:
    """The table with every network of three or more tasks replaced by the HOA prediction (Sec. 3.3.2)."""
    index = table.index()
    losses = table.losses.copy()
    for row, network in enumerate(table.networks):
        if len(network.tasks) < 3:
            continue
        for task in network.tasks:
            pairs = [pair(task, other, network.size, table.tasks) for other in network.tasks if other != task]
            missing = [p.name for p in pairs if p not in index]
            if missing:
                raise LossFileError(f"HOA predicts {network.name} from its pair networks, but "
                                    f"{', '.join(missing)} has no loss: train every network of two tasks")
            losses[row, table.tasks.index(task)] = np.mean([table.losses[index[p], table.tasks.index(task)]
                                                            for p in pairs])
    return LossTable(table.tasks, table.networks, table.costs, losses)


@dataclass(frozen=True)
class Agreement:
    """How well an approximation's losses predict the trained networks' (module docstring)."""

    pearson_r: float
    pairs: int  # (network, task) pairs compared
    max_ratio_error: float = math.nan  # HOA only
    overestimate: float = math.nan  # HOA only

    def as_dict(self) -> dict[str, float]:
        return {"pearson_r": self.pearson_r, "pairs": self.pairs, "max_ratio_error": self.max_ratio_error,
                "overestimate": self.overestimate}


def pearson(x: np.ndarray, y: np.ndarray) -> float:
    """Pearson's r (scipy's), NaN below three pairs or for a constant side."""
    from scipy.stats import pearsonr

    if len(x) < 3 or np.ptp(x) == 0 or np.ptp(y) == 0:
        return math.nan
    return float(pearsonr(x, y).statistic)


def matched(predicted: LossTable, true: LossTable, networks: list[Network]) -> tuple[np.ndarray, np.ndarray]:
    """The finite (network, task) losses of ``networks`` in both tables, as two aligned vectors."""
    mine, theirs = predicted.index(), true.index()
    pairs = [(predicted.losses[mine[n], j], true.losses[theirs[n], j]) for n in networks
             for j, task in enumerate(predicted.tasks) if task in n.tasks]
    values = np.array(pairs, dtype=float).reshape(-1, 2)
    return values[:, 0], values[:, 1]


def esa_agreement(early: LossTable, final_test: LossTable) -> Agreement:
    """ESA (Sec. 3.3.1): early validation losses against the fully trained networks' test losses."""
    common = [n for n in early.networks if n in final_test.index()]
    x, y = matched(early, final_test, common)
    return Agreement(pearson(x, y), len(x))


def hoa_agreement(table: LossTable) -> Agreement:
    """HOA (Sec. 3.3.2, 5): its predictions of the networks of three or more tasks against their trained losses,
    both from ``table``."""
    higher = [n for n in table.networks if len(n.tasks) >= 3]
    if not higher:
        raise LossFileError("HOA's agreement needs trained networks of three or more tasks to compare with")
    predicted, true = matched(higher_order(table), table, higher)
    ratio = np.maximum(predicted / true, true / predicted) - 1
    return Agreement(pearson(predicted, true), len(true), float(ratio.mean()), float((true / predicted).mean() - 1))
