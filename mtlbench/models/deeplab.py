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
- ``decoder: "v3+_amtl"``: the DeepLabV3+ of Yun and Cho 2023's code (models/DeepLab.py, Tables 2-3): the ASPP
  output upsampled to the backbone's stride-8 features (ResNet-50's second stage, 512 channels), which a 1x1
  conv + BN + ReLU projects to 48 channels, concatenated, then per task conv3x3(256) + BN + ReLU and the 1x1
  classifier. With ``head: shared_aspp`` the ASPP and the projection are shared (their ``MultiTaskSharedHead``
  with a skip connection), with ``per_task`` each task has both.
- ``backbone`` (Yun and Cho 2023 Table 3, their nn/backbones): ``resnet50`` (above), or torchvision's
  ``mobilenet_v2`` or ``efficientnet_v2_s`` undilated (output stride 32, ASPP rates 6/12/18 as their code sets
  for it), the last stage's output into the ASPP (MobileNetV2: features[18], 1280 channels; EfficientNetV2-S:
  features[6], 256 channels, its final 1x1 convolution left out) and the stride-8 features as the skip
  (features[6], 32 channels; features[3], 64 channels). EfficientNetV2-S keeps torchvision's stochastic depth
  (0.2), as their subclass of it does.
- Weights: ``weights=None`` (random init, no download). ``weights=PATH`` loads a local torchvision ResNet-50
  state dict (e.g. ``resnet50-11ad3fa6.pth``; its ``fc`` entries are dropped), or of the chosen backbone
  (``mobilenet_v2-7ebf99e0.pth``, ``efficientnet_v2_s-dd5fe13b.pth``; their classifiers dropped). ``input_norm: imagenet``
  standardises the [0, 1] images with ImageNet's mean and standard deviation first, as pretrained weights expect
  (Yun and Cho 2023's code normalises so, core/data/augmentations/transforms.py).

Training leaves out an epoch's last batch if it holds a single image (``min_batch``): ASPP's image-pooling
branch batch-normalises a 1x1 map, which one image cannot. ``forward(x, return_feature=True)`` also returns
the backbone's output (ResNet-50: 2048 x H/8 x W/8; with ``task_norm``, that of the first task's pass).
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
SKIP_CHANNELS = 48  # Yun and Cho 2023's --skip_connection 48


@dataclass(frozen=True)
class BackboneLayout:
    """How a backbone's stages are cut: the channels of its output and of its stride-8 stage (``skip_stage``,
    the index into ``stages``), its output stride, and the ASPP rates for it."""

    channels: int
    skip_channels: int
    skip_stage: int
    output_stride: int
    rates: tuple[int, int, int]


LAYOUTS = {"resnet50": BackboneLayout(BACKBONE_CHANNELS, 512, 1, 8, ATROUS_RATES),
           "mobilenet_v2": BackboneLayout(1280, 32, 0, 32, (6, 12, 18)),
           "efficientnet_v2_s": BackboneLayout(256, 64, 0, 32, (6, 12, 18))}


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


CLASSIFIERS = {"resnet50": "fc.", "mobilenet_v2": "classifier.", "efficientnet_v2_s": "classifier."}
NAMES = {"resnet50": "ResNet-50", "mobilenet_v2": "MobileNetV2", "efficientnet_v2_s": "EfficientNetV2-S"}


def load_resnet_weights(backbone: nn.Module, path: str, name: str = "resnet50") -> None:
    """A local torchvision state dict of the ``name`` backbone into ``backbone`` (its classifier left out)."""
    file, classifier = Path(path), CLASSIFIERS[name]
    if not file.is_file():
        raise ValueError(f"model.weights: {file} not found; give the path of a torchvision {NAMES[name]} state dict "
                         f"(e.g. resnet50-11ad3fa6.pth), or leave weights unset for a random initialisation")
    state = torch.load(file, map_location="cpu", weights_only=True)
    state = {k: v for k, v in state.items() if not k.startswith(classifier)}
    try:
        missing, unexpected = backbone.load_state_dict(state, strict=False)
    except RuntimeError as error:  # a tensor of another shape
        raise ValueError(f"model.weights: {file} is not a torchvision {NAMES[name]} state dict "
                         f"({str(error).splitlines()[-1].strip()})") from None
    missing = [k for k in missing if not k.startswith(classifier)]  # the classifier is not part of the backbone
    if missing or unexpected:
        raise ValueError(f"model.weights: {file} is not a torchvision {NAMES[name]} state dict (missing "
                         f"{missing[:3]}, unexpected {unexpected[:3]})")


def backbone_stages(name: str, weights: str | None) -> tuple[nn.Module, nn.ModuleList]:
    """The stem and the stages of a backbone (``LAYOUTS`` says which stage ends at stride 8)."""
    from torchvision import models

    if name == "resnet50":
        resnet = models.resnet50(weights=None, replace_stride_with_dilation=[False, True, True])
        if weights is not None:
            load_resnet_weights(resnet, weights)
        return (nn.Sequential(resnet.conv1, resnet.bn1, resnet.relu, resnet.maxpool),
                nn.ModuleList([resnet.layer1, resnet.layer2, resnet.layer3, resnet.layer4]))
    net = getattr(models, name)(weights=None)
    if weights is not None:
        load_resnet_weights(net, weights, name)
    features = net.features
    if name == "mobilenet_v2":  # features[6] ends at stride 8, features[18] (1280 channels) is the output
        return features[0], nn.ModuleList([features[1:7], features[7:19]])
    return features[0], nn.ModuleList([features[1:4], features[4:7]])  # efficientnet_v2_s: [3] stride 8, [7] left out


class SkipProjection(nn.Sequential):
    """Yun and Cho 2023's skip connection: the stride-8 features to 48 channels (1x1 conv + BN + ReLU)."""

    def __init__(self, channels: int) -> None:
        super().__init__(*conv_bn_relu(channels, SKIP_CHANNELS, 1))


def with_skip(context: Tensor, skip: Tensor, project: nn.Module) -> Tensor:
    """The ASPP output upsampled to the skip's size, concatenated with the projected skip."""
    context = F.interpolate(context, size=skip.shape[-2:], mode="bilinear", align_corners=False)
    return torch.cat([context, project(skip)], 1)


class AMTLPlusHead(nn.Module):
    """A task's own DeepLabV3+ of Yun and Cho 2023's code (``DeepLabV3PlusHead``): ASPP, the skip projection,
    conv3x3(256) + BN + ReLU and the 1x1 classifier, at stride 8."""

    def __init__(self, layout: "BackboneLayout", channels: int) -> None:
        from torchvision.models.segmentation.deeplabv3 import ASPP

        super().__init__()
        self.aspp = ASPP(layout.channels, layout.rates, HEAD_CHANNELS)
        self.project = SkipProjection(layout.skip_channels)
        self.predictor = shared_aspp_head(channels, HEAD_CHANNELS + SKIP_CHANNELS)

    def forward(self, feature: Tensor, skip: Tensor) -> Tensor:
        return self.predictor(with_skip(self.aspp(feature), skip, self.project))


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


def image_level_head(channels: int, backbone_channels: int = BACKBONE_CHANNELS) -> nn.Sequential:
    return nn.Sequential(*conv_bn_relu(backbone_channels, HEAD_CHANNELS, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                         nn.Linear(HEAD_CHANNELS, channels))


IMAGENET_MEAN, IMAGENET_STD = (0.485, 0.456, 0.406), (0.229, 0.224, 0.225)


def shared_aspp_head(channels: int, inputs: int = HEAD_CHANNELS) -> nn.Sequential:
    """A task's part of the shared-ASPP head: conv3x3(256) + BN + ReLU, then the 1x1 classifier (``inputs``: 256,
    or 256 + 48 with the skip of ``v3+_amtl``)."""
    return nn.Sequential(*conv_bn_relu(inputs, HEAD_CHANNELS, 3), nn.Conv2d(HEAD_CHANNELS, channels, 1))


class DeepLabResNet50(nn.Module):
    def __init__(self, tasks: dict[str, Task], decoder: Literal["v3", "v3+", "v3+_amtl"] = "v3",
                 weights: str | None = None, task_norm: bool = False,
                 head: Literal["per_task", "shared_aspp"] = "per_task",
                 input_norm: Literal["none", "imagenet"] = "none",
                 backbone: Literal["resnet50", "mobilenet_v2", "efficientnet_v2_s"] = "resnet50") -> None:
        # torchvision is imported when a DeepLab is built, so that `import mtlbench` needs only torch and numpy
        from torchvision.models.segmentation.deeplabv3 import ASPP, DeepLabHead

        super().__init__()
        layout = self.layout = LAYOUTS[backbone]
        self.stem, self.stages = backbone_stages(backbone, weights)
        self.tasks, self.decoder = dict(tasks), decoder
        self.task_norm = task_norm
        if task_norm:
            task_specific_norms(self.stem, list(tasks))
            task_specific_norms(self.stages, list(tasks))

        self.aspp = ASPP(layout.channels, layout.rates, HEAD_CHANNELS) if head == "shared_aspp" else None
        self.skip = SkipProjection(layout.skip_channels) if head == "shared_aspp" and decoder == "v3+_amtl" else None
        if input_norm == "imagenet":
            self.register_buffer("mean", torch.tensor(IMAGENET_MEAN).view(1, 3, 1, 1))
            self.register_buffer("std", torch.tensor(IMAGENET_STD).view(1, 3, 1, 1))
        self.input_norm = input_norm

        def task_head(task: Task) -> nn.Module:
            if task.output == "image":
                return image_level_head(task.channels, layout.channels)
            if task.output != "map":
                raise ValueError(f"deeplab has no head for task {task.name}'s output {task.output!r}")
            if self.aspp is not None:
                return shared_aspp_head(task.channels, HEAD_CHANNELS + (SKIP_CHANNELS if self.skip else 0))
            if decoder == "v3+_amtl":
                return AMTLPlusHead(layout, task.channels)
            return DeepLabV3PlusHead(task.channels) if decoder == "v3+" else DeepLabHead(layout.channels,
                                                                                         task.channels, layout.rates)
        self.heads = nn.ModuleDict({name: task_head(task) for name, task in tasks.items()})

    def shared_parameters(self) -> list[nn.Parameter]:
        """The parameters every task's loss reaches: the backbone's (task-specific BatchNorms excluded) and a
        shared ASPP's."""
        task_specific = {id(p) for m in self.modules() if isinstance(m, TaskBatchNorm) for p in m.parameters()}
        shared = [*self.stem.parameters(), *self.stages.parameters(),
                  *(self.aspp.parameters() if self.aspp is not None else ()),
                  *(self.skip.parameters() if self.skip is not None else ())]
        return [p for p in shared if id(p) not in task_specific]

    def last_shared_layer(self) -> nn.Parameter:
        """Where GradNorm measures task gradients: the shared ASPP's projection, else the last convolution of
        the backbone (ResNet-50: of the last residual block)."""
        if self.aspp is not None:
            return self.aspp.project[0].weight
        return [m for m in self.stages[-1].modules() if isinstance(m, nn.Conv2d)][-1].weight

    def backbone(self, x: Tensor) -> tuple[Tensor, Tensor]:
        """(the backbone's output, the low-level features: ResNet-50's stride-4 first stage for ``v3+``, the
        stride-8 stage for ``v3+_amtl``)."""
        feature, low_level = self.stem(x), None
        keep = self.layout.skip_stage if self.decoder == "v3+_amtl" else 0
        for i, stage in enumerate(self.stages):
            feature = stage(feature)
            if i == keep:
                low_level = feature
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
            raw = head(with_skip(context, low_level, self.skip) if self.skip is not None else context)
        else:
            raw = head(feature, low_level) if self.decoder in ("v3+", "v3+_amtl") else head(feature)
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
    """Parameters of the ``deeplab_resnet50`` model (Sun et al. 2023 App. B; Yun and Cho 2023 Tables 1-3 through
    ``head``, ``decoder`` and ``backbone``)."""

    decoder: Literal["v3", "v3+", "v3+_amtl"] = "v3"
    weights: str | None = None
    task_norm: bool = False
    head: Literal["per_task", "shared_aspp"] = "per_task"
    input_norm: Literal["none", "imagenet"] = "none"
    backbone: Literal["resnet50", "mobilenet_v2", "efficientnet_v2_s"] = "resnet50"
    min_batch: ClassVar[int] = 2  # ASPP's image-pooling branch batch-normalises a 1x1 map: one image cannot

    def __post_init__(self) -> None:
        require("head", self.head, self.head == "per_task" or self.decoder != "v3+",
                "a shared ASPP takes decoder v3 (Yun and Cho 2023 Table 1) or v3+_amtl (Table 2)")
        require("decoder", self.decoder, self.decoder != "v3+" or self.backbone == "resnet50",
                "v3+ reads ResNet-50's stride-4 stage; use v3+_amtl (the stride-8 skip of Yun and Cho 2023's code)")

    @property
    def input_multiple(self) -> int:
        """The backbone's output stride: image sides must be multiples of it."""
        return LAYOUTS[self.backbone].output_stride

    def build(self, tasks: dict[str, Task]) -> nn.Module:
        return DeepLabResNet50(tasks, self.decoder, self.weights, self.task_norm, self.head, self.input_norm,
                               self.backbone)


@spelt_as_before
def deeplab_head_default(config: dict) -> dict:
    """``head`` and ``input_norm`` came with 0.3, ``backbone`` later in 0.3; their defaults build the network as
    before: hashed as absent."""
    model = config.get("model", {})
    if model.get("name") == "deeplab_resnet50":
        for key, default in (("head", "per_task"), ("input_norm", "none"), ("backbone", "resnet50")):
            if model.get(key) == default:
                del model[key]
    return config
