"""Image-level tasks: one value per image (class presence), which a geometric augmentation leaves unchanged."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..warp import Warp
from .base import Meter, Task


class JaccardMeter(Meter):
    """Per-image Jaccard score of predicted vs true class sets, averaged over images (Sun et al. 2023, footnote 4).

    An image with no true and no predicted class scores 1 (both sets agree).
    """

    def __init__(self) -> None:
        self.score_sum: Tensor | float = 0.0
        self.n = 0

    def update(self, pred: Tensor, target: Tensor) -> None:
        predicted, truth = pred > 0, target > 0.5
        intersection = (predicted & truth).sum(1).double()
        union = (predicted | truth).sum(1).double()
        self.score_sum = self.score_sum + torch.where(union > 0, intersection / union.clamp_min(1), 1.0).sum()
        self.n += len(target)

    def merge(self, other: JaccardMeter) -> None:
        self.score_sum, self.n = self.score_sum + other.score_sum, self.n + other.n

    def compute(self) -> dict[str, float]:
        return {"jaccard": float(self.score_sum / self.n)}


@dataclass(frozen=True)
class MultiLabel(Task):
    """Multi-label class presence: binary cross-entropy on logits; Jaccard score."""

    output: ClassVar[str] = "image"
    value_kind: ClassVar[str] = "presence"
    higher_is_better: ClassVar[dict[str, bool]] = {"jaccard": True}
    primary: ClassVar[str] = "jaccard"

    def warped(self, value: Tensor, warp: Warp, mode: str | None = None) -> Tensor:
        return value

    def loss_per_image(self, pred: Tensor, target: Tensor) -> Tensor:
        return F.binary_cross_entropy_with_logits(pred.float(), target, reduction="none").mean(1)

    def ensemble_label(self, preds: Tensor) -> Tensor:
        """The classes whose mean probability exceeds 1/2."""
        return (torch.sigmoid(preds.float()).mean(0) > 0.5).float()

    def constant(self, sums: Tensor, counts: Tensor) -> Tensor:
        """Logits of each class's training frequency: the classes present in most training images."""
        return torch.logit(sums / counts.clamp_min(1), eps=1e-6).float()

    def meter(self) -> Meter:
        return JaccardMeter()
