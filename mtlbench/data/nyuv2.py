"""NYUv2 as MTAN preprocessed it (and MTPSL and JTR train on): 795 training and 654 test images at 288x384,
13 classes (-1 ignore), depth in metres (0 invalid), unit normals (all-zero invalid).

The depth-only extension pool of Nishi et al. 2024 Sec. 4.3 (the 47,584 images of the raw NYUv2 dataset that carry only
depth) comes from a user-given folder ``pool`` in the same format: ``<pool>/image/<i>.npy`` ([288, 384, 3] in
[0, 1]) and ``<pool>/depth/<i>.npy`` ([288, 384, 1] in metres, 0 invalid). Its images carry no segmentation or
normal label (stored as ignore / all-zero), so only the ``extended`` scenario's depth mask supervises them.
Held in memory like the other splits (about 2.3 MB per image with the placeholders): ``pool_size`` caps it
at its first N images (the whole pool takes about 110 GB).
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np
import torch

from ..tasks import Depth, Normal, Segmentation, Task
from .base import DATASETS, Split
from .npy_folders import DEPTH, IMAGE, NORMAL, DatasetError, Field, MTANFolders, check_folders, count, \
    load_folders, require_layout, seg_field

POOL_FIELDS = {"image": IMAGE, "depth": DEPTH}


@DATASETS.register("nyuv2")
@dataclass(frozen=True)
class NYUv2(MTANFolders):
    """``root`` holds MTAN's ``train/`` and ``val/``, each with ``image``, ``label``, ``depth`` and ``normal``
    folders; splits as described in ``MTANFolders``; ``pool`` the depth-only folder (optional)."""

    name: ClassVar[str] = "nyuv2"
    published: ClassVar[str] = ("MTAN's authors publish this preprocessed NYUv2 (github.com/lorenmt/mtan, README, "
                                "'Datasets'); point the suite's dataset.root at the folder holding train/ and val/.")
    root: str = "data/nyuv2"
    val: int = 0
    pool: str = ""
    pool_size: int = 0

    def fields(self) -> dict[str, Field]:
        return {"image": IMAGE, "seg": seg_field("label", 13), "depth": DEPTH, "normal": NORMAL}

    def tasks(self) -> dict[str, Task]:
        return {"seg": Segmentation("seg", 13), "depth": Depth("depth", 1), "normal": Normal("normal", 3)}

    def require(self) -> None:
        super().require()
        if self.pool:
            require_layout("nyuv2 pool", Path(self.pool).parent, {Path(self.pool).name: list(POOL_FIELDS)},
                           "The depth-only pool holds image/ and depth/ in MTAN's format (Nishi et al. 2024 Sec. 4.3).")

    def pool_count(self) -> int:
        n = count(Path(self.pool) / "image")
        return min(n, self.pool_size) if self.pool_size else n

    def split_size(self, split: str) -> int:
        if split == "pool":
            return self.pool_count() if self.pool else 0
        return super().split_size(split)

    def load(self, split: str) -> Split:
        if split != "pool":
            return super().load(split)
        self.require()
        pool = Path(self.pool)
        loaded = load_folders(pool.parent, pool.name, POOL_FIELDS, range(self.pool_count()))
        n, _, h, w = loaded.images.shape
        train_shape = np.load(Path(self.root) / "train" / "image" / "0.npy", mmap_mode="r").shape[:2]
        if (h, w) != train_shape:
            raise DatasetError(f"{pool / 'image'}: images of {h}x{w}, the training images are "
                               f"{train_shape[0]}x{train_shape[1]}; preprocess the pool like MTAN's NYUv2")
        unlabelled = {"seg": torch.full((n, h, w), -1, dtype=torch.int16), "normal": torch.zeros(n, 3, h, w)}
        return Split(loaded.images, {**unlabelled, **loaded.targets})

    def check(self) -> list[str]:
        problems = super().check()
        if self.pool:
            pool = Path(self.pool)
            problems += check_folders(pool.parent, pool.name, POOL_FIELDS)
        return problems
