"""A dataset assembled from task-specific sources, as Yun and Cho 2023 Sec. 4.2.2 train on PASCAL VOC (detection and
segmentation) + NYU depth: 39,446 training images, each labelled only for the tasks of its source.

A suite writes ``dataset: {name: union, parts: [{name: pascal_voc_detection, tasks: [detection], ...}, {name: nyuv2,
tasks: [depth], ...}]}``: each part is a registered dataset with its own settings and the tasks it labels. Every
split is the parts' splits one after the other; a task's targets come from the parts that label it, and the others'
images store the task's "no label" value (``Task.no_label``) and are marked unlabelled (``Split.labelled``; so are a
part's own images that its dataset gives without the task's label, e.g. VOC images without a segmentation map), so
that the label mask leaves them out of the task's loss and the evaluation scores each task on its own sources' test
images only. As the authors' code (``core/data/utils.py``: a plain concatenation of the sources, every image brought
to one training size, shuffled batches that mix them, one test set per source), batches mix the sources, and every
part must give images of the union's size: a part that has ``height`` and ``width`` settings gets the union's, and
one of another size is refused. A task that two parts label must be the same task in both (same type and settings).
"""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch

from ..registry import build, require
from ..tasks import Task
from .base import DATASETS, Split
from .npy_folders import DatasetError


@DATASETS.register("union")
@dataclass(frozen=True)
class Union:
    """``parts``: each a dataset (``name`` and its settings) and the ``tasks`` it labels; ``height`` x ``width``: the
    size every part's images are brought to."""

    parts: tuple[dict[str, Any], ...]
    height: int = 512
    width: int = 512

    def __post_init__(self) -> None:
        require("parts", self.parts, len(self.parts) >= 2 and all(isinstance(p, dict) and "name" in p and p.get("tasks")
                                                                  for p in self.parts),
                "at least two parts, each {name: DATASET, tasks: [...], ...its settings}")

    def datasets(self) -> list[Any]:
        """Each part's dataset, at the union's size where it has a size to set."""
        built = []
        for part in self.parts:
            settings = {k: v for k, v in part.items() if k != "tasks"}
            fields = {f.name for f in dataclasses.fields(DATASETS.get(part["name"]))}
            settings.update({k: getattr(self, k) for k in ("height", "width") if k in fields})
            built.append(build(DATASETS, settings))
        return built

    def require(self) -> None:
        """Each part's files are there (fails in seconds, before any job starts), its error naming the part."""
        for k, dataset in enumerate(self.datasets()):
            if hasattr(dataset, "require"):
                try:
                    dataset.require()
                except DatasetError as error:
                    raise DatasetError(f"union: parts[{k}] ({self.parts[k]['name']}; its settings are the suite's "
                                       f"dataset.parts[{k}]): {error}") from None

    def part_tasks(self) -> list[list[str]]:
        return [list(part["tasks"]) for part in self.parts]

    def tasks(self) -> dict[str, Task]:
        tasks: dict[str, Task] = {}
        for k, (dataset, names) in enumerate(zip(self.datasets(), self.part_tasks())):
            available = dataset.tasks()
            for name in names:
                if name not in available:
                    raise DatasetError(f"union: parts[{k}] ({self.parts[k]['name']}) has no task {name!r}; it has "
                                       f"{', '.join(available)}")
                if name in tasks and tasks[name] != available[name]:
                    raise DatasetError(f"union: task {name!r} differs between the parts that label it ({tasks[name]} "
                                       f"and {available[name]}); give them the same settings")
                tasks[name] = available[name]
        return tasks

    def split_size(self, split: str) -> int:
        return sum(dataset.split_size(split) for dataset in self.datasets())

    def load(self, split: str) -> Split:
        tasks = self.tasks()
        loaded = [dataset.load(split).select(names) for dataset, names in zip(self.datasets(), self.part_tasks())]
        for k, part in enumerate(loaded):
            if tuple(part.images.shape[-2:]) != (self.height, self.width):
                raise DatasetError(f"union: parts[{k}] ({self.parts[k]['name']}) gives {tuple(part.images.shape[-2:])} "
                                   f"images; set its size to the union's {self.height} x {self.width}")
        examples = {name: next(part.targets[name] for part in loaded if name in part.targets) for name in tasks}
        targets = {name: task.concat([part.targets[name] if name in part.targets else
                                      task.no_label(examples[name][:1].expand(len(part), *examples[name].shape[1:]))
                                      for part in loaded]) for name, task in tasks.items()}
        labelled = {name: torch.cat([part_labelled(part, name) for part in loaded]) for name in tasks}
        return Split(torch.cat([part.images for part in loaded]), targets, labelled)


def part_labelled(part: Split, task: str) -> torch.Tensor:
    """Which of a part's images carry a label for ``task``: none if the part does not label it, else those its
    dataset says (all, unless its own labels are partial)."""
    if task not in part.targets:
        return torch.zeros(len(part), dtype=torch.bool)
    return part.labelled[task] if task in part.labelled else torch.ones(len(part), dtype=torch.bool)
