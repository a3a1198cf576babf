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
    affine: Tensor | None = None  # [B, 2, 3]: output to input coordinates in [-1, 1] (the grid before clamping)

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

    def boxes(self, boxes: Tensor) -> Tensor:
        """[B, M, 5] boxes (x1, y1, x2, y2 in pixels, class; class -1 pads) as the warped images show them: mapped
        through the transform (pixel edges, as the nearest-neighbour maps are sampled; with ``align_corners`` the
        images' bilinear grid differs by under a pixel) and clipped to the image. A box the crop leaves without
        area becomes padding."""
        height, width = self.grid.shape[1:3]
        size = boxes.new_tensor([width, height])
        a = torch.stack([self.affine[:, 0, 0], self.affine[:, 1, 1]], -1)[:, None].to(boxes.dtype)  # [B, 1, 2]
        t = torch.stack([self.affine[:, 0, 2], self.affine[:, 1, 2]], -1)[:, None].to(boxes.dtype)
        corners = [((2 * boxes[..., i:i + 2] / size - 1 - t) / a + 1) * size / 2 for i in (0, 2)]
        low = torch.minimum(*corners).clamp_min(0).minimum(size)
        high = torch.maximum(*corners).clamp_min(0).minimum(size)
        kept = ((high - low) > 0).all(-1) & (boxes[..., 4] >= 0)
        padding = torch.zeros_like(boxes)
        padding[..., 4] = -1
        return torch.where(kept[..., None], torch.cat([low, high, boxes[..., 4:]], -1), padding)
