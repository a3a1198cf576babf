"""Mask R-CNN (He et al. 2017) on a ResNet with FPN (ResNet-50 by default), torchvision's, as Li et al. 2022a Sec. 4.3 and Table 4 train it with
STA and ISTA: two tasks, **detection** (the RPN's objectness and proposal boxes, the box head's classes and class
boxes: four of Mask R-CNN's five loss terms) and **instance** segmentation (the mask head's loss). The paper says the
two tasks are "detection and semantic segmentation" of Mask R-CNN without naming where the RPN goes; mtlbench puts
it with detection, whose boxes it learns from.

**Losses per image.** A two-stage detector samples the anchors its RPN learns from and the proposals its heads learn
from against the ground truth, so the model computes the losses itself (``losses_per_image``, the protocol's
optional method that the recipe and the evaluation call instead of ``Task.loss_per_image``). Every term is
torchvision's (its matchers, samplers, box coder, RoI pooling and heads are called as they are), reduced per image
instead of over the batch: an image's RPN terms are divided by its own sampled anchors (256 unless it has fewer),
its box-head terms by its own sampled proposals (512), its mask term averaged over its own positive proposals.
With torchvision's fixed sample sizes the batch means of torchvision's ``MaskRCNN`` are the means of these
(tests/test_maskrcnn.py checks it on one image), and a label mask can leave an image out of a term.

**Which ground truth.** The RPN and the heads sample against one set of objects per image: its instance map's
objects (boxes: their masks' extent, as detectron2's Cityscapes loader derives them) where the image is labelled for
instances, else its detection boxes. A dataset that labels both describes the same objects twice; for an image
allocated to detection only, its boxes are then those of its instance masks (on COCO they differ from the annotated
boxes by about a pixel). An image without either label samples no positive.

**Settings.** torchvision's defaults (detectron2's, which the paper uses, differ in the RPN's proposals kept for
training: 1000 per image there, 2000 here): RPN IoU 0.7 / 0.3, 256 anchors at half positives, NMS 0.7; box head
512 proposals at a quarter positives, IoU 0.5; masks 28 x 28; 100 detections at score 0.05 and NMS 0.5. Images are
standardised with ImageNet's statistics and not resized (the dataset's resolution is the job's; torchvision's
``GeneralizedRCNNTransform`` would rescale to 800 px). ``anchor_sizes`` (one per FPN level) adapt the anchors to
small images; ``proposals_per_image`` (512) and ``representation_size`` (1024) size the box head's training sample
and layers, ``fpn_channels`` (256) and ``mask_head_channels`` (256) the FPN and the mask head, ``test_proposals``
(1000) and ``detections_per_image`` (100) what is kept when predicting: torchvision's values by default, which CPU
suites shrink (a simplification they name; RoIAlign's backward pass and the mask head over 100 detections dominate a
CPU's time); ``backbone`` picks torchvision's ResNet (ResNet-50, the paper's, by default; CPU suites use ResNet-18,
a simplification they name). Weights: none (random, trainable BatchNorm everywhere), or a local file: a torchvision
ResNet (ImageNet) state dict for the backbone, or a whole torchvision Mask R-CNN state dict (its predictors skipped where
the classes differ); with weights, BatchNorm is frozen and ``trainable_layers`` of the ResNet's stages train, as
torchvision does.
"""
from __future__ import annotations

from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ids import spelt_as_before
from ..registry import require
from ..tasks import Detection, Task
from ..tasks.instance import MASK, Instance, instances_of, labelled_images
from .registry import MODELS

MEAN, STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)  # ImageNet's, as torchvision's transform standardises
ROI_SIDE = 7  # the box head's RoIAlign output (torchvision's MultiScaleRoIAlign 7 x 7)
MASK_SIDE = 28  # the mask head's output (RoIAlign 14 x 14, upsampled twice)
BOX_BETA = 1 / 9  # torchvision's smooth-L1 beta for the RPN and box-head regressions


def task_of_output(tasks: dict[str, Task], kind: type[Task]) -> str:
    names = [name for name, task in tasks.items() if isinstance(task, kind)]
    if len(names) != 1 or len(tasks) != 2:
        raise ValueError(f"maskrcnn trains one detection and one instance task (Li et al. 2022a "
                         f"Table 4), got {', '.join(f'{n} ({type(t).__name__})' for n, t in tasks.items())}")
    return names[0]


def per_image_mean(values: Tensor, image: Tensor, images: int) -> Tensor:
    """The mean of ``values`` [N] over the rows of each image (``image`` [N]): [images], 0 for an image with none."""
    sums = values.new_zeros(images).index_add(0, image, values)
    counts = values.new_zeros(images).index_add(0, image, torch.ones_like(values))
    return sums / counts.clamp_min(1)


class MaskRCNN(nn.Module):
    def __init__(self, tasks: dict[str, Task], spec: MaskRCNNSpec) -> None:
        super().__init__()
        from torchvision.models.detection import MaskRCNN as TorchvisionMaskRCNN
        from torchvision.models.detection.mask_rcnn import MaskRCNNHeads, MaskRCNNPredictor
        from torchvision.models.detection.anchor_utils import AnchorGenerator
        from torchvision.models.detection.backbone_utils import resnet_fpn_backbone
        from torchvision.models.detection.faster_rcnn import FastRCNNPredictor, TwoMLPHead
        from torchvision.ops.misc import FrozenBatchNorm2d

        self.tasks = dict(tasks)
        self.detection, self.instance = task_of_output(tasks, Detection), task_of_output(tasks, Instance)
        classes = tasks[self.detection].channels
        if tasks[self.instance].channels != classes:
            raise ValueError(f"maskrcnn: tasks {self.detection} and {self.instance} must have the same "
                             f"classes, got {classes} and {tasks[self.instance].channels}")
        if tasks[self.instance].mask_size != MASK_SIDE:
            raise ValueError(f"maskrcnn predicts {MASK_SIDE} x {MASK_SIDE} masks; task {self.instance} "
                             f"has mask_size {tasks[self.instance].mask_size}")
        weights = spec.weights
        backbone = resnet_fpn_backbone(backbone_name=spec.backbone, weights=None,
                                       norm_layer=FrozenBatchNorm2d if weights else nn.BatchNorm2d,
                                       trainable_layers=spec.trainable_layers if weights else 5)
        if spec.fpn_channels != backbone.out_channels:
            narrowed(backbone, spec.fpn_channels)
        anchors = AnchorGenerator(tuple((size,) for size in spec.anchor_sizes),
                                  ((0.5, 1.0, 2.0),) * len(spec.anchor_sizes))
        box_head = TwoMLPHead(backbone.out_channels * ROI_SIDE ** 2, spec.representation_size)
        mask_channels = spec.mask_head_channels
        self.net = TorchvisionMaskRCNN(backbone, rpn_anchor_generator=anchors, box_head=box_head,
                                       box_predictor=FastRCNNPredictor(spec.representation_size, classes + 1),
                                       box_batch_size_per_image=spec.proposals_per_image,
                                       rpn_post_nms_top_n_test=spec.test_proposals,
                                       box_detections_per_img=spec.detections_per_image,
                                       # the predictor before the head: torchvision's order of initialisation
                                       mask_predictor=MaskRCNNPredictor(mask_channels, mask_channels, classes + 1),
                                       mask_head=MaskRCNNHeads(backbone.out_channels, [mask_channels] * 4, 1))
        self.net.transform = None  # images are standardised here and keep the dataset's size
        if weights:
            load_weights(self.net, Path(weights))
        self.register_buffer("mean", torch.tensor(MEAN).view(1, 3, 1, 1), persistent=False)
        self.register_buffer("std", torch.tensor(STD).view(1, 3, 1, 1), persistent=False)

    @property
    def heads(self) -> dict[str, nn.Module]:
        """Each task's own modules, which no other task's loss reaches."""
        heads = self.net.roi_heads
        return {self.detection: nn.ModuleList([self.net.rpn, heads.box_head, heads.box_predictor]),
                self.instance: nn.ModuleList([heads.mask_head, heads.mask_predictor])}

    def shared_parameters(self) -> list[nn.Parameter]:
        """The trainable backbone and FPN: what both tasks' losses reach (the RPN is detection's)."""
        return [p for p in self.net.backbone.parameters() if p.requires_grad]

    def last_shared_layer(self) -> nn.Parameter:
        """The FPN's output convolution of its finest level, which most proposals are pooled from."""
        return self.net.backbone.fpn.layer_blocks[0][0].weight

    def features(self, x: Tensor) -> OrderedDict[str, Tensor]:
        return self.net.backbone((x - self.mean) / self.std)

    def image_list(self, x: Tensor):
        from torchvision.models.detection.image_list import ImageList

        return ImageList(x, [tuple(x.shape[-2:])] * len(x))

    def forward(self, x: Tensor, return_feature: bool = False, feature_only: bool = False):
        """Detections [B, K, 6] and instances [B, K, 6 + 28 * 28] (the tasks' prediction formats), predicted in
        eval mode; the shared feature is the FPN's coarsest level."""
        features = self.features(x)
        feature = features["pool"]
        if feature_only:
            return feature
        if self.training:
            raise RuntimeError("maskrcnn predicts in eval mode; training computes its losses with "
                               "losses_per_image (its proposals are sampled from the ground truth)")
        images = self.image_list(x)
        proposals, _ = self.net.rpn(images, features)
        found, _ = self.net.roi_heads(features, proposals, images.image_sizes)
        preds = self.packed(found, x)
        return (preds, feature) if return_feature else preds

    def packed(self, found: list[dict[str, Tensor]], x: Tensor) -> dict[str, Tensor]:
        """torchvision's per-image detections as the tasks' padded tensors (a padding row has class -1)."""
        from torch.nn.utils.rnn import pad_sequence

        rows = [torch.cat([f["boxes"], f["scores"][:, None], (f["labels"] - 1)[:, None].float(),
                           f["masks"].flatten(1)], 1) for f in found]
        empty = x.new_full((1, MASK + MASK_SIDE ** 2), -1.0)
        packed = pad_sequence([torch.cat([r, empty]) for r in rows], batch_first=True, padding_value=-1.0)
        return {self.detection: packed[..., :MASK].contiguous(), self.instance: packed}

    def objects(self, targets: dict[str, Tensor]) -> list[dict[str, Tensor]]:
        """Per image, the objects the RPN and the heads sample against (torchvision's target dicts, classes from 1):
        the instance map's where the image has one, else the detection boxes."""
        instances, boxes = targets[self.instance], targets[self.detection]
        height, width = instances.shape[-2:]
        out = []
        for labelled, image_map, image_boxes in zip(labelled_images(instances).tolist(), instances, boxes):
            if labelled:
                masks, classes, extents = instances_of(image_map)
                out.append({"boxes": extents, "labels": classes + 1, "masks": masks})
            else:
                present = image_boxes[image_boxes[:, 4] >= 0]
                out.append({"boxes": present[:, :4].float(), "labels": present[:, 4].long() + 1,
                            "masks": image_map.new_zeros(()).expand(len(present), height, width)})
        return out

    def losses_per_image(self, x: Tensor, targets: dict[str, Tensor], rows: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each task's loss for the images ``rows[task]`` (device indices into the batch; a task absent from
        ``rows`` is not computed): detection = RPN objectness + RPN box + classifier + box regression, instance =
        the mask loss; torchvision's terms, reduced per image."""
        features = self.features(x)
        objects = self.objects(targets)
        images = self.image_list(x)
        proposals, rpn = self.rpn_losses(images, features, objects)
        sampled, matched, labels, regression = self.net.roi_heads.select_training_samples(proposals, objects)
        out = {}
        if self.detection in rows:
            out[self.detection] = (rpn + self.box_losses(features, images, sampled, labels, regression))[
                rows[self.detection]]
        if self.instance in rows:
            out[self.instance] = self.mask_losses(features, images, sampled, matched, labels, objects,
                                                  rows[self.instance])
        return out

    def rpn_losses(self, images, features: OrderedDict[str, Tensor],
                   objects: list[dict[str, Tensor]]) -> tuple[list[Tensor], Tensor]:
        """The RPN's proposals (as its forward makes them) and its two loss terms per image [B]."""
        from torchvision.models.detection.rpn import concat_box_prediction_layers

        rpn, batch = self.net.rpn, len(objects)
        levels = list(features.values())
        objectness, deltas = rpn.head(levels)
        anchors = rpn.anchor_generator(images, levels)
        per_level = [o[0].numel() for o in objectness]
        objectness, deltas = concat_box_prediction_layers(objectness, deltas)
        proposals = rpn.box_coder.decode(deltas.detach(), anchors).view(batch, -1, 4)
        boxes, _ = rpn.filter_proposals(proposals, objectness, images.image_sizes, per_level)
        labels, matched = rpn.assign_targets_to_anchors(anchors, objects)
        regression = torch.stack(rpn.box_coder.encode(matched, anchors))
        positive, negative = (torch.stack(m).bool() for m in rpn.fg_bg_sampler(labels))
        sampled = (positive | negative).float()
        count = sampled.sum(1).clamp_min(1)
        objectness_loss = F.binary_cross_entropy_with_logits(objectness.view(batch, -1), torch.stack(labels).clamp_min(0),
                                                             reduction="none")
        box_loss = F.smooth_l1_loss(deltas.view(batch, -1, 4), regression, beta=BOX_BETA, reduction="none").sum(-1)
        # where: an image without objects has infinite regression targets (torchvision encodes an empty box), which
        # only positives may reach, as torchvision's own loss indexes them
        box_loss = torch.where(positive, box_loss, 0.0)
        return boxes, ((objectness_loss * sampled).sum(1) + box_loss.sum(1)) / count

    def box_losses(self, features, images, sampled: list[Tensor], labels: list[Tensor],
                   regression: list[Tensor]) -> Tensor:
        """The box head's classification and class-box regression per image [B], over its sampled proposals."""
        heads = self.net.roi_heads
        pooled = heads.box_head(heads.box_roi_pool(features, sampled, images.image_sizes))
        class_logits, box_regression = heads.box_predictor(pooled)
        labels, regression = torch.cat(labels), torch.cat(regression)
        image = torch.repeat_interleave(torch.arange(len(sampled), device=labels.device),
                                        torch.tensor([len(s) for s in sampled], device=labels.device))
        rows = torch.arange(len(labels), device=labels.device)
        box_error = torch.where(labels > 0, F.smooth_l1_loss(box_regression.view(len(labels), -1, 4)[rows, labels],
                                                             regression, beta=BOX_BETA, reduction="none").sum(1), 0.0)
        return per_image_mean(F.cross_entropy(class_logits, labels, reduction="none") + box_error, image, len(sampled))

    def mask_losses(self, features, images, sampled: list[Tensor], matched: list[Tensor], labels: list[Tensor],
                    objects: list[dict[str, Tensor]], rows: Tensor) -> Tensor:
        """The mask head's loss for the images ``rows``: per positive proposal the mean binary cross-entropy of its
        class's 28 x 28 mask logits against its object's mask cropped to the proposal, averaged over the image's
        positives (0 for an image with none)."""
        from torchvision.models.detection.roi_heads import project_masks_on_boxes

        heads, batch = self.net.roi_heads, len(sampled)
        wanted = torch.zeros(batch, dtype=torch.bool).index_fill_(0, rows.cpu(), True).tolist()
        positive = [(l > 0) & w for l, w in zip(labels, wanted)]
        boxes = [s[p] for s, p in zip(sampled, positive)]
        logits = heads.mask_predictor(heads.mask_head(heads.mask_roi_pool(features, boxes, images.image_sizes)))
        side = logits.shape[-1]
        targets = torch.cat([project_masks_on_boxes(o["masks"], b, m[p], side)
                             for o, b, m, p in zip(objects, boxes, matched, positive)])
        classes = torch.cat([l[p] for l, p in zip(labels, positive)])
        error = F.binary_cross_entropy_with_logits(logits[torch.arange(len(classes), device=logits.device), classes],
                                                   targets, reduction="none").mean((1, 2))
        image = torch.repeat_interleave(torch.arange(batch, device=classes.device),
                                        torch.tensor([len(b) for b in boxes], device=classes.device))
        return (per_image_mean(error, image, batch) + 0 * logits.sum())[rows]  # connected even with no positive


def narrowed(backbone: nn.Module, channels: int) -> None:
    """torchvision's ResNet-FPN with an FPN of ``channels`` instead of its fixed 256 (a CPU suite's simplification)."""
    from torchvision.ops.feature_pyramid_network import FeaturePyramidNetwork, LastLevelMaxPool

    inputs = [block[0].in_channels for block in backbone.fpn.inner_blocks]
    backbone.fpn = FeaturePyramidNetwork(inputs, channels, extra_blocks=LastLevelMaxPool())
    backbone.out_channels = channels


def load_weights(net: nn.Module, path: Path) -> None:
    """A torchvision ResNet state dict into the backbone, or a torchvision Mask R-CNN one into the whole network
    (predictors whose shapes differ, i.e. another class count, keep their initialisation)."""
    if not path.is_file():
        raise ValueError(f"model.weights: {path} not found; give the path of a torchvision ResNet or Mask R-CNN "
                         f"state dict (mtlbench fetches nothing from a hub), or leave weights unset for a random "
                         f"initialisation")
    state = torch.load(path, map_location="cpu", weights_only=True)
    if any(key.startswith("backbone.") for key in state):
        own = net.state_dict()
        net.load_state_dict({k: v for k, v in state.items() if k in own and own[k].shape == v.shape}, strict=False)
    else:
        net.backbone.body.load_state_dict({k: v for k, v in state.items() if not k.startswith("fc.")})


@MODELS.register("maskrcnn")
@dataclass(frozen=True)
class MaskRCNNSpec:
    """Parameters of the ``maskrcnn`` model (Li et al. 2022a Table 4: ResNet-50)."""

    backbone: Literal["resnet50", "resnet18", "resnet34", "resnet101"] = "resnet50"  # resnet18: CPU suites
    weights: str | None = None
    trainable_layers: int = 3  # with weights: the ResNet stages that train (torchvision's default); all without
    anchor_sizes: tuple[int, ...] = (32, 64, 128, 256, 512)  # one per FPN level (torchvision's)
    proposals_per_image: int = 512  # the box head's sampled proposals per training image (torchvision's)
    representation_size: int = 1024  # the box head's two fully connected layers (torchvision's)
    fpn_channels: int = 256  # the FPN's width, fixed in torchvision (CPU suites: 64)
    mask_head_channels: int = 256  # the mask head's four 3x3 convolutions and its predictor (torchvision's)
    test_proposals: int = 1000  # the RPN's proposals kept per image after NMS when predicting (torchvision's)
    detections_per_image: int = 100  # the most detections kept per image when predicting (torchvision's, COCO's)
    input_multiple: ClassVar[int] = 32  # the FPN's coarsest level
    outputs: ClassVar[tuple[str, ...]] = ("anchors", "instances")

    def __post_init__(self) -> None:
        require("trainable_layers", self.trainable_layers, 0 <= self.trainable_layers <= 5, "must be 0 to 5")
        for name in ("proposals_per_image", "representation_size", "fpn_channels", "mask_head_channels", "test_proposals",
                     "detections_per_image"):
            require(name, getattr(self, name), getattr(self, name) >= 1, "must be >= 1")
        require("anchor_sizes", self.anchor_sizes, len(self.anchor_sizes) == 5 and min(self.anchor_sizes) > 0,
                "one positive size per FPN level (5)")

    def build(self, tasks: dict[str, Task]) -> nn.Module:
        return MaskRCNN(tasks, self)


TORCHVISION_DEFAULTS = {"fpn_channels": 256, "mask_head_channels": 256, "test_proposals": 1000, "detections_per_image": 100}


@spelt_as_before
def maskrcnn_head_defaults(config: dict) -> dict:
    """The mask head's width and the prediction limits came after the first Mask R-CNN suites; at torchvision's
    values they build and score the network as before: hashed as absent."""
    model = config.get("model", {})
    if model.get("name") == "maskrcnn":
        for key, default in TORCHVISION_DEFAULTS.items():
            if model.get(key) == default:
                del model[key]
    return config
