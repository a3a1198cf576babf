"""Datasets, label scenarios and tensor augmentation."""
from .base import DATASETS, SPLITS, Dataset, Split
from . import synthrooms  # noqa: F401  (registers the embedded dataset)
from .scenarios import SCENARIOS, LabelPlan, label_mask, scenario


__all__ = ["DATASETS", "SCENARIOS", "SPLITS", "Dataset", "LabelPlan", "Split", "label_mask", "scenario"]
