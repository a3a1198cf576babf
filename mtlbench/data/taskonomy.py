"""Taskonomy (Zamir et al. 2018) in its official folder layout, with the label normalisations of Standley et al.'s
release (github.com/tstandley/taskgrouping, taskonomy_loader.py), which Standley et al. 2020 trains with and Nishi et
al. 2024 follows for its seven Taskonomy tasks.

Layout: ``<root>/<domain>/<building>/point_<p>_view_<v>_domain_<domain>.png`` (rgb included; the label of an
RGB file is the same path with ``rgb`` replaced by the domain, in the folder and in the file name). The split
is a CSV in the format of Taskonomy's ``train_val_test_<size>.csv`` (e.g. the official tiny split): a header
``id,train,val,test`` and one row per building with 1 in the column of its split.

| task     | domain              | stored as (Standley's normalisation)                   | masked |
|----------|---------------------|--------------------------------------------------------|--------|
| seg      | segment_semantic    | classes 0..17, 0 ignored (his cross-entropy's ignore)  |        |
| depth    | depth_zbuffer       | (raw - 1500) / 1000                                    | yes    |
| normal   | normal              | (rgb / 255 - 0.5) * 2                                  | yes    |
| edge     | edge_occlusion      | (raw - 56.0248) / 239.1265                             | yes    |
| shading  | reshading           | (mean over channels of rgb / 255 - 0.4962) / 0.2846    | yes    |
| keypoint | keypoints2d         | (raw - 50) / 100                                       |        |
| texture  | edge_texture        | (raw - 718) / 1070                                     |        |
| curvature| principal_curvature | (rgb[:2] / 255 - (0.5175, 0.4987)) / (0.1373, 0.0359)  | yes    |

The mask is his: depth_zbuffer < 2^13 (his saved ``mask`` files are this test). Masked pixels are NaN for the
L1 tasks (``tasks.DenseL1`` leaves them out) and an all-zero vector for normals (``tasks.Normal``'s invalid).
Nishi et al. 2024 train seven tasks (all but curvature), Sun et al. 2023 and Standley et al. 2020 five (seg, depth,
normal, keypoint and edge; Sun et al. 2023's "2D edges" are ``texture``). Normals train with the cosine loss as in
Nishi et al. 2024, or with ``normal_loss: l1`` as Standley et al. 2020 do. Images (512x512 in the release) are resized
to ``height`` x ``width`` (256x256 as Standley's training): bilinear as his loader, except segmentation and depth (and
so the mask), which are resized nearest so no label or invalid value is blended (mtlbench's choice). ``limit`` caps
a split at a seeded random subset of its images, since the tiny split (~250k training images) does not fit in
memory at any useful size.
Regression targets are held as float16 (a named simplification to halve memory: 1.4 MB per 256x256 image with
the seven tasks; relative rounding below 2^-11, e.g. 4 mm of depth at 6 m).
"""
from __future__ import annotations

import csv
import hashlib
import os
import re
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, ClassVar

import numpy as np

from ..files import write_atomic
from ..tasks import NORMAL_LOSSES, DenseL1, Normal, Segmentation, Task
from .base import DATASETS, SPLITS
from .image_files import EIGHT_BIT, SIXTEEN_BIT, ImageFileDataset, read_image, resize
from .npy_folders import DatasetError

DEPTH_VALID_BELOW = 2 ** 13
SEG_CLASSES = 18  # labels 0..17; 0 is ignored


@dataclass(frozen=True)
class Domain:
    """One Taskonomy domain: its folder, the modes its PNGs come in, and how raw values become the stored
    target given the mask (True = valid) at the stored size."""

    folder: str
    modes: tuple[str, ...]
    nearest: bool
    decode: Callable[[np.ndarray, np.ndarray], np.ndarray]
    value_check: Callable[[np.ndarray], str | None] = lambda raw: None


def standardised(offset: float, scale: float, masked: bool) -> Callable[[np.ndarray, np.ndarray], np.ndarray]:
    def decode(raw: np.ndarray, valid: np.ndarray) -> np.ndarray:
        value = (raw.astype(np.float32) - offset) / scale
        return np.where(valid, value, np.nan)[None] if masked else value[None]
    return decode


def decode_seg(raw: np.ndarray, valid: np.ndarray) -> np.ndarray:
    labels = raw.astype(np.int16)
    labels[labels == 0] = -1
    return labels


def decode_normal(raw: np.ndarray, valid: np.ndarray) -> np.ndarray:
    normal = (raw[..., :3].astype(np.float32) / 255 - 0.5) * 2
    return np.moveaxis(np.where(valid[..., None], normal, 0.0), -1, 0)


def decode_shading(raw: np.ndarray, valid: np.ndarray) -> np.ndarray:
    gray = raw.astype(np.float32) / 255
    gray = gray.mean(-1) if gray.ndim == 3 else gray
    return np.where(valid, (gray - 0.4962) / 0.2846, np.nan)[None]


def decode_curvature(raw: np.ndarray, valid: np.ndarray) -> np.ndarray:
    value = (raw[..., :2].astype(np.float32) / 255 - np.array([0.5175, 0.4987])) / np.array([0.1373, 0.0359])
    return np.moveaxis(np.where(valid[..., None], value, np.nan), -1, 0).astype(np.float32)


def seg_values(raw: np.ndarray) -> str | None:
    return f"labels up to {int(raw.max())}, expected 0..{SEG_CLASSES - 1}" if raw.max() >= SEG_CLASSES else None


DOMAINS: dict[str, Domain] = {
    "seg": Domain("segment_semantic", ("L", "P"), True, decode_seg, seg_values),
    "depth": Domain("depth_zbuffer", SIXTEEN_BIT, True, standardised(1500.0, 1000.0, masked=True)),
    "normal": Domain("normal", ("RGB",), False, decode_normal),
    "edge": Domain("edge_occlusion", SIXTEEN_BIT, False, standardised(56.0248, 239.1265, masked=True)),
    "shading": Domain("reshading", EIGHT_BIT, False, decode_shading),
    "keypoint": Domain("keypoints2d", SIXTEEN_BIT, False, standardised(50.0, 100.0, masked=False)),
    "texture": Domain("edge_texture", SIXTEEN_BIT, False, standardised(718.0, 1070.0, masked=False)),
    "curvature": Domain("principal_curvature", ("RGB",), False, decode_curvature),
}
TASKS: dict[str, Task] = {
    "seg": Segmentation("seg", SEG_CLASSES), "depth": DenseL1("depth", 1), "normal": Normal("normal", 3),
    "edge": DenseL1("edge", 1), "shading": DenseL1("shading", 1), "keypoint": DenseL1("keypoint", 1),
    "texture": DenseL1("texture", 1), "curvature": DenseL1("curvature", 2),
}


def label_path(rgb: Path, root: Path, folder: str) -> Path:
    relative = rgb.relative_to(root / "rgb")
    return root / folder / relative.parent / relative.name.replace("domain_rgb", f"domain_{folder}")


@DATASETS.register("taskonomy")
@dataclass(frozen=True)
class Taskonomy(ImageFileDataset):
    """``root`` holds one folder per domain (rgb and those of ``tasks_read``); ``split_file`` the split CSV
    (default ``<root>/train_val_test_tiny.csv``); ``tasks_read`` the tasks to read (default: Nishi et al. 2024's seven);
    ``limit`` {split: max images} for a seeded subset (``seed``)."""

    name: ClassVar[str] = "taskonomy"
    published: ClassVar[str] = ("Taskonomy is published at github.com/StanfordVL/taskonomy/tree/master/data (the "
                                "'tiny' split and its CSV); download rgb and the task domains into one folder per "
                                "domain and point the suite's dataset.root at it.")
    root: str = "data/taskonomy"
    split_file: str = ""
    tasks_read: tuple[str, ...] = ("seg", "depth", "normal", "edge", "shading", "keypoint", "texture")
    height: int = 256
    width: int = 256
    limit: dict[str, int] = field(default_factory=dict)
    seed: int = 0
    normal_loss: str = "cosine"  # or "l1", Standley et al. 2020's (tasks.Normal)

    def __post_init__(self) -> None:
        if self.normal_loss not in NORMAL_LOSSES:
            raise DatasetError(f"taskonomy: normal_loss: {self.normal_loss!r} unknown; choose one of "
                               f"{', '.join(NORMAL_LOSSES)} (l1: Standley et al. 2020's loss)")
        unknown = [t for t in self.tasks_read if t not in DOMAINS]
        if unknown:
            raise DatasetError(f"taskonomy: tasks_read: unknown {unknown}; known: {', '.join(DOMAINS)}")
        if set(self.limit) - set(SPLITS):
            raise DatasetError(f"taskonomy: limit: keys must be splits {SPLITS}, got {sorted(self.limit)}")

    def tasks(self) -> dict[str, Task]:
        tasks = {t: TASKS[t] for t in self.tasks_read}
        if "normal" in tasks:
            tasks["normal"] = Normal("normal", 3, loss=self.normal_loss)
        return tasks

    # ------------------------------------------------------------------------------------------ files
    def split_csv(self) -> Path:
        return Path(self.split_file) if self.split_file else Path(self.root) / "train_val_test_tiny.csv"

    def buildings(self) -> dict[str, list[str]]:
        path = self.split_csv()
        if not path.is_file():
            raise DatasetError(f"taskonomy: split file {path} not found (dataset field split_file). "
                               f"{self.published}")
        with open(path, newline="") as f:
            rows = list(csv.DictReader(f))
        missing = [c for c in ("id", *SPLITS) if not rows or c not in rows[0]]
        if missing:
            raise DatasetError(f"{path}: columns {missing} missing; expected a header id,train,val,test and a row "
                               f"per building with 1 in its split's column (Taskonomy's train_val_test_*.csv)")
        return {split: [r["id"] for r in rows if r[split].strip() == "1"] for split in SPLITS}

    def require(self) -> None:
        """Fail fast on a missing folder or building, with the expected layout."""
        root = Path(self.root)
        layout = (f"Expected {root}/<domain>/<building>/point_<p>_view_<v>_domain_<domain>.png for domains rgb, "
                  f"{', '.join(DOMAINS[t].folder for t in self.tasks_read)}. {self.published}")
        if not root.is_dir():
            raise DatasetError(f"taskonomy: dataset folder {root} not found. {layout}")
        for split, buildings in self.buildings().items():
            if not buildings:
                raise DatasetError(f"{self.split_csv()}: no building in split {split}")
            absent = [b for b in buildings if not (root / "rgb" / b).is_dir()]
            if absent:
                raise DatasetError(f"taskonomy: split {split}: building folders {absent[:5]} not found under "
                                   f"{root / 'rgb'} ({len(absent)} of {len(buildings)}); download them, or give a "
                                   f"split_file listing only the buildings you have. {layout}")
        for task in dict.fromkeys(["depth", *self.tasks_read]):  # depth gives the mask of the others
            if not (root / DOMAINS[task].folder).is_dir():
                raise DatasetError(f"taskonomy: folder {root / DOMAINS[task].folder} (task {task}) not found. "
                                   f"{layout}")

    def records(self, split: str) -> "RgbFiles":
        """The RGB files of the split (in path order; a seeded subset if ``limit`` caps the split)."""
        files = RgbFiles.of(Path(self.root) / "rgb", self.buildings()[split])
        if split in self.limit and self.limit[split] < len(files):
            keep = np.random.default_rng([self.seed, SPLITS.index(split)]).choice(len(files), self.limit[split],
                                                                                 replace=False)
            files = files.take(np.sort(keep))
        return files

    # ---------------------------------------------------------------------------------------- reading
    def read(self, rgb: Path) -> tuple[dict[str, np.ndarray], list[str]]:
        """One image and its labels at the stored size, and every problem found with its files."""
        root = Path(self.root)
        image, problems = read_image(rgb, ("RGB",))
        if image is None:
            return {}, problems
        size = image.shape[1], image.shape[0]
        raws = {}
        for task in dict.fromkeys(["depth", *self.tasks_read]):  # depth first: it gives the mask
            domain = DOMAINS[task]
            path = label_path(rgb, root, domain.folder)
            raw, found = read_image(path, domain.modes, size)
            problems += found
            if raw is not None and (message := domain.value_check(raw)):
                problems.append(f"{path}: {message}")
            raws[task] = raw
        if problems:
            return {}, problems
        valid = resize(raws["depth"], self.height, self.width, nearest=True) < DEPTH_VALID_BELOW
        out = {"image": np.moveaxis(np.round(resize(image, self.height, self.width, False)), -1, 0).astype(np.uint8)}
        for task in self.tasks_read:
            decoded = DOMAINS[task].decode(resize(raws[task], self.height, self.width, DOMAINS[task].nearest), valid)
            out[task] = stored_dtype(decoded)
        return out, []

    def every_record(self) -> list[Path]:
        return [rgb for split in SPLITS for rgb in self.records(split)]


RGB_NAME = re.compile(r"point_(\d+)_view_(\d+)_domain_rgb\.png")


@dataclass(frozen=True, eq=False)
class RgbFiles(Sequence[Path]):
    """A split's RGB files as a compact index (building, point and view numbers per file: 10 bytes where a ``Path``
    takes hundreds, 40 MB for the full 4M-image set), in the order of their sorted paths. A building's listing is read
    once (``os.scandir``) and cached in ``$MTLBENCH_CACHE/taskonomy-index``, keyed by its folder and modification
    time, so a full-size split is not listed again at every load."""

    root: Path
    buildings: tuple[str, ...]
    building: np.ndarray  # index into buildings, per file
    point: np.ndarray
    view: np.ndarray

    @classmethod
    def of(cls, root: Path, buildings: list[str]) -> "RgbFiles":
        names = tuple(sorted(buildings))
        listed = [building_index(root / b) for b in names]
        return cls(root, names, np.concatenate([np.full(len(p), i, np.int32) for i, (p, _) in enumerate(listed)]
                                               or [np.zeros(0, np.int32)]),
                   np.concatenate([p for p, _ in listed] or [np.zeros(0, np.int32)]),
                   np.concatenate([v for _, v in listed] or [np.zeros(0, np.int32)]))

    def __len__(self) -> int:
        return len(self.point)

    def __getitem__(self, i):  # type: ignore[override]
        if isinstance(i, slice):
            return self.take(np.arange(len(self))[i])
        return self.root / self.buildings[self.building[i]] / f"point_{self.point[i]}_view_{self.view[i]}_domain_rgb.png"

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Sequence) and len(self) == len(other) and list(self) == list(other)

    __hash__ = None  # type: ignore[assignment]  (a list's equality, a list's hashability)

    def take(self, index: np.ndarray) -> "RgbFiles":
        return RgbFiles(self.root, self.buildings, self.building[index], self.point[index], self.view[index])


def building_index(folder: Path) -> tuple[np.ndarray, np.ndarray]:
    """(point, view) of a building's RGB files in the order of their sorted names, from the cache when the folder
    has not changed since it was listed."""
    from .synthrooms import cache_dir

    stamp = folder.stat().st_mtime_ns
    key = hashlib.sha256(f"{folder.resolve()}|{stamp}".encode()).hexdigest()[:20]
    cached = cache_dir() / "taskonomy-index" / f"{key}.npy"
    if cached.exists():
        both = np.load(cached, allow_pickle=False)
        return both[0], both[1]
    names = sorted(entry.name for entry in os.scandir(folder) if entry.name.endswith(".png"))
    matched = [RGB_NAME.fullmatch(name) for name in names]
    odd = [name for name, m in zip(names, matched) if m is None]
    if odd:
        raise DatasetError(f"taskonomy: {folder / odd[0]}: not named point_<p>_view_<v>_domain_rgb.png as Taskonomy "
                           f"names its files ({len(odd)} such file(s) in the folder); move them out")
    both = np.array([[int(m.group(1)) for m in matched], [int(m.group(2)) for m in matched]], np.int32).reshape(2, -1)
    cached.parent.mkdir(parents=True, exist_ok=True)
    write_atomic(cached, lambda stream: np.save(stream, both))
    return both[0], both[1]


def stored_dtype(values: np.ndarray) -> np.ndarray:
    """Labels as int16, regression targets as float16 (half the memory; NaN survives)."""
    return values if values.dtype == np.int16 else values.astype(np.float16)
