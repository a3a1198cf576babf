"""Cityscapes as MTAN preprocessed it (and MTPSL and JTR train on): 2975 training and 500 test images at
128x256, 7 or 19 classes (-1 ignore), inverse depth (0 invalid)."""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar, Literal

from ..tasks import Depth, Segmentation, Task
from .base import DATASETS
from .npy_folders import DEPTH, IMAGE, Field, MTANFolders, seg_field


@DATASETS.register("cityscapes")
@dataclass(frozen=True)
class Cityscapes(MTANFolders):
    """``root`` holds MTAN's ``train/`` and ``val/``, each with ``image``, ``label_7``, ``label_19`` and
    ``depth`` folders; ``classes`` picks the segmentation labels (7 as MTPSL, 19 as JTR's Table 2); splits as
    described in ``MTANFolders``."""

    name: ClassVar[str] = "cityscapes"
    published: ClassVar[str] = ("MTAN's authors publish this preprocessed Cityscapes (github.com/lorenmt/mtan, "
                                "README, 'Datasets'); point the suite's dataset.root at the folder holding train/ "
                                "and val/.")
    root: str = "data/cityscapes"
    classes: Literal[7, 19] = 7
    val: int = 0

    def fields(self) -> dict[str, Field]:
        return {"image": IMAGE, "seg": seg_field(f"label_{self.classes}", self.classes), "depth": DEPTH}

    def tasks(self) -> dict[str, Task]:
        return {"seg": Segmentation("seg", self.classes), "depth": Depth("depth", 1)}
