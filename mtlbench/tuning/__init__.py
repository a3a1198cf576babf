"""Hyperparameter tuning with Optuna (``mtlbench tune``): fair budgets, validation split only, shared storage.

Optuna is imported only when a study runs; planning studies and applying a best-parameters file need only
the suite's dependencies.
"""
from .loop import TuneOptions, tune_suite
from .params import apply_params, read_params, write_params
from .pruners import PRUNERS
from .studies import Score, StudySpec, plan_studies

__all__ = ["PRUNERS", "Score", "StudySpec", "TuneOptions", "apply_params", "plan_studies", "read_params",
           "tune_suite", "write_params"]
