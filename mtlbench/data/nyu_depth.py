"""NYU Depth v2 as monocular-depth work trains on it (BTS, Lee et al. 2019), the depth source of Yun and Cho 2023's
VOC + NYU set (Sec. 4.2.2: 24,231 depth images; their code's ``NYUDepthEstimation``, core/data/datasets/nyu.py):
the raw video frames synchronised with their depth ("sync") for training and the 654 labelled test images of the
official split for testing, depth only. Layout (BTS's)::

    <root>/nyudepthv2_train_files_with_gt.txt   "<rgb> <depth> <focal>" per line, paths under sync/
    <root>/nyudepthv2_test_files_with_gt.txt    the same, paths under official_splits/test/
    <root>/sync/<scene>/rgb_<n>.jpg, sync_depth_<n>.png
    <root>/official_splits/test/<scene>/rgb_<n>.jpg, sync_depth_<n>.png

A depth PNG holds millimetres as 16-bit integers, 0 where the sensor has no value; mtlbench stores metres (0 stays
"no label"). Images are resized to ``height`` x ``width`` (480 x 640 by default, the frames' size: bilinear, depth
nearest). A list line whose depth is "None" (BTS's way of listing a frame without depth, used for KITTI) or a depth
file of another size than its image is refused naming the file.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..tasks import Depth, Task
from .base import DATASETS
from .image_files import SIXTEEN_BIT, ImageFileDataset, read_image, resize
from .npy_folders import DatasetError

FOLDERS = {"train": "sync", "test": "official_splits/test"}
MILLIMETRES = 1000.0


@DATASETS.register("nyu_depth")
@dataclass(frozen=True)
class NYUDepth(ImageFileDataset):
    """``root`` holds BTS's lists, ``sync/`` and ``official_splits/test/``."""

    name: ClassVar[str] = "nyu_depth"
    published: ClassVar[str] = ("BTS's preparation of NYU Depth v2 (github.com/cleinc/bts, 'Preparation for "
                                "Training' and 'Testing': sync.zip and the official split's test images) gives this "
                                "layout; point the suite's dataset.root at the folder holding both lists.")
    root: str = "data/nyu_depth_v2"
    height: int = 480
    width: int = 640
    val: int = 0

    def tasks(self) -> dict[str, Task]:
        return {"depth": Depth("depth", 1)}

    def list_file(self, split: str) -> Path:
        return Path(self.root) / f"nyudepthv2_{split}_files_with_gt.txt"

    def layout(self) -> str:
        return (f"Expected {self.list_file('train')}, {self.list_file('test')}, {Path(self.root) / FOLDERS['train']}/ "
                f"and {Path(self.root) / FOLDERS['test']}/. {self.published}")

    def require(self) -> None:
        for path in (self.list_file("train"), self.list_file("test")):
            if not path.is_file():
                raise DatasetError(f"{self.name}: {path} not found. {self.layout()}")

    def split_records(self, split: str) -> list[tuple[str, str, str]]:
        """(folder, rgb, depth) per line of the split's list."""
        records = []
        for number, line in enumerate(self.list_file(split).read_text().splitlines(), 1):
            fields = line.split()
            if not fields:
                continue
            if len(fields) < 2:
                raise DatasetError(f"{self.name}: {self.list_file(split)} line {number}: expected '<rgb> <depth> "
                                   f"<focal>', got {line!r}")
            records.append((FOLDERS[split], fields[0].lstrip("/"), fields[1].lstrip("/")))
        return records

    def records(self, split: str) -> list[tuple[str, str, str]]:
        return self.held_out(split, self.split_records("train"), self.split_records("test"))

    def every_record(self) -> list[tuple[str, str, str]]:
        return [*self.split_records("train"), *self.split_records("test")]

    def read(self, record: tuple[str, str, str]) -> tuple[dict[str, np.ndarray], list[str]]:
        folder, rgb, depth = record
        root = Path(self.root) / folder
        if depth == "None":
            return {}, [f"{root / rgb}: its list gives no depth file ('None')"]
        image, problems = read_image(root / rgb, ("RGB",))
        millimetres, depth_problems = read_image(root / depth, SIXTEEN_BIT,
                                                 None if image is None else (image.shape[1], image.shape[0]))
        problems += depth_problems
        if problems:
            return {}, problems
        metres = resize(millimetres, self.height, self.width, nearest=True).astype(np.float32) / MILLIMETRES
        pixels = np.round(resize(image, self.height, self.width, nearest=False)).astype(np.uint8)
        return {"image": np.moveaxis(pixels, -1, 0), "depth": metres[None]}, []
