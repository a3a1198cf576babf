"""Yun and Cho 2023 Table 7's network: a torchvision backbone cut at strides 8-32, a BiFPN shared by every task,
EfficientDet's nets for detection and dense heads over all levels."""
import pytest
import torch

pytest.importorskip("effdet")

from mtlbench.data.synthrooms import SynthRooms  # noqa: E402
from mtlbench.models import MODELS  # noqa: E402
from mtlbench.tasks import Anchors, Detection  # noqa: E402

HEIGHT, WIDTH = 64, 96
ANCHORS = Anchors(min_level=3, max_level=6, size=2.0)


def tasks():
    dense = {t: task for t, task in SynthRooms(height=HEIGHT, width=WIDTH).tasks().items() if t in ("seg", "normal", "cls")}
    return {**dense, "detection": Detection("detection", 3, anchors=ANCHORS, image_size=(HEIGHT, WIDTH))}


@pytest.mark.parametrize("backbone", ["efficientnet_v2_s", "mobilenet_v2", "resnet50"])
def test_every_backbone_gives_each_task_its_prediction(backbone):
    torch.manual_seed(0)
    model = MODELS.get("pyramid")(backbone=backbone).build(tasks()).eval()
    with torch.no_grad():
        preds = model(torch.rand(2, 3, HEIGHT, WIDTH))
    assert preds["seg"].shape == (2, 7, HEIGHT, WIDTH) and preds["cls"].shape == (2, 7)
    torch.testing.assert_close(preds["normal"].norm(dim=1), torch.ones(2, HEIGHT, WIDTH))
    anchors = ANCHORS.boxes(HEIGHT, WIDTH)
    assert preds["detection"].shape == (2, len(anchors), 8 + 3) and torch.equal(preds["detection"][0, :, :4], anchors)


def test_the_pyramid_is_shared_and_the_heads_are_each_tasks_own():
    torch.manual_seed(0)
    model = MODELS.get("pyramid")(backbone="mobilenet_v2").build(tasks())
    shared = {id(p) for p in model.shared_parameters()}
    assert id(model.last_shared_layer()) in shared and id(model.last_shared_layer()) in {id(p) for p in model.fpn.parameters()}
    model(torch.rand(2, 3, HEIGHT, WIDTH))["seg"].sum().backward()
    assert model.last_shared_layer().grad.abs().sum() > 0
    assert all(p.grad is None for p in model.heads["detection"].parameters())


def test_weights_load_from_a_local_file_and_wrong_settings_are_named(tmp_path):
    from torchvision.models import mobilenet_v2

    torch.manual_seed(4)
    network = mobilenet_v2()
    torch.save(network.state_dict(), tmp_path / "mobilenet_v2.pth")
    model = MODELS.get("pyramid")(backbone="mobilenet_v2", weights=str(tmp_path / "mobilenet_v2.pth")).build(tasks())
    torch.testing.assert_close(model.body.get_submodule("features.0.0").weight, network.features[0][0].weight)
    with pytest.raises(ValueError, match="model.weights: .*missing.pth not found"):
        MODELS.get("pyramid")(backbone="mobilenet_v2", weights=str(tmp_path / "missing.pth")).build(tasks())
    low = {"detection": Detection("detection", 3, anchors=Anchors(min_level=2), image_size=(HEIGHT, WIDTH))}
    with pytest.raises(ValueError, match="set its anchors' min_level to 3, got 2"):
        MODELS.get("pyramid")(backbone="mobilenet_v2").build(low)
    dense = {t: task for t, task in tasks().items() if t != "detection"}
    with pytest.raises(ValueError, match="set model.height and model.width"):
        MODELS.get("pyramid")(backbone="mobilenet_v2").build(dense)
    model = MODELS.get("pyramid")(backbone="mobilenet_v2").build(tasks())
    with pytest.raises(ValueError, match="built for 64 x 96 images"):
        model(torch.rand(1, 3, 96, 128))


def test_a_checkpoint_round_trips_the_model():
    import io

    torch.manual_seed(0)
    model = MODELS.get("pyramid")(backbone="mobilenet_v2").build(tasks()).eval()
    stream = io.BytesIO()
    torch.save(model.state_dict(), stream)
    stream.seek(0)
    torch.manual_seed(1)
    other = MODELS.get("pyramid")(backbone="mobilenet_v2").build(tasks()).eval()
    first_conv = "features.0.0"
    assert not torch.equal(other.body.get_submodule(first_conv).weight, model.body.get_submodule(first_conv).weight)
    other.load_state_dict(torch.load(stream, weights_only=True))
    images = torch.rand(2, 3, HEIGHT, WIDTH)
    with torch.no_grad():
        assert all(torch.equal(a, b) for a, b in zip(model(images).values(), other(images).values()))
