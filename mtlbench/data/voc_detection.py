"""PASCAL VOC object detection (Everingham et al. 2010): the 20 classes' boxes, from VOC's own layout::

    <root>/JPEGImages/<id>.jpg
    <root>/Annotations/<id>.xml                one <object> per box: <name>, <difficult>, <bndbox> (1-based pixels)
    <root>/ImageSets/Main/<list>.txt           image ids, one per line (train, val, trainval, test)

``root`` is one year's folder (``VOCdevkit/VOC2012`` or ``VOC2007``); ``train`` and ``test`` name the lists (VOC 2012's
test annotations are not public, so its ``val`` is the usual test split). Boxes are read as pixel edges (a box of
``xmin`` 1 to ``xmax`` W covers the whole width: x1 = xmin - 1, x2 = xmax, as torchvision and effdet read them) and
scaled with the image to ``height`` x ``width``. Objects marked ``difficult`` are left out unless ``difficult`` is
true (VOC's evaluation ignores them; COCO's mAP, which mtlbench reports, cannot). An image keeps at most
``max_objects`` boxes, the padded width of the detection targets; one with more is refused, naming it.

With ``segmentation``, the images also carry VOC's ``seg`` task (21 classes, boundaries ignored) where a label map
exists, as the detection + segmentation source of Yun and Cho 2023 Sec. 4.2.2 (the authors' ``voc0712.py`` reads an
image's map if its file exists): training images from ``SegmentationClassAug/<id>.png`` (SBD's, as DeepLab converts
them), test images from ``SegmentationClass/<id>.png``; an image without one is unlabelled for ``seg``.

A malformed annotation (XML that does not parse, a missing field, an unknown class, a box outside the image or of
negative size) is refused naming the file and the object.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar
from xml.etree import ElementTree

import numpy as np


from ..tasks import Detection, Segmentation, Task
from .base import DATASETS, Split
from .image_files import ImageFileDataset, read_image, resize
from .pascal_voc import CLASSES as SEG_CLASSES, LABELS, read_label_map, resized_labels
from .npy_folders import DatasetError

VOC_LISTS = ("train", "val", "trainval", "test")  # ImageSets/Main's own lists
CLASSES = ("aeroplane", "bicycle", "bird", "boat", "bottle", "bus", "car", "cat", "chair", "cow", "diningtable", "dog",
           "horse", "motorbike", "person", "pottedplant", "sheep", "sofa", "train", "tvmonitor")


def parse_annotation(path: Path, keep_difficult: bool) -> tuple[np.ndarray | None, tuple[int, int] | None, list[str]]:
    """The file's boxes [K, 5] (x1, y1, x2, y2 as pixel edges, class index), the image's (width, height), and every
    problem found, each naming the file and the object."""
    try:
        root = ElementTree.parse(path).getroot()
    except FileNotFoundError:
        return None, None, [f"{path}: file not found"]
    except ElementTree.ParseError as error:
        return None, None, [f"{path}: not valid XML ({error})"]
    try:
        size = (int(root.findtext("size/width")), int(root.findtext("size/height")))
    except (TypeError, ValueError):
        return None, None, [f"{path}: <size> lacks a whole <width> and <height>"]
    rows, problems = [], []
    for k, obj in enumerate(root.iter("object")):
        row, problem = object_row(obj, size, keep_difficult)
        if problem:
            problems.append(f"{path}: object {k} ({obj.findtext('name') or 'no name'}): {problem}")
        elif row is not None:
            rows.append(row)
    return np.array(rows, np.float32).reshape(-1, 5), size, problems


def object_row(obj: ElementTree.Element, size: tuple[int, int], keep_difficult: bool
               ) -> tuple[list[float] | None, str | None]:
    """One object's row, None for a difficult one left out, or what is wrong with it."""
    name = (obj.findtext("name") or "").strip()
    if name not in CLASSES:
        return None, f"unknown class {name!r} (VOC's 20: {', '.join(CLASSES)})"
    if (obj.findtext("difficult") or "0").strip() == "1" and not keep_difficult:
        return None, None
    try:
        xmin, ymin, xmax, ymax = (float(obj.findtext(f"bndbox/{key}")) for key in ("xmin", "ymin", "xmax", "ymax"))
    except (TypeError, ValueError):
        return None, "<bndbox> lacks a number for xmin, ymin, xmax or ymax"
    width, height = size
    if xmax < xmin or ymax < ymin:
        return None, f"box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) has a negative size"
    if xmin < 1 or ymin < 1 or xmax > width or ymax > height:
        return None, f"box ({xmin:g}, {ymin:g}, {xmax:g}, {ymax:g}) lies outside the {width}x{height} image"
    return [xmin - 1, ymin - 1, xmax, ymax, float(CLASSES.index(name))], None


@DATASETS.register("pascal_voc_detection")
@dataclass(frozen=True)
class PascalVOCDetection(ImageFileDataset):
    """``root`` is one year's VOC folder; ``train`` and ``test`` name its ImageSets/Main lists."""

    name: ClassVar[str] = "pascal_voc_detection"
    published: ClassVar[str] = ("VOC 2007 and 2012 are published at host.robots.ox.ac.uk/pascal/VOC; point the suite's "
                                "dataset.root at VOCdevkit/VOC2012 (or VOC2007).")
    root: str = "data/VOCdevkit/VOC2012"
    train: str = "train"
    test: str = "val"
    height: int = 512
    width: int = 512
    val: int = 0
    difficult: bool = False
    max_objects: int = 64
    segmentation: bool = False

    def tasks(self) -> dict[str, Task]:
        tasks: dict[str, Task] = {"detection": Detection("detection", len(CLASSES), image_size=(self.height, self.width))}
        if self.segmentation:
            tasks["seg"] = Segmentation("seg", SEG_CLASSES)
        return tasks

    def ids(self, listed: str) -> list[str]:
        path = Path(self.root) / "ImageSets" / "Main" / f"{listed}.txt"
        if not path.is_file():
            own = "" if listed in VOC_LISTS else (f" {listed}.txt is not one of VOC's lists: write it, one image id "
                                                  f"per line (docs/datasets.md gives the lists of the VOC + NYU set).")
            raise DatasetError(f"{self.name}: {path} not found.{own} {self.layout()}")
        return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]

    def layout(self) -> str:
        root = Path(self.root)
        return (f"Expected {root}/JPEGImages/<id>.jpg, {root}/Annotations/<id>.xml and "
                f"{root}/ImageSets/Main/{{{self.train},{self.test}}}.txt. {self.published}")

    def require(self) -> None:
        root = Path(self.root)
        for folder in (root, root / "JPEGImages", root / "Annotations"):
            if not folder.is_dir():
                raise DatasetError(f"{self.name}: folder {folder} not found. {self.layout()}")
        overlap = set(self.ids(self.train)) & set(self.ids(self.test))
        if overlap:
            raise DatasetError(f"{self.name}: {len(overlap)} images of {self.test}.txt are also in {self.train}.txt "
                               f"(e.g. {sorted(overlap)[:3]}); the test list must be disjoint from the training one")

    def records(self, split: str) -> list[tuple[str, str]]:
        """(image id, the folder of its label map) of an mtlbench split."""
        return self.held_out(split, self.listed("train"), self.listed("test"))

    def listed(self, split: str) -> list[tuple[str, str]]:
        return [(image_id, LABELS[split]) for image_id in self.ids(getattr(self, split))]

    def every_record(self) -> list[tuple[str, str]]:
        return list(dict.fromkeys([*self.listed("train"), *self.listed("test")]))

    def load(self, split: str) -> Split:
        loaded = super().load(split)
        if not self.segmentation:
            return loaded
        labelled = (loaded.targets["seg"] >= 0).flatten(1).any(1)  # a map that ignores every pixel: no label
        return Split(loaded.images, loaded.targets, {"seg": labelled})

    def read(self, record: tuple[str, str]) -> tuple[dict[str, np.ndarray], list[str]]:
        image_id, labels = record
        root = Path(self.root)
        path = root / "Annotations" / f"{image_id}.xml"
        boxes, size, problems = parse_annotation(path, self.difficult)
        image, image_problems = read_image(root / "JPEGImages" / f"{image_id}.jpg", ("RGB",), size)
        problems += image_problems
        if boxes is not None and len(boxes) > self.max_objects:
            problems.append(f"{path}: {len(boxes)} objects, more than max_objects = {self.max_objects} (raise it)")
        if problems:
            return {}, problems
        scale = np.array([self.width / size[0], self.height / size[1]] * 2, np.float32)
        target = np.zeros((self.max_objects, 5), np.float32)
        target[:, 4] = -1
        target[:len(boxes), :4] = boxes[:, :4] * scale
        target[:len(boxes), 4] = boxes[:, 4]
        arrays = {"detection": target}
        if self.segmentation:
            seg, seg_problems = self.label_map(root / labels / f"{image_id}.png", image.shape)
            if seg_problems:
                return {}, seg_problems
            arrays["seg"] = seg
        image = np.round(resize(image, self.height, self.width, nearest=False)).astype(np.uint8)
        return {"image": np.moveaxis(image, -1, 0), **arrays}, []

    def label_map(self, path: Path, image_shape: tuple[int, ...]) -> tuple[np.ndarray, list[str]]:
        """The image's segmentation at the dataset's size, every pixel ignored (-1) where it has no map."""
        if not path.is_file():
            return np.full((self.height, self.width), -1, np.int16), []
        seg, problems = read_label_map(path, image_shape)
        return (resized_labels(seg, self.height, self.width) if seg is not None else None), problems
