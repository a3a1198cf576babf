"""PASCAL VOC 2012 with the SBD augmentation, as Sun et al. 2023 (Sec. 5.1) builds it after DeepLab-v3: train on
``train_aug`` (VOC 2012 train + SBD, 10,582 images), test on VOC 2012 ``val`` (1,449 images). Two tasks:
``seg`` (21 classes, the boundary label 255 ignored) and ``cls``, the multi-label presence of the 20 foreground
classes, derived from the full-resolution segmentation ("we extract class labels of the foreground objects in
each image to form a multi-label classification task").

Layout (VOC 2012's, with the SBD labels converted to PNGs as DeepLab's ``SegmentationClassAug``)::

    <root>/JPEGImages/<id>.jpg
    <root>/SegmentationClass/<id>.png          VOC 2012 labels (palette indices), read for val
    <root>/SegmentationClassAug/<id>.png       train_aug labels (indices 0..20, 255 boundary)
    <root>/ImageSets/Segmentation/train_aug.txt, val.txt

Images are resized to ``height`` x ``width`` (bilinear; labels nearest); the paper states no input size, 320x320
is mtlbench's default. ``val`` holds out that many of the last train_aug images for validation, or 0 to
validate on the test split (mtlbench never selects models on it).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..tasks import MultiLabel, Segmentation, Task
from .base import DATASETS
from .image_files import ImageFileDataset, read_image, resize
from .npy_folders import DatasetError

CLASSES = 21  # background + 20 object classes
BOUNDARY = 255
LISTS = {"train": "train_aug", "test": "val"}
LABELS = {"train": "SegmentationClassAug", "test": "SegmentationClass"}


def label_values(raw: np.ndarray) -> str | None:
    bad = np.setdiff1d(np.unique(raw), [*range(CLASSES), BOUNDARY])
    return f"labels {bad[:5].tolist()} outside 0..20 and 255 (boundary)" if len(bad) else None


def read_label_map(path: Path, image_shape: tuple[int, ...]) -> tuple[np.ndarray | None, list[str]]:
    """A VOC segmentation PNG (class indices, 255 on boundaries) of the image's size, or the problems found."""
    seg, problems = read_image(path, ("L", "P"), (image_shape[1], image_shape[0]))
    if seg is not None and (message := label_values(seg)):
        problems.append(f"{path}: {message}")
    return seg, problems


def resized_labels(seg: np.ndarray, height: int, width: int) -> np.ndarray:
    """The labels at height x width (nearest), the boundary as mtlbench's ignore value -1."""
    seg = resize(seg, height, width, nearest=True).astype(np.int16)
    seg[seg == BOUNDARY] = -1
    return seg


@DATASETS.register("pascal_voc")
@dataclass(frozen=True)
class PascalVOC(ImageFileDataset):
    """``root`` is VOC 2012's folder (``VOCdevkit/VOC2012``) with SBD's ``SegmentationClassAug`` added."""

    name: ClassVar[str] = "pascal_voc"
    published: ClassVar[str] = ("VOC 2012 is published at host.robots.ox.ac.uk/pascal/VOC/voc2012 and SBD at "
                                "home.bharathh.info/pubs/codes/SBD; DeepLab's SegmentationClassAug and "
                                "train_aug.txt are the usual conversion. Point the suite's dataset.root at "
                                "VOCdevkit/VOC2012.")
    root: str = "data/VOCdevkit/VOC2012"
    height: int = 320
    width: int = 320
    val: int = 0

    def tasks(self) -> dict[str, Task]:
        return {"seg": Segmentation("seg", CLASSES), "cls": MultiLabel("cls", CLASSES - 1)}

    def ids(self, listed: str) -> list[str]:
        path = Path(self.root) / "ImageSets" / "Segmentation" / f"{listed}.txt"
        if not path.is_file():
            raise DatasetError(f"pascal_voc: {path} not found. {self.layout()}")
        return [line.split()[0] for line in path.read_text().splitlines() if line.strip()]

    def layout(self) -> str:
        root = Path(self.root)
        return (f"Expected {root}/JPEGImages/<id>.jpg, {root}/SegmentationClassAug/<id>.png (train_aug), "
                f"{root}/SegmentationClass/<id>.png (val) and {root}/ImageSets/Segmentation/{{train_aug,val}}.txt. "
                f"{self.published}")

    def require(self) -> None:
        root = Path(self.root)
        if not root.is_dir():
            raise DatasetError(f"pascal_voc: dataset folder {root} not found. {self.layout()}")
        for folder in ("JPEGImages", *LABELS.values()):
            if not (root / folder).is_dir():
                raise DatasetError(f"pascal_voc: folder {root / folder} not found. {self.layout()}")
        overlap = set(self.ids(LISTS["train"])) & set(self.ids(LISTS["test"]))
        if overlap:
            raise DatasetError(f"pascal_voc: {len(overlap)} images of val.txt are also in train_aug.txt (e.g. "
                               f"{sorted(overlap)[:3]}); train_aug must exclude VOC 2012 val")

    def records(self, split: str) -> list[tuple[str, str]]:
        """(image id, label folder) of an mtlbench split."""
        return self.held_out(split, [(i, LABELS["train"]) for i in self.ids(LISTS["train"])],
                             [(i, LABELS["test"]) for i in self.ids(LISTS["test"])])

    def read(self, record: tuple[str, str]) -> tuple[dict[str, np.ndarray], list[str]]:
        image_id, labels = record
        root = Path(self.root)
        image, problems = read_image(root / "JPEGImages" / f"{image_id}.jpg", ("RGB",))
        if image is None:
            return {}, problems
        seg, problems = read_label_map(root / labels / f"{image_id}.png", image.shape)
        if problems:
            return {}, problems
        present = np.zeros(CLASSES - 1, np.float32)
        foreground = np.unique(seg[(seg > 0) & (seg < CLASSES)])
        present[foreground - 1] = 1
        seg = resized_labels(seg, self.height, self.width)
        image = np.round(resize(image, self.height, self.width, nearest=False)).astype(np.uint8)
        return {"image": np.moveaxis(image, -1, 0), "seg": seg, "cls": present}, []

    def every_record(self) -> list[tuple[str, str]]:
        return [(i, LABELS[split]) for split, listed in LISTS.items() for i in self.ids(listed)]
