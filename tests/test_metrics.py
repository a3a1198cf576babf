"""Multi-task scores reproduce the papers' published numbers from their own raw metrics."""
import math

import pytest
import torch

from mtlbench.metrics import acc_mtl, delta_mtl, delta_t
from mtlbench.tasks import Depth, MultiLabel, Normal, Segmentation

NYU = {"seg": {"miou": True}, "depth": {"abs_err": False}, "normal": {"mean_angle": False}}
PRIMARY = {"seg": ["miou"], "depth": ["abs_err"], "normal": ["mean_angle"]}


def nyu(miou, depth, normal):
    return {"seg": {"miou": miou}, "depth": {"abs_err": depth}, "normal": {"mean_angle": normal}}


@pytest.mark.parametrize("method, published", [
    (nyu(30.40, 0.5926, 31.68), 11.04),  # Nishi et al. 2024 Table 1, onelabel, MTPSL
    (nyu(31.96, 0.5919, 30.80), 13.97),  # JTR
    (nyu(27.52, 0.6499, 33.58), 2.501),  # Consistency Reg.
])
def test_paper_004_table_1_onelabel(method, published):
    supervised = nyu(25.75, 0.6511, 33.73)
    assert delta_mtl(method, supervised, NYU, PRIMARY) == pytest.approx(published, abs=0.006)


VOC_NYU = {"det": {"map": True}, "seg": {"miou": True}, "depth": {"delta1": True, "rmse": False}}
TWO_DEPTH = {"det": ["map"], "seg": ["miou"], "depth": ["delta1", "rmse"]}


def voc(m, s, d1, rmse):
    return {"det": {"map": m}, "seg": {"miou": s}, "depth": {"delta1": d1, "rmse": rmse}}


@pytest.mark.parametrize("method, delta, acc", [
    (voc(0.5922, 0.7823, 0.8731, 0.4498), -0.25, 0.8642),  # Yun and Cho 2023 Table 7, Uniform
    (voc(0.5870, 0.8025, 0.8903, 0.4300), 1.37, 0.8784),  # AMTL
    (voc(0.5833, 0.8007, 0.8917, 0.4329), 1.00, 0.8752),  # GLS
])
def test_paper_003_table_7(method, delta, acc):
    single_task = voc(0.5795, 0.7895, 0.8882, 0.4393)
    assert delta_mtl(method, single_task, VOC_NYU, TWO_DEPTH) == pytest.approx(delta, abs=0.006)
    assert acc_mtl(method, VOC_NYU, TWO_DEPTH) == pytest.approx(acc, abs=0.00006)


NYU_SIX = {"seg": {"miou": True}, "depth": {"delta1": True, "rmse": False},
           "normal": {"mean": False, "median": False, "within": True}}
SIX = {task: list(metrics) for task, metrics in NYU_SIX.items()}


def nyu_six(miou, d1, rmse, mean, median, within):
    return {"seg": {"miou": miou}, "depth": {"delta1": d1, "rmse": rmse},
            "normal": {"mean": mean, "median": median, "within": within}}


@pytest.mark.parametrize("method, acc", [
    (nyu_six(0.4437, 0.8087, 0.5814, 19.3462, 13.2045, 0.4553), 0.3989),  # Yun and Cho 2023 Table 1, Single-Task
    (nyu_six(0.4446, 0.8091, 0.5776, 22.8531, 17.7271, 0.3322), 0.3666),  # Uniform
    (nyu_six(0.2511, 0.7636, 0.6266, 19.2796, 13.1962, 0.4553), 0.3229),  # MGDA
    (nyu_six(0.4377, 0.8205, 0.5667, 20.7974, 15.1003, 0.3969), 0.3847),  # AMTL
])
def test_acc_mtl_is_paper_003_eq_9_on_table_1(method, acc):
    assert acc_mtl(method, NYU_SIX, SIX) == pytest.approx(acc, abs=0.00006)


@pytest.mark.parametrize("bad", [0.0, -0.1, math.nan, math.inf])
def test_acc_mtl_is_undefined_for_a_metric_that_is_not_positive_and_finite(bad):
    method = nyu_six(bad, 0.8, 0.5, 20.0, 15.0, 0.4)
    assert math.isnan(acc_mtl(method, NYU_SIX, SIX))


def test_delta_t_is_paper_000_eq_9():
    seed_only = {"cls": {"jaccard": 0.50}, "seg": {"miou": 0.40}, "depth": {"l1": 0.20}}
    after = {"cls": {"jaccard": 0.55}, "seg": {"miou": 0.42}, "depth": {"l1": 0.18}}
    directions = {"cls": {"jaccard": True}, "seg": {"miou": True}, "depth": {"l1": False}}
    expected = (10.0 + 5.0 + 10.0) / 3
    assert delta_t(after, seed_only, directions, {"cls": "jaccard", "seg": "miou", "depth": "l1"}) \
        == pytest.approx(expected)


def test_miou_pools_a_confusion_matrix_over_batches_and_skips_absent_classes():
    task = Segmentation("seg", 3)
    meter = task.meter()
    target = torch.tensor([[[0, 0, 1, -1]], [[1, 1, 1, 0]]])
    pred_class = torch.tensor([[[0, 1, 1, 2]], [[1, 1, 0, 0]]])
    logits = torch.nn.functional.one_hot(pred_class, 3).permute(0, 3, 1, 2).float()
    meter.update(logits[:1], target[:1])
    meter.update(logits[1:], target[1:])
    result = meter.compute()
    # class 0: tp 2, fp 1, fn 1 -> 2/4; class 1: tp 3, fp 1, fn 1 -> 3/5; class 2 never true or predicted
    # on a valid pixel (the -1 pixel is ignored) -> left out of the mean
    assert result["miou"] == pytest.approx((2 / 4 + 3 / 5) / 2)
    assert result["pixel_acc"] == pytest.approx(5 / 7)


def test_depth_metrics_pool_valid_pixels():
    meter = Depth("depth", 1).meter()
    target = torch.tensor([1.0, 2.0, 0.0, 4.0]).view(1, 1, 2, 2)
    pred = torch.tensor([1.5, 2.0, 9.0, 2.0]).view(1, 1, 2, 2)
    meter.update(pred, target)
    m = meter.compute()
    assert m["abs_err"] == pytest.approx((0.5 + 0 + 2) / 3)
    assert m["rel_err"] == pytest.approx((0.5 + 0 + 0.5) / 3)
    assert m["rmse"] == pytest.approx(math.sqrt((0.25 + 0 + 4) / 3))
    assert m["delta1"] == pytest.approx(1 / 3)


def test_angle_metrics_mean_median_and_thresholds():
    angles = torch.tensor([5.0, 10.0, 20.0, 25.0, 40.0, 0.0])
    rad = torch.deg2rad(angles)
    pred = torch.stack([torch.sin(rad), torch.zeros(6), torch.cos(rad)]).view(1, 3, 1, 6)
    target = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(1, 3, 1, 6).clone()
    target[..., 5] = 0  # invalid pixel: not counted
    meter = Normal("normal", 3).meter()
    meter.update(pred, target)
    m = meter.compute()
    assert m["mean_angle"] == pytest.approx(20.0, abs=1e-3)
    assert m["median_angle"] == pytest.approx(20.0, abs=0.01)  # read off a 0.01-degree histogram
    assert (m["within_11.25"], m["within_22.5"], m["within_30"]) == pytest.approx((0.4, 0.6, 0.8))


def test_jaccard_is_the_per_image_iou_of_class_sets():
    meter = MultiLabel("cls", 3).meter()
    logits = torch.tensor([[5.0, 5.0, -5.0], [-5.0, -5.0, -5.0], [5.0, -5.0, -5.0]])
    target = torch.tensor([[1.0, 0.0, 0.0], [0.0, 0.0, 0.0], [0.0, 1.0, 1.0]])
    meter.update(logits, target)
    assert meter.compute()["jaccard"] == pytest.approx((1 / 2 + 1 + 0) / 3)


def test_losses_average_valid_pixels_per_image():
    seg = Segmentation("seg", 2)
    logits = torch.zeros(2, 2, 1, 2)
    target = torch.tensor([[[0, -1]], [[-1, -1]]])
    loss = seg.loss_per_image(logits, target)
    assert loss[0] == pytest.approx(math.log(2)) and loss[1] == 0
    depth = Depth("depth", 1)
    assert depth.loss_per_image(torch.ones(1, 1, 1, 2), torch.tensor([[[[3.0, 0.0]]]])).item() == 2.0


def test_normal_angles_use_the_stored_target_as_the_authors_evaluation_does():
    """utils/evaluation.py (MTPSL) and utils/evals.py (JTR): acos of pred . target, the target not renormalised.
    A half-length target at the prediction's direction is 60 degrees off there (cos = 0.5), not 0."""
    pred = torch.tensor([1.0, 0.0, 0.0]).view(1, 3, 1, 1)
    meter = Normal("normal", 3).meter()
    meter.update(pred, 0.5 * pred)
    assert meter.compute()["mean_angle"] == pytest.approx(60.0, abs=1e-3)


def test_the_per_image_normal_metrics_average_each_images_own():
    """AMTL's normal metrics in its authors' code (test_net.py): the mean over images of each image's fraction of
    valid pixels within 11.25 degrees, mean and median; pooled, the image with more valid pixels weighs more."""
    near, far = torch.deg2rad(torch.tensor(5.0)), torch.deg2rad(torch.tensor(30.0))

    def unit(angle):
        return torch.stack([torch.sin(angle), torch.zeros(()), torch.cos(angle)])

    pred = torch.stack([unit(near)] * 4 + [unit(near), unit(far), unit(far), unit(far)], -1).view(3, 2, 4)
    pred = pred.permute(1, 0, 2).reshape(2, 3, 1, 4)
    target = torch.tensor([0.0, 0.0, 1.0]).view(1, 3, 1, 1).expand(2, 3, 1, 4).clone()
    target[0, :, :, 2:] = 0  # image 0: two valid pixels, both within; image 1: four, one within
    meter = Normal("normal", 3).meter()
    meter.update(pred, target)
    m = meter.compute()
    assert m["within_11.25_per_image"] == pytest.approx((1.0 + 0.25) / 2)
    assert m["within_11.25"] == pytest.approx(3 / 6)
    # the code's mean and median are per image too: image 0 (5, 5), image 1 (5, 30, 30, 30); torch's median of an
    # even count is the lower middle value, as the authors' degree_error.median() gives it
    assert m["mean_angle_per_image"] == pytest.approx((5.0 + 23.75) / 2, abs=1e-3)
    assert m["median_angle_per_image"] == pytest.approx((5.0 + 30.0) / 2, abs=1e-3)
    assert m["mean_angle"] == pytest.approx((5 * 3 + 30 * 3) / 6, abs=1e-3)


def test_depth_predictions_are_clamped_at_1e_9_before_scoring():
    """MTPSL utils/evaluation.py and JTR utils/evals.py clamp predictions at 1e-9: a prediction of -1 for a
    depth of 2 is off by 2 there (|1e-9 - 2|), not by 3, and its ratio for delta1 is 2e9, not negative."""
    meter = Depth("depth", 1).meter()
    meter.update(torch.tensor([-1.0, 2.0]).view(1, 1, 1, 2), torch.tensor([2.0, 2.0]).view(1, 1, 1, 2))
    m = meter.compute()
    assert m["abs_err"] == pytest.approx(1.0)  # (2 + 0) / 2
    assert m["rmse"] == pytest.approx(math.sqrt(2.0))
    assert m["delta1"] == pytest.approx(0.5)
