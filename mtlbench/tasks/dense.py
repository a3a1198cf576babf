"""Dense tasks: one value per pixel (segmentation, depth, surface normals, L1 maps).

Conventions follow the MTAN / MTPSL code base (docs/papers.md): segmentation ignores label -1, depth 0 is invalid,
an all-zero normal is invalid; metrics are pooled over all valid pixels of the split. The loss of an image is the
mean over its valid pixels.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..functional import nonzero_pixels, one_hot_ignoring
from ..warp import Warp
from .base import Meter, Task, masked_mean_per_image, summed

IGNORE_INDEX = -1


@dataclass(frozen=True)
class DenseTask(Task):
    """A per-pixel map, resampled by augmentation: ``interpolation`` is how (class maps are always nearest),
    ``divide_by_scale`` marks depth-like targets that shrink when the image is zoomed in, ``is_normal`` directions
    whose x component flips sign with a horizontal flip."""

    interpolation: ClassVar[str] = "bilinear"
    divide_by_scale: ClassVar[bool] = False
    is_normal: ClassVar[bool] = False

    def warped(self, value: Tensor, warp: Warp, mode: str | None = None) -> Tensor:
        if value.dim() == 3:  # class maps [B, H, W]
            return warp.nearest(value[:, None].float())[:, 0].long()
        out = warp.resample(value, mode or self.interpolation)
        if self.divide_by_scale:
            out = out / warp.scale.view(-1, 1, 1, 1).to(out.dtype)
        if self.is_normal:
            out = warp.mirrored_x(out)
        return out


# ----------------------------------------------------------------------------------------------- seg
class ConfusionMeter(Meter):
    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix: Tensor | None = None

    def update(self, pred: Tensor, target: Tensor) -> None:
        valid = target != IGNORE_INDEX
        index = target[valid] * self.num_classes + pred.argmax(1)[valid]
        counts = torch.bincount(index, minlength=self.num_classes ** 2)
        self.matrix = summed(self.matrix, counts)

    def merge(self, other: ConfusionMeter) -> None:
        self.matrix = summed(self.matrix, other.matrix)

    def compute(self) -> dict[str, float]:
        m = self.matrix.view(self.num_classes, self.num_classes).double().cpu()
        true_positive = m.diag()
        union = m.sum(0) + m.sum(1) - true_positive
        present = union > 0  # classes absent from both prediction and truth do not count (MTAN convention)
        iou = true_positive[present] / union[present]
        return {"miou": iou.mean().item(), "pixel_acc": (true_positive.sum() / m.sum()).item()}


@dataclass(frozen=True)
class Segmentation(DenseTask):
    """Cross-entropy with ignore index -1 (with ``label_smoothing``, the targets' smoothing of torch's
    cross-entropy, as Yun and Cho 2023's code trains with 0.1: the job's ``train.label_smoothing``); mIoU from a
    confusion matrix accumulated over the split."""

    label_smoothing: float = 0.0
    higher_is_better: ClassVar[dict[str, bool]] = {"miou": True, "pixel_acc": True}
    primary: ClassVar[str] = "miou"
    interpolation: ClassVar[str] = "nearest"
    value_kind: ClassVar[str] = "classes"

    def valid_pixels(self, label: Tensor) -> Tensor:
        return (label >= 0)[:, None].float()

    def label_map(self, label: Tensor) -> Tensor:
        return one_hot_ignoring(label, self.channels)

    def random_target(self, batch: int, height: int, width: int, generator: torch.Generator) -> Tensor:
        return (torch.rand(batch, height, width, generator=generator) * self.channels).long()

    def prepare(self, stored: Tensor) -> Tensor:
        """Class indices; class probabilities [B, C, H, W] stay probabilities (soft pseudo-labels)."""
        return stored.float() if stored.is_floating_point() else stored.long()

    def as_map(self, pred: Tensor) -> Tensor:
        return torch.softmax(pred.float(), 1)

    def ensemble_label(self, preds: Tensor) -> Tensor:
        """The class of highest mean probability."""
        return torch.softmax(preds.float(), 2).mean(0).argmax(1)

    def target_sums(self, target: Tensor) -> tuple[Tensor, Tensor]:
        counts = torch.bincount(target[target != IGNORE_INDEX].flatten(), minlength=self.channels)
        return counts.double(), counts.sum()

    def constant(self, sums: Tensor, counts: Tensor) -> Tensor:
        """The training class frequencies as log-probabilities: the majority class everywhere."""
        return torch.log(sums / counts.clamp_min(1) + 1e-12).float().view(-1, 1, 1)

    def loss_per_image(self, pred: Tensor, target: Tensor) -> Tensor:
        """Cross-entropy against class indices, or against class probabilities [B, C, H, W] (a teacher's soft
        pseudo-labels; a pixel whose probabilities are all zero is ignored)."""
        if target.is_floating_point():
            pixel = -(target * torch.log_softmax(pred.float(), 1)).sum(1)
            return masked_mean_per_image(pixel, target.sum(1) > 0)
        pixel = F.cross_entropy(pred.float(), target.clamp_min(0), reduction="none",
                                label_smoothing=self.label_smoothing)
        return masked_mean_per_image(pixel, target != IGNORE_INDEX)

    def meter(self) -> Meter:
        return ConfusionMeter(self.channels)


# --------------------------------------------------------------------------------------------- depth
def unchanged(metrics: dict[str, float]) -> dict[str, float]:
    return metrics


class SumMeter(Meter):
    """Pools per-pixel statistics over the split: each entry of ``stats`` returns (sum, count). ``stats`` and
    ``finish`` are module-level functions, so that a meter pickles (a rank sends its shard's meter to the others)."""

    def __init__(self, stats: Callable[[Tensor, Tensor], dict[str, tuple[Tensor, Tensor]]],
                 finish: Callable[[dict[str, float]], dict[str, float]] = unchanged) -> None:
        self.stats, self.finish = stats, finish
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, Tensor] = {}

    def update(self, pred: Tensor, target: Tensor) -> None:
        for key, (total, count) in self.stats(pred.double(), target.double()).items():
            self.sums[key] = self.sums.get(key, 0) + total.double()
            self.counts[key] = self.counts.get(key, 0) + count.double()

    def merge(self, other: SumMeter) -> None:
        for key in other.sums:
            self.sums[key] = summed(self.sums.get(key), other.sums[key])
            self.counts[key] = summed(self.counts.get(key), other.counts[key])

    def compute(self) -> dict[str, float]:
        return self.finish({k: (self.sums[k] / self.counts[k].clamp_min(1)).item() for k in self.sums})


def root_of_mean_square(metrics: dict[str, float]) -> dict[str, float]:
    """Depth's RMSE from its pooled mean square."""
    return {**metrics, "rmse": math.sqrt(metrics["rmse"])}


def depth_stats(pred: Tensor, target: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
    """Predictions are clamped at 1e-9 before scoring, as the MTPSL and JTR evaluations do (utils/evaluation.py,
    utils/evals.py): a negative depth scores as a tiny positive one."""
    valid = target > 0
    p, g = pred[valid].clamp_min(1e-9), target[valid]
    n = valid.sum()
    err = (p - g).abs()
    ratio = torch.maximum(p / g, g / p.clamp_min(1e-6))
    return {"abs_err": (err.sum(), n), "rel_err": ((err / g).sum(), n),
            "rmse": ((err ** 2).sum(), n), "delta1": ((ratio < 1.25).sum(), n)}


@dataclass(frozen=True)
class Depth(DenseTask):
    """L1 on valid pixels (target > 0); abs err, rel err, RMSE and δ<1.25 pooled over the split."""

    higher_is_better: ClassVar[dict[str, bool]] = {"abs_err": False, "rel_err": False, "rmse": False,
                                                   "delta1": True}
    primary: ClassVar[str] = "abs_err"
    interpolation: ClassVar[str] = "nearest"
    divide_by_scale: ClassVar[bool] = True
    value_kind: ClassVar[str] = "depth"

    def no_label(self, like: Tensor) -> Tensor:
        return torch.zeros_like(like)  # 0: no label, as every dataset stores it

    def valid_pixels(self, label: Tensor) -> Tensor:
        return nonzero_pixels(label)

    def random_target(self, batch: int, height: int, width: int, generator: torch.Generator) -> Tensor:
        return torch.rand(batch, 1, height, width, generator=generator) * 5 + 0.5

    def loss_per_image(self, pred: Tensor, target: Tensor) -> Tensor:
        return masked_mean_per_image((pred.float() - target).abs(), target > 0)

    def target_sums(self, target: Tensor) -> tuple[Tensor, Tensor]:
        valid = target > 0
        return torch.where(valid, target, 0.0).double().sum().view(1), valid.sum().view(1)

    def meter(self) -> Meter:
        return SumMeter(depth_stats, root_of_mean_square)


# -------------------------------------------------------------------------------------------- normal
# 2 (0.2): depth predictions clamped at 1e-9, normal targets not renormalised, within_11.25_per_image
METRICS_VERSION = 2
ANGLE_BIN = 0.01  # degrees; the median is read off a histogram of this resolution


class AngleMeter(Meter):
    """Mean, median and within-threshold fractions of the angular error, pooled over the split, and the mean,
    median and fraction within 11.25° of each image averaged over images (``*_per_image``: how Yun and Cho 2023's
    code scores normals, test_net.py, and the accuracy AMTL tracks).

    The angle is acos of the dot product of the (unit) prediction and the target as stored, which is not
    renormalised: the MTPSL and JTR evaluations (utils/evaluation.py, utils/evals.py) do so, and a benchmark
    must score as the papers it is set beside. (NYUv2's stored normals are unit vectors up to their 8-bit
    encoding; synthrooms' are exact.) The median comes from a 0.01-degree histogram, so a split of any size is
    summarised in 18,000 counters instead of keeping every pixel's angle (72M for NYUv2's test split).
    """

    def __init__(self, unit: bool = True) -> None:
        self.unit = unit  # whether predictions arrive as unit vectors; else they are normalised here
        self.histogram: Tensor | None = None
        self.total = 0.0
        self.per_image = 0.0
        self.mean_per_image = 0.0
        self.median_per_image = 0.0
        self.images = 0.0

    def update(self, pred: Tensor, target: Tensor) -> None:
        valid = target.abs().sum(1) > 0
        pred = pred.float() if self.unit else F.normalize(pred.float(), dim=1)
        dot = (pred * target.float()).sum(1).clamp(-1, 1)
        angle_map = torch.rad2deg(torch.acos(dot))
        angle = angle_map[valid]
        bins = (angle / ANGLE_BIN).long().clamp_max(int(180 / ANGLE_BIN) - 1)
        counts = torch.bincount(bins, minlength=int(180 / ANGLE_BIN))
        self.histogram = summed(self.histogram, counts)
        self.total = self.total + angle.double().sum()
        pixels = valid.flatten(1).sum(1)
        within = ((angle_map < 11.25) & valid).flatten(1).sum(1)
        scored = pixels > 0
        self.per_image = self.per_image + (within[scored].double() / pixels[scored]).sum()
        masked = angle_map.masked_fill(~valid, math.nan).flatten(1)[scored]
        self.mean_per_image = self.mean_per_image + masked.nanmean(1).double().sum()
        self.median_per_image = self.median_per_image + masked.nanmedian(1).values.double().sum()  # the lower middle
        self.images = self.images + scored.sum()

    def merge(self, other: AngleMeter) -> None:
        self.histogram = summed(self.histogram, other.histogram)
        for name in ("total", "per_image", "mean_per_image", "median_per_image", "images"):
            setattr(self, name, getattr(self, name) + getattr(other, name))

    def compute(self) -> dict[str, float]:
        counts = self.histogram.double().cpu()
        n = counts.sum()
        cumulative = counts.cumsum(0)
        median_bin = int(torch.searchsorted(cumulative, n / 2))
        within = {f"within_{t}": (cumulative[int(round(t / ANGLE_BIN)) - 1] / n).item()
                  for t in (11.25, 22.5, 30)}
        images = max(float(self.images), 1.0)
        return {"mean_angle": float(self.total / n), "median_angle": (median_bin + 0.5) * ANGLE_BIN, **within,
                "within_11.25_per_image": float(self.per_image / images),
                "mean_angle_per_image": float(self.mean_per_image / images),
                "median_angle_per_image": float(self.median_per_image / images)}


NORMAL_LOSSES = ("cosine", "l1")


@dataclass(frozen=True)
class Normal(DenseTask):
    """Surface normals: 1 - cosine similarity of the unit prediction on valid pixels (non-zero target), or with
    ``loss="l1"`` Standley et al. 2020's L1 (Sec. 4.1: "an L1 loss was used for all other tasks"; their code's
    ``normal_loss_simple``) between the raw prediction and the target, averaged over channels and valid pixels
    (their code divides by every pixel, masked ones included). Angle statistics in degrees, of the prediction
    normalised to unit length."""

    loss: str = "cosine"

    higher_is_better: ClassVar[dict[str, bool]] = {"mean_angle": False, "median_angle": False,
                                                   "within_11.25": True, "within_22.5": True,
                                                   "within_30": True, "within_11.25_per_image": True,
                                                   "mean_angle_per_image": False, "median_angle_per_image": False}
    primary: ClassVar[str] = "mean_angle"
    is_normal: ClassVar[bool] = True
    value_kind: ClassVar[str] = "direction"

    def no_label(self, like: Tensor) -> Tensor:
        return torch.zeros_like(like)  # 0: no label, as every dataset stores it

    def valid_pixels(self, label: Tensor) -> Tensor:
        return nonzero_pixels(label)

    def random_target(self, batch: int, height: int, width: int, generator: torch.Generator) -> Tensor:
        return F.normalize(torch.rand(batch, 3, height, width, generator=generator) - 0.5, dim=1)

    def __post_init__(self) -> None:
        if self.loss not in NORMAL_LOSSES:
            raise ValueError(f"task {self.name}: loss {self.loss!r} unknown; choose one of {', '.join(NORMAL_LOSSES)}")

    def loss_per_image(self, pred: Tensor, target: Tensor) -> Tensor:
        valid = target.abs().sum(1) > 0
        if self.loss == "l1":
            return masked_mean_per_image((pred.float() - target).abs().mean(1), valid)
        return masked_mean_per_image(1 - (pred.float() * target).sum(1), valid)

    def postprocess(self, raw: Tensor) -> Tensor:
        """Unit vectors; the raw output under the L1 loss, which regresses the target's values."""
        return raw if self.loss == "l1" else F.normalize(raw, dim=1)

    def ensemble_label(self, preds: Tensor) -> Tensor:
        """The normalised mean direction."""
        return F.normalize(preds.float().mean(0), dim=1)

    def target_sums(self, target: Tensor) -> tuple[Tensor, Tensor]:
        valid = target.abs().sum(1, keepdim=True) > 0
        return (target * valid).double().sum((0, 2, 3)), valid.sum().expand(3)

    def constant(self, sums: Tensor, counts: Tensor) -> Tensor:
        """The normalised mean direction of the valid training normals."""
        return F.normalize(sums.float(), dim=0).view(-1, 1, 1)

    def meter(self) -> Meter:
        return AngleMeter(unit=self.loss == "cosine")


# ---------------------------------------------------------------------------------- edge, keypoint...
def l1_stats(pred: Tensor, target: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
    valid = target.isfinite()
    return {"l1": (torch.where(valid, pred - target, 0.0).abs().sum(), valid.sum())}


@dataclass(frozen=True)
class DenseL1(DenseTask):
    """L1 regression (edges, keypoint heatmaps, shading, standardised depth), as Standley et al. train them;
    a NaN target marks a masked pixel (Taskonomy's invalid-depth mask), left out of loss and metric."""

    higher_is_better: ClassVar[dict[str, bool]] = {"l1": False}
    primary: ClassVar[str] = "l1"

    def loss_per_image(self, pred: Tensor, target: Tensor) -> Tensor:
        valid = target.isfinite()
        return masked_mean_per_image((pred.float() - target.nan_to_num()).abs(), valid)

    def meter(self) -> Meter:
        return SumMeter(l1_stats)


@dataclass(frozen=True)
class Edge(DenseL1):
    interpolation: ClassVar[str] = "nearest"


