"""Pruners, registered like every plugin: a dataclass of the pruner's settings whose ``build`` makes Optuna's.

A trial reports its validation score after every epoch (step = epoch, counted on across its seeds); the pruner
stops trials that fall behind. Optuna is imported only when a pruner is built.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from ..registry import Registry

PRUNERS: Registry[type] = Registry("pruner")


@PRUNERS.register("median")
@dataclass(frozen=True)
class Median:
    """Optuna's MedianPruner (its defaults): stop a trial whose best score so far is worse than the median of
    the earlier trials' scores at the same epoch, once ``n_startup_trials`` have finished."""

    n_startup_trials: int = 5
    n_warmup_steps: int = 0
    interval_steps: int = 1

    def build(self) -> Any:
        import optuna

        return optuna.pruners.MedianPruner(self.n_startup_trials, self.n_warmup_steps, self.interval_steps)


@PRUNERS.register("hyperband")
@dataclass(frozen=True)
class Hyperband:
    """Optuna's HyperbandPruner; its maximum resource is the number of epochs the first finished trial reported."""

    min_resource: int = 1
    reduction_factor: int = 3

    def build(self) -> Any:
        import optuna

        return optuna.pruners.HyperbandPruner(self.min_resource, "auto", self.reduction_factor)


@PRUNERS.register("none")
@dataclass(frozen=True)
class NoPruning:
    """Every trial trains to the end."""

    def build(self) -> Any:
        import optuna

        return optuna.pruners.NopPruner()
