"""What a regularizer sees of one training step: every view of the batch, its predictions and label mask."""
from __future__ import annotations

from dataclasses import dataclass

from torch import Tensor

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
    mask: Tensor  # [B, T] on the CPU, 1 where (image, task) is labelled in this step
    views: list[View]  # views[0] carries the supervised loss; the others are views[0] warped again

    @property
    def batch_size(self) -> int:
        return self.mask.shape[0]

    def device_mask(self) -> Tensor:
        return self.mask.to(self.views[0].images.device, non_blocking=True)

