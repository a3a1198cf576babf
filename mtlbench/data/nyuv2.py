"""NYUv2 as MTAN preprocessed it (and MTPSL and JTR train on): 795 training and 654 test images at 288x384,
13 classes (-1 ignore), depth in metres (0 invalid), unit normals (all-zero invalid)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..tasks import Depth, Normal, Segmentation, Task
from .base import DATASETS
from .npy_folders import DEPTH, IMAGE, NORMAL, Field, MTANFolders, seg_field


@DATASETS.register("nyuv2")
@dataclass(frozen=True)
class NYUv2(MTANFolders):
    """``root`` holds MTAN's ``train/`` and ``val/``, each with ``image``, ``label``, ``depth`` and ``normal``
    folders; splits as described in ``MTANFolders``."""

    name: ClassVar[str] = "nyuv2"
    published: ClassVar[str] = ("MTAN's authors publish this preprocessed NYUv2 (github.com/lorenmt/mtan, README, "
                                "'Datasets'); point the suite's dataset.root at the folder holding train/ and val/.")
    root: str = "data/nyuv2"
    val: int = 0

    def fields(self) -> dict[str, Field]:
        return {"image": IMAGE, "seg": seg_field("label", 13), "depth": DEPTH, "normal": NORMAL}

    def tasks(self) -> dict[str, Task]:
        return {"seg": Segmentation("seg", 13), "depth": Depth("depth", 1), "normal": Normal("normal", 3)}
