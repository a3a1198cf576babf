"""The loss balancers and gradient aggregators of issue 34: agreement with torchjd where it implements a method,
cases with a known answer for the others, the solver-failure count, and what each does when a task is absent."""
from __future__ import annotations

import copy

import numpy as np
import pytest
import torch

from conftest import TINY_JOB, TINY_SUITE, preset
from mtlbench.methods import GRADIENTS, METHODS, WEIGHTINGS
from mtlbench.methods.loss_balancers import FAMO
from mtlbench.methods.solvers import SolverCounts, SolverFailures, check_failure_rate
from mtlbench.methods.stateful_gradients import nash_weights
from mtlbench.registry import build
from mtlbench.train import run_job

torchjd = pytest.importorskip("torchjd.aggregation")
TASKS = {"seg": None, "depth": None, "normal": None}


def jacobians(count: int = 5, tasks: int = 3, size: int = 40):
    generator = torch.Generator().manual_seed(0)
    return [torch.randn(tasks, size, generator=generator, dtype=torch.float64) for _ in range(count)]


def combiner(name: str, size: int = 40, **settings):
    part = build(GRADIENTS, {"name": name, **settings})
    return part, part.build(TASKS, _Shared(size))


class _Shared(torch.nn.Module):
    def __init__(self, size: int) -> None:
        super().__init__()
        self.weight = torch.nn.Parameter(torch.zeros(size))

    def shared_parameters(self):
        return [self.weight]


def ours(name: str, jacobian: torch.Tensor, net=None, part=None, present=(0, 1, 2), losses=None):
    part = part or build(GRADIENTS, {"name": name})
    return part.combine(jacobian, list(present), net, losses if losses is not None else torch.ones(len(jacobian)))


# ------------------------------------------------------------------------------------ agreement with torchjd
def test_mgda_is_the_exact_minimum_norm_point_torchjds_frank_wolfe_approaches():
    for jacobian in jacobians():
        exact = ours("mgda", jacobian)
        iterated = torchjd.MGDA(epsilon=1e-9, max_iters=100_000)(jacobian)
        assert exact.norm() <= iterated.norm() + 1e-9  # the minimum norm: Frank-Wolfe can only be above it
        assert torch.allclose(exact, iterated, atol=2e-3 * exact.norm())


def test_pcgrad_equals_torchjds_with_the_same_random_order():
    for jacobian in jacobians():
        torch.manual_seed(3)
        mine = ours("pcgrad", jacobian)
        torch.manual_seed(3)
        assert torch.allclose(mine, torchjd.PCGrad()(jacobian), rtol=1e-9, atol=1e-12)


def test_imtl_g_equals_torchjds_on_independent_gradients():
    for jacobian in jacobians():
        assert torch.allclose(ours("imtl_g", jacobian), torchjd.IMTLG()(jacobian), rtol=1e-6, atol=1e-9)


def test_cagrad_is_torchjds_times_the_authors_rescaling():
    """torchjd solves CAGrad's dual with cvxpy and omits the authors' 1 / (1 + c²) (their rescale=1)."""
    pytest.importorskip("cvxpy")
    for jacobian in jacobians():
        part, net = combiner("cagrad")
        expected = torchjd.CAGrad(c=part.c, norm_eps=0.0)(jacobian) / (1 + part.c ** 2)
        assert torch.allclose(ours("cagrad", jacobian, net, part), expected, rtol=1e-3, atol=1e-4 * expected.norm())


def test_fairgrad_equals_torchjds():
    for jacobian in jacobians():
        part, net = combiner("fairgrad", alpha=2.0)
        assert torch.allclose(ours("fairgrad", jacobian, net, part), torchjd.FairGrad(alpha=2.0)(jacobian), rtol=1e-9)


@pytest.mark.filterwarnings("ignore:You are solving a parameterized problem that is not DPP")  # torchjd's cvxpy port
def test_nash_mtl_solves_the_bargaining_equation_as_torchjds_cvxpy_solver_does():
    pytest.importorskip("cvxpy")
    for jacobian in jacobians():
        part, net = combiner("nash_mtl", max_norm=0.0)
        expected = torchjd.NashMTL(n_tasks=3, max_norm=0.0, update_weights_every=1, optim_niter=20)(jacobian)
        assert torch.allclose(ours("nash_mtl", jacobian, net, part), expected, rtol=1e-3, atol=1e-3 * expected.norm())
        assert int(net.solver_failures) == 0


def test_gradvac_equals_torchjds_over_several_steps():
    part, net = combiner("gradvac")
    reference = torchjd.GradVac(beta=part.beta, eps=part.eps)
    for step, jacobian in enumerate(jacobians()):
        torch.manual_seed(step)
        mine = ours("gradvac", jacobian, net, part)
        torch.manual_seed(step)
        assert torch.allclose(mine, reference(jacobian), rtol=1e-9, atol=1e-12)


def test_excess_mtl_equals_torchjds_over_several_steps():
    part, net = combiner("excess_mtl")
    reference = torchjd.ExcessMTL(robust_step_size=part.step_size)
    for jacobian in jacobians():
        assert torch.allclose(ours("excess_mtl", jacobian.float(), net, part), reference(jacobian.float()), rtol=1e-4, atol=1e-6)


# ------------------------------------------------------------------------------------------ known answers
def test_nash_mtl_gives_orthogonal_gradients_unit_steps():
    """With orthogonal g_t, G^T G = diag(|g_t|²), so α_t = 1 / |g_t|: the update is the sum of the unit gradients."""
    jacobian = torch.tensor([[3.0, 0.0], [0.0, 0.5]], dtype=torch.float64)
    part, net = combiner("nash_mtl", max_norm=0.0)
    assert torch.allclose(ours("nash_mtl", jacobian, net, part, present=(0, 1)), torch.tensor([1.0, 1.0], dtype=torch.float64))
    part, net = combiner("nash_mtl")  # the authors' max_norm 1.0 clips it
    assert torch.allclose(ours("nash_mtl", jacobian, net, part, present=(0, 1)).norm(), torch.tensor(1.0, dtype=torch.float64))


def test_db_mtl_makes_every_tasks_update_as_large_as_the_largest():
    jacobian = torch.tensor([[1.0, 0.0], [0.0, 10.0]])
    part, net = combiner("db_mtl", size=2)
    # first step: the EMA from zero is (1 - β) g = 0.1 g; norms 0.1 and 1, so the first task is scaled by 10
    assert torch.allclose(ours("db_mtl", jacobian, net, part, present=(0, 1)), torch.tensor([1.0, 1.0]))


def test_moco_tracks_the_loss_scaled_unit_gradients():
    jacobian = torch.tensor([[2.0, 0.0], [0.0, 4.0]])
    part, net = combiner("moco", size=2)
    combined = ours("moco", jacobian, net, part, present=(0, 1), losses=torch.tensor([3.0, 5.0]))
    tracked = part.beta * torch.tensor([[3.0, 0.0], [0.0, 5.0]])  # y = β L_t g_t / |g_t| after one step from 0
    assert torch.allclose(net.tracked[:2], tracked, atol=1e-6)
    assert torch.allclose(combined, net.weights[:2] @ tracked)
    assert torch.isclose(net.weights[:2].sum(), torch.tensor(1.0))


def test_the_loss_balancers_weights_on_a_worked_case():
    losses = {"seg": torch.tensor(1.0, requires_grad=True), "depth": torch.tensor(2.0, requires_grad=True)}
    uw_so = build(WEIGHTINGS, {"name": "uw_so"}).terms(losses, None)
    expected = torch.softmax(torch.tensor([1.0, 0.5]), 0)  # softmax of 1 / L
    assert torch.allclose(torch.stack([uw_so[t] / losses[t] for t in losses]), expected)
    si = build(WEIGHTINGS, {"name": "si"}).terms(losses, None)
    grads = torch.autograd.grad(sum(si.values()), list(losses.values()))
    assert torch.allclose(torch.stack(grads), torch.tensor([1.0, 0.5]))  # d log L / dL = 1 / L
    part = build(WEIGHTINGS, {"name": "imtl_l"})
    net = part.build({"seg": None, "depth": None}, None)
    with torch.no_grad():
        net.log_scale.copy_(torch.tensor([0.5, -1.0]))
    terms = part.terms(losses, net)
    assert torch.isclose(terms["depth"], torch.exp(torch.tensor(-1.0)) * 2.0 + 1.0)  # e^s L - s


def test_stch_sets_each_nadir_from_the_last_warm_up_epoch_then_follows_the_smooth_maximum():
    part = build(WEIGHTINGS, {"name": "stch", "warmup_epochs": 2})
    net = part.build({"seg": None, "depth": None}, None)
    for epoch, values in enumerate([(9.0, 9.0), (2.0, 4.0)]):
        losses = {"seg": torch.tensor(values[0]), "depth": torch.tensor(values[1])}
        terms = part.terms(losses, net)
        assert torch.allclose(torch.stack([terms[t] for t in losses]), torch.ones(2))  # log L: coefficients 1 / L
        part.end_epoch(net, {})
    assert torch.allclose(net.nadir, torch.tensor([2.0, 4.0], dtype=torch.float64))
    losses = {"seg": torch.tensor(4.0, requires_grad=True), "depth": torch.tensor(4.0, requires_grad=True)}
    grads = torch.autograd.grad(sum(part.terms(losses, net).values()), list(losses.values()))
    weights = torch.softmax(torch.log(torch.tensor([2.0, 1.0])), 0)  # log(L / nadir), μ = 1
    assert torch.allclose(torch.stack(grads), 2 * weights / 4.0)


def test_famo_adam_on_the_logits_equals_torchs_when_every_task_is_present():
    part = FAMO()
    net = part.build({"seg": None, "depth": None, "normal": None}, None)
    logits = torch.zeros(3, requires_grad=True)
    adam = torch.optim.Adam([logits], lr=part.lr, weight_decay=part.weight_decay)
    generator = torch.Generator().manual_seed(0)
    for _ in range(4):
        before = {t: torch.rand((), generator=generator) + 0.5 for t in ("seg", "depth", "normal")}
        after = {t: v * (0.8 + 0.4 * torch.rand((), generator=generator)) for t, v in before.items()}
        part.after_update(net, before, after)
        delta = torch.log(torch.stack(list(before.values())) + 1e-8) - torch.log(torch.stack(list(after.values())) + 1e-8)
        adam.zero_grad()
        (logits.grad,) = torch.autograd.grad(torch.softmax(logits, 0), logits, grad_outputs=delta)
        adam.step()
        assert torch.allclose(net.logits, logits.detach(), atol=1e-6)


# ------------------------------------------------------------------------------------------ solver failures
def test_nash_mtl_counts_a_step_whose_bargaining_problem_has_no_solution():
    """A zero gradient row makes α_t (G^T G α)_t = 1 impossible: the step is counted as a failure, stays finite."""
    jacobian = torch.tensor([[1.0, 2.0], [0.0, 0.0]], dtype=torch.float64)
    part, net = combiner("nash_mtl")
    combined = ours("nash_mtl", jacobian, net, part, present=(0, 1))
    assert torch.isfinite(combined).all()
    assert (int(net.solver_calls), int(net.solver_failures)) == (1, 1)
    _, converged = nash_weights(np.diag([4.0, 1.0]), np.ones(2), 20)
    assert converged


def test_a_failure_rate_above_the_threshold_stops_the_run_with_the_counts():
    net = SolverCounts(TASKS)
    net.solver_calls += 20
    net.solver_failures += 2
    check_failure_rate("nash_mtl", net, 0.1)
    with pytest.raises(SolverFailures, match=r"nash_mtl: .* 2 of 20 steps \(10.0%, above max_failure_rate 0.05\)"):
        check_failure_rate("nash_mtl", net, 0.05)


def test_the_solver_counts_reach_result_json_and_each_epochs_record(write_suite, tmp_path):
    from mtlbench.cli import main
    from mtlbench.runner import Store

    path = write_suite({"methods": ["nash_mtl", "gradvac"], "train": {**TINY_SUITE["train"], "epochs": 1}})
    assert main(["run", str(path), "--results", str(tmp_path / "results"), "--wandb", "disabled"]) == 0
    records = {r["method"]: r for r in Store(tmp_path / "results").results("tiny")}
    counts = records["nash_mtl"]["solver"]["mtl"]["gradients"]
    assert counts["calls"] > 0 and 0 <= counts["failures"] <= counts["calls"]
    assert records["nash_mtl"]["history"][-1]["solver"]["gradients"] == counts  # per epoch, hence in W&B's history
    assert "solver" not in records["gradvac"]  # a rule that solves nothing reports nothing


def test_mtlbench_has_more_balancers_and_aggregators_than_libmtl():
    libmtl = 26  # LibMTL's weighting strategies (its README, 2025): EW ... UPGrad, MoDo, SDMGrad, FORUM, MOML, Auto-λ
    assert len(WEIGHTINGS.list()) + len(GRADIENTS.list()) > libmtl
    assert all(name in METHODS.list() for name in [*WEIGHTINGS.list(), *GRADIENTS.list()] if name not in ("uniform", "sum"))


def test_auto_lambdas_meta_gradient_is_the_look_ahead_derivative():
    """d L_meta(θ - α ∇_θ Σ λ_t L_t) / dλ_t = -α ∇_θ L_t(θ) · ∇L_meta(θ'), which the finite difference approximates."""
    from mtlbench.methods.auto_lambda import AutoLambda
    from mtlbench.methods.context import MetaStep, SeenBatch

    torch.manual_seed(0)
    model = torch.nn.Linear(3, 2).double()
    x, y = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)
    meta_x, meta_y = torch.randn(6, 3, dtype=torch.float64), torch.randn(6, 2, dtype=torch.float64)

    def task_losses(net, batch):
        out = net(batch.images)
        return {t: (out[:, j] - batch.targets["y"][:, j]).pow(2).mean() for j, t in enumerate(("seg", "depth"))}

    def seen(images, targets):
        return SeenBatch(images, {"y": targets}, {}, {}, torch.ones(6, 2))

    part = AutoLambda()
    net = part.build({"seg": None, "depth": None}, model)
    optimizer = torch.optim.SGD(model.parameters(), lr=0.1)
    index, grad = part.meta_gradient(net, MetaStep(model, optimizer, seen(x, y), seen(meta_x, meta_y), task_losses))
    params = list(model.parameters())
    losses = task_losses(model, seen(x, y))
    step = torch.autograd.grad(sum(0.1 * v for v in losses.values()), params, retain_graph=True)  # λ = 0.1
    virtual = [p - 0.1 * g for p, g in zip(params, step)]
    meta = (torch.nn.functional.linear(meta_x, virtual[0], virtual[1]) - meta_y).pow(2).mean(0).sum()
    d = torch.autograd.grad(meta, virtual)

    def look_ahead(loss):
        return -0.1 * sum((g * dd).sum() for g, dd in zip(torch.autograd.grad(loss, params, retain_graph=True), d))

    exact = torch.stack([look_ahead(loss) for loss in losses.values()])
    assert index.tolist() == [0, 1]
    assert torch.allclose(grad.double(), exact, rtol=1e-3, atol=1e-6)


def test_a_run_whose_solver_keeps_failing_stops_after_the_epoch(tmp_path, monkeypatch):
    import mtlbench.methods.stateful_gradients as stateful

    monkeypatch.setattr(stateful, "nash_weights", lambda gram, start, iterations: (start, False))
    config = copy.deepcopy(TINY_JOB)
    config["method"] = preset("nash_mtl")
    config["train"]["epochs"] = 1
    with pytest.raises(SolverFailures, match=r"nash_mtl: its solver did not converge on (\d+) of \1 steps \(100.0%"):
        run_job(config, tmp_path, test=False)
