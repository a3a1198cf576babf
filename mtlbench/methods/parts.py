"""The four recipe axes of ../shared/DESIGN.md, each a registry of small parts.

| axis        | decides                                              | this module registers |
|-------------|------------------------------------------------------|-----------------------|
| allocation  | which (image, task) pairs supervise a step, and how  | full (paper 004 Eq. 1)|
|             | their per-image losses average into task losses      |                       |
| weighting   | how task losses combine into one scalar              | uniform               |
| gradients   | how per-task gradients on shared weights combine     | sum                   |
| regularizer | what unlabelled (image, task) pairs learn from       | none                  |

A part is a dataclass whose fields are its hyperparameters with the paper's defaults; later issues add parts
(sta, ista, amtl, pcgrad, mtpsl, jtr, ...) in modules of their own without touching the trainer.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from ..registry import Registry

ALLOCATIONS: Registry[type] = Registry("allocation")
WEIGHTINGS: Registry[type] = Registry("weighting")
GRADIENTS: Registry[type] = Registry("gradients")
REGULARIZERS: Registry[type] = Registry("regularizer")


@ALLOCATIONS.register("full")
@dataclass(frozen=True)
class FullAllocation:
    """Every labelled (image, task) pair supervises every step: paper 004 Eq. 1.

    L = (1/|B|) Σ_x Σ_{t ∈ T_x} L^t(x) / |T_x|, written as task losses L_t = (1/|B|) Σ_{x: t ∈ T_x} L^t(x)/|T_x|
    so that the weighting and gradient axes see one loss per task (their plain sum is Eq. 1). Images with
    no label contribute nothing (but still count in |B|, as in the authors' per-batch mean).
    """

    def steps(self, mask: Tensor) -> list[Tensor]:
        return [mask]

    def task_losses(self, per_image: dict[str, Tensor], rows: dict[str, Tensor], mask: Tensor) -> dict[str, Tensor]:
        labels_per_image = mask.sum(1).clamp_min(1).to(next(iter(per_image.values())).device)
        batch = mask.shape[0]
        return {t: (loss / labels_per_image[rows[t]]).sum() / batch for t, loss in per_image.items()}


@WEIGHTINGS.register("uniform")
@dataclass(frozen=True)
class UniformWeighting:
    """The plain sum of task losses (the "Uniform" row of paper 003 Tables 1 and 7)."""

    def combine(self, task_losses: dict[str, Tensor]) -> Tensor:
        return torch.stack(list(task_losses.values())).sum()


@GRADIENTS.register("sum")
@dataclass(frozen=True)
class SumGradients:
    """Back-propagate the combined loss: per-task gradients on shared weights simply add up."""

    def backward(self, loss: Tensor) -> None:
        loss.backward()


@REGULARIZERS.register("none")
@dataclass(frozen=True)
class NoRegularizer:
    """Unlabelled (image, task) pairs contribute nothing (Supervised MTL)."""

    needs_feature = False

    def loss(self, **_: object) -> Tensor | None:
        return None
