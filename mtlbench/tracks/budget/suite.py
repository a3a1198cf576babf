"""A budget suite (a ``budget:`` section) expanded into jobs, in the order they must run:

1. TABA's estimate jobs on the seed set, when an allocator needs them: one probe job (Eq. 5) and one
   reduction job per task (Eq. 7) per ``estimate_seeds`` entry;
2. the seed-set jobs: the MTL network on the seed labels only (S'_i of Eq. 9), one per seed;
3. per cost setting, allocator and seed (= repeat): the MTL network retrained on seed + bought labels.

A heuristic's allocation is computed here, so its job config holds the label counts, and a retraining that
two cost settings share (Equal New Images, whose N is the same when B = n sum c) is one job. TABA's counts
depend on its estimates: its job config's ``purchase`` names the allocator, the costs, the budget and the
estimate jobs, which are its needs, and the ``budget-purchase`` resolver (estimates.py) turns them into label
counts when the job starts. The repeat seeds both the purchase draw and training.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

from pydantic import Field, PositiveInt, TypeAdapter, ValidationError

from ...config import SuiteError, plugin, resolve_method, resolve_single_method_track
from ...schema import Strict, SuiteFile
from ...data import DATASETS, SCENARIOS
from ...jobs import Job, new_job
from ...registry import build
from .allocators import ALLOCATORS, Allocator, AllocationError
from .probe import ProbeSettings
from .reduction import ReductionSettings


class BudgetSection(Strict):
    """The label-budget track (Sun et al. 2023): seed labels per task, one table per cost setting, the allocators."""

    seed_labels: PositiveInt
    costs: dict[str, dict[str, PositiveInt]] = Field(description="cost setting label -> {task: cost per label}")
    budget: PositiveInt | None = Field(None, description="default: seed_labels x the sum of costs (Sec. 5.2)")
    allocators: list[str | dict[str, Any]]
    probe: dict[str, Any] = Field(default_factory=dict, description="TABA's informativeness probe settings")
    reduction: dict[str, Any] = Field(default_factory=dict, description="TABA's reduction-rate settings")
    estimate_seeds: list[int] = [0]
    steps_per_epoch: int = Field(0, ge=0, description="0: an epoch draws as many labels as there are")


def settings(cls: type, spec: dict[str, Any], where: str, path: Path) -> dict[str, Any]:
    """A settings dataclass validated and resolved with every default."""
    unknown = sorted(set(spec) - {f.name for f in dataclasses.fields(cls)})
    if unknown:
        raise SuiteError(f"{path}: {where}: unknown field {', '.join(unknown)}. Valid fields: "
                         f"{', '.join(f.name for f in dataclasses.fields(cls))}")
    try:
        instance = TypeAdapter(cls).validate_python(spec)
    except (ValidationError, ValueError) as error:
        raise SuiteError(f"{path}: {where}: {error}") from None
    return json.loads(json.dumps(dataclasses.asdict(instance)))


def check_costs(costs: dict[str, dict[str, int]], tasks: list[str], path: Path) -> None:
    if not costs:
        raise SuiteError(f"{path}: budget.costs: give at least one cost setting, e.g. '1:20': {{cls: 1, seg: 20}}")
    for label, per_task in costs.items():
        if set(per_task) != set(tasks):
            raise SuiteError(f"{path}: budget.costs.{label}: give one cost per task of the suite ({', '.join(tasks)}), "
                             f"got {', '.join(per_task) or 'none'}")


def estimate_ids(estimates: dict[str, Any]) -> list[str]:
    """The ids of the estimate jobs named in ``{probe: [ids], reduction: {task: [ids]}}``."""
    ids = []
    for value in estimates.values():
        ids += value if isinstance(value, list) else [i for per_task in value.values() for i in per_task]
    return ids


def expand_budget(raw: SuiteFile, path: Path) -> tuple[list[Job], dict[str, Any]]:
    expansion = BudgetExpansion(raw, path)
    tables = [expansion.table(dataset) for dataset in expansion.datasets]
    return list(expansion.jobs.values()), {"tables": tables}


def built_allocators(section: BudgetSection, path: Path) -> list[tuple[dict[str, Any], Allocator]]:
    specs = [plugin(ALLOCATORS, spec, f"budget.allocators[{i}]", path) for i, spec in enumerate(section.allocators)]
    if not specs:
        raise SuiteError(f"{path}: budget.allocators: must list at least one entry")
    built = [(spec, build(ALLOCATORS, spec)) for spec in specs]
    labels = [allocator.label() for _, allocator in built]
    if len(set(labels)) != len(labels):
        twice = sorted({x for x in labels if labels.count(x) > 1})
        raise SuiteError(f"{path}: budget.allocators: listed twice: {twice}")
    return built


class BudgetExpansion:
    """The suite's settings checked once, and its jobs, added per dataset in the order they must run (the
    module docstring); a job that two tables share is added once."""

    def __init__(self, raw: SuiteFile, path: Path) -> None:
        self.raw, self.path, self.section = raw, path, raw.budget
        self.model, self.train, self.datasets, self.method = resolve_single_method_track(
            raw, path, "budget", "the budget section decides the labels",
            "default supervised, Eq. 8 with lambda_i = 1")
        check_costs(self.section.costs, raw.tasks, path)
        self.allocators = built_allocators(self.section, path)
        self.probe = settings(ProbeSettings, self.section.probe, "budget.probe", path)
        self.reduction = settings(ReductionSettings, self.section.reduction, "budget.reduction", path)
        self.needs = {need for _, allocator in self.allocators for need in allocator.needs}
        self.stl = resolve_method("stl", "budget.reduction", path)
        self.jobs: dict[str, Job] = {}

    def add(self, config: dict[str, Any], label: str, **how: Any) -> str:
        job = new_job(self.raw.name or self.path.stem, config, label, **how)
        self.jobs.setdefault(job.id, job)
        return job.id

    def purchase(self, new_labels: dict[str, int] | None, same_images: bool, draw: int) -> dict[str, Any]:
        """The scenario of a repeat: the seed sets plus ``new_labels`` (None: TABA's, resolved at run time)."""
        spec = {"name": "budget", "seed_labels": self.section.seed_labels, "new_labels": new_labels,
                "same_images": same_images, "draw": draw, "steps_per_epoch": self.section.steps_per_epoch}
        return {**plugin(SCENARIOS, spec, "budget", self.path), "mask_seed": self.raw.mask_seed}

    def config(self, dataset: dict[str, Any], seed: int, scenario: dict[str, Any], **extra: Any) -> dict[str, Any]:
        return {"dataset": dataset, "tasks": list(self.raw.tasks), "scenario": scenario, "method": self.method,
                "model": self.model, "train": self.train, "seed": seed, **extra}

    def pool(self, dataset: dict[str, Any]) -> int:
        """The train images outside the seed sets: what can be bought, checked against what TABA pseudo-labels."""
        seed_labels = self.section.seed_labels
        train_size = build(DATASETS, dataset).split_size("train")
        pool = train_size - len(self.raw.tasks) * seed_labels
        if pool < 0:
            raise SuiteError(f"{self.path}: budget.seed_labels: {len(self.raw.tasks)} seed sets of {seed_labels} "
                             f"need more than the {dataset['name']} train split's {train_size} images")
        most = max(self.reduction["pseudo_labels"]) if "reduction" in self.needs else 0
        if round(most * seed_labels) > pool:
            raise SuiteError(f"{self.path}: budget.reduction.pseudo_labels: {most} x {seed_labels} pseudo-labelled "
                             f"images exceed the {pool} pool images")
        return pool

    def estimates(self, dataset: dict[str, Any], seed_set: dict[str, Any]) -> dict[str, Any]:
        """TABA's estimate jobs that some allocator needs: ``{probe: [ids], reduction: {task: [ids]}}``."""
        estimates: dict[str, Any] = {}
        seeds = self.section.estimate_seeds
        if "probe" in self.needs:
            estimates["probe"] = [self.add(self.config(dataset, s, seed_set, probe=self.probe),
                                           "TABA informativeness probe", kind="taba-probe", name="taba-probe")
                                  for s in seeds]
        if "reduction" in self.needs:
            estimates["reduction"] = {
                t: [self.add({**self.config(dataset, s, seed_set, reduction={"task": t, **self.reduction}),
                              "method": self.stl},
                             f"TABA reduction rate of {t}", kind="taba-reduction", name=f"taba-reduction-{t}")
                    for s in seeds] for t in self.raw.tasks}
        return estimates

    def allocation(self, allocator: Allocator, costs: dict[str, int], budget: int, cost_label: str,
                   dataset: dict[str, Any], pool: int) -> dict[str, int]:
        """A heuristic's label counts, computed now and checked against the pool."""
        try:
            new_labels = allocator.allocate(costs, budget)
        except AllocationError as error:
            raise SuiteError(f"{self.path}: budget.allocators: {error}") from None
        bought = max(new_labels.values()) if allocator.same_images else sum(new_labels.values())
        if bought > pool:
            raise SuiteError(f"{self.path}: budget.costs.{cost_label}: {allocator.label()} buys {bought} labels "
                             f"({new_labels}) but {dataset['name']} has {pool} train images outside the seed "
                             f"sets; enlarge its train split or lower the budget")
        return new_labels

    def row(self, spec: dict[str, Any], allocator: Allocator, cost_label: str, costs: dict[str, int], budget: int,
            dataset: dict[str, Any], pool: int, estimates: dict[str, Any]) -> dict[str, Any]:
        """One allocator's retraining jobs under one cost setting, one per repeat."""
        extra: dict[str, Any] = {}
        how: dict[str, Any] = {}
        new_labels = None
        if allocator.needs:
            used = {k: estimates[k] for k in allocator.needs}
            extra["purchase"] = {"allocator": spec, "costs": costs, "budget": budget, "estimates": used}
            how["inputs"] = {"budget-purchase": estimate_ids(used)}
        else:
            new_labels = self.allocation(allocator, costs, budget, cost_label, dataset, pool)
        ids = [self.add(self.config(dataset, seed, self.purchase(new_labels, allocator.same_images, seed), **extra),
                        f"{cost_label} {allocator.label()}", **how) for seed in self.raw.seeds]
        return {"allocator": allocator.label(), "spec": spec, "new_labels": new_labels, "jobs": ids}

    def table(self, dataset: dict[str, Any]) -> dict[str, Any]:
        """The dataset's table: its estimate and seed-set jobs, then one row per cost setting and allocator."""
        pool = self.pool(dataset)
        seed_set = self.purchase(dict.fromkeys(self.raw.tasks, 0), False, 0)
        estimates = self.estimates(dataset, seed_set)
        seed_jobs = [self.add(self.config(dataset, seed, seed_set), "seed set") for seed in self.raw.seeds]
        settings_rows = []
        for cost_label, costs in self.section.costs.items():
            costs = {t: costs[t] for t in self.raw.tasks}
            budget = self.section.budget or self.section.seed_labels * sum(costs.values())
            rows = [self.row(spec, allocator, cost_label, costs, budget, dataset, pool, estimates)
                    for spec, allocator in self.allocators]
            settings_rows.append({"label": cost_label, "costs": costs, "budget": budget, "rows": rows})
        return {"dataset": dataset["name"], "seed_labels": self.section.seed_labels, "seed_jobs": seed_jobs,
                "estimates": estimates, "settings": settings_rows}
