"""MTAN-style augmentation on batched tensors, on the device: random scale-crop and horizontal flip.

RandomScaleCrop of the MTAN / MTPSL / JTR code: scale s from {1, 1.2, 1.5}, crop an (H/s, W/s) window at a
random integer offset, resize back to (H, W), divide depth by s (a zoom brings the scene closer). Here every
image of the batch gets its own s, offset and flip, drawn once as a ``Warp`` (``mtlbench/warp.py``) that then
resamples the image and, through each task type's ``warped``, every target and, for the regularizers that compare
views, predictions, with one ``grid_sample`` each:
bilinear for images, normals, probabilities, shading and heatmaps, nearest for segmentation labels, depth and
edges, as the authors' code resizes them. The bilinear maps reproduce ``F.interpolate(..., mode="bilinear",
align_corners=True)`` of the crop exactly, as the MTPSL and JTR loaders resize image and normals
(dataset/nyuv2ssl.py, datasets/nyuv2.py); ``align_corners: false`` gives ``align_corners=False`` (mtlbench
before 0.2; the affine grid is then clamped to the crop). Nearest maps may pick the neighbouring source pixel
(grid_sample rounds where interpolate floors). A flip negates the x component of normals. Image-level
targets (``cls``) are left unchanged.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..tasks import Task
from ..warp import Warp
from ..distributed import Shard
from .photometric import RandAugment

SCALES = (1.0, 1.2, 1.5)


@dataclass(frozen=True)
class Augment:
    """Geometric augmentation of a batch (``__call__``) and, with ``photometric_ops`` > 0, JTR's photometric
    RandAugment, which the recipe applies to each view's images on their own (``photometric``), as the JTR
    script augments every view after its scale-crop."""

    scale_crop: bool = True
    flip: bool = True
    align_corners: bool = True
    photometric_ops: int = 0
    photometric_magnitude: int = 6

    def photometric(self, images: Tensor, generator: torch.Generator, shard: Shard | None = None) -> Tensor:
        if not self.photometric_ops:
            return images
        return RandAugment(self.photometric_ops, self.photometric_magnitude)(images, generator, shard)

    @property
    def active(self) -> bool:
        return self.scale_crop or self.flip

    def sample(self, images: Tensor, generator: torch.Generator, shard: Shard | None = None) -> Warp:
        """Each image's warp; with ``shard``, drawn for the whole global batch and kept for the shard's images,
        so that several ranks augment every image as one process would (train/distributed.py)."""
        b, _, h, w = images.shape
        device = images.device
        draw = torch.rand(shard.size if shard else b, 4, generator=generator, device=generator.device).to(device)
        draw = shard.draws(draw) if shard else draw
        scale = torch.tensor(SCALES, device=device)[(draw[:, 0] * len(SCALES)).long()] if self.scale_crop \
            else torch.ones(b, device=device)
        crop_h, crop_w = (h / scale).floor(), (w / scale).floor()
        top = ((h - crop_h + 1) * draw[:, 1]).floor()
        left = ((w - crop_w + 1) * draw[:, 2]).floor()
        mirror = (draw[:, 3] < 0.5) if self.flip else torch.zeros(b, dtype=torch.bool, device=device)
        theta = torch.zeros(b, 2, 3, device=device)
        theta[:, 0, 0] = torch.where(mirror, -crop_w / w, crop_w / w)
        theta[:, 0, 2] = (crop_w + 2 * left) / w - 1
        theta[:, 1, 1] = crop_h / h
        theta[:, 1, 2] = (crop_h + 2 * top) / h - 1
        grid = F.affine_grid(theta, [b, 1, h, w], align_corners=False)
        # clamp to the crop's border pixel centres, as interpolating the cropped tensor does
        grid = torch.stack([clamp_to_crop(grid[..., 0], left, crop_w, w),
                            clamp_to_crop(grid[..., 1], top, crop_h, h)], -1)
        smooth = corner_aligned_grid(top, left, crop_h, crop_w, mirror, h, w) if self.align_corners else None
        return Warp(grid.to(images.dtype), scale, mirror, None if smooth is None else smooth.to(images.dtype), theta)

    def __call__(self, images: Tensor, targets: dict[str, Tensor], tasks: dict[str, Task],
                 generator: torch.Generator, shard: Shard | None = None) -> tuple[Tensor, dict[str, Tensor]]:
        if not self.active:
            return images, targets
        warp = self.sample(images, generator, shard)
        return warp.images(images), warped_targets(warp, targets, tasks)


def warped_targets(warp: Warp, targets: dict[str, Tensor], tasks: dict[str, Task]) -> dict[str, Tensor]:
    """Each task's targets as the warped images show them (each task type resamples its own)."""
    return {name: tasks[name].warped(value, warp) for name, value in targets.items()}


def corner_aligned_grid(top: Tensor, left: Tensor, crop_h: Tensor, crop_w: Tensor, mirror: Tensor, h: int,
                        w: int) -> Tensor:
    """The grid of ``interpolate(crop, (h, w), align_corners=True)``: output pixel o samples crop coordinate
    o (c - 1) / (n - 1), in grid_sample's align_corners=True units (-1 and 1 at the first and last centres)."""
    b = len(top)
    theta = torch.zeros(b, 2, 3, device=top.device)
    x_scale = (crop_w - 1) / max(w - 1, 1)
    theta[:, 0, 0] = torch.where(mirror, -x_scale, x_scale)
    theta[:, 0, 2] = (crop_w - 1 + 2 * left) / max(w - 1, 1) - 1
    theta[:, 1, 1] = (crop_h - 1) / max(h - 1, 1)
    theta[:, 1, 2] = (crop_h - 1 + 2 * top) / max(h - 1, 1) - 1
    return F.affine_grid(theta, [b, 1, h, w], align_corners=True)


def clamp_to_crop(coordinate: Tensor, start: Tensor, size: Tensor, full: int) -> Tensor:
    low = (2 * start + 1) / full - 1
    high = (2 * (start + size - 1) + 1) / full - 1
    return torch.maximum(torch.minimum(coordinate, high.view(-1, 1, 1)), low.view(-1, 1, 1))
