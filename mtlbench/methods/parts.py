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
from typing import Literal

import torch
from torch import Tensor, nn

from ..registry import Registry
from ..tasks import Task
from .context import StepContext

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
    ``per_image: sum`` drops the 1/|T_x|, as the released MTPSL and JTR training scripts do (identical for
    ``onelabel``; JTR's own pseudo-code, Alg. 1, has the 1/|T_x|).
    """

    per_image: Literal["mean", "sum"] = "mean"

    def steps(self, mask: Tensor) -> list[Tensor]:
        return [mask]

    def task_losses(self, per_image: dict[str, Tensor], rows: dict[str, Tensor], mask: Tensor) -> dict[str, Tensor]:
        divisor = mask.sum(1).clamp_min(1) if self.per_image == "mean" else torch.ones(mask.shape[0])
        divisor = divisor.to(next(iter(per_image.values())).device)
        batch = mask.shape[0]
        return {t: (loss / divisor[rows[t]]).sum() / batch for t, loss in per_image.items()}


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


class Regularizer:
    """Base of the regularizer axis. A regularizer may own networks (``build``), train some of their
    parameters with optimisers of its own (``own_optimizers``) and ask for ``extra_views`` further augmented
    views of the batch; the recipe forwards all views through the model in one batch, as the authors do."""

    @property
    def extra_views(self) -> int:
        return 0

    def check(self, tasks: dict[str, Task]) -> None:
        """Raise ValueError if this regularizer cannot train these tasks (called before any training)."""

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module | None:
        return None

    def main_parameters(self, net: nn.Module) -> list[nn.Parameter]:
        """The regularizer's parameters trained by the main optimiser (all of them unless overridden)."""
        return list(net.parameters())

    def own_optimizers(self, net: nn.Module) -> list[tuple[torch.optim.Optimizer, object]]:
        return []

    def loss(self, ctx: StepContext, net: nn.Module | None) -> Tensor | None:
        raise NotImplementedError


@REGULARIZERS.register("none")
@dataclass(frozen=True)
class NoRegularizer(Regularizer):
    """Unlabelled (image, task) pairs contribute nothing (Supervised MTL)."""

    def loss(self, ctx: StepContext, net: nn.Module | None) -> Tensor | None:
        return None
