"""Mask R-CNN as two tasks (Li et al. 2022a Table 4): its per-image losses are torchvision's own, its tasks train
only where they are supervised, and its predictions are scored as the tasks' formats say."""
import math

import pytest
import torch

pytest.importorskip("torchvision")
pytest.importorskip("pycocotools")

from mtlbench.data.synthrooms import SynthRooms  # noqa: E402
from mtlbench.methods import METHODS, Recipe  # noqa: E402
from mtlbench.models import MODELS  # noqa: E402
from mtlbench.train.evaluation import evaluate  # noqa: E402

TASKS = ("detection", "instance")


def synthrooms(n: int = 4):
    dataset = SynthRooms(height=64, width=96, train=n, val=1, test=2)
    tasks = {t: dataset.tasks()[t] for t in TASKS}
    return dataset, tasks, dataset.load("train").select(list(tasks))


def model(tasks, seed=0, **settings):
    torch.manual_seed(seed)
    settings = {"proposals_per_image": 64, "representation_size": 128, **settings}  # CPU-sized
    return MODELS.get("maskrcnn")(backbone="resnet18", anchor_sizes=(8, 16, 32, 64, 128), **settings).build(tasks)


def torchvision_losses(net, images, objects):
    """torchvision's own training forward (GeneralizedRCNN.forward without its resizing transform)."""
    features = net.features(images)
    image_list = net.image_list(images)
    proposals, rpn = net.net.rpn(image_list, features, objects)
    _, heads = net.net.roi_heads(features, proposals, image_list.image_sizes, objects)
    return {**rpn, **heads}


@pytest.mark.parametrize("batch", [1, 2])
def test_the_per_image_losses_are_torchvisions_on_equal_samples(batch):
    """Every image samples 256 anchors and as many proposals (64 here), so the batch means of torchvision's terms are
    the means of the per-image terms; the mask term averages over positives, the same on one image."""
    _, tasks, split = synthrooms()
    images, targets = split.batch(torch.arange(batch), tasks)
    net = model(tasks)
    rows = {t: torch.arange(batch) for t in TASKS}
    torch.manual_seed(1)
    ours = net.losses_per_image(images, targets, rows)
    torch.manual_seed(1)
    theirs = torchvision_losses(net, images, net.objects(targets))
    detection = sum(theirs[k] for k in ("loss_objectness", "loss_rpn_box_reg", "loss_classifier", "loss_box_reg"))
    assert ours["detection"].shape == (batch,)
    torch.testing.assert_close(ours["detection"].mean(), detection, rtol=1e-4, atol=1e-5)
    if batch == 1:
        torch.testing.assert_close(ours["instance"].mean(), theirs["loss_mask"], rtol=1e-4, atol=1e-5)


def test_objects_come_from_the_instance_map_else_from_the_boxes():
    _, tasks, split = synthrooms()
    _, targets = split.batch(torch.arange(2), tasks)
    net = model(tasks)
    unlabelled = targets["instance"].clone()
    unlabelled[1] = -1
    objects = net.objects({**targets, "instance": unlabelled})
    boxes = targets["detection"][1]
    present = boxes[boxes[:, 4] >= 0]
    torch.testing.assert_close(objects[1]["boxes"], present[:, :4])
    torch.testing.assert_close(objects[1]["labels"], present[:, 4].long() + 1)
    first = targets["detection"][0]
    first = first[first[:, 4] >= 0]
    assert torch.equal(objects[0]["boxes"], first[:, :4]) and objects[0]["masks"].shape[0] == len(first)


def test_each_task_trains_only_where_it_is_supervised_and_both_evaluate():
    dataset, tasks, split = synthrooms()
    images, targets = split.batch(torch.arange(4), tasks)
    net = model(tasks)
    recipe = Recipe(METHODS.get("sta"), tasks, net)
    before = {t: {k: v.clone() for k, v in net.heads[t].named_parameters()} for t in TASKS}
    recipe.train_step(torch.optim.SGD(recipe.parameters(), 0.01), images, targets, torch.tensor([[1.0, 0.0]] * 4))
    assert all(torch.equal(v, before["instance"][k]) for k, v in net.heads["instance"].named_parameters())
    assert any(not torch.equal(v, before["detection"][k]) for k, v in net.heads["detection"].named_parameters())
    scores = evaluate(net, dataset.load("test").select(list(tasks)), tasks, 2, torch.no_grad)
    for name in TASKS:
        assert set(scores[name]) == set(tasks[name].directions) and all(math.isfinite(v) for v in scores[name].values())


def test_the_model_refuses_other_tasks_and_regularizers_by_name():
    dataset = SynthRooms(height=64, width=96, train=2, val=1, test=1)
    with pytest.raises(ValueError, match="one detection and one instance task"):
        MODELS.get("maskrcnn")(backbone="resnet18").build({t: dataset.tasks()[t] for t in ("seg", "instance")})
    _, tasks, _ = synthrooms()
    with pytest.raises(ValueError, match="regularizer 'consistency' needs the model's predictions"):
        Recipe(METHODS.get("consistency"), tasks, model(tasks))
    with pytest.raises(ValueError, match="task instance: its loss is its model's"):
        Recipe(METHODS.get("supervised"), {"instance": tasks["instance"]},
               MODELS.get("segnet")(width=0.0625).build({"seg": dataset.tasks()["seg"]}))


def test_weights_load_from_a_local_torchvision_file(tmp_path):
    from torchvision.models import resnet18

    _, tasks, _ = synthrooms()
    torch.manual_seed(3)
    backbone = resnet18()
    torch.save(backbone.state_dict(), tmp_path / "resnet18.pth")
    net = model(tasks, weights=str(tmp_path / "resnet18.pth"), trainable_layers=2)
    torch.testing.assert_close(net.net.backbone.body.conv1.weight, backbone.conv1.weight)
    assert not net.net.backbone.body.layer2[0].conv1.weight.requires_grad  # frozen below the trainable stages
    assert net.net.backbone.body.layer4[0].conv1.weight.requires_grad
    with pytest.raises(ValueError, match="model.weights: .*missing.pth not found"):
        model(tasks, weights=str(tmp_path / "missing.pth"))


def test_the_constant_reference_finds_no_object_and_has_no_instance_loss():
    from mtlbench.train.evaluation import constant_reference

    dataset, tasks, train = synthrooms()
    scores = constant_reference(train, dataset.load("test").select(list(tasks)), tasks, torch.ones(4, 2), 2)
    assert scores["instance"] == {"map": 0.0, "map_50": 0.0, "map_75": 0.0}  # no loss: only proposals define one
    assert set(scores["detection"]) == {"map", "map_50", "map_75", "loss"}


def test_an_image_without_objects_has_finite_losses_and_gradients():
    """torchvision encodes an empty image's regression targets from a zero box (infinite offsets): only positives
    may reach them."""
    _, tasks, split = synthrooms()
    images, targets = split.batch(torch.arange(2), tasks)
    targets = {"detection": torch.cat([targets["detection"][:1], torch.full_like(targets["detection"][1:], -1.0)]),
               "instance": torch.cat([targets["instance"][:1], torch.zeros_like(targets["instance"][1:])])}
    net = model(tasks)
    losses = net.losses_per_image(images, targets, {t: torch.arange(2) for t in TASKS})
    assert all(torch.isfinite(loss).all() for loss in losses.values())
    sum(loss.sum() for loss in losses.values()).backward()
    assert all(torch.isfinite(p.grad).all() for p in net.parameters() if p.grad is not None)


def test_a_checkpoint_round_trips_the_model():
    import io

    dataset, tasks, split = synthrooms()
    images, _ = split.batch(torch.arange(2), tasks)
    net = model(tasks).eval()
    stream = io.BytesIO()
    torch.save(net.state_dict(), stream)
    stream.seek(0)
    other = model(tasks, seed=9).eval()
    assert not torch.equal(other.net.backbone.body.conv1.weight, net.net.backbone.body.conv1.weight)
    other.load_state_dict(torch.load(stream, weights_only=True))
    with torch.no_grad():
        first, second = net(images), other(images)
    assert all(torch.equal(first[t], second[t]) for t in TASKS)


def test_the_cpu_sizes_narrow_the_network_and_bound_the_detections():
    """``fpn_channels``, ``mask_head_channels``, ``test_proposals`` and ``detections_per_image`` (CPU suites); at
    torchvision's values they hash as absent, so the suites written before them keep their job ids."""
    _, tasks, split = synthrooms()
    images, targets = split.batch(torch.arange(2), tasks)
    net = model(tasks, fpn_channels=32, mask_head_channels=16, test_proposals=20, detections_per_image=3)
    assert net.net.backbone.out_channels == 32 and net.net.rpn.head.conv[0][0].in_channels == 32
    assert [m.out_channels for m in net.net.roi_heads.mask_head if hasattr(m, "out_channels")] == [16] * 4
    losses = net.losses_per_image(images, targets, {t: torch.arange(2) for t in TASKS})
    assert all(torch.isfinite(loss).all() for loss in losses.values())
    with torch.no_grad():
        found = net.eval()(images)
    assert found["detection"].shape[1] <= 4  # 3 detections and the padding row
    assert net.net.rpn.post_nms_top_n() == 20  # in eval mode: the test proposals

    from mtlbench.ids import job_id
    defaults = {"name": "maskrcnn", "fpn_channels": 256, "mask_head_channels": 256, "test_proposals": 1000,
                "detections_per_image": 100}
    assert job_id({"model": defaults}) == job_id({"model": {"name": "maskrcnn"}})
