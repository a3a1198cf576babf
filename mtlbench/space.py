"""Search spaces, declared as data next to the parameters they search (``mtlbench tune``).

A registered plugin (an optimiser, a recipe part) lists its tunable fields in a ``space`` class variable, e.g.
``space = {"temperature": Float(0.5, 8.0, log=True)}``; ``mtlbench list`` shows them and the tuner reads them
without instantiating anything. A space only describes the range: suggesting a value takes a trial object
(Optuna's), passed in, so nothing here imports Optuna.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Union


@dataclass(frozen=True)
class Float:
    """A float in [low, high], drawn on a log scale (learning rates, loss weights) or a linear one (margins)."""

    low: float
    high: float
    log: bool = False

    def suggest(self, trial: Any, name: str) -> float:
        return trial.suggest_float(name, self.low, self.high, log=self.log)

    def contains(self, value: Any) -> bool:
        return isinstance(value, (int, float)) and self.low <= value <= self.high


@dataclass(frozen=True)
class Choice:
    """One of a few values (e.g. weight decay, whose paper value 0 no log scale contains)."""

    values: tuple[Any, ...]

    def suggest(self, trial: Any, name: str) -> Any:
        return trial.suggest_categorical(name, list(self.values))

    def contains(self, value: Any) -> bool:
        return value in self.values


Space = Union[Float, Choice]


def search_space(plugin: Any) -> dict[str, Space]:
    """The fields a registered plugin declares tunable (none unless it has a ``space``)."""
    return dict(getattr(plugin, "space", {}))


def describe(space: Space) -> str:
    if isinstance(space, Choice):
        return f"choice{list(space.values)}"
    return f"{'log_uniform' if space.log else 'uniform'}[{space.low:g}, {space.high:g}]"
