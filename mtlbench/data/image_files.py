"""Reading datasets stored as image files (Taskonomy's PNGs, PASCAL VOC's JPEGs and PNGs): one checked read
per file, resizing to the dataset's fixed size, and loading records on threads (PIL decodes without the GIL).

A read returns the array and the problems found, each naming the file, so a loader stops at the first
problem while ``mtlbench data check`` lists them all. PIL is imported on first use, so ``import mtlbench``
needs only torch and numpy.
"""
from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, Callable, TypeVar

import numpy as np
import torch

from .base import Split
from .npy_folders import DatasetError

T = TypeVar("T")
EIGHT_BIT, SIXTEEN_BIT = ("L", "P", "RGB", "RGBA"), ("I;16", "I;16B", "I;16L", "I", "I;16N")


def read_image(path: Path, modes: tuple[str, ...], size: tuple[int, int] | None = None
               ) -> tuple[np.ndarray | None, list[str]]:
    """The image's raw values ([H, W] or [H, W, C], palette images as their indices), or None and why.

    ``modes``: the PIL modes accepted; ``size``: (width, height) the file must have, if given."""
    from PIL import Image

    try:
        with Image.open(path) as image:
            image.load()
            mode, found_size = image.mode, image.size
            array = np.asarray(image)
    except FileNotFoundError:
        return None, [f"{path}: file not found"]
    except OSError as error:
        return None, [f"{path}: cannot be read as an image ({error})"]
    if mode not in modes:
        return None, [f"{path}: image mode {mode}, expected one of {', '.join(modes)}"]
    if size is not None and found_size != size:
        return None, [f"{path}: size {found_size[0]}x{found_size[1]}, its RGB image is {size[0]}x{size[1]}"]
    return array, []


def resize(array: np.ndarray, height: int, width: int, nearest: bool) -> np.ndarray:
    """``array`` [H, W] or [H, W, C] resized channel by channel: nearest for integer labels and masks (through
    int32: a float array loses its fractions, so resize integer millimetres, not metres), bilinear otherwise, as
    float32 unless nearest."""
    from PIL import Image

    if array.shape[:2] == (height, width):
        return array if nearest else array.astype(np.float32)
    planes = array[..., None] if array.ndim == 2 else array
    method = Image.Resampling.NEAREST if nearest else Image.Resampling.BILINEAR
    dtype = array.dtype if nearest else np.float32
    out = np.stack([np.asarray(Image.fromarray(np.ascontiguousarray(planes[..., c]).astype(
        np.int32 if nearest else np.float32)).resize((width, height), method)).astype(dtype)
        for c in range(planes.shape[-1])], -1)
    return out[..., 0] if array.ndim == 2 else out


def load_all(records: list[T], load: Callable[[T], dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """``load`` over every record (at least one) on a thread pool, stacked by key, in record order."""
    with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:
        loaded = list(pool.map(load, records))
    return {key: np.stack([item[key] for item in loaded]) for key in loaded[0]}


def first_problem(problems: list[str]) -> None:
    """Raise the first problem, if any, pointing at ``mtlbench data check`` for the full list."""
    if problems:
        raise DatasetError(f"{problems[0]} (run `mtlbench data check` to list every problem)")


class ImageFileDataset:
    """What Taskonomy and PASCAL VOC share: a split is a list of records (one image and its label files), each
    read once and checked; ``load`` stops at the first problem, ``check`` lists every problem of every record."""

    name: str
    root: str
    val: int

    def require(self) -> None:
        raise NotImplementedError

    def records(self, split: str) -> list[Any]:
        raise NotImplementedError

    def every_record(self) -> list[Any]:
        """The records ``mtlbench data check`` reads (every file of the dataset, once)."""
        raise NotImplementedError

    def read(self, record: Any) -> tuple[dict[str, np.ndarray], list[str]]:
        """{"image": uint8 [3, H, W], task: stored target} and every problem found with the record's files."""
        raise NotImplementedError

    def split_size(self, split: str) -> int:
        return len(self.records(split))

    def held_out(self, split: str, train: list[Any], test: list[Any]) -> list[Any]:
        """An mtlbench split of a dataset published as train and test lists: test (and val, when ``val`` is 0),
        or the training records with their last ``val`` held out for validation."""
        if split == "test" or (split == "val" and self.val == 0):
            return test
        return train[len(train) - self.val:] if split == "val" else train[:len(train) - self.val]

    def load_record(self, record: Any) -> dict[str, np.ndarray]:
        arrays, problems = self.read(record)
        first_problem(problems)
        return arrays

    def load(self, split: str) -> Split:
        self.require()
        records = self.records(split)
        if not records:
            raise DatasetError(f"{self.name}: split {split} has no images under {self.root}")
        arrays = load_all(records, self.load_record)
        images = torch.from_numpy(arrays.pop("image"))
        return Split(images, {task: torch.from_numpy(values) for task, values in arrays.items()})

    def check(self) -> list[str]:
        self.require()
        return [p for record in self.every_record() for p in self.read(record)[1]]
