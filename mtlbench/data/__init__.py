"""Datasets, label scenarios and tensor augmentation."""
from .base import DATASETS, SPLITS, Dataset, Split
from . import synthrooms  # noqa: F401  (registers the embedded dataset)
from .scenarios import SCENARIOS, label_mask


__all__ = ["DATASETS", "SCENARIOS", "SPLITS", "Dataset", "Split", "label_mask"]
