"""One job on several devices (``train.devices: N``): data parallelism written out with torch.distributed.

Each of the N ranks (processes) holds a full copy of the network and takes every N-th image of each global batch
(``Shard``); the label mask of the global batch is known to every rank, so the supervision's choices (STA's
allocations, which tasks are present) are the same everywhere. A step equals the single-process step on the
global batch (tests/test_distributed.py: two gloo processes):

- every task's per-image losses are gathered into one vector in the global batch's order (``gather_rows``), so the
  task losses, the weighting's terms and every value a part reads are the global ones, identical on all ranks;
- the gradient of a parameter reached through the images (the network, a regularizer's networks) is partial on
  each rank and summed across them (``sum_gradients``); a gradient rule that combines per-task gradients sums
  each task's first (``all_sum``), then combines identically everywhere; the weighting's and gradient rule's own
  parameters see only global values, so their gradients are already whole;
- BatchNorm normalises with the global batch's statistics (``GlobalBatchNorm``): torch's SyncBatchNorm refuses
  CPU tensors, and the equality above needs them on gloo.

DistributedDataParallel's wrapper is not used: its reducer hooks fire on ``backward()`` only, and the gradient
rules take per-task gradients with ``torch.autograd.grad``. Parts that cannot run so declare it
(``distributed = False``) and a job asking for several devices with them is refused, naming the part and why.
Only torch is needed here.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Iterable

import torch
import torch.distributed as dist
from torch import Tensor, nn


def world() -> int:
    """How many ranks train this job (1 without torch.distributed)."""
    return dist.get_world_size() if dist.is_available() and dist.is_initialized() else 1


def rank() -> int:
    return dist.get_rank() if world() > 1 else 0


@dataclass(frozen=True)
class Shard:
    """This rank's images of a global batch of ``size``: rows rank, rank + N, ... (every rank's share differs by
    at most one image, and a batch's order is the same as single-process training's)."""

    size: int
    rows: Tensor  # CPU long

    @classmethod
    def of(cls, size: int) -> Shard:
        return cls(size, torch.arange(rank(), size, world()))

    def draws(self, values: Tensor) -> Tensor:
        """This rank's rows of random draws made for the whole batch (the generator advances as in one process)."""
        return values[self.rows.to(values.device)]


def shard(size: int) -> Shard | None:
    """The rank's shard of a global batch, None when one process trains."""
    return Shard.of(size) if world() > 1 else None


def all_sum(tensor: Tensor) -> Tensor:
    """``tensor`` summed over the ranks (in place; unchanged in one process)."""
    if world() > 1:
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def summed_over_ranks(tensor: Tensor) -> Tensor:
    """``tensor`` summed over the ranks, as a new tensor (``tensor`` itself in one process)."""
    return all_sum(tensor.clone()) if world() > 1 else tensor


class _SumOverRanks(torch.autograd.Function):
    """``tensor`` summed over the ranks, differentiably: the gradient of each rank's summand is the sum of the ranks'
    incoming gradients (each rank's loss depends on the sum)."""

    @staticmethod
    def forward(ctx: Any, tensor: Tensor) -> Tensor:
        return all_sum(tensor.clone())

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> Tensor:
        return all_sum(grad.clone())


class _GatherRows(torch.autograd.Function):
    """Every rank's rows concatenated in rank order. Backward keeps this rank's slice of the incoming gradient:
    every rank computes the same function of the gathered rows, so that slice is the whole gradient of its rows."""

    @staticmethod
    def forward(ctx: Any, local: Tensor, counts: list[int]) -> Tensor:
        ctx.start = sum(counts[:rank()])
        ctx.count = counts[rank()]
        longest = max(counts)
        padded = local.new_zeros((longest, *local.shape[1:]))
        padded[:len(local)] = local
        parts = [torch.empty_like(padded) for _ in counts]
        dist.all_gather(parts, padded.contiguous())
        return torch.cat([part[:count] for part, count in zip(parts, counts)])

    @staticmethod
    def backward(ctx: Any, grad: Tensor) -> tuple[Tensor, None]:
        return grad[ctx.start:ctx.start + ctx.count], None


def own_rows(positions: Tensor) -> Tensor:
    """Of a global batch's ``positions`` (ascending, CPU), this rank's, as rows of its shard."""
    return positions if world() == 1 else positions[positions % world() == rank()] // world()


def gather_rows(local: Tensor, positions: Tensor) -> Tensor:
    """The values of a global batch's ``positions`` (ascending, CPU), in that order, from each rank's values of its
    ``own_rows``."""
    owners = positions % world()
    counts = torch.bincount(owners, minlength=world()).tolist()
    gathered = _GatherRows.apply(local, counts)
    order = torch.argsort(torch.cat([positions[owners == r] for r in range(world())]))
    return gathered[order.to(gathered.device)]


def sum_gradients(parameters: Iterable[nn.Parameter]) -> None:
    """Each parameter's gradient summed over the ranks, in one all-reduce; a parameter no rank has a gradient for
    keeps none (a task absent from the global batch gets no update, not a zero one Adam would turn into a step)."""
    if world() == 1:
        return
    parameters = list(parameters)
    if not parameters:
        return
    has = torch.tensor([p.grad is not None for p in parameters], dtype=torch.float32,
                       device=parameters[0].device)  # NCCL reduces device tensors only
    dist.all_reduce(has, op=dist.ReduceOp.MAX)
    summed = [p for p, present in zip(parameters, has.tolist()) if present]
    if not summed:
        return
    flat = torch.cat([(p.grad if p.grad is not None else torch.zeros_like(p)).flatten() for p in summed])
    dist.all_reduce(flat, op=dist.ReduceOp.SUM)
    offset = 0
    for p in summed:
        p.grad = flat[offset:offset + p.numel()].view_as(p).clone()
        offset += p.numel()


def broadcast_state(*modules: nn.Module) -> None:
    """Rank 0's parameters and buffers on every rank (what a track initialised, or a checkpoint restored)."""
    if world() == 1:
        return
    for module in modules:
        for tensor in [*module.parameters(), *module.buffers()]:
            dist.broadcast(tensor.data, 0)


def gather_objects(value: Any) -> list[Any]:
    """Every rank's ``value`` (picklable, its tensors on the CPU), in rank order, on every rank."""
    if world() == 1:
        return [value]
    values: list[Any] = [None] * world()
    dist.all_gather_object(values, value)
    return values


class GlobalBatchNorm(nn.BatchNorm2d):
    """BatchNorm2d whose training statistics are those of the global batch: each rank's sum and sum of squared
    deviations are summed over the ranks differentiably, so the gradient also flows through the other ranks' images
    as in one process. The running statistics are updated as BatchNorm2d
    does (unbiased variance). In one process, or in evaluation, it is BatchNorm2d."""

    def forward(self, x: Tensor) -> Tensor:
        if world() == 1 or not self.training:
            return super().forward(x)
        dims, values = (0, 2, 3), x.float()  # statistics in float32, as BatchNorm keeps them under autocast
        count = all_sum(torch.tensor(float(x.shape[0] * x.shape[2] * x.shape[3]), device=x.device))
        mean = _SumOverRanks.apply(values.sum(dims)) / count
        centred = values - mean.view(1, -1, 1, 1)
        var = _SumOverRanks.apply(centred.pow(2).sum(dims)) / count
        if self.track_running_stats:
            self.update_running_stats(mean.detach(), var.detach() * count / (count - 1).clamp_min(1))
        normalised = centred / torch.sqrt(var.view(1, -1, 1, 1) + self.eps)
        if self.affine:
            normalised = normalised * self.weight.view(1, -1, 1, 1) + self.bias.view(1, -1, 1, 1)
        return normalised.to(x.dtype)

    @torch.no_grad()
    def update_running_stats(self, mean: Tensor, var: Tensor) -> None:
        self.num_batches_tracked += 1
        factor = self.momentum if self.momentum is not None else 1.0 / float(self.num_batches_tracked)
        self.running_mean.mul_(1 - factor).add_(factor * mean)
        self.running_var.mul_(1 - factor).add_(factor * var)


def with_global_batchnorm(model: nn.Module) -> nn.Module:
    """``model`` with every BatchNorm2d swapped for a ``GlobalBatchNorm`` holding its state (same state-dict keys,
    so checkpoints are interchangeable)."""
    for name, child in model.named_children():
        if type(child) is nn.BatchNorm2d:
            swapped = GlobalBatchNorm(child.num_features, child.eps, child.momentum, child.affine,
                                      child.track_running_stats, device=child.weight.device if child.affine else None)
            swapped.load_state_dict(child.state_dict())
            setattr(model, name, swapped)
        else:
            with_global_batchnorm(child)
    return model
