import pytest
import torch

from mtlbench.data.synthrooms import SynthRooms
from mtlbench.models import SegNet

ALL = SynthRooms().tasks()
NYU_LIKE = {k: ALL[k] for k in ("seg", "depth", "normal")}


def test_full_width_segnet_has_the_papers_25m_parameters():
    n = sum(p.numel() for p in SegNet(NYU_LIKE, 1.0).parameters())
    assert 24.5e6 < n < 25.5e6


def test_outputs_follow_the_task_list_and_expose_the_bottleneck():
    model = SegNet(ALL, 0.125).eval()
    preds, feature = model(torch.rand(2, 3, 64, 96), return_feature=True)
    assert set(preds) == set(ALL)
    assert preds["seg"].shape == (2, 7, 64, 96) and preds["depth"].shape == (2, 1, 64, 96)
    assert preds["cls"].shape == (2, 7)
    assert torch.allclose(preds["normal"].norm(dim=1), torch.ones(1), atol=1e-5)
    assert feature.shape == (2, model.filters[-1], 2, 3)


def test_width_scales_filters():
    assert SegNet(NYU_LIKE, 0.25).filters == [16, 32, 64, 128, 128]


def test_input_must_be_divisible_by_32():
    with pytest.raises(ValueError, match="divisible by 32"):
        SegNet(NYU_LIKE, 0.125)(torch.rand(1, 3, 48, 64))


# ------------------------------------------------------------------------------------- deeplab_resnet50
from torchvision.models import resnet50  # noqa: E402

from mtlbench.models import DeepLabResNet50  # noqa: E402
from mtlbench.models.deeplab import TaskBatchNorm  # noqa: E402

PASCAL_LIKE = {k: ALL[k] for k in ("seg", "cls")}


def test_deeplab_dilates_as_paper_000_appendix_b():
    """Strides [1, 2, 1, 1] and dilations [1, 1, 2, 4] of the four residual stages: output stride 8."""
    model = DeepLabResNet50(NYU_LIKE).eval()
    assert [stage[0].conv2.stride[0] for stage in model.stages] == [1, 2, 1, 1]
    assert [s[-1].conv2.dilation[0] for s in model.stages] == [1, 1, 2, 4]
    feature = model(torch.rand(1, 3, 64, 96), feature_only=True)
    assert feature.shape == (1, 2048, 8, 12)


@pytest.mark.parametrize("decoder", ["v3", "v3+"])
def test_deeplab_heads_give_every_task_its_output_shape(decoder):
    model = DeepLabResNet50(ALL, decoder).eval()
    preds, feature = model(torch.rand(2, 3, 40, 56), return_feature=True)
    assert set(preds) == set(ALL)
    for name, task in ALL.items():
        assert preds[name].shape == ((2, task.channels, 40, 56) if task.dense else (2, task.channels))
    assert torch.allclose(preds["normal"].norm(dim=1), torch.ones(1), atol=1e-5)
    assert feature.shape == (2, 2048, 5, 7)
    assert isinstance(model.heads["cls"][0], torch.nn.Conv2d)  # a convolution, then the fully connected layer


def test_task_norm_gives_each_task_its_own_batchnorm_and_shares_the_convolutions():
    model = DeepLabResNet50(PASCAL_LIKE, task_norm=True)
    norms = [m for m in model.modules() if isinstance(m, TaskBatchNorm)]
    assert norms and all(set(m.norms) == {"seg", "cls"} for m in norms)
    preds = model(torch.rand(2, 3, 32, 32))
    preds["cls"].sum().backward()
    assert model.stem[0].weight.grad is not None
    assert norms[0].norms["cls"].weight.grad is not None and norms[0].norms["seg"].weight.grad is None
    shared = {id(p) for p in model.shared_parameters()}
    assert id(model.stem[0].weight) in shared and id(norms[0].norms["cls"].weight) not in shared


def test_deeplab_loads_a_local_torchvision_state_dict(tmp_path):
    torch.manual_seed(1)
    reference = resnet50()
    torch.save(reference.state_dict(), tmp_path / "resnet50.pth")
    model = DeepLabResNet50(NYU_LIKE, weights=str(tmp_path / "resnet50.pth"))
    assert torch.equal(model.stem[0].weight, reference.conv1.weight)
    assert torch.equal(model.stages[3][2].conv3.weight, reference.layer4[2].conv3.weight)
    with pytest.raises(ValueError, match=r"model.weights: .*missing.pth not found"):
        DeepLabResNet50(NYU_LIKE, weights=str(tmp_path / "missing.pth"))
    torch.save({"conv1.weight": reference.conv1.weight}, tmp_path / "partial.pth")
    with pytest.raises(ValueError, match="not a torchvision ResNet-50 state dict"):
        DeepLabResNet50(NYU_LIKE, weights=str(tmp_path / "partial.pth"))
