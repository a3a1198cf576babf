"""The recipe's supervision axis: Li et al. 2022a's task allocation, STA (Alg. 1), ISTA (Alg. 2), the STA-gap
interpolation (Table 7) and FT+ (Table 5). (mtlbench calls the axis "supervision": which (image, task) pairs
supervise a step; "allocation" is kept for the label-budget allocators of Sun et al. 2023.)

The papers' datasets are fully labelled; in mtlbench an image may be labelled for only some tasks, so both
allocators draw from an image's *labelled* tasks. Task losses are means over the images allocated to each
task, scaled by 1/T so that the uniform weighting gives Alg. 1 line 10, L_MTL = (1/T) Σ_t λ_t l_t.
Random choices use torch's global generator, which the trainer seeds and checkpoints.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import Tensor

from .parts import SUPERVISIONS, Supervision


def allocate(available: Tensor, k: int) -> Tensor:
    """Per row, k of the available (1) entries uniformly at random (all of them where fewer are left)."""
    scores = torch.rand(available.shape).masked_fill(available == 0, -1.0)
    ranks = scores.argsort(1, descending=True).argsort(1)
    return ((ranks < k) & (available > 0)).to(available.dtype)


class MeanOverAllocated(Supervision):
    """Task losses of Li et al. 2022a: l_t, the mean loss over the images allocated to t, with the 1/T of Alg. 1
    line 10 folded in."""

    def task_losses(self, per_image: dict[str, Tensor], rows: dict[str, Tensor], mask: Tensor) -> dict[str, Tensor]:
        return {t: loss.mean() / mask.shape[1] for t, loss in per_image.items()}


@SUPERVISIONS.register("sta")
@dataclass(frozen=True)
class STA(MeanOverAllocated):
    """Stochastic Task Allocation (Li et al. 2022a Alg. 1): each step, every image supervises a random subset of
    ``k`` of its labelled tasks (k = 1 in most of the paper's experiments)."""

    k: int = 1

    def steps(self, mask: Tensor) -> list[Tensor]:
        return [allocate(mask, self.k)]


@SUPERVISIONS.register("ista")
@dataclass(frozen=True)
class ISTA(MeanOverAllocated):
    """Interleaved STA (Li et al. 2022a Alg. 2): sub-iterations over the same batch, each a parameter update,
    allocating ``k`` of each image's remaining labelled tasks, until every labelled (image, task) pair of
    the batch has been used exactly once."""

    k: int = 1

    def steps(self, mask: Tensor) -> list[Tensor]:
        remaining, steps = mask.clone(), []
        while remaining.any():
            chosen = allocate(remaining, self.k)
            steps.append(chosen)
            remaining = remaining - chosen
        return steps


@SUPERVISIONS.register("sta_gap")
@dataclass(frozen=True)
class STAGap(ISTA):
    """The interpolation between STA and ISTA of Li et al. 2022a Table 7: a batch trained at step t with one
    allocation is trained again at step t + ``gap`` with another, ``gap`` batches taking turns. The gap is
    exact when every batch needs as many sub-steps (the paper's fully labelled data); with partial labels a
    batch that needs fewer drops out of the later turns, shortening the others' gaps, and the last group of
    an epoch may hold fewer than ``gap`` batches. The next allocation of an image is drawn from its
    labelled tasks not yet used in this epoch, as ISTA does, so that gap 1 is exactly ISTA, which the paper
    calls "a special case where the gap is 1"; the paper does not say whether revisits may repeat a task."""

    gap: int = 2

    def __post_init__(self) -> None:
        if self.gap < 1:
            raise ValueError(f"sta_gap: field 'gap' must be at least 1 (1 is ISTA), got {self.gap}")

    @property
    def interleaved_batches(self) -> int:
        return self.gap


@SUPERVISIONS.register("ft_plus")
@dataclass(frozen=True)
class FTPlus(Supervision):
    """FT+ (Li et al. 2022a Table 5): full-task training (Eq. 1 losses) for as many updates per batch as ISTA with
    the same ``k`` would make, to separate the effect of allocation from the effect of more steps."""

    k: int = 1

    def steps(self, mask: Tensor) -> list[Tensor]:
        updates = int(-(-mask.sum(1).max().item() // self.k)) if mask.any() else 1
        return [mask] * updates

    def task_losses(self, per_image: dict[str, Tensor], rows: dict[str, Tensor], mask: Tensor) -> dict[str, Tensor]:
        return SUPERVISIONS.get("full")().task_losses(per_image, rows, mask)
