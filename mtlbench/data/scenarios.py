"""Label scenarios: which training images carry a label for which task, as a mask [N, T].

A mask is a pure function of (scenario, its parameters, N, task list, mask seed) and never of the training
seed, so every method and seed of a comparison sees the same labels; the runner saves it with each job.

Every scenario also takes ``unlabeled``, a fraction of images left with no label at all (Nishi et al. 2024 Sec. 4.4).
Those images are drawn from a random stream of their own, so the labelled images keep exactly the mask the
base scenario gives them, as in Nishi et al. 2024 Tables 4-5 ("the labeled portion is kept consistent").

A scenario also says how batches are drawn (``LabelPlan``): by default every training image once per epoch
in random order; with ``unlabeled_per_batch: k`` an epoch runs over the labelled images and every batch gets
k unlabelled images appended (Nishi et al. 2024 Sec. 6.2 "Batching": 1 for the partially unlabelled settings);
``extended`` appends images of an extra pool labelled for one task (4 per batch on NYUv2). A track may register
scenarios of its own (the label-budget track's ``budget``: one mini-batch per task, tracks/budget/scenario.py).
"""
from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

import numpy as np

from ..errors import UserError
from ..files import CorruptFile, UnsafeFile, load_tensors
from ..registry import Registry, require

SCENARIOS: Registry[type] = Registry("scenario", plugins="mtlbench.tracks")  # tracks add theirs (budget)
BASE_STREAM, UNLABELED_STREAM, PURCHASE_STREAM = 0, 1, 2


class ScenarioError(UserError, ValueError):
    """A scenario that cannot make its mask; ``field`` names the scenario field at fault, when one is."""

    def __init__(self, message: str, field: str = "") -> None:
        super().__init__(message)
        self.field = field


def rng(mask_seed: int, stream: int) -> np.random.Generator:
    return np.random.default_rng([mask_seed, stream])


def random_subsets(sizes: np.ndarray, n_tasks: int, generator: np.random.Generator) -> np.ndarray:
    """A mask whose row i has ``sizes[i]`` ones at uniformly random positions (vectorised over rows)."""
    ranks = generator.random((len(sizes), n_tasks)).argsort(1).argsort(1)
    return (ranks < sizes[:, None]).astype(np.float32)


@dataclass(frozen=True)
class LabelPlan:
    """The training set's label mask [N, T], the images appended ``per_batch`` to every batch, and whether a
    step draws one mini-batch per task from that task's labelled images (``per_task``, Sun et al. 2023 Sec. 4), and
    then how many ``steps`` an epoch has (0: as many labels as there are)."""

    mask: np.ndarray
    appended: np.ndarray = field(default_factory=lambda: np.zeros(0, np.int64))
    per_batch: int = 0
    per_task: bool = False
    steps: int = 0


@dataclass(frozen=True)
class Scenario:
    made_by: ClassVar[str] = ""  # the track section that makes this scenario ("": a suite lists it under scenarios)
    extendable: ClassVar[bool] = True  # ``extended`` may use it as its base

    unlabeled: float = 0.0
    unlabeled_per_batch: int = 0

    def __post_init__(self) -> None:
        require("unlabeled", self.unlabeled, 0.0 <= self.unlabeled < 1.0,
                "must lie in [0, 1): the share of training images left without any label")
        require("unlabeled_per_batch", self.unlabeled_per_batch, self.unlabeled_per_batch >= 0, "must be >= 0")

    @classmethod
    def label_of(cls, spec: dict[str, Any]) -> str:
        """How results and tables name the scenario of ``spec`` (its name, and the unlabelled share)."""
        unlabeled = spec.get("unlabeled", 0.0)
        return cls.base_label(spec) + (f"+{round(100 * unlabeled)}%unlabeled" if unlabeled else "")

    @classmethod
    def base_label(cls, spec: dict[str, Any]) -> str:
        return spec["name"]

    @classmethod
    def label_range(cls, spec: dict[str, Any], tasks: list[str]) -> tuple[int, int]:
        """The fewest and most tasks a training image of this scenario is labelled for (recipe parts whose
        behaviour depends on it use this to tell which jobs a change of theirs can affect)."""
        low, high = cls.base_range(spec, tasks)
        return (0 if spec.get("unlabeled", 0) else low), high

    @classmethod
    def base_range(cls, spec: dict[str, Any], tasks: list[str]) -> tuple[int, int]:
        return 0, len(tasks)  # unknown: anything

    def check_suite(self, tasks: list[str], datasets: list[dict[str, Any]]) -> None:
        """Raise ScenarioError if a suite with these tasks and datasets cannot use this scenario (called before
        anything trains)."""

    @property
    def pool(self) -> bool:
        """Whether the training set includes the dataset's extra ``pool`` split after the train split."""
        return False

    def base_mask(self, n: int, tasks: list[str], generator: np.random.Generator) -> np.ndarray:
        raise NotImplementedError

    def plan(self, n: int, tasks: list[str], mask_seed: int, n_pool: int = 0) -> LabelPlan:
        mask = self.mask(n, tasks, mask_seed)
        if not self.unlabeled_per_batch:
            return LabelPlan(mask)
        return LabelPlan(mask, np.flatnonzero(mask.sum(1) == 0), self.unlabeled_per_batch)

    def mask(self, n: int, tasks: list[str], mask_seed: int) -> np.ndarray:
        if not 0.0 <= self.unlabeled < 1.0:
            raise ScenarioError(f"unlabeled must lie in [0, 1), got {self.unlabeled}")
        mask = self.base_mask(n, tasks, rng(mask_seed, BASE_STREAM))
        n_unlabeled = int(round(self.unlabeled * n))
        mask[rng(mask_seed, UNLABELED_STREAM).permutation(n)[:n_unlabeled]] = 0
        return mask


@SCENARIOS.register("full")
@dataclass(frozen=True)
class Full(Scenario):
    """Every image labelled for every task."""

    @classmethod
    def base_range(cls, spec: dict[str, Any], tasks: list[str]) -> tuple[int, int]:
        return len(tasks), len(tasks)

    def base_mask(self, n: int, tasks: list[str], generator: np.random.Generator) -> np.ndarray:
        return np.ones((n, len(tasks)), np.float32)


@SCENARIOS.register("onelabel")
@dataclass(frozen=True)
class OneLabel(Scenario):
    """Exactly one task per image; tasks dealt round-robin over a random order, so counts differ by <= 1."""

    @classmethod
    def base_range(cls, spec: dict[str, Any], tasks: list[str]) -> tuple[int, int]:
        return 1, 1

    def base_mask(self, n: int, tasks: list[str], generator: np.random.Generator) -> np.ndarray:
        mask = np.zeros((n, len(tasks)), np.float32)
        mask[generator.permutation(n), np.arange(n) % len(tasks)] = 1
        return mask


@SCENARIOS.register("randomlabels")
@dataclass(frozen=True)
class RandomLabels(Scenario):
    """k ~ Uniform{1, ..., T-1} labels per image, on a uniformly random subset of tasks (Nishi et al. 2024 Sec. 4.1)."""

    @classmethod
    def base_range(cls, spec: dict[str, Any], tasks: list[str]) -> tuple[int, int]:
        return 1, max(1, len(tasks) - 1)

    def base_mask(self, n: int, tasks: list[str], generator: np.random.Generator) -> np.ndarray:
        if len(tasks) < 2:
            raise ScenarioError("randomlabels needs at least 2 tasks (1 to T-1 labels per image)")
        return random_subsets(generator.integers(1, len(tasks), n), len(tasks), generator)


@SCENARIOS.register("halflabels")
@dataclass(frozen=True)
class HalfLabels(Scenario):
    """floor(T/2) or ceil(T/2) labels per image with equal probability (Nishi et al. 2024: 3 or 4 of 7 tasks)."""

    @classmethod
    def base_range(cls, spec: dict[str, Any], tasks: list[str]) -> tuple[int, int]:
        return len(tasks) // 2, (len(tasks) + 1) // 2

    def base_mask(self, n: int, tasks: list[str], generator: np.random.Generator) -> np.ndarray:
        t = len(tasks)
        sizes = np.where(generator.random(n) < 0.5, t // 2, (t + 1) // 2)
        return random_subsets(sizes, t, generator)


@SCENARIOS.register("mask_file")
@dataclass(frozen=True)
class MaskFile(Scenario):
    """A saved mask, e.g. the canonical MTPSL/JTR masks (legacy torch format, {'labels_weights': [N, T]}).

    ``columns`` names the task of each column of the file (MTPSL's order: semantic, depth, normal).
    """

    extendable: ClassVar[bool] = False

    path: str = ""
    columns: tuple[str, ...] = ("seg", "depth", "normal")

    def check_suite(self, tasks: list[str], datasets: list[dict[str, Any]]) -> None:
        if not Path(self.path).is_file():
            raise ScenarioError(f"mask file {self.path!r} not found (paths are relative to the directory mtlbench "
                                f"runs in)", "path")
        read_mask_file(Path(self.path))  # refused now, before training, if unreadable or unsafe

    def base_mask(self, n: int, tasks: list[str], generator: np.random.Generator) -> np.ndarray:
        stored = read_mask_file(Path(self.path))
        if stored.shape != (n, len(self.columns)):
            raise ScenarioError(f"{self.path}: mask has shape {tuple(stored.shape)}, expected ({n}, "
                                f"{len(self.columns)}) for {n} training images and columns {list(self.columns)}")
        return task_columns(stored, self.columns, tasks, self.path)


CANONICAL = {("nyuv2", "onelabel"): ("seg", "depth", "normal"), ("nyuv2", "randomlabels"): ("seg", "depth", "normal"),
             ("cityscapes", "onelabel"): ("seg", "depth")}


def bundled_mask(dataset: str, labels: str) -> np.ndarray:
    return np.load(Path(__file__).parent / "masks" / f"{dataset}-{labels}.npy")


@SCENARIOS.register("canonical")
@dataclass(frozen=True)
class Canonical(Scenario):
    """The masks MTPSL published and JTR reused (bundled in mtlbench/data/masks, MIT licence), so that results
    compare with the papers' like for like: ``dataset`` nyuv2 (``labels`` onelabel or randomlabels) or
    cityscapes (onelabel). Rows are the images of the full MTAN training split, so the dataset's ``val`` must be 0."""

    dataset: str = "nyuv2"
    labels: str = "onelabel"

    @classmethod
    def base_label(cls, spec: dict[str, Any]) -> str:
        return f"canonical-{spec['labels']}"

    @classmethod
    def base_range(cls, spec: dict[str, Any], tasks: list[str]) -> tuple[int, int]:
        stored = bundled_mask(spec["dataset"], spec["labels"])
        columns = CANONICAL[spec["dataset"], spec["labels"]]
        counts = stored[:, [columns.index(t) for t in tasks if t in columns]].sum(1)
        return int(counts.min()), int(counts.max())

    def __post_init__(self) -> None:
        super().__post_init__()
        if (self.dataset, self.labels) not in CANONICAL:
            known = ", ".join(f"{d}/{m}" for d, m in CANONICAL)
            raise ScenarioError(f"canonical: no published mask {self.dataset}/{self.labels}; there are {known}")

    def base_mask(self, n: int, tasks: list[str], generator: np.random.Generator) -> np.ndarray:
        columns = CANONICAL[self.dataset, self.labels]
        stored = bundled_mask(self.dataset, self.labels)
        if len(stored) != n:
            raise ScenarioError(f"canonical {self.dataset}/{self.labels}: the mask has {len(stored)} rows (the full "
                                f"training split) but the train split has {n} images; set the dataset's val to 0")
        return task_columns(stored, columns, tasks, f"canonical {self.dataset}/{self.labels}")


@SCENARIOS.register("extended")
@dataclass(frozen=True)
class Extended(Scenario):
    """Paper 004 Sec. 4.3 (depth-extended NYUv2): the train split labelled by ``base``, plus the dataset's
    ``pool`` split labelled for ``task`` only, ``per_batch`` pool images appended to every batch (Sec. 6.2)."""

    extendable: ClassVar[bool] = False

    base: str = "onelabel"
    task: str = "depth"

    @classmethod
    def base_range(cls, spec: dict[str, Any], tasks: list[str]) -> tuple[int, int]:
        low, high = SCENARIOS.get(spec["base"]).label_range(spec, tasks)
        return min(low, 1), max(high, 1)  # the pool's images are labelled for one task

    def check_suite(self, tasks: list[str], datasets: list[dict[str, Any]]) -> None:
        bases = [name for name in SCENARIOS.list() if SCENARIOS.get(name).extendable]
        if self.base not in bases:
            raise ScenarioError(f"{self.base!r} is not one of {', '.join(bases)}", "base")
        if self.task not in tasks:
            raise ScenarioError(f"{self.task!r} is not a task of this suite ({', '.join(tasks)})", "task")
        if any(not dataset.get("pool") for dataset in datasets):
            raise ScenarioError("'extended' needs extra pool images; set the dataset's 'pool' (synthrooms: a number "
                                "of images, e.g. pool: 400; nyuv2: the folder of its depth-only images)")
    per_batch: int = 4

    @property
    def pool(self) -> bool:
        return True

    def plan(self, n: int, tasks: list[str], mask_seed: int, n_pool: int = 0) -> LabelPlan:
        if self.task not in tasks:
            raise ScenarioError(f"extended: task {self.task!r} is not one of the suite's tasks {tasks}")
        if n_pool <= 0:
            raise ScenarioError("extended needs a pool of extra images: set the dataset's 'pool' size")
        base = SCENARIOS.get(self.base)(unlabeled=self.unlabeled).mask(n, tasks, mask_seed)
        pool = np.zeros((n_pool, len(tasks)), np.float32)
        pool[:, tasks.index(self.task)] = 1
        return LabelPlan(np.concatenate([base, pool]), np.arange(n, n + n_pool), self.per_batch)


def task_columns(stored: np.ndarray, columns: tuple[str, ...], tasks: list[str], source: str) -> np.ndarray:
    """The columns of a stored mask in the suite's task order, as float32."""
    missing = [t for t in tasks if t not in columns]
    if missing:
        raise ScenarioError(f"{source}: no column for tasks {missing}; columns are {list(columns)}")
    return np.ascontiguousarray(stored[:, [columns.index(t) for t in tasks]], np.float32)


def read_mask_file(path: Path) -> np.ndarray:
    import torch

    if not path.exists():
        raise ScenarioError(f"{path}: mask file not found (set scenario field 'path')")
    try:
        data = load_tensors(path, "mask file")  # never unpickles objects: a mask file may come from anyone
    except (UnsafeFile, CorruptFile) as error:
        raise ScenarioError(str(error), "path") from None
    if not isinstance(data, dict) or not isinstance(data.get("labels_weights"), torch.Tensor):
        raise ScenarioError(f"{path}: expected a dict with key 'labels_weights', found {type(data).__name__}")
    return data["labels_weights"].numpy()


def scenario(spec: dict) -> Scenario:
    params = {k: v for k, v in spec.items() if k not in ("name", "mask_seed")}
    return SCENARIOS.get(spec["name"])(**params)


def label_mask(spec: dict, n: int, tasks: list[str], mask_seed: int) -> np.ndarray:
    return scenario(spec).mask(n, tasks, mask_seed)
