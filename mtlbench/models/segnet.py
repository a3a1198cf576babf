"""The MTAN SegNet "split" used by MTPSL and JTR, with a width multiplier.

Architecture of the authors' code (docs/papers.md): encoder stages of 64-128-256-512-512 filters
with 2-2-3-3-3 convolutions (3x3 conv + BN + ReLU), 2x2 max-pooling whose indices drive the decoder's
max-unpooling, a mirrored decoder, and per task a head conv3x3(64) -> conv1x1(channels) with no activation in
between. Normals are L2-normalised. ``width`` scales every filter count (1.0 gives the papers' ~25M
parameters with three tasks; CPU suites use 0.125-0.25); weights are initialised as in MTAN (xavier-normal
convolutions, zero biases). Image-level tasks (``cls``) get global average
pooling of the bottleneck and a linear layer; a detection task EfficientDet's head on the encoder's pooled stage
outputs (models/efficientdet.py). ``forward(x, return_feature=True)`` also returns the shared
bottleneck (filters[4] x H/32 x W/32) that MTPSL and JTR regularise.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, ClassVar

from torch import Tensor, nn

from ..registry import require
from ..tasks import Task
from .efficientdet import EfficientDetHead
from .registry import MODELS
from .init import xavier_init

FILTERS = (64, 128, 256, 512, 512)
CONVS = (2, 2, 3, 3, 3)


Norm = Callable[[int], nn.Module]


def per_sample_norm(channels: int) -> nn.Module:
    """BatchNorm as the authors' per-image loops run it (batch of one): statistics of each sample alone."""
    return nn.GroupNorm(channels, channels)


def conv_norm_relu(c_in: int, c_out: int, norm: Norm = nn.BatchNorm2d) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, padding=1), norm(c_out), nn.ReLU(inplace=True))


def stage(c_in: int, c_out: int, convs: int, norm: Norm = nn.BatchNorm2d) -> nn.Sequential:
    return nn.Sequential(conv_norm_relu(c_in, c_out, norm), *[conv_norm_relu(c_out, c_out, norm)
                                                               for _ in range(convs - 1)])


def filters_for(width: float) -> list[int]:
    return [max(4, round(c * width)) for c in FILTERS]


class SegNet(nn.Module):
    def __init__(self, tasks: dict[str, Task], width: float = 1.0, in_channels: int = 3,
                 norm: Norm = nn.BatchNorm2d) -> None:
        super().__init__()
        f = filters_for(width)
        self.filters = f
        self.width = width
        self.encoder = nn.ModuleList(stage(c_in, c_out, n, norm)
                                     for c_in, c_out, n in zip([in_channels, *f[:-1]], f, CONVS))
        # decoder stage i mirrors encoder stage i: f[i] -> ... -> f[i-1] (f[0] for the first stage)
        self.decoder = nn.ModuleList(stage(f[i], f[max(i - 1, 0)], n, norm)
                                     for i, n in reversed(list(enumerate(CONVS))))
        self.pool = nn.MaxPool2d(2, 2, return_indices=True)
        self.unpool = nn.MaxUnpool2d(2, 2)
        self.tasks = dict(tasks)
        self.heads = nn.ModuleDict({name: self.head(task) for name, task in tasks.items()})
        xavier_init(self)
        for head in self.heads.values():
            if isinstance(head, EfficientDetHead):
                head.reset_parameters()

    def head(self, task: Task) -> nn.Module:
        """The head of the task's output: on the decoded map, on the pooled bottleneck, or EfficientDet's on the
        encoder's pyramid (stage i's pooled output is level i + 1)."""
        f = self.filters
        if task.output == "map":
            return nn.Sequential(nn.Conv2d(f[0], f[0], 3, padding=1), nn.Conv2d(f[0], task.channels, 1))
        if task.output == "image":
            return nn.Sequential(nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(f[-1], task.channels))
        if task.output == "anchors":
            return EfficientDetHead(task, f[task.anchors.min_level - 1:])
        raise ValueError(f"segnet has no head for task {task.name}'s output {task.output!r}")

    def shared_parameters(self) -> list[nn.Parameter]:
        """Parameters every task's loss reaches: the encoder and the decoder ("split" SegNet shares both)."""
        return [*self.encoder.parameters(), *self.decoder.parameters()]

    def last_shared_layer(self) -> nn.Parameter:
        """The weight of the decoder's last convolution, where GradNorm measures task gradients."""
        return self.decoder[-1][-1][0].weight

    def decoded_layer(self) -> nn.Module:
        """The decoder's last block, whose output is the shared map the task heads read (feature distillation's
        second level: methods/kd_mtl.py)."""
        return self.decoder[-1]

    def encode(self, x: Tensor) -> tuple[Tensor, list[Tensor], list[Tensor]]:
        """The bottleneck, the pooling indices and every stage's pooled output (strides 2 to 32)."""
        indices, pyramid = [], []
        for block in self.encoder:
            x, index = self.pool(block(x))
            indices.append(index)
            pyramid.append(x)
        return x, indices, pyramid

    def decode(self, feature: Tensor, indices: list[Tensor]) -> Tensor:
        x = feature
        for block, index in zip(self.decoder, reversed(indices)):
            x = block(self.unpool(x, index))
        return x

    def forward(self, x: Tensor, return_feature: bool = False, feature_only: bool = False):
        if x.shape[-1] % 32 or x.shape[-2] % 32:
            raise ValueError(f"SegNet needs height and width divisible by 32, got {tuple(x.shape[-2:])}")
        feature, indices, pyramid = self.encode(x)
        if feature_only:
            return feature
        decoded = self.decode(feature, indices)
        preds = {name: task.postprocess(self.heads[name](head_input(task, decoded, feature, pyramid)))
                 for name, task in self.tasks.items()}
        return (preds, feature) if return_feature else preds


def head_input(task: Task, decoded: Tensor, feature: Tensor, pyramid: list[Tensor]) -> Tensor | list[Tensor]:
    """What the task's head reads: the decoded map, the bottleneck, or the encoder's pyramid from the task's lowest
    anchor level up."""
    if task.output == "anchors":
        return pyramid[task.anchors.min_level - 1:]
    return decoded if task.output == "map" else feature


@MODELS.register("segnet")
@dataclass(frozen=True)
class SegNetSpec:
    """Parameters of the ``segnet`` backbone."""

    width: float = 1.0
    input_multiple: ClassVar[int] = 32  # five 2x2 poolings

    def __post_init__(self) -> None:
        require("width", self.width, self.width > 0, "must be > 0 (1.0: the papers' 64-128-256-512-512 filters)")

    def build(self, tasks: dict[str, Task]) -> nn.Module:
        return SegNet(tasks, self.width)
