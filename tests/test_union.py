"""A dataset assembled from task-specific sources (Yun and Cho 2023 Sec. 4.2.2): each image labelled for its source's
tasks only, the label mask following from it, and each task scored on its own sources' test images."""
import numpy as np
import pytest
import torch

from mtlbench.data import DATASETS, DatasetError
from mtlbench.data.synthrooms import SynthRooms

SIZE = {"height": 32, "width": 64}
PARTS = [{"name": "synthrooms", "seed": 1, "train": 6, "val": 2, "test": 4, "tasks": ["seg", "detection"]},
         {"name": "synthrooms", "seed": 2, "train": 10, "val": 2, "test": 6, "tasks": ["depth"]}]


def union(parts=PARTS):
    return DATASETS.get("union")(parts=parts, **SIZE)


def test_each_image_is_labelled_for_its_sources_tasks_alone():
    dataset = union()
    assert list(dataset.tasks()) == ["seg", "detection", "depth"] and dataset.split_size("train") == 16
    train = dataset.load("train")
    assert train.images.shape == (16, 3, 32, 64)
    assert train.labelled["seg"].tolist() == [True] * 6 + [False] * 10
    assert train.labelled["depth"].tolist() == [False] * 6 + [True] * 10
    source = SynthRooms(seed=1, train=6, val=2, test=4, **SIZE).load("train")
    assert torch.equal(train.images[:6], source.images) and torch.equal(train.targets["seg"][:6], source.targets["seg"])
    assert (train.targets["seg"][6:] == -1).all() and (train.targets["depth"][:6] == 0).all()  # "no label" values
    assert (train.targets["detection"][6:, :, 4] == -1).all()  # an unlabelled image's boxes are all padding


def test_the_label_mask_follows_the_sources_and_each_task_is_scored_on_its_sources_test_images():
    from mtlbench.data import scenario
    from mtlbench.train.evaluation import evaluate
    from mtlbench.train.trainer import within_labels
    from mtlbench.models import MODELS

    dataset = union()
    tasks = dataset.tasks()
    train = dataset.load("train")
    plan = within_labels(scenario({"name": "full"}).plan(16, list(tasks), 0), train, list(tasks))
    assert plan.mask.tolist() == [[1, 1, 0]] * 6 + [[0, 0, 1]] * 10
    torch.manual_seed(0)
    model = MODELS.get("segnet")(width=0.0625).build(tasks).eval()
    # batches of 2 hold one source's images each, as the sources alone do: the same kernels, the same numbers (mAP
    # is not continuous in the logits, so another batching's last-bit differences could move it)
    scores = evaluate(model, dataset.load("test"), tasks, 2, torch.no_grad)
    first = SynthRooms(seed=1, train=6, val=2, test=4, **SIZE)
    second = SynthRooms(seed=2, train=10, val=2, test=6, **SIZE)
    first_tasks = {name: tasks[name] for name in ("seg", "detection")}
    alone = {**evaluate(model, first.load("test").select(list(first_tasks)), first_tasks, 2, torch.no_grad),
             **evaluate(model, second.load("test").select(["depth"]), {"depth": tasks["depth"]}, 2, torch.no_grad)}
    for name in tasks:
        assert scores[name] == alone[name], name


def test_a_job_trains_on_a_union_and_its_mask_is_the_sources():
    from conftest import TINY_JOB
    from mtlbench.train import run_job
    import copy
    import tempfile
    from pathlib import Path

    job = copy.deepcopy(TINY_JOB)
    job.update(dataset={"name": "union", "parts": PARTS, **SIZE}, tasks=["seg", "depth"],
               scenario={"name": "full", "unlabeled": 0.0, "unlabeled_per_batch": 0, "mask_seed": 0})
    job["train"]["epochs"] = 1
    with tempfile.TemporaryDirectory() as folder:
        result = run_job(job, Path(folder))
        mask = np.load(Path(folder) / "mask.npy")
    assert mask.tolist() == [[1, 0]] * 6 + [[0, 1]] * 10
    assert set(result["test"]) == {"seg", "depth"}


def test_parts_that_disagree_or_lack_a_task_are_refused_by_name():
    with pytest.raises(DatasetError, match=r"parts\[1\] \(synthrooms\) has no task 'nothing'"):
        union([PARTS[0], {**PARTS[1], "tasks": ["nothing"]}]).tasks()
    with pytest.raises(ValueError, match="at least two parts"):
        DATASETS.get("union")(parts=[PARTS[0]])
