"""COCO instances and Cityscapes instances read from their own layouts, written here as they publish them: boxes as
pixel edges scaled with the image, instance maps of tasks/instance.py (crowds and groups unlabelled), and a
malformed file refused naming it and the record."""
import json

import numpy as np
import pytest
import torch
from PIL import Image

pytest.importorskip("pycocotools")

from mtlbench.cli import main  # noqa: E402
from mtlbench.data import DATASETS, DatasetError  # noqa: E402
from mtlbench.tasks.instance import instances_of  # noqa: E402

CATEGORIES = [{"id": 1, "name": "person"}, {"id": 3, "name": "car"}, {"id": 18, "name": "dog"}]


def coco_file(images, annotations):
    return {"images": images, "annotations": annotations, "categories": CATEGORIES}


def write_coco(root, train_annotations=None):
    rng = np.random.default_rng(0)
    for folder in ("train2017", "val2017", "annotations"):
        (root / folder).mkdir(parents=True)
    images = [{"id": 7, "file_name": "000000000007.jpg", "width": 40, "height": 20},
              {"id": 9, "file_name": "000000000009.jpg", "width": 20, "height": 20}]
    Image.fromarray(rng.integers(0, 256, (20, 40, 3), dtype=np.uint8)).save(root / "train2017" / "000000000007.jpg")
    Image.fromarray(rng.integers(0, 256, (20, 20), dtype=np.uint8)).save(root / "train2017" / "000000000009.jpg")
    rle = np.zeros((20, 40), np.uint8)
    rle[10:20, 30:40] = 1  # an uncompressed RLE (column-major run lengths), as COCO writes crowds
    runs, counts = rle.flatten(order="F"), []
    for start in range(len(runs)):
        if start == 0 or runs[start] != runs[start - 1]:
            counts.append(0)
        counts[-1] += 1
    if runs[0] == 1:
        counts.insert(0, 0)
    annotations = train_annotations if train_annotations is not None else [
        {"id": 1, "image_id": 7, "category_id": 3, "iscrowd": 0, "bbox": [0, 0, 20, 10],
         "segmentation": [[0, 0, 20, 0, 20, 10, 0, 10]], "area": 200},
        {"id": 2, "image_id": 7, "category_id": 18, "iscrowd": 0, "bbox": [10, 5, 10, 10],
         "segmentation": [[10, 5, 20, 5, 20, 15, 10, 15]], "area": 100},  # drawn over the car where they overlap
        {"id": 3, "image_id": 7, "category_id": 1, "iscrowd": 1, "bbox": [30, 10, 10, 10],
         "segmentation": {"size": [20, 40], "counts": counts}, "area": 100},
    ]
    (root / "annotations" / "instances_train2017.json").write_text(json.dumps(coco_file(images, annotations)))
    Image.fromarray(rng.integers(0, 256, (16, 16, 3), dtype=np.uint8)).save(root / "val2017" / "000000000011.jpg")
    (root / "annotations" / "instances_val2017.json").write_text(json.dumps(coco_file(
        [{"id": 11, "file_name": "000000000011.jpg", "width": 16, "height": 16}],
        [{"id": 5, "image_id": 11, "category_id": 18, "iscrowd": 0, "bbox": [2, 2, 4, 4],
          "segmentation": [[2, 2, 6, 2, 6, 6, 2, 6]], "area": 16}])))


def test_coco_boxes_masks_crowds_and_an_image_without_objects(tmp_path):
    write_coco(tmp_path)
    dataset = DATASETS.get("coco")(root=str(tmp_path), height=20, width=40, max_objects=4)
    assert {t: task.channels for t, task in dataset.tasks().items()} == {"detection": 3, "instance": 3}
    train = dataset.load("train")
    assert train.images.shape == (2, 3, 20, 40)
    boxes = train.targets["detection"]
    torch.testing.assert_close(boxes[0, :2], torch.tensor([[0.0, 0, 20, 10, 1], [10, 5, 20, 15, 2]]))
    assert (boxes[0, 2:, 4] == -1).all() and (boxes[1, :, 4] == -1).all()  # the crowd is no box; image 9 has none
    objects = train.targets["instance"][0, 0]
    assert (objects[10:20, 30:40] == -1).all()  # the crowd's pixels are unlabelled
    masks, classes, extents = instances_of(objects)
    assert classes.tolist() == [1, 2]  # car (category 3) and dog (18) in the file's category order
    assert masks.sum((1, 2)).tolist() == [200 - 50, 100]  # the dog, later in the file, covers part of the car
    torch.testing.assert_close(extents[1], torch.tensor([10.0, 5, 20, 15]))
    assert (train.targets["instance"][1] == 0).all()  # a greyscale image without objects: valid, all "no object"
    scaled = DATASETS.get("coco")(root=str(tmp_path), height=10, width=20).load("train").targets["detection"]
    torch.testing.assert_close(scaled[0, 0, :4], torch.tensor([0.0, 0, 10, 5]))
    assert len(dataset.load("test")) == 1


@pytest.mark.parametrize("annotation, message", [
    ({"bbox": [35, 0, 10, 10]}, r"annotation 1 \(image 7\): bbox \(35, 0, 10, 10\) lies outside the 40x20 image"),
    ({"bbox": [0, 0, -1, 10]}, r"annotation 1 \(image 7\): bbox \(0, 0, -1, 10\) has a negative size"),
    ({"category_id": 99}, r"annotation 1 \(image 7\): unknown category_id 99"),
    ({"image_id": 8}, r"annotation 1: image_id 8 is not among the file's images"),
])
def test_a_malformed_coco_annotation_is_refused_naming_the_file_and_the_annotation(tmp_path, annotation, message,
                                                                                    capsys):
    record = {"id": 1, "image_id": 7, "category_id": 3, "iscrowd": 0, "bbox": [0, 0, 20, 10],
              "segmentation": [[0, 0, 20, 0, 20, 10, 0, 10]], "area": 200, **annotation}
    write_coco(tmp_path, [record])
    dataset = DATASETS.get("coco")(root=str(tmp_path), height=20, width=40)
    with pytest.raises(DatasetError, match=r"instances_train2017\.json: " + message):
        dataset.load("train")
    assert main(["data", "check", "coco", str(tmp_path)]) == 1
    assert "annotation 1" in capsys.readouterr().out


def test_a_broken_coco_file_and_missing_folders_are_named(tmp_path):
    write_coco(tmp_path)
    (tmp_path / "annotations" / "instances_train2017.json").write_text("{not json")
    with pytest.raises(DatasetError, match=r"instances_train2017\.json is not a COCO instances file"):
        DATASETS.get("coco")(root=str(tmp_path)).load("train")
    with pytest.raises(DatasetError, match=r"nowhere/train2017 not found\. Expected .*cocodataset\.org"):
        DATASETS.get("coco")(root=str(tmp_path / "nowhere")).require()


def write_cityscapes(root):
    rng = np.random.default_rng(1)
    for split, city, frames in (("train", "aachen", 2), ("val", "lindau", 1)):
        for folder in ("leftImg8bit", "gtFine"):
            (root / folder / split / city).mkdir(parents=True)
        for frame in range(frames):
            stem = f"{city}_000000_{frame:06d}"
            Image.fromarray(rng.integers(0, 256, (16, 32, 3), dtype=np.uint8)).save(
                root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
            ids = np.full((16, 32), 7, np.uint16)  # road
            ids[2:6, 3:9] = 26000  # car 0
            ids[2:6, 20:24] = 26001  # car 1
            ids[8:16, 0:4] = 24000 + frame  # a person
            ids[10:12, 10:30] = 26  # a car group: no instance id
            ids[0:2, 28:32] = 29000  # a caravan: ignored by the evaluation
            Image.fromarray(ids).save(root / "gtFine" / split / city / f"{stem}_gtFine_instanceIds.png")


def test_cityscapes_instances_become_objects_groups_and_ignored_classes_unlabelled(tmp_path):
    write_cityscapes(tmp_path)
    dataset = DATASETS.get("cityscapes_instances")(root=str(tmp_path), height=16, width=32, max_objects=4)
    train = dataset.load("train")
    objects = train.targets["instance"][0, 0]
    assert objects[3, 4] == 2 * 1000 + 1 and objects[3, 21] == 2 * 1000 + 2 and objects[9, 1] == 0 * 1000 + 1
    assert objects[11, 15] == -1 and objects[0, 30] == -1 and objects[14, 20] == 0
    boxes = train.targets["detection"][0]
    torch.testing.assert_close(boxes[:3], torch.tensor([[0.0, 8, 4, 16, 0], [3, 2, 9, 6, 2], [20, 2, 24, 6, 2]]))
    assert boxes[3, 4] == -1 and len(dataset.load("test")) == 1
    half = DATASETS.get("cityscapes_instances")(root=str(tmp_path), height=8, width=16).load("train")
    torch.testing.assert_close(half.targets["detection"][0, 1], torch.tensor([1.0, 1, 4, 3, 2]))  # nearest-resized


def test_a_wrong_cityscapes_label_file_is_named(tmp_path, capsys):
    write_cityscapes(tmp_path)
    label = tmp_path / "gtFine" / "train" / "aachen" / "aachen_000000_000001_gtFine_instanceIds.png"
    Image.fromarray(np.zeros((8, 8), np.uint16)).save(label)
    assert main(["data", "check", "cityscapes_instances", str(tmp_path)]) == 1
    assert "aachen_000000_000001_gtFine_instanceIds.png: size 8x8, its RGB image is 32x16" in capsys.readouterr().out
    with pytest.raises(DatasetError, match="folder .*none/leftImg8bit/train not found"):
        DATASETS.get("cityscapes_instances")(root=str(tmp_path / "none")).require()


def write_nyu_depth(root):
    rng = np.random.default_rng(2)
    lines = {"train": [], "test": []}
    for split, folder, scenes in (("train", "sync", ("kitchen_0028a", "office_0003")), ("test", "official_splits/test",
                                                                                        ("bathroom",))):
        for scene in scenes:
            (root / folder / scene).mkdir(parents=True)
            Image.fromarray(rng.integers(0, 256, (12, 16, 3), dtype=np.uint8)).save(root / folder / scene / "rgb_00045.jpg")
            depth = np.full((12, 16), 2500, np.uint16)
            depth[0, :] = 0  # no sensor value
            Image.fromarray(depth).save(root / folder / scene / "sync_depth_00045.png")
            lines[split].append(f"/{scene}/rgb_00045.jpg /{scene}/sync_depth_00045.png 518.8579")
    for split, listed in lines.items():
        (root / f"nyudepthv2_{split}_files_with_gt.txt").write_text("\n".join(listed) + "\n")


def test_nyu_depth_reads_bts_lists_as_metres_with_zero_unlabelled(tmp_path, capsys):
    write_nyu_depth(tmp_path)
    dataset = DATASETS.get("nyu_depth")(root=str(tmp_path), height=12, width=16)
    train = dataset.load("train")
    assert train.images.shape == (2, 3, 12, 16) and len(dataset.load("test")) == 1
    depth = train.targets["depth"]
    assert depth.shape == (2, 1, 12, 16) and (depth[:, :, 0] == 0).all() and (depth[:, :, 1:] == 2.5).all()
    halved = DATASETS.get("nyu_depth")(root=str(tmp_path), height=6, width=8).load("test").targets["depth"]
    assert set(halved.unique().tolist()) <= {0.0, 2.5}  # nearest: no value blended with a missing one
    Image.fromarray(np.zeros((4, 4), np.uint16)).save(tmp_path / "sync" / "office_0003" / "sync_depth_00045.png")
    assert main(["data", "check", "nyu_depth", str(tmp_path)]) == 1
    assert "office_0003/sync_depth_00045.png: size 4x4, its RGB image is 16x12" in capsys.readouterr().out
    with pytest.raises(DatasetError, match="nyudepthv2_train_files_with_gt.txt not found.*cleinc/bts"):
        DATASETS.get("nyu_depth")(root=str(tmp_path / "none")).require()


def write_cityscapes_dense(root):
    """Cityscapes' own files for two training frames and one validation frame (32x16 camera images)."""
    rng = np.random.default_rng(3)
    for split, city, frames in (("train", "aachen", 2), ("val", "lindau", 1)):
        for folder in ("leftImg8bit", "gtFine", "disparity"):
            (root / folder / split / city).mkdir(parents=True)
        for frame in range(frames):
            stem = f"{city}_000000_{frame:06d}"
            Image.fromarray(rng.integers(0, 256, (16, 32, 3), dtype=np.uint8)).save(
                root / "leftImg8bit" / split / city / f"{stem}_leftImg8bit.png")
            ids = np.full((16, 32), 7, np.uint8)  # road
            ids[0:4] = 23  # sky
            ids[4:8, 0:8] = 26  # car
            ids[8:10] = 3  # out of roi: ignored
            Image.fromarray(ids).save(root / "gtFine" / split / city / f"{stem}_gtFine_labelIds.png")
            raw = np.zeros((16, 32), np.uint16)
            raw[4:16] = 256 * (10 + frame) + 1  # 10 (11) pixels of disparity
            raw[12:16, 16:32] = 256 * 3 + 129  # 3.5 pixels
            Image.fromarray(raw).save(root / "disparity" / split / city / f"{stem}_disparity.png")


def test_cityscapes_dense_gives_train_ids_and_disparity_in_pixels(tmp_path):
    write_cityscapes_dense(tmp_path)
    train = DATASETS.get("cityscapes_dense")(root=str(tmp_path), height=16, width=32).load("train")
    seg, depth = train.targets["seg"][0], train.targets["depth"][0, 0]
    assert seg[0, 0] == 10 and seg[5, 2] == 13 and seg[14, 20] == 0 and seg[9, 5] == -1
    assert depth[0, 0] == 0 and depth[5, 0] == 10.0 and depth[14, 20] == 3.5 and train.targets["depth"][1, 0, 5, 0] == 11
    half = DATASETS.get("cityscapes_dense")(root=str(tmp_path), height=8, width=16).load("train")
    assert half.targets["depth"][0, 0, 7, 10] == 3.5  # resized, still in the camera's pixels
    task = DATASETS.get("cityscapes_dense")().tasks()["depth"]
    meter = task.meter()
    meter.update(train.targets["depth"][:1] + 0.5, train.targets["depth"][:1])
    assert meter.compute()["abs_err"] == pytest.approx(0.5)  # Li et al. 2022a Table 3's L1 distance in pixels


def test_a_wrong_cityscapes_disparity_file_is_named(tmp_path, capsys):
    write_cityscapes_dense(tmp_path)
    disparity = tmp_path / "disparity" / "val" / "lindau" / "lindau_000000_000000_disparity.png"
    Image.fromarray(np.zeros((16, 32), np.uint8)).save(disparity)
    assert main(["data", "check", "cityscapes_dense", str(tmp_path)]) == 1
    assert "lindau_000000_000000_disparity.png: image mode L, expected one of" in capsys.readouterr().out
    with pytest.raises(DatasetError, match="folder .*none/leftImg8bit/train not found"):
        DATASETS.get("cityscapes_dense")(root=str(tmp_path / "none")).require()
