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


def effdet_config(task: Detection):
    """effdet's EfficientDet-D0 config with the task's classes, anchors, image size and head size."""
    config = effdet().config.get_efficientdet_config("efficientdet_d0")
    anchors = task.anchors
    config.update(dict(num_classes=task.channels, min_level=anchors.min_level, max_level=anchors.max_level,
                       num_levels=anchors.max_level - anchors.min_level + 1, num_scales=anchors.scales,
                       aspect_ratios=[list(r) for r in anchors.ratios], anchor_scale=anchors.size,
                       image_size=tuple(task.image_size), fpn_channels=task.fpn_channels,
                       fpn_cell_repeats=task.fpn_repeats, box_class_repeats=task.head_repeats))
    return config


class EfficientDetHead(nn.Module):
    """BiFPN, class net and box net over ``channels``: the backbone's feature channels at the task's levels from
    ``anchors.min_level`` up, as many as the backbone has."""

    def __init__(self, task: Detection, channels: list[int]) -> None:
        super().__init__()
        if task.image_size is None:
            raise ValueError(f"task {task.name}: the detection head needs the images' size (the dataset sets it)")
        config = effdet_config(task)
        self.task = task
        self.fpn = effdet().efficientdet.BiFpn(config, [dict(num_chs=c, reduction=2 ** level)
                                  for level, c in enumerate(channels, task.anchors.min_level)])
        self.class_net = effdet().efficientdet.HeadNet(config, num_outputs=task.channels)
        self.box_net = effdet().efficientdet.HeadNet(config, num_outputs=4)
        self.reset_parameters()
        self.register_buffer("anchors", task.anchors.boxes(*task.image_size), persistent=False)

    def reset_parameters(self) -> None:
        """effdet's initialisation (a backbone that initialises every convolution its own way calls it again after)."""
        for name, module in self.named_modules():
            effdet().efficientdet._init_weight(module, name)

    def forward(self, features: list[Tensor]) -> Tensor:
        expected = self.task.anchors.cells(*self.task.image_size)[0]
        if tuple(features[0].shape[-2:]) != expected:
            raise ValueError(f"task {self.task.name}: the detection head was built for {self.task.image_size[0]} x "
                             f"{self.task.image_size[1]} images (the dataset's size), got a level-"
                             f"{self.task.anchors.min_level} feature of {tuple(features[0].shape[-2:])} instead of "
                             f"{expected}")
        levels = self.fpn(features)
        batch = len(features[0])
        logits = torch.cat([x.permute(0, 2, 3, 1).reshape(batch, -1, self.task.channels)
                            for x in self.class_net(levels)], 1)
        offsets = torch.cat([x.permute(0, 2, 3, 1).reshape(batch, -1, 4) for x in self.box_net(levels)], 1)
        # float32 whatever the autocast: bf16 would round an anchor's corner at 640 px to 4 px
        return torch.cat([self.anchors.expand(batch, -1, -1), offsets.float(), logits.float()], -1)
