"""Allocators: how many new labels N_i each task gets from a budget B at label costs c_i (Sun et al. 2023 Eq. 1).

The heuristics of Sec. 5.2 ("Baselines") and the fixed shares of Fig. 2 need only (c, B); TABA and its Table 3 ablations also read estimates
that jobs of the suite measure on the seed set (``needs``): the informativeness probe (budget/probe.py) and
each task's reduction rate (budget/reduction.py). Every allocator may buy its labels for the same images
(``same_images``, the * rows of Tables 1-2); by default different tasks get different images (Sec. 3.1).
Counts are whole labels: the heuristics round down, so a few units of budget may stay unspent.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import ClassVar

from ...errors import UserError
from ...registry import Registry
from .dp import allocate

ALLOCATORS: Registry[type] = Registry("allocator")
RELATEDNESS = ("eq5", "tag", "none")


class AllocationError(UserError, ValueError):
    pass


@dataclass(frozen=True)
class Estimates:
    """What the suite's estimate jobs measured: Eq. 3's I_i (from Eq. 5 and from TAG) and Eq. 7's beta_i."""

    informativeness: dict[str, float] = field(default_factory=dict)
    tag_informativeness: dict[str, float] = field(default_factory=dict)
    beta: dict[str, float] = field(default_factory=dict)


@dataclass(frozen=True)
class Allocator:
    same_images: bool = False
    needs: ClassVar[tuple[str, ...]] = ()  # estimate jobs: "probe", "reduction"

    def allocate(self, costs: dict[str, int], budget: int, estimates: Estimates | None = None) -> dict[str, int]:
        raise NotImplementedError

    def spent(self, costs: dict[str, int], counts: dict[str, int]) -> int:
        """The budget ``allocate``'s counts cost (labels that come free with others cost nothing)."""
        return sum(n * costs[t] for t, n in counts.items())

    def label(self) -> str:
        raise NotImplementedError

    def star(self) -> str:
        return "*" if self.same_images else ""


@ALLOCATORS.register("equal_new_images")
@dataclass(frozen=True)
class EqualNewImages(Allocator):
    """The same number of new labels for every task: N = floor(B / sum_i c_i)."""

    def allocate(self, costs: dict[str, int], budget: int, estimates: Estimates | None = None) -> dict[str, int]:
        return {t: budget // sum(costs.values()) for t in costs}

    def label(self) -> str:
        return "Equal New Images" + self.star()


@ALLOCATORS.register("equal_budget")
@dataclass(frozen=True)
class EqualBudget(Allocator):
    """B / K of the budget per task: N_i = floor(B / (K c_i))."""

    def allocate(self, costs: dict[str, int], budget: int, estimates: Estimates | None = None) -> dict[str, int]:
        return {t: budget // len(costs) // c for t, c in costs.items()}

    def label(self) -> str:
        return "Equal Budget" + self.star()


@ALLOCATORS.register("single_task")
@dataclass(frozen=True, kw_only=True)
class SingleTask(Allocator):
    """The whole budget to ``task``: N_task = floor(B / c_task), nothing for the others ("100% budget").

    ``derived``: tasks whose label comes with every ``task`` label bought, at no cost, for the same images (Sun et al.
    2023 Table 1's "100% Seg.*": the * rows provide every task's label for the same images, and an image's
    segmentation gives its classes, so spending the budget on seg labels buys cls labels with them). Needs
    ``same_images: true``; the derived labels are the dataset's own labels of those images."""

    task: str
    derived: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.task in self.derived:
            raise AllocationError(f"single_task: {self.task!r} cannot derive from itself")
        if self.derived and not self.same_images:
            raise AllocationError(f"single_task: derived labels come with the {self.task} labels of the same images: "
                                  f"set same_images: true")

    def allocate(self, costs: dict[str, int], budget: int, estimates: Estimates | None = None) -> dict[str, int]:
        unknown = [t for t in (self.task, *self.derived) if t not in costs]
        if unknown:
            raise AllocationError(f"single_task: task(s) {unknown} not one of {list(costs)}")
        bought = budget // costs[self.task]
        return {t: bought if t == self.task or t in self.derived else 0 for t in costs}

    def spent(self, costs: dict[str, int], counts: dict[str, int]) -> int:
        return counts[self.task] * costs[self.task]

    def label(self) -> str:
        return f"100% {self.task}" + self.star()


@ALLOCATORS.register("share")
@dataclass(frozen=True, kw_only=True)
class Share(Allocator):
    """A fixed share of the budget per task, N_i = floor(s_i B / c_i): the allocations Sun et al. 2023 Fig. 2 sweeps
    (the share of the 6,300 units spent on cls labels, the rest on seg). ``shares``: {task: share}, each in [0, 1],
    summing to at most 1; a task not named gets nothing. ``single_task`` is the share 1 of one task."""

    shares: dict[str, float]

    def __post_init__(self) -> None:
        bad = {t: s for t, s in self.shares.items() if not 0.0 <= s <= 1.0}
        if bad:
            raise AllocationError(f"share: shares must lie in [0, 1], got {bad}")
        if sum(self.shares.values()) > 1.0 + 1e-9:
            raise AllocationError(f"share: shares sum to {sum(self.shares.values()):g}, more than the budget (1)")

    def allocate(self, costs: dict[str, int], budget: int, estimates: Estimates | None = None) -> dict[str, int]:
        unknown = [t for t in self.shares if t not in costs]
        if unknown:
            raise AllocationError(f"share: tasks {unknown} are not among {list(costs)}")
        return {t: math.floor(self.shares.get(t, 0.0) * budget / c + 1e-9) for t, c in costs.items()}

    def label(self) -> str:
        return " / ".join(f"{share:.0%} {task}" for task, share in self.shares.items()) + self.star()


@ALLOCATORS.register("taba")
@dataclass(frozen=True)
class TABA(Allocator):
    """Task-Adaptive Budget Allocation (Sun et al. 2023 Algorithm 1): N_i by the exact DP of Eq. 2 with g_i of Eq. 4.

    ``relatedness``: ``eq5`` (TABA, I_i of Eq. 3 from Eq. 5 probes), ``tag`` (Table 3a: TAG's loss look-ahead
    instead of Eq. 5) or ``none`` (Table 3a: I_i = 1). ``beta``: null for the Eq. 7 estimate of each task, or one
    value for every task (Table 3b: 1, 0.999, 0.99).
    """

    relatedness: str = "eq5"
    beta: float | None = None

    def __post_init__(self) -> None:
        if self.relatedness not in RELATEDNESS:
            raise AllocationError(f"taba: relatedness must be one of {RELATEDNESS}, got {self.relatedness!r}")
        if self.beta is not None and not 0.0 <= self.beta <= 1.0:
            raise AllocationError(f"taba: beta must lie in [0, 1] (Eq. 4), got {self.beta}")

    @property
    def needs(self) -> tuple[str, ...]:  # type: ignore[override]
        return (("probe",) if self.relatedness != "none" else ()) + (("reduction",) if self.beta is None else ())

    def allocate(self, costs: dict[str, int], budget: int, estimates: Estimates | None = None) -> dict[str, int]:
        tasks = list(costs)
        estimates = estimates or Estimates()
        informativeness = {"eq5": estimates.informativeness, "tag": estimates.tag_informativeness,
                           "none": dict.fromkeys(tasks, 1.0)}[self.relatedness]
        beta = estimates.beta if self.beta is None else dict.fromkeys(tasks, self.beta)
        missing = [t for t in tasks if t not in informativeness or t not in beta]
        if missing:
            raise AllocationError(f"taba: no estimate for tasks {missing} (the suite's probe and reduction jobs "
                                  f"measure them; are they finished?)")
        unusable = [t for t in tasks if not math.isfinite(informativeness[t]) or not math.isfinite(beta[t])]
        if unusable:
            raise AllocationError(f"taba: the estimates of tasks {unusable} are not finite ({informativeness}, "
                                  f"{beta}); for Eq. 5, every probe of such a task left its metric unchanged: probe "
                                  f"more validation images (probe.val_images) or more steps (probe.steps)")
        counts = allocate([informativeness[t] for t in tasks], [beta[t] for t in tasks],
                          [costs[t] for t in tasks], budget)
        return dict(zip(tasks, counts))

    def label(self) -> str:
        parts = {"eq5": [], "tag": ["TAG relatedness"], "none": ["I = 1"]}[self.relatedness]
        if self.beta is not None:
            parts.append(f"β = {self.beta:g}")
        return "TABA" + (f" ({', '.join(parts)})" if parts else "") + self.star()
