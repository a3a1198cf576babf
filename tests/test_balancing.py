"""Allocation (STA, ISTA, STA-gap, FT+), loss weightings and gradient combiners: hand values and properties."""
import itertools
import math

import numpy as np
import pytest
import torch

from mtlbench.data.synthrooms import SynthRooms
from mtlbench.methods.supervision import FTPlus, ISTA, STA
from mtlbench.methods.gradients import CAGrad, IMTLG, MGDA, PCGrad, min_norm_weights
from mtlbench.methods.parts import SumGradients
from mtlbench.methods.weighting import DWA, GLS, RLW, Uncertainty
from mtlbench.models import SegNet

TASKS = {k: v for k, v in SynthRooms().tasks().items() if k in ("seg", "depth", "normal")}


def random_mask(n=64, t=4, seed=0):
    return (torch.rand(n, t, generator=torch.Generator().manual_seed(seed)) < 0.6).float()


@pytest.mark.parametrize("k", [1, 2])
def test_sta_allocates_k_of_each_images_labelled_tasks(k):
    mask = random_mask()
    (chosen,) = STA(k).steps(mask)
    assert ((chosen == 1) <= (mask == 1)).all()
    assert torch.equal(chosen.sum(1), mask.sum(1).clamp_max(k))
    counts = torch.stack([STA(1).steps(torch.ones(1, 4))[0][0] for _ in range(400)]).sum(0)
    assert counts.min() > 70  # uniform over the labelled tasks (100 each expected)


@pytest.mark.parametrize("k", [1, 2])
def test_ista_uses_every_labelled_pair_exactly_once(k):
    mask = random_mask()
    steps = ISTA(k).steps(mask)
    assert torch.equal(torch.stack(steps).sum(0), mask)
    assert all((step.sum(1) <= k).all() for step in steps)
    assert len(steps) == math.ceil(mask.sum(1).max().item() / k)
    assert len(FTPlus(k).steps(mask)) == len(steps)
    assert all(torch.equal(step, mask) for step in FTPlus(k).steps(mask))


def updates_of(method, masks):
    """The (batch, supervised pairs) of every update the recipe makes on these consecutive batches."""
    from mtlbench.methods import Recipe
    recipe = Recipe(method, TASKS, SegNet(TASKS, 0.0625))
    made = []
    recipe.update = lambda optimizer, images, targets, supervise, logs: made.append((images, supervise))
    group = recipe.interleaved_batches
    for first in range(0, len(masks), group):
        recipe.train_batches(None, [(i, None, masks[i]) for i in range(first, min(first + group, len(masks)))])
    return made


@pytest.mark.parametrize("gap", [1, 2, 4])
def test_sta_gap_meets_a_batch_again_gap_updates_later_and_uses_each_pair_once(gap):
    from mtlbench.methods import METHODS
    method = {**METHODS.get("ista"), "supervision": {"name": "sta_gap", "gap": gap}}
    full = updates_of(method, [torch.ones(8, 3)] * 8)
    masks = [random_mask(8, 3, seed) for seed in range(8)]
    made = updates_of(method, masks)
    for b, mask in enumerate(masks):
        visits = [step for step, (batch, _) in enumerate(full) if batch == b]
        assert len(visits) == 3 and all(later - earlier == gap for earlier, later in zip(visits, visits[1:]))
        visits = [step for step, (batch, _) in enumerate(made) if batch == b]
        assert all(later - earlier <= gap for earlier, later in zip(visits, visits[1:]))  # partial labels
        assert torch.equal(sum(supervise for batch, supervise in made if batch == b), mask)
    torch.manual_seed(0)
    interleaved = updates_of(method, masks)
    torch.manual_seed(0)
    ista = updates_of(METHODS.get("ista"), masks)
    if gap == 1:  # ISTA is the special case gap = 1 (Li et al. 2022a Sec. 4.4)
        assert all(a == b and torch.equal(x, y) for (a, x), (b, y) in zip(interleaved, ista, strict=True))


def test_sta_task_loss_is_the_mean_over_allocated_images_over_t():
    losses = {"seg": torch.tensor([1.0, 3.0]), "depth": torch.tensor([4.0])}
    out = STA().task_losses(losses, {}, torch.zeros(5, 3))
    assert out["seg"].item() == pytest.approx(2.0 / 3) and out["depth"].item() == pytest.approx(4.0 / 3)


def test_uncertainty_weighting_by_hand():
    part = Uncertainty()
    net = part.build(TASKS, None)
    terms = part.terms({"seg": torch.tensor(2.0), "normal": torch.tensor(1.0)}, net)
    assert terms["seg"].item() == pytest.approx(0.5 * math.exp(0.5) * 2.0 - 0.25)
    sum(terms.values()).backward()
    assert net.log_variance.grad[1] == 0 and net.log_variance.grad[0] != 0  # depth absent: untouched


def test_dwa_weights_follow_the_loss_ratio_of_the_last_two_epochs():
    part = DWA()
    net = part.build(TASKS, None)
    part.end_epoch(net, {"seg": 2.0, "depth": 1.0, "normal": 1.0})
    assert torch.equal(net.weights, torch.ones(3))  # first two epochs: w = 1
    part.end_epoch(net, {"seg": 1.0, "depth": 1.0, "normal": 0.5})
    ratio = torch.tensor([0.5, 1.0, 0.5])
    assert torch.allclose(net.weights, 3 * torch.softmax(ratio / 2, 0))
    terms = part.terms({"seg": torch.tensor(1.0)}, net)
    assert terms["seg"].item() == pytest.approx(net.weights[0].item())
    x = torch.tensor([0.7, 1.3, 0.4], requires_grad=True)  # DWA-G (Yun and Cho 2023 Table 6): gradient of Π L^w
    (grad,) = torch.autograd.grad(sum(DWA(mean="geometric").terms(dict(zip(TASKS, x)), net).values()), x)
    (expected,) = torch.autograd.grad(torch.prod(x ** net.weights), x)
    assert torch.allclose(grad, expected, rtol=1e-5)


def test_gls_has_the_value_and_gradient_of_the_geometric_mean():
    x = torch.tensor([0.5, 2.0, 4.0], requires_grad=True)
    losses = {t: x[j] ** 2 for j, t in enumerate(TASKS)}
    terms = GLS().terms(losses, None)
    total = sum(terms.values())
    reference = torch.prod(torch.stack(list(losses.values()))) ** (1 / 3)
    assert total.item() == pytest.approx(reference.item())
    (ours,) = torch.autograd.grad(total, x)
    (expected,) = torch.autograd.grad(torch.prod(x ** 2) ** (1 / 3), x)
    assert torch.allclose(ours, expected)


def test_rlw_weights_lie_on_the_simplex():
    terms = RLW().terms({t: torch.tensor(3.0) for t in TASKS}, None)
    assert sum(terms.values()).item() == pytest.approx(3.0)


def combined_by(combiner, grads):
    """A combiner's result on rows of every task present, with the state it builds (CAGrad's solver counts)."""
    net = combiner.build({f"t{i}": None for i in range(len(grads))}, None)
    return combiner.combine(grads, list(range(len(grads))), net, torch.ones(len(grads)))


def test_pcgrad_leaves_no_conflict_between_two_projected_gradients():
    g = torch.tensor([[1.0, 0.0], [-1.0, 1.0]])
    torch.manual_seed(0)
    combined = combined_by(PCGrad(), g)
    # g1 loses its component along g2 and vice versa: g1' = (0.5, 0.5), g2' = (0, 1)
    assert torch.allclose(combined, torch.tensor([0.5, 1.5]))
    for seed in range(20):
        g = torch.randn(2, 10, generator=torch.Generator().manual_seed(seed))
        a = g[0] - min(0, g[0] @ g[1]) / (g[1] @ g[1]) * g[1]
        b = g[1] - min(0, g[1] @ g[0]) / (g[0] @ g[0]) * g[0]
        assert a @ g[1] >= -1e-6 and b @ g[0] >= -1e-6
        assert torch.allclose(combined_by(PCGrad(), g), a + b, atol=1e-6)


def test_imtl_g_projects_equally_on_every_unit_task_gradient():
    for seed in range(5):
        g = torch.randn(4, 30, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        combined = combined_by(IMTLG(), g)
        projections = (g / g.norm(dim=1, keepdim=True)) @ combined
        assert torch.allclose(projections, projections[0].expand(4), rtol=1e-8)


def test_mgda_finds_the_minimum_norm_point_of_the_convex_hull():
    for seed in range(5):
        g = torch.randn(3, 6, generator=torch.Generator().manual_seed(seed), dtype=torch.float64)
        ours = combined_by(MGDA(), g).norm().item()
        grid = np.linspace(0, 1, 201)
        best = min(np.linalg.norm(a * g[0].numpy() + b * g[1].numpy() + (1 - a - b) * g[2].numpy())
                   for a, b in itertools.product(grid, grid) if a + b <= 1)
        assert ours <= best + 1e-9
    w = min_norm_weights(np.array([[1.0, -1.0], [-1.0, 1.0]]))
    assert np.allclose(w, [0.5, 0.5])  # opposite gradients: the origin


def test_cagrad_by_hand_on_agreeing_gradients_and_c_zero():
    g = torch.tensor([[1.0, 2.0], [1.0, 2.0]])
    assert torch.allclose(combined_by(CAGrad(0.4), g), g[0] * (1 + 0.4) / (1 + 0.4 ** 2), atol=1e-4)
    h = torch.randn(3, 5, generator=torch.Generator().manual_seed(0))
    assert torch.allclose(combined_by(CAGrad(0.0), h), h.mean(0), atol=1e-5)


class SumCombiner(PCGrad):
    def combine(self, grads, present, net, losses):
        return grads.sum(0)


def test_a_combiner_replaces_only_the_shared_gradient():
    images = torch.rand(2, 3, 32, 32)

    def gradients(combiner):
        torch.manual_seed(0)
        model = SegNet(TASKS, 0.0625)
        preds = model(images)
        terms = {t: preds[t].float().pow(2).mean() for t in TASKS}
        combiner.backward(terms, preds["seg"].mean(), model, None)
        return {name: p.grad.clone() for name, p in model.named_parameters()}

    plain, combined = gradients(SumGradients()), gradients(SumCombiner())
    assert all(torch.allclose(plain[k], combined[k], rtol=1e-4, atol=1e-5) for k in plain)  # summation order


def amtl_state(potentials=None, **params):
    from mtlbench.methods.weighting import AMTL
    part = AMTL(potentials=potentials or {"seg": 0.5, "depth": 0.8, "normal": 0.4}, **params)
    return part, part.build(TASKS, None)


def validation(miou, delta1, within):
    return {"seg": {"miou": miou}, "depth": {"delta1": delta1},
            "normal": {"within_11.25": within, "within_11.25_per_image": within}}


def test_amtl_weights_start_uniform_and_fall_as_accuracy_nears_the_potential():
    part, net = amtl_state()
    assert torch.allclose(net.weights, torch.full((3,), 1 / 3))
    part.after_validation(net, validation(0.45, 0.2, 0.2))  # seg near its potential, depth far
    focal = (1 - torch.tensor([0.45, 0.2, 0.2]) / (1.05 * torch.tensor([0.5, 0.8, 0.4]))) ** 2
    assert torch.allclose(net.weights, torch.softmax(focal, 0))
    assert net.weights[0] < net.weights[2] < net.weights[1]
    part.after_validation(net, validation(0.25, 0.2, 0.2))  # EMA: 0.1 * 0.25 + 0.9 * 0.45
    assert net.accuracy[0].item() == pytest.approx(0.43)


def test_amtl_state_updates_on_the_device_it_lives_on():
    """The accuracy EMA is built on the state's device (a CUDA run once failed here: the H200 check of issue 35);
    the meta device stands in for a GPU on a CPU-only machine."""
    part, net = amtl_state()
    net.to("meta")
    part.after_validation(net, validation(0.45, 0.2, 0.2))
    assert net.accuracy.device.type == "meta" and net.weights.device.type == "meta"


def test_amtl_geometric_mean_by_hand_and_scale_invariant_direction():
    part, net = amtl_state()
    part.after_validation(net, validation(0.3, 0.5, 0.2))
    w = net.weights
    x = torch.tensor([0.7, 1.3, 0.4], requires_grad=True)
    terms = part.terms({t: x[j] for j, t in enumerate(TASKS)}, net)
    assert sum(terms.values()).item() == pytest.approx(torch.prod(x.detach() ** w).item(), rel=1e-6)
    (grad,) = torch.autograd.grad(sum(terms.values()), x)
    scaled = part.terms({t: x[j] * (10.0 if t == "depth" else 1.0) for j, t in enumerate(TASKS)}, net)
    (grad_scaled,) = torch.autograd.grad(sum(scaled.values()), x)
    assert torch.allclose(grad / grad.norm(), grad_scaled / grad_scaled.norm(), atol=1e-6)


def test_amtl_without_a_task_in_the_batch_renormalises_instead_of_nan():
    part, net = amtl_state()
    terms = part.terms({"seg": torch.tensor(0.5, requires_grad=True), "depth": torch.tensor(2.0)}, net)
    total = sum(terms.values())
    assert torch.isfinite(total) and total.item() == pytest.approx(math.sqrt(0.5 * 2.0))


def test_dtp_weights_are_focal_weights_of_the_accuracy_ema_by_hand():
    from mtlbench.methods.weighting import DTP
    part = DTP()
    net = part.build(TASKS, None)
    x = torch.tensor([0.7, 1.3, 0.4])
    assert sum(part.terms({t: x[j] for j, t in enumerate(TASKS)}, net).values()).item() == pytest.approx(2.4)
    part.after_validation(net, validation(0.5, 0.9, 0.2))
    part.after_validation(net, validation(0.3, 0.9, 0.2))  # seg EMA: 0.1 * 0.3 + 0.9 * 0.5 = 0.48
    expected = [-(1 - k) * math.log(k) for k in (0.48, 0.9, 0.2)]
    assert net.weights.tolist() == pytest.approx(expected, rel=1e-5)
    assert net.weights[2] > net.weights[0] > net.weights[1]  # the least accurate task is prioritised
    terms = part.terms({"seg": x[0], "normal": x[2]}, net)  # depth unlabelled in this batch
    assert sum(terms.values()).item() == pytest.approx(expected[0] * 0.7 + expected[2] * 0.4, rel=1e-5)
    x.requires_grad_(True)
    geometric = DTP(mean="geometric").terms({t: x[j] for j, t in enumerate(TASKS)}, net)
    (grad,) = torch.autograd.grad(sum(geometric.values()), x)
    (expected_grad,) = torch.autograd.grad(torch.prod(x ** torch.tensor(expected)), x)  # gradient-equivalent
    assert torch.allclose(grad, expected_grad, rtol=1e-5)


def test_gradnorm_moves_weights_towards_equal_gradient_norms_at_the_last_shared_layer():
    from mtlbench.methods.gradients import GradNorm
    torch.manual_seed(0)
    model = SegNet(TASKS, 0.0625)
    part = GradNorm()
    net = part.build(TASKS, model)
    preds = model(torch.rand(2, 3, 32, 32))
    terms = {"seg": preds["seg"].float().pow(2).mean(), "depth": 10 * preds["depth"].float().pow(2).mean()}
    layer = model.last_shared_layer()
    norms = [torch.autograd.grad(t, layer, retain_graph=True)[0].norm() for t in terms.values()]
    part.backward(terms, None, model, net)
    # at the first step r_t = 1: the task with the larger gradient norm gets a positive weight gradient
    larger = int(norms[1] > norms[0])
    assert net.weights.grad[[0, 1][larger]] > 0 > net.weights.grad[[0, 1][1 - larger]]
    assert net.weights.grad[2] == 0  # normal absent from this batch
    g = torch.stack(norms)  # d/dw_t Σ|w_t G_t - mean(G)| at w = 1, r = 1: sign(G_t - mean G) G_t
    assert torch.allclose(net.weights.grad[:2], torch.sign(g - g.mean()) * g, rtol=1e-5)
    assert torch.equal(net.initial[:2], torch.stack([t.detach() for t in terms.values()]))
    assert all(p.grad is not None for p in model.shared_parameters())


def test_amtl_beyond_the_potential_follows_the_authors_code_or_clips():
    """accuracy_based.py raises 1 - acc / (m p) to gamma even when acc exceeds m p: with gamma 2 the weight of a
    task far beyond its potential rises again. ``clip`` (mtlbench before 0.2) clips the base at 0."""
    accuracy = torch.tensor([0.6, 0.95, 0.4])
    potentials = {"seg": 0.5, "depth": 0.8, "normal": 0.4}
    base = 1 - accuracy / (1.05 * torch.tensor([0.5, 0.8, 0.4]))  # seg and depth beyond 1.05 p: negative
    for mode, focal in (("code", base ** 2), ("clip", base.clamp_min(0) ** 2)):
        part, net = amtl_state(potentials, beyond_potential=mode)
        part.after_validation(net, validation(*accuracy.tolist()))
        assert torch.allclose(net.weights, torch.softmax(focal, 0)), mode
    part, net = amtl_state(potentials)
    part.after_validation(net, validation(*accuracy.tolist()))
    assert net.weights[1] > net.weights[2]  # depth (most beyond its potential) outweighs normal (at it)
    with pytest.raises(ValueError, match="gamma = 2.5: must be an integer with beyond_potential: code"):
        amtl_state(potentials, gamma=2.5)


class Shared(torch.nn.Module):
    """A model whose only shared parameter is w (what a gradients part reads of a model)."""

    def __init__(self, w):
        super().__init__()
        self.w = torch.nn.Parameter(torch.tensor(w, dtype=torch.float64))

    def shared_parameters(self):
        return [self.w]


def test_cosreg_penalty_is_the_squared_cosine_of_task_gradients_and_is_differentiated_through_them():
    from mtlbench.methods.gradients import CosReg, orthogonality_penalty

    a = torch.tensor([[2.0, 0.0, 1.0], [0.0, 1.0, 0.0]], dtype=torch.float64)
    b = torch.tensor([[1.0, 1.0, 0.0], [0.0, 0.0, 3.0]], dtype=torch.float64)

    def losses(w):
        return [0.5 * (a @ w).pow(2).sum(), 0.5 * (b @ w).pow(2).sum()]

    def cos2(w):  # g_1 = AᵀA w, g_2 = BᵀB w, in closed form
        g1, g2 = a.T @ a @ w, b.T @ b @ w
        return float((g1 @ g2) ** 2 / ((g1 @ g1) * (g2 @ g2)))

    w0 = [0.3, -0.7, 0.5]
    model = Shared(w0)
    assert float(orthogonality_penalty(losses(model.w), model).detach()) == pytest.approx(cos2(model.w.detach()))
    CosReg(weight=2.0).backward(dict(zip("xy", losses(model.w))), None, model, None)
    plain = (a.T @ a + b.T @ b) @ torch.tensor(w0, dtype=torch.float64)
    numeric = torch.tensor([(cos2(torch.tensor(w0, dtype=torch.float64) + e) - cos2(torch.tensor(w0, dtype=torch.float64) - e))
                            / 2e-6 for e in torch.eye(3, dtype=torch.float64) * 1e-6])
    assert torch.allclose(model.w.grad, plain + 2.0 * numeric, atol=1e-6)
