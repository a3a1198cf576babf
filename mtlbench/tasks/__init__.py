"""Task types, one module per kind: dense maps (``dense``), image-level values (``image``), boxes (``detection``),
instance masks (``instance``). Every
type implements the protocol of ``base.Task``; ``TASK_KINDS`` names them for datasets and plugins."""
from __future__ import annotations

from ..registry import Registry
from .base import Meter, Task, masked_mean_per_image, mergeable
from .dense import (ANGLE_BIN, IGNORE_INDEX, METRICS_VERSION, NORMAL_LOSSES, AngleMeter, ConfusionMeter, DenseL1,
                    DenseTask, Depth, Edge, Normal, Segmentation, SumMeter, depth_stats, l1_stats)
from .detection import Anchors, Detection, DetectionMeter
from .image import JaccardMeter, MultiLabel
from .instance import Instance, InstanceMeter

TASK_KINDS: Registry[type[Task]] = Registry("task kind")
for _kind, _cls in {"segmentation": Segmentation, "depth": Depth, "normal": Normal, "l1": DenseL1,
                    "edge": Edge, "multilabel": MultiLabel, "detection": Detection, "instance": Instance}.items():
    TASK_KINDS.register(_kind)(_cls)

__all__ = ["ANGLE_BIN", "IGNORE_INDEX", "METRICS_VERSION", "NORMAL_LOSSES", "TASK_KINDS", "Anchors", "AngleMeter", "ConfusionMeter",
           "DenseL1", "DenseTask", "Depth", "Detection", "DetectionMeter", "Edge", "Instance", "InstanceMeter",
           "JaccardMeter", "Meter", "MultiLabel",
           "Normal", "Segmentation", "SumMeter", "Task", "depth_stats", "l1_stats", "masked_mean_per_image", "mergeable"]
