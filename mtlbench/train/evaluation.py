"""Evaluation over a whole split: metrics accumulate on the device, one host sync per task at the end.

On several devices (``train.devices``) each rank scores every N-th batch and the ranks' meters, loss sums and
finiteness flags are merged in rank order on every rank (``Meter.merge``): every rank holds the whole split's
metrics, as one process computes them up to the order of summation.

Besides its metrics, every task reports ``loss``: its training loss (``Task.loss_per_image``, or the model's own
for a model that computes it) averaged over the split's images labelled for the task, the score Standley et al.
2020 selects networks by; left out where only a model could compute it and the predictor has none (the constant
reference of an instance task).

``constant_reference`` scores the model that predicts each task's training mean whatever the image (the majority
class for segmentation): a network that does no better has learnt nothing the leaderboard should rank.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..data import Split
from ..distributed import gather_objects, rank, world
from ..models.protocol import computes_losses
from ..tasks import Meter, Task, mergeable


@torch.inference_mode()
def evaluate(model: nn.Module, split: Split, tasks: dict[str, Task], batch_size: int,
             autocast: Callable[[], AbstractContextManager]) -> dict[str, dict[str, float]]:
    was_training = model.training
    model.eval()
    meters = {name: task.meter() for name, task in tasks.items()}
    loss_sums = {name: torch.zeros((), dtype=torch.float64, device=split.device) for name in tasks}
    finite = {name: torch.ones((), dtype=torch.bool, device=split.device) for name in tasks}
    scored: set[str] = set()  # the tasks whose loss the predictor defines
    for index in torch.arange(len(split), device=split.device).split(batch_size)[rank()::world()]:
        images, targets = split.batch(index, tasks)
        with autocast():
            preds = model(images)
        keep = {name: split.labelled[name][index] for name in tasks if name in split.labelled}
        for name, meter in meters.items():
            pred = preds[name].float()
            ok = torch.isfinite(pred)
            finite[name] &= ok.all()
            pred = torch.where(ok, pred, 0.0)  # the metrics stay computable; the job fails below, naming the task
            meter.update(*labelled_only(keep.get(name), pred, targets[name]))
        for name, loss in losses_per_image(model, images, targets, preds, tasks).items():
            loss_sums[name] += labelled_only(keep.get(name), loss)[0].double().sum()
            scored.add(name)
    model.train(was_training)
    if world() > 1:
        meters, loss_sums, finite, scored = merge_shards(meters, loss_sums, finite, scored)
    diverged = [name for name, flag in finite.items() if not flag]
    if diverged:
        raise FloatingPointError(f"evaluation: the predictions of {', '.join(diverged)} are NaN or infinite (the "
                                 f"network diverged); no metric of them is recorded")
    counts = {name: int(split.labelled[name].sum()) if name in split.labelled else len(split) for name in tasks}
    losses = {name: {"loss": loss_sums[name].item() / counts[name]} for name in scored if counts[name]}
    return {name: {**meter.compute(), **losses.get(name, {})} for name, meter in meters.items()}


def merge_shards(meters: dict[str, Meter], loss_sums: dict[str, Tensor], finite: dict[str, Tensor],
                 scored: set[str]) -> tuple[dict[str, Meter], dict[str, Tensor], dict[str, Tensor], set[str]]:
    """The ranks' accumulations over their batches, merged in rank order: the same whole on every rank."""
    mine = ({name: on_host(meter) for name, meter in meters.items()}, on_host(loss_sums), on_host(finite), scored)
    (meters, loss_sums, finite, scored), *others = gather_objects(mine)
    for other_meters, other_sums, other_finite, other_scored in others:
        for name, meter in meters.items():
            meter.merge(other_meters[name])
        loss_sums = {name: total + other_sums[name] for name, total in loss_sums.items()}
        finite = {name: flag & other_finite[name] for name, flag in finite.items()}
        scored = scored | other_scored
    return meters, loss_sums, finite, scored


def on_host(value: Any) -> Any:
    """``value`` with its tensors on the CPU (a meter's accumulations, moved in place): what a rank sends the
    others, whatever device it scored on."""
    if isinstance(value, (Tensor, nn.Module)):
        return value.cpu()
    if isinstance(value, dict):
        return {key: on_host(item) for key, item in value.items()}
    if isinstance(value, Meter):
        for key, item in vars(value).items():
            setattr(value, key, on_host(item))
    return value


def unmergeable(tasks: dict[str, Task]) -> list[str]:
    """The tasks whose meter cannot merge shards (a plugin's task type without ``Meter.merge``)."""
    return [name for name, task in tasks.items() if not mergeable(task.meter())]


def labelled_only(keep: Tensor | None, *values: Tensor) -> tuple[Tensor, ...]:
    """The rows of ``values`` that ``keep`` marks (all of them without a mark): a task is scored on the images
    labelled for it (in a dataset assembled from sources, its source's test images)."""
    return values if keep is None else tuple(v[keep] for v in values)


def losses_per_image(model: nn.Module, images: Tensor, targets: dict[str, Tensor], preds: dict[str, Tensor],
                     tasks: dict[str, Task]) -> dict[str, Tensor]:
    """Each task's loss per image: the task's on the predictions, or the model's own (a two-stage detector's, whose
    proposal sampling draws from a generator of its own here, so that evaluating does not move the training's
    random stream and scores the same whenever it runs)."""
    if not computes_losses(model):  # e.g. the constant model: no loss of its own
        return {name: task.loss_per_image(preds[name].float(), targets[name])
                for name, task in tasks.items() if not task.loss_from_model}
    devices = [images.device] if images.device.type == "cuda" else []
    with torch.random.fork_rng(devices=devices):
        torch.manual_seed(0)
        every = torch.arange(len(images), device=images.device)
        return model.losses_per_image(images, targets, {name: every for name in tasks})


class ConstantModel(nn.Module):
    """Predicts each task's constant (``Task.constant``) for every image, at the image's size."""

    def __init__(self, constants: dict[str, Tensor], tasks: dict[str, Task]) -> None:
        super().__init__()
        self.constants, self.tasks = constants, tasks

    def forward(self, images: Tensor) -> dict[str, Tensor]:
        b, _, h, w = images.shape
        return {name: self.tasks[name].constant_prediction(c, b, h, w) for name, c in self.constants.items()}


@torch.inference_mode()
def fit_constants(split: Split, tasks: dict[str, Task], mask: Tensor, batch_size: int) -> dict[str, Tensor]:
    """Each task's constant, fitted to the targets of the training images labelled for it (``mask`` [N, T]);
    a task with no labelled image has none."""
    constants = {}
    for j, (name, task) in enumerate(tasks.items()):
        rows = mask[:, j].nonzero().squeeze(1).to(split.device)
        sums = counts = 0
        for index in rows.split(batch_size):
            batch_sums, batch_counts = task.target_sums(task.prepare(split.stored_targets(name, index)))
            sums, counts = sums + batch_sums, counts + batch_counts
        if len(rows):
            constants[name] = task.constant(sums, counts)
    return constants


def constant_reference(train: Split, test: Split, tasks: dict[str, Task], mask: Tensor,
                       batch_size: int) -> dict[str, dict[str, float]]:
    """The test metrics of the constant model fitted to the labelled training targets."""
    constants = fit_constants(train, tasks, mask, batch_size)
    scored = {name: task for name, task in tasks.items() if name in constants}
    return evaluate(ConstantModel(constants, scored), test.select(list(scored)), scored, batch_size, nullcontext)
