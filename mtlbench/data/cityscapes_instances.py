"""Cityscapes instances (Cordts et al. 2016), as Li et al. 2022a Table 4 train Mask R-CNN on them: the 8 classes of
Cityscapes' instance benchmark, boxes (``detection``: each mask's extent, as detectron2 derives them) and masks
(``instance``), from Cityscapes' own layout::

    <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_instanceIds.png

An ``instanceIds`` pixel holds ``label_id * 1000 + k`` on the k-th (from 0) object of a class with instances, else
the pixel's label id. The 8 evaluated classes (person 24, rider 25, car 26, truck 27, bus 28, train 31, motorcycle 32,
bicycle 33) become classes 0-7 and their objects ``class * 1000 + k + 1`` (tasks/instance.py); a pixel of such a class
without an object id (a group, "cargroup") and the classes Cityscapes' evaluation ignores though they have instances
(caravan 29, trailer 30) become -1, unlabelled; every other pixel is 0, no object. Maps are resized with nearest
neighbours to ``height`` x ``width``; an object whose pixels the resizing removes is gone from both tasks.
``train`` and ``test`` name the splits (train and val: the test split's labels are private). A malformed file (not
an integer PNG, another size than its image, a label id past 33) is refused naming it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..tasks import Detection, Instance, Task
from ..tasks.instance import INSTANCE_STRIDE
from .base import DATASETS
from .image_files import SIXTEEN_BIT, ImageFileDataset, read_image, resize
from .npy_folders import DatasetError

CLASSES = ("person", "rider", "car", "truck", "bus", "train", "motorcycle", "bicycle")
LABEL_IDS = (24, 25, 26, 27, 28, 31, 32, 33)
IGNORED_WITH_INSTANCES = (29, 30)  # caravan, trailer: instances Cityscapes' evaluation ignores
CITYSCAPES_STRIDE = 1000
LAST_LABEL_ID = 33


def instance_map(ids: np.ndarray) -> np.ndarray:
    """Cityscapes' instanceIds [H, W] as mtlbench's instance map (int32)."""
    label, k = ids // CITYSCAPES_STRIDE, ids % CITYSCAPES_STRIDE
    is_object = ids >= CITYSCAPES_STRIDE
    label = np.where(is_object, label, ids)
    lookup = np.full(LAST_LABEL_ID + 1, -1, np.int64)
    lookup[list(LABEL_IDS)] = np.arange(len(LABEL_IDS))
    cls = lookup[np.clip(label, 0, LAST_LABEL_ID)]
    out = np.zeros(ids.shape, np.int32)
    out[(cls >= 0) & is_object] = (cls * INSTANCE_STRIDE + k + 1)[(cls >= 0) & is_object]
    out[((cls >= 0) & ~is_object) | np.isin(label, IGNORED_WITH_INSTANCES)] = -1
    return out


def extents(objects: np.ndarray, max_objects: int) -> np.ndarray:
    """[max_objects, 5]: each object's mask extent (pixel edges) and class, class -1 padding, in id order."""
    target = np.zeros((max_objects, 5), np.float32)
    target[:, 4] = -1
    ids = np.unique(objects[objects > 0])
    for row, value in enumerate(ids):
        ys, xs = np.nonzero(objects == value)
        target[row] = [xs.min(), ys.min(), xs.max() + 1, ys.max() + 1, value // INSTANCE_STRIDE]
    return target


@dataclass(frozen=True)
class CityscapesFiles(ImageFileDataset):
    """Cityscapes' own layout: the split's images under ``leftImg8bit/``, each with files of the same name in the
    ``folders`` a dataset reads (``companion``)."""

    folders: ClassVar[tuple[str, ...]] = ("leftImg8bit", "gtFine")
    root: str = "data/cityscapes_full"
    train: str = "train"
    test: str = "val"

    def require(self) -> None:
        for split in (self.train, self.test):
            for folder in (Path(self.root) / name / split for name in self.folders):
                if not folder.is_dir():
                    raise DatasetError(f"{self.name}: folder {folder} not found. {self.layout()}")

    def split_records(self, split: str) -> list[Path]:
        """The split's images, sorted by city and name."""
        return sorted((Path(self.root) / "leftImg8bit" / split).glob("*/*_leftImg8bit.png"))

    def records(self, split: str) -> list[Path]:
        return self.held_out(split, self.split_records(self.train), self.split_records(self.test))

    def every_record(self) -> list[Path]:
        return [*self.split_records(self.train), *self.split_records(self.test)]

    def companion(self, image: Path, folder: str, suffix: str) -> Path:
        """The file of ``folder`` that goes with ``image``: ``<folder>/<split>/<city>/<name>_<suffix>.png``."""
        split, city = image.parent.parent.name, image.parent.name
        stem = image.name.removesuffix("_leftImg8bit.png")
        return Path(self.root) / folder / split / city / f"{stem}_{suffix}.png"


@DATASETS.register("cityscapes_instances")
@dataclass(frozen=True)
class CityscapesInstances(CityscapesFiles):
    """``root`` holds ``leftImg8bit/`` and ``gtFine/``."""

    name: ClassVar[str] = "cityscapes_instances"
    published: ClassVar[str] = ("Cityscapes is published at cityscapes-dataset.com (leftImg8bit_trainvaltest.zip and "
                                "gtFine_trainvaltest.zip, after registering); point the suite's dataset.root at the "
                                "folder holding leftImg8bit/ and gtFine/.")
    height: int = 512
    width: int = 1024
    val: int = 0
    max_objects: int = 128

    def tasks(self) -> dict[str, Task]:
        return {"detection": Detection("detection", len(CLASSES), image_size=(self.height, self.width)),
                "instance": Instance("instance", len(CLASSES))}

    def layout(self) -> str:
        root = Path(self.root)
        return (f"Expected {root}/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png and "
                f"{root}/gtFine/<split>/<city>/<name>_gtFine_instanceIds.png. {self.published}")

    def label_path(self, image: Path) -> Path:
        return self.companion(image, "gtFine", "gtFine_instanceIds")

    def read(self, image_path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
        image, problems = read_image(image_path, ("RGB",))
        ids, label_problems = read_image(self.label_path(image_path), SIXTEEN_BIT,
                                         None if image is None else (image.shape[1], image.shape[0]))
        problems += label_problems
        if ids is not None and ids.max(initial=0) // CITYSCAPES_STRIDE > LAST_LABEL_ID:
            problems.append(f"{self.label_path(image_path)}: label id {ids.max() // CITYSCAPES_STRIDE} past "
                            f"Cityscapes' last ({LAST_LABEL_ID}); is this an instanceIds file?")
        if problems:
            return {}, problems
        objects = resize(instance_map(ids.astype(np.int64)), self.height, self.width, nearest=True)
        count = len(np.unique(objects[objects > 0]))
        if count > self.max_objects:
            return {}, [f"{self.label_path(image_path)}: {count} objects, more than max_objects = "
                        f"{self.max_objects} (raise it)"]
        pixels = np.round(resize(image, self.height, self.width, nearest=False)).astype(np.uint8)
        return {"image": np.moveaxis(pixels, -1, 0), "detection": extents(objects, self.max_objects),
                "instance": objects[None].astype(np.int32)}, []
