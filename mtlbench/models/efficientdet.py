"""EfficientDet's detection head (Tan et al. 2020) on a backbone's feature pyramid, as Yun and Cho 2023 Table 7 put it
on their backbones: effdet's BiFPN and its class and box nets, sized as the detection task says (EfficientDet-D0's
64 channels and 3 repeats by default) and initialised as effdet initialises them (the class net's bias at the prior
0.01, Lin et al. 2017 Sec. 4.1).

The head takes the backbone's features from the task's lowest anchor level up (stride 2^level each); BiFPN adds the
levels above the backbone's deepest by downsampling, as EfficientDet adds P6 and P7. Its output is the detection
task's raw prediction: [B, A, 8 + C], each anchor's box, its 4 offsets and C logits (``tasks/detection.py``).
"""
from __future__ import annotations

import torch
from torch import Tensor, nn

from ..tasks.detection import Detection, effdet


def effdet_config(task: Detection, image_size: tuple[int, int] | None = None, fpn_channels: int | None = None,
                  fpn_repeats: int | None = None, min_level: int | None = None, max_level: int | None = None):
    """effdet's EfficientDet-D0 config with the task's classes, anchors, image size and head size (a shared BiFPN
    passes its own size and levels)."""
    config = effdet().config.get_efficientdet_config("efficientdet_d0")
    anchors = task.anchors
    low, high = min_level or anchors.min_level, max_level or anchors.max_level
    config.update(dict(num_classes=task.channels, min_level=low, max_level=high, num_levels=high - low + 1,
                       num_scales=anchors.scales, aspect_ratios=[list(r) for r in anchors.ratios],
                       anchor_scale=anchors.size, image_size=tuple(image_size or task.image_size),
                       fpn_channels=fpn_channels or task.fpn_channels, fpn_cell_repeats=fpn_repeats or task.fpn_repeats,
                       box_class_repeats=task.head_repeats))
    return config


def check_image_size(task: Detection) -> tuple[int, int]:
    if task.image_size is None:
        raise ValueError(f"task {task.name}: the detection head needs the images' size (the dataset sets it)")
    return tuple(task.image_size)


class DetectionNets(nn.Module):
    """EfficientDet's class and box nets over BiFPN levels of ``channels`` channels, from the task's lowest anchor
    level to its highest: the detection task's raw prediction [B, A, 8 + C]."""

    def __init__(self, task: Detection, channels: int) -> None:
        super().__init__()
        config = effdet_config(task, check_image_size(task), fpn_channels=channels)
        self.task = task
        self.class_net = effdet().efficientdet.HeadNet(config, num_outputs=task.channels)
        self.box_net = effdet().efficientdet.HeadNet(config, num_outputs=4)
        self.reset_parameters()
        self.register_buffer("anchors", task.anchors.boxes(*task.image_size), persistent=False)

    def reset_parameters(self) -> None:
        """effdet's initialisation (a backbone that initialises every convolution its own way calls it again after)."""
        for name, module in self.named_modules():
            effdet().efficientdet._init_weight(module, name)

    def forward(self, levels: list[Tensor]) -> Tensor:
        batch = len(levels[0])
        logits = torch.cat([x.permute(0, 2, 3, 1).reshape(batch, -1, self.task.channels)
                            for x in self.class_net(levels)], 1)
        offsets = torch.cat([x.permute(0, 2, 3, 1).reshape(batch, -1, 4) for x in self.box_net(levels)], 1)
        # float32 whatever the autocast: bf16 would round an anchor's corner at 640 px to 4 px
        return torch.cat([self.anchors.expand(batch, -1, -1), offsets.float(), logits.float()], -1)


class EfficientDetHead(nn.Module):
    """BiFPN, class net and box net over ``channels``: the backbone's feature channels at the task's levels from
    ``anchors.min_level`` up, as many as the backbone has."""

    def __init__(self, task: Detection, channels: list[int]) -> None:
        super().__init__()
        config = effdet_config(task, check_image_size(task))
        self.task = task
        self.fpn = effdet().efficientdet.BiFpn(config, [dict(num_chs=c, reduction=2 ** level)
                                  for level, c in enumerate(channels, task.anchors.min_level)])
        self.nets = DetectionNets(task, task.fpn_channels)
        self.reset_parameters()

    def reset_parameters(self) -> None:
        for name, module in self.named_modules():
            effdet().efficientdet._init_weight(module, name)

    def forward(self, features: list[Tensor]) -> Tensor:
        expected = self.task.anchors.cells(*self.task.image_size)[0]
        if tuple(features[0].shape[-2:]) != expected:
            raise ValueError(f"task {self.task.name}: the detection head was built for {self.task.image_size[0]} x "
                             f"{self.task.image_size[1]} images (the dataset's size), got a level-"
                             f"{self.task.anchors.min_level} feature of {tuple(features[0].shape[-2:])} instead of "
                             f"{expected}")
        return self.nets(self.fpn(features))
