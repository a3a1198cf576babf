"""COCO instances (Lin et al. 2014), as Li et al. 2022a Table 4 train Mask R-CNN on it: boxes (``detection``) and
instance masks (``instance``) of the 80 thing classes, from COCO's own layout::

    <root>/<train>/<file_name>                 the images (train2017/000000391895.jpg, ...)
    <root>/<test>/<file_name>                  (val2017: the usual test split; test2017's annotations are private)
    <root>/annotations/instances_<train>.json  images, annotations (bbox, segmentation, iscrowd), categories

Categories keep the order of the file's ``categories`` list (COCO's ids 1-90 with gaps become classes 0-79). Boxes
are COCO's ``bbox`` (x, y, w, h from the top-left pixel edge) as pixel edges x1, y1, x2, y2, scaled with the image to
``height`` x ``width``. Masks (polygons or RLE, decoded by pycocotools) are drawn into the instance map in the file's
order, later objects over earlier ones where they overlap (one map holds one object per pixel: tasks/instance.py),
then resized (nearest). A crowd annotation (``iscrowd`` 1) is no object: its pixels become -1, unlabelled, and its
box is left out; COCO's evaluation instead ignores detections that fall on it, which mtlbench's mAP cannot, so the
scores on crowd images are slightly lower than pycocotools' on the original annotations (a simplification).
An image keeps at most ``max_objects`` boxes (COCO's most is 93); one with more is refused, naming it.

A malformed annotation (JSON that does not parse, a box outside the image or of negative size, an unknown category
or image, more than 999 objects in an image) is refused naming the file and the annotation id. Each split loads whole
into memory, as every mtlbench dataset does: at 512 x 512, COCO's 118k training images take 93 GB.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..tasks import Detection, Instance, Task
from ..tasks.instance import INSTANCE_STRIDE
from .base import DATASETS
from .image_files import ImageFileDataset, read_image, resize
from .npy_folders import DatasetError


@dataclass(frozen=True)
class Annotations:
    """One annotation file, indexed: categories in order, images by id, each image's annotations in file order."""

    path: Path
    categories: list[int]
    names: list[str]
    images: dict[int, dict[str, Any]]
    by_image: dict[int, list[dict[str, Any]]]


def read_annotations(path: Path) -> Annotations:
    if not path.is_file():
        raise DatasetError(f"coco: annotation file {path} not found")
    try:
        data = json.loads(path.read_text())
        categories = [c["id"] for c in data["categories"]]
        names = [c.get("name", str(c["id"])) for c in data["categories"]]
        images = {image["id"]: image for image in data["images"]}
        annotations = data["annotations"]
    except (json.JSONDecodeError, KeyError, TypeError) as error:
        raise DatasetError(f"coco: {path} is not a COCO instances file ({type(error).__name__}: {error}); it needs "
                           f"'images', 'annotations' and 'categories'") from None
    by_image: dict[int, list[dict[str, Any]]] = {image_id: [] for image_id in images}
    for annotation in annotations:
        if annotation.get("image_id") not in by_image:
            raise DatasetError(f"coco: {path}: annotation {annotation.get('id')}: image_id {annotation.get('image_id')} "
                               f"is not among the file's images")
        by_image[annotation["image_id"]].append(annotation)
    return Annotations(path, categories, names, images, by_image)


def annotation_problem(annotation: dict[str, Any], image: dict[str, Any], categories: list[int]) -> str | None:
    if annotation.get("category_id") not in categories:
        return f"unknown category_id {annotation.get('category_id')}"
    try:
        x, y, w, h = (float(v) for v in annotation["bbox"])
    except (KeyError, TypeError, ValueError):
        return "bbox is not four numbers"
    if w < 0 or h < 0:
        return f"bbox ({x:g}, {y:g}, {w:g}, {h:g}) has a negative size"
    if x < 0 or y < 0 or x + w > image["width"] + 0.5 or y + h > image["height"] + 0.5:
        return f"bbox ({x:g}, {y:g}, {w:g}, {h:g}) lies outside the {image['width']}x{image['height']} image"
    if "segmentation" not in annotation:
        return "no segmentation"
    return None


def decoded_mask(annotation: dict[str, Any], height: int, width: int) -> np.ndarray:
    """The annotation's mask [H, W] bool from its polygons or RLE (pycocotools)."""
    try:
        from pycocotools import mask as coco_mask
    except ImportError as error:
        raise ImportError(f"COCO's masks need pycocotools: pip install 'mtlbench[detection]' ({error})") from None
    segmentation = annotation["segmentation"]
    if isinstance(segmentation, list):
        rle = coco_mask.merge(coco_mask.frPyObjects(segmentation, height, width))
    elif isinstance(segmentation.get("counts"), list):
        rle = coco_mask.frPyObjects(segmentation, height, width)
    else:
        rle = segmentation
    return coco_mask.decode(rle).astype(bool)


@DATASETS.register("coco")
@dataclass(frozen=True)
class COCO(ImageFileDataset):
    """``root`` holds the image folders and ``annotations/``; ``train`` and ``test`` name the splits (their folder
    and their ``instances_<name>.json``)."""

    name: ClassVar[str] = "coco"
    published: ClassVar[str] = ("COCO 2017 is published at cocodataset.org (train2017.zip, val2017.zip, "
                                "annotations_trainval2017.zip); point the suite's dataset.root at the folder holding "
                                "train2017/, val2017/ and annotations/.")
    root: str = "data/coco"
    train: str = "train2017"
    test: str = "val2017"
    height: int = 512
    width: int = 512
    val: int = 0
    max_objects: int = 100

    def tasks(self) -> dict[str, Task]:
        classes = len(self.annotations(self.train).categories) if self.files_present() else 80
        return {"detection": Detection("detection", classes, image_size=(self.height, self.width)),
                "instance": Instance("instance", classes)}

    def files_present(self) -> bool:
        return (Path(self.root) / "annotations" / f"instances_{self.train}.json").is_file()

    def annotations(self, split_name: str) -> Annotations:
        return self.indexed[split_name]

    @cached_property
    def indexed(self) -> dict[str, Annotations]:
        root = Path(self.root) / "annotations"
        return {name: read_annotations(root / f"instances_{name}.json") for name in dict.fromkeys([self.train, self.test])}

    def layout(self) -> str:
        root = Path(self.root)
        return (f"Expected {root}/{{{self.train},{self.test}}}/<file_name> and "
                f"{root}/annotations/instances_{{{self.train},{self.test}}}.json. {self.published}")

    def require(self) -> None:
        root = Path(self.root)
        for path in (root / self.train, root / self.test, root / "annotations" / f"instances_{self.train}.json",
                     root / "annotations" / f"instances_{self.test}.json"):
            if not path.exists():
                raise DatasetError(f"{self.name}: {path} not found. {self.layout()}")
        train, test = self.annotations(self.train), self.annotations(self.test)
        if train.categories != test.categories:
            raise DatasetError(f"{self.name}: {test.path} lists other categories than {train.path}; both splits need "
                               f"the same 'categories' in the same order")

    def split_records(self, split_name: str) -> list[tuple[str, int]]:
        return [(split_name, image_id) for image_id in sorted(self.annotations(split_name).images)]

    def records(self, split: str) -> list[tuple[str, int]]:
        return self.held_out(split, self.split_records(self.train), self.split_records(self.test))

    def every_record(self) -> list[tuple[str, int]]:
        return [*self.split_records(self.train), *self.split_records(self.test)]

    def read(self, record: tuple[str, int]) -> tuple[dict[str, np.ndarray], list[str]]:
        split_name, image_id = record
        annotations = self.annotations(split_name)
        image = annotations.images[image_id]
        size = (image["width"], image["height"])
        pixels, problems = read_image(Path(self.root) / split_name / image["file_name"], ("RGB", "L"), size)
        boxes, instance_map, object_problems = self.objects(annotations, image)
        problems += object_problems
        if problems:
            return {}, problems
        if pixels.ndim == 2:  # COCO holds a few greyscale images
            pixels = np.repeat(pixels[..., None], 3, -1)
        scale = np.array([self.width / size[0], self.height / size[1]] * 2, np.float32)
        target = np.zeros((self.max_objects, 5), np.float32)
        target[:, 4] = -1
        target[:len(boxes), :4] = boxes[:, :4] * scale
        target[:len(boxes), 4] = boxes[:, 4]
        return {"image": np.moveaxis(np.round(resize(pixels, self.height, self.width, nearest=False)).astype(np.uint8),
                                     -1, 0),
                "detection": target,
                "instance": resize(instance_map, self.height, self.width, nearest=True)[None].astype(np.int32)}, []

    def objects(self, annotations: Annotations, image: dict[str, Any]) -> tuple[np.ndarray, np.ndarray, list[str]]:
        """The image's boxes [K, 5] and its instance map [H, W] at the file's size, and every problem, each naming
        the file and the annotation id."""
        height, width = image["height"], image["width"]
        instance_map = np.zeros((height, width), np.int32)
        rows, problems = [], []
        for annotation in annotations.by_image.get(image["id"], []):
            where = f"{annotations.path}: annotation {annotation.get('id')} (image {image['id']})"
            problem = annotation_problem(annotation, image, annotations.categories)
            if problem is None and len(rows) >= INSTANCE_STRIDE - 1:
                problem = f"more than {INSTANCE_STRIDE - 1} objects in one image"
            if problem:
                problems.append(f"{where}: {problem}")
                continue
            mask = decoded_mask(annotation, height, width)
            if annotation.get("iscrowd", 0):
                instance_map[mask] = -1
                continue
            x, y, w, h = (float(v) for v in annotation["bbox"])
            label = annotations.categories.index(annotation["category_id"])
            rows.append([x, y, x + w, y + h, float(label)])
            instance_map[mask] = label * INSTANCE_STRIDE + len(rows)
        if len(rows) > self.max_objects:
            problems.append(f"{annotations.path}: image {image['id']} has {len(rows)} objects, more than "
                            f"max_objects = {self.max_objects} (raise it)")
        return np.array(rows, np.float32).reshape(-1, 5), instance_map, problems
