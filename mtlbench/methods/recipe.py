"""A training method is a recipe: one part per axis (methods/parts.py) plus how many networks it trains.

``METHODS`` holds the named presets a suite refers to; a suite may also spell out a recipe explicitly
(``{name: my_method, allocation: full, weighting: uniform, ...}``). Presets are plain data, so the resolved
job config (and its hash) records every part and hyperparameter that the method ran with.
"""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable
from dataclasses import dataclass
from typing import Any

import torch
from torch import Tensor, nn

from ..registry import Registry, build
from ..tasks import Task
from .parts import ALLOCATIONS, GRADIENTS, REGULARIZERS, WEIGHTINGS

AXES = {"allocation": ALLOCATIONS, "weighting": WEIGHTINGS, "gradients": GRADIENTS, "regularizer": REGULARIZERS}
NETWORKS = ("shared", "per_task")

METHODS: Registry[dict[str, Any]] = Registry("method")


def preset(name: str, networks: str = "shared", **parts: str) -> None:
    recipe = {"allocation": "full", "weighting": "uniform", "gradients": "sum", "regularizer": "none", **parts}
    METHODS.register(name)({"name": name, "networks": networks, **{k: {"name": v} for k, v in recipe.items()}})


preset("supervised")  # paper 004 Eq. 1: one shared network, each image's labelled tasks averaged
preset("stl", networks="per_task")  # one network per task, trained on that task's labelled images only


@dataclass
class Recipe:
    allocation: Any
    weighting: Any
    gradients: Any
    regularizer: Any

    @classmethod
    def from_config(cls, method: dict[str, Any]) -> "Recipe":
        return cls(**{axis: build(registry, method[axis]) for axis, registry in AXES.items()})

    def train_step(self, model: nn.Module, optimizer: torch.optim.Optimizer, images: Tensor,
                   targets: dict[str, Tensor], mask: Tensor, tasks: dict[str, Task],
                   autocast: Callable[[], AbstractContextManager]) -> dict[str, Tensor]:
        """One batch: every sub-step the allocation asks for is a forward, a backward and an update.

        ``mask`` [B, T] lives on the CPU, so selecting the labelled rows of each task costs no device sync.
        A task with no supervised image in a sub-step gets no loss term at all, so its head receives no
        gradient (not even a zero one that Adam's momentum would turn into an update).
        """
        names = list(tasks)
        logs: dict[str, Tensor] = {}
        for supervise in self.allocation.steps(mask):
            rows = {t: supervise[:, j].nonzero().squeeze(1) for j, t in enumerate(names)}
            active = [t for t in names if len(rows[t])]
            device_rows = {t: rows[t].to(images.device, non_blocking=True) for t in active}
            optimizer.zero_grad(set_to_none=True)
            with autocast():
                preds, feature = model(images, return_feature=True)
            per_image = {t: tasks[t].loss_per_image(preds[t][device_rows[t]], targets[t][device_rows[t]])
                         for t in active}
            task_losses = self.allocation.task_losses(per_image, {t: rows[t] for t in active}, supervise) \
                if active else {}
            terms = [self.weighting.combine(task_losses)] if task_losses else []
            regularization = self.regularizer.loss(model=model, images=images, preds=preds, feature=feature,
                                                   targets=targets, mask=supervise, tasks=tasks)
            if regularization is not None:
                terms.append(regularization)
                logs["regularizer"] = logs.get("regularizer", 0) + regularization.detach()
            if not terms:
                continue
            self.gradients.backward(torch.stack(terms).sum())
            optimizer.step()
            for t, loss in task_losses.items():
                logs[f"loss/{t}"] = logs.get(f"loss/{t}", 0) + loss.detach()
        return logs
