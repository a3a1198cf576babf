"""A job's measured costs (result.json ``costs``): FLOPs of a training step with the method's own work, the
networks' and the method's parameters, per-epoch times, peak memory."""
import json
import sys

import numpy as np
import pytest
import torch
from torch import nn

from mtlbench.cli import main
from mtlbench.config import load_suite
from mtlbench.data import DATASETS
from mtlbench.models.costs import networks_cost
from mtlbench.registry import build
from mtlbench.train.costs import PeakMemory, counted_flops


def test_a_linear_steps_flops_are_its_forward_and_its_two_backward_products():
    """Known answer: y = x W^T for x [5, 8], W [4, 8] is 2*5*8*4 FLOPs forward; backward computes dL/dx and dL/dW,
    one product of the same size each."""
    layer = nn.Linear(8, 4, bias=False)
    x = torch.randn(5, 8, requires_grad=True)
    _, flops = counted_flops(lambda: layer(x).sum().backward())
    assert flops == 3 * 2 * 5 * 8 * 4


def test_a_recipe_steps_count_is_torchs_flop_counter_modes():
    """The lean count sums the same formulas as torch's FlopCounterMode, here over a whole MTPSL step (extra
    views, its mapping network, Adam)."""
    from torch.utils.flop_counter import FlopCounterMode

    from mtlbench.data.synthrooms import SynthRooms
    from mtlbench.methods import METHODS, Recipe
    from mtlbench.models.segnet import SegNet

    data = SynthRooms(height=32, width=64, train=4, val=1, test=1)
    tasks = {k: v for k, v in data.tasks().items() if k in ("seg", "depth")}
    images, targets = data.load("train").select(list(tasks)).batch(torch.arange(4), tasks)

    def step():
        torch.manual_seed(0)
        recipe = Recipe(METHODS.get("mtpsl"), tasks, SegNet(tasks, 0.0625))
        recipe.train_batches(torch.optim.Adam(recipe.parameters(), 1e-3), [(images, targets, torch.ones(4, 2))])

    with FlopCounterMode(display=False) as counter:
        step()
    assert counted_flops(step)[1] == counter.get_total_flops() > 0


def test_counting_a_step_changes_no_number():
    def trained(count: bool) -> list[torch.Tensor]:
        torch.manual_seed(0)
        net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.ReLU(), nn.Flatten(), nn.Linear(4 * 6 * 6, 2))
        optimizer = torch.optim.Adam(net.parameters(), 1e-2)
        images = torch.randn(4, 3, 8, 8)

        def step():
            optimizer.zero_grad()
            net(images).square().mean().backward()
            optimizer.step()

        counted_flops(step) if count else step()
        step()
        return [p.detach().clone() for p in net.parameters()]

    assert all(torch.equal(a, b) for a, b in zip(trained(True), trained(False)))


@pytest.mark.skipif(not sys.platform.startswith("linux"), reason="VmHWM is Linux's")
def test_the_peak_resident_memory_starts_again_where_a_job_starts():
    memory = PeakMemory(torch.device("cpu"))
    big = np.ones(2 ** 27 // 8)  # 128 MiB, touched
    del big
    high = memory.peak()
    memory.reset()
    assert memory.peak() < high - 100 * 2 ** 20


def test_every_result_records_what_its_job_cost(write_suite, tmp_path):
    path = write_suite({"methods": ["stl", "supervised", "pcgrad", "jtr", "auto_lambda"], "scenarios": ["full"],
                        "train": {"epochs": 1, "batch_size": 8, "eval_batch_size": 8, "device": "cpu"}})
    assert main(["run", str(path), "--results", str(tmp_path / "r"), "--wandb", "disabled"]) == 0
    costs, forward = {}, {}
    for job in load_suite(path).jobs:
        result = json.loads((tmp_path / "r" / "tiny" / job.id / "result.json").read_text())
        costs[job.method] = result["costs"]
        config = job.config
        tasks = {t: build(DATASETS, config["dataset"]).tasks()[t] for t in config["tasks"]}
        forward[job.method] = networks_cost(config["model"], tasks, config["dataset"]["height"],
                                            config["dataset"]["width"], config["method"]["networks"])
        assert costs[job.method]["epoch_seconds"] == pytest.approx(result["train_seconds"])  # one epoch
        assert costs[job.method]["samples_per_second"] > 0 and costs[job.method]["peak_memory_bytes"] > 2 ** 20
    for method in costs:  # the networks' parameters, one network per task for STL
        assert costs[method]["parameters"] == forward[method].parameters
    batch_forward = 2 * forward["supervised"].macs * 8
    assert 2.5 < costs["supervised"]["step_flops"] / batch_forward < 3.2  # a forward and a backward
    assert costs["pcgrad"]["step_flops"] > 1.5 * costs["supervised"]["step_flops"]  # a backward per task
    assert costs["jtr"]["method_parameters"] > 0 == costs["supervised"]["method_parameters"]
    assert costs["jtr"]["step_flops"] > costs["supervised"]["step_flops"]  # its auto-encoder's passes
    # a step with Auto-λ's meta update (its virtual step, a forward and backward on another batch): not the first
    assert costs["auto_lambda"]["step_flops"] > 2 * costs["supervised"]["step_flops"]
