"""Consistency, MTPSL and JTR: hand-computed terms, per-image reference loops, and pinned gradient flow."""
import copy
from dataclasses import fields
from itertools import permutations

import pytest
import torch
import torch.nn.functional as F

from mtlbench.data.augment import Augment
from mtlbench.data.synthrooms import SynthRooms
from mtlbench.methods import METHODS, Recipe
from conftest import preset
from mtlbench.methods.consistency import Consistency
from mtlbench.methods.context import StepContext, View
from mtlbench.methods.jtr import JTR, Encoding
from mtlbench.methods.mtpsl import MTPSL, cosine_distance, source_input, target_input
from mtlbench.models import SegNet
from mtlbench.models.segnet import per_sample_norm
from mtlbench.warp import Warp

ALL = SynthRooms().tasks()
B, H, W = 4, 32, 32


def tasks_of(*names):
    return {n: ALL[n] for n in names}


def random_view(tasks, seed, warp=None, grad=False, feature_channels=16):
    g = torch.Generator().manual_seed(seed)
    preds, targets = {}, {}
    for name, task in tasks.items():
        preds[name] = torch.randn(B, task.channels, H, W, generator=g)
        if name == "normal":
            preds[name] = F.normalize(preds[name], dim=1)
            targets[name] = F.normalize(torch.randn(B, 3, H, W, generator=g), dim=1)
        elif name == "depth":
            preds[name] = preds[name].abs() + 0.5
            targets[name] = torch.rand(B, 1, H, W, generator=g) * 4 + 0.5
        elif name == "seg":
            targets[name] = torch.randint(0, task.channels, (B, H, W), generator=g)
        else:
            targets[name] = torch.rand(B, task.channels, H, W, generator=g)
        preds[name].requires_grad_(grad)
    feature = torch.randn(B, feature_channels, 1, 1, generator=g).requires_grad_(grad)
    return View(torch.rand(B, 3, H, W, generator=g), targets, preds, feature, warp)


def identity_warp():
    return Augment(False, False).sample(torch.zeros(B, 3, H, W), torch.Generator())


# ------------------------------------------------------------------------------------------ consistency
def test_consistency_is_eq_2_on_a_hand_computed_example():
    tasks = tasks_of("depth", "normal")
    first, second = random_view(tasks, 0), random_view(tasks, 1, identity_warp())
    first.preds["depth"] = torch.full((B, 1, H, W), 1.0)
    second.preds["depth"] = torch.full((B, 1, H, W), 3.0)
    first.preds["normal"] = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(B, 3, H, W)
    second.preds["normal"] = torch.tensor([0.0, 1.0, 0.0]).view(1, 3, 1, 1).expand(B, 3, H, W)
    mask = torch.tensor([[1.0, 0], [0, 1], [0, 0], [1, 1]])
    loss = Consistency().loss(StepContext(tasks, mask, [first, second]), None)
    depth_mse, normal_mse = 4.0, 2 / 3  # (3 - 1)^2; ((0-0)^2 + (1-0)^2 + (0-1)^2) / 3
    expected = (normal_mse + depth_mse + (depth_mse + normal_mse) / 2 + 0) / B
    assert loss.item() == pytest.approx(expected)


def test_consistency_is_zero_for_an_equivariant_predictor_under_scale_crop_and_flip():
    tasks = tasks_of("depth", "normal", "seg")
    first = random_view(tasks, 0)
    warp = Augment(True, True).sample(first.images, torch.Generator().manual_seed(3))
    assert (warp.scale > 1).any() and warp.mirror.any()
    second = View(warp.images(first.images), {}, {n: t.warped(first.preds[n], warp, mode="bilinear") for n, t in tasks.items()},
                  first.feature, warp)
    second.preds["seg"] = torch.log(tasks["seg"].warped(tasks["seg"].as_map(first.preds["seg"]), warp, mode="bilinear"))
    loss = Consistency().loss(StepContext(tasks, torch.zeros(B, 3), [first, second]), None)
    assert loss.item() == pytest.approx(0.0, abs=1e-10)


def test_consistency_reaches_both_views_and_only_unlabelled_tasks():
    tasks = tasks_of("depth", "normal")
    first, second = random_view(tasks, 0, grad=True), random_view(tasks, 1, identity_warp(), grad=True)
    Consistency().loss(StepContext(tasks, torch.tensor([[1.0, 0]] * B), [first, second]), None).backward()
    for view in (first, second):
        assert view.preds["normal"].grad.abs().sum() > 0
        assert view.preds["depth"].grad is None or view.preds["depth"].grad.abs().sum() == 0


# ---------------------------------------------------------------------------------------------- MTPSL
MASK = torch.tensor([[1.0, 0, 0], [1, 1, 0], [1, 0, 1], [1, 1, 1]])  # seg a source only of the full row 3


def mtpsl_setup(grad=False, **params):
    tasks = tasks_of("seg", "depth", "normal")
    torch.manual_seed(0)
    model = SegNet(tasks, 0.0625)
    part = MTPSL(**params)
    net = part.build(tasks, model)
    views = [random_view(tasks, 0, feature_channels=model.filters[-1]),
             random_view(tasks, 1, identity_warp(), grad=grad, feature_channels=model.filters[-1])]
    views[1].feature = torch.randn(B, model.filters[-1], 1, 1).requires_grad_(grad)
    return tasks, part, net, views


def argmax_one_hot(logits):
    """A Gumbel-softmax without the noise: the same sample in both computations."""
    return F.one_hot(logits.argmax(1), logits.shape[1]).movedim(-1, 1).float()


def test_a_gumbel_sample_is_torchs_with_the_same_draws():
    logits = torch.randn(5, 4, 3, 3, requires_grad=True)
    torch.manual_seed(7)
    expected = F.gumbel_softmax(logits, tau=1.0, hard=True, dim=1)
    (expected * torch.arange(4.0).view(1, 4, 1, 1)).sum().backward()
    expected_grad, logits.grad = logits.grad, None
    torch.manual_seed(7)
    ours = StepContext({}, torch.ones(5, 1), []).gumbel_sample(logits)
    (ours * torch.arange(4.0).view(1, 4, 1, 1)).sum().backward()
    assert torch.equal(ours, expected) and torch.equal(logits.grad, expected_grad)  # straight-through, as torch's


@pytest.mark.parametrize("positions", [None, torch.tensor([0, 1, 3, 4])])
def test_each_device_samples_its_rows_of_what_one_process_samples(positions):
    """Rank 1 of 2 holds images 1 and 3 of a batch of 5; the noise is drawn for every image of ``positions``."""
    logits = torch.randn(5, 4, 3, 3)
    chosen = torch.arange(5) if positions is None else positions
    one, device = StepContext({}, torch.ones(5, 1), []), StepContext({}, torch.ones(5, 1), [], rows=torch.tensor([1, 3]))
    torch.manual_seed(3)
    whole = one.gumbel_sample(logits[chosen], positions)
    after_one = torch.rand(1)
    torch.manual_seed(3)
    mine = device.gumbel_sample(logits[device.rows][device.own_rows(chosen)], positions)
    assert torch.equal(mine, whole[torch.isin(chosen, device.rows)])
    assert torch.equal(torch.rand(1), after_one)  # the generator advanced alike


@pytest.mark.parametrize("full_labels", ["all_pairs", "none"])
def test_mtpsl_equals_the_authors_per_image_per_pair_loop(full_labels, monkeypatch):
    """mapfns.py Mapfns.forward: partial labels map (unlabelled source, labelled target) pairs; an image with every
    label (--ssl-type full) maps every ordered pair of distinct tasks; ``none`` leaves such an image out."""
    monkeypatch.setattr(StepContext, "gumbel_sample", lambda ctx, logits, positions=None: argmax_one_hot(logits))
    tasks, part, net, views = mtpsl_setup(full_labels=full_labels)
    view = views[1]
    names = list(tasks)
    total = 0.0
    for i in range(B):  # the reference: batch size 1 everywhere, as nyu_mtl_xtc.py / mapfns.py
        full = bool(MASK[i].all()) and full_labels == "all_pairs"
        for s, t in permutations(names, 2):
            if (MASK[i, names.index(s)] == 0 and MASK[i, names.index(t)] == 1) or full:
                pair = torch.tensor([net.pairs[(s, t)]])
                m_s = net.encode(net.inputs[s](source_input(tasks[s], view.preds[s][i:i + 1], argmax_one_hot)), pair)
                m_t = net.encode(net.inputs[t](target_input(tasks[t], view.targets[t][i:i + 1])), pair)
                f = view.feature[i:i + 1]
                total = total + (cosine_distance(m_s, m_t) + 0.5 * (cosine_distance(m_s, f)
                                                                     + cosine_distance(m_t, f)))
    expected = 2.0 * total / B
    assert part.loss(StepContext(tasks, MASK, views), net).item() == pytest.approx(expected.item(), rel=1e-5)


def test_per_sample_norm_is_batchnorm_on_one_image():
    x = torch.randn(3, 8, 5, 5)
    norm, bn = per_sample_norm(8), torch.nn.BatchNorm2d(8).train()
    torch.nn.init.uniform_(norm.weight), torch.nn.init.uniform_(norm.bias)
    bn.weight.data, bn.bias.data = norm.weight.data.clone(), norm.bias.data.clone()
    assert torch.allclose(norm(x), torch.cat([bn(x[i:i + 1]) for i in range(3)]), atol=1e-5)


def test_mtpsl_gradient_flow():
    tasks, part, net, views = mtpsl_setup(grad=True)
    part.loss(StepContext(tasks, MASK, views), net).backward()
    view = views[1]
    assert view.feature.grad is None  # the backbone feature enters detached
    seg_grad = view.preds["seg"].grad.flatten(1).abs().sum(1)  # seg is labelled everywhere: a source only of
    assert (seg_grad[:3] == 0).all() and seg_grad[3] > 0  # the fully labelled image 3 (every ordered pair)
    depth_grad = view.preds["depth"].grad.flatten(1).abs().sum(1)
    assert (depth_grad[[0, 2, 3]] > 0).all() and depth_grad[1] == 0  # sources where unlabelled, and in image 3
    assert all(p.grad is not None for p in net.parameters())
    film = {id(p) for group in part.own_optimizers(net)[0][0].param_groups for p in group["params"]}
    main = {id(p) for p in part.main_parameters(net)}
    assert film and not film & main and film | main == {id(p) for p in net.parameters()}
    assert part.own_optimizers(net)[0][0].param_groups[0]["lr"] == 1e-3


def test_mtpsl_on_deeplab_maps_through_the_backbone_with_layer_wise_film_to_the_models_feature():
    """Nishi et al. 2024 Table 15: MTPSL on DeepLabV3+ (ResNet-50); the mapping network is the backbone's
    architecture with a FiLM per BatchNorm, its output the shape of the model's feature."""
    from mtlbench.methods.mtpsl import FiLMNorm
    from mtlbench.models import DeepLabResNet50

    tasks = tasks_of("seg", "depth", "normal")
    torch.manual_seed(0)
    model = DeepLabResNet50(tasks, "v3+")
    part = MTPSL()
    net = part.build(tasks, model)
    films = [m for m in net.modules() if isinstance(m, FiLMNorm)]
    assert len(films) == sum(isinstance(m, torch.nn.BatchNorm2d) for m in [*model.stem.modules(),
                                                                            *model.stages.modules()])
    assert not any(isinstance(m, torch.nn.BatchNorm2d) for m in net.modules())
    images = torch.rand(2, 3, 32, 32)
    preds, feature = model(images, return_feature=True)
    x = net.inputs["depth"](torch.rand(2, 1, 32, 32))
    assert net.encode(x, torch.tensor([0, 0])).shape == feature.shape
    films[-1].gamma.data[:, 1] = 3.0  # the pair's FiLM conditions the map
    assert not torch.allclose(net.encode(x, torch.tensor([0, 0])), net.encode(x, torch.tensor([1, 1])))
    film = {id(p) for group in part.own_optimizers(net)[0][0].param_groups for p in group["params"]}
    assert film == {id(p) for m in films for p in (m.gamma, m.beta)}
    mask = torch.tensor([[1.0, 0, 0], [0, 1, 1]])
    targets = SynthRooms(height=32, width=32, train=2, val=1, test=1).load("train").select(list(tasks)).batch(
        torch.arange(2), tasks)[1]
    views = [View(images, targets, preds, feature), View(images, targets, preds, feature)]
    loss = part.loss(StepContext(tasks, mask, views), net)
    loss.backward()
    assert torch.isfinite(loss) and net.inputs["seg"].weight.grad is not None
    with pytest.raises(ValueError, match="task_norm"):
        part.build(tasks, DeepLabResNet50(tasks, task_norm=True))


# ------------------------------------------------------------------------------------------------ JTR
def jtr_setup(grad=True, mask=None, names=("depth", "normal"), **params):
    tasks = tasks_of(*names)  # by default no segmentation: no Gumbel noise, so runs are comparable
    torch.manual_seed(0)
    model = SegNet(tasks, 0.0625)
    part = JTR(**params)
    net = part.build(tasks, model)
    augment = Augment(True, True)
    warps = [augment.sample(torch.zeros(B, 3, H, W), torch.Generator().manual_seed(k)) for k in (1, 2)]
    views = [random_view(tasks, 0, grad=grad)] + [random_view(tasks, k + 1, warps[k], grad=grad) for k in (0, 1)]
    mask = torch.tensor([[1.0, 0], [0, 1], [1, 1], [1, 0]]) if mask is None else mask
    return tasks, part, net, views, mask


def net_gradients(part, net, tasks, views, mask):
    net.zero_grad()
    part.loss(StepContext(tasks, mask, views), net).backward()
    return [p.grad.clone() for p in net.parameters()]


def test_jtr_code_gradient_flow():
    tasks, part, net, views, mask = jtr_setup()
    grads = net_gradients(part, net, tasks, views, mask)
    assert all(views[2].preds[n].grad is None for n in tasks)  # view 2 trains only the JTR network
    assert all(views[0].preds[n].grad is None for n in tasks)  # view 0 carries the supervised loss only
    depth = views[1].preds["depth"].grad.flatten(1).abs().sum(1)
    assert (depth[[1]] > 0).all() and (depth[[0, 2, 3]] == 0).all()  # labelled predictions are detached
    views[1].preds["depth"].data.mul_(3.0)  # L_Dist on view 1 goes through a frozen copy of the encoder:
    assert all(torch.equal(a, b) for a, b in zip(grads, net_gradients(part, net, tasks, views, mask)))


def test_jtr_paper_gradient_flow_trains_the_encoder_with_dist_and_reaches_labelled_heads():
    tasks, part, net, views, mask = jtr_setup(gradient_flow="paper", unlabeled_consistency=False)
    assert part.extra_views == 0
    grads = net_gradients(part, net, tasks, views, mask)
    assert views[0].preds["depth"].grad.flatten(1).abs().sum(1).min() > 0  # no detach in Eq. 5's L_Dist
    views[0].preds["depth"].data.mul_(3.0)
    changed = net_gradients(part, net, tasks, views, mask)
    assert any(not torch.equal(a, b) for a, b in zip(grads, changed))


@pytest.mark.parametrize("flow", ["code", "paper"])
def test_jtr_without_l_recon_never_runs_the_decoder_but_trains_the_encoder(flow):
    """Nishi et al. 2024 Table 8's "JTR w/o L_Recon": no reconstruction term, the decoder gets no gradient."""
    tasks, part, net, views, mask = jtr_setup(gradient_flow=flow, reconstruction=False)
    net.zero_grad()
    part.loss(StepContext(tasks, mask, views), net).backward()
    encoder = {id(p) for p in net.encoder.parameters()}
    assert all(p.grad is None for p in net.parameters() if id(p) not in encoder)
    assert any(p.grad is not None and p.grad.abs().sum() > 0 for p in net.parameters() if id(p) in encoder)
    with_recon = jtr_setup(gradient_flow=flow)[1]
    ctx = StepContext(tasks, mask, views)
    with torch.no_grad():
        assert float(part.loss(ctx, net)) < float(with_recon.loss(ctx, net))  # the recon losses are positive


def test_jtr_l1_and_l2_distances_are_per_image_means_of_the_bottleneck_difference():
    a, b = torch.randn(3, 4, 2, 5), torch.randn(3, 4, 2, 5)
    assert torch.allclose(JTR(distance="l1").dist(a, b), (a - b).abs().mean((1, 2, 3)))
    assert torch.allclose(JTR(distance="l2").dist(a, b), ((a - b) ** 2).mean((1, 2, 3)))
    assert torch.allclose(JTR().dist(a, b), 1 - torch.nn.functional.cosine_similarity(a, b, dim=1).mean((1, 2)))


def test_jtr_images_without_labels_regularise_across_views():
    unlabelled = torch.tensor([[1.0, 0], [0, 0], [1, 1], [1, 0]])
    for consistency, reaches_view0 in ((True, True), (False, False)):
        tasks, part, net, views, mask = jtr_setup(mask=unlabelled, unlabeled_consistency=consistency)
        part.loss(StepContext(tasks, mask, views), net).backward()
        grad = views[0].preds["normal"].grad
        assert (grad is not None and grad[1].abs().sum() > 0) == reaches_view0


def reference_jtr_code_loss(part, net, tasks, views, mask):
    """Per image with batch size 1 and a deep copy of the network, as train_nyuv2.py / nyuv2_segnet_jtr.py."""
    enc = Encoding(part.depth_mean, part.depth_std)
    total = 0.0
    for i in range(B):
        labelled = [t for j, t in enumerate(tasks) if mask[i, j] == 1]
        def one(view):
            return ({t: (view.preds[t][i:i + 1].detach() if t in labelled else view.preds[t][i:i + 1]) for t in tasks},
                    {t: view.targets[t][i:i + 1] for t in tasks})
        (p1, y1), (p2, y2) = one(views[1]), one(views[2])
        def valid(y):
            m = torch.ones(1, 1, H, W)
            for t in labelled:
                m = m * (y[t].abs().sum(1, keepdim=True) > 0).float()
            return m
        m1, m2 = valid(y1), valid(y2)
        y_hat_1 = torch.cat([enc.prediction(tasks[t], p1[t], m1, True) for t in tasks], 1)
        y_1 = torch.cat([enc.label(tasks[t], y1[t]) if t in labelled else enc.prediction(tasks[t], p1[t], m1, True)
                         for t in tasks], 1)
        y_hat_2 = torch.cat([enc.prediction(tasks[t], p2[t], m2, False) for t in tasks], 1)
        y_2 = torch.cat([enc.label(tasks[t], y2[t]) if t in labelled else enc.prediction(tasks[t], p2[t], m2, True)
                         for t in tasks], 1)
        copied = copy.deepcopy(net)
        d1 = cosine_distance(copied(y_1, feature_only=True), copied(y_hat_1, feature_only=True))
        (r_y, f_y), (r_hat, f_hat) = net(y_2.detach(), return_feature=True), net(y_hat_2.detach(), return_feature=True)
        dist = d1 + part.c_recon * cosine_distance(f_y, f_hat)
        outs_y, outs_hat = r_y["joint"].split([1, 3], 1), r_hat["joint"].split([1, 3], 1)
        recon = 0.0
        for k, t in enumerate(tasks):
            target_y = y2[t] if t in labelled else p2[t].detach()
            recon = recon + enc.recon_loss(tasks[t], outs_y[k], target_y, m2)
            encoded = enc.prediction(tasks[t], p2[t].detach(), m2, True)
            recon = recon + enc.recon_loss(tasks[t], outs_hat[k], encoded, m2)
        total = total + part.c_dist * dist + part.c_recon * recon
    return total / B


def test_jtr_equals_the_authors_per_image_loop():
    tasks, part, net, views, mask = jtr_setup(grad=False)
    ours = part.loss(StepContext(tasks, mask, views), net)
    assert ours.item() == pytest.approx(reference_jtr_code_loss(part, net, tasks, views, mask).item(), rel=1e-5)


def test_jtr_encodings_and_recon_losses_by_hand():
    enc = Encoding(2.3618, 1.5876)
    assert enc.cdf(torch.tensor(2.3618)).item() == pytest.approx(0.5)
    normal = F.normalize(torch.randn(1, 3, 4, 4), dim=1)
    ones = torch.ones(1, 1, 4, 4)
    # a perfect normal reconstruction scores 1 - 1/3: the code divides by every non-zero target entry
    assert enc.recon_loss(ALL["normal"], normal * 5, normal, ones).item() == pytest.approx(1 - 1 / 3, abs=1e-5)
    depth = torch.full((1, 1, 4, 4), 2.3618)
    assert enc.recon_loss(ALL["depth"], torch.zeros(1, 1, 4, 4), depth, ones).item() == pytest.approx(0.0, abs=1e-5)
    seg_label = torch.tensor([[[0, 1], [-1, 1]]])
    assert torch.equal(enc.label(ALL["seg"], seg_label)[0, :2], torch.tensor([[[1.0, 0], [0, 0]], [[0, 1], [0, 1]]]))


# ------------------------------------------------------------------------------- on several devices
def device_views(views, rows):
    """The views as a device holding images ``rows`` of the batch sees them (mtlbench/distributed.py)."""
    def own(value):
        return None if value is None else value[rows]
    return [View(v.images[rows], {k: t[rows] for k, t in v.targets.items()}, {k: p[rows] for k, p in v.preds.items()},
                 v.feature[rows], None if v.warp is None else Warp(*(own(getattr(v.warp, f.name)) for f in fields(Warp))))
            for v in views]


@pytest.mark.parametrize("method", ["mtpsl", "jtr"])
def test_device_shares_of_a_gumbel_regularizer_sum_to_the_whole_batch(method):
    """Two devices holding images 0, 2 and 1, 3 (segmentation unlabelled on both; the second holds none of MTPSL's pair
    normal -> depth; JTR's image 2 has no label): their losses, hard Gumbel samples included, and their gradients sum
    to one process's on the whole batch. The two-process run (tests/test_distributed.py) checks the wiring around it."""
    if method == "mtpsl":
        mask = torch.tensor([[0.0, 1, 0], [0, 0, 1], [1, 0, 1], [0, 1, 1]])
        (tasks, part, net, views) = mtpsl_setup(grad=True)
    else:
        mask = torch.tensor([[1.0, 0, 0], [0, 1, 1], [0, 0, 0], [1, 1, 1]])
        tasks, part, net, views, mask = jtr_setup(mask=mask, names=("seg", "depth", "normal"), unlabeled_consistency=True)
    leaves = [p for v in views for p in v.preds.values() if p.requires_grad] + list(net.parameters())

    def loss_and_gradients(contexts):
        for leaf in leaves:
            leaf.grad = None
        total = 0
        for ctx in contexts:
            torch.manual_seed(5)  # every device's generator in the same state, as every rank's
            total = total + part.loss(ctx, net)
        total.backward()
        return total.item(), [torch.zeros_like(leaf) if leaf.grad is None else leaf.grad.clone() for leaf in leaves]

    whole, expected = loss_and_gradients([StepContext(tasks, mask, views)])
    shares, got = loss_and_gradients([StepContext(tasks, mask, device_views(views, rows), rows=rows)
                                      for rows in (torch.tensor([0, 2]), torch.tensor([1, 3]))])
    assert shares == pytest.approx(whole, rel=1e-6)
    scale = max(g.abs().max() for g in expected)
    assert max((a - b).abs().max() for a, b in zip(got, expected)) < 1e-4 * scale


# ---------------------------------------------------------------------------------------- contracts
@pytest.mark.parametrize("method", METHODS.list())
def test_no_supervised_loss_for_a_task_without_labels(method):
    tasks = tasks_of("seg", "depth", "normal")
    split = SynthRooms(height=32, width=64, train=4, val=1, test=1).load("train").select(list(tasks))
    images, targets = split.batch(torch.arange(4), tasks)
    torch.manual_seed(0)
    model = SegNet(tasks, 0.0625)
    recipe = Recipe(preset(method), tasks, model)
    optimizer = torch.optim.Adam(recipe.parameters(), 1e-3)
    logs = recipe.train_step(optimizer, images, targets, torch.tensor([[1.0, 0, 0], [1, 1, 0], [0, 1, 0], [0, 0, 0]]))
    assert "loss/normal" not in logs and {"loss/seg", "loss/depth"} <= set(logs)
    assert all(torch.isfinite(v) for v in logs.values())
    assert ("regularizer" in logs) == (METHODS.get(method)["regularizer"]["name"] != "none")


def test_regularizer_state_round_trips_through_a_checkpoint():
    tasks = tasks_of("seg", "depth", "normal")
    model = SegNet(tasks, 0.0625)
    recipe = Recipe(METHODS.get("mtpsl"), tasks, model)
    for parameter in recipe.nets.parameters():
        parameter.data.add_(1.0)
    recipe.own[0][0].step()
    recipe.own[0][1].step()
    restored = Recipe(METHODS.get("mtpsl"), tasks, SegNet(tasks, 0.0625))
    restored.load_state_dict(recipe.state_dict())
    saved, loaded = recipe.nets.state_dict(), restored.nets.state_dict()
    assert all(torch.equal(saved[k], loaded[k]) for k in saved)
    assert restored.own[0][1].last_epoch == 1


def test_jtr_reconstructs_an_unlabelled_segmentation_against_a_fresh_gumbel_sample(monkeypatch):
    """The authors' code draws the hard Gumbel sample of an unlabelled segmentation once for Y_2 and once more for
    its reconstruction target (models/nyuv2_segnet_jtr.py): two independent samples, not one reused."""
    tasks = tasks_of("seg", "depth")
    calls = []

    def numbered_sample(ctx, logits, positions=None):  # the k-th draw picks class k everywhere
        calls.append(len(calls))
        return F.one_hot(torch.full(logits.shape[:1] + logits.shape[2:], len(calls) % logits.shape[1]),
                         logits.shape[1]).permute(0, 3, 1, 2).float()

    monkeypatch.setattr(StepContext, "gumbel_sample", numbered_sample)
    views = [random_view(tasks, 0)] + [random_view(tasks, k, identity_warp()) for k in (1, 2)]
    mask = torch.tensor([[0.0, 1], [1, 1], [0, 1], [1, 0]])  # images 0 and 2: segmentation unlabelled
    _, y, _, raw = JTR().stacks(StepContext(tasks, mask, views), 2, hard_prediction=False, detach_labelled=True)
    fed = y[:, :ALL["seg"].channels].argmax(1)
    target = raw["seg"].argmax(1)
    assert (fed[[0, 2]] != target[[0, 2]]).all()  # a second draw: another class here
    assert torch.equal(target[1], views[2].targets["seg"][1])  # a labelled image's target is its label


def test_jtr_leaves_images_without_labels_alone_by_default():
    assert JTR().unlabeled_consistency is False and JTR().extra_views == 2
    tasks, part, net, views, mask = jtr_setup(mask=torch.tensor([[1.0, 0], [0, 0], [1, 1], [1, 0]]))
    part.loss(StepContext(tasks, mask, views), net).backward()
    assert views[0].preds["normal"].grad is None or views[0].preds["normal"].grad[1].abs().sum() == 0
