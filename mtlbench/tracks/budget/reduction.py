"""TABA's reduction rate beta_i (Sun et al. 2023 Eq. 6-7, Algorithm 1 Part 2), one job per task:

1. ``ensemble`` STL networks train on the task's seed set (line 8); their mean prediction pseudo-labels the
   pool, the train images outside every seed set (line 9; ``Task.ensemble_label``).
2. For each a in ``pseudo_labels`` (multiples of the seed set size n), an STL network trains on the n seed
   images and the first a pseudo-labelled ones (lines 10-13), so the curve's points are nested sets.
3. beta_i and Delta s_i minimise the L1 error of Eq. 7 against the gains S_{i,n+a} - S_{i,n} (line 14), S_{i,n}
   being the ensemble members' mean score: the gain a pseudo-labelled image brings.

Scores are the task's primary metric on the validation split, signed so that a gain is positive. Algorithm 1
line 12 says "on test set"; mtlbench measures on the validation split, because the allocation decides what
the test split then scores. The STL networks train like the MTL ones: mini-batches drawn from the labelled
images, ``steps_per_epoch`` steps per epoch when the suite sets it. The paper names no ensemble size and no a
values; the defaults are ours.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import numpy as np
import torch

from ...data import Split
from ...data.streaming import in_memory
from ...tasks import Task
from ...jobs import KINDS, Hooks
from ...train.costs import PeakMemory, job_costs
from ...train.settings import JobSpec
from ...train.trainer import (Stage, StageResult, derive_seed, job_outcome, load_job_data,
                             resolve_device, train_stage)


@dataclass(frozen=True)
class ReductionSettings:
    ensemble: int = 3
    pseudo_labels: tuple[float, ...] = (0.5, 1.0, 2.0, 4.0)  # a as multiples of the seed set size n
    fit_steps: int = 2000

    def __post_init__(self) -> None:
        if self.ensemble < 1 or not self.pseudo_labels or min(self.pseudo_labels) <= 0 or self.fit_steps < 0:
            raise ValueError(f"reduction: ensemble >= 1, pseudo_labels > 0 (at least one), fit_steps >= 0; got {self}")


def gathered_curve(a: torch.Tensor, logit_beta: torch.Tensor, delta_s: torch.Tensor) -> torch.Tensor:
    """Eq. 7, (1 - beta^a) / (1 - beta) Delta s with beta = sigmoid(logit_beta), stable for beta near 1."""
    log_beta = torch.nn.functional.logsigmoid(logit_beta)
    one_minus_beta = torch.sigmoid(-logit_beta)
    return -torch.expm1(a * log_beta) / one_minus_beta * delta_s


def weighted_median(values: np.ndarray, weights: np.ndarray) -> float:
    order = np.argsort(values)
    cumulative = np.cumsum(weights[order])
    return float(values[order][np.searchsorted(cumulative, cumulative[-1] / 2)])


def fit_reduction(a: Sequence[float], gains: Sequence[float], steps: int = 2000) -> tuple[float, float, float]:
    """(beta, Delta s, mean L1 error) of Eq. 7 fitted to the gains measured at a pseudo-labelled images.

    Gradient descent (Adam) on the L1 error, as the paper fits it, started from the best point of a grid over
    1 - beta in [1e-6, 1] (for a fixed beta the best Delta s under L1 is a weighted median), so the result does
    not depend on an arbitrary initial beta. Returns the best point seen.
    """
    a_np, g_np = np.asarray(a, dtype=np.float64), np.asarray(gains, dtype=np.float64)
    a_t, g_t = torch.from_numpy(a_np), torch.from_numpy(g_np)
    best = (np.inf, 0.0, 0.0)
    for one_minus in np.logspace(-6, 0, 121)[:-1]:
        curve = -np.expm1(a_np * np.log1p(-one_minus)) / one_minus
        delta_s = weighted_median(g_np / curve, curve)
        error = float(np.abs(curve * delta_s - g_np).mean())
        if error < best[0]:
            best = (error, float(np.log((1 - one_minus) / one_minus)), delta_s)
    logit = torch.tensor(best[1], dtype=torch.float64, requires_grad=True)
    delta = torch.tensor(best[2], dtype=torch.float64, requires_grad=True)
    optimizer = torch.optim.Adam([logit, delta], lr=1e-2)
    for _ in range(steps):
        optimizer.zero_grad()
        error = (gathered_curve(a_t, logit, delta) - g_t).abs().mean()
        if error.item() < best[0]:
            best = (error.item(), logit.item(), delta.item())
        error.backward()
        optimizer.step()
    error, logit_beta, delta_s = best
    return float(torch.sigmoid(torch.tensor(logit_beta, dtype=torch.float64))), delta_s, error


def signed_score(metrics: dict[str, dict[str, float]], name: str, task: Task) -> float:
    value = metrics[name][task.primary]
    return value if task.higher_is_better[task.primary] else -value


@torch.inference_mode()
def pseudo_label(members: list[torch.nn.Module], split: Split, name: str, task: Task, batch_size: int) -> torch.Tensor:
    for member in members:
        member.eval()
    labels = []
    for index in torch.arange(len(split), device=split.images.device).split(batch_size):
        images = split.images[index].float().div_(255)
        labels.append(task.ensemble_label(torch.stack([member(images)[name] for member in members])))
    return torch.cat(labels)


def run_reduction(config: dict[str, Any], job_dir: Path, hooks: Hooks) -> dict[str, Any]:
    """The job of one task's beta (see the module docstring); its ``estimate`` holds beta and the curve."""
    job = JobSpec.of(config)
    settings = ReductionSettings(**{k: v for k, v in config["reduction"].items() if k != "task"})
    name = config["reduction"]["task"]
    device = resolve_device(job.train.device)
    memory = PeakMemory(device)
    memory.reset()
    data = load_job_data(job, device, test=False)
    task = data.tasks[name]
    column = job.tasks.index(name)
    mask = data.plan.mask
    seed_rows = np.flatnonzero(mask[:, column])
    n = len(seed_rows)
    a_values = sorted({max(1, int(round(m * n))) for m in settings.pseudo_labels})
    pool = np.flatnonzero(mask.sum(1) == 0)
    if a_values[-1] > len(pool):
        raise ValueError(f"reduction: {a_values[-1]} pseudo-labelled images need a pool that large, the train split "
                         f"has {len(pool)} images outside the seed sets; lower reduction.pseudo_labels")
    pool = pool[np.random.default_rng(derive_seed(job.seed, name, "pseudo-pool")).permutation(len(pool))]
    pool = pool[:a_values[-1]]
    train = data.splits["train"].select([name])
    splits = {"val": data.splits["val"].select([name])}
    seed_split = in_memory(train.subset(torch.from_numpy(seed_rows).to(device)))
    seed_split.targets[name] = task.prepare(seed_split.targets[name])

    def stage_run(stage_name: str, split: Split) -> StageResult:
        stage = Stage(stage_name, {name: task}, split, torch.ones(len(split), 1), per_task=True,
                      steps=data.plan.steps)
        return train_stage(stage, job, splits, device, job_dir / f"checkpoint-{stage_name}.pt", hooks)

    results = {f"{name}-seed{e}": stage_run(f"{name}-seed{e}", seed_split) for e in range(settings.ensemble)}
    pool_images = in_memory(train.subset(torch.from_numpy(pool).to(device))).images
    pseudo = pseudo_label([r.model for r in results.values()], Split(pool_images), name, task,
                          job.train.eval_batch_size)
    for r in results.values():
        r.model = None
    seed_score = float(np.mean([signed_score(r.history[-1]["val"], name, task) for r in results.values()]))
    points = []
    for a in a_values:
        extended = seed_split.concat(Split(pool_images[:a], {name: pseudo[:a]}))
        result = stage_run(f"{name}-pseudo{a}", extended)
        result.model = None
        results[f"{name}-pseudo{a}"] = result
        points.append(signed_score(result.history[-1]["val"], name, task))
    gains = [p - seed_score for p in points]
    beta, delta_s, error = fit_reduction(a_values, gains, settings.fit_steps)
    outcome = job_outcome({name: task}, mask[:, [column]], results, device)
    outcome["costs"] = job_costs(results.values(), memory)  # all its trainings: per epoch of each
    outcome["estimate"] = {"task": name, "beta": beta, "delta_s": delta_s, "fit_l1": error, "seed_labels": n,
                           "metric": task.primary, "seed_score": seed_score,
                           "curve": [{"pseudo_labels": a, "score": p, "gain": g}
                                     for a, p, g in zip(a_values, points, gains)]}
    return outcome


@KINDS.register("taba-reduction")
class ReductionJob:
    """The job of one task's reduction rate (``run_reduction``); it never loads the test split."""

    def run(self, config: dict[str, Any], job_dir: Path, hooks: Hooks, test: bool) -> dict[str, Any]:
        return run_reduction(config, job_dir, hooks)
