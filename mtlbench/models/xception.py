"""Standley et al. 2020's network (Sec. 4.2): a modified Xception encoder shared by the tasks and one light
decoder per task, as the authors' code defines the paper's network (tstandley/taskgrouping,
model_definitions/xception_taskonomy_small.py; docs/grouping.md).

Encoder, 17 layers as the paper counts them: a 3x3 stride-2 convolution and a 3x3 convolution (each + BN + ReLU),
three Xception blocks of two separable convolutions that halve the resolution with a 2x2 stride-2 convolution where
Xception max-pools ("all max-pooling layers were replaced by 2x2 convolution layers with a stride of 2"), four
middle-flow blocks of two separable convolutions at 512 channels ("512 rather than 728"), and a separable 3x3
convolution to the 256-channel representation + BN + ReLU (stride 16), which every decoder reads. Each block adds
its input (through a 1x1 convolution + BN where the width or resolution changes). Full size (``width`` 1.0):
channels 24-48-96-192-512, about 4 million parameters and 2.28 billion multiply-adds at 256x256, the paper's
figures for one SNT (a test checks both). Smaller and larger encoders scale every encoder layer's channels by
``width`` (the representation stays 256 wide); the grouping track picks the width whose FLOPs make a network of a
given size (tracks/grouping/sizing.py, the paper's rule), where the authors' code hand-picked a channel list for
the half, double and quadruple sizes.

Decoder (per task, about 116,000 parameters as the paper says): a separable 3x3 convolution to 96 channels + BN,
four 2x2 stride-2 transposed convolutions (96-64-32-32 channels, each + BN + ReLU), separable convolutions between
them (3x3, 5x5, 5x5; + BN + ReLU), a skip path (a separable 3x3 convolution of the representation to 16 channels
+ BN, resized bilinearly to the input) concatenated before the last ReLU, and a separable 5x5 convolution to the
task's channels. Initialisation as the code: every convolution's weight N(0, 2 / (k * k * out_channels)), BN weight
1 and bias 0, transposed convolutions and biases at torch's default. Separable convolutions have no bias.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from ..registry import require
from ..tasks import Task
from .registry import MODELS

CHANNELS = (24, 48, 96, 192, 512)  # conv1, conv2, block 1, block 2, blocks 3-7 at width 1.0
MIDDLE_BLOCKS = 4
REPRESENTATION = 256  # what the decoders read, at every encoder width


class SeparableConv2d(nn.Sequential):
    """A depthwise convolution (one filter per input channel) followed by a pointwise 1x1 one, without biases."""

    def __init__(self, c_in: int, c_out: int, kernel: int = 3) -> None:
        super().__init__(nn.Conv2d(c_in, c_in, kernel, padding=kernel // 2, groups=c_in, bias=False),
                         nn.Conv2d(c_in, c_out, 1, bias=False))


class Block(nn.Module):
    """``reps`` x (ReLU, separable 3x3, BN), the first growing the channels to ``c_out``, and a 2x2 stride-2
    convolution when it downsamples; plus its input, through a 1x1 convolution + BN where the shape changes."""

    def __init__(self, c_in: int, c_out: int, reps: int, downsample: bool, start_with_relu: bool = True) -> None:
        super().__init__()
        layers: list[nn.Module] = []
        for rep in range(reps):
            layers += [nn.ReLU(), SeparableConv2d(c_in if rep == 0 else c_out, c_out), nn.BatchNorm2d(c_out)]
        if not start_with_relu:
            layers = layers[1:]
        if downsample:
            layers.append(nn.Conv2d(c_out, c_out, 2, stride=2))
        self.rep = nn.Sequential(*layers)
        self.skip = None
        if c_in != c_out or downsample:
            self.skip = nn.Sequential(nn.Conv2d(c_in, c_out, 1, stride=2 if downsample else 1, bias=False),
                                      nn.BatchNorm2d(c_out))

    def forward(self, x: Tensor) -> Tensor:
        return self.rep(x) + (x if self.skip is None else self.skip(x))


def conv_bn_relu(c_in: int, c_out: int, stride: int = 1) -> nn.Sequential:
    return nn.Sequential(nn.Conv2d(c_in, c_out, 3, stride, 1, bias=False), nn.BatchNorm2d(c_out), nn.ReLU())


def sep_bn(c_in: int, c_out: int, kernel: int = 3) -> nn.Sequential:
    return nn.Sequential(SeparableConv2d(c_in, c_out, kernel), nn.BatchNorm2d(c_out))


def up_bn_relu(c_in: int, c_out: int) -> nn.Sequential:
    return nn.Sequential(nn.ConvTranspose2d(c_in, c_out, 2, 2), nn.BatchNorm2d(c_out), nn.ReLU())


def encoder(channels: list[int]) -> nn.Sequential:
    c1, c2, b1, b2, middle = channels
    return nn.Sequential(conv_bn_relu(3, c1, stride=2), conv_bn_relu(c1, c2),
                         Block(c2, b1, 2, downsample=True, start_with_relu=False),
                         Block(b1, b2, 2, downsample=True), Block(b2, middle, 2, downsample=True),
                         *[Block(middle, middle, 2, downsample=False) for _ in range(MIDDLE_BLOCKS)],
                         sep_bn(middle, REPRESENTATION), nn.ReLU())


class Decoder(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.skip = sep_bn(REPRESENTATION, 16)
        self.up = nn.Sequential(sep_bn(REPRESENTATION, 96),
                                up_bn_relu(96, 96), sep_bn(96, 64), nn.ReLU(),
                                up_bn_relu(64, 64), sep_bn(64, 64, 5), nn.ReLU(),
                                up_bn_relu(64, 32), sep_bn(32, 32, 5), nn.ReLU(),
                                nn.ConvTranspose2d(32, 32, 2, 2), nn.BatchNorm2d(32))
        self.out = SeparableConv2d(48, channels, 5)

    def forward(self, representation: Tensor) -> Tensor:
        x = self.up(representation)
        skip = F.interpolate(self.skip(representation), size=x.shape[-2:], mode="bilinear", align_corners=False)
        return self.out(torch.cat([x, skip], 1).relu())


def channels_for(width: float) -> list[int]:
    return [max(4, round(c * width)) for c in CHANNELS]


def standley_init(module: nn.Module) -> None:
    """The authors' initialisation: convolutions N(0, 2 / (k_h k_w out_channels)), BN weight 1 and bias 0."""
    for m in module.modules():
        if isinstance(m, nn.Conv2d):
            nn.init.normal_(m.weight, 0.0, math.sqrt(2.0 / (m.kernel_size[0] * m.kernel_size[1] * m.out_channels)))
        elif isinstance(m, nn.BatchNorm2d):
            nn.init.ones_(m.weight)
            nn.init.zeros_(m.bias)


class XceptionTaskonomy(nn.Module):
    def __init__(self, tasks: dict[str, Task], width: float = 1.0) -> None:
        super().__init__()
        unsupported = [name for name, task in tasks.items() if task.output != "map"]
        if unsupported:
            raise ValueError(f"xception has a decoder for dense tasks only; {unsupported} are not per-pixel maps "
                             f"(use segnet)")
        self.channels = channels_for(width)
        self.encoder = encoder(self.channels)
        self.tasks = dict(tasks)
        self.decoders = nn.ModuleDict({name: Decoder(task.channels) for name, task in tasks.items()})
        standley_init(self)

    def shared_parameters(self) -> list[nn.Parameter]:
        return list(self.encoder.parameters())

    def last_shared_layer(self) -> nn.Parameter:
        """The pointwise weight of the convolution that makes the representation."""
        return self.encoder[-2][0][1].weight

    def forward(self, x: Tensor, return_feature: bool = False, feature_only: bool = False):
        if x.shape[-1] % 16 or x.shape[-2] % 16:
            raise ValueError(f"xception needs height and width divisible by 16, got {tuple(x.shape[-2:])}")
        feature = self.encoder(x)
        if feature_only:
            return feature
        preds = {name: task.postprocess(self.decoders[name](feature)) for name, task in self.tasks.items()}
        return (preds, feature) if return_feature else preds


@MODELS.register("xception")
@dataclass(frozen=True)
class XceptionSpec:
    """Parameters of the ``xception`` backbone (Standley et al. 2020 Sec. 4.2): ``width`` scales the encoder's
    channels (1.0: the paper's full-size encoder, 1 SNT)."""

    width: float = 1.0
    input_multiple: ClassVar[int] = 16  # a stride-2 convolution and three 2x2 stride-2 ones
    outputs: ClassVar[tuple[str, ...]] = ("map",)  # a decoder per dense task

    def __post_init__(self) -> None:
        require("width", self.width, self.width > 0, "must be > 0 (1.0: the paper's 24-48-96-192-512 channels)")

    def build(self, tasks: dict[str, Task]) -> nn.Module:
        return XceptionTaskonomy(tasks, self.width)
