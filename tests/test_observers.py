"""Step observers (``train.observe``): the gradient cosine of Li et al. 2022a Figs. 1-2, measured at every update
without changing one."""
import copy
import json
from types import SimpleNamespace

import pytest
import torch
import yaml

from mtlbench.cli import main
from mtlbench.config import SuiteError, load_suite
from mtlbench.methods import METHODS
from mtlbench.methods.gradients import flat_gradients
from mtlbench.methods.recipe import Recipe
from mtlbench.models import SegNet
from mtlbench.data.synthrooms import SynthRooms
from mtlbench.train.observers import GradientCosine
from conftest import TINY_SUITE


def suite_file(tmp_path, observe, name):
    suite = {**copy.deepcopy(TINY_SUITE), "name": name, "scenarios": ["full"], "methods": ["supervised", "sta"]}
    suite["train"] = {**suite["train"], "observe": observe}
    path = tmp_path / f"{name}.yaml"
    path.write_text(yaml.safe_dump(suite))
    return path


def results_of(root, suite):
    return {json.loads(p.read_text())["method"]: json.loads(p.read_text()) for p in (root / suite).glob("*/result.json")}


def test_the_cosine_observer_records_every_update_and_changes_no_weight(tmp_path):
    root = tmp_path / "results"
    for observe, name in (([], "plain"), (["gradient_cosine"], "observed")):
        assert main(["run", str(suite_file(tmp_path, observe, name)), "--results", str(root), "--wandb",
                     "disabled"]) == 0
    plain, observed = results_of(root, "plain"), results_of(root, "observed")
    for method in ("supervised", "sta"):
        assert observed[method]["test"] == plain[method]["test"]  # bit-identical training
        (report,) = observed[method]["observed"]
        assert report["pairs"] == ["seg|depth", "seg|normal", "depth|normal"]
        values = [v for row in report["cosines"] for v in row if v is not None]
        assert values and all(-1 - 1e-9 <= v <= 1 + 1e-9 for v in values)
        assert all("cos/seg|depth" in record for record in observed[method]["history"])
        assert "observed" not in plain[method]
        assert report["steps"] == list(range(1, 7))  # 24 images in batches of 8, 2 epochs: one record per update
    out = tmp_path / "board" / "observed"
    assert main(["leaderboard", "observed", "--results", str(root), "--out", str(out)]) == 0
    assert out.with_name("observed-cosine.png").exists() and out.with_name("observed-angles.png").exists()


def test_without_observers_a_job_keeps_its_id(tmp_path):
    plain = load_suite(suite_file(tmp_path, [], "plain"))
    observed = load_suite(suite_file(tmp_path, ["gradient_cosine"], "observed"))
    assert "observe" not in json.dumps([job.config["train"] for job in plain.jobs]) or all(
        job.config["train"]["observe"] == [] for job in plain.jobs)
    assert {job.id for job in plain.jobs}.isdisjoint(job.id for job in observed.jobs)
    with pytest.raises(SuiteError, match=r"train.observe: unknown observer nope. Valid observers: gradient_cosine"):
        load_suite(suite_file(tmp_path, ["nope"], "bad"))


def test_the_recorded_cosine_is_that_of_the_task_terms_gradients_on_the_shared_parameters():
    torch.manual_seed(0)
    tasks = {k: v for k, v in SynthRooms().tasks().items() if k in ("seg", "depth")}
    model = SegNet(tasks, 0.0625)
    recipe = Recipe(METHODS.get("supervised"), tasks, model)
    seen = SimpleNamespace(model=model, recipe=recipe, stage=SimpleNamespace(tasks=tasks))
    observer = GradientCosine(seen)
    split = SynthRooms(height=32, width=64, train=2, val=1, test=1).load("train").select(list(tasks))
    images, targets = split.batch(torch.arange(2), tasks)
    recipe.train_step(torch.optim.SGD(model.parameters(), lr=0.0), images, targets, torch.ones(2, 2))
    observer.after_step(1)
    preds = model(images)  # lr 0 and batch statistics as in the step: the same gradients again
    shared = [p for p in model.shared_parameters() if p.requires_grad]
    g = [flat_gradients(tasks[t].loss_per_image(preds[t], targets[t]).mean(), shared) for t in tasks]
    expected = float(g[0] @ g[1] / (g[0].norm() * g[1].norm()))
    assert observer.report()["cosines"] == [[pytest.approx(expected, abs=1e-5)]]


def test_peak_memory_is_recorded_per_epoch_and_in_the_result(tmp_path):
    root = tmp_path / "results"
    assert main(["run", str(suite_file(tmp_path, ["peak_memory", "gradient_cosine"], "memory")), "--results",
                 str(root), "--wandb", "disabled"]) == 0
    result = results_of(root, "memory")["supervised"]
    memory, cosine = result["observed"]
    assert memory["observer"] == "peak_memory" and memory["measured"] == result["costs"]["memory_measured"]
    assert memory["peak_bytes"] > 50 * 2 ** 20  # a Python process with torch holds far more than 50 MB
    assert memory["peak_bytes"] <= result["costs"]["peak_memory_bytes"]  # the same measure, read at the job's end
    peaks = [record["memory/peak_mb"] for record in result["history"]]
    assert peaks == sorted(peaks) and peaks[-1] == memory["peak_bytes"] / 2 ** 20
    assert cosine["observer"] == "gradient_cosine"  # observers report in the order the suite names them
