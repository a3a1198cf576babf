"""The instance task: objects read from the id map, predicted masks pasted into the image, COCO mask AP (against
pycocotools), the map under augmentation, and synthrooms' objects (their masks' extent is their detection box)."""
import numpy as np
import pytest
import torch

pytest.importorskip("torchvision")
pytest.importorskip("pycocotools")

from mtlbench.data.augment import Augment  # noqa: E402
from mtlbench.data.synthrooms import SynthRooms  # noqa: E402
from mtlbench.tasks import Instance  # noqa: E402
from mtlbench.tasks.instance import INSTANCE_STRIDE, instances_of, pasted_masks  # noqa: E402

CLASSES, HEIGHT, WIDTH, SIDE = 3, 48, 64, 28



def test_objects_are_read_from_the_id_map_with_boxes_at_pixel_edges():
    target = torch.zeros(1, HEIGHT, WIDTH, dtype=torch.long)
    target[0, 2:5, 3:10] = 1 * INSTANCE_STRIDE + 1
    target[0, 20:30, 40:41] = 0 * INSTANCE_STRIDE + 2
    target[0, 40:, :] = 2 * INSTANCE_STRIDE  # a class's pixels of no instance: not an object
    target[0, 0, 0] = -1  # an unlabelled pixel
    masks, classes, boxes = instances_of(target)
    assert classes.tolist() == [0, 1]
    assert boxes.tolist() == [[40, 20, 41, 30], [3, 2, 10, 5]]
    assert masks.sum((1, 2)).tolist() == [10, 21]


def prediction(boxes: torch.Tensor, scores: torch.Tensor, labels: torch.Tensor, probability: float = 1.0) -> torch.Tensor:
    """One image's rows [K, 6 + 28 * 28]: each box filled by a uniform mask."""
    grid = torch.full((len(boxes), SIDE * SIDE), probability)
    return torch.cat([boxes, scores[:, None], labels[:, None].float(), grid], 1)


def test_a_box_filled_by_its_mask_pastes_onto_exactly_its_pixels_and_scores_map_1():
    target = torch.zeros(1, 1, HEIGHT, WIDTH, dtype=torch.long)
    target[0, 0, 8:30, 10:50] = 2 * INSTANCE_STRIDE + 1
    target[0, 0, 32:44, 4:20] = 0 * INSTANCE_STRIDE + 1
    masks, classes, boxes = instances_of(target[0])
    rows = prediction(boxes, torch.tensor([0.9, 0.8]), classes)
    assert torch.equal(pasted_masks(rows, HEIGHT, WIDTH, 0.5), masks)
    meter = Instance("instance", CLASSES).meter()
    meter.update(rows[None], target)
    assert meter.compute() == pytest.approx({"map": 1.0, "map_50": 1.0, "map_75": 1.0})


def coco_segm_map(preds: list[dict], truths: list[dict]) -> list[float]:
    """AP@[.5:.95], AP50, AP75 from pycocotools' COCOeval on the same masks (as RLE)."""
    from conftest import pycocotools_map
    from pycocotools import mask as coco_mask

    def rle(mask: torch.Tensor) -> dict:
        return coco_mask.encode(np.asfortranarray(mask.numpy().astype(np.uint8)))

    images, annotations, results = [], [], []
    for i, (pred, truth) in enumerate(zip(preds, truths)):
        images.append({"id": i, "height": HEIGHT, "width": WIDTH})
        for mask, label in zip(truth["masks"], truth["labels"].tolist()):
            encoded = rle(mask)
            annotations.append({"id": len(annotations) + 1, "image_id": i, "category_id": label, "iscrowd": 0,
                                "segmentation": encoded, "area": float(coco_mask.area(encoded)),
                                "bbox": coco_mask.toBbox(encoded).tolist()})
        for mask, score, label in zip(pred["masks"], pred["scores"].tolist(), pred["labels"].tolist()):
            results.append({"image_id": i, "category_id": label, "segmentation": rle(mask), "score": score})
    return pycocotools_map(images, annotations, results, CLASSES, "segm")


def test_the_mask_map_is_pycocotools():
    generator = torch.Generator().manual_seed(7)
    task = Instance("instance", CLASSES)
    target = task.random_target(6, HEIGHT, WIDTH, generator)
    target[2] = 0  # an image without objects
    batches, preds, truths = [], [], []
    for image in target:
        masks, classes, boxes = instances_of(image)
        noisy = (boxes + torch.randn(boxes.shape, generator=generator) * 2).clamp(0, WIDTH)
        noisy[:, 2:] = torch.maximum(noisy[:, 2:], noisy[:, :2] + 1)
        labels = classes.clone()
        if len(labels) > 1:
            labels[0] = (labels[0] + 1) % CLASSES  # a wrong class
        rows = prediction(noisy, torch.rand(len(boxes), generator=generator), labels)
        batches.append(torch.cat([rows, torch.full((4 - len(rows), rows.shape[1]), -1.0)]))  # padded to 4
        preds.append({"masks": pasted_masks(rows, HEIGHT, WIDTH, 0.5), "scores": rows[:, 4],
                      "labels": labels})
        truths.append({"masks": masks, "labels": classes})
    pred = torch.stack(batches)
    meter = task.meter()
    for half in (slice(0, 3), slice(3, 6)):
        meter.update(pred[half], target[half])
    ours = meter.compute()
    expected = coco_segm_map(preds, truths)
    assert 0.05 < expected[0] < 0.95
    assert [ours["map"], ours["map_50"], ours["map_75"]] == pytest.approx(expected, abs=1e-6)


def test_finding_nothing_scores_0_not_undefined():
    task = Instance("instance", CLASSES)
    target = task.random_target(2, HEIGHT, WIDTH, torch.Generator().manual_seed(1))
    meter = task.meter()
    meter.update(task.constant_prediction(task.constant(*task.target_sums(target)), 2, HEIGHT, WIDTH), target)
    assert meter.compute() == {"map": 0.0, "map_50": 0.0, "map_75": 0.0}


def test_the_map_moves_with_its_pixels_under_augmentation():
    generator = torch.Generator().manual_seed(2)
    task = Instance("instance", CLASSES)
    target = task.random_target(8, HEIGHT, WIDTH, generator)
    warp = Augment(scale_crop=True, flip=True).sample(torch.zeros(8, 3, HEIGHT, WIDTH), generator)
    moved = task.warped(target, warp)
    assert moved.dtype == torch.long
    for value in target.unique().tolist():
        assert torch.equal(moved == value, warp.nearest((target == value).float()) > 0.5)


def test_synthrooms_objects_masks_span_their_detection_boxes():
    dataset = SynthRooms(height=64, width=96, train=6, val=1, test=1)
    split = dataset.load("train")
    instance, detection = split.targets["instance"].long(), split.targets["detection"]
    for image_map, boxes in zip(instance, detection):
        masks, classes, extents = instances_of(image_map)
        present = boxes[boxes[:, 4] >= 0]
        assert torch.equal(extents, present[:, :4]) and torch.equal(classes, present[:, 4].long())
