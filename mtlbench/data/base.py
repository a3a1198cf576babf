"""The in-memory data layer shared by every dataset, scenario and track.

A dataset loads each split once into tensors (images uint8 [N, 3, H, W]; one compact tensor per task), which
the trainer moves to the device whole, so a training step only indexes: no worker processes, no per-step
host-to-device copy beyond the batch indices. A set too large for that is prepared once (prepared.py) and streamed
(streaming.py: a ``MappedSplit`` offers a ``Split``'s interface over its files).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Protocol

import torch
from torch import Tensor

from ..ids import spelt_as_before
from ..registry import Registry
from ..tasks import Task

SPLITS = ("train", "val", "test")


@spelt_as_before
def normal_loss_default(config: dict) -> dict:
    """``dataset.normal_loss`` came with 0.3 (Standley et al. 2020's L1 on normals, for the datasets with normals
    that its setting uses); the cosine loss, its default, trains as before and is hashed as before."""
    dataset = config.get("dataset")
    if isinstance(dataset, dict) and dataset.get("normal_loss") == "cosine":
        del dataset["normal_loss"]
    return config


@dataclass
class Split:
    """A split's images and targets; ``labelled`` says, per task, which images carry a label for it, where a dataset
    assembled from sources (``union``) or one whose label maps are partial (VOC detection with segmentation)
    has images without a label for the task (absent: all have one)."""

    images: Tensor
    targets: dict[str, Tensor] = field(default_factory=dict)
    labelled: dict[str, Tensor] = field(default_factory=dict)

    def __len__(self) -> int:
        return len(self.images)

    def to(self, device: torch.device | str) -> "Split":
        return Split(self.images.to(device), {k: v.to(device) for k, v in self.targets.items()},
                     {k: v.to(device) for k, v in self.labelled.items()})

    def select(self, tasks: list[str]) -> "Split":
        return Split(self.images, {t: self.targets[t] for t in tasks},
                     {t: self.labelled[t] for t in tasks if t in self.labelled})

    def concat(self, other: "Split") -> "Split":
        if self.labelled or other.labelled:
            raise ValueError("a split whose images are not all labelled for every task is not concatenated")
        return Split(torch.cat([self.images, other.images]),
                     {k: torch.cat([v, other.targets[k]]) for k, v in self.targets.items()})

    def subset(self, index: Tensor) -> "Split":
        return Split(self.images[index], {k: v[index] for k, v in self.targets.items()},
                     {k: v[index] for k, v in self.labelled.items()})

    def labelled_rows(self, task: str) -> Tensor | None:
        """The indices of the images labelled for ``task``; None when every image is."""
        return self.labelled[task].nonzero().squeeze(1) if task in self.labelled else None

    @property
    def device(self) -> torch.device:
        return self.images.device

    def batch(self, index: Tensor, tasks: dict[str, Task]) -> tuple[Tensor, dict[str, Tensor]]:
        """Images as float in [0, 1]; each target in the dtype its task trains on."""
        images = self.images[index].float().div_(255)
        return images, {k: tasks[k].prepare(v[index]) for k, v in self.targets.items()}

    def stored_targets(self, name: str, index: Tensor) -> Tensor:
        """Task ``name``'s targets of ``index`` as stored (a streamed split reads them from its files)."""
        return self.targets[name][index]


class Dataset(Protocol):
    """What the trainer needs of a dataset; register implementations in ``DATASETS``."""

    def tasks(self) -> dict[str, Task]: ...

    def load(self, split: str) -> Split: ...

    def split_size(self, split: str) -> int: ...


DATASETS: Registry[type] = Registry("dataset")
