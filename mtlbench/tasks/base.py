"""What every task type supplies: the protocol the trainer, the evaluation, the label masks, the augmentation and the
methods use, so that none of them asks which kind of task it has.

A task turns a model output and a target into (a) a per-image training loss, so that recipes can weight (image,
task) pairs and a label mask can leave an image out, and (b) a ``Meter`` that accumulates the evaluation metrics
over a whole split on the device (no per-image Python loop, one host sync at the end). A target is one tensor whose
first dimension is the batch, however the task stores it (a class map, a depth map, a padded set of boxes), so
that batches are cut from a dataset by indexing and every target moves to the device as one copy.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

import torch
from torch import Tensor

from ..functional import finite_pixels
from ..warp import Warp


def masked_mean_per_image(values: Tensor, valid: Tensor) -> Tensor:
    """Mean of ``values`` [B, ...] over the ``valid`` entries of each image: [B] (0 for an image with none)."""
    valid = valid.to(values.dtype)
    dims = tuple(range(1, values.dim()))
    return (values * valid).sum(dims) / valid.sum(dims).clamp_min(1.0)


class Meter:
    """Accumulates a task's metrics over a split; ``compute`` returns {metric: float}. ``merge`` adds another
    meter of the same task, fed other images, so that a split scored in shards (one per device of a job on
    several, mtlbench/distributed.py) is scored as a whole."""

    def update(self, pred: Tensor, target: Tensor) -> None:
        raise NotImplementedError

    def compute(self) -> dict[str, float]:
        raise NotImplementedError

    def merge(self, other: "Meter") -> None:
        raise NotImplementedError(f"{type(self).__name__} cannot merge shards: define merge(other), or set "
                                  f"train.devices: 1")


def mergeable(meter: Meter) -> bool:
    """Whether ``meter`` can add another shard's accumulation (a task type of a plugin may not)."""
    return type(meter).merge is not Meter.merge


def summed(mine: Tensor | float | None, theirs: Tensor | float | None) -> Tensor | float | None:
    """Two shards' partial sums (``None``: nothing accumulated yet)."""
    if theirs is None:
        return mine
    return theirs if mine is None else mine + theirs


@dataclass(frozen=True)
class Task:
    """Base class. ``higher_is_better`` lists every metric the task reports and its direction."""

    name: str
    channels: int
    # What a network's head gives for the task: "map" (a value per pixel), "image" (a vector per image), "anchors"
    # (a row per anchor of a detection head); each model builds the head its tasks' outputs need.
    output: ClassVar[str] = "map"
    # Whether the predictions of two augmented views can be warped onto each other and compared (consistency).
    aligned_views: ClassVar[bool] = True
    higher_is_better: ClassVar[dict[str, bool]] = {}
    primary: ClassVar[str] = ""
    # What its values are, for the methods that stack or map them (MTPSL, JTR) and choose an encoding per kind:
    # classes (logits; labels as indices, -1 ignored), depth (positive, 0 = no label), direction (unit
    # vectors, 0 = no label), regression (unbounded, NaN = masked), presence (image-level multi-label).
    value_kind: ClassVar[str] = "regression"
    # Whether only the model that predicts the task can compute its loss (Mask R-CNN's masks: the mask head learns on
    # proposals sampled from the ground truth); a model that does has ``losses_per_image`` (models/protocol.py).
    loss_from_model: ClassVar[bool] = False

    @property
    def dense(self) -> bool:
        """Whether the task's output is a per-pixel map."""
        return self.output == "map"

    def __init_subclass__(cls, **kwargs) -> None:
        super().__init_subclass__(**kwargs)
        if "dense" in cls.__dict__:  # a task type written before 0.3 declared ``dense``; its model head follows output
            raise TypeError(f"task type {cls.__name__}: declare output = 'map' | 'image' | 'anchors' instead of dense "
                            f"(dense = False was output = 'image')")

    def valid_pixels(self, label: Tensor) -> Tensor:
        """[B, 1, H, W] float: the pixels of a dense label that carry a value."""
        return finite_pixels(label)

    def label_map(self, label: Tensor) -> Tensor:
        """The label as a map with the task's output channels, zero where a pixel has no label."""
        return label.float().nan_to_num()

    def random_target(self, batch: int, height: int, width: int, generator: torch.Generator) -> Tensor:
        """A random label batch of the task's shape and value range (``mtlbench bench``, on random tensors)."""
        return torch.rand(batch, self.channels, height, width, generator=generator)

    def loss_per_image(self, pred: Tensor, target: Tensor) -> Tensor:
        raise NotImplementedError

    def no_label(self, like: Tensor) -> Tensor:
        """Targets of ``like``'s shape and dtype that label nothing (what a dataset assembled from sources stores for
        an image whose source does not label the task): NaN for float values, -1 for integers."""
        return torch.full_like(like, torch.nan if like.is_floating_point() else -1)

    def concat(self, targets: list[Tensor]) -> Tensor:
        """Stored targets of several sources as one tensor (sets of different sizes are padded by their type)."""
        return torch.cat(targets)

    def meter(self) -> Meter:
        raise NotImplementedError

    @property
    def directions(self) -> dict[str, bool]:
        """Every metric evaluation reports, with its direction: the task's metrics and its ``loss``."""
        return {**self.higher_is_better, "loss": False}

    def warped(self, value: Tensor, warp: Warp, mode: str | None = None) -> Tensor:
        """A target or prediction of the task as the augmented image shows it (``mode`` overrides the task's
        interpolation, e.g. bilinear for class probabilities): dense maps are resampled, image-level values kept."""
        raise NotImplementedError

    def postprocess(self, raw: Tensor) -> Tensor:
        """Map the raw head output to the task's prediction space (identity unless overridden)."""
        return raw

    def prepare(self, stored: Tensor) -> Tensor:
        """The stored (compact) target as the tensor the loss and metrics take."""
        return stored.float()

    def as_map(self, pred: Tensor) -> Tensor:
        """A prediction as a map two views can be compared on (class probabilities for segmentation)."""
        return pred.float()

    def ensemble_label(self, preds: Tensor) -> Tensor:
        """A pseudo-label from the predictions [E, B, ...] of E networks, as ``prepare`` gives targets (the
        mean prediction for regression tasks)."""
        return preds.float().mean(0)

    def target_sums(self, target: Tensor) -> tuple[Tensor, Tensor]:
        """Per channel, the sum and the count of a batch's valid target entries (finite ones): what ``constant``
        fits the training mean from, a batch at a time."""
        valid = target.isfinite()
        dims = [0, *range(2, target.dim())]
        return torch.where(valid, target, 0.0).double().sum(dims), valid.sum(dims)

    def constant(self, sums: Tensor, counts: Tensor) -> Tensor:
        """What a model that ignores its input predicts for every image: the training targets' mean, as one
        image's output (a 1 x 1 map for dense tasks). Evaluated like a network, it is the reference a trained
        network must beat (``train.evaluation.constant_reference``)."""
        mean = (sums / counts.clamp_min(1)).float()
        return mean.view(-1, 1, 1) if self.dense else mean

    def constant_prediction(self, constant: Tensor, batch: int, height: int, width: int) -> Tensor:
        """``constant`` as the prediction of every image of a batch of ``height`` x ``width`` images: a map of it
        for dense tasks, the vector for image-level ones."""
        return constant.expand(batch, -1, height, width) if self.dense else constant.expand(batch, -1)


