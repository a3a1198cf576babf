"""The detection task: EfficientDet's matching and loss (against effdet), its detections, COCO mAP (against
pycocotools) and boxes under augmentation (against the warped pixels)."""
import pytest
import torch

pytest.importorskip("effdet")
pytest.importorskip("pycocotools")

from mtlbench.data.augment import Augment  # noqa: E402
from mtlbench.tasks.detection import Anchors, Detection, encode  # noqa: E402

CLASSES = 3
ANCHORS = Anchors(min_level=2, max_level=4)
HEIGHT, WIDTH = 64, 96


def task() -> Detection:
    return Detection("det", CLASSES, anchors=ANCHORS)


def boxes(rows: list[list[float]], pad_to: int = 0) -> torch.Tensor:
    """One image's target [M, 5], padded with class -1 rows."""
    out = torch.tensor(rows, dtype=torch.float32).view(-1, 5)
    padding = torch.zeros(max(pad_to - len(out), 0), 5)
    padding[:, 4] = -1
    return torch.cat([out, padding])


def random_targets(generator: torch.Generator, batch: int, count: int, pad_to: int) -> torch.Tensor:
    out = []
    for _ in range(batch):
        xy = torch.rand(count, 2, generator=generator) * torch.tensor([WIDTH - 20, HEIGHT - 20])
        size = 6 + torch.rand(count, 2, generator=generator) * 30
        high = torch.minimum(xy + size, torch.tensor([WIDTH, HEIGHT]))
        label = torch.randint(0, CLASSES, (count, 1), generator=generator).float()
        out.append(boxes(torch.cat([xy, high, label], 1).tolist(), pad_to))
    return torch.stack(out)


def prediction(generator: torch.Generator, batch: int) -> torch.Tensor:
    anchors = ANCHORS.boxes(HEIGHT, WIDTH)
    raw = torch.randn(batch, len(anchors), 4 + CLASSES, generator=generator)
    raw[..., :4] *= 0.3
    return torch.cat([anchors.expand(batch, -1, -1), raw], -1)


def effdet_loss(pred: torch.Tensor, target: torch.Tensor) -> float:
    """effdet's AnchorLabeler and DetectionLoss on one image, its outputs laid out per level as EfficientDet's heads
    give them ([1, anchors x channels, rows, columns], boxes as ty, tx, th, tw)."""
    from effdet.anchors import AnchorLabeler, Anchors as EffdetAnchors
    from effdet.config import get_efficientdet_config
    from effdet.loss import DetectionLoss

    anchors = EffdetAnchors(ANCHORS.min_level, ANCHORS.max_level, ANCHORS.scales, list(ANCHORS.ratios), ANCHORS.size,
                            (HEIGHT, WIDTH))
    labeler = AnchorLabeler(anchors, CLASSES, match_threshold=0.5)
    gt = target[0][target[0, :, 4] >= 0]
    cls_targets, box_targets, positives = labeler.label_anchors(gt[:, [1, 0, 3, 2]], gt[:, 4].long() + 1)
    config = get_efficientdet_config("tf_efficientdet_d0")
    config.num_classes = CLASSES
    cls_outputs, box_outputs, start = [], [], 0
    for rows, columns in ANCHORS.cells(HEIGHT, WIDTH):
        stop = start + rows * columns * ANCHORS.scales * len(ANCHORS.ratios)
        level = pred[0, start:stop]
        cls_outputs.append(level[:, 8:].reshape(1, rows, columns, -1).permute(0, 3, 1, 2))
        box_outputs.append(level[:, 4:8].reshape(1, rows, columns, -1).permute(0, 3, 1, 2))
        start = stop
    total, _, _ = DetectionLoss(config)(cls_outputs, box_outputs, [c[None] for c in cls_targets],
                                        [b[None] for b in box_targets], positives.view(1))
    return total.item()


def test_the_loss_is_effdets_for_a_batch_of_one():
    generator = torch.Generator().manual_seed(0)
    for seed in range(3):
        target = random_targets(generator, 1, 2 + seed, pad_to=6)
        pred = prediction(generator, 1)
        ours = task().loss_per_image(pred, target)
        assert ours.shape == (1,)
        assert ours.item() == pytest.approx(effdet_loss(pred, target), rel=1e-5)


def test_a_box_no_anchor_overlaps_by_half_still_claims_its_best_anchor():
    small = boxes([[10.0, 10.0, 12.0, 12.0, 1.0]])[None]  # 2 x 2 px: every anchor's IoU is far below 0.5
    pred = prediction(torch.Generator().manual_seed(1), 1)
    assert task().loss_per_image(pred, small).item() == pytest.approx(effdet_loss(pred, small), rel=1e-5)


def test_an_image_without_objects_is_valid():
    empty = boxes([], pad_to=4)[None]
    pred = prediction(torch.Generator().manual_seed(2), 1).requires_grad_()
    loss = task().loss_per_image(pred, empty)
    loss.sum().backward()
    assert torch.isfinite(loss).all() and loss.item() > 0
    assert pred.grad[..., 4:8].abs().sum() == 0  # no box to regress to
    assert loss.item() == pytest.approx(effdet_loss(pred.detach(), empty), rel=1e-5)


def test_each_images_loss_is_its_own_whatever_it_is_batched_with():
    generator = torch.Generator().manual_seed(3)
    target = torch.cat([random_targets(generator, 1, 1, pad_to=5), random_targets(generator, 1, 5, pad_to=5)])
    pred = prediction(generator, 2)
    together = task().loss_per_image(pred, target)
    alone = torch.cat([task().loss_per_image(pred[i:i + 1], target[i:i + 1]) for i in range(2)])
    torch.testing.assert_close(together, alone)


def perfect_prediction(target: torch.Tensor) -> torch.Tensor:
    """Every box encoded exactly at its anchors of IoU ≥ 0.5 (and its best one), confident in its class only."""
    from mtlbench.tasks.detection import match

    anchors = ANCHORS.boxes(HEIGHT, WIDTH)
    matched = match(target, anchors)
    rows = target.gather(1, matched.clamp_min(0)[..., None].expand(-1, -1, 5))
    logits = torch.full((*matched.shape, CLASSES), -12.0)
    logits.scatter_(2, rows[..., 4:].long().clamp_min(0), torch.where(matched >= 0, 12.0, -12.0)[..., None])
    offsets = torch.where((matched >= 0)[..., None], encode(rows[..., :4], anchors.expand_as(rows[..., :4])), 0.0)
    return torch.cat([anchors.expand(len(target), -1, -1), offsets, logits], -1)


def test_a_perfect_prediction_scores_map_1_and_is_found_once_per_object():
    generator = torch.Generator().manual_seed(4)
    target = random_targets(generator, 3, 4, pad_to=6)
    target[1, 2:, 4] = -1  # fewer objects in one image
    detections = task().detections(perfect_prediction(target))
    assert detections.shape == (3, 100, 6)
    for image in range(3):
        found = detections[image][detections[image, :, 5] >= 0]
        truth = target[image][target[image, :, 4] >= 0]
        confident = found[found[:, 4] > 0.99]
        assert len(confident) == len(truth)  # NMS keeps one box per object
        assert torch.allclose(confident[:, :4].sort(0).values, truth[:, :4].sort(0).values, atol=1e-3)
    meter = task().meter()
    meter.update(perfect_prediction(target), target)
    scores = meter.compute()
    assert scores["map"] == pytest.approx(1.0) and scores["map_50"] == pytest.approx(1.0)


def coco_map(detections: torch.Tensor, target: torch.Tensor) -> list[float]:
    """AP@[.5:.95], AP50, AP75 from pycocotools' COCOeval on the same boxes."""
    from conftest import pycocotools_map

    images, annotations, results = [], [], []
    for i, (found, truth) in enumerate(zip(detections, target)):
        images.append({"id": i, "height": HEIGHT, "width": WIDTH})
        for x1, y1, x2, y2, label in truth[truth[:, 4] >= 0].tolist():
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": int(label), "iscrowd": 0,
                                "bbox": [x1, y1, x2 - x1, y2 - y1], "area": (x2 - x1) * (y2 - y1)})
        for x1, y1, x2, y2, score, label in found[found[:, 5] >= 0].tolist():
            results.append({"image_id": i, "category_id": int(label), "bbox": [x1, y1, x2 - x1, y2 - y1],
                            "score": score})
    return pycocotools_map(images, annotations, results, CLASSES, "bbox")


def test_the_map_is_pycocotools():
    generator = torch.Generator().manual_seed(5)
    target = random_targets(generator, 6, 5, pad_to=7)
    target[2, :, 4] = -1  # an image without objects
    noisy = target.clone()
    noisy[..., :4] += torch.randn(noisy[..., :4].shape, generator=generator) * 3
    score = torch.rand(*target.shape[:2], 1, generator=generator)
    detections = torch.cat([noisy[..., :4], score, target[..., 4:]], -1)
    detections[0, 0, 5] = (detections[0, 0, 5] + 1) % CLASSES  # a wrong class
    detections[3, 1:, 5] = -1  # missed objects
    meter = task().meter()
    for half in (slice(0, 3), slice(3, 6)):  # accumulated over batches
        meter.update_detections(detections[half], target[half])
    ours = meter.compute()
    expected = coco_map(detections, target)
    assert 0.05 < expected[0] < 0.95
    assert [ours["map"], ours["map_50"], ours["map_75"]] == pytest.approx(expected, abs=1e-6)


@pytest.mark.parametrize("align_corners", [False, True])
def test_boxes_follow_their_pixels_under_scale_crop_and_flip(align_corners):
    generator = torch.Generator().manual_seed(6)
    target = random_targets(generator, 16, 3, pad_to=3)
    target[..., :4] = target[..., :4].round()  # whole pixels, so that each box is exactly a pixel mask
    ys = torch.arange(HEIGHT).view(1, 1, -1, 1) + 0.5
    xs = torch.arange(WIDTH).view(1, 1, 1, -1) + 0.5
    inside = ((xs > target[..., 0, None, None]) & (xs < target[..., 2, None, None])
              & (ys > target[..., 1, None, None]) & (ys < target[..., 3, None, None])).float()  # [B, M, H, W]
    warp = Augment(scale_crop=True, flip=True, align_corners=align_corners).sample(torch.zeros(16, 3, HEIGHT, WIDTH),
                                                                                   generator)
    assert warp.mirror.any() and (warp.scale > 1).any()
    moved = task().warped(target, warp)
    pixels = warp.nearest(inside) > 0.5
    worst = 0.0
    for b in range(16):
        for m in range(3):
            rows, columns = pixels[b, m].nonzero(as_tuple=True)
            if len(rows) == 0:  # cropped out: the box is padding now
                assert moved[b, m, 4] == -1
                continue
            seen = torch.tensor([columns.min(), rows.min(), columns.max() + 1, rows.max() + 1]).float()
            assert moved[b, m, 4] == target[b, m, 4]
            worst = max(worst, (moved[b, m, :4] - seen).abs().max().item())
    assert worst <= 0.5 + 1e-4  # the box is exact; the pixels a zoom resamples are within half a pixel of it


def test_padding_stays_padding_and_a_box_cropped_away_becomes_padding():
    target = boxes([[0.0, 0.0, 4.0, 4.0, 2.0], [40.0, 20.0, 60.0, 40.0, 1.0]], pad_to=3)[None]
    warp = Augment(scale_crop=True, flip=False).sample(torch.zeros(64, 3, HEIGHT, WIDTH), torch.Generator().manual_seed(7))
    moved = task().warped(target.expand(64, -1, -1), warp)
    assert (moved[:, 2, 4] == -1).all() and (moved[:, 2, :4] == 0).all()
    lost = moved[:, 0, 4] == -1
    assert lost.any() and (moved[lost, 0, :4] == 0).all()  # the corner box leaves some crops
    assert (moved[:, 1, 4] == 1).all()  # the central one stays in every crop


def test_an_ensembles_pseudo_label_is_the_confident_detections_of_its_mean_output():
    target = random_targets(torch.Generator().manual_seed(8), 2, 3, pad_to=4)
    members = torch.stack([perfect_prediction(target)] * 3)
    label = task().ensemble_label(members)
    assert label.shape == (2, 100, 5)
    for image in range(2):
        found = label[image][label[image, :, 4] >= 0]
        truth = target[image][target[image, :, 4] >= 0]
        assert torch.allclose(found.sort(0).values, truth.sort(0).values, atol=1e-3)


def test_the_constant_prediction_leaves_anchors_unmoved_at_each_class_chance_of_holding_a_box():
    target = boxes([[0, 0, 10, 10, 0], [5, 5, 20, 20, 0], [1, 1, 9, 9, 2]], pad_to=4)[None].expand(2, -1, -1)
    sums, counts = task().target_sums(target)
    pred = task().constant_prediction(task().constant(sums, counts), 3, HEIGHT, WIDTH)
    anchors = ANCHORS.boxes(HEIGHT, WIDTH)
    assert pred.shape == (3, len(anchors), 8 + CLASSES)
    assert torch.equal(pred[0, :, :4], anchors) and (pred[..., 4:8] == 0).all()
    chance = torch.tensor([2.0, 0.0, 1.0]) / len(anchors)  # boxes per image of each class, over the anchors
    torch.testing.assert_close(torch.sigmoid(pred[1, 7, 8:]), chance.clamp(1e-6, 1 - 1e-6))
