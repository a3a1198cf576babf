"""Gradient combiners on the shared parameters (encoder and decoder of the "split" SegNet).

Per step, the gradient of every task's weighted term with respect to the shared parameters is computed once
(one backward pass per task); the combiner turns the stacked gradients G [k, P] of the k tasks present in the
batch into one, which replaces the plain sum; task-specific heads get their own term's gradient; a regularizer's
term is added unchanged. A task with no label in the batch has no row: stateless combiners aggregate the present
rows, stateful ones (methods/stateful_gradients.py) keep the absent task's state as it was.

This module holds the combiners of the papers mtlbench reproduces (PCGrad, IMTL-G, MGDA, CAGrad, GradNorm).
torchjd implements the first four as well; tests/test_aggregators.py shows on random Jacobians that
ours give torchjd's result (or where and why they differ), and ours are kept: MGDA's exact minimum-norm solver
and CAGrad's SLSQP are the ones the stored results were trained with.
"""
from __future__ import annotations

import itertools
from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..distributed import all_sum
from ..ids import spelt_as_before
from ..space import Float, Space
from ..tasks import Task
from .parts import GRADIENTS, Gradients
from .solvers import SolverCounts, count


def flat_gradients(term: Tensor, params: list[nn.Parameter]) -> Tensor:
    grads = torch.autograd.grad(term, params, retain_graph=True, allow_unused=True)
    return torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, params)])


class Combiner(Gradients):
    """Shared parameters get combine(G); everything else the plain gradient of the summed terms.

    ``combine`` receives the present tasks' gradients, their indices ``present`` into the job's task list, the
    part's state (``build``; None for a stateless combiner) and the present tasks' weighted terms (detached)."""

    def whole_gradients(self, model: nn.Module) -> list[nn.Parameter]:
        return [p for p in model.shared_parameters() if p.requires_grad]

    def combine(self, grads: Tensor, present: list[int], net: nn.Module | None, losses: Tensor) -> Tensor:
        raise NotImplementedError

    def backward(self, terms: dict[str, Tensor], rest: Tensor | None, model: nn.Module,
                 net: nn.Module | None) -> None:
        shared = self.whole_gradients(model)
        # several devices: each rank's gradients are partial sums, combined only once they are the global batch's
        stacked = all_sum(torch.stack([flat_gradients(term, shared) for term in terms.values()])) if terms else None
        extra = all_sum(flat_gradients(rest, shared)) if rest is not None else 0
        torch.stack([*terms.values(), *([rest] if rest is not None else [])]).sum().backward()
        present = [net.names.index(t) for t in terms] if net is not None else list(range(len(terms)))
        losses = torch.stack([term.detach() for term in terms.values()]) if terms else None
        combined = (self.combine(stacked, present, net, losses) if stacked is not None else 0) + extra
        offset = 0
        for p in shared:
            p.grad = combined[offset:offset + p.numel()].view_as(p).clone()
            offset += p.numel()


@GRADIENTS.register("pcgrad")
@dataclass(frozen=True)
class PCGrad(Combiner):
    """PCGrad (Yu et al., NeurIPS 2020, Alg. 1): each task gradient, in turn against the others in random
    order, loses its component along any original gradient it conflicts with (negative inner product)."""

    def combine(self, grads: Tensor, present: list[int], net: nn.Module | None, losses: Tensor) -> Tensor:
        projected = grads.clone()
        for i in range(len(grads)):
            for j in torch.randperm(len(grads)).tolist():
                if j == i:
                    continue
                dot = projected[i] @ grads[j]
                if dot < 0:
                    projected[i] -= dot / (grads[j] @ grads[j]).clamp_min(1e-20) * grads[j]
        return projected.sum(0)


@GRADIENTS.register("imtl_g")
@dataclass(frozen=True)
class IMTLG(Combiner):
    """IMTL-G (Liu et al., ICLR 2021, Eq. 6): g = Σ α_t g_t with α_{2..T} = g_1 U^T (D U^T)^{-1},
    α_1 = 1 - Σ α_{2..T}, D = [g_1 - g_t], U = [u_1 - u_t], u_t = g_t / |g_t|: the combined gradient has
    equal projections on every unit task gradient."""

    def combine(self, grads: Tensor, present: list[int], net: nn.Module | None, losses: Tensor) -> Tensor:
        if len(grads) == 1:
            return grads[0]
        units = grads / grads.norm(dim=1, keepdim=True).clamp_min(1e-20)
        d, u = grads[:1] - grads[1:], units[:1] - units[1:]
        alpha = grads[:1] @ u.t() @ torch.linalg.pinv(d @ u.t())
        alpha = torch.cat([1 - alpha.sum(1, keepdim=True), alpha], 1)
        return (alpha @ grads)[0]


def min_norm_weights(gram: np.ndarray) -> np.ndarray:
    """argmin_{w in simplex} w^T K w, exactly: the optimum's support S has weights K_S^+ 1 / 1^T K_S^+ 1;
    every support is tried (2^T - 1 of them, 127 for 7 tasks) and the feasible one of least norm kept.
    Exact where the Frank-Wolfe solver of Sener & Koltun stops at a tolerance."""
    n = len(gram)
    best, best_value = np.full(n, 1.0 / n), float(np.full(n, 1.0 / n) @ gram @ np.full(n, 1.0 / n))
    for size in range(1, n + 1):
        for support in itertools.combinations(range(n), size):
            index = list(support)
            direction = np.linalg.pinv(gram[np.ix_(index, index)]) @ np.ones(size)
            if abs(direction.sum()) < 1e-15:
                continue
            weights = np.zeros(n)
            weights[index] = direction / direction.sum()
            value = float(weights @ gram @ weights)
            if weights.min() >= -1e-12 and value < best_value - 1e-15:
                best, best_value = np.clip(weights, 0, None) / np.clip(weights, 0, None).sum(), value
    return best


@GRADIENTS.register("mgda")
@dataclass(frozen=True)
class MGDA(Combiner):
    """MGDA (Sener & Koltun, NeurIPS 2018): the minimum-norm point of the convex hull of the task gradients
    on the shared parameters (solved exactly on their Gram matrix; no gradient normalisation)."""

    def combine(self, grads: Tensor, present: list[int], net: nn.Module | None, losses: Tensor) -> Tensor:
        weights = min_norm_weights((grads @ grads.t()).double().cpu().numpy())
        return torch.as_tensor(weights, dtype=grads.dtype, device=grads.device) @ grads


@GRADIENTS.register("cagrad")
@dataclass(frozen=True)
class CAGrad(Combiner):
    """CAGrad (Liu et al., NeurIPS 2021, Alg. 1, the authors' implementation): w = argmin_{w ∈ simplex}
    g_w·g_0 + c |g_0| |g_w| (SLSQP), g = (g_0 + c |g_0| / |g_w| g_w) / (1 + c²), g_0 the mean gradient, c = 0.4."""

    space: ClassVar[dict[str, Space]] = {"c": Float(0.1, 0.9)}  # Alg. 1 needs 0 ≤ c < 1
    c: float = 0.4
    max_failure_rate: float = 0.05

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        return SolverCounts(tasks)

    def combine(self, grads: Tensor, present: list[int], net: nn.Module | None, losses: Tensor) -> Tensor:
        from scipy.optimize import minimize

        n = len(grads)
        gram = (grads @ grads.t()).double().cpu().numpy()
        g0_norm = float(np.sqrt(gram.mean() + 1e-8))
        radius = self.c * g0_norm + 1e-8
        start = np.full(n, 1.0 / n)

        def objective(x: np.ndarray) -> float:
            return float(x @ gram @ start + radius * np.sqrt(x @ gram @ x + 1e-8))

        result = minimize(objective, start, bounds=[(0, 1)] * n,
                          constraints=({"type": "eq", "fun": lambda x: 1 - x.sum()},))
        count(net, bool(result.success))  # the authors use SLSQP's last iterate either way: so does this
        weights = torch.as_tensor(result.x, dtype=grads.dtype, device=grads.device)
        g_w = weights @ grads
        g = grads.mean(0) + radius / (g_w.norm() + 1e-8) * g_w
        return g / (1 + self.c ** 2)


@GRADIENTS.register("gradnorm")
@dataclass(frozen=True)
class GradNorm(Gradients):
    """GradNorm (Chen et al., ICML 2018, Alg. 1), α = 1.5: learned task weights w_t (start 1, renormalised
    to sum to T) scale the terms; G_t = |∇_W w_t L_t| on the last shared layer W; w follows the gradient
    of Σ_t |G_t - mean(G) r_t^α| (target held constant), r_t = L̃_t / mean(L̃), L̃_t = L_t / L_t(first step);
    the network follows Σ_t w_t L_t with w held constant. Tasks absent from a batch are left out of both."""

    space: ClassVar[dict[str, Space]] = {"alpha": Float(0.0, 3.0)}  # 0 (equal gradient norms) to twice 1.5
    alpha: float = 1.5

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        state = nn.Module()
        state.names = list(tasks)
        state.weights = nn.Parameter(torch.ones(len(tasks)))
        state.register_buffer("initial", torch.full((len(tasks),), float("nan")))
        return state

    def backward(self, terms: dict[str, Tensor], rest: Tensor | None, model: nn.Module,
                 net: nn.Module | None) -> None:
        with torch.no_grad():
            net.weights.mul_(len(net.weights) / net.weights.sum())
        index = [net.names.index(t) for t in terms]
        losses = torch.stack(list(terms.values()))
        weights = net.weights[index]
        layer = model.last_shared_layer()
        # ∇_W (w_t L_t) = w_t ∇_W L_t: G_t is differentiable in w without a double backward through the network
        norms = weights.abs() * torch.stack([all_sum(torch.autograd.grad(loss, layer, retain_graph=True)[0]).norm()
                                             for loss in losses])
        with torch.no_grad():
            initial = net.initial[index]
            net.initial[index] = torch.where(torch.isnan(initial), losses.detach().float(), initial)
            ratio = losses.detach() / net.initial[index]
            target = norms.mean() * (ratio / ratio.mean()) ** self.alpha
        (net.weights.grad,) = torch.autograd.grad((norms - target).abs().sum(), net.weights, retain_graph=True)
        total = (weights.detach() * losses).sum() + (rest if rest is not None else 0)
        total.backward()


@GRADIENTS.register("cosreg")
@dataclass(frozen=True)
class CosReg(Gradients):
    """CosReg (Suteu and Guo 2019, arXiv:1912.06844; the "CosReg" row of Li et al. 2022a Table 1): the summed task
    losses plus ``weight`` × Σ_{i<j} cos²(g_i, g_j), g_t = ∇_θ L_t on the shared parameters θ, a penalty that
    pushes every two task gradients towards orthogonality and is back-propagated through the gradients themselves
    (a double backward, the "multiple back-propagation" Li et al. set STA against).

    Suteu and Guo's text is not among the papers mtlbench is built from, and Li et al. 2022a give neither the
    penalty's form nor its weight: the squared cosine (which penalises conflicting and aligned gradients alike, as
    "near orthogonal" asks) and ``weight`` 1 are mtlbench's reading, named in docs/methods.md, with a search range
    for `mtlbench tune`. It is a gradients part rather than a regularizer because it acts on the task gradients
    of the shared weights, which only this axis sees; it therefore cannot be combined with PCGrad or MGDA.
    """

    space: ClassVar[dict[str, Space]] = {"weight": Float(0.01, 10.0, log=True)}
    single_device: ClassVar[str] = ("its penalty is differentiated through the task gradients (a double backward), "
                                    "which mtlbench does not carry across devices")
    weight: float = 1.0

    def backward(self, terms: dict[str, Tensor], rest: Tensor | None, model: nn.Module,
                 net: nn.Module | None) -> None:
        total = torch.stack([*terms.values(), *([rest] if rest is not None else [])]).sum()
        if len(terms) > 1:
            total = total + self.weight * orthogonality_penalty(list(terms.values()), model)
        total.backward()


def orthogonality_penalty(terms: list[Tensor], model: nn.Module) -> Tensor:
    """Σ_{i<j} cos²(∇_θ L_i, ∇_θ L_j) over the shared parameters, differentiable in θ (create_graph)."""
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    rows = []
    for term in terms:
        grads = torch.autograd.grad(term, shared, retain_graph=True, create_graph=True, allow_unused=True)
        rows.append(torch.cat([(g if g is not None else torch.zeros_like(p)).flatten() for g, p in zip(grads, shared)]))
    stacked = torch.stack(rows)
    units = stacked / stacked.norm(dim=1, keepdim=True).clamp_min(1e-20)
    cos = units @ units.t()
    return cos.triu(diagonal=1).pow(2).sum()


@spelt_as_before
def cagrad_failure_rate_default(config: dict) -> dict:
    """CAGrad's ``max_failure_rate`` came with 0.3 and only stops a run: at its default, hashed as before."""
    gradients = config.get("method", {}).get("gradients", {})
    if gradients.get("name") == "cagrad" and gradients.get("max_failure_rate") == CAGrad.max_failure_rate:
        del gradients["max_failure_rate"]
    return config
