"""Cityscapes (Cordts et al. 2016) from its own layout, for dense tasks as Li et al. 2022a Table 3 reports them:
19-class segmentation and disparity, scored as the L1 distance in pixels (the Depth task's ``abs_err``)::

    <root>/leftImg8bit/<split>/<city>/<city>_<seq>_<frame>_leftImg8bit.png
    <root>/gtFine/<split>/<city>/<city>_<seq>_<frame>_gtFine_labelIds.png
    <root>/disparity/<split>/<city>/<city>_<seq>_<frame>_disparity.png

A ``labelIds`` pixel becomes its 19-class train id (Cityscapes' labels.py: road 7 -> 0 ... bicycle 33 -> 18), any
other label -1 (ignored). A disparity PNG holds p = 256 d + 1 as 16-bit integers for a disparity of d pixels, p = 0
where there is none (Cityscapes' README): stored here as d, 0 for no label. The values stay in pixels of the
2048-pixel-wide camera images whatever ``height`` x ``width`` the maps are resized to (nearest, so that no invalid
pixel blends into a valid one): Li et al. do not say at which resolution they count pixels, and the camera's is
the one a disparity in pixels is defined at. Unlike MTAN's preprocessed Cityscapes (``cityscapes``: 128x256,
its own depth scaling), this keeps Cityscapes' units. ``train`` and ``test`` name the splits (train and val: the
test split's labels are private). A malformed file (not an integer PNG, another size than its image, a label id
past 33) is refused naming it.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from ..tasks import Depth, Segmentation, Task
from .base import DATASETS
from .cityscapes_instances import LAST_LABEL_ID, CityscapesFiles
from .image_files import EIGHT_BIT, SIXTEEN_BIT, read_image, resize

TRAIN_IDS = {7: 0, 8: 1, 11: 2, 12: 3, 13: 4, 17: 5, 19: 6, 20: 7, 21: 8, 22: 9, 23: 10, 24: 11, 25: 12, 26: 13,
             27: 14, 28: 15, 31: 16, 32: 17, 33: 18}  # Cityscapes' labels.py: label id -> train id
DISPARITY_SCALE = 256.0


def train_ids(label_ids: np.ndarray) -> np.ndarray:
    lookup = np.full(LAST_LABEL_ID + 1, -1, np.int64)
    lookup[list(TRAIN_IDS)] = list(TRAIN_IDS.values())
    return lookup[label_ids]


def disparity_pixels(raw: np.ndarray) -> np.ndarray:
    """Cityscapes' 16-bit disparity PNG values as disparities in pixels, 0 where there is none."""
    raw = raw.astype(np.float32)
    return np.where(raw > 0, (raw - 1) / DISPARITY_SCALE, 0.0).astype(np.float32)


@DATASETS.register("cityscapes_dense")
@dataclass(frozen=True)
class CityscapesDense(CityscapesFiles):
    """``root`` holds ``leftImg8bit/``, ``gtFine/`` and ``disparity/``."""

    name: ClassVar[str] = "cityscapes_dense"
    published: ClassVar[str] = ("Cityscapes is published at cityscapes-dataset.com (leftImg8bit_trainvaltest.zip, "
                                "gtFine_trainvaltest.zip and disparity_trainvaltest.zip, after registering); point "
                                "the suite's dataset.root at the folder holding leftImg8bit/, gtFine/ and disparity/.")
    height: int = 256
    width: int = 512
    val: int = 0
    folders: ClassVar[tuple[str, ...]] = ("leftImg8bit", "gtFine", "disparity")

    def tasks(self) -> dict[str, Task]:
        return {"seg": Segmentation("seg", len(TRAIN_IDS)), "depth": Depth("depth", 1)}

    def layout(self) -> str:
        root = Path(self.root)
        return (f"Expected {root}/leftImg8bit/<split>/<city>/<name>_leftImg8bit.png, "
                f"{root}/gtFine/<split>/<city>/<name>_gtFine_labelIds.png and "
                f"{root}/disparity/<split>/<city>/<name>_disparity.png. {self.published}")

    def read(self, image_path: Path) -> tuple[dict[str, np.ndarray], list[str]]:
        image, problems = read_image(image_path, ("RGB",))
        size = None if image is None else (image.shape[1], image.shape[0])
        labels, label_problems = read_image(self.companion(image_path, "gtFine", "gtFine_labelIds"), EIGHT_BIT, size)
        disparity, disparity_problems = read_image(self.companion(image_path, "disparity", "disparity"), SIXTEEN_BIT,
                                                   size)
        problems += label_problems + disparity_problems
        if labels is not None and labels.max(initial=0) > LAST_LABEL_ID:
            problems.append(f"{self.companion(image_path, 'gtFine', 'gtFine_labelIds')}: label id {labels.max()} "
                            f"past Cityscapes' last ({LAST_LABEL_ID}); is this a labelIds file?")
        if problems:
            return {}, problems
        seg = resize(train_ids(labels.astype(np.int64)), self.height, self.width, nearest=True)
        depth = resize(disparity.astype(np.int64), self.height, self.width, nearest=True)
        pixels = np.round(resize(image, self.height, self.width, nearest=False)).astype(np.uint8)
        return {"image": np.moveaxis(pixels, -1, 0), "seg": seg.astype(np.int64),
                "depth": disparity_pixels(depth)[None]}, []
