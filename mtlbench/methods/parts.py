"""The four recipe axes of docs/design.md, each a registry of small parts.

| axis        | decides                                              | this module registers |
|-------------|------------------------------------------------------|-----------------------|
| supervision | which (image, task) pairs supervise a step, and how  | full (Nishi et al. 2024 Eq. 1)|
|             | their per-image losses average into task losses      |                       |
| weighting   | how task losses combine into one scalar              | uniform               |
| gradients   | how per-task gradients on shared weights combine     | sum                   |
| regularizer | what unlabelled (image, task) pairs learn from       | none                  |

A part is a dataclass whose fields are its hyperparameters with the paper's defaults; the other parts live in
modules of their own (supervision.py, weighting.py, gradients.py, consistency.py, mtpsl.py, jtr.py) and plug in
without touching the trainer.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable, ClassVar, Literal

import torch
from torch import Tensor, nn

from ..registry import Registry
from ..tasks import Task
from .context import MetaStep, StepContext

if TYPE_CHECKING:
    from ..data.base import Split
    from ..jobs import Job

SUPERVISIONS: Registry[type] = Registry("supervision")
WEIGHTINGS: Registry[type] = Registry("weighting")
GRADIENTS: Registry[type] = Registry("gradients")
REGULARIZERS: Registry[type] = Registry("regularizer")


class Part:
    """What every part may do besides its axis' job: own trainable modules or state (``build``; buffers
    hold state such as loss histories, so checkpoints carry it), train some parameters with optimisers of
    its own, refuse task sets it cannot train (``check``) or backbones it is not defined for (``models``, None
    for any), read other jobs' results (``inputs``, with a resolver registered in ``mtlbench.jobs.RESOLVERS``)
    and react at the end of an epoch."""

    models: ClassVar[tuple[str, ...] | None] = None
    # why the part cannot train one job on several devices (train.devices > 1; mtlbench/distributed.py), if it cannot
    single_device: ClassVar[str] = ""

    def check(self, tasks: dict[str, Task]) -> None:
        """Raise ValueError if this part cannot train these tasks (called before any training)."""

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module | None:
        return None

    @classmethod
    def standalone(cls, tasks: list[str]) -> dict[str, Any]:
        """Settings that let the part run without its ``inputs`` (``mtlbench bench``, on random tensors), where
        they change no step's cost; none for a part that reads no other job."""
        return {}

    def inputs(self, job: "Job", jobs: list["Job"]) -> dict[str, list[str]]:
        """For each resolver, the ids of the suite's jobs whose results it gives this job before it trains
        (those jobs then run first); raise ValueError if the suite lacks them."""
        return {}

    def main_parameters(self, net: nn.Module) -> list[nn.Parameter]:
        """The part's parameters trained by the main optimiser (all of them unless overridden)."""
        return list(net.parameters())

    def own_optimizers(self, net: nn.Module) -> list[tuple[torch.optim.Optimizer, object]]:
        return []

    def end_epoch(self, net: nn.Module | None, epoch_losses: dict[str, float]) -> None:
        """Called after every epoch with each task's mean training loss of that epoch."""

    def after_validation(self, net: nn.Module | None, metrics: dict[str, dict[str, float]]) -> None:
        """Called after every validation evaluation (never with test metrics)."""


class Supervision(Part):
    """Base of the supervision axis: the sub-steps of a batch and how their per-image losses average."""

    @property
    def interleaved_batches(self) -> int:
        """How many consecutive batches take turns in their sub-steps (1: a batch's sub-steps run back to
        back; see the STA-gap interpolation of Li et al. 2022a Table 7)."""
        return 1

    def steps(self, mask: Tensor) -> list[Tensor]:
        """The (image, task) pairs [B, T] that supervise each update made with this batch."""
        raise NotImplementedError

    def task_losses(self, per_image: dict[str, Tensor], rows: dict[str, Tensor], mask: Tensor) -> dict[str, Tensor]:
        raise NotImplementedError

    def relabel(self, tasks: dict[str, Task], model: nn.Module, train: "Split", mask: Tensor, batch_size: int,
                autocast: Callable[[], Any]) -> tuple["Split", Tensor, dict[str, Any]]:
        """The training split and mask [N, T] this supervision trains with, made before the first epoch (``model``:
        the network it will train, on its device), and what result.json's ``pseudo_labels`` records of them: the
        split and mask as they are, unless the part fills targets in (teachers' pseudo-labels: methods/teachers.py).
        The job's label mask (mask.npy, ``labels_per_task``) stays the scenario's."""
        return train, mask, {}


@SUPERVISIONS.register("full")
@dataclass(frozen=True)
class FullSupervision(Supervision):
    """Every labelled (image, task) pair supervises every step: Nishi et al. 2024 Eq. 1.

    L = (1/|B|) Σ_x Σ_{t ∈ T_x} L^t(x) / |T_x|, written as task losses L_t = (1/|B|) Σ_{x: t ∈ T_x} L^t(x)/|T_x|
    so that the weighting and gradient axes see one loss per task (their plain sum is Eq. 1). Images with
    no label contribute nothing (but still count in |B|, as in the authors' per-batch mean).
    ``per_image: sum`` drops the 1/|T_x|, as the released MTPSL and JTR training scripts do (identical for
    ``onelabel``; JTR's own pseudo-code, Alg. 1, has the 1/|T_x|).
    """

    per_image: Literal["mean", "sum"] = "mean"

    def steps(self, mask: Tensor) -> list[Tensor]:
        return [mask]

    def task_losses(self, per_image: dict[str, Tensor], rows: dict[str, Tensor], mask: Tensor) -> dict[str, Tensor]:
        divisor = mask.sum(1).clamp_min(1) if self.per_image == "mean" else torch.ones(mask.shape[0])
        divisor = divisor.to(next(iter(per_image.values())).device)
        batch = mask.shape[0]
        return {t: (loss / divisor[rows[t]]).sum() / batch for t, loss in per_image.items()}


class Weighting(Part):
    """Base of the weighting axis: task losses in, one term per task out, whose *sum* is the objective and
    whose gradients are what the gradients axis combines (non-linear schemes such as the geometric mean
    return gradient-equivalent terms c_t L_t with c_t detached)."""

    losses_after_update: ClassVar[bool] = False  # whether ``after_update`` needs the losses after the step
    meta_batches: ClassVar[bool] = False  # whether ``meta_step`` runs before each update, given another batch

    def terms(self, task_losses: dict[str, Tensor], net: nn.Module | None) -> dict[str, Tensor]:
        raise NotImplementedError

    def after_update(self, net: nn.Module | None, before: dict[str, Tensor], after: dict[str, Tensor]) -> None:
        """With ``losses_after_update``: called after each update with the present tasks' losses on the batch
        before it and after it (one more forward pass, without gradients, on the same augmented images)."""

    def meta_step(self, net: nn.Module | None, step: MetaStep) -> None:
        """With ``meta_batches``: called before each update whose epoch had a batch before it (``step.meta``, the
        previous training batch of the epoch, so that a run resumed at an epoch boundary makes the same steps)."""


@WEIGHTINGS.register("uniform")
@dataclass(frozen=True)
class UniformWeighting(Weighting):
    """The plain sum of task losses (the "Uniform" row of Yun and Cho 2023 Tables 1 and 7)."""

    def terms(self, task_losses: dict[str, Tensor], net: nn.Module | None) -> dict[str, Tensor]:
        return dict(task_losses)


class Gradients(Part):
    """Base of the gradients axis: back-propagate the weighted task terms and the regularizer's ``rest``."""

    def backward(self, terms: dict[str, Tensor], rest: Tensor | None, model: nn.Module,
                 net: nn.Module | None) -> None:
        raise NotImplementedError

    def whole_gradients(self, model: nn.Module) -> list[nn.Parameter]:
        """The parameters whose gradients ``backward`` leaves as the global batch's on every device (a combiner's
        shared weights); the others' are each device's share, summed by the recipe (mtlbench/distributed.py)."""
        return []


@GRADIENTS.register("sum")
@dataclass(frozen=True)
class SumGradients(Gradients):
    """Back-propagate the sum: per-task gradients on shared weights simply add up."""

    def backward(self, terms: dict[str, Tensor], rest: Tensor | None, model: nn.Module,
                 net: nn.Module | None) -> None:
        total = [*terms.values()] + ([rest] if rest is not None else [])
        torch.stack(total).sum().backward()


class Regularizer(Part):
    """Base of the regularizer axis. A regularizer may own networks (``build``), train some of their
    parameters with optimisers of its own (``own_optimizers``) and ask for ``extra_views`` further augmented
    views of the batch; the recipe forwards all views through the model in one batch, as the authors do."""

    single_device: ClassVar[str] = ("its loss is computed from each rank's images alone, and mtlbench does not "
                                    "combine it into the global batch's loss across devices")

    @property
    def extra_views(self) -> int:
        return 0

    def loss(self, ctx: StepContext, net: nn.Module | None) -> Tensor | None:
        raise NotImplementedError


@REGULARIZERS.register("none")
@dataclass(frozen=True)
class NoRegularizer(Regularizer):
    """Unlabelled (image, task) pairs contribute nothing (Supervised MTL)."""

    single_device: ClassVar[str] = ""

    def loss(self, ctx: StepContext, net: nn.Module | None) -> Tensor | None:
        return None
