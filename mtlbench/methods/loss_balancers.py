"""Loss balancers of 2021-2024 (weighting axis): scale-invariant and log losses, IMTL-L, UW-SO, FAMO, STCH.

Each returns one term per present task whose sum has the method's gradient (terms c_t L_t with c_t detached for
a non-linear objective). A task without labels in a batch has no loss: it has no term, its state (a learned
scale, a logit, a nadir) stays as it was, and a softmax over tasks runs over the present ones.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..registry import require
from ..space import Float, Space
from ..tasks import Task
from .parts import WEIGHTINGS, Weighting
from .weighting import TaskState


def stacked(task_losses: dict[str, Tensor]) -> Tensor:
    return torch.stack(list(task_losses.values()))


def scaled_terms(task_losses: dict[str, Tensor], scale: Tensor) -> dict[str, Tensor]:
    """Terms c_t L_t with the coefficients detached."""
    return {t: scale[j].detach() * loss for j, (t, loss) in enumerate(task_losses.items())}


@WEIGHTINGS.register("si")
@dataclass(frozen=True)
class ScaleInvariant(Weighting):
    """Scale-invariant loss (the "SI" baseline of Navon et al. 2022, Sec. 6): L = Σ_t log(L_t + eps), invariant to
    each loss's scale; its gradient is Σ_t ∇L_t / (L_t + eps). ``eps`` 1e-8 is DB-MTL's loss-scale balancing
    (Lin et al. 2023, Eq. 3)."""

    eps: float = 0.0

    def terms(self, task_losses: dict[str, Tensor], net: nn.Module | None) -> dict[str, Tensor]:
        return scaled_terms(task_losses, 1 / (stacked(task_losses).detach() + self.eps).clamp_min(1e-20))


@WEIGHTINGS.register("imtl_l")
@dataclass(frozen=True)
class IMTLL(Weighting):
    """IMTL-L (Liu et al., ICLR 2021, Sec. 3.1): each loss gets a learned scale, L_t' = e^{s_t} L_t - s_t, trained
    with the network by the main optimiser (the loss-balance half of IMTL; the ``imtl`` preset adds IMTL-G on the
    shared parameters). The paper is silent on s's start: 0, every scale 1, the plain sum at the first step."""

    init: float = 0.0

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        state = TaskState(tasks)
        state.log_scale = nn.Parameter(torch.full((len(tasks),), self.init))
        return state

    def terms(self, task_losses: dict[str, Tensor], net: nn.Module | None) -> dict[str, Tensor]:
        s = net.log_scale
        return {t: torch.exp(s[net.index(t)]) * loss - s[net.index(t)] for t, loss in task_losses.items()}


@WEIGHTINGS.register("uw_so")
@dataclass(frozen=True)
class UWSO(Weighting):
    """UW-SO, analytical uncertainty weighting with softmax normalisation (Kirchdorfer et al. 2024, Eq. 9):
    w_t = softmax_t(1 / (τ L_t)) over the present tasks, losses detached; L = Σ_t w_t L_t. The paper tunes τ
    per dataset; 1 (no temperature) is the default here and ``mtlbench tune`` searches τ."""

    space: ClassVar[dict[str, Space]] = {"temperature": Float(0.1, 10.0, log=True)}
    temperature: float = 1.0

    def __post_init__(self) -> None:
        require("temperature", self.temperature, self.temperature > 0, "must be > 0")

    def terms(self, task_losses: dict[str, Tensor], net: nn.Module | None) -> dict[str, Tensor]:
        losses = stacked(task_losses).detach().clamp_min(1e-12)
        return scaled_terms(task_losses, torch.softmax(1 / (self.temperature * losses), 0))


@WEIGHTINGS.register("famo")
@dataclass(frozen=True)
class FAMO(Weighting):
    """FAMO (Liu et al., NeurIPS 2023, Alg. 1): weights z = softmax(ξ) over the present tasks; the network follows
    Σ_t z_t log L_t, as terms (z_t / (c L_t)) L_t with c = Σ_t z_t / L_t (losses + 1e-8, minima 0: the authors'
    code); after the update, the losses on the same batch give δ_t = log L_t(before) - log L_t(after) and ξ takes
    an Adam step (lr 0.025, weight decay 1e-3) along J_softmax(ξ)^T δ. Partial labels: the softmax, δ and the Adam
    step cover the present tasks; an absent task's logit and Adam moments stay (a per-task Adam, equal to torch's
    when every task is present)."""

    space: ClassVar[dict[str, Space]] = {"lr": Float(0.001, 0.1, log=True)}
    lr: float = 0.025
    weight_decay: float = 1e-3
    losses_after_update: ClassVar[bool] = True

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        return adam_state(tasks, "logits", 0.0)

    def terms(self, task_losses: dict[str, Tensor], net: nn.Module | None) -> dict[str, Tensor]:
        index = [net.index(t) for t in task_losses]
        weights = torch.softmax(net.logits[index], 0).to(stacked(task_losses).device)
        losses = stacked(task_losses).detach() + 1e-8
        return scaled_terms(task_losses, weights / ((weights / losses).sum() * losses))

    def after_update(self, net: nn.Module | None, before: dict[str, Tensor], after: dict[str, Tensor]) -> None:
        index = torch.tensor([net.index(t) for t in before])
        delta = (stacked(before) + 1e-8).log() - (stacked(after) + 1e-8).log()
        logits = net.logits[index].clone().requires_grad_(True)
        with torch.enable_grad():
            (grad,) = torch.autograd.grad(torch.softmax(logits, 0), logits, grad_outputs=delta.to(logits))
        adam_on_tasks(net, "logits", index, grad + self.weight_decay * net.logits[index], self.lr)


def adam_state(tasks: dict[str, Task], name: str, init: float) -> nn.Module:
    """Per-task values ``name`` with Adam's moments and step counts, for ``adam_on_tasks``."""
    state = TaskState(tasks)
    state.register_buffer(name, torch.full((len(tasks),), init))
    for moment in ("first_moment", "second_moment"):
        state.register_buffer(moment, torch.zeros(len(tasks)))
    state.register_buffer("steps", torch.zeros(len(tasks), dtype=torch.long))
    return state


def adam_on_tasks(net: nn.Module, name: str, index: Tensor, grad: Tensor, lr: float,
                  betas: tuple[float, float] = (0.9, 0.999), eps: float = 1e-8) -> None:
    """torch.optim.Adam's update (L2 weight decay folded into ``grad``) of the present tasks' entries of the
    buffer ``name``: an absent task's value, moments and step count stay (torch's Adam would move them by momentum)."""
    net.steps[index] += 1
    first = betas[0] * net.first_moment[index] + (1 - betas[0]) * grad
    second = betas[1] * net.second_moment[index] + (1 - betas[1]) * grad ** 2
    net.first_moment[index], net.second_moment[index] = first, second
    steps = net.steps[index].to(grad.dtype)
    corrected = second / (1 - betas[1] ** steps)
    getattr(net, name)[index] -= lr * first / (1 - betas[0] ** steps) / (corrected.sqrt() + eps)


@WEIGHTINGS.register("stch")
@dataclass(frozen=True)
class STCH(Weighting):
    """Smooth Tchebycheff scalarisation (Lin et al., ICML 2024, Eq. 9 and its MTL code): after ``warmup_epochs``
    epochs of Σ_t log L_t, each task's nadir L̄_t is its mean loss over the last warm-up epoch, and the network
    follows k μ log Σ_t exp(log(L_t / L̄_t) / μ) over the k present tasks (equal preferences), μ = 1. The authors'
    code (and LibMTL, default w = 4) count warm-up epochs from 0, so their ``warmup_epoch`` w is warmup_epochs = w + 1
    here. A task absent from every batch of the last warm-up epoch gets its nadir from the next epoch's batches;
    until every present task has one, steps follow Σ_t log L_t."""

    space: ClassVar[dict[str, Space]] = {"mu": Float(0.1, 10.0, log=True)}
    mu: float = 1.0
    warmup_epochs: int = 5

    def __post_init__(self) -> None:
        require("mu", self.mu, self.mu > 0, "must be > 0 (the smoothing)")
        require("warmup_epochs", self.warmup_epochs, self.warmup_epochs >= 1, "must be >= 1 (the nadir needs an epoch)")

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        state = TaskState(tasks)
        state.register_buffer("epochs", torch.zeros((), dtype=torch.long))
        state.register_buffer("sums", torch.zeros(len(tasks), dtype=torch.float64))
        state.register_buffer("counts", torch.zeros(len(tasks), dtype=torch.long))
        state.register_buffer("nadir", torch.full((len(tasks),), float("nan"), dtype=torch.float64))
        return state

    def end_epoch(self, net: nn.Module | None, epoch_losses: dict[str, float]) -> None:
        net.epochs += 1
        if net.epochs >= self.warmup_epochs:
            seen = torch.isnan(net.nadir) & (net.counts > 0)
            net.nadir[seen] = net.sums[seen] / net.counts[seen]

    def terms(self, task_losses: dict[str, Tensor], net: nn.Module | None) -> dict[str, Tensor]:
        index = torch.tensor([net.index(t) for t in task_losses], device=net.nadir.device)
        losses = stacked(task_losses).detach().clamp_min(1e-20)
        nadir = net.nadir[index].to(losses)
        unset = torch.isnan(nadir)
        if bool(unset.any()):
            if int(net.epochs) >= self.warmup_epochs - 1:  # the last warm-up epoch, or a task that missed it
                missing = index[unset.to(index.device)]
                net.sums[missing] += losses[unset].to(net.sums)
                net.counts[missing] += 1
            return scaled_terms(task_losses, 1 / losses)  # warm-up: Σ log L_t
        weights = torch.softmax((losses / nadir).log() / self.mu, 0)
        return scaled_terms(task_losses, len(losses) * weights / losses)
