"""DeepLab-ResNet-50 as Sun et al. 2023 (TABA) shares it among tasks: App. B and Sec. 5.1.

- Backbone: torchvision's ResNet-50 with dilated convolutions, strides [1, 2, 1, 1] and dilations [1, 1, 2, 4]
  for the four residual stages (App. B), i.e. ``replace_stride_with_dilation=[False, True, True]``: output
  stride 8, 2048 channels. torchvision starts a dilated stage's first block at the previous dilation, as its
  own DeepLabV3 does.
- Dense tasks: an ASPP head each (DeepLabV3, rates 12/24/36 for output stride 8: torchvision's
  ``DeepLabHead``), logits bilinearly upsampled to the input size. ``decoder="v3+"`` adds DeepLabV3+'s
  decoder instead: the head's ASPP output upsampled to the stride-4 features of the first stage (projected to
  48 channels), concatenated, two 3x3 convolutions of 256 channels, then the 1x1 classifier.
- Image-level tasks (``cls``): "a convolution layer followed by a fully connected layer" (App. B). The paper
  gives no widths; ours is conv3x3(2048 -> 256) + BN + ReLU, global average pooling, linear.
- ``task_norm``: task-specific BatchNorm layers in the backbone (Sec. 5.1, after [66, 27, 52]): every task
  runs the backbone with BatchNorm statistics and affine parameters of its own (one backbone pass per task),
  sharing every convolution.
- ``head: shared_aspp``: one ASPP shared by the dense tasks, then per task conv3x3(256) + BN + ReLU and the 1x1
  classifier, the "shared ASPP" DeepLabV3 of Yun and Cho 2023 (Tables 1-2; their code's ``MultiTaskSharedHead``
  with ``--shared_head True``); the ASPP then belongs to the shared parameters and its projection is the last
  shared layer (where their code measures task gradients). The default ``per_task`` gives each task the whole
  DeepLabV3 head (Sun et al. 2023; Yun and Cho 2023 Table 2's "individual ASPP").
- Weights: ``weights=None`` (random init, no download). ``weights=PATH`` loads a local torchvision ResNet-50
  state dict (e.g. ``resnet50-11ad3fa6.pth``; its ``fc`` entries are dropped). ``input_norm: imagenet``
  standardises the [0, 1] images with ImageNet's mean and standard deviation first, as pretrained weights expect
  (Yun and Cho 2023's code normalises so, core/data/augmentations/transforms.py).

Training leaves out an epoch's last batch if it holds a single image (``min_batch``): ASPP's image-pooling
branch batch-normalises a 1x1 map, which one image cannot. ``forward(x, return_feature=True)`` also returns
the backbone's output (2048 x H/8 x W/8; with ``task_norm``, that of the first task's pass).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..ids import spelt_as_before
from ..registry import require
from ..tasks import Task
from .registry import MODELS

BACKBONE_CHANNELS = 2048
LOW_LEVEL_CHANNELS = 256  # output of the first residual stage (stride 4), DeepLabV3+'s skip
ATROUS_RATES = (12, 24, 36)  # DeepLabV3 at output stride 8
HEAD_CHANNELS = 256


class TaskBatchNorm(nn.Module):
    """One BatchNorm per task; ``active`` (set by the model before each task's pass) picks which runs."""

    def __init__(self, template: nn.BatchNorm2d, tasks: list[str]) -> None:
        super().__init__()
        self.norms = nn.ModuleDict()
        for task in tasks:
            norm = nn.BatchNorm2d(template.num_features, template.eps, template.momentum)
            norm.load_state_dict(template.state_dict())
            self.norms[task] = norm
        self.active = tasks[0]

    def forward(self, x: Tensor) -> Tensor:
        return self.norms[self.active](x)


def task_specific_norms(module: nn.Module, tasks: list[str]) -> None:
    """Replace every BatchNorm2d under ``module`` by a TaskBatchNorm that starts from its parameters."""
    for name, child in module.named_children():
        if isinstance(child, nn.BatchNorm2d):
            setattr(module, name, TaskBatchNorm(child, tasks))
        else:
            task_specific_norms(child, tasks)


def load_resnet_weights(backbone: nn.Module, path: str) -> None:
    file = Path(path)
    if not file.is_file():
        raise ValueError(f"model.weights: {file} not found; give the path of a torchvision ResNet-50 state dict "
                         f"(e.g. resnet50-11ad3fa6.pth), or leave weights unset for a random initialisation")
    state = torch.load(file, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith("fc.")}
    missing, unexpected = backbone.load_state_dict(state, strict=False)
    missing = [k for k in missing if not k.startswith("fc.")]  # the classifier is not part of the backbone
    if missing or unexpected:
        raise ValueError(f"model.weights: {file} is not a torchvision ResNet-50 state dict (missing "
                         f"{missing[:3]}, unexpected {unexpected[:3]})")


def conv_bn_relu(c_in: int, c_out: int, kernel: int) -> list[nn.Module]:
    return [nn.Conv2d(c_in, c_out, kernel, padding=kernel // 2, bias=False), nn.BatchNorm2d(c_out), nn.ReLU()]


class DeepLabV3PlusHead(nn.Module):
    """ASPP, then DeepLabV3+'s decoder over the stride-4 features."""

    def __init__(self, channels: int) -> None:
        from torchvision.models.segmentation.deeplabv3 import ASPP

        super().__init__()
        self.aspp = ASPP(BACKBONE_CHANNELS, ATROUS_RATES, HEAD_CHANNELS)
        self.project = nn.Sequential(*conv_bn_relu(LOW_LEVEL_CHANNELS, 48, 1))
        self.fuse = nn.Sequential(*conv_bn_relu(HEAD_CHANNELS + 48, HEAD_CHANNELS, 3),
                                  *conv_bn_relu(HEAD_CHANNELS, HEAD_CHANNELS, 3),
                                  nn.Conv2d(HEAD_CHANNELS, channels, 1))

    def forward(self, feature: Tensor, low_level: Tensor) -> Tensor:
        context = F.interpolate(self.aspp(feature), size=low_level.shape[-2:], mode="bilinear", align_corners=False)
        return self.fuse(torch.cat([context, self.project(low_level)], 1))


def image_level_head(channels: int) -> nn.Sequential:
    return nn.Sequential(*conv_bn_relu(BACKBONE_CHANNELS, HEAD_CHANNELS, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(HEAD_CHANNELS, channels))


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def shared_aspp_head(channels: int) -> nn.Sequential:
    """A task's part of the shared-ASPP head: conv3x3(256) + BN + ReLU, then the 1x1 classifier."""
    return nn.Sequential(*conv_bn_relu(HEAD_CHANNELS, HEAD_CHANNELS, 3), nn.Conv2d(HEAD_CHANNELS, channels, 1))


class DeepLabResNet50(nn.Module):
    def __init__(self, tasks: dict[str, Task], decoder: Literal["v3", "v3+"] = "v3", weights: str | None = None,
                 task_norm: bool = False, head: Literal["per_task", "shared_aspp"] = "per_task",
                 input_norm: Literal["none", "imagenet"] = "none") -> None:
        # torchvision is imported when a DeepLab is built, so that `import mtlbench` needs only torch and numpy
        from torchvision.models import resnet50
        from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabHead

        super().__init__()
        resnet = resnet50(weights=None, replace_stride_with_dilation=[False, True, True])
        if weights is not None:
            load_resnet_weights(resnet, weights)
        self.stem = nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool)
        self.stages = nn.ModuleList([resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4])
        self.tasks, self.decoder = dict(tasks), decoder
        self.task_norm = task_norm
        if task_norm:
            task_specific_norms(self.stem, list(tasks))
            task_specific_norms(self.stages, list(tasks))

        self.aspp = ASPP(BACKBONE_CHANNELS, ATROUS_RATES, HEAD_CHANNELS) if head == "shared_aspp" else None
        if input_norm == "imagenet":
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.input_norm = input_norm

        def task_head(task: Task) -> nn.Module:
            if task.output == "image":
                return image_level_head(task.channels)
            if task.output != "map":
                raise ValueError(f"deeplab has no head for task {task.name}'s output {task.output!r}")
            if self.aspp is not None:
                return shared_aspp_head(task.channels)
            return DeepLabV3PlusHead(task.channels) if decoder == "v3+" else DeepLabHead(BACKBONE_CHANNELS,
                                                                                         task.channels, ATROUS_RATES)
        self.heads = nn.ModuleDict({name: task_head(task) for name, task in tasks.items()})

    def shared_parameters(self) -> list[nn.Parameter]:
        """The parameters every task's loss reaches: the backbone's (task-specific BatchNorms excluded) and a
        shared ASPP's."""
        task_specific = {id(p) for m in self.modules() if isinstance(m, TaskBatchNorm) for p in m.parameters()}
        shared = [*self.stem.parameters(), *self.stages.parameters(),
                  *(self.aspp.parameters() if self.aspp is not None else ())]
        return [p for p in shared if id(p) not in task_specific]

    def last_shared_layer(self) -> nn.Parameter:
        """Where GradNorm measures task gradients: the shared ASPP's projection, else the last convolution of
        the last residual block."""
        if self.aspp is not None:
            return self.aspp.project[0].weight
        return self.stages[-1][-1].conv3.weight

    def backbone(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(stride-8 feature, stride-4 feature of the first stage)."""
        low_level = self.stages[0](self.stem(x))
        feature = low_level
        for stage in self.stages[1:]:
            feature = stage(feature)
        return feature, low_level

    def use_norms_of(self, task: str) -> None:
        for m in self.modules():
            if isinstance(m, TaskBatchNorm):
                m.active = task

    def predict(self, name: str, feature: Tensor, low_level: Tensor, context: Tensor | None,
                size: torch.Size) -> Tensor:
        """A task's prediction; ``context``: the shared ASPP's output (None without one)."""
        task, head = self.tasks[name], self.heads[name]
        if task.output == "image":
            return task.postprocess(head(feature))
        if context is not None:
            raw = head(context)
        else:
            raw = head(feature, low_level) if self.decoder == "v3+" else head(feature)
        return task.postprocess(F.interpolate(raw, size=size, mode="bilinear", align_corners=False))

    def predict_all(self, names: list[str], feature: Tensor, low_level: Tensor, size: torch.Size) -> dict[str, Tensor]:
        context = self.aspp(feature) if self.aspp is not None else None
        return {name: self.predict(name, feature, low_level, context, size) for name in names}

    def forward(self, x: Tensor, return_feature: bool = False, feature_only: bool = False):
        if self.input_norm == "imagenet":
            x = (x - self.mean) / self.std
        if not self.task_norm:
            feature, low_level = self.backbone(x)
            if feature_only:
                return feature
            preds = self.predict_all(list(self.tasks), feature, low_level, x.shape[-2:])
            return (preds, feature) if return_feature else preds
        preds, first = {}, None
        for name in self.tasks:
            self.use_norms_of(name)
            feature, low_level = self.backbone(x)
            first = feature if first is None else first
            if feature_only:
                return first
            preds.update(self.predict_all([name], feature, low_level, x.shape[-2:]))
        return (preds, first) if return_feature else preds


@MODELS.register("deeplab_resnet50")
@dataclass(frozen=True)
class DeepLabSpec:
    """Parameters of the ``deeplab_resnet50`` backbone (Sun et al. 2023 App. B)."""

    decoder: Literal["v3", "v3+"] = "v3"
    weights: str | None = None
    task_norm: bool = False
    head: Literal["per_task", "shared_aspp"] = "per_task"
    input_norm: Literal["none", "imagenet"] = "none"
    input_multiple: ClassVar[int] = 8  # output stride
    min_batch: ClassVar[int] = 2  # ASPP's image-pooling branch batch-normalises a 1x1 map: one image cannot

    def __post_init__(self) -> None:
        require("head", self.head, self.head == "per_task" or self.decoder == "v3",
                "shared_aspp is the DeepLabV3 head (Yun and Cho 2023 Table 1); use decoder: v3")

    def build(self, tasks: dict[str, Task]) -> nn.Module:
        return DeepLabResNet50(tasks, self.decoder, self.weights, self.task_norm, self.head, self.input_norm)


@spelt_as_before
def deeplab_head_default(config: dict) -> dict:
    """``head`` and ``input_norm`` came with 0.3; their defaults build the network as before: hashed as absent."""
    model = config.get("model", {})
    if model.get("name") == "deeplab_resnet50":
        if model.get("head") == "per_task":
            del model["head"]
        if model.get("input_norm") == "none":
            del model["input_norm"]
    return config
