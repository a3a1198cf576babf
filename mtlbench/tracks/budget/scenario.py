"""The label-budget track's scenario: seed sets per task, then the labels an allocator bought (Sun et al. 2023)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar

import numpy as np

from ...data.scenarios import BASE_STREAM, PURCHASE_STREAM, SCENARIOS, LabelPlan, Scenario, ScenarioError, rng


@SCENARIOS.register("budget")
@dataclass(frozen=True)
class Budget(Scenario):
    """The label-budget track (Sun et al. 2023 Sec. 3.1, 5.2): ``seed_labels`` images labelled per task, then
    ``new_labels[t]`` labels bought for task t from the pool (the train images outside every seed set).

    Seed sets are different images for different tasks and depend on the mask seed only, so every allocator
    and repeat starts from the same seed data. Purchases are a random order of the pool drawn from (mask seed,
    ``draw``): task t takes the next ``new_labels[t]`` images of it (different images per task, the paper's
    default), or with ``same_images`` the first ones (the labels of several tasks bought for the same images,
    the * rows of Tables 1-2). Every allocator of one draw reads the same order (common random numbers).
    ``new_labels: null`` means the allocation is decided when the job runs (TABA, from its estimates).
    Training steps take one mini-batch of each task's labelled images (Sec. 4, "Optimization of MTL Network").
    An epoch draws as many labels as there are, or, with ``steps_per_epoch``, that many steps whatever the
    allocation: every model of a comparison then trains equally long, which keeps a small seed-set model from
    being compared under-trained (the paper's 100 epochs make that moot; a CPU-sized run is not there).
    """

    made_by: ClassVar[str] = "budget"
    extendable: ClassVar[bool] = False

    seed_labels: int = 0
    new_labels: dict[str, int] | None = None

    @classmethod
    def label_of(cls, spec: dict[str, Any]) -> str:
        return "budget"
    same_images: bool = False
    draw: int = 0
    steps_per_epoch: int = 0

    def plan(self, n: int, tasks: list[str], mask_seed: int, n_pool: int = 0) -> LabelPlan:
        return LabelPlan(self.mask(n, tasks, mask_seed), per_task=True, steps=self.steps_per_epoch)

    def mask(self, n: int, tasks: list[str], mask_seed: int) -> np.ndarray:
        if self.unlabeled or self.unlabeled_per_batch:
            raise ScenarioError("budget: unlabeled and unlabeled_per_batch do not apply (unbought images are "
                                "never drawn)")
        if self.new_labels is None:
            raise ScenarioError("budget: new_labels is not resolved (an allocator decides it before training)")
        unknown = sorted(set(self.new_labels) - set(tasks))
        if unknown:
            raise ScenarioError(f"budget: new_labels names tasks {unknown} that are not among {tasks}")
        seeds, pool = self.seed_sets(n, len(tasks), mask_seed)
        new = np.array([self.new_labels.get(t, 0) for t in tasks])
        needed = int(new.max(initial=0) if self.same_images else new.sum())
        if needed > len(pool):
            raise ScenarioError(f"budget: buying {needed} labels needs {needed} pool images, but the train split "
                                f"has {len(pool)} beyond the seed sets ({n} images); enlarge the dataset's train "
                                f"split or lower the budget")
        mask = np.zeros((n, len(tasks)), np.float32)
        mask[seeds, np.arange(len(tasks))[:, None]] = 1
        order = pool[np.random.default_rng([mask_seed, PURCHASE_STREAM, self.draw]).permutation(len(pool))]
        starts = np.zeros_like(new) if self.same_images else np.concatenate([[0], np.cumsum(new)[:-1]])
        for j, (start, count) in enumerate(zip(starts, new)):
            mask[order[start:start + count], j] = 1
        return mask

    def seed_sets(self, n: int, n_tasks: int, mask_seed: int) -> tuple[np.ndarray, np.ndarray]:
        """Rows [T, seed_labels] of each task's seed images, and the pool (the rest, in index order)."""
        if n_tasks * self.seed_labels > n:
            raise ScenarioError(f"budget: {n_tasks} seed sets of {self.seed_labels} images need "
                                f"{n_tasks * self.seed_labels} train images, the train split has {n}")
        order = rng(mask_seed, BASE_STREAM).permutation(n)
        used = n_tasks * self.seed_labels
        return order[:used].reshape(n_tasks, self.seed_labels), np.sort(order[used:])
