"""Loss weightings that paper 003 (Tables 1, 7) and paper 002 (Table 1) compare against.

Each returns one term per task whose sum is the objective (gradient-equivalent terms for non-linear
schemes), so every weighting composes with every gradient combiner. A task absent from a batch (no label)
has no term and its weight state is left untouched: no NaN, no update from a zero loss.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor, nn

from ..tasks import Task
from .parts import WEIGHTINGS, Weighting


class TaskState(nn.Module):
    """Per-task parameters or buffers, indexed by task name."""

    def __init__(self, tasks: dict[str, Task]) -> None:
        super().__init__()
        self.names = list(tasks)

    def index(self, name: str) -> int:
        return self.names.index(name)


@WEIGHTINGS.register("uncertainty")
@dataclass(frozen=True)
class Uncertainty(Weighting):
    """Kendall et al. (CVPR 2018), homoscedastic uncertainty, as the MTAN code base implements it:
    Σ_t exp(-s_t) L_t / 2 + s_t / 2 with s_t = log σ_t² learned by the main optimiser, initialised to -0.5."""

    init: float = -0.5

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        state = TaskState(tasks)
        state.log_variance = nn.Parameter(torch.full((len(tasks),), self.init))
        return state

    def terms(self, task_losses: dict[str, Tensor], net: nn.Module | None) -> dict[str, Tensor]:
        s = net.log_variance
        return {t: 0.5 * torch.exp(-s[net.index(t)]) * loss + 0.5 * s[net.index(t)] for t, loss in task_losses.items()}


@WEIGHTINGS.register("dwa")
@dataclass(frozen=True)
class DWA(Weighting):
    """Dynamic Weight Average (Liu et al., CVPR 2019, Eq. 1): w_t = T exp(r_t / τ) / Σ_i exp(r_i / τ) with
    r_t = L_t(e-1) / L_t(e-2), the ratio of the last two epochs' mean training losses; w = 1 in the first two
    epochs; τ = 2."""

    temperature: float = 2.0

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        state = TaskState(tasks)
        state.register_buffer("history", torch.ones(2, len(tasks)))  # losses of epochs e-2, e-1
        state.register_buffer("epochs", torch.zeros((), dtype=torch.long))
        state.register_buffer("weights", torch.ones(len(tasks)))
        return state

    def end_epoch(self, net: nn.Module | None, epoch_losses: dict[str, float]) -> None:
        latest = net.history[1].clone()
        for name, loss in epoch_losses.items():
            latest[net.index(name)] = loss
        net.history.copy_(torch.stack([net.history[1], latest]))
        net.epochs += 1
        if net.epochs >= 2:
            ratio = net.history[1] / net.history[0]
            net.weights.copy_(len(ratio) * torch.softmax(ratio / self.temperature, 0))

    def terms(self, task_losses: dict[str, Tensor], net: nn.Module | None) -> dict[str, Tensor]:
        return {t: net.weights[net.index(t)] * loss for t, loss in task_losses.items()}


@WEIGHTINGS.register("gls")
@dataclass(frozen=True)
class GLS(Weighting):
    """Geometric Loss Strategy (Chennupati et al., CVPRW 2019): L = (Π_t L_t)^(1/T), over the tasks present.
    Returned as c_t L_t with c_t = L / (T L_t) detached: the same value and the same gradient."""

    def terms(self, task_losses: dict[str, Tensor], net: nn.Module | None) -> dict[str, Tensor]:
        losses = torch.stack(list(task_losses.values()))
        geometric = torch.exp(torch.log(losses.detach().clamp_min(1e-12)).mean())
        scale = geometric / (len(losses) * losses.detach().clamp_min(1e-12))
        return {t: scale[j] * loss for j, (t, loss) in enumerate(task_losses.items())}


@WEIGHTINGS.register("rlw")
@dataclass(frozen=True)
class RLW(Weighting):
    """Random Loss Weighting (Lin et al., TMLR 2022): every step, w = softmax(z) with z ~ N(0, I)."""

    def terms(self, task_losses: dict[str, Tensor], net: nn.Module | None) -> dict[str, Tensor]:
        weights = torch.softmax(torch.randn(len(task_losses)), 0)
        return {t: weights[j].to(loss.device) * loss for j, (t, loss) in enumerate(task_losses.items())}
