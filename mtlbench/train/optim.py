"""Optimisers and learning-rate schedules, registered like every other plugin."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Iterable

import torch

from ..registry import Registry

OPTIMIZERS: Registry[type] = Registry("optimizer")
SCHEDULERS: Registry[type] = Registry("scheduler")


@OPTIMIZERS.register("adam")
@dataclass(frozen=True)
class Adam:
    """The papers' optimiser (MTPSL, JTR: Adam, lr 1e-4)."""

    lr: float = 1e-4
    weight_decay: float = 0.0

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)


@OPTIMIZERS.register("sgd")
@dataclass(frozen=True)
class SGD:
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 0.0

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)


@SCHEDULERS.register("step")
@dataclass(frozen=True)
class Step:
    """StepLR (MTPSL: step 100, gamma 0.5 for 200 epochs; JTR: step 200)."""

    step_size: int = 100
    gamma: float = 0.5

    def build(self, optimizer: torch.optim.Optimizer, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.StepLR(optimizer, self.step_size, self.gamma)


@SCHEDULERS.register("cosine")
@dataclass(frozen=True)
class Cosine:
    """Cosine annealing over the epochs down to ``eta_min`` (paper 000: to 1e-4)."""

    eta_min: float = 0.0

    def build(self, optimizer: torch.optim.Optimizer, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs, eta_min=self.eta_min)


@SCHEDULERS.register("constant")
@dataclass(frozen=True)
class Constant:
    def build(self, optimizer: torch.optim.Optimizer, epochs: int) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)
