"""Optimisers and learning-rate schedules, registered like every other plugin."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Iterable, Optional

import torch

from ..registry import Registry, require
from ..space import Choice, Float, Space

OPTIMIZERS: Registry[type] = Registry("optimizer")
SCHEDULERS: Registry[type] = Registry("scheduler")

# The same weight-decay choices for every optimiser: the papers' value 0 cannot lie on a log scale.
WEIGHT_DECAY = Choice((0.0, 1e-5, 1e-4, 1e-3))


@dataclass(frozen=True)
class HeadLR:
    """``head_lr``: a learning rate of the task heads' own (every parameter of the network outside its
    ``shared_parameters``), as Sun et al. 2023 Sec. 5.2 trains VOC (0.001 for the backbone, 0.01 for the heads);
    None: ``lr`` for every parameter, one parameter group. The schedule scales both alike."""

    head_lr: Optional[float] = None

    def check_head_lr(self) -> None:
        if self.head_lr is not None:
            require("head_lr", self.head_lr, self.head_lr > 0, "must be > 0 (or null: lr for the heads too)")


@OPTIMIZERS.register("adam")
@dataclass(frozen=True)
class Adam(HeadLR):
    """The papers' optimiser (MTPSL, JTR: Adam, lr 1e-4). Tuned learning rates span Yun and Cho 2023's grid
    (Sec. 4.1: 8e-5 to 8e-4, searched for every method alike) on a log scale."""

    space: ClassVar[dict[str, Space]] = {"lr": Float(8e-5, 8e-4, log=True), "weight_decay": WEIGHT_DECAY}
    states: ClassVar[int] = 2  # tensors of a parameter's size the optimiser keeps (two moments)
    lr: float = 1e-4
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        require("lr", self.lr, self.lr > 0, "must be > 0")
        require("weight_decay", self.weight_decay, self.weight_decay >= 0, "must be >= 0")
        self.check_head_lr()

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.Adam(params, lr=self.lr, weight_decay=self.weight_decay)


@OPTIMIZERS.register("adamw")
@dataclass(frozen=True)
class AdamW(Adam):
    """Adam with decoupled weight decay (Loshchilov and Hutter 2019), the optimiser of Yun and Cho 2023's VOC + NYU
    runs (cfg/seg+det+depth: lr 1e-4, weight decay 5e-5); torch's default decay 1e-2."""

    # decoupled decay is not scaled by the gradient's moments: its useful values lie higher than Adam's L2 term's
    space: ClassVar[dict[str, Space]] = {"lr": Float(8e-5, 8e-4, log=True),
                                         "weight_decay": Choice((0.0, 5e-5, 1e-3, 1e-2, 5e-2))}
    weight_decay: float = 1e-2

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.AdamW(params, lr=self.lr, weight_decay=self.weight_decay)


@OPTIMIZERS.register("sgd")
@dataclass(frozen=True)
class SGD(HeadLR):
    space: ClassVar[dict[str, Space]] = {"lr": Float(1e-3, 1e-1, log=True), "weight_decay": WEIGHT_DECAY}
    lr: float = 1e-2
    momentum: float = 0.9
    weight_decay: float = 0.0

    def __post_init__(self) -> None:
        require("lr", self.lr, self.lr > 0, "must be > 0")
        require("momentum", self.momentum, 0 <= self.momentum < 1, "must lie in [0, 1)")
        require("weight_decay", self.weight_decay, self.weight_decay >= 0, "must be >= 0")
        self.check_head_lr()

    @property
    def states(self) -> int:
        """Tensors of a parameter's size it keeps: the momentum buffer, if any."""
        return 1 if self.momentum else 0

    def build(self, params: Iterable[torch.nn.Parameter]) -> torch.optim.Optimizer:
        return torch.optim.SGD(params, lr=self.lr, momentum=self.momentum, weight_decay=self.weight_decay)


class Schedule:
    """A learning-rate schedule: ``build(optimizer, epochs, steps_per_epoch)`` returns a torch scheduler that the
    trainer steps once per epoch, or once per batch where ``per_step``."""

    per_step: ClassVar[bool] = False


@SCHEDULERS.register("step")
@dataclass(frozen=True)
class Step(Schedule):
    """StepLR (MTPSL: step 100, gamma 0.5 for 200 epochs; JTR: step 200)."""

    step_size: int = 100
    gamma: float = 0.5

    def __post_init__(self) -> None:
        require("step_size", self.step_size, self.step_size >= 1, "must be >= 1 (epochs between decays)")
        require("gamma", self.gamma, 0 < self.gamma <= 1, "must lie in (0, 1] (the factor of each decay)")

    def build(self, optimizer: torch.optim.Optimizer, epochs: int,
              steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.StepLR(optimizer, self.step_size, self.gamma)


@SCHEDULERS.register("cosine")
@dataclass(frozen=True)
class Cosine(Schedule):
    """Cosine annealing over the epochs down to ``eta_min`` (Sun et al. 2023: to 1e-4)."""

    eta_min: float = 0.0

    def __post_init__(self) -> None:
        require("eta_min", self.eta_min, self.eta_min >= 0, "must be >= 0")

    def build(self, optimizer: torch.optim.Optimizer, epochs: int,
              steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs, eta_min=self.eta_min)


@SCHEDULERS.register("constant")
@dataclass(frozen=True)
class Constant(Schedule):
    def build(self, optimizer: torch.optim.Optimizer, epochs: int,
              steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda _: 1.0)


@SCHEDULERS.register("poly")
@dataclass(frozen=True)
class Poly(Schedule):
    """The poly schedule of Yun and Cho 2023's code (core/lr_scheduler ``PolyDecay`` with power 0.9, stepped after
    every batch with the fractional epoch): lr = base (1 - t / T)^power, t the batches trained, T all of them."""

    per_step: ClassVar[bool] = True
    power: float = 0.9

    def __post_init__(self) -> None:
        require("power", self.power, self.power > 0, "must be > 0")

    def build(self, optimizer: torch.optim.Optimizer, epochs: int,
              steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
        total = epochs * steps_per_epoch
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: max(0.0, 1 - step / total) ** self.power)


@SCHEDULERS.register("multistep")
@dataclass(frozen=True)
class MultiStep(Schedule):
    """detectron2's ``WarmupMultiStepLR``, which Li et al. 2022a's Mask R-CNN runs use (Sec. 4.3: "the default
    configuration in detectron2"): the rate rises linearly from ``warmup_factor`` x base over ``warmup_steps`` batches,
    then is multiplied by ``gamma`` at each milestone, given as a fraction of all batches (detectron2's COCO 1x: 60k and
    80k of 90k iterations; Cityscapes: 18k of 24k). Stepped after every batch."""

    per_step: ClassVar[bool] = True
    milestones: tuple[float, ...] = (2 / 3, 8 / 9)
    gamma: float = 0.1
    warmup_steps: int = 1000
    warmup_factor: float = 0.001

    def __post_init__(self) -> None:
        require("milestones", self.milestones, all(0 < m < 1 for m in self.milestones)
                and list(self.milestones) == sorted(self.milestones), "fractions of training in (0, 1), increasing")
        require("gamma", self.gamma, 0 < self.gamma <= 1, "must lie in (0, 1]")
        require("warmup_steps", self.warmup_steps, self.warmup_steps >= 0, "must be >= 0")
        require("warmup_factor", self.warmup_factor, 0 < self.warmup_factor <= 1, "must lie in (0, 1]")

    def build(self, optimizer: torch.optim.Optimizer, epochs: int,
              steps_per_epoch: int) -> torch.optim.lr_scheduler.LRScheduler:
        total = epochs * steps_per_epoch
        steps = [round(m * total) for m in self.milestones]

        def factor(step: int) -> float:
            warmup = 1.0 if step >= self.warmup_steps else \
                self.warmup_factor + (1 - self.warmup_factor) * step / self.warmup_steps
            return warmup * self.gamma ** sum(step >= m for m in steps)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def parameter_groups(model: torch.nn.Module, params: list[torch.nn.Parameter],
                     head_lr: Optional[float]) -> list[torch.nn.Parameter] | list[dict[str, Any]]:
    """What the optimiser trains: ``params`` (the network's and the method's) as one group, or with ``head_lr`` as
    named groups: ``backbone`` (the network's shared parameters), ``heads`` (its other parameters, at ``head_lr``)
    and ``method`` (the recipe's own, at ``lr``); empty groups are left out."""
    if head_lr is None:
        return params
    shared = {id(p) for p in model.shared_parameters()}
    own = {id(p) for p in model.parameters()}
    groups = [{"name": "backbone", "params": [p for p in params if id(p) in shared]},
              {"name": "heads", "params": [p for p in params if id(p) in own and id(p) not in shared], "lr": head_lr},
              {"name": "method", "params": [p for p in params if id(p) not in own]}]
    return [group for group in groups if group["params"]]


def group_record(optimizer: torch.optim.Optimizer) -> dict[str, dict[str, float]]:
    """{group name: {lr, parameters}} of an optimiser with named groups (result.json's ``optimizer_groups``)."""
    return {group["name"]: {"lr": group.get("initial_lr", group["lr"]), "parameters": sum(p.numel() for p in group["params"])}
            for group in optimizer.param_groups if "name" in group}
