"""Prepared datasets: a dataset's splits converted once (``mtlbench data prepare``) into the layout the training
reads fastest, checked before anything trains on it.

Layout (``DEST``): one folder per split holding one ``.npy`` file per array, ``images.npy`` (uint8 [N, 3, H, W] at
the dataset's training resolution) and one per task target in the dtype the dataset stores it (``<task>.npy``; a
union's per-task label flags as ``labelled-<task>.npy``), and ``manifest.json``:

| field | meaning |
|---|---|
| format | layout version (1) |
| dataset | the dataset's resolved config (what it yields: the same data as loading it from its original files) |
| source | the folder it was read from |
| splits | {split: {count, done, arrays: {name: {file, dtype, shape, bytes, sha256}}}}; done: images written |
| complete | every split written and checksummed |

``.npy`` files open memory-mapped (``numpy.load(mmap_mode="r")``): a batch is read by fancy-indexing its rows, so
random access costs one read per image and no file is ever held in memory whole (docs/datasets.md, "Prepared
datasets", has the throughput measured against the alternatives). Preparing is resumable: the arrays are allocated
at their final size, filled in chunks, and ``done`` is saved (atomically) after each chunk, so an interrupted
``prepare`` continues where it stopped. Each file's SHA-256 and size are recorded once its split is written;
``check`` verifies sizes always and checksums when asked, so a truncated or corrupt file is named, never trained on.
"""
from __future__ import annotations

import hashlib
import json
import os
import time
import warnings
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator

import numpy as np
import torch

from ..errors import UserError
from ..files import write_json_atomic
from ..registry import build
from .base import DATASETS, SPLITS, Split

FORMAT = 1
MANIFEST = "manifest.json"
CHUNK = 256  # images per write between saves of the manifest
HASH_BLOCK = 1 << 24


class PreparedDataError(UserError, ValueError):
    """A prepared folder that cannot be used as it is; the message names the file and the fix."""


Progress = Callable[[str, int, int], None]  # (split, images written, images of the split)


@dataclass
class Chunk:
    start: int
    arrays: dict[str, np.ndarray]


def split_names(dataset: Any) -> list[str]:
    """The splits a dataset has: train, val, test, and its ``pool`` where it has one."""
    names = list(SPLITS)
    if getattr(dataset, "pool", 0):
        names.append("pool")
    return names


def chunks(dataset: Any, split: str, start: int) -> Iterator[Chunk]:
    """The split's arrays from image ``start`` on, ``CHUNK`` images at a time: record by record for datasets read
    from files and chunk by chunk for one that generates rows (never the whole split in memory), else from the split
    the dataset loads (MTAN's folders)."""
    if hasattr(dataset, "records") and hasattr(dataset, "load_record"):
        records = dataset.records(split)
        with ThreadPoolExecutor(min(8, os.cpu_count() or 1)) as pool:  # decoding files releases the GIL
            for first in range(start, len(records), CHUNK):
                loaded = list(pool.map(dataset.load_record, records[first:first + CHUNK]))
                yield Chunk(first, {key: np.stack([item[key] for item in loaded]) for key in loaded[0]})
        return
    count = dataset.split_size(split)
    if hasattr(dataset, "load_rows"):  # a generated dataset that makes any rows alone
        for first in range(start, count, CHUNK):
            yield Chunk(first, record_keys(dataset.load_rows(split, first, first + CHUNK)))
        return
    if start >= count:  # prepared already: not loaded again
        return
    loaded = split_arrays(dataset.load(split))
    total = len(loaded["images"])
    for first in range(start, total, CHUNK):
        yield Chunk(first, {key: value[first:first + CHUNK] for key, value in loaded.items()})


def split_arrays(split: Split) -> dict[str, np.ndarray]:
    """A loaded split as the arrays of the layout: images, targets and label flags."""
    return {"images": split.images.cpu().numpy(),
            **{task: value.cpu().numpy() for task, value in split.targets.items()},
            **{f"labelled-{task}": value.cpu().numpy() for task, value in split.labelled.items()}}


def record_keys(arrays: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    """A record reader's keys as the layout's (``image`` is the split's ``images``)."""
    return {("images" if key == "image" else key): value for key, value in arrays.items()}


def sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as stream:
        while block := stream.read(HASH_BLOCK):
            digest.update(block)
    return digest.hexdigest()


def manifest_of(dest: Path) -> dict[str, Any] | None:
    path = dest / MANIFEST
    if not path.exists():
        return None
    try:
        return json.loads(path.read_text())
    except json.JSONDecodeError:
        raise PreparedDataError(f"{path}: not valid JSON (a manifest written by mtlbench data prepare); delete "
                                f"{dest} and prepare again") from None


def prepare(dataset_config: dict[str, Any], source: str, dest: Path, progress: Progress | None = None
            ) -> dict[str, Any]:
    """Writes (or, after an interruption, completes) the prepared layout of ``dataset_config`` under ``dest``;
    returns the manifest."""
    dataset = build(DATASETS, dataset_config)
    if hasattr(dataset, "require"):
        dataset.require()
    dest.mkdir(parents=True, exist_ok=True)
    manifest = manifest_of(dest)
    if manifest is not None and (manifest.get("format") != FORMAT or manifest["dataset"] != dataset_config):
        raise PreparedDataError(f"{dest / MANIFEST}: this folder holds a preparation of another dataset config "
                                f"({json.dumps(manifest.get('dataset'))}); prepare into another folder, or delete "
                                f"{dest} to replace it")
    manifest = manifest or {"format": FORMAT, "dataset": dataset_config, "source": source, "splits": {},
                            "complete": False}
    for split in split_names(dataset):
        entry = manifest["splits"].setdefault(split, {"count": dataset.split_size(split), "done": 0, "arrays": {}})
        fill_split(dataset, dest, split, entry, manifest, progress)
    manifest["complete"] = True
    write_json_atomic(dest / MANIFEST, manifest)
    return manifest


def fill_split(dataset: Any, dest: Path, split: str, entry: dict[str, Any], manifest: dict[str, Any],
               progress: Progress | None) -> None:
    """Writes the split's images from ``done`` on, saving ``done`` after each chunk, then checksums its files."""
    folder = dest / split
    folder.mkdir(exist_ok=True)
    files: dict[str, np.memmap] = {}
    for chunk in chunks(dataset, split, entry["done"]):
        arrays = record_keys(chunk.arrays)
        if not entry["arrays"]:
            entry["arrays"] = {name: {"file": f"{split}/{name}.npy", "dtype": value.dtype.str,
                                      "shape": [entry["count"], *value.shape[1:]]} for name, value in arrays.items()}
            write_json_atomic(dest / MANIFEST, manifest)
        for name, value in arrays.items():
            if name not in files:
                files[name] = open_array(dest, entry["arrays"][name])
            if files[name].shape[1:] != value.shape[1:] or files[name].dtype != value.dtype:
                raise PreparedDataError(f"{dest / entry['arrays'][name]['file']}: image {chunk.start} of split "
                                        f"{split} gives {name} of shape {value.shape[1:]} ({value.dtype}), the "
                                        f"split's first gave {files[name].shape[1:]} ({files[name].dtype}); a "
                                        f"prepared split needs one shape per array")
            files[name][chunk.start:chunk.start + len(value)] = value
        for array in files.values():
            array.flush()
        entry["done"] = chunk.start + len(arrays["images"])
        write_json_atomic(dest / MANIFEST, manifest)
        if progress is not None:
            progress(split, entry["done"], entry["count"])
    del files
    for spec in entry["arrays"].values():
        if "sha256" not in spec:
            path = dest / spec["file"]
            spec["bytes"], spec["sha256"] = path.stat().st_size, sha256(path)
    write_json_atomic(dest / MANIFEST, manifest)


def open_array(dest: Path, spec: dict[str, Any]) -> np.memmap:
    """The array's file for writing: created at its final shape, or reopened where a preparation stopped."""
    path = dest / spec["file"]
    shape, dtype = tuple(spec["shape"]), np.dtype(spec["dtype"])
    if path.exists():
        array = np.load(path, mmap_mode="r+")
        if array.shape == shape and array.dtype == dtype:
            return array
    return np.lib.format.open_memmap(path, mode="w+", dtype=dtype, shape=shape)


def check(dest: Path, checksums: bool = True) -> list[str]:
    """Every problem of a prepared folder: an unfinished preparation, a missing file, one whose size, shape or
    dtype is not the manifest's, and (``checksums``) one whose content changed."""
    manifest = manifest_of(dest)
    if manifest is None:
        return [f"{dest}: no {MANIFEST} (not a folder mtlbench data prepare wrote)"]
    if not manifest.get("complete"):
        return [f"{dest / MANIFEST}: the preparation did not finish; run mtlbench data prepare again, it continues"]
    return [problem for entry in manifest["splits"].values() for spec in entry["arrays"].values()
            for problem in array_problems(dest, spec, checksums)]


def array_problems(dest: Path, spec: dict[str, Any], checksums: bool) -> list[str]:
    path = dest / spec["file"]
    fix = "prepare the dataset again into a new folder (its files are read, never repaired in place)"
    if not path.exists():
        return [f"{path}: missing; {fix}"]
    if path.stat().st_size != spec["bytes"]:
        return [f"{path}: {path.stat().st_size} bytes where the manifest has {spec['bytes']} (truncated or "
                f"replaced); {fix}"]
    try:
        array = np.load(path, mmap_mode="r")
    except ValueError as error:
        return [f"{path}: not a readable .npy file ({error}); {fix}"]
    if list(array.shape) != spec["shape"] or array.dtype.str != spec["dtype"]:
        return [f"{path}: shape {list(array.shape)} ({array.dtype.str}) where the manifest has {spec['shape']} "
                f"({spec['dtype']}); {fix}"]
    if checksums and sha256(path) != spec["sha256"]:
        return [f"{path}: its SHA-256 is not the manifest's (the content changed); {fix}"]
    return []


def checked_entry(dest: Path, split: str, dataset_config: dict[str, Any]) -> dict[str, Any]:
    """The manifest entry of ``split``, after checking that the folder holds ``dataset_config``'s data and that its
    files have their recorded sizes."""
    manifest = manifest_of(dest)
    if manifest is None or not manifest.get("complete"):
        raise PreparedDataError(f"{dest}: not a finished preparation ({check(dest, checksums=False)[0]})")
    if manifest["dataset"] != dict(dataset_config):
        raise PreparedDataError(f"{dest / MANIFEST}: prepared from dataset config {json.dumps(manifest['dataset'])}, "
                                f"not this job's {json.dumps(dataset_config)}; prepare it with the job's settings")
    entry = manifest["splits"].get(split)
    if entry is None:
        raise PreparedDataError(f"{dest / MANIFEST}: no split {split!r}")
    problems = [p for spec in entry["arrays"].values() for p in array_problems(dest, spec, checksums=False)]
    if problems:
        raise PreparedDataError(problems[0])
    return entry


def load(dest: Path, split: str, dataset_config: dict[str, Any]) -> Split:
    """A split of a prepared folder, read into memory (the in-memory path), checked (``checked_entry``)."""
    entry = checked_entry(dest, split, dataset_config)
    arrays = {name: torch.from_numpy(np.load(dest / spec["file"])) for name, spec in entry["arrays"].items()}
    labelled = {name.removeprefix("labelled-"): arrays.pop(name) for name in list(arrays)
                if name.startswith("labelled-")}
    return Split(arrays.pop("images"), arrays, labelled)


VARIABLE = "MTLBENCH_PREPARED"  # folders (os.pathsep-separated) holding prepared datasets, or their parents


def find(dataset_config: dict[str, Any]) -> Path | None:
    """The complete prepared folder of ``dataset_config`` among ``$MTLBENCH_PREPARED`` (each entry a prepared folder
    or a folder of them; ``mtlbench run --prepared``), or None: the dataset is then read from its own files. Where a
    job's data comes from is no part of its id; a prepared folder holds the same data (tests compare them)."""
    for entry in filter(None, os.environ.get(VARIABLE, "").split(os.pathsep)):
        root = Path(entry)
        for folder in [root, *sorted(p for p in root.iterdir() if p.is_dir())] if root.is_dir() else []:
            manifest = manifest_of(folder) if (folder / MANIFEST).exists() else None
            if manifest is not None and manifest.get("complete") and manifest.get("dataset") == dict(dataset_config):
                return folder
    return None


STREAM_VARIABLE = "MTLBENCH_STREAM_ABOVE_GB"


def stream_threshold() -> float:
    """Bytes of prepared data above which a job streams its splits (``MTLBENCH_STREAM_ABOVE_GB``, ``mtlbench run
    --stream-above``); default: half of the machine's memory."""
    if os.environ.get(STREAM_VARIABLE):
        return float(os.environ[STREAM_VARIABLE]) * 2 ** 30
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2


def prepared_bytes(dest: Path, splits: list[str]) -> int:
    manifest = manifest_of(dest)
    return sum(spec.get("bytes", 0) for split in splits for spec in manifest["splits"].get(split, {}).get(
        "arrays", {}).values())


@dataclass(frozen=True)
class Source:
    """Where a job's splits come from: the dataset's own files (``folder`` None), or its prepared folder, read into
    memory or, above the threshold, streamed (streaming.py)."""

    folder: Path | None = None
    stream: bool = False

    @classmethod
    def of(cls, dataset_config: dict[str, Any], splits: list[str]) -> "Source":
        folder = find(dataset_config)
        if folder is None:
            if os.environ.get(VARIABLE):
                warnings.warn(f"{VARIABLE} (mtlbench run --prepared) names {os.environ[VARIABLE]}, but no complete "
                              f"preparation there holds dataset {json.dumps(dict(dataset_config))}: reading its own "
                              f"files. Prepare it with the suite's dataset settings exactly as the suite gives them "
                              f"(mtlbench data prepare NAME SRC DEST --set KEY=VALUE)", stacklevel=2)
            return cls()
        return cls(folder, prepared_bytes(folder, splits) > stream_threshold())

    def describe(self) -> str:
        return "files" if self.folder is None else f"{self.folder}{' (streamed)' if self.stream else ''}"

    def split(self, dataset: Any, dataset_config: dict[str, Any], split: str) -> Any:
        if self.folder is None:
            return dataset.load(split)
        if not self.stream:
            return load(self.folder, split, dataset_config)
        from .streaming import MappedSplit

        return MappedSplit.of(self.folder, checked_entry(self.folder, split, dataset_config))


def throughput(dest: Path, split: str, batch: int = 64, batches: int = 50, seed: int = 0) -> float:
    """Images per second of random batches read from the memory-mapped files (all arrays of each image), the page
    cache dropped by nothing: run it on a freshly written or cold folder to see the disk."""
    manifest = manifest_of(dest)
    arrays = [np.load(dest / spec["file"], mmap_mode="r") for spec in manifest["splits"][split]["arrays"].values()]
    count = manifest["splits"][split]["count"]
    rng = np.random.default_rng(seed)
    start = time.perf_counter()
    for _ in range(batches):
        index = np.sort(rng.choice(count, min(batch, count), replace=False))
        for array in arrays:
            np.ascontiguousarray(array[index])
    return batches * min(batch, count) / (time.perf_counter() - start)


__all__ = ["FORMAT", "STREAM_VARIABLE", "VARIABLE", "PreparedDataError", "Source", "check", "find", "load", "prepare",
           "stream_threshold", "throughput"]
