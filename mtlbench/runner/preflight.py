"""What a suite needs of this machine, checked before a local run or tuning starts anything.

Loading a suite checks what holds on any machine (a device torch can name, a model that can be built, label
masks that fit the data); this checks what depends on the machine that will train: each device the jobs name
exists here (``cuda`` on a machine without CUDA, ``cuda:3`` with two GPUs), and each model's weights, gradients
and optimiser state fit the device's memory (a lower bound: activations come on top), so that a model too wide
for the machine is refused in a second instead of being killed by the kernel while it trains. A SLURM run is not
checked here: its jobs train on other machines.
"""
from __future__ import annotations

import functools
import json
import os
from typing import Any

from ..config import Suite, SuiteError
from ..data import DATASETS
from ..models import parameter_count
from ..registry import build
from ..train.optim import OPTIMIZERS

FP32 = 4  # bytes per parameter of each tensor the training keeps


def check_machine(suite: Suite, device: str | None = None) -> None:
    """SuiteError (the suite file, the field, the fix) if a job's device is missing here or its model cannot fit
    it; ``device`` overrides the jobs' ``train.device`` (the runner's ``--workers`` devices)."""
    import torch

    for job in suite.jobs:
        target = resolve(device or job.config["train"]["device"], suite)
        states = build(OPTIMIZERS, job.config["train"]["optimizer"]).states
        need = parameters(job.config) * FP32 * (2 + states)
        available = memory(torch.device(target))
        if need > available:
            raise SuiteError(f"{suite.path}: model: {job.config['model']} needs at least {need / 2**30:.1f} GiB to "
                             f"train (fp32 weights, gradients and optimiser state, before any activation), more "
                             f"than the {available / 2**30:.1f} GiB of {target} here; make the model smaller (e.g. "
                             f"model.width) or run where there is more memory")


def resolve(name: str, suite: Suite) -> str:
    """The device a job's ``train.device`` names on this machine; SuiteError if it has none such."""
    import torch

    if name == "auto":
        return "cuda" if torch.cuda.is_available() else "cpu"
    device = torch.device(name)
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if count == 0:
            raise SuiteError(f"{suite.path}: train.device: {name!r}, but this machine has no CUDA device (torch "
                             f"{torch.__version__} sees none); use auto or cpu here, or --executor slurm for GPU nodes")
        if device.index is not None and device.index >= count:
            raise SuiteError(f"{suite.path}: train.device: {name!r}, but this machine has {count} CUDA device(s) "
                             f"(cuda:0 to cuda:{count - 1})")
    elif device.type != "cpu":
        backend = getattr(torch.backends, device.type, None) or getattr(torch, device.type, None)
        if backend is None or not backend.is_available():
            raise SuiteError(f"{suite.path}: train.device: {name!r}, but torch has no {device.type} device on this "
                             f"machine; use auto or cpu")
    return str(device)


@functools.lru_cache(maxsize=None)
def counted(model: str, tasks: str, dataset: str) -> int:
    available = build(DATASETS, json.loads(dataset)).tasks()
    return parameter_count(json.loads(model), {t: available[t] for t in json.loads(tasks)})


def parameters(config: dict[str, Any]) -> int:
    """The parameter count of a job's model (once per model, tasks and dataset)."""
    return counted(*(json.dumps(config[key], sort_keys=True) for key in ("model", "tasks", "dataset")))


def memory(device: Any) -> int:
    """Bytes of memory a device has: a GPU's total, or the machine's physical memory for the CPU."""
    import torch

    if device.type == "cuda":
        return torch.cuda.get_device_properties(device.index or 0).total_memory
    if device.type == "cpu":
        return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    return 2**62  # a backend that does not tell: not refused here


__all__ = ["check_machine"]
