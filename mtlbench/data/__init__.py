"""Datasets, label scenarios and tensor augmentation."""
from .base import DATASETS, SPLITS, Dataset, Split
from . import cityscapes, nyud_mt, nyuv2, pascal_voc, synthrooms, taskonomy, voc_detection  # noqa: F401  (register)
from .npy_folders import DatasetError
from .scenarios import SCENARIOS, LabelPlan, label_mask, scenario


__all__ = ["DATASETS", "DatasetError", "SCENARIOS", "SPLITS", "Dataset", "LabelPlan", "Split", "label_mask", "scenario"]
