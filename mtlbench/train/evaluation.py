"""Evaluation over a whole split: metrics accumulate on the device, one host sync per task at the end."""
from __future__ import annotations

from contextlib import AbstractContextManager
from typing import Callable

import torch
from torch import nn

from ..data import Split
from ..tasks import Task


@torch.inference_mode()
def evaluate(model: nn.Module, split: Split, tasks: dict[str, Task], batch_size: int,
             autocast: Callable[[], AbstractContextManager]) -> dict[str, dict[str, float]]:
    was_training = model.training
    model.eval()
    meters = {name: task.meter() for name, task in tasks.items()}
    for index in torch.arange(len(split), device=split.images.device).split(batch_size):
        images, targets = split.batch(index, tasks)
        with autocast():
            preds = model(images)
        for name, meter in meters.items():
            meter.update(preds[name].float(), targets[name])
    model.train(was_training)
    return {name: meter.compute() for name, meter in meters.items()}
