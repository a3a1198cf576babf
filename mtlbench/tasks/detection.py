"""Object detection as a task: a set of boxes per image, trained and scored as EfficientDet does (Tan et al. 2020,
as Yun and Cho 2023 Table 7 train it), one image at a time so that label masks and per-image weightings apply.

**Targets.** A batch's boxes are one tensor [B, M, 5]: ``x1, y1, x2, y2`` in pixels (edges: a box covering the whole
W x H image is 0, 0, W, H) and the class; rows of class -1 are padding, M is the most objects any image of the split
has. An image without objects is all padding. Batches are thus cut by indexing, as every other target.

**Predictions.** The network's raw output is one tensor [B, A, 8 + C] over the task's anchors (``Anchors``, ordered
level, row, column, anchor as EfficientDet orders them): each anchor's box (xyxy, a constant the head writes so that
the output says which anchors it was computed on, whatever the image size), the box offsets (ty, tx, th, tw) of
Faster R-CNN's coder in effdet's order, and C class logits. ``detections`` turns it into at most
``max_detections`` scored boxes per image. A model that selects its detections itself (Mask R-CNN's box head and
NMS) predicts them directly, [B, K, 6]; its loss is its own (``models/maskrcnn.py``).

**Loss** (EfficientDet's, ``effdet/loss.py``): each anchor is matched to the ground-truth box of highest IoU when
that IoU is at least 0.5 and to none otherwise, and every box also claims its best anchor (``force_match_for_each_row``);
focal loss (alpha 0.25, gamma 1.5) over every anchor and class, plus 50 x the Huber loss (delta 0.1) of the matched
anchors' offsets, the focal term divided by the positives + 1 and the Huber term by 4 (positives + 1). EfficientDet
counts the positives over the batch; here each image's loss is divided by its own, so that an image's loss does not
depend on the images it is batched with (label masks leave images out, weightings weight them); for a batch of one
the two agree (tests/test_detection.py).

**Metrics**: COCO's box mAP@[.5:.95] (``map``), AP50 and AP75, through torchmetrics' ``MeanAveragePrecision`` on
pycocotools, checked against pycocotools itself in the tests.

Anchors come from effdet; the matching and the loss are written here, vectorised over the batch, because effdet's
``AnchorLabeler`` labels one image at a time in a Python loop and its ``DetectionLoss`` normalises over the batch;
the tests check both against effdet's on a batch of one. Everything lives in the ``detection`` extra (effdet,
torchmetrics, pycocotools).
"""
from __future__ import annotations

import math
import warnings
from dataclasses import dataclass, field
from types import ModuleType
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..warp import Warp
from .base import Meter, Task

CLASS = 4  # the column of a target row that holds the class (-1: padding)
DETECTION_COLUMNS = 6  # x1, y1, x2, y2, score, class: a detection (an anchor-level output has 8 + C >= 9)


def effdet() -> ModuleType:
    """The effdet package, imported once its import-time ``torch.jit.script`` calls (which torch 2.14 deprecates
    with a FutureWarning per call, some forty, that no user can act on) have run quietly."""
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*torch.jit.script.*", category=FutureWarning)
        try:
            import effdet.anchors
            import effdet.config
            import effdet.efficientdet
        except ImportError as error:
            raise ImportError(f"the detection task needs effdet: pip install 'mtlbench[detection]' ({error})") from None
    return effdet


@dataclass(frozen=True)
class Anchors:
    """EfficientDet's anchors, as effdet's ``Anchors`` places them: at each pyramid level l from ``min_level`` to
    ``max_level`` (the image halved l times, rounding up), centred on every cell, ``scales`` octave scales
    2^(i/scales) times ``size`` times the cell's size, in each aspect ratio (w, h)."""

    min_level: int = 3
    max_level: int = 7
    scales: int = 3
    ratios: tuple[tuple[float, float], ...] = ((1.0, 1.0), (1.4, 0.7), (0.7, 1.4))
    size: float = 4.0

    def cells(self, height: int, width: int) -> list[tuple[int, int]]:
        """Each level's grid (rows, columns)."""
        return [(math.ceil(height / 2 ** level), math.ceil(width / 2 ** level))
                for level in range(self.min_level, self.max_level + 1)]

    def boxes(self, height: int, width: int, device: torch.device | str = "cpu") -> Tensor:
        """[A, 4] xyxy, in the order the network's outputs are flattened: level, row, column, (scale, ratio)."""
        yxyx = effdet().anchors.Anchors(self.min_level, self.max_level, self.scales, list(self.ratios), self.size,
                             (height, width)).boxes
        return yxyx[:, [1, 0, 3, 2]].to(device)


def encode(boxes: Tensor, anchors: Tensor) -> Tensor:
    """Faster R-CNN's offsets of ``boxes`` [..., 4] from ``anchors`` [..., 4], both xyxy, in effdet's order (ty, tx,
    th, tw), so that an EfficientDet head's weights keep their meaning."""
    size, centre = anchors[..., 2:] - anchors[..., :2], (anchors[..., 2:] + anchors[..., :2]) / 2
    box_size = (boxes[..., 2:] - boxes[..., :2]).clamp_min(1e-8)
    box_centre = (boxes[..., 2:] + boxes[..., :2]) / 2
    return torch.cat([((box_centre - centre) / size).flip(-1), torch.log(box_size / size).flip(-1)], -1)


def decode(offsets: Tensor, anchors: Tensor) -> Tensor:
    """The boxes (xyxy) that ``offsets`` [..., 4] encode from ``anchors`` (the inverse of ``encode``)."""
    size, centre = anchors[..., 2:] - anchors[..., :2], (anchors[..., 2:] + anchors[..., :2]) / 2
    box_centre, box_size = centre + offsets[..., :2].flip(-1) * size, size * torch.exp(offsets[..., 2:].flip(-1))
    return torch.cat([box_centre - box_size / 2, box_centre + box_size / 2], -1)


def batched_box_iou(a: Tensor, b: Tensor) -> Tensor:
    """IoU of every box of ``a`` [B, M, 4] with every box of ``b`` [A, 4]: [B, M, A]."""
    from torchvision.ops import box_iou  # imported where boxes are scored: the trainer needs only torch and numpy

    return box_iou(a.reshape(-1, 4), b).view(*a.shape[:2], len(b))


def match(targets: Tensor, anchors: Tensor, threshold: float = 0.5) -> Tensor:
    """For each image and anchor, the index of the ground-truth row it is matched to, or -1: [B, A].

    An anchor takes the box of highest IoU when that IoU is at least ``threshold``; then each box claims its own best
    anchor whatever the IoU, the first box winning an anchor two claim (EfficientDet's ArgMaxMatcher with
    ``force_match_for_each_row``, as effdet's ``object_detection/argmax_matcher.py`` breaks ties)."""
    present = targets[..., CLASS] >= 0  # [B, M]
    iou = batched_box_iou(targets[..., :4], anchors).masked_fill(~present[..., None], -1.0)  # [B, M, A]
    best_iou, best_box = iou.max(1)
    matched = torch.where(best_iou >= threshold, best_box, -1)
    rows = targets.shape[1]
    row = torch.where(present, torch.arange(rows, device=targets.device), rows)  # absent rows claim nothing
    claimant = torch.full_like(matched, rows).scatter_reduce(1, iou.argmax(2), row, "amin")  # first box per anchor
    return torch.where(claimant < rows, claimant, matched)


def coco_scores(metric, found: bool) -> dict[str, float]:
    """mAP@[.5:.95], AP50 and AP75 of a ``MeanAveragePrecision``; 0 where the predictor found nothing in the whole
    split (pycocotools then has no detection to rank and reports -1, "undefined", where the AP of finding nothing among
    real objects is 0)."""
    keys = ("map", "map_50", "map_75")
    if not found:
        return dict.fromkeys(keys, 0.0)
    result = metric.compute()
    return {key: float(result[key]) for key in keys}


def merge_coco(metric, other) -> None:
    """Appends ``other``'s images (detections and ground truths, in its order) to ``metric``'s: a
    ``MeanAveragePrecision`` keeps them in list states and ranks them all at ``compute``."""
    for name, values in other.metric_state.items():
        getattr(metric, name).extend(values)


class DetectionMeter(Meter):
    """COCO's box AP over the split: torchmetrics' MeanAveragePrecision on the pycocotools backend, fed one image
    at a time as its API takes them."""

    def __init__(self, task: "Detection") -> None:
        try:
            from torchmetrics.detection import MeanAveragePrecision
        except ImportError as error:  # the extra is not installed: say how to get it
            raise ImportError(f"the detection task's mAP needs torchmetrics and pycocotools: pip install "
                              f"'mtlbench[detection]' ({error})") from None
        self.task = task
        # sync_on_compute off: shards are merged by ``merge``; torchmetrics would gather again, and wait on ranks
        self.metric = MeanAveragePrecision(box_format="xyxy", iou_type="bbox", backend="pycocotools",
                                           sync_on_compute=False)
        self.found = False

    def update(self, pred: Tensor, target: Tensor) -> None:
        self.update_detections(self.task.detections(pred), target)

    def update_detections(self, detections: Tensor, target: Tensor) -> None:
        """``detections`` [B, K, 6]: x1, y1, x2, y2, score, class (-1: none)."""
        found, present = detections[..., 5] >= 0, target[..., CLASS] >= 0
        self.found = self.found or bool(found.any())
        self.metric.update(
            [{"boxes": d[k, :4].float(), "scores": d[k, 4].float(), "labels": d[k, 5].long()}
             for d, k in zip(detections, found)],
            [{"boxes": t[k, :4].float(), "labels": t[k, CLASS].long()} for t, k in zip(target, present)])

    def merge(self, other: DetectionMeter) -> None:
        merge_coco(self.metric, other.metric)
        self.found = self.found or other.found

    def compute(self) -> dict[str, float]:
        return coco_scores(self.metric, self.found)


@dataclass(frozen=True)
class Detection(Task):
    """Boxes and classes (``channels``: the number of classes); EfficientDet's anchors, matching and loss."""

    anchors: Anchors = field(default_factory=Anchors)
    image_size: tuple[int, int] | None = None  # (height, width) the head is built for; the dataset sets it
    fpn_channels: int = 64  # the EfficientDet head's size: D0's BiFPN width and repeats, and its nets' depth
    fpn_repeats: int = 3
    head_repeats: int = 3
    alpha: float = 0.25
    gamma: float = 1.5
    delta: float = 0.1
    box_weight: float = 50.0
    match_threshold: float = 0.5
    max_candidates: int = 5000  # the highest-scoring (anchor, class) pairs NMS sees per image
    nms_threshold: float = 0.5
    max_detections: int = 100
    output: ClassVar[str] = "anchors"
    aligned_views: ClassVar[bool] = False
    value_kind: ClassVar[str] = "boxes"
    higher_is_better: ClassVar[dict[str, bool]] = {"map": True, "map_50": True, "map_75": True}
    primary: ClassVar[str] = "map"

    def loss_per_image(self, pred: Tensor, target: Tensor) -> Tensor:
        from torchvision.ops import sigmoid_focal_loss  # Lin et al. 2017 Eq. 5, as effdet's default focal loss

        anchors, offsets, logits = pred[0, :, :4].float(), pred[..., 4:8].float(), pred[..., 8:].float()
        matched = match(target.float(), anchors, self.match_threshold)  # [B, A]
        positive = matched >= 0
        rows = target.float().gather(1, matched.clamp_min(0)[..., None].expand(-1, -1, target.shape[-1]))  # [B, A, 5]
        classes = F.one_hot(rows[..., CLASS].long().clamp_min(0), self.channels).float() * positive[..., None]
        normaliser = positive.sum(1).float() + 1.0
        class_loss = sigmoid_focal_loss(logits, classes, self.alpha, self.gamma).sum((1, 2))
        box_error = F.huber_loss(offsets, encode(rows[..., :4], anchors.expand_as(offsets)), reduction="none",
                                 delta=self.delta)
        box_loss = (box_error * positive[..., None]).sum((1, 2))
        return class_loss / normaliser + self.box_weight * box_loss / (4 * normaliser)

    def detections(self, pred: Tensor) -> Tensor:
        """[B, K, 6]: per image the ``max_detections`` best boxes after class-wise NMS (x1, y1, x2, y2, score,
        class; class -1 pads), from the ``max_candidates`` highest (anchor, class) scores, as effdet's
        ``_batch_detection`` selects them; one NMS call for the whole batch. A two-stage model (Mask R-CNN) predicts
        its detections itself: a prediction of 6 columns is already this and is returned as it is."""
        from torchvision.ops import batched_nms

        if pred.shape[-1] == DETECTION_COLUMNS:
            return pred

        batch, count, _ = pred.shape
        scores = torch.sigmoid(pred[..., 8:].float()).flatten(1)  # [B, A * C]
        top, index = scores.topk(min(self.max_candidates, scores.shape[1]), 1)
        anchor, label = index // self.channels, index % self.channels
        boxes = decode(pred[..., 4:8].float().gather(1, anchor[..., None].expand(-1, -1, 4)),
                       pred[..., :4].float().gather(1, anchor[..., None].expand(-1, -1, 4)))
        image = torch.arange(batch, device=pred.device)[:, None].expand_as(label)
        keep = batched_nms(boxes.flatten(0, 1), top.flatten(), (image * self.channels + label).flatten(),
                           self.nms_threshold)  # sorted by score, over the whole batch
        kept_image = image.flatten()[keep]
        order = torch.argsort(kept_image, stable=True)  # by image, each image's boxes still by score
        keep, kept_image = keep[order], kept_image[order]
        first = torch.searchsorted(kept_image, kept_image, right=False)
        rank = torch.arange(len(keep), device=pred.device) - first
        chosen = rank < self.max_detections
        out = torch.zeros(batch, self.max_detections, 6, device=pred.device)
        out[..., 5] = -1
        values = torch.cat([boxes.flatten(0, 1)[keep], top.flatten()[keep, None], label.flatten()[keep, None].float()], 1)
        out[kept_image[chosen], rank[chosen]] = values[chosen]
        return out

    def meter(self) -> Meter:
        return DetectionMeter(self)

    def ensemble_label(self, preds: Tensor) -> Tensor:
        """Boxes as targets [B, max_detections, 5]: the detections of the members' mean output (their anchors are the
        same) scoring above 1/2, as a class's mean probability above 1/2 makes a multi-label pseudo-label (mtlbench's
        choice; the label-budget paper has no detection task)."""
        detections = self.detections(preds.float().mean(0))
        confident = detections[..., 4] > 0.5
        return torch.cat([detections[..., :4] * confident[..., None],
                          torch.where(confident, detections[..., 5], -1.0)[..., None]], -1)

    def random_target(self, batch: int, height: int, width: int, generator: torch.Generator) -> Tensor:
        """Up to 8 boxes per image (some rows padding), of random classes."""
        corners = torch.rand(batch, 8, 2, 2, generator=generator) * torch.tensor([width, height])
        low, high = corners.min(2).values, corners.max(2).values + 1
        label = torch.randint(-1, self.channels, (batch, 8, 1), generator=generator).float()
        return torch.cat([low, high.minimum(torch.tensor([width, height])), label], -1)

    def target_sums(self, target: Tensor) -> tuple[Tensor, Tensor]:
        """Per class, the batch's boxes; and the batch's images."""
        label = target[..., CLASS].long()
        counts = torch.bincount(label[label >= 0], minlength=self.channels).double()
        return counts, torch.tensor(float(len(target)), dtype=torch.float64)

    def constant(self, sums: Tensor, counts: Tensor) -> Tensor:
        """The training images' boxes per image, per class (``constant_prediction`` spreads them over the anchors)."""
        return (sums / counts.clamp_min(1)).float()

    def constant_prediction(self, constant: Tensor, batch: int, height: int, width: int) -> Tensor:
        """What ignores the image: every anchor unmoved, scored for each class at the chance that an anchor holds one
        of the class's boxes (the training boxes per image over the anchors)."""
        anchors = self.anchors.boxes(height, width, constant.device)
        prior = (constant / len(anchors)).clamp(1e-6, 1 - 1e-6)
        row = torch.cat([torch.zeros(len(anchors), 4, device=constant.device), torch.logit(prior).expand(len(anchors), -1)], 1)
        return torch.cat([anchors, row], 1).expand(batch, -1, -1)

    def warped(self, value: Tensor, warp: Warp, mode: str | None = None) -> Tensor:
        return warp.boxes(value)

    def no_label(self, like: Tensor) -> Tensor:
        return padded(like[:, :0], like.shape[1])

    def concat(self, targets: list[Tensor]) -> Tensor:
        """Padded to the most rows any source has."""
        rows = max(t.shape[1] for t in targets)
        return torch.cat([padded(t, rows) for t in targets])


def padded(target: Tensor, rows: int) -> Tensor:
    """[N, M, 5] boxes with padding rows (class -1) up to ``rows``; every row of an empty input is padding."""
    out = torch.zeros(len(target), rows, target.shape[2], dtype=target.dtype, device=target.device)
    out[..., CLASS] = -1
    kept = target[:, :rows]
    present = kept[..., CLASS] >= 0
    out[:, :kept.shape[1]] = torch.where(present[..., None], kept, out[:, :kept.shape[1]])
    return out
