"""Multi-task scores: ΔMTL (Yun and Cho 2023 Eq. 7), Acc_MTL (Yun and Cho 2023 Eq. 8) and Δ_T (Sun et al. 2023 Eq. 9).

Convention (stated because repositories differ, docs/papers.md): ΔMTL is in percent, signed so
that positive is better, averaged first over a task's chosen metrics and then over tasks, against a baseline
the caller chooses (mtlbench's leaderboards use Supervised MTL by default, STL on request). With one metric
per task it is exactly the Δ% of Nishi et al. 2024 and the Δ_T of Sun et al. 2023.

Metrics are passed as ``{task: {metric: value}}``; directions as ``{task: {metric: higher_is_better}}``.
"""
from __future__ import annotations

import math
from typing import Mapping, Sequence

from .errors import UserError

Metrics = Mapping[str, Mapping[str, float]]
Directions = Mapping[str, Mapping[str, bool]]


def _sign(higher_is_better: bool) -> int:
    return 1 if higher_is_better else -1


class UndefinedDelta(UserError, ValueError):
    """ΔMTL divides by the baseline's metric: a baseline value of 0 (δ1 of a network that predicts nothing
    right) or one that is not finite makes it undefined; ``task`` and ``metric`` name it."""

    def __init__(self, task: str, metric: str, value: float) -> None:
        super().__init__(f"ΔMTL is undefined: the baseline's {task} {metric} is {value}, and ΔMTL divides by it")
        self.task, self.metric, self.value = task, metric, value


def delta_mtl(method: Metrics, baseline: Metrics, directions: Directions,
              chosen: Mapping[str, list[str]]) -> float:
    """Paper 003 Eq. 7: (1/N_T) Σ_t (1/N_t) Σ_i S_{t,i} (M_{m,t,i} - M_{b,t,i}) / M_{b,t,i}, in percent.

    ``chosen`` maps each task to the metrics that enter the score (every task in it must be in both runs).
    UndefinedDelta if a baseline metric that enters is 0 or not finite.
    """
    for task, names in chosen.items():
        for m in names:
            if baseline[task][m] == 0 or not math.isfinite(baseline[task][m]):
                raise UndefinedDelta(task, m, float(baseline[task][m]))
    per_task = []
    for task, names in chosen.items():
        changes = [_sign(directions[task][m]) * (method[task][m] - baseline[task][m]) / baseline[task][m]
                   for m in names]
        per_task.append(sum(changes) / len(changes))
    return 100.0 * sum(per_task) / len(per_task)


def seed_mean(runs: Sequence[Metrics], chosen: Mapping[str, list[str]]) -> Metrics:
    """What ΔMTL is measured against: each chosen metric's mean over the baseline's seeds (docs/leaderboards.md).
    The leaderboard's per-seed ΔMTL and the one each W&B run's summary shows both take it from here."""
    return {task: {m: math.fsum(run[task][m] for run in runs) / len(runs) for m in names}
            for task, names in chosen.items()}


def acc_mtl(method: Metrics, directions: Directions, chosen: Mapping[str, list[str]]) -> float:
    """Paper 003 Eq. 8: Π_t Π_i M_{t,i}^(S_{t,i} / (N_T N_t)), the geometric multi-task accuracy.

    Eq. 8 prints M_{m,t} without the metric index; Eq. 9 shows the intended per-metric product. A geometric mean
    is defined for positive metrics only: NaN when a metric that enters is 0, negative or not finite (a table
    flags the cell; it never averages it away).
    """
    values = [(method[task][m], directions[task][m], len(names)) for task, names in chosen.items() for m in names]
    if any(not (math.isfinite(v) and v > 0) for v, _, _ in values):
        return math.nan
    n_tasks = len(chosen)
    return math.exp(math.fsum(_sign(higher) * math.log(v) / (n_tasks * n) for v, higher, n in values))


def delta_t(after: Metrics, seed_only: Metrics, directions: Directions, chosen: Mapping[str, str]) -> float:
    """Paper 000 Eq. 9: Δ_i = (-1)^{l_i} (S_i - S'_i) / S'_i × 100%, Δ_T = mean_i Δ_i (S' = seed-set model)."""
    return delta_mtl(after, seed_only, directions, {task: [m] for task, m in chosen.items()})
