"""A model's measured cost: its parameters and the multiply-accumulates (MACs) of one image's forward pass,
counted by ``torch.utils.flop_counter`` on torch's meta device (nothing is allocated or computed, so a ResNet-50
at 480x640 is counted in about a second). Yun and Cho 2023 Table 2 prints GMACs per model; the FLOP counter counts
a multiply-add as 2 FLOPs, so MACs are its count halved. Interpolations, poolings and activations count nothing
(as in the counter), convolutions, linear layers and matrix products everything."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..registry import build
from ..tasks import Task
from .registry import MODELS


@dataclass(frozen=True)
class ModelCost:
    parameters: int
    macs: int  # one image's forward pass in evaluation mode

    @property
    def gmacs(self) -> float:
        return self.macs / 1e9


def model_cost(spec: dict[str, Any], tasks: dict[str, Task], height: int, width: int) -> ModelCost:
    """The cost of the model ``spec`` builds for ``tasks`` at ``height`` x ``width`` (its weights file, which
    changes no cost, is not read)."""
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    spec = {key: value for key, value in spec.items() if key != "weights"}
    with torch.device("meta"):
        net = build(MODELS, spec).build(tasks).eval()
        image = torch.zeros(1, 3, height, width)
    with FlopCounterMode(display=False) as counter, torch.no_grad():
        net(image)
    return ModelCost(sum(p.numel() for p in net.parameters()), counter.get_total_flops() // 2)


def networks_cost(spec: dict[str, Any], tasks: dict[str, Task], height: int, width: int,
                  networks: str) -> ModelCost:
    """A method's networks: one shared model, or (``per_task``, STL) one model per task, summed."""
    if networks == "shared":
        return model_cost(spec, tasks, height, width)
    costs = [model_cost(spec, {name: task}, height, width) for name, task in tasks.items()]
    return ModelCost(sum(c.parameters for c in costs), sum(c.macs for c in costs))


def image_size(dataset: dict[str, Any], size: tuple[int, int] | None) -> tuple[int, int]:
    """``size``, else the dataset's own setting, else its standard size (``mtlbench bench``'s shapes)."""
    from ..bench import SHAPES
    from ..errors import UserError

    if size:
        return tuple(size)
    if "height" in dataset and "width" in dataset:
        return dataset["height"], dataset["width"]
    if dataset["name"] in SHAPES:
        return SHAPES[dataset["name"]]
    raise UserError(f"dataset {dataset['name']}: its image size is not a setting; give --size HEIGHT WIDTH")


def costs_table(suite: Any, size: tuple[int, int] | None = None) -> str:
    """A Markdown table of the suite's model per dataset and kind of networks its methods train."""
    import json

    from ..data import DATASETS

    rows = ["| dataset | size | model | networks | parameters (M) | GMACs per image |", "|---|---|---|---|---|---|"]
    configs = {json.dumps([job.config["dataset"], job.config["model"], job.config["method"]["networks"]],
                          sort_keys=True): job.config for job in suite.jobs if "method" in job.config}
    for config in configs.values():
        height, width = image_size(config["dataset"], size)
        available = build(DATASETS, config["dataset"]).tasks()
        tasks = {t: available[t] for t in config["tasks"]}
        networks = config["method"]["networks"]
        cost = networks_cost(config["model"], tasks, height, width, networks)
        rows.append(f"| {config['dataset']['name']} | {height}x{width} | {config['model']['name']} | {networks} | "
                    f"{cost.parameters / 1e6:.2f} | {cost.gmacs:.1f} |")
    return "\n".join(rows)


__all__ = ["ModelCost", "costs_table", "model_cost", "networks_cost"]
