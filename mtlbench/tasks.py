"""Task definitions: output channels, training loss, evaluation metrics and their directions.

A task turns a model output and a target into (a) a per-image training loss, the mean over that image's
valid pixels, so that recipes can weight (image, task) pairs, and (b) a ``Meter`` that accumulates the
evaluation metrics over a whole split on the device (no per-image Python loop, one host sync at the end).

Conventions follow the MTAN / MTPSL code base (docs/papers.md): segmentation ignores label -1,
depth 0 is invalid, an all-zero normal is invalid; metrics are pooled over all valid pixels of the split.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from .functional import finite_pixels, nonzero_pixels, one_hot_ignoring
from .registry import Registry

IGNORE_INDEX = -1


def masked_mean_per_image(values: Tensor, valid: Tensor) -> Tensor:
    """Mean of ``values`` [B, ...] over the ``valid`` entries of each image: [B] (0 for an image with none)."""
    valid = valid.to(values.dtype)
    dims = tuple(range(1, values.dim()))
    return (values * valid).sum(dims) / valid.sum(dims).clamp_min(1.0)


class Meter:
    """Accumulates a task's metrics over a split; ``compute`` returns {metric: float}."""

    def update(self, pred: Tensor, target: Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError


@dataclass(frozen=True)
class Task:
    """Base class. ``higher_is_better`` lists every metric the task reports and its direction."""

    name: str
    channels: int
    dense: ClassVar[bool] = True
    interpolation: ClassVar[str] = "bilinear"  # how augmentation resamples the target
    divide_by_scale: ClassVar[bool] = False  # depth-like targets shrink when the image is zoomed in
    is_normal: ClassVar[bool] = False  # x component flips sign with a horizontal flip
    higher_is_better: ClassVar[dict[str, bool]] = {}
    primary: ClassVar[str] = ""
    # What its values are, for the methods that stack or map them (MTPSL, JTR) and choose an encoding per kind:
    # classes (logits; labels as indices, -1 ignored), depth (positive, 0 = no label), direction (unit
    # vectors, 0 = no label), regression (unbounded, NaN = masked), presence (image-level multi-label).
    value_kind: ClassVar[str] = "regression"

    def valid_pixels(self, label: Tensor) -> Tensor:
        """[B, 1, H, W] float: the pixels of a dense label that carry a value."""
        return finite_pixels(label)

    def label_map(self, label: Tensor) -> Tensor:
        """The label as a map with the task's output channels, zero where a pixel has no label."""
        return label.float().nan_to_num()

    def random_target(self, batch: int, height: int, width: int, generator: torch.Generator) -> Tensor:
        """A random label batch of the task's shape and value range (``mtlbench bench``, on random tensors)."""
        return torch.rand(batch, self.channels, height, width, generator=generator)

    def loss_per_image(self, pred: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def meter(self) -> Meter:
        raise NotImplementedError

    @property
    def directions(self) -> dict[str, bool]:
        """Every metric evaluation reports, with its direction: the task's metrics and its ``loss``."""
        return {**self.higher_is_better, "loss": False}

    def postprocess(self, raw: Tensor) -> Tensor:
        """Map the raw head output to the task's prediction space (identity unless overridden)."""
        return raw

    def prepare(self, stored: Tensor) -> Tensor:
        """The stored (compact) target as the tensor the loss and metrics take."""
        return stored.float()

    def as_map(self, pred: Tensor) -> Tensor:
        """A prediction as a map two views can be compared on (class probabilities for segmentation)."""
        return pred.float()

    def ensemble_label(self, preds: Tensor) -> Tensor:
        """A pseudo-label from the predictions [E, B, ...] of E networks, as ``prepare`` gives targets (the
        mean prediction for regression tasks)."""
        return preds.float().mean(0)

    def target_sums(self, target: Tensor) -> tuple[Tensor, Tensor]:
        """Per channel, the sum and the count of a batch's valid target entries (finite ones): what ``constant``
        fits the training mean from, a batch at a time."""
        valid = target.isfinite()
        dims = [0, *range(2, target.dim())]
        return torch.where(valid, target, 0.0).double().sum(dims), valid.sum(dims)

    def constant(self, sums: Tensor, counts: Tensor) -> Tensor:
        """What a model that ignores its input predicts for every image: the training targets' mean, as one
        image's output (a 1 x 1 map for dense tasks). Evaluated like a network, it is the reference a trained
        network must beat (``train.evaluation.constant_reference``)."""
        mean = (sums / counts.clamp_min(1)).float()
        return mean.view(-1, 1, 1) if self.dense else mean


# ----------------------------------------------------------------------------------------------- seg
class ConfusionMeter(Meter):
    def __init__(self, num_classes: int) -> None:
        self.num_classes = num_classes
        self.matrix: Tensor | None = None

    def update(self, pred: Tensor, target: Tensor) -> None:
        valid = target != IGNORE_INDEX
        index = target[valid] * self.num_classes + pred.argmax(1)[valid]
        counts = torch.bincount(index, minlength=self.num_classes ** 2)
        self.matrix = counts if self.matrix is None else self.matrix + counts

    def compute(self) -> dict[str, float]:
        m = self.matrix.view(self.num_classes, self.num_classes).double().cpu()
        true_positive = m.diag()
        union = m.sum(0) + m.sum(1) - true_positive
        present = union > 0  # classes absent from both prediction and truth do not count (MTAN convention)
        iou = true_positive[present] / union[present]
        return {"miou": iou.mean().item(), "pixel_acc": (true_positive.sum() / m.sum()).item()}


@dataclass(frozen=True)
class Segmentation(Task):
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
        return stored.long()

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
        pixel = F.cross_entropy(pred.float(), target.clamp_min(0), reduction="none",
                                label_smoothing=self.label_smoothing)
        return masked_mean_per_image(pixel, target != IGNORE_INDEX)

    def meter(self) -> Meter:
        return ConfusionMeter(self.channels)


# --------------------------------------------------------------------------------------------- depth
class SumMeter(Meter):
    """Pools per-pixel statistics over the split: each entry of ``stats`` returns (sum, count)."""

    def __init__(self, stats: Callable[[Tensor, Tensor], dict[str, tuple[Tensor, Tensor]]],
                 finish: Callable[[dict[str, float]], dict[str, float]] = lambda d: d) -> None:
        self.stats, self.finish = stats, finish
        self.sums: dict[str, Tensor] = {}
        self.counts: dict[str, Tensor] = {}

    def update(self, pred: Tensor, target: Tensor) -> None:
        for key, (total, count) in self.stats(pred.double(), target.double()).items():
            self.sums[key] = self.sums.get(key, 0) + total.double()
            self.counts[key] = self.counts.get(key, 0) + count.double()

    def compute(self) -> dict[str, float]:
        return self.finish({k: (self.sums[k] / self.counts[k].clamp_min(1)).item() for k in self.sums})


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
class Depth(Task):
    """L1 on valid pixels (target > 0); abs err, rel err, RMSE and δ<1.25 pooled over the split."""

    higher_is_better: ClassVar[dict[str, bool]] = {"abs_err": False, "rel_err": False, "rmse": False,
                                                   "delta1": True}
    primary: ClassVar[str] = "abs_err"
    interpolation: ClassVar[str] = "nearest"
    divide_by_scale: ClassVar[bool] = True
    value_kind: ClassVar[str] = "depth"

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
        def finish(m: dict[str, float]) -> dict[str, float]:
            return {**m, "rmse": math.sqrt(m["rmse"])}

        return SumMeter(depth_stats, finish)


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

    def __init__(self) -> None:
        self.histogram: Tensor | None = None
        self.total = 0.0
        self.per_image = 0.0
        self.mean_per_image = 0.0
        self.median_per_image = 0.0
        self.images = 0.0

    def update(self, pred: Tensor, target: Tensor) -> None:
        valid = target.abs().sum(1) > 0
        dot = (pred.float() * target.float()).sum(1).clamp(-1, 1)
        angle_map = torch.rad2deg(torch.acos(dot))
        angle = angle_map[valid]
        bins = (angle / ANGLE_BIN).long().clamp_max(int(180 / ANGLE_BIN) - 1)
        counts = torch.bincount(bins, minlength=int(180 / ANGLE_BIN))
        self.histogram = counts if self.histogram is None else self.histogram + counts
        self.total = self.total + angle.double().sum()
        pixels = valid.flatten(1).sum(1)
        within = ((angle_map < 11.25) & valid).flatten(1).sum(1)
        scored = pixels > 0
        self.per_image = self.per_image + (within[scored].double() / pixels[scored]).sum()
        masked = angle_map.masked_fill(~valid, math.nan).flatten(1)[scored]
        self.mean_per_image = self.mean_per_image + masked.nanmean(1).double().sum()
        self.median_per_image = self.median_per_image + masked.nanmedian(1).values.double().sum()  # the lower middle
        self.images = self.images + scored.sum()

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


@dataclass(frozen=True)
class Normal(Task):
    """1 - cosine similarity on valid pixels (non-zero target); angle statistics in degrees."""

    higher_is_better: ClassVar[dict[str, bool]] = {"mean_angle": False, "median_angle": False,
                                                   "within_11.25": True, "within_22.5": True,
                                                   "within_30": True, "within_11.25_per_image": True,
                                                   "mean_angle_per_image": False, "median_angle_per_image": False}
    primary: ClassVar[str] = "mean_angle"
    is_normal: ClassVar[bool] = True
    value_kind: ClassVar[str] = "direction"

    def valid_pixels(self, label: Tensor) -> Tensor:
        return nonzero_pixels(label)

    def random_target(self, batch: int, height: int, width: int, generator: torch.Generator) -> Tensor:
        return F.normalize(torch.rand(batch, 3, height, width, generator=generator) - 0.5, dim=1)

    def loss_per_image(self, pred: Tensor, target: Tensor) -> Tensor:
        valid = target.abs().sum(1) > 0
        return masked_mean_per_image(1 - (pred.float() * target).sum(1), valid)

    def postprocess(self, raw: Tensor) -> Tensor:
        return F.normalize(raw, dim=1)

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
        return AngleMeter()


# ---------------------------------------------------------------------------------- edge, keypoint...
def l1_stats(pred: Tensor, target: Tensor) -> dict[str, tuple[Tensor, Tensor]]:
    valid = target.isfinite()
    return {"l1": (torch.where(valid, pred - target, 0.0).abs().sum(), valid.sum())}


@dataclass(frozen=True)
class DenseL1(Task):
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


# ------------------------------------------------------------------------------------------------ cls
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

    def compute(self) -> dict[str, float]:
        return {"jaccard": float(self.score_sum / self.n)}


@dataclass(frozen=True)
class MultiLabel(Task):
    """Multi-label class presence: binary cross-entropy on logits; Jaccard score."""

    dense: ClassVar[bool] = False
    value_kind: ClassVar[str] = "presence"
    higher_is_better: ClassVar[dict[str, bool]] = {"jaccard": True}
    primary: ClassVar[str] = "jaccard"

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


TASK_KINDS: Registry[type[Task]] = Registry("task kind")
for _kind, _cls in {"segmentation": Segmentation, "depth": Depth, "normal": Normal, "l1": DenseL1,
                    "edge": Edge, "multilabel": MultiLabel}.items():
    TASK_KINDS.register(_kind)(_cls)
