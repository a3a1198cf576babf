"""Consistency Regularization, Nishi et al. 2024 Eq. 2 (the CR baseline of MTPSL and JTR).

For every image, each *unlabelled* task t in U_x contributes L_u between the predictions of two augmented
views; per image the mean over U_x, then the mean over the batch, added to the supervised loss with weight 1
(Eq. 2 has no weight). Here view 1 is view 0 warped again by a fresh random scale-crop/flip, so the two
predictions are aligned by warping view 0's prediction with the same transform (depth divided by the zoom,
the normal's x mirrored) before comparing; L_u is the mean squared error (Eq. 2's "e.g. L2 loss") of the
predictions as maps (class probabilities for segmentation). Eq. 2 writes no stop-gradient (the paper marks
detaches with ⟨·⟩ elsewhere), so both views receive gradients (Π-model).
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..space import Float, Space
from ..tasks import Task
from .context import StepContext
from .parts import REGULARIZERS, Regularizer


@REGULARIZERS.register("consistency")
@dataclass(frozen=True)
class Consistency(Regularizer):
    single_device: ClassVar[str] = ""  # a mean of per-image terms: each device's share sums to it (batch_mean)
    space: ClassVar[dict[str, Space]] = {"weight": Float(0.1, 10.0, log=True)}
    weight: float = 1.0

    @property
    def extra_views(self) -> int:
        return 1

    def check(self, tasks: dict[str, Task]) -> None:
        unaligned = [name for name, task in tasks.items() if not task.aligned_views]
        if unaligned:
            raise ValueError(f"consistency compares two augmented views' predictions, which tasks {unaligned} cannot "
                             f"be aligned on ({', '.join(sorted({tasks[t].output for t in unaligned}))} outputs)")

    def loss(self, ctx: StepContext, net: nn.Module | None) -> Tensor | None:
        first, second = ctx.views
        if ctx.mask.all():  # CPU mask: no device sync
            return None
        unlabelled = 1 - ctx.device_mask()  # [B, T] (on several devices, this device's images)
        per_task = []
        for name, task in ctx.tasks.items():
            aligned = task.warped(task.as_map(first.preds[name]), second.warp, mode="bilinear")
            difference = (task.as_map(second.preds[name]) - aligned) ** 2
            per_task.append(difference.flatten(1).mean(1))
        per_image = (torch.stack(per_task, 1) * unlabelled).sum(1) / unlabelled.sum(1).clamp_min(1)
        return self.weight * ctx.batch_mean(per_image)
