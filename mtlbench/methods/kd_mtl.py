"""Knowledge distillation for multi-task learning (KD-MTL; Li and Bilen, ECCV Workshops 2020, Sec. 3 Eq. 2-3), as
the authors' code runs it (VICO-UoE/KD4MTL, ``model_segnet_kdmtl.py``) and Yun and Cho 2023 Table 8 compares it.

Each task t has a frozen single-task teacher (methods/teachers.py) and task-specific adaptors A_t^l, one 1x1
convolution without bias (Xavier-normal initialised) per distilled level l of the student's shared maps. On every
image of the batch, labelled or not (a teacher needs no label), the student's adapted map is pulled towards the
teacher's, both L2-normalised over channels at each location (x / sqrt(Σ_c x² + ε), ε = 1e-6):

    L_KD = Σ_t λ_t Σ_l mean_{b, h, w} Σ_c (n(A_t^l(f_s^l)) - n(f_t^l))²

added to the supervised task losses (the regularizer's term, outside the weighting and gradient axes, as in the
code). The code distils two levels of SegNet (``levels: 2``, the default): the encoder's output (512 x H/32 x W/32
at width 1, the model protocol's ``return_feature``) and the decoder's last shared map (64 x H x W, what the task
heads read: the protocol's optional ``decoded_layer``, read by a forward hook on the student's and the teachers'
forward passes); ``levels: 1`` distils the encoder's output alone (KD-MTL before the setting came; any backbone
without a ``decoded_layer``). λ_t follows the code: 1 for segmentation and depth, 2 for surface normals (``weights`` per task
name overrides it; other tasks 1). The adaptors of both levels have their own Adam (lr 0.1, weight decay 5e-4, the
code's one optimiser over every ``transformer``), no schedule; the student's maps get the loss' gradient, the
teachers none (``no_grad``, eval mode). ``decoded_adaptor_lr`` sets the decoder level's rate apart (None: the
encoder's, as the code); 0 is KD-MTL's two levels as 0.3 first trained them, with the decoder's adaptors left at
their initialisation (they were outside the optimiser), and keeps those jobs' ids.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Optional

import torch
from torch import Tensor, nn

from ..ids import spelt_as_before
from ..jobs import Job
from ..tasks import Task
from .context import StepContext
from .parts import REGULARIZERS, Regularizer
from .teachers import UNTRAINED, check_teachers, load_teacher, teacher_inputs

CODE_WEIGHTS = {"direction": 2.0}  # λ by the task's value kind (model_segnet_kdmtl.py: [1, 1, 2]); others 1


def normalised(x: Tensor, eps: float) -> Tensor:
    """L2-normalised over channels at each location, as the code's ``x / sqrt(sum(x**2, 1) + eps)``."""
    return x / torch.sqrt(x.pow(2).sum(1, keepdim=True) + eps)


class Captured:
    """The output of a module's latest forward pass (a forward hook): the decoded map of the forward that made the
    predictions, without a second forward (which would also move the student's BatchNorm statistics)."""

    def __init__(self, module: nn.Module) -> None:
        self.output: Tensor | None = None
        module.register_forward_hook(self.keep)

    def keep(self, module: nn.Module, inputs: Any, output: Tensor) -> None:
        self.output = output


def decoded_layer(model: nn.Module) -> nn.Module:
    if not hasattr(model, "decoded_layer"):
        raise ValueError(f"kd_mtl: levels: 2 distils the decoder's shared map, and {type(model).__name__} names none "
                         f"(decoded_layer); use levels: 1")
    return model.decoded_layer()


def map_channels(model: nn.Module, levels: int) -> list[int]:
    """Channels of each distilled map of the model, from one small forward in eval mode (no statistic changes)."""
    was_training = model.training
    model.eval()
    decoded = Captured(decoded_layer(model)) if levels == 2 else None
    try:
        with torch.no_grad():
            device = next(model.parameters()).device
            _, feature = model(torch.zeros(1, 3, 64, 64, device=device), return_feature=True)
        return [feature.shape[1]] + ([decoded.output.shape[1]] if decoded else [])
    finally:
        model.train(was_training)


@REGULARIZERS.register("kd_mtl")
@dataclass(frozen=True)
class KDMTL(Regularizer):
    """Feature distillation from single-task teachers through task adaptors (module docstring). ``teachers``
    ({task: weights file}) and ``teacher_model`` are filled in from the suite's stl job of the same seed."""

    single_device: ClassVar[str] = ""  # a mean over images and locations, the adaptors' gradients summed over devices

    teachers: Optional[dict[str, str]] = None
    teacher_model: Optional[dict[str, Any]] = None
    weights: Optional[dict[str, float]] = None
    adaptor_lr: float = 0.1
    adaptor_weight_decay: float = 5e-4
    eps: float = 1e-6
    levels: int = 2
    decoded_adaptor_lr: Optional[float] = None  # None: adaptor_lr (the code's one Adam over both levels)

    def __post_init__(self) -> None:
        if self.levels not in (1, 2):
            raise ValueError(f"levels: {self.levels} must be 1 (the encoder's output) or 2 (and the decoder's map)")
        if self.decoded_adaptor_lr is not None and (self.levels == 1 or not self.decoded_adaptor_lr >= 0):
            raise ValueError(f"decoded_adaptor_lr: {self.decoded_adaptor_lr}: the decoder level's adaptors learn at a "
                             f"rate >= 0, with levels: 2 only (null: adaptor_lr)")
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
        channels = map_channels(model, self.levels)
        net = nn.Module()
        device = next(model.parameters()).device
        net.adaptors = adaptors(tasks, channels[0]).to(device)  # the encoder's level, named as with one level
        if self.levels == 2:
            net.decoded_adaptors = adaptors(tasks, channels[1]).to(device)
        # a plain dict: the teachers are neither trained, counted, checkpointed nor moved with the method's modules
        net.teachers = {name: load_teacher(teachers[name], self.teacher_model, name, task, model)
                        for name, task in tasks.items()}
        net.weights = {name: self.task_weight(name, task) for name, task in tasks.items()}
        if self.levels == 2:  # hooked after the teachers are built: an untrained teacher is a copy of the student
            net.decoded = {"student": Captured(decoded_layer(model)),
                           **{name: Captured(decoded_layer(teacher)) for name, teacher in net.teachers.items()}}
        return net

    def main_parameters(self, net: nn.Module) -> list[nn.Parameter]:
        return []  # the adaptors learn with their own optimiser

    def own_optimizers(self, net: nn.Module) -> list[tuple[torch.optim.Optimizer, object]]:
        groups = [{"params": list(net.adaptors.parameters())}]
        if self.levels == 2:
            decoded_lr = self.adaptor_lr if self.decoded_adaptor_lr is None else self.decoded_adaptor_lr
            groups.append({"params": list(net.decoded_adaptors.parameters()), "lr": decoded_lr})
        optimizer = torch.optim.Adam(groups, lr=self.adaptor_lr, weight_decay=self.adaptor_weight_decay)
        return [(optimizer, torch.optim.lr_scheduler.LambdaLR(optimizer, lambda epoch: 1.0))]

    def loss(self, ctx: StepContext, net: nn.Module | None) -> Tensor | None:
        view = ctx.views[0]
        students = [view.feature] + ([net.decoded["student"].output] if self.levels == 2 else [])
        total = view.feature.new_zeros((), dtype=torch.float32)
        for name, teacher in net.teachers.items():
            with torch.no_grad():  # the encoder alone where its output is all that is distilled
                targets = [teacher(view.images, return_feature=True)[1], net.decoded[name].output] \
                    if self.levels == 2 else [teacher(view.images, feature_only=True)]
            adaptors = [net.adaptors[name]] + ([net.decoded_adaptors[name]] if self.levels == 2 else [])
            for student, target, adaptor in zip(students, targets, adaptors):
                distance = normalised(adaptor(student.float()), self.eps) - normalised(target.float(), self.eps)
                total = total + net.weights[name] * ctx.batch_mean(distance.pow(2).sum(1))
        return total


def adaptors(tasks: dict[str, Task], channels: int) -> nn.ModuleDict:
    """A 1x1 convolution without bias per task, Xavier-normal initialised (the code's ``transformer``)."""
    convs = nn.ModuleDict({name: nn.Conv2d(channels, channels, 1, bias=False) for name in tasks})
    for conv in convs.values():
        nn.init.xavier_normal_(conv.weight)
    return convs


@spelt_as_before
def one_level_default(config: dict) -> dict:
    """``levels`` came with 0.3, at the code's 2; a job of one level trains as KD-MTL did before and is hashed so.
    ``decoded_adaptor_lr`` came with the fix that trains the decoder level's adaptors: a job of one level has none,
    and a job at 0 trains as the two levels did before the fix."""
    regularizer = config.get("method", {}).get("regularizer", {})
    if regularizer.get("name") != "kd_mtl":
        return config
    if regularizer.get("levels") == 1:
        del regularizer["levels"]
        regularizer.pop("decoded_adaptor_lr", None)
    elif regularizer.get("decoded_adaptor_lr") == 0:
        del regularizer["decoded_adaptor_lr"]
    return config
