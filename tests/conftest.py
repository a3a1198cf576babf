"""Shared fixtures: a private dataset cache and the smallest jobs and suites that still exercise everything."""
from __future__ import annotations

import copy
import os
from pathlib import Path

import pytest
import yaml

from mtlbench.kernels import pin_instruction_sets

# The kernels every job runs with, pinned before any test computes, as the command line pins them before torch does:
# oneDNN and MKL read them once per process, so a test process that computed first would train on this CPU's native
# code while the processes it starts (a job's ranks, workers) train on the pinned code, and differ in the last bits.
pin_instruction_sets()

REPO = Path(__file__).resolve().parents[1]
REFERENCE = Path(__file__).resolve().parent / "data" / "reference"  # vendored, see its README

TINY_DATASET = {"name": "synthrooms", "height": 32, "width": 64, "train": 24, "val": 8, "test": 8, "seed": 0}
TINY_JOB = {
    "dataset": TINY_DATASET,
    "tasks": ["seg", "depth", "normal"],
    "scenario": {"name": "onelabel", "unlabeled": 0.0, "unlabeled_per_batch": 0, "mask_seed": 0},
    "method": {"name": "supervised", "networks": "shared", "supervision": {"name": "full"},
               "weighting": {"name": "uniform"}, "gradients": {"name": "sum"}, "regularizer": {"name": "none"}},
    "model": {"name": "segnet", "width": 0.0625},
    "train": {"epochs": 2, "batch_size": 8, "eval_batch_size": 8,
              "optimizer": {"name": "adam", "lr": 1e-3, "weight_decay": 0.0},
              "scheduler": {"name": "step", "step_size": 100, "gamma": 0.5},
              "augment": {"scale_crop": True, "flip": True}, "device": "cpu", "precision": "auto",
              "test_every_epoch": False, "label_smoothing": 0.0, "observe": [], "devices": 1},
    "seed": 0,
}
TINY_SUITE = {
    "name": "tiny",
    "dataset": TINY_DATASET,
    "tasks": ["seg", "depth", "normal"],
    "scenarios": ["onelabel"],
    "methods": ["stl", "supervised"],
    "seeds": [0],
    "model": {"name": "segnet", "width": 0.0625},
    "train": {"epochs": 2, "batch_size": 8, "eval_batch_size": 8, "device": "cpu"},
}


def preset(name: str) -> dict:
    """A preset's recipe, with what its parts would read from a suite's stl jobs filled in: AMTL's potentials, and
    for the students of teachers untrained copies of the student as teachers (``Part.standalone``)."""
    from mtlbench.bench import standalone
    from mtlbench.methods import METHODS

    method = standalone(copy.deepcopy(METHODS.get(name)), ["seg", "depth", "normal"])
    if method["weighting"]["name"] == "amtl":
        method["weighting"]["potentials"] = {"seg": 0.5, "depth": 0.8, "normal": 0.3}
    return method


def write_track_suite(path: Path, suite: dict, section: str, changes: dict) -> Path:
    """A copy of ``suite`` whose track section (budget, grouping) has ``changes``, written as YAML to ``path``."""
    suite = copy.deepcopy(suite)
    suite[section].update(changes)
    path.write_text(yaml.safe_dump(suite))
    return path


@pytest.fixture(autouse=True, scope="session")
def dataset_cache(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("cache")
    os.environ["MTLBENCH_CACHE"] = str(path)
    os.environ["WANDB_SILENT"] = "true"
    return path


TRAIN_IMAGES = {"nyuv2": 795, "cityscapes": 2975}  # the rows of the published masks (canonical scenarios)


def split_size_of_real_files(dataset, split: str) -> int:
    """A split's size as a dataset's real files would give it: its ``limit`` where it has one, the published
    masks' rows for NYUv2's and Cityscapes' training splits, else large enough for any budget."""
    limit = getattr(dataset, "limit", None) or {}
    return limit.get(split) or (TRAIN_IMAGES.get(getattr(dataset, "name", "")) if split == "train" else None) or 10**5


@pytest.fixture
def without_dataset_files(monkeypatch):
    """Real datasets and pretrained weights as if their files were there (no file decides an id; split sizes bound
    budgets and must match the masks a suite's scenarios make when it is loaded)."""
    from mtlbench.data import DATASETS
    from mtlbench.models import deeplab, maskrcnn

    for name in DATASETS.list():
        cls = DATASETS.get(name)
        if hasattr(cls, "require"):
            monkeypatch.setattr(cls, "require", lambda self: None)
            monkeypatch.setattr(cls, "split_size", split_size_of_real_files)
    monkeypatch.setattr(deeplab, "load_resnet_weights", lambda backbone, path, name="resnet50": None)  # a suite's ImageNet weights
    monkeypatch.setattr(maskrcnn, "load_weights", lambda net, path: None)


@pytest.fixture
def tiny_job() -> dict:
    return copy.deepcopy(TINY_JOB)


@pytest.fixture
def write_suite(tmp_path: Path):
    def write(overrides: dict | None = None, name: str = "tiny.yaml") -> Path:
        suite = copy.deepcopy(TINY_SUITE)
        suite.update(overrides or {})
        path = tmp_path / name
        path.write_text(yaml.safe_dump(suite))
        return path

    return write


def pycocotools_map(images: list[dict], annotations: list[dict], results: list[dict], classes: int,
                    iou_type: str) -> list[float]:
    """AP@[.5:.95], AP50 and AP75 of pycocotools' own COCOeval (``iou_type`` "bbox" or "segm") on COCO-format
    records: the reference the tasks' meters are checked against."""
    from pycocotools.coco import COCO
    from pycocotools.cocoeval import COCOeval

    truth_set = COCO()
    truth_set.dataset = {"images": images, "annotations": annotations, "categories": [{"id": c} for c in range(classes)]}
    truth_set.createIndex()
    evaluation = COCOeval(truth_set, truth_set.loadRes(results), iou_type)
    evaluation.evaluate()
    evaluation.accumulate()
    evaluation.summarize()
    return evaluation.stats[:3].tolist()


@pytest.fixture
def one_thread():
    """With several threads, some CPU kernels are not bitwise reproducible run to run (resumed or not)."""
    import torch

    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)
