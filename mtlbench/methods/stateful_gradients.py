"""Gradient aggregators that keep state across steps, or whose solver must be watched, each with per-task state.

Under partial labels a task may have no label in a batch: it then has no gradient row, and these parts update the
state of the present tasks only (an absent task's EMA, step count, weight or warm start stays as it was), solve
their problem over the present tasks, and never divide by the absent task's zero. torchjd implements several of
them (Nash-MTL, FairGrad, GradVac, ExcessMTL) with state sized to a fixed task count and without a solver report;
tests/test_aggregators.py shows that ours give torchjd's result when every task is present.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import numpy as np
import torch
from torch import Tensor, nn

from ..space import Float, Space
from ..tasks import Task
from .gradients import Combiner
from .parts import GRADIENTS
from .solvers import SolverCounts, count
from .weighting import TaskState


def task_state(tasks: dict[str, Task], solver: bool = False, **buffers: Tensor) -> nn.Module:
    """A per-task state with the given buffers (first dimension: the tasks), and solver counts for a part that
    solves a problem each step."""
    state = SolverCounts(tasks) if solver else TaskState(tasks)
    for name, value in buffers.items():
        state.register_buffer(name, value)
    return state


def nash_weights(gram: np.ndarray, start: np.ndarray, iterations: int, tolerance: float = 1e-6
                 ) -> tuple[np.ndarray, bool]:
    """α > 0 with K α = 1/α (Navon et al. 2022, Eq. 5), the Nash bargaining solution, as the minimiser of the
    strictly convex ½ α^T K α - Σ log α (its gradient is K α - 1/α): damped Newton from ``start``, each step halved
    until α stays positive and the objective decreases. Returns the last iterate and whether every equation
    α_t (K α)_t = 1 holds to ``tolerance``; they cannot where K is singular along a positive direction (a task
    whose gradient is zero, or a positive combination of the others' that cancels), which has no solution."""
    alpha = start.copy()

    def objective(x: np.ndarray) -> float:
        return 0.5 * x @ gram @ x - np.log(x).sum()

    def solved(x: np.ndarray) -> bool:
        return bool(np.abs(x * (gram @ x) - 1).max() <= tolerance)

    for _ in range(iterations):
        if solved(alpha):
            return alpha, True
        grad = gram @ alpha - 1 / alpha
        step = np.linalg.solve(gram + np.diag(1 / alpha ** 2), grad)
        size, value = 1.0, objective(alpha)
        while size > 1e-10 and ((alpha - size * step).min() <= 0 or objective(alpha - size * step) > value):
            size /= 2
        alpha = alpha - size * step
    return alpha, solved(alpha)


@GRADIENTS.register("nash_mtl")
@dataclass(frozen=True)
class NashMTL(Combiner):
    """Nash-MTL (Navon et al., ICML 2022, Alg. 1): g = Σ_t α_t g_t with α the bargaining solution of
    G^T G α = 1/α (Eq. 5), solved on the Gram matrix scaled by its Frobenius norm (as the authors' code, which
    rescales α back), warm-started from the task's previous α; the combined gradient's norm is clipped to
    ``max_norm`` (the authors' default 1.0; 0 disables). Solver: damped Newton on the convex potential whose
    stationary point is Eq. 5, where the authors run 20 rounds of a CCP linearisation in cvxpy; both stop at the
    same α. A step where it does not converge uses the last iterate (the authors keep their last one) and counts
    as a failure."""

    space: ClassVar[dict[str, Space]] = {"max_norm": Float(0.1, 10.0, log=True)}
    max_norm: float = 1.0
    iterations: int = 20
    max_failure_rate: float = 0.05

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        return task_state(tasks, solver=True, alpha=torch.ones(len(tasks), dtype=torch.float64))

    def combine(self, grads: Tensor, present: list[int], net: nn.Module | None, losses: Tensor) -> Tensor:
        gram = (grads @ grads.t()).double().cpu().numpy()
        scale = float(np.linalg.norm(gram))
        if scale == 0:  # every gradient is zero: any weights give the zero update
            return grads.sum(0)
        alpha, converged = nash_weights(gram / scale, net.alpha[present].cpu().numpy(), self.iterations)
        count(net, converged)
        net.alpha[present] = torch.from_numpy(alpha).to(net.alpha.device)
        combined = torch.as_tensor(alpha / np.sqrt(scale), dtype=grads.dtype, device=grads.device) @ grads
        norm = combined.norm()
        if self.max_norm > 0 and norm > self.max_norm:
            combined = combined * (self.max_norm / norm)
        return combined


@GRADIENTS.register("fairgrad")
@dataclass(frozen=True)
class FairGrad(Combiner):
    """FairGrad (Ban and Ji, ICML 2024, Eq. 4 and Alg. 1): g = Σ_t w_t g_t with w > 0 solving
    G^T G w = w^{-1/α} (α-fair utilities; α = 1 is proportional fairness, Nash-MTL's case), solved by
    scipy's least squares from uniform weights as the authors' code; a solve that stops unconverged counts as a
    failure and its last iterate is used (as theirs)."""

    space: ClassVar[dict[str, Space]] = {"alpha": Float(0.5, 5.0, log=True)}
    alpha: float = 1.0
    max_failure_rate: float = 0.05

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        return task_state(tasks, solver=True)

    def combine(self, grads: Tensor, present: list[int], net: nn.Module | None, losses: Tensor) -> Tensor:
        from scipy.optimize import least_squares

        gram = (grads @ grads.t()).double().cpu().numpy()
        n = len(gram)
        result = least_squares(lambda w: gram @ w - np.power(w, -1.0 / self.alpha), np.full(n, 1.0 / n),
                               bounds=(0, np.inf))
        count(net, bool(result.success))
        return torch.as_tensor(result.x, dtype=grads.dtype, device=grads.device) @ grads


@GRADIENTS.register("gradvac")
@dataclass(frozen=True)
class GradVac(Combiner):
    """Gradient Vaccine (Wang et al., ICLR 2021, Eq. 7-8, on the whole shared model): for each task i and, in
    random order, each other task j, where the cosine φ_ij of i's (already corrected) gradient with g_j is below
    the target φ̂_ij, g_i += |g_i| (φ̂_ij √(1-φ_ij²) - φ_ij √(1-φ̂_ij²)) / (|g_j| √(1-φ̂_ij²)) g_j; then
    φ̂_ij ← (1-β) φ̂_ij + β φ_ij; the result is Σ_i g_i. β = 0.5 as LibMTL and torchjd (the paper's experiments
    are multilingual translation). Targets of pairs with an absent task stay as they were."""

    space: ClassVar[dict[str, Space]] = {"beta": Float(0.01, 1.0, log=True)}
    beta: float = 0.5
    eps: float = 1e-8

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        return task_state(tasks, targets=torch.zeros(len(tasks), len(tasks), dtype=torch.float64))

    def combine(self, grads: Tensor, present: list[int], net: nn.Module | None, losses: Tensor) -> Tensor:
        gram = (grads @ grads.t()).double().cpu()  # T x T scalars: the loop below runs on the host
        targets = net.targets.cpu().clone()
        n = len(gram)
        coefficients = torch.eye(n, dtype=gram.dtype)  # row i: g_i's corrected gradient in the basis of the g_j
        norms = gram.diagonal().clamp_min(0).sqrt()
        for i in range(n):
            others = [j for j in range(n) if j != i]
            for j in (others[k] for k in torch.randperm(len(others)).tolist()):
                dots = coefficients[i] @ gram
                norm_i = (dots @ coefficients[i]).clamp_min(0).sqrt()
                cosine = dots[j] / (norm_i * norms[j] + self.eps)
                target = targets[present[i], present[j]]
                if cosine < target:
                    sin, sin_target = (1 - cosine ** 2).clamp_min(0).sqrt(), (1 - target ** 2).clamp_min(0).sqrt()
                    coefficients[i, j] += norm_i * (target * sin - cosine * sin_target) / (norms[j] * sin_target
                                                                                           + self.eps)
                targets[present[i], present[j]] = (1 - self.beta) * target + self.beta * cosine
        net.targets.copy_(targets)
        return coefficients.sum(0).to(grads.dtype).to(grads.device) @ grads


@GRADIENTS.register("moco")
@dataclass(frozen=True)
class MoCo(Combiner):
    """MoCo (Fernando et al., ICLR 2023, Alg. 1), as the authors' code shared through LibMTL: each task gradient
    is rescaled to the task's loss, ĝ_t = L_t g_t / |g_t|; a tracked estimate y_t ← y_t - β_k (y_t - ĝ_t) with
    β_k = β / k^σ_β; weights λ ← softmax(λ - γ_k (Y Y^T + ρ I) λ) with γ_k = γ / k^σ_γ (the code's softmax where
    the paper projects onto the simplex); g = Y^T λ. Defaults β = 0.5, σ_β = 0.5, γ = 0.1, σ_γ = 0.5, ρ = 0.
    Partial labels: an absent task's y_t, λ_t and step count stay as they were; λ and Y are those of the present
    tasks. Memory: one gradient-sized buffer per task."""

    space: ClassVar[dict[str, Space]] = {"beta": Float(0.1, 0.9), "gamma": Float(0.01, 1.0, log=True)}
    beta: float = 0.5
    beta_sigma: float = 0.5
    gamma: float = 0.1
    gamma_sigma: float = 0.5
    rho: float = 0.0

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        size = sum(p.numel() for p in model.shared_parameters() if p.requires_grad)
        return task_state(tasks, tracked=torch.zeros(len(tasks), size),
                          weights=torch.full((len(tasks),), 1 / len(tasks)), steps=torch.zeros(len(tasks), dtype=torch.long))

    def combine(self, grads: Tensor, present: list[int], net: nn.Module | None, losses: Tensor) -> Tensor:
        index = torch.tensor(present, device=net.tracked.device)
        net.steps[index] += 1
        steps = net.steps[index].to(grads.dtype).to(grads.device)
        scaled = grads / (grads.norm(dim=1, keepdim=True) + 1e-8) * losses[:, None]
        tracked = net.tracked[index].to(grads.device)
        tracked = tracked - (self.beta / steps ** self.beta_sigma)[:, None] * (tracked - scaled)
        gamma = self.gamma / steps.max() ** self.gamma_sigma
        weights = net.weights[index].to(grads.device)
        curvature = tracked @ tracked.t() + self.rho * torch.eye(len(present), device=grads.device)
        weights = torch.softmax(weights - gamma * curvature @ weights, 0)
        net.tracked[index] = tracked.to(net.tracked.device)
        net.weights[index] = weights.to(net.weights.device)
        return weights @ tracked


@GRADIENTS.register("excess_mtl")
@dataclass(frozen=True)
class ExcessMTL(Combiner):
    """ExcessMTL (He et al., ICML 2024, Eq. 6-9): each task's excess risk is estimated by the diagonal
    second-order term w_t = Σ g_t² / √(Σ_steps g_t² + 1e-7) (Adagrad-style accumulation), scaled by its first
    value (Sec. 3.2; the first value enters unscaled, as in the authors' code and torchjd); the task weights
    follow the exponentiated-gradient step p ← softmax(log p + η w) from uniform
    p = 1/T (the paper's initialisation, torchjd's; the authors' code starts at 1), η = 0.01 (LibMTL's default);
    g = Σ_t p_t g_t. Partial
    labels: only the present tasks' accumulators and weights move, the step renormalises the present tasks'
    weights within their share, and a task's first presence sets its scale. Memory: one gradient-sized buffer
    per task."""

    space: ClassVar[dict[str, Space]] = {"step_size": Float(0.001, 1.0, log=True)}
    step_size: float = 0.01

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        size = sum(p.numel() for p in model.shared_parameters() if p.requires_grad)
        return task_state(tasks, squares=torch.zeros(len(tasks), size),
                          log_weights=torch.full((len(tasks),), -float(np.log(len(tasks)))),
                          initial=torch.full((len(tasks),), float("nan")))

    def combine(self, grads: Tensor, present: list[int], net: nn.Module | None, losses: Tensor) -> Tensor:
        index = torch.tensor(present, device=net.squares.device)
        squared = grads.detach() ** 2
        squares = net.squares[index].to(grads.device) + squared
        net.squares[index] = squares.to(net.squares.device)
        excess = (squared / (squares + 1e-7).sqrt()).sum(1)
        initial = net.initial[index].to(grads.device)
        first = torch.isnan(initial)
        net.initial[index] = torch.where(first, excess, initial).to(net.initial.device)
        scaled = torch.where(first, excess, excess / (initial + 1e-7))
        log_weights = net.log_weights[index].to(grads.device)
        share = torch.logsumexp(log_weights, 0)  # the present tasks' share of the weight, kept
        log_weights = torch.log_softmax(log_weights + self.step_size * scaled, 0) + share
        net.log_weights[index] = log_weights.to(net.log_weights.device)
        return torch.softmax(log_weights, 0) @ grads


@GRADIENTS.register("db_mtl")
@dataclass(frozen=True)
class DBMTL(Combiner):
    """DB-MTL's gradient-magnitude balancing (Lin et al. 2023, Dual-Balancing MTL, Eq. 5-6): each task's gradient
    is tracked by an EMA ĝ_t ← g_t + (β/k^σ)(ĝ_t - g_t) (β = 0.9, σ = 0, LibMTL's defaults, by the paper's
    authors; k the task's step count) and
    g = Σ_t (max_s |ĝ_s| / |ĝ_t|) ĝ_t: every task's update is as large as the largest. The ``db_mtl`` preset pairs
    it with the loss-scale balancing of the ``si`` weighting at eps 1e-8 (log(L + 1e-8)), the paper's method.
    Partial labels: the maximum runs over the present tasks; an absent task's EMA and step count stay."""

    space: ClassVar[dict[str, Space]] = {"beta": Float(0.5, 0.99)}
    beta: float = 0.9
    beta_sigma: float = 0.0

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        size = sum(p.numel() for p in model.shared_parameters() if p.requires_grad)
        return task_state(tasks, tracked=torch.zeros(len(tasks), size), steps=torch.zeros(len(tasks), dtype=torch.long))

    def combine(self, grads: Tensor, present: list[int], net: nn.Module | None, losses: Tensor) -> Tensor:
        index = torch.tensor(present, device=net.tracked.device)
        net.steps[index] += 1
        decay = (self.beta / net.steps[index].to(grads.dtype) ** self.beta_sigma).to(grads.device)[:, None]
        tracked = grads + decay * (net.tracked[index].to(grads.device) - grads)
        net.tracked[index] = tracked.to(net.tracked.device)
        norms = tracked.norm(dim=1)
        return (norms.max() / (norms + 1e-8)) @ tracked
