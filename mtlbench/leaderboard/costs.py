"""What each method costs beside what it scores (result.json ``costs``, train/costs.py): training time per epoch
and peak memory as ratios to the table's baseline method measured on the same hardware, and GFLOPs of one
training step, which no hardware changes.

A ratio is shown only where every seed of the method and of the baseline measured it on one and the same device;
otherwise its cell is empty and a note says why (results written before costs were measured, a method whose seeds
ran on different machines, a baseline measured elsewhere). Nothing is averaged over the seeds that happen to have
a measurement.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

COST_COLUMNS = ("time", "memory", "flops")


@dataclass
class MethodCosts:
    """One method's measured costs in one table: the means over its seeds, and why any is missing."""

    epoch_seconds: float = math.nan
    peak_bytes: float = math.nan
    step_flops: float = math.nan
    device: str | None = None  # None: no measurement, or seeds on several devices
    unmeasured: int = 0  # seeds whose result has no costs
    devices: list[str] = field(default_factory=list)


def mean_or_nan(values: list[Any]) -> float:
    return float(np.mean(values)) if values and None not in values else math.nan


def method_costs(results: list[dict[str, Any]]) -> MethodCosts:
    measured = [r for r in results if "costs" in r]
    devices = sorted({r["device"] for r in measured})
    if len(measured) < len(results):
        return MethodCosts(unmeasured=len(results) - len(measured), devices=devices)
    costs = [r["costs"] for r in measured]
    return MethodCosts(mean_or_nan([c["epoch_seconds"] for c in costs]),
                       mean_or_nan([c["peak_memory_bytes"] for c in costs]),
                       mean_or_nan([c.get("step_flops") for c in costs]),
                       devices[0] if len(devices) == 1 else None, 0, devices)


@dataclass
class TableCosts:
    """A table's cost columns: per method its ``MethodCosts``; the baseline's, to which time and memory are
    ratios."""

    methods: dict[str, MethodCosts]
    baseline: str | None

    @property
    def measured(self) -> bool:
        """Whether any result of the table measured its costs (a table of older results shows no cost column)."""
        return any(not math.isnan(c.epoch_seconds) or c.devices for c in self.methods.values())

    def reference(self) -> MethodCosts | None:
        return self.methods.get(self.baseline) if self.baseline else None

    def ratio(self, method: str, name: str) -> float:
        """The method's ``epoch_seconds`` or ``peak_bytes`` over the baseline's, on the same device; else NaN."""
        reference, own = self.reference(), self.methods[method]
        if reference is None or own.device is None or own.device != reference.device:
            return math.nan
        return getattr(own, name) / getattr(reference, name)

    def gflops(self, method: str) -> float:
        return self.methods[method].step_flops / 1e9

    def notes(self) -> list[str]:
        """What the cost columns are, measured where, and which cells are empty and why."""
        reference = self.reference()
        lines = []
        if reference is not None and reference.device is not None:
            lines.append(f"time ×, memory ×: the method's training time per epoch and peak memory (means over its "
                         f"seeds) over {self.baseline}'s, {reference.epoch_seconds:.3g} s per epoch and "
                         f"{reference.peak_bytes / 2 ** 20:.0f} MiB, all measured on {reference.device}; on a CPU the "
                         f"peak is the process's resident set (the Python runtime and the data included). "
                         f"GFLOPs/step: one training step of one batch, the method's own work included (extra "
                         f"forwards, a backward per task), counted by torch.utils.flop_counter.")
        elif reference is not None:
            lines.append(f"time ×, memory ×: no ratio, since the baseline {self.baseline} has no single-device "
                         f"measurement ({self.why(reference)}). GFLOPs/step: one training step of one batch, counted "
                         f"by torch.utils.flop_counter.")
        lacking = {m: self.why(c) for m, c in self.methods.items() if m != self.baseline and
                   (c.device is None or (reference is not None and reference.device not in (None, c.device)))}
        if lacking:
            lines.append("Empty cost cells: " + "; ".join(f"{m}: {why}" for m, why in lacking.items()) + ".")
        return lines

    def why(self, costs: MethodCosts) -> str:
        if costs.unmeasured:
            return f"{costs.unmeasured} seed(s) ran before mtlbench measured costs; rerun them with --force to measure"
        if len(costs.devices) > 1:
            return f"its seeds ran on {len(costs.devices)} different devices ({'; '.join(costs.devices)})"
        reference = self.reference()
        if reference is not None and reference.device and costs.device != reference.device:
            return f"measured on {costs.device}, the baseline on {reference.device}"
        return "not measured"


def table_costs(results: list[dict[str, Any]], methods: list[str], baseline: str | None) -> TableCosts:
    return TableCosts({m: method_costs([r for r in results if r["method"] == m]) for m in methods}, baseline)


__all__ = ["COST_COLUMNS", "MethodCosts", "TableCosts", "table_costs"]
