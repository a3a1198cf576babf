"""Auto-λ (Liu, Davison and Johns, TMLR 2022): task weights meta-learned by a one-step look-ahead."""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor, nn

from ..space import Float, Space
from ..tasks import Task
from .context import MetaStep
from .loss_balancers import adam_on_tasks, adam_state
from .parts import WEIGHTINGS, Weighting


@WEIGHTINGS.register("auto_lambda")
@dataclass(frozen=True)
class AutoLambda(Weighting):
    """Auto-λ (Liu et al. 2022, Eq. 2-4, multi-task mode: every task primary), as the authors' ``auto_lambda.py``:
    L = Σ_t λ_t L_t with λ (start 0.1) updated before every step by Adam (lr 1e-4) along the gradient of the meta
    loss Σ_t L_t(θ') on another training batch, θ' = θ - α (m + ∇_θ Σ_t λ_t L_t + wd θ) the virtual step with the
    optimiser's learning rate α, weight decay and SGD momentum m (none for Adam); that gradient is -α times the
    finite difference (∇_λ L_train(θ + ε d) - ∇_λ L_train(θ - ε d)) / 2ε with d = ∇_θ' L_meta and ε = 0.01 / |d|.

    The authors draw the meta batch from a second, independently shuffled loader over the training set. Here it
    is the epoch's previous training batch, so the first step of each epoch makes no meta update (a resumed run
    then makes the same steps as an uninterrupted one). Partial labels: the virtual step covers the tasks labelled
    in this batch, the meta loss those labelled in the meta batch; only the present tasks' λ and Adam moments move.
    Cost: two forward and backward passes and two forward passes besides the update.
    """

    space: ClassVar[dict[str, Space]] = {"lr": Float(1e-5, 1e-3, log=True)}
    init: float = 0.1
    lr: float = 1e-4
    meta_batches: ClassVar[bool] = True
    single_device: ClassVar[str] = ("its meta step takes gradients of a virtual update of the network, which "
                                    "mtlbench does not carry across devices")

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        return adam_state(tasks, "weights", self.init)

    def terms(self, task_losses: dict[str, Tensor], net: nn.Module | None) -> dict[str, Tensor]:
        weights = net.weights[[net.index(t) for t in task_losses]]
        return {t: weights[j].to(loss) * loss for j, (t, loss) in enumerate(task_losses.items())}

    def meta_step(self, net: nn.Module | None, step: MetaStep) -> None:
        index, grad = self.meta_gradient(net, step)
        adam_on_tasks(net, "weights", index, grad, self.lr)

    def meta_gradient(self, net: nn.Module, step: MetaStep) -> tuple[Tensor, Tensor]:
        """The present tasks' indices and the meta loss's gradient in their λ (Eq. 4's finite difference)."""
        group_of = {id(p): group for group in step.optimizer.param_groups for p in group["params"]}
        params = [p for p in step.model.parameters() if p.requires_grad]
        losses = step.task_losses(step.model, step.batch)
        index = torch.tensor([net.index(t) for t in losses])
        weights = net.weights[index]
        train = sum(w.to(loss) * loss for w, loss in zip(weights, losses.values()))
        grads = torch.autograd.grad(train, params, allow_unused=True)
        virtual = self.virtual_model(net, step.model)
        virtual_params = [p for p in virtual.parameters() if p.requires_grad]
        with torch.no_grad():
            for p, v, g in zip(params, virtual_params, grads):
                group = group_of[id(p)]  # the heads' own learning rate where train.optimizer.head_lr sets one
                buffer = step.optimizer.state.get(p, {}).get("momentum_buffer")
                momentum = buffer * group["momentum"] if buffer is not None and group.get("momentum") else 0
                v.copy_(p - group["lr"] * (momentum + (g if g is not None else 0) + group.get("weight_decay", 0) * p))
        meta = sum(step.task_losses(virtual, step.meta).values())
        direction = [d if d is not None else torch.zeros_like(p) for d, p in
                     zip(torch.autograd.grad(meta, virtual_params, allow_unused=True), virtual_params)]
        epsilon = 0.01 / torch.cat([d.flatten() for d in direction]).norm().clamp_min(1e-20)
        plus, minus = self.shifted_losses(step, params, direction, epsilon, losses)
        hessian = (plus - minus) / (2 * epsilon)  # ∇_λ Σ λ_t L_t = (L_t): the difference of the losses
        return index, -group["lr"] * hessian.to(net.weights)

    @staticmethod
    def shifted_losses(step: MetaStep, params: list[nn.Parameter], direction: list[Tensor], epsilon: Tensor,
                       tasks: dict[str, Tensor]) -> tuple[Tensor, Tensor]:
        """The present tasks' training losses at θ + ε d and θ - ε d; θ is restored after."""
        shifted = []
        with torch.no_grad():
            for sign in (1, -2):
                for p, d in zip(params, direction):
                    p.add_(d, alpha=float(sign * epsilon))
                losses = step.task_losses(step.model, step.batch)
                shifted.append(torch.stack([losses[t] for t in tasks]))
            for p, d in zip(params, direction):
                p.add_(d, alpha=float(epsilon))
        return shifted[0], shifted[1]

    @staticmethod
    def virtual_model(net: nn.Module, model: nn.Module) -> nn.Module:
        """The copy of the model that takes the virtual step: made once, kept out of the state (its weights are
        rewritten before every use; its BatchNorm statistics follow its own forward passes, as the authors')."""
        if "virtual" not in net.__dict__:
            net.__dict__["virtual"] = copy.deepcopy(model)
        return net.__dict__["virtual"]
