"""The streaming path: a split of a prepared folder (prepared.py) read batch by batch instead of held in memory.

A ``MappedSplit`` offers what the trainer and the evaluation use of a ``Split`` (its length, ``select``,
``subset``, ``concat``, the per-task label flags, ``batch`` and ``device``) but keeps only row numbers: a batch's
rows are read from the ``.npy`` files with one positioned read per row and array (``os.pread``, no memory map, so
the process holds no page of the set beyond the batches in flight). An epoch's batches are known before it starts
(the trainer draws them all), so ``feed`` reads them ahead in DataLoader worker processes into pinned memory and
copies them to the device without blocking; the images become floats and the targets their training dtype on the
device, by the same operations as the in-memory path, so both paths give a job the same batches and the same
result (a test trains one job both ways).
"""
from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Iterator

import numpy as np
import torch
from torch import Tensor

from ..tasks import Task


@dataclass(frozen=True)
class ArrayFile:
    """One ``.npy`` file as rows: where its data starts, each row's shape and dtype."""

    path: Path
    offset: int
    row_shape: tuple[int, ...]
    dtype: np.dtype

    @classmethod
    def of(cls, path: Path) -> "ArrayFile":
        mapped = np.load(path, mmap_mode="r")  # read for its header only; the mapping is dropped here
        return cls(path, mapped.offset, mapped.shape[1:], mapped.dtype)

    @property
    def row_bytes(self) -> int:
        return int(np.prod(self.row_shape, dtype=np.int64)) * self.dtype.itemsize

    def read(self, rows: np.ndarray) -> np.ndarray:
        """The rows, in the order given, by positioned reads (ascending, so the disk reads forward)."""
        out = np.empty((len(rows), *self.row_shape), self.dtype)
        flat = out.reshape(len(rows), -1).view(np.uint8)
        order = np.argsort(rows, kind="stable")
        fd = os.open(self.path, os.O_RDONLY)
        try:
            for k in order:
                data = os.pread(fd, self.row_bytes, self.offset + int(rows[k]) * self.row_bytes)
                if len(data) != self.row_bytes:
                    raise OSError(f"{self.path}: row {rows[k]} is cut short (the file is truncated)")
                flat[k] = np.frombuffer(data, np.uint8)
        finally:
            os.close(fd)
        return out


@dataclass(frozen=True)
class Part:
    """One split of one prepared folder: its arrays by name (``images``, a task, ``labelled-<task>``)."""

    files: dict[str, ArrayFile]

    @classmethod
    def of(cls, folder: Path, entry: dict[str, Any]) -> "Part":
        return cls({name: ArrayFile.of(folder / spec["file"]) for name, spec in entry["arrays"].items()})


@dataclass(frozen=True)
class MappedSplit:
    """A split whose rows are read on demand (module docstring): ``parts`` (a pool appended to the training split
    makes two), and for each image of the split its part and its row there."""

    parts: tuple[Part, ...]
    part_of: np.ndarray
    row_of: np.ndarray
    tasks: tuple[str, ...]
    device: torch.device = torch.device("cpu")

    @classmethod
    def of(cls, folder: Path, entry: dict[str, Any]) -> "MappedSplit":
        part = Part.of(folder, entry)
        tasks = tuple(name for name in part.files if name != "images" and not name.startswith("labelled-"))
        count = entry["count"]
        return cls((part,), np.zeros(count, np.int16), np.arange(count, dtype=np.int64), tasks)

    def __len__(self) -> int:
        return len(self.row_of)

    @property
    def labelled(self) -> dict[str, Tensor]:
        """Per task whose source labels only some images (a union), which images carry its label."""
        flags = {}
        for task in self.tasks:
            if all(f"labelled-{task}" in part.files for part in self.parts):
                flags[task] = torch.from_numpy(self.read_array(f"labelled-{task}", np.arange(len(self))))
        return flags

    def to(self, device: torch.device | str) -> "MappedSplit":
        return replace(self, device=torch.device(device))

    def select(self, tasks: list[str]) -> "MappedSplit":
        return replace(self, tasks=tuple(tasks))

    def subset(self, index: Tensor) -> "MappedSplit":
        rows = index.cpu().numpy()
        return replace(self, part_of=self.part_of[rows], row_of=self.row_of[rows])

    def concat(self, other: "MappedSplit") -> "MappedSplit":
        return replace(self, parts=self.parts + other.parts,
                       part_of=np.concatenate([self.part_of, other.part_of + len(self.parts)]),
                       row_of=np.concatenate([self.row_of, other.row_of]))

    def labelled_rows(self, task: str) -> Tensor | None:
        flags = self.labelled.get(task)
        return None if flags is None else flags.nonzero().squeeze(1)

    def read_array(self, name: str, index: np.ndarray) -> np.ndarray:
        """Array ``name`` at the split's images ``index``, read from their parts."""
        parts, rows = self.part_of[index], self.row_of[index]
        if len(self.parts) == 1:
            return self.parts[0].files[name].read(rows)
        out = None
        for p, part in enumerate(self.parts):
            here = np.nonzero(parts == p)[0]
            if len(here):
                values = part.files[name].read(rows[here])
                out = np.empty((len(index), *values.shape[1:]), values.dtype) if out is None else out
                out[here] = values
        return out

    def read(self, index: Tensor | np.ndarray) -> tuple[Tensor, dict[str, Tensor]]:
        """The stored images (uint8) and targets of ``index``, on the CPU."""
        index = index.cpu().numpy() if isinstance(index, Tensor) else index
        return (torch.from_numpy(self.read_array("images", index)),
                {task: torch.from_numpy(self.read_array(task, index)) for task in self.tasks})

    def batch(self, index: Tensor, tasks: dict[str, Task]) -> tuple[Tensor, dict[str, Tensor]]:
        """As ``Split.batch``: images as float in [0, 1], each target in its training dtype, on the device."""
        return on_device(*self.read(index), tasks, self.device)

    def stored_targets(self, name: str, index: Tensor) -> Tensor:
        """Task ``name``'s stored targets of ``index`` on the device (``Split.stored_targets``)."""
        return torch.from_numpy(self.read_array(name, index.cpu().numpy())).to(self.device)


def on_device(images: Tensor, targets: dict[str, Tensor], tasks: dict[str, Task], device: torch.device,
              ) -> tuple[Tensor, dict[str, Tensor]]:
    """Stored values to training values on the device, by the in-memory path's operations (``Split.batch``)."""
    images = images.to(device, non_blocking=True).float().div_(255)
    return images, {k: tasks[k].prepare(v.to(device, non_blocking=True)) for k, v in targets.items()}


class EpochReads(torch.utils.data.Dataset):
    """An epoch's batches as a dataset of batches: item i is batch i's stored images and targets."""

    def __init__(self, split: MappedSplit, indices: list[Tensor]) -> None:
        self.split, self.indices = split, indices

    def __len__(self) -> int:
        return len(self.indices)

    def __getitem__(self, i: int) -> tuple[Tensor, dict[str, Tensor]]:
        return self.split.read(self.indices[i])


def loader_workers() -> int:
    """DataLoader workers reading ahead (``MTLBENCH_LOADER_WORKERS``; default: up to 4, one core left free)."""
    default = max(0, min(4, (os.cpu_count() or 1) - 1))
    return int(os.environ.get("MTLBENCH_LOADER_WORKERS", default))


def feed(split: Any, indices: list[Tensor], tasks: dict[str, Task], device: torch.device
         ) -> Iterator[tuple[Tensor, dict[str, Tensor]]]:
    """The batches ``indices`` of ``split`` on the device, in order: indexed in memory for a ``Split``, read ahead
    by DataLoader workers into pinned memory for a ``MappedSplit``."""
    if not isinstance(split, MappedSplit):
        for index in indices:
            yield split.batch(index.to(device, non_blocking=True), tasks)
        return
    workers = loader_workers()
    loader = torch.utils.data.DataLoader(EpochReads(split, indices), batch_size=None, shuffle=False,
                                         num_workers=workers, pin_memory=device.type == "cuda",
                                         prefetch_factor=4 if workers else None)
    for images, targets in loader:
        yield on_device(images, targets, tasks, device)


def in_memory(split: Any) -> Any:
    """The split held in memory on its device: a ``MappedSplit`` read whole (for the small subsets some procedures
    hold, e.g. a budget estimate's seed set), any other split as it is."""
    from .base import Split

    if not isinstance(split, MappedSplit):
        return split
    images, targets = split.read(np.arange(len(split)))
    return Split(images, targets).to(split.device)


__all__ = ["MappedSplit", "feed", "in_memory", "loader_workers", "on_device"]
