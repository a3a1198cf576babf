"""Evaluation over a whole split: metrics accumulate on the device, one host sync per task at the end.

Besides its metrics, every task reports ``loss``: its training loss (``Task.loss_per_image``) averaged over the
split's images, the score Standley et al. 2020 selects networks by."""
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
    loss_sums = {name: torch.zeros((), dtype=torch.float64, device=split.images.device) for name in tasks}
    finite = {name: torch.ones((), dtype=torch.bool, device=split.images.device) for name in tasks}
    for index in torch.arange(len(split), device=split.images.device).split(batch_size):
        images, targets = split.batch(index, tasks)
        with autocast():
            preds = model(images)
        for name, meter in meters.items():
            pred = preds[name].float()
            ok = torch.isfinite(pred)
            finite[name] &= ok.all()
            pred = torch.where(ok, pred, 0.0)  # the metrics stay computable; the job fails below, naming the task
            meter.update(pred, targets[name])
            loss_sums[name] += tasks[name].loss_per_image(pred, targets[name]).double().sum()
    model.train(was_training)
    diverged = [name for name, flag in finite.items() if not flag]
    if diverged:
        raise FloatingPointError(f"evaluation: the predictions of {', '.join(diverged)} are NaN or infinite (the "
                                 f"network diverged); no metric of them is recorded")
    return {name: {**meter.compute(), "loss": loss_sums[name].item() / len(split)} for name, meter in meters.items()}
