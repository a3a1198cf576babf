"""Datasets stored as MTAN's preprocessed folders: ``<root>/<split>/<field>/<index>.npy``, one file per image.

MTAN (github.com/lorenmt/mtan), and after it the MTPSL and JTR code, read NYUv2 and Cityscapes in this layout:
images float in [0, 1] as [H, W, 3], segmentation [H, W] with -1 = ignore, depth [H, W, 1] with 0 = invalid,
normals [H, W, 3] with all-zero = invalid. A ``Field`` says how one folder is checked and stored; ``check``
walks every file and reports every problem with the file it was found in.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np
import torch

from ..errors import UserError
from .base import Split


class DatasetError(UserError, ValueError):
    """A dataset folder that is missing or malformed; the message names the file and the fix."""


@dataclass(frozen=True)
class Field:
    """One folder of .npy files: its trailing shape after [H, W], and a check of the values of one file."""

    folder: str
    channels: int | None  # None: [H, W]; else [H, W, channels]
    values: Callable[[np.ndarray], str | None]
    store: Callable[[np.ndarray], np.ndarray]


def unit_interval(array: np.ndarray) -> str | None:
    if array.min() < 0 or array.max() > 1:
        return f"values in [{array.min():.3g}, {array.max():.3g}], expected [0, 1]"
    return None


def class_labels(classes: int) -> Callable[[np.ndarray], str | None]:
    def check(array: np.ndarray) -> str | None:
        bad = [x if x % 1 else int(x) for x in np.setdiff1d(np.unique(array), np.arange(-1, classes)).tolist()]
        return f"labels {bad[:5]} outside -1 (ignore) .. {classes - 1}" if bad else None
    return check


def non_negative(array: np.ndarray) -> str | None:
    return f"negative values (min {array.min():.3g}); 0 marks an invalid pixel" if array.min() < 0 else None


def unit_or_zero(array: np.ndarray) -> str | None:
    norm = np.linalg.norm(array, axis=-1)
    bad = (norm > 1e-6) & (np.abs(norm - 1) > 0.05)
    return f"{int(bad.sum())} normals neither unit length nor all-zero (invalid)" if bad.any() else None


def image_as_uint8(array: np.ndarray) -> np.ndarray:
    return np.round(np.moveaxis(array, -1, 0) * 255).astype(np.uint8)


def labels_as_int16(array: np.ndarray) -> np.ndarray:
    return array.astype(np.int16)


def channels_first(array: np.ndarray) -> np.ndarray:
    return np.moveaxis(array, -1, 0).astype(np.float32)


IMAGE = Field("image", 3, unit_interval, image_as_uint8)
DEPTH = Field("depth", 1, non_negative, channels_first)
NORMAL = Field("normal", 3, unit_or_zero, channels_first)


def seg_field(folder: str, classes: int) -> Field:
    return Field(folder, None, class_labels(classes), labels_as_int16)


def count(directory: Path) -> int:
    """The number of files 0.npy .. N-1.npy; a gap in the numbering is an error."""
    indices = sorted(int(p.stem) for p in directory.glob("*.npy") if p.stem.isdigit())
    if indices != list(range(len(indices))):
        missing = sorted(set(range(indices[-1] + 1)) - set(indices))[:5]
        raise DatasetError(f"{directory}: files must be numbered 0.npy .. N-1.npy; missing {missing}")
    return len(indices)


def require_layout(name: str, root: Path, folders: dict[str, list[str]], published: str) -> None:
    """Fail fast, before any job starts, if a split folder is missing or the task folders disagree in size."""
    layout = ", ".join(f"{root}/{split}/{{{','.join(fields)}}}/<i>.npy" for split, fields in folders.items())
    hint = f"Expected the MTAN layout: {layout}. {published}"
    if not root.is_dir():
        raise DatasetError(f"{name}: dataset folder {root} not found. {hint}")
    for split, fields in folders.items():
        sizes = {}
        for field in fields:
            directory = root / split / field
            if not directory.is_dir():
                raise DatasetError(f"{name}: folder {directory} not found. {hint}")
            sizes[field] = count(directory)
        if len(set(sizes.values())) != 1 or not next(iter(sizes.values())):
            raise DatasetError(f"{name}: {root / split}: the folders hold different or zero numbers of files "
                               f"{sizes}; every image needs one file per folder")


def read(path: Path, field: Field, shape: tuple[int, int] | None) -> tuple[np.ndarray | None, list[str]]:
    """One file, checked: its array (None if unreadable) and the problems found, each naming the file."""
    try:
        array = np.load(path, allow_pickle=False)
    except (OSError, ValueError) as error:
        return None, [f"{path}: cannot be read as .npy ({error})"]
    expected_rank = 2 if field.channels is None else 3
    problems = []
    if array.ndim != expected_rank or (field.channels is not None and array.shape[-1] != field.channels):
        trailing = "" if field.channels is None else f", {field.channels}"
        return None, [f"{path}: shape {array.shape}, expected [H, W{trailing}]"]
    if shape is not None and array.shape[:2] != shape:
        problems.append(f"{path}: size {array.shape[:2]}, the first image of the split is {shape}")
    if not np.issubdtype(array.dtype, np.number):
        return None, problems + [f"{path}: dtype {array.dtype}, expected a number type"]
    if not np.isfinite(array).all():
        problems.append(f"{path}: contains NaN or infinity")
    elif (message := field.values(array)) is not None:
        problems.append(f"{path}: {message}")
    return array, problems


def load_folders(root: Path, split: str, fields: dict[str, Field], indices: range) -> Split:
    """Every file of the split, checked; the first problem stops loading with its file named."""
    arrays: dict[str, list[np.ndarray]] = {task: [] for task in fields}
    shape = None
    for i in indices:
        for task, field in fields.items():
            array, problems = read(root / split / field.folder / f"{i}.npy", field, shape)
            if problems:
                raise DatasetError(problems[0] + " (run `mtlbench data check` to list every problem)")
            shape = shape or array.shape[:2]
            arrays[task].append(field.store(array))
    stacked = {task: torch.from_numpy(np.stack(values)) for task, values in arrays.items()}
    images = stacked.pop("image")
    return Split(images, stacked)


def check_folders(root: Path, split: str, fields: dict[str, Field]) -> list[str]:
    """Every problem of every file of the split."""
    problems: list[str] = []
    n = count(root / split / next(iter(fields.values())).folder)
    shape = None
    for i in range(n):
        for field in fields.values():
            array, found = read(root / split / field.folder / f"{i}.npy", field, shape)
            problems += found
            if array is not None and shape is None:
                shape = array.shape[:2]
    return problems


class MTANFolders:
    """What NYUv2 and Cityscapes share: mtlbench's test split is MTAN's ``val`` folder (on which the papers
    report); ``val`` (a dataclass field of the subclass) holds out that many of the last training images for
    validation, or 0 (the papers' protocol: they have no validation split) to validate on the test folder,
    which mtlbench never uses for model selection but AMTL and DTP read for their accuracy estimates."""

    name: ClassVar[str]
    published: ClassVar[str]
    root: str
    val: int

    def fields(self) -> dict[str, Field]:
        raise NotImplementedError

    def require(self) -> None:
        """Fail fast (before any job starts) on a missing folder, with the expected layout."""
        folders = [field.folder for field in self.fields().values()]
        require_layout(self.name, Path(self.root), {split: folders for split in ("train", "val")}, self.published)

    def indices(self, split: str) -> tuple[str, range]:
        """(MTAN folder, file indices) of an mtlbench split."""
        n_train = count(Path(self.root) / "train" / "image")
        if split == "test" or (split == "val" and self.val == 0):
            return "val", range(count(Path(self.root) / "val" / "image"))
        if split == "val":
            return "train", range(n_train - self.val, n_train)
        return "train", range(n_train - self.val)

    def split_size(self, split: str) -> int:
        return len(self.indices(split)[1])

    def load(self, split: str) -> Split:
        self.require()
        folder, indices = self.indices(split)
        return load_folders(Path(self.root), folder, self.fields(), indices)

    def check(self) -> list[str]:
        """Every problem of every file (``mtlbench data check``)."""
        self.require()
        return [p for folder in ("train", "val") for p in check_folders(Path(self.root), folder, self.fields())]
