"""Instance segmentation as a task: a mask and a class per object, scored by COCO's mask AP.

**Targets** are one integer map per image [B, 1, H, W], so that they batch, crop and warp as class maps do: 0 marks
pixels of no object, ``class * 1000 + k`` (k = 1 to 999) the pixels of the k-th object of ``class`` (0-based), and -1
an image (or pixels) without labels. An image whose map has no value >= 0 is unlabelled for the task. The encoding is
Cityscapes' ``instanceIds`` shifted by one instance (Cityscapes numbers a class's instances from 0, which would
collide with its non-instance pixels); one map per image cannot hold overlapping masks, so a loader of a dataset
whose masks overlap (COCO) draws later instances over earlier ones, and says so.

**Predictions** are the objects a model has found: [B, K, 6 + S * S] per image, the box (x1, y1, x2, y2, pixel
edges), the score, the class (-1 pads) and the object's mask as probabilities on an S x S grid over its box (Mask
R-CNN's 28 x 28), which the meter pastes into the image (``pasted_masks``).

**Loss.** An instance mask is learnt on the proposals of a detector (Mask R-CNN's mask head samples them from the
ground truth), so the loss belongs to the model that predicts the task (``models/maskrcnn.py`` computes it per
image); a model that cannot is refused when it is built.

**Metrics**: COCO's mask mAP@[.5:.95] (``map``), AP50 and AP75, through torchmetrics' ``MeanAveragePrecision``
(``iou_type="segm"``) on pycocotools, checked against pycocotools in tests/test_instance.py.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor

from ..warp import Warp
from .base import Meter, Task
from .detection import coco_scores, merge_coco

INSTANCE_STRIDE = 1000  # an object's value is class * INSTANCE_STRIDE + k, k = 1 .. INSTANCE_STRIDE - 1
BOX, SCORE, LABEL, MASK = slice(0, 4), 4, 5, 6  # the columns of a prediction row


def instances_of(target: Tensor) -> tuple[Tensor, Tensor, Tensor]:
    """One image's objects from its map [1, H, W] or [H, W]: their masks [K, H, W] (bool), classes [K] (0-based) and
    boxes [K, 4] (x1, y1, x2, y2 at pixel edges, the extent of the mask)."""
    from torchvision.ops import masks_to_boxes  # imported where objects are read: the trainer needs torch and numpy

    values = target.reshape(target.shape[-2:]).long()
    ids = torch.unique(values)
    ids = ids[(ids > 0) & (ids % INSTANCE_STRIDE != 0)]
    masks = values[None] == ids[:, None, None]
    boxes = masks_to_boxes(masks) + masks.new_tensor([0, 0, 1, 1], dtype=torch.float32)  # last pixel -> its far edge
    return masks, ids // INSTANCE_STRIDE, boxes


def labelled_images(target: Tensor) -> Tensor:
    """[B] bool: the images whose map carries a label (a value >= 0)."""
    return (target >= 0).flatten(1).any(1)


def pasted_masks(pred: Tensor, height: int, width: int, threshold: float) -> Tensor:
    """One image's predicted masks [K, S * S] over their boxes as binary image masks [K, H, W]: each pixel whose
    centre lies in a box takes the mask's bilinear value there, and belongs to the object above ``threshold``. This is
    detectron2's paste (``_do_paste_mask``, the implementation Li et al. 2022a ran); torchvision's
    ``paste_masks_in_image`` rounds the box and misses or adds up to a pixel at its edges."""
    side = int(round((pred.shape[-1] - MASK) ** 0.5))
    masks = pred[:, MASK:].reshape(-1, 1, side, side).float()
    x1, y1, x2, y2 = (pred[:, BOX].float()[:, i, None] for i in range(4))
    xs = (torch.arange(width, device=pred.device) + 0.5 - x1) / (x2 - x1).clamp_min(1e-6) * 2 - 1  # [K, W]
    ys = (torch.arange(height, device=pred.device) + 0.5 - y1) / (y2 - y1).clamp_min(1e-6) * 2 - 1  # [K, H]
    grid = torch.stack([xs[:, None, :].expand(-1, height, -1), ys[:, :, None].expand(-1, -1, width)], -1)
    return F.grid_sample(masks, grid, align_corners=False)[:, 0] > threshold


class InstanceMeter(Meter):
    """COCO's mask AP over the split: torchmetrics' MeanAveragePrecision (segm) on pycocotools, fed one image at a
    time as its API takes them."""

    def __init__(self, task: "Instance") -> None:
        try:
            from torchmetrics.detection import MeanAveragePrecision
        except ImportError as error:
            raise ImportError(f"the instance task's mAP needs torchmetrics and pycocotools: pip install "
                              f"'mtlbench[detection]' ({error})") from None
        self.task = task
        # sync_on_compute off: shards are merged by ``merge`` (DetectionMeter)
        self.metric = MeanAveragePrecision(iou_type="segm", backend="pycocotools", sync_on_compute=False)
        self.found = False

    def update(self, pred: Tensor, target: Tensor) -> None:
        height, width = target.shape[-2:]
        preds, truths = [], []
        for image_pred, image_target in zip(pred.float(), target):
            found = image_pred[image_pred[:, LABEL] >= 0]
            self.found = self.found or len(found) > 0
            masks, classes, _ = instances_of(image_target)
            preds.append({"masks": pasted_masks(found, height, width, self.task.mask_threshold),
                          "scores": found[:, SCORE], "labels": found[:, LABEL].long()})
            truths.append({"masks": masks, "labels": classes})
        self.metric.update(preds, truths)

    def merge(self, other: InstanceMeter) -> None:
        merge_coco(self.metric, other.metric)
        self.found = self.found or other.found

    def compute(self) -> dict[str, float]:
        return coco_scores(self.metric, self.found)


@dataclass(frozen=True)
class Instance(Task):
    """Instance masks and classes (``channels``: the number of classes); the loss is its model's."""

    mask_size: int = 28  # the side of a predicted mask's grid (Mask R-CNN's 28 x 28)
    mask_threshold: float = 0.5  # a pasted mask's pixels above it belong to the object (Mask R-CNN's inference)
    output: ClassVar[str] = "instances"
    aligned_views: ClassVar[bool] = False
    value_kind: ClassVar[str] = "instances"
    loss_from_model: ClassVar[bool] = True
    higher_is_better: ClassVar[dict[str, bool]] = {"map": True, "map_50": True, "map_75": True}
    primary: ClassVar[str] = "map"

    def loss_per_image(self, pred: Tensor, target: Tensor) -> Tensor:
        raise TypeError(f"task {self.name}: an instance mask's loss is its model's (Mask R-CNN samples the mask "
                        f"head's proposals from the ground truth); train it with a model that computes it "
                        f"(model: maskrcnn)")

    def prepare(self, stored: Tensor) -> Tensor:
        return stored.long()

    def warped(self, value: Tensor, warp: Warp, mode: str | None = None) -> Tensor:
        return warp.nearest(value.float()).long()

    def meter(self) -> Meter:
        return InstanceMeter(self)

    def random_target(self, batch: int, height: int, width: int, generator: torch.Generator) -> Tensor:
        """Up to 4 rectangular objects per image of random classes, later ones drawn over earlier ones."""
        out = torch.zeros(batch, 1, height, width, dtype=torch.long)
        rows, columns = torch.arange(height).view(-1, 1), torch.arange(width).view(1, -1)
        for k in range(1, 5):
            corner = torch.rand(batch, 2, generator=generator) * torch.tensor([height - 4, width - 4])
            size = 4 + torch.rand(batch, 2, generator=generator) * torch.tensor([height, width]) / 2
            inside = ((rows >= corner[:, :1, None]) & (rows < (corner + size)[:, :1, None])
                      & (columns >= corner[:, 1:, None]) & (columns < (corner + size)[:, 1:, None]))
            value = torch.randint(0, self.channels, (batch, 1, 1), generator=generator) * INSTANCE_STRIDE + k
            out[:, 0] = torch.where(inside, value, out[:, 0])
        return out

    def target_sums(self, target: Tensor) -> tuple[Tensor, Tensor]:
        return torch.zeros(self.channels, dtype=torch.float64), torch.tensor(float(len(target)), dtype=torch.float64)

    def constant(self, sums: Tensor, counts: Tensor) -> Tensor:
        return torch.zeros(0)

    def constant_prediction(self, constant: Tensor, batch: int, height: int, width: int) -> Tensor:
        """What ignores the image finds no object: one padding row per image (its mask AP is 0)."""
        row = torch.zeros(batch, 1, MASK + self.mask_size ** 2, device=constant.device)
        row[..., LABEL] = -1
        return row

    def ensemble_label(self, preds: Tensor) -> Tensor:
        raise TypeError(f"task {self.name}: instance pseudo-labels from an ensemble are not defined in mtlbench (no "
                        f"paper it implements makes them)")
