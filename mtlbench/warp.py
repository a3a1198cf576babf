"""A random geometric transform of a batch, one per image (``data.augment`` draws it): the primitives every task type
resamples its targets and predictions with (``Task.warped``), so that the augmentation asks no task what it is."""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor


@dataclass(frozen=True)
class Warp:
    """One random geometric transform per image: a sampling grid, the zoom factor and the mirror flag."""

    grid: Tensor  # [B, H, W, 2] for nearest maps (align_corners=False convention)
    scale: Tensor  # [B]
    mirror: Tensor  # [B] bool
    smooth: Tensor | None = None  # [B, H, W, 2] for bilinear maps with align_corners=True (None: use ``grid``)

    def bilinear(self, value: Tensor) -> Tensor:
        if self.smooth is None:
            return F.grid_sample(value, self.grid, mode="bilinear", align_corners=False)
        return F.grid_sample(value, self.smooth, mode="bilinear", align_corners=True)

    def nearest(self, value: Tensor) -> Tensor:
        return F.grid_sample(value, self.grid, mode="nearest", align_corners=False)

    def resample(self, value: Tensor, mode: str) -> Tensor:
        """A [B, C, H, W] map resampled bilinearly (as the images) or with grid_sample's ``mode`` on the grid."""
        return self.bilinear(value) if mode == "bilinear" else F.grid_sample(value, self.grid, mode=mode,
                                                                             align_corners=False)

    def mirrored_x(self, directions: Tensor) -> Tensor:
        """[B, 3, H, W] directions whose x component changes sign in the mirrored images."""
        sign = torch.where(self.mirror, -1.0, 1.0).view(-1, 1, 1, 1).to(directions.dtype)
        return torch.cat([directions[:, :1] * sign, directions[:, 1:]], 1)

    def images(self, images: Tensor) -> Tensor:
        return self.bilinear(images)
