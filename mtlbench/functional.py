"""Encodings of labels and predictions shared by the task types and the methods that stack or map them
(MTPSL's mapping network, JTR's auto-encoder), as plain functions of tensors: one place for each."""
from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor


def one_hot_ignoring(label: Tensor, classes: int, ignore_below: int = 0) -> Tensor:
    """Class indices [B, H, W] as a one-hot map [B, C, H, W]; a pixel with an ignored label (< ``ignore_below``,
    -1 in every dataset here) is all zeros."""
    return F.one_hot(label.clamp_min(ignore_below), classes).permute(0, 3, 1, 2).float() * (label >= ignore_below)[:, None]


def nonzero_pixels(label: Tensor) -> Tensor:
    """[B, 1, H, W] float: pixels where some channel of ``label`` is non-zero (depth and normals: 0 = no label)."""
    return (label.abs().sum(1, keepdim=True) > 0).float()


def finite_pixels(label: Tensor) -> Tensor:
    """[B, 1, H, W] float: pixels where every channel is finite (NaN marks a masked pixel, tasks.DenseL1)."""
    return label.isfinite().all(1, keepdim=True).float()


def signed_to_unit(values: Tensor) -> Tensor:
    """Values in [-1, 1] (unit-vector components) scaled to [0, 1]."""
    return (values + 1.0) / 2.0


def standard_gumbel(shape: torch.Size | tuple[int, ...], like: Tensor) -> Tensor:
    """Gumbel(0, 1) noise of ``shape`` in ``like``'s dtype and device, drawn as ``F.gumbel_softmax`` draws it (minus
    the log of Exp(1) draws), so that the generator gives the same numbers and advances alike."""
    return -torch.empty(shape, dtype=like.dtype, device=like.device).exponential_().log()


def hard_gumbel_softmax(logits: Tensor, gumbels: Tensor) -> Tensor:
    """``F.gumbel_softmax(logits, tau=1, hard=True, dim=1)`` with its noise given: the one-hot of the most likely
    class of ``logits + gumbels``, carrying the softmax's gradient (straight-through)."""
    soft = (logits + gumbels).softmax(1)
    hard = torch.zeros_like(logits).scatter_(1, soft.max(1, keepdim=True)[1], 1.0)
    return hard - soft.detach() + soft


def gumbel_sample(logits: Tensor) -> Tensor:
    """A hard Gumbel-softmax sample over dim 1 with fresh noise: ``F.gumbel_softmax(logits, hard=True, dim=1)``."""
    return hard_gumbel_softmax(logits, standard_gumbel(logits.shape, logits))


__all__ = ["finite_pixels", "gumbel_sample", "hard_gumbel_softmax", "nonzero_pixels", "one_hot_ignoring",
           "signed_to_unit", "standard_gumbel"]
