"""The multi-task network of Yun and Cho 2023 Sec. 4.2.2 and Table 7 (their code's ``VMM``, "vision multi-task
model"): a backbone's features at strides 8, 16 and 32, a feature pyramid shared by every task, a detection head
on the pyramid and dense heads that read all its levels.

- **Backbones** (their Table 3): torchvision's ResNet-50, MobileNetV2 and EfficientNetV2-S (the paper's choice for
  Table 7), cut where their code cuts them (``nn/backbones``: EfficientNetV2-S after stages 3, 5 and 6 of
  ``features``; MobileNetV2 after blocks 6, 13 and 17; ResNet-50 after layers 2, 3 and 4 at strides 8-32, where their
  code dilates ResNet's last stages: a simplification for a detection pyramid). Weights: none, or a local
  torchvision state dict of the backbone (mtlbench fetches nothing).
- **Pyramid**: effdet's BiFPN (EfficientDet, Tan et al. 2020), ``fpn_channels`` wide and ``fpn_repeats`` deep,
  adding the levels above 5 up to the detection task's highest anchor level by downsampling (their code: its own
  "TRIV2-BiFPN", 64 channels, 2 stacks, on levels 3-6; effdet's BiFPN is the issue's choice, a named difference). It is
  shared: its last weight is the last shared layer, as their ``get_last_shared_params``.
- **Detection**: EfficientDet's class and box nets on the pyramid (``models/efficientdet.py``), the task's anchors
  from level 3 up.
- **Dense tasks**: every pyramid level upsampled to level 3 and concatenated, conv3x3 + BN + ReLU6, conv1x1 to the
  task's channels, upsampled to the image (their code: a depthwise-separable and an MBConv block in place of the two
  convolutions, a simplification); normals are L2-normalised. **Image-level tasks**: pooling of the coarsest level
  and a linear layer.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar, Literal

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import require
from ..tasks import Detection, Task
from .efficientdet import DetectionNets, effdet, effdet_config
from .registry import MODELS

LOWEST_LEVEL = 3  # the backbones give strides 8, 16 and 32
BACKBONE_LEVELS = 3
# torchvision builder, where its features are cut (the outputs of these modules), their channels
BACKBONES = {
    "efficientnet_v2_s": ("efficientnet_v2_s", ("features.3", "features.5", "features.6"), (64, 160, 256)),
    "mobilenet_v2": ("mobilenet_v2", ("features.6", "features.13", "features.17"), (32, 96, 320)),
    "resnet50": ("resnet50", ("layer2", "layer3", "layer4"), (512, 1024, 2048)),
}


def backbone_features(name: str, weights: str | None) -> nn.Module:
    """The torchvision backbone as a module returning its three cut points' features."""
    import torchvision.models
    from torchvision.models.feature_extraction import create_feature_extractor

    builder, nodes, _ = BACKBONES[name]
    network = getattr(torchvision.models, builder)()
    if weights:
        path = Path(weights)
        if not path.is_file():
            raise ValueError(f"model.weights: {path} not found; give the path of a torchvision {name} state dict "
                             f"(mtlbench fetches nothing from a hub), or leave weights unset")
        network.load_state_dict(torch.load(path, map_location="cpu", weights_only=True))
    return create_feature_extractor(network, {node: str(k) for k, node in enumerate(nodes)})


class DenseHead(nn.Module):
    """Every pyramid level at level 3's size, concatenated, two convolutions, upsampled to the image."""

    def __init__(self, task: Task, channels: int, levels: int) -> None:
        super().__init__()
        self.task = task
        self.fuse = nn.Sequential(nn.Conv2d(channels * levels, channels, 3, padding=1, bias=False),
                                  nn.BatchNorm2d(channels), nn.ReLU6(inplace=True))
        self.predict = nn.Conv2d(channels, task.channels, 1)

    def forward(self, levels: list[Tensor], size: torch.Size) -> Tensor:
        first = levels[0].shape[-2:]
        fused = torch.cat([levels[0], *(F.interpolate(x, size=first, mode="bilinear", align_corners=False)
                                        for x in levels[1:])], 1)
        raw = F.interpolate(self.predict(self.fuse(fused)), size=size, mode="bilinear", align_corners=False)
        return self.task.postprocess(raw)


class PyramidNet(nn.Module):
    def __init__(self, tasks: dict[str, Task], backbone: str, weights: str | None, fpn_channels: int,
                 fpn_repeats: int, image_size: tuple[int, int]) -> None:
        super().__init__()
        self.tasks, self.image_size = dict(tasks), tuple(image_size)
        detections = [t for t in tasks.values() if isinstance(t, Detection)]
        for task in detections:
            if task.anchors.min_level != LOWEST_LEVEL:
                raise ValueError(f"task {task.name}: the pyramid starts at level {LOWEST_LEVEL} (stride 8); set its "
                                 f"anchors' min_level to {LOWEST_LEVEL}, got {task.anchors.min_level}")
        top = max([t.anchors.max_level for t in detections], default=LOWEST_LEVEL + BACKBONE_LEVELS)
        self.levels = top - LOWEST_LEVEL + 1
        self.body = backbone_features(backbone, weights)
        config = effdet_config(detections[0] if detections else Detection("pyramid", 1), image_size, fpn_channels,
                               fpn_repeats, LOWEST_LEVEL, top)
        self.fpn = effdet().efficientdet.BiFpn(config, [dict(num_chs=c, reduction=2 ** level) for level, c in
                                                        enumerate(BACKBONES[backbone][2], LOWEST_LEVEL)])
        for name, module in self.fpn.named_modules():
            effdet().efficientdet._init_weight(module, name)
        self.heads = nn.ModuleDict({name: self.head(task, fpn_channels) for name, task in tasks.items()})

    def head(self, task: Task, channels: int) -> nn.Module:
        if task.output == "map":
            return DenseHead(task, channels, self.levels)
        if task.output == "image":
            return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(channels, task.channels))
        if task.output == "anchors":
            return DetectionNets(task, channels)
        raise ValueError(f"pyramid has no head for task {task.name}'s output {task.output!r}")

    def shared_parameters(self) -> list[nn.Parameter]:
        return [*self.body.parameters(), *self.fpn.parameters()]

    def last_shared_layer(self) -> nn.Parameter:
        """The pyramid's last convolution weight (Yun and Cho's ``get_last_shared_params``)."""
        return [p for name, p in self.fpn.named_parameters() if name.endswith("weight") and p.dim() == 4][-1]

    def forward(self, x: Tensor, return_feature: bool = False, feature_only: bool = False):
        if tuple(x.shape[-2:]) != self.image_size:
            raise ValueError(f"pyramid was built for {self.image_size[0]} x {self.image_size[1]} images (BiFPN's "
                             f"resampling is), got {tuple(x.shape[-2:])}")
        levels = self.fpn(list(self.body(x).values()))
        if feature_only:
            return levels[-1]
        preds = {}
        for name, task in self.tasks.items():
            head = self.heads[name]
            if task.output == "map":
                preds[name] = head(levels, x.shape[-2:])
            elif task.output == "image":
                preds[name] = head(levels[-1])
            else:
                low = task.anchors.min_level - LOWEST_LEVEL
                preds[name] = head(levels[low:low + task.anchors.max_level - task.anchors.min_level + 1])
        return (preds, levels[-1]) if return_feature else preds


@MODELS.register("pyramid")
@dataclass(frozen=True)
class PyramidSpec:
    """Parameters of the ``pyramid`` model (Yun and Cho 2023 Table 7's network: EfficientNetV2-S, BiFPN, heads)."""

    backbone: Literal["efficientnet_v2_s", "mobilenet_v2", "resnet50"] = "efficientnet_v2_s"
    weights: str | None = None
    fpn_channels: int = 64  # their code's normal_size; EfficientDet-D0's width
    fpn_repeats: int = 2  # their code's two stacked pyramids
    height: int | None = None  # the images' size, which BiFPN's resampling is built for (Table 7: 640 x 640);
    width: int | None = None  # default: the detection task's (the dataset sets it)
    input_multiple: ClassVar[int] = 32
    outputs: ClassVar[tuple[str, ...]] = ("map", "image", "anchors")

    def __post_init__(self) -> None:
        for name in ("fpn_channels", "fpn_repeats"):
            require(name, getattr(self, name), getattr(self, name) >= 1, "must be >= 1")
        for name in ("height", "width"):
            require(name, getattr(self, name), getattr(self, name) is None or getattr(self, name) >= 32,
                    "must be >= 32 (a multiple of 32), or unset to take the detection task's")

    def image_size(self, tasks: dict[str, Task]) -> tuple[int, int]:
        if self.height and self.width:
            return self.height, self.width
        sizes = [task.image_size for task in tasks.values() if isinstance(task, Detection) and task.image_size]
        if not sizes:
            raise ValueError("pyramid: set model.height and model.width to the images' size (BiFPN is built for "
                             "it); without them it takes a detection task's, and these tasks have none")
        return tuple(sizes[0])

    def build(self, tasks: dict[str, Task]) -> nn.Module:
        return PyramidNet(tasks, self.backbone, self.weights, self.fpn_channels, self.fpn_repeats,
                          self.image_size(tasks))
