"""JTR's photometric RandAugment (Nishi et al. 2024's released code, datasets/randaugment.py ``ImgAugment``),
vectorised over the batch on the training device.

Each image gets ``ops`` operations in turn, each drawn uniformly from Identity, Brightness, Color, Contrast,
Sharpness, Posterize, Solarize, AutoContrast and Equalize (the code's space, geometric ops left out), at a
magnitude bin drawn uniformly from [0, ``magnitude``) of 31 bins and, for the signed ops, a random sign: the
code's ``ImgAugment(num_ops=2, magnitude=6, num_magnitude_bins=31, magnitude_sampling=True)``. Every operation
is computed for the whole batch and each image keeps the one it drew, so a step runs no Python loop over images.
The operations equal torchvision's tensor functions (Brightness, Color, Contrast, Sharpness, AutoContrast) and
PIL's (Posterize, Solarize, Equalize: on the image as 8-bit, as the code converts it) exactly; images are floats
in [0, 1].
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import Tensor

from ..distributed import Shard

OPS = ("identity", "brightness", "color", "contrast", "sharpness", "posterize", "solarize", "autocontrast",
       "equalize")
SIGNED = {"brightness", "color", "contrast", "sharpness"}
BINS = 31
GRAY = (0.2989, 0.587, 0.114)  # torchvision's rgb_to_grayscale


def blend(image: Tensor, degenerate: Tensor, factor: Tensor) -> Tensor:
    return (factor * image + (1 - factor) * degenerate).clamp(0, 1)


def grayscale(images: Tensor) -> Tensor:
    r, g, b = images.unbind(1)
    return (GRAY[0] * r + GRAY[1] * g + GRAY[2] * b).unsqueeze(1)


def sharpness_degenerate(images: Tensor) -> Tensor:
    """torchvision's smoothed image: a 3x3 kernel (centre 5, others 1, / 13) inside, the border unchanged."""
    kernel = torch.ones(3, 3, dtype=images.dtype, device=images.device)
    kernel[1, 1] = 5.0
    kernel = (kernel / kernel.sum()).expand(images.shape[1], 1, 3, 3)
    smoothed = F.conv2d(images, kernel, groups=images.shape[1])
    degenerate = images.clone()
    degenerate[..., 1:-1, 1:-1] = smoothed
    return degenerate


def as_bytes(images: Tensor) -> Tensor:
    """The 8-bit image ``ToPILImage`` makes of a float tensor (``mul(255).byte()``: truncation)."""
    return images.mul(255).to(torch.uint8).long()


def autocontrast(images: Tensor) -> Tensor:
    low = images.amin(dim=(-2, -1), keepdim=True)
    high = images.amax(dim=(-2, -1), keepdim=True)
    flat = high <= low
    scale = torch.where(flat, 1.0, 1.0 / (high - low).clamp_min(1e-12))
    return ((images - torch.where(flat, 0.0, low)) * scale).clamp(0, 1)


def equalize(images: Tensor) -> Tensor:
    """PIL's ImageOps.equalize of each channel of each image, as one batched histogram and lookup."""
    values = as_bytes(images)
    b, c = values.shape[:2]
    channel = torch.arange(b * c, device=values.device).view(b, c, 1, 1)
    counts = torch.bincount((channel * 256 + values).flatten(), minlength=b * c * 256).view(b, c, 256)
    levels = torch.arange(256, device=values.device)
    last = torch.where(counts > 0, levels, -1).amax(-1, keepdim=True)  # the highest value present
    step = (counts.sum(-1, keepdim=True) - counts.gather(-1, last.clamp_min(0))) // 255
    before = counts.cumsum(-1) - counts  # pixels below each level
    lut = ((step // 2 + before) // step.clamp_min(1)).clamp_max(255)
    lut = torch.where(step > 0, lut, levels)
    return lut.gather(-1, values.flatten(2)).view_as(values).float() / 255


def posterize(images: Tensor, bits: Tensor) -> Tensor:
    keep = 255 - (2 ** (8 - bits) - 1)  # the mask of the high bits
    return (as_bytes(images) & keep).float() / 255


def solarize(images: Tensor, threshold: Tensor) -> Tensor:
    values = as_bytes(images)
    return torch.where(values < threshold, values, 255 - values).float() / 255


@dataclass(frozen=True)
class RandAugment:
    ops: int = 2
    magnitude: int = 6

    def __call__(self, images: Tensor, generator: torch.Generator, shard: Shard | None = None) -> Tensor:
        """``shard``: draw for the whole global batch, apply the shard's draws (train/distributed.py)."""
        for _ in range(self.ops):
            drawn = self.draw(shard.size if shard else len(images), generator, images.device)
            images = self.apply(images, *(tuple(map(shard.draws, drawn)) if shard else drawn))
        return images

    def draw(self, n: int, generator: torch.Generator, device: torch.device) -> tuple[Tensor, Tensor, Tensor]:
        """Each image's operation, magnitude bin and sign."""
        op = torch.randint(len(OPS), (n,), generator=generator, device=generator.device).to(device)
        level = torch.randint(self.magnitude, (n,), generator=generator, device=generator.device).to(device)
        negative = torch.randint(2, (n,), generator=generator, device=generator.device).to(device).bool()
        return op, level, negative

    def apply(self, images: Tensor, op: Tensor, level: Tensor, negative: Tensor) -> Tensor:
        """Every image transformed by its own operation at its own magnitude."""
        shape = (-1, 1, 1, 1)
        amount = (level.float() * 0.9 / (BINS - 1)).view(shape)  # linspace(0, 0.9, 31)[level]
        factor = 1 + torch.where(negative.view(shape), -amount, amount)
        bits = (8 - (level.float() / ((BINS - 1) / 4)).round()).long().view(shape)
        threshold = (255.0 - level.float() * 255.0 / (BINS - 1)).view(shape)  # linspace(255, 0, 31)[level]
        gray = grayscale(images)
        candidates = {
            "identity": images,
            "brightness": blend(images, torch.zeros_like(images), factor),
            "color": blend(images, gray.expand_as(images), factor),
            "contrast": blend(images, gray.mean(dim=(-3, -2, -1), keepdim=True), factor),
            "sharpness": blend(images, sharpness_degenerate(images), factor),
            "posterize": posterize(images, bits),
            "solarize": solarize(images, threshold),
            "autocontrast": autocontrast(images),
            "equalize": equalize(images),
        }
        stacked = torch.stack([candidates[name] for name in OPS])  # [ops, B, C, H, W]
        return stacked.gather(0, op.view(1, -1, 1, 1, 1).expand(1, *images.shape)).squeeze(0)
