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
