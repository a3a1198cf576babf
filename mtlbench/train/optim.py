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
    """A learning-rate schedule: ``build(optimizer, epochs, steps_per_epoch, batch_size)`` returns a scheduler (a
    torch one, or any object with ``step``, ``state_dict`` and ``load_state_dict``) that the trainer steps once per
    epoch, or once per batch where ``per_step``. Where ``reads_loss``, ``step`` takes the batch's training loss (a
    0-d tensor on the device); a scheduler whose ``finished`` becomes true ends the stage's training after the
    epoch it is in (its last epoch is tested as the last of ``train.epochs`` would be)."""

    per_step: ClassVar[bool] = False
    reads_loss: ClassVar[bool] = False


@SCHEDULERS.register("step")
@dataclass(frozen=True)
class Step(Schedule):
    """StepLR (MTPSL: step 100, gamma 0.5 for 200 epochs; JTR: step 200)."""

    step_size: int = 100
    gamma: float = 0.5

    def __post_init__(self) -> None:
        require("step_size", self.step_size, self.step_size >= 1, "must be >= 1 (epochs between decays)")
        require("gamma", self.gamma, 0 < self.gamma <= 1, "must lie in (0, 1] (the factor of each decay)")

    def build(self, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int,
              batch_size: int = 1) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.StepLR(optimizer, self.step_size, self.gamma)


@SCHEDULERS.register("cosine")
@dataclass(frozen=True)
class Cosine(Schedule):
    """Cosine annealing over the epochs down to ``eta_min`` (Sun et al. 2023: to 1e-4)."""

    eta_min: float = 0.0

    def __post_init__(self) -> None:
        require("eta_min", self.eta_min, self.eta_min >= 0, "must be >= 0")

    def build(self, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int,
              batch_size: int = 1) -> torch.optim.lr_scheduler.LRScheduler:
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, epochs, eta_min=self.eta_min)


@SCHEDULERS.register("constant")
@dataclass(frozen=True)
class Constant(Schedule):
    def build(self, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int,
              batch_size: int = 1) -> torch.optim.lr_scheduler.LRScheduler:
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

    def build(self, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int,
              batch_size: int = 1) -> torch.optim.lr_scheduler.LRScheduler:
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

    def build(self, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int,
              batch_size: int = 1) -> torch.optim.lr_scheduler.LRScheduler:
        total = epochs * steps_per_epoch
        steps = [round(m * total) for m in self.milestones]

        def factor(step: int) -> float:
            warmup = 1.0 if step >= self.warmup_steps else \
                self.warmup_factor + (1 - self.warmup_factor) * step / self.warmup_steps
            return warmup * self.gamma ** sum(step >= m for m in steps)

        return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


@SCHEDULERS.register("loss_plateau")
@dataclass(frozen=True)
class LossPlateau(Schedule):
    """Standley et al. 2020 Sec. 4.2: the rate "was reduced by half every time the training loss stopped
    decreasing", and training ends below ``min_lr``; the rule as the authors' code runs it (train_taskonomy.py,
    ``learning_rate_schedule``): each update's training loss is kept; from the end of epoch ``warmup_epochs`` on,
    once more than a window of steps (``window_images`` / batch size) has passed since the last decay, the window's
    first 3/8 and last 3/8 are each sorted, trimmed to their 5th-95th percentile ranks, cut to one length and
    compared by a paired t-test (scipy's ``ttest_rel``, pairs by rank); the rate decays (initial x ``factor`` ^
    decays) when t < 0 (the loss rose) or p > 0.99 (no change), and the window then doubles, up to
    ``max_window_images``. Defaults: the code's (0.5M and 2M images, 3e-5, 2 epochs); its epochs are 20% of
    Taskonomy, so its 2 epochs are ``warmup_epochs: 0.4`` where an epoch is a whole pass. The loss is the mean of
    the tasks' training losses."""

    per_step: ClassVar[bool] = True
    reads_loss: ClassVar[bool] = True
    window_images: int = 500_000
    max_window_images: int = 2_000_000
    factor: float = 0.5
    min_lr: float = 3e-5
    warmup_epochs: float = 2.0

    def __post_init__(self) -> None:
        require("window_images", self.window_images, self.window_images >= 1, "must be >= 1 (images per window)")
        require("max_window_images", self.max_window_images, self.max_window_images >= self.window_images,
                "must be >= window_images (the window doubles up to it)")
        require("factor", self.factor, 0 < self.factor < 1, "must lie in (0, 1) (the rate's factor per decay)")
        require("min_lr", self.min_lr, self.min_lr >= 0, "must be >= 0 (training ends below it)")
        require("warmup_epochs", self.warmup_epochs, self.warmup_epochs >= 0, "must be >= 0")

    def build(self, optimizer: torch.optim.Optimizer, epochs: int, steps_per_epoch: int,
              batch_size: int = 1) -> "PlateauScheduler":
        return PlateauScheduler(self, optimizer, steps_per_epoch, batch_size)


class PlateauScheduler:
    """``LossPlateau``'s state: the last ``max_window_images`` / batch losses in a ring on the device (one host
    read per step only while a test is due), the decays and where the last one happened."""

    def __init__(self, rule: LossPlateau, optimizer: torch.optim.Optimizer, steps_per_epoch: int,
                 batch_size: int) -> None:
        self.rule, self.optimizer, self.steps_per_epoch, self.batch_size = rule, optimizer, steps_per_epoch, batch_size
        for group in optimizer.param_groups:
            group.setdefault("initial_lr", group["lr"])
        self.capacity = max(1, rule.max_window_images // batch_size)
        self.losses: torch.Tensor | None = None
        self.steps = 0
        self.decays = 0
        self.last_decay = 0
        self.window_images = rule.window_images
        self.critical: dict[int, float] = {}

    @property
    def finished(self) -> bool:
        return self.optimizer.param_groups[0]["lr"] < self.rule.min_lr

    def step(self, loss: torch.Tensor) -> None:
        if self.losses is None:
            self.losses = torch.zeros(self.capacity, device=loss.device)
        self.losses[self.steps % self.capacity] = loss.detach().float()
        self.steps += 1
        window = self.window_images // self.batch_size
        if self.steps <= self.rule.warmup_epochs * self.steps_per_epoch or self.steps - self.last_decay <= window:
            return
        if self.stopped_decreasing(self.recent(window)):
            self.decays += 1
            self.last_decay = self.steps
            for group in self.optimizer.param_groups:
                group["lr"] = group["initial_lr"] * self.rule.factor ** self.decays
            self.window_images = min(self.rule.max_window_images, 2 * self.window_images)

    def recent(self, count: int) -> torch.Tensor:
        """The last ``count`` losses (at most the ring's), oldest first."""
        count = min(count, self.steps, self.capacity)
        index = torch.arange(self.steps - count, self.steps, device=self.losses.device) % self.capacity
        return self.losses[index]

    def stopped_decreasing(self, history: torch.Tensor) -> bool:
        """The code's test on the window ``history``: t < 0 or p > 0.99 of the paired t-test of its sorted,
        trimmed first and last 3/8 (slices spelt as the code's, Python's floor division included)."""
        window = len(history)
        early, late = history[-window:-window * 5 // 8].sort().values, history[-window * 3 // 8:].sort().values
        early = early[int(len(early) * .05):int(len(early) * .95)]
        late = late[int(len(late) * .05):int(len(late) * .95)]
        n = min(len(early), len(late))
        if n < 2:
            return False  # scipy's t is NaN: neither condition holds
        difference = (early[:n] - late[:n]).double()
        t = difference.mean() / (difference.std() / n ** 0.5)
        return bool((t < 0) | (t.abs() < self.critical_t(n - 1)))  # |t| < t* <=> two-sided p > 0.99

    def critical_t(self, df: int) -> float:
        if df not in self.critical:
            from scipy.stats import t as student_t  # scipy only for this schedule

            self.critical[df] = float(student_t.isf(0.99 / 2, df))
        return self.critical[df]

    def state_dict(self) -> dict[str, Any]:
        return {"losses": None if self.losses is None else self.losses.cpu(), "steps": self.steps,
                "decays": self.decays, "last_decay": self.last_decay, "window_images": self.window_images}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        device = self.optimizer.param_groups[0]["params"][0].device
        self.losses = None if state["losses"] is None else state["losses"].to(device)
        self.steps, self.decays, self.last_decay = state["steps"], state["decays"], state["last_decay"]
        self.window_images = state["window_images"]


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
