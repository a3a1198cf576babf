"""Knowledge distillation for multi-task learning (KD-MTL; Li and Bilen, ECCV Workshops 2020, Sec. 3 Eq. 2-3), as
the authors' code runs it (VICO-UoE/KD4MTL, ``model_segnet_kdmtl.py``) and Yun and Cho 2023 Table 8 compares it.

Each task t has a frozen single-task teacher (methods/teachers.py) and a task-specific adaptor A_t, a 1x1
convolution without bias (Xavier-normal initialised) on the student's shared feature. On every image of the batch,
labelled or not (a teacher needs no label), the student's adapted feature is pulled towards the teacher's, both
L2-normalised over channels at each location (x / sqrt(Σ_c x² + ε), ε = 1e-6):

    L_KD = Σ_t λ_t · mean_{b, h, w} Σ_c (n(A_t(f_s)) - n(f_t))²

added to the supervised task losses (the regularizer's term, outside the weighting and gradient axes, as in the
code). λ_t follows the code: 1 for segmentation and depth, 2 for surface normals (``weights`` per task name
overrides it; other tasks 1). The adaptors have their own Adam (lr 0.1, weight decay 5e-4, the code's), no
schedule; the student's features get the loss' gradient, the teachers none (``no_grad``, eval mode).

Simplification (named in docs/methods.md): the code distils at two levels of SegNet, the encoder's output and the
decoder's last 64-channel map, and sums them; mtlbench distils at the shared feature the model protocol exposes
(``return_feature``: SegNet's encoder output, 512 x H/32 x W/32 at width 1), the first of the two.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Optional

import torch
from torch import Tensor, nn

from ..jobs import Job
from ..tasks import Task
from .context import StepContext
from .parts import REGULARIZERS, Regularizer
from .teachers import UNTRAINED, check_teachers, load_teacher, teacher_inputs

CODE_WEIGHTS = {"direction": 2.0}  # λ by the task's value kind (model_segnet_kdmtl.py: [1, 1, 2]); others 1


def normalised(x: Tensor, eps: float) -> Tensor:
    """L2-normalised over channels at each location, as the code's ``x / sqrt(sum(x**2, 1) + eps)``."""
    return x / torch.sqrt(x.pow(2).sum(1, keepdim=True) + eps)


def feature_channels(model: nn.Module) -> int:
    """Channels of the model's shared feature, from one small forward in eval mode (no statistic changes)."""
    was_training = model.training
    model.eval()
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            return model(torch.zeros(1, 3, 64, 64, device=device), feature_only=True).shape[1]
    finally:
        model.train(was_training)


@REGULARIZERS.register("kd_mtl")
@dataclass(frozen=True)
class KDMTL(Regularizer):
    """Feature distillation from single-task teachers through task adaptors (module docstring). ``teachers``
    ({task: weights file}) and ``teacher_model`` are filled in from the suite's stl job of the same seed."""

    teachers: Optional[dict[str, str]] = None
    teacher_model: Optional[dict[str, Any]] = None
    weights: Optional[dict[str, float]] = None
    adaptor_lr: float = 0.1
    adaptor_weight_decay: float = 5e-4
    eps: float = 1e-6

    def __post_init__(self) -> None:
        for name, value in (self.weights or {}).items():
            if not value >= 0:
                raise ValueError(f"weights.{name}: {value} must be >= 0")
        if not self.adaptor_lr > 0:
            raise ValueError(f"adaptor_lr: {self.adaptor_lr} must be > 0")

    def inputs(self, job: Job, jobs: list[Job]) -> dict[str, list[str]]:
        return {} if self.teachers is not None else teacher_inputs(job, jobs)

    @classmethod
    def standalone(cls, tasks: list[str]) -> dict[str, Any]:
        return {"teachers": {task: UNTRAINED for task in tasks}}

    def task_weight(self, name: str, task: Task) -> float:
        if self.weights is not None and name in self.weights:
            return float(self.weights[name])
        return CODE_WEIGHTS.get(task.value_kind, 1.0)

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        teachers = check_teachers("kd_mtl", self.teachers, tasks)
        channels = feature_channels(model)
        adaptors = nn.ModuleDict({name: nn.Conv2d(channels, channels, 1, bias=False) for name in tasks})
        for adaptor in adaptors.values():
            nn.init.xavier_normal_(adaptor.weight)
        net = nn.Module()
        net.adaptors = adaptors.to(next(model.parameters()).device)
        # a plain dict: the teachers are neither trained, counted, checkpointed nor moved with the method's modules
        net.teachers = {name: load_teacher(teachers[name], self.teacher_model, name, task, model)
                        for name, task in tasks.items()}
        net.weights = {name: self.task_weight(name, task) for name, task in tasks.items()}
        return net

    def main_parameters(self, net: nn.Module) -> list[nn.Parameter]:
        return []  # the adaptors learn with their own optimiser

    def own_optimizers(self, net: nn.Module) -> list[tuple[torch.optim.Optimizer, object]]:
        optimizer = torch.optim.Adam(net.adaptors.parameters(), lr=self.adaptor_lr,
                                     weight_decay=self.adaptor_weight_decay)
        return [(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0))]

    def loss(self, ctx: StepContext, net: nn.Module | None) -> Tensor | None:
        view = ctx.views[0]
        student = view.feature.float()
        total = student.new_zeros(())
        for name, teacher in net.teachers.items():
            with torch.no_grad():
                target = normalised(teacher(view.images, feature_only=True).float(), self.eps)
            adapted = normalised(net.adaptors[name](student), self.eps)
            total = total + net.weights[name] * (adapted - target).pow(2).sum(1).mean()
        return total
