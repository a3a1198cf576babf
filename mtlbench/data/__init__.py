"""Datasets, label scenarios and tensor augmentation."""
from .base import DATASETS, SPLITS, Dataset, Split
from . import (cityscapes, cityscapes_dense, cityscapes_instances, coco, nyud_mt, nyuv2, pascal_voc, synthrooms,  # noqa: F401  (register)
               nyu_depth, taskonomy, union, voc_detection)
from .npy_folders import DatasetError
from .scenarios import SCENARIOS, LabelPlan, label_mask, scenario


__all__ = ["DATASETS", "DatasetError", "SCENARIOS", "SPLITS", "Dataset", "LabelPlan", "Split", "label_mask", "scenario"]
