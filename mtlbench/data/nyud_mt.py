"""NYUD-MT: NYUv2 for multi-task learning as ASTMT (Maninis et al. 2019) prepared it, the dataset Yun and Cho
2023 train on (Tables 1-3; their code's ``NYU_MT``, Samsung/Achievement-based-MTL core/data/datasets/nyu.py):
795 training and 654 test images at 480x640, semantic segmentation of 40 classes, depth in metres, surface
normals. It differs from MTAN's NYUv2 (``nyuv2``: 288x384, 13 classes) in resolution and class set.

Layout (the ``NYUD_MT`` folder, as Multi-Task-Learning-PyTorch distributes it)::

    <root>/images/<id>.jpg            RGB
    <root>/segmentation/<id>.png      0 = unlabelled, 1..40 the classes
    <root>/depth/<id>.npy             float [H, W] in metres, 0 = invalid
    <root>/normals/<id>.npy           float [H, W, 3] unit vectors, all-zero = invalid
    <root>/gt_sets/train.txt, val.txt the ids of the training (795) and test (654) images, one per line

As AMTL's loader does, a label is the PNG's value minus 1, so unlabelled pixels are -1 (ignored) and the classes
0..39. Images are resized to ``height`` x ``width`` if they differ (bilinear; labels, depth and normals nearest,
so that no invalid pixel is blended into a valid one). ``val`` holds out that many of the last training images
for validation, or 0 to validate on the test split (mtlbench never selects models on it; AMTL's code evaluates
its achievements on the test split too).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..tasks import Depth, Normal, Segmentation, Task
from .base import DATASETS
from .image_files import EIGHT_BIT, SIXTEEN_BIT, ImageFileDataset, read_image, resize
from .npy_folders import DatasetError

CLASSES = 40
LISTS = {"train": "train", "test": "val"}
FOLDERS = ("images", "segmentation", "depth", "normals", "gt_sets")


def read_array(path: Path, channels: int, size: tuple[int, int]) -> tuple[np.ndarray | None, list[str]]:
    """A .npy target of the image's size ([H, W] or [H, W, channels]), finite, or None and why."""
    try:
        array = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        return None, [f"{path}: file not found"]
    except (OSError, ValueError) as error:
        return None, [f"{path}: cannot be read as a .npy array ({error})"]
    expected = (size[1], size[0]) if channels == 1 else (size[1], size[0], channels)
    if array.shape != expected:
        return None, [f"{path}: shape {array.shape}, expected {expected} (its image is {size[0]}x{size[1]})"]
    if not np.issubdtype(array.dtype, np.floating):
        return None, [f"{path}: values of type {array.dtype}, expected floats"]
    if not np.isfinite(array).all():
        return None, [f"{path}: NaN or infinite values"]
    return array.astype(np.float32), []


def nearest(array: np.ndarray, height: int, width: int) -> np.ndarray:
    """``array`` [H, W, ...] resampled to height x width by nearest neighbour, any dtype (a target's invalid
    pixels stay invalid, values are never blended)."""
    h, w = array.shape[:2]
    rows = ((np.arange(height) + 0.5) * h / height).astype(int)
    cols = ((np.arange(width) + 0.5) * w / width).astype(int)
    return array[rows][:, cols]


@DATASETS.register("nyud_mt")
@dataclass(frozen=True)
class NYUDMT(ImageFileDataset):
    """``root`` is the NYUD_MT folder (images/, segmentation/, depth/, normals/, gt_sets/)."""

    name: ClassVar[str] = "nyud_mt"
    published: ClassVar[str] = ("ASTMT's authors publish NYUD_MT (github.com/facebookresearch/astmt; the version with "
                                "PNG labels and .npy depth and normals ships with github.com/SimonVandenhende/"
                                "Multi-Task-Learning-PyTorch). Point the suite's dataset.root at the NYUD_MT folder.")
    root: str = "data/NYUD_MT"
    height: int = 480
    width: int = 640
    val: int = 0

    def tasks(self) -> dict[str, Task]:
        return {"seg": Segmentation("seg", CLASSES), "depth": Depth("depth", 1), "normal": Normal("normal", 3)}

    def layout(self) -> str:
        root = Path(self.root)
        return (f"Expected {root}/images/<id>.jpg, {root}/segmentation/<id>.png, {root}/depth/<id>.npy, "
                f"{root}/normals/<id>.npy and {root}/gt_sets/{{train,val}}.txt. {self.published}")

    def require(self) -> None:
        root = Path(self.root)
        if not root.is_dir():
            raise DatasetError(f"nyud_mt: dataset folder {root} not found. {self.layout()}")
        for folder in FOLDERS:
            if not (root / folder).is_dir():
                raise DatasetError(f"nyud_mt: folder {root / folder} not found. {self.layout()}")

    def ids(self, listed: str) -> list[str]:
        path = Path(self.root) / "gt_sets" / f"{listed}.txt"
        if not path.is_file():
            raise DatasetError(f"nyud_mt: {path} not found. {self.layout()}")
        return [line.strip() for line in path.read_text().splitlines() if line.strip()]

    def records(self, split: str) -> list[str]:
        return self.held_out(split, self.ids(LISTS["train"]), self.ids(LISTS["test"]))

    def every_record(self) -> list[str]:
        return [image_id for listed in LISTS.values() for image_id in self.ids(listed)]

    def read(self, image_id: str) -> tuple[dict[str, np.ndarray], list[str]]:
        root = Path(self.root)
        image, problems = read_image(root / "images" / f"{image_id}.jpg", ("RGB",))
        if image is None:
            return {}, problems
        size = (image.shape[1], image.shape[0])
        label_path = root / "segmentation" / f"{image_id}.png"
        label, found = read_image(label_path, EIGHT_BIT + SIXTEEN_BIT, size)
        problems += found
        if label is not None and label.max(initial=0) > CLASSES:
            problems.append(f"{label_path}: labels up to {label.max()}, expected 0 (unlabelled) to {CLASSES}")
        depth, found = read_array(root / "depth" / f"{image_id}.npy", 1, size)
        problems += found
        if depth is not None and (depth < 0).any():
            problems.append(f"{root / 'depth' / f'{image_id}.npy'}: negative depths (0 marks an invalid pixel)")
        normal, found = read_array(root / "normals" / f"{image_id}.npy", 3, size)
        problems += found
        if problems:
            return {}, problems
        image = np.round(resize(image, self.height, self.width, nearest=False)).astype(np.uint8)
        return {"image": np.moveaxis(image, -1, 0),
                "seg": nearest(label.astype(np.int16) - 1, self.height, self.width),
                "depth": nearest(depth, self.height, self.width)[None],
                "normal": np.moveaxis(nearest(normal, self.height, self.width), -1, 0)}, []
