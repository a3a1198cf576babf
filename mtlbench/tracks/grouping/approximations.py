"""Cheaper candidate losses than training every network to convergence (Standley et al. 2020 Sec. 3.3).

- ESA (Sec. 3.3.1): every candidate's validation loss after a pass through a fraction of the training data (20% in
  the paper). mtlbench records it during the candidate's own training (``grouping/early.py``): with a
  learning-rate schedule that steps per epoch, the network at that point is the network an early-stopped run
  would stop at, so the ESA table costs no extra training here; its saving is reported as the fraction.
- HOA (Sec. 3.3.2): only networks of one or two tasks are trained; a network of three or more tasks is predicted,
  per task, as the mean of the losses on that task of the pair networks inside it. As in the authors' code
  (network_selection/main.cpp, ``higher_order_approximation``), pairs of the same encoder size are averaged.
"""
from __future__ import annotations

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
