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

from ...config import Strict, SuiteError, SuiteFile, plugin, resolve_method, resolve_single_method_track
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
    section = raw.budget
    model, train, datasets, method = resolve_single_method_track(
        raw, path, "budget", "the budget section decides the labels",
        "default supervised, Eq. 8 with lambda_i = 1")
    check_costs(section.costs, raw.tasks, path)
    specs = [plugin(ALLOCATORS, spec, f"budget.allocators[{i}]", path) for i, spec in enumerate(section.allocators)]
    if not specs:
        raise SuiteError(f"{path}: budget.allocators: must list at least one entry")
    built: list[tuple[dict[str, Any], Allocator]] = [(spec, build(ALLOCATORS, spec)) for spec in specs]
    probe = settings(ProbeSettings, section.probe, "budget.probe", path)
    reduction = settings(ReductionSettings, section.reduction, "budget.reduction", path)
    needs = {need for _, allocator in built for need in allocator.needs}
    stl = resolve_method("stl", "budget.reduction", path)
    labels = [allocator.label() for _, allocator in built]
    if len(set(labels)) != len(labels):
        twice = sorted({x for x in labels if labels.count(x) > 1})
        raise SuiteError(f"{path}: budget.allocators: listed twice: {twice}")

    jobs: dict[str, Job] = {}

    def add(config: dict[str, Any], label: str, **how: Any) -> str:
        job = new_job(raw.name or path.stem, config, label, **how)
        jobs.setdefault(job.id, job)
        return job.id

    def purchase(new_labels: dict[str, int] | None, same_images: bool, draw: int) -> dict[str, Any]:
        spec = {"name": "budget", "seed_labels": section.seed_labels, "new_labels": new_labels,
                "same_images": same_images, "draw": draw, "steps_per_epoch": section.steps_per_epoch}
        return {**plugin(SCENARIOS, spec, "budget", path), "mask_seed": raw.mask_seed}

    tables = []
    for dataset in datasets:
        train_size = build(DATASETS, dataset).split_size("train")
        pool = train_size - len(raw.tasks) * section.seed_labels
        if pool < 0:
            raise SuiteError(f"{path}: budget.seed_labels: {len(raw.tasks)} seed sets of {section.seed_labels} need "
                             f"more than the {dataset['name']} train split's {train_size} images")
        if "reduction" in needs and round(max(reduction["pseudo_labels"]) * section.seed_labels) > pool:
            raise SuiteError(f"{path}: budget.reduction.pseudo_labels: {max(reduction['pseudo_labels'])} x "
                             f"{section.seed_labels} pseudo-labelled images exceed the {pool} pool images")
        def config(seed: int, scenario: dict[str, Any], **extra: Any) -> dict[str, Any]:
            return {"dataset": dataset, "tasks": list(raw.tasks), "scenario": scenario, "method": method,
                    "model": model, "train": train, "seed": seed, **extra}

        seed_set = purchase(dict.fromkeys(raw.tasks, 0), False, 0)
        estimates: dict[str, Any] = {}
        if "probe" in needs:
            estimates["probe"] = [add(config(s, seed_set, probe=probe), "TABA informativeness probe",
                                      kind="taba-probe", name="taba-probe") for s in section.estimate_seeds]
        if "reduction" in needs:
            estimates["reduction"] = {
                t: [add({**config(s, seed_set, reduction={"task": t, **reduction}), "method": stl},
                        f"TABA reduction rate of {t}", kind="taba-reduction", name=f"taba-reduction-{t}")
                    for s in section.estimate_seeds] for t in raw.tasks}
        seed_jobs = [add(config(seed, seed_set), "seed set") for seed in raw.seeds]
        settings_rows = []
        for cost_label, costs in section.costs.items():
            costs = {t: costs[t] for t in raw.tasks}
            budget = section.budget or section.seed_labels * sum(costs.values())
            rows = []
            for spec, allocator in built:
                extra: dict[str, Any] = {}
                how: dict[str, Any] = {}
                new_labels = None
                if allocator.needs:
                    used = {k: estimates[k] for k in allocator.needs}
                    extra["purchase"] = {"allocator": spec, "costs": costs, "budget": budget, "estimates": used}
                    how["inputs"] = {"budget-purchase": estimate_ids(used)}
                else:
                    try:
                        new_labels = allocator.allocate(costs, budget)
                    except AllocationError as error:
                        raise SuiteError(f"{path}: budget.allocators: {error}") from None
                    bought = max(new_labels.values()) if allocator.same_images else sum(new_labels.values())
                    if bought > pool:
                        raise SuiteError(f"{path}: budget.costs.{cost_label}: {allocator.label()} buys {bought} "
                                         f"labels ({new_labels}) but {dataset['name']} has {pool} train images "
                                         f"outside the seed sets; enlarge its train split or lower the budget")
                ids = [add(config(seed, purchase(new_labels, allocator.same_images, seed), **extra),
                           f"{cost_label} {allocator.label()}", **how) for seed in raw.seeds]
                rows.append({"allocator": allocator.label(), "spec": spec, "new_labels": new_labels, "jobs": ids})
            settings_rows.append({"label": cost_label, "costs": costs, "budget": budget, "rows": rows})
        tables.append({"dataset": dataset["name"], "seed_labels": section.seed_labels, "seed_jobs": seed_jobs,
                       "estimates": estimates, "settings": settings_rows})
    return list(jobs.values()), {"tables": tables}
