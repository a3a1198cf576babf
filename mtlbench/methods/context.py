"""What a regularizer sees of one training step (every view of the batch, its predictions and label mask), and
what a weighting's meta step sees (the batch as the model saw it, another batch, the model and its optimiser)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
from torch import Tensor, nn

from ..functional import gumbel_sample, hard_gumbel_softmax, standard_gumbel
from ..warp import Warp
from ..tasks import Task


@dataclass
class View:
    """One augmented view of the batch. ``warp`` maps view 0 onto this view (None for view 0 itself)."""

    images: Tensor
    targets: dict[str, Tensor]
    preds: dict[str, Tensor]
    feature: Tensor
    warp: Warp | None = None


@dataclass
class StepContext:
    tasks: dict[str, Task]
    mask: Tensor  # [B, T] on the CPU, 1 where (image, task) is labelled in this step (the global batch's)
    views: list[View]  # views[0] carries the supervised loss; the others are views[0] warped again
    rows: Tensor | None = None  # the rows of ``mask`` this device's views hold (mtlbench/distributed.py); None: all

    @property
    def batch_size(self) -> int:
        """The global batch's size."""
        return self.mask.shape[0]

    def device_mask(self) -> Tensor:
        """The mask of the images this device holds, on its device."""
        mask = self.mask if self.rows is None else self.mask[self.rows]
        return mask.to(self.views[0].images.device, non_blocking=True)

    def batch_mean(self, values: Tensor) -> Tensor:
        """The mean of ``values`` (one row per image of this device, any further axes) over the global batch; on
        several devices this device's share of it (the shares' gradients, summed over the devices, are the mean's)."""
        if self.rows is None:
            return values.mean()
        return values.sum() / (self.batch_size * values.shape[1:].numel())

    def own_rows(self, positions: Tensor) -> Tensor:
        """Of the global batch's ``positions`` (ascending, CPU), the rows of this device's views that hold them."""
        return positions if self.rows is None else torch.isin(self.rows, positions).nonzero().squeeze(1)

    def gumbel_sample(self, logits: Tensor, positions: Tensor | None = None) -> Tensor:
        """Hard Gumbel-softmax samples over dim 1 of ``logits``, this device's rows of the global batch's ``positions``
        (ascending, CPU; None: every image). The noise is drawn for all of ``positions`` and each device keeps its
        rows, so every device samples what one process samples for its images and the generator advances alike."""
        if self.rows is None:
            return gumbel_sample(logits)
        positions = torch.arange(self.batch_size) if positions is None else positions
        drawn = standard_gumbel((len(positions), *logits.shape[1:]), logits)
        return hard_gumbel_softmax(logits, drawn[torch.isin(positions, self.rows).to(drawn.device)])



@dataclass
class SeenBatch:
    """A training batch as the model saw it: the augmented images, the targets, each present task's supervised rows
    (on the device and on the CPU) and the step's mask [B, T]."""

    images: Tensor
    targets: dict[str, Tensor]
    device_rows: dict[str, Tensor]
    rows: dict[str, Tensor]
    mask: Tensor


@dataclass
class MetaStep:
    """What a weighting's ``meta_step`` may use before an update: the model, its optimiser, this step's batch, another
    training batch (``meta``), and the task losses of any model with the recipe's parameters on a batch."""

    model: nn.Module
    optimizer: torch.optim.Optimizer
    batch: SeenBatch
    meta: SeenBatch
    task_losses: Callable[[nn.Module, SeenBatch], dict[str, Tensor]]
