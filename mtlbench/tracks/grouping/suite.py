"""A grouping suite (a ``grouping:`` section) expanded into one job per candidate network and seed.

The networks (Standley et al. 2020 Sec. 3.1, 4.2): every non-empty subset of the suite's tasks at full size
(2^K - 1), the single-task networks of ``selection_sizes`` (which join C_0) and of ``independent_sizes`` (the
Independent baseline), and the all-task networks of ``traditional_sizes`` (Traditional MTL). A network of size s has
the encoder width whose measured FLOPs are s SNT (sizing.py). Each is a ``grouping-network`` job (an ordinary
training job that also records ESA's early losses): full labels, the suite's method (default ``supervised``: with
every label present, the unweighted mean of its tasks' losses, Sec. 4.2), the suite's model and schedule; the runner
caches, resumes and distributes them like any other job. Selection happens in the leaderboard (or ``mtlbench
select``), from the finished jobs' losses. With ``transfer``, a ``grouping-transfer`` job per ordered pair of tasks and
seed fine-tunes the source's full-size network for the target (transfer.py); it needs that network's job, which then
keeps its weights.
"""
from __future__ import annotations

import itertools
from pathlib import Path
from typing import Any, Callable

from pydantic import Field, PositiveFloat

from ...config import SuiteError, plugin, resolve_single_method_track
from ...schema import Strict, SuiteFile
from ...data import DATASETS, SCENARIOS
from ...jobs import Job, new_job
from ...methods import GRADIENTS
from ...registry import build
from .losses import Network
from .methods import SELECTORS
from .selection import OBJECTIVES
from .sizing import width_for
from .transfer import SOURCE


class GroupingSection(Strict):
    """The task-grouping track (Standley et al. 2020): which networks to train, which selectors to compare, at which
    budgets."""

    selection_sizes: list[PositiveFloat] = Field([0.5], description="single-task sizes that join C_0 (Sec. 4.2)")
    independent_sizes: list[PositiveFloat] = Field([0.2, 0.3, 0.4, 0.5, 0.8, 1.0],
                                                   description="single-task sizes of the Independent baseline")
    traditional_sizes: list[PositiveFloat] = Field([1.0, 2.0, 2.5, 4.0],
                                                   description="all-task network sizes of Traditional MTL")
    budgets: list[PositiveFloat] | None = Field(None, description="SNT; default 1 to K in steps of 0.5")
    esa_fraction: float = Field(0.2, ge=0, description="ESA's passes through the training data (0: no ESA)")
    methods: list[str | dict[str, Any]] = ["optimal", "esa", "hoa", "traditional", "independent", "random",
                                           "pessimal"]
    objective: str | dict[str, Any] = "lowest_total"
    transfer: bool = Field(False, description="also fine-tune each task's full-size network for every other task: "
                                              "transfer affinities beside the multi-task ones (Table 3, Fig. 3)")


def networks_of(tasks: list[str], section: Any) -> list[Network]:
    subsets = [Network(tuple(c)) for r in range(1, len(tasks) + 1) for c in itertools.combinations(tasks, r)]
    smaller = sorted({s for s in [*section.selection_sizes, *section.independent_sizes] if s != 1}, reverse=True)
    singles = [Network((t,), s) for s in smaller for t in tasks]
    everything = [Network(tuple(tasks), s) for s in sorted(set(section.traditional_sizes) - {1})]
    return subsets + singles + everything


def default_budgets(k: int) -> list[float]:
    """1 to K SNT in steps of 0.5, as the paper's 1 to 5 for five tasks."""
    return [1 + 0.5 * i for i in range(2 * k - 1)]


def expand_grouping(raw: SuiteFile, path: Path) -> tuple[list[Job], dict[str, Any]]:
    section = raw.grouping
    if len(raw.tasks) < 2:
        raise SuiteError(f"{path}: tasks: grouping needs at least two tasks")
    model, train, datasets, method = resolve_single_method_track(
        raw, path, "grouping", "every network trains on full labels",
        "default supervised: the unweighted mean of the task losses, Sec. 4.2")
    selectors, objective = checked_selection(raw, path, train, model)
    scenario = {**plugin(SCENARIOS, "full", "scenario", path), "mask_seed": raw.mask_seed}
    jobs: list[Job] = []

    def network_jobs(dataset: dict[str, Any], network: Network, width: float,
                     trained_with: dict[str, Any] | None = None) -> list[str]:
        """One job per seed of one candidate network, its encoder at ``width`` (trained with the suite's method,
        or ``trained_with``); their ids."""
        config = {"dataset": dataset, "tasks": list(network.tasks), "scenario": scenario,
                  "method": trained_with or method,
                  "model": {**model, "width": width}, "train": train,
                  "grouping": {"size": network.size, "esa_fraction": section.esa_fraction}}
        added = [new_job(raw.name or path.stem, {**config, "seed": seed}, network.name, kind="grouping-network")
                 for seed in raw.seeds]
        jobs.extend(added)
        return [job.id for job in added]

    def transfer_jobs(dataset: dict[str, Any], source: str, target: str, width: float,
                      sources: list[str]) -> list[str]:
        """One job per seed fine-tuning ``source``'s full-size network (its job of that seed: ``sources``) for
        ``target`` (transfer.py); their ids."""
        config = {"dataset": dataset, "tasks": [target], "scenario": scenario, "method": method,
                  "model": {**model, "width": width}, "train": train,
                  "grouping": {"size": 1.0, "esa_fraction": 0.0, "transfer_from": source}}
        added = [new_job(raw.name or path.stem, {**config, "seed": seed}, f"{source}->{target}",
                         kind="grouping-transfer", inputs={SOURCE: [source_id]})
                 for seed, source_id in zip(raw.seeds, sources)]
        jobs.extend(added)
        return [job.id for job in added]

    sener = sener_method(method, path) if any(s["name"] == "sener" for s in selectors) else None
    tables = [network_table(raw, path, model, dataset, network_jobs, sener) for dataset in datasets]
    if section.transfer:
        for dataset, table in zip(datasets, tables):
            table["transfer"] = transfer_rows(table, dataset, list(raw.tasks), transfer_jobs)
    summary = {"tasks": list(raw.tasks), "seeds": list(raw.seeds),
               "budgets": sorted(section.budgets or default_budgets(len(raw.tasks))),
               "selection_sizes": sorted(section.selection_sizes), "esa_fraction": section.esa_fraction,
               "methods": selectors, "objective": objective, "tables": tables}
    return jobs, summary


def transfer_rows(table: dict[str, Any], dataset: dict[str, Any], tasks: list[str],
                  transfer_jobs: Callable[..., list[str]]) -> list[dict[str, Any]]:
    """Every ordered pair of tasks with the jobs that fine-tune the source's full-size network for the target."""
    singles = {row["tasks"][0]: row for row in table["networks"] if len(row["tasks"]) == 1 and row["size"] == 1}
    return [{"source": source, "target": target,
             "jobs": transfer_jobs(dataset, source, target, singles[source]["width"], singles[source]["jobs"])}
            for source, target in itertools.permutations(tasks, 2)]


def checked_selection(raw: SuiteFile, path: Path, train: dict[str, Any],
                      model: dict[str, Any]) -> tuple[list[dict[str, Any]], dict[str, Any]]:
    """The selectors and the objective, resolved, and what they need of the suite checked."""
    section = raw.grouping
    selectors = [plugin(SELECTORS, spec, f"grouping.methods[{i}]", path) for i, spec in enumerate(section.methods)]
    if not selectors:
        raise SuiteError(f"{path}: grouping.methods: must list at least one of {', '.join(SELECTORS.list())}")
    objective = plugin(OBJECTIVES, section.objective, "grouping.objective", path)
    unknown = sorted(set(objective.get("limits", {})) - set(raw.tasks))
    if unknown:
        raise SuiteError(f"{path}: grouping.objective.limits: {', '.join(unknown)} not a task of this suite")
    if any(s["name"] == "esa" for s in selectors) and not section.esa_fraction:
        raise SuiteError(f"{path}: grouping.esa_fraction: esa needs the early losses; set a fraction > 0 (paper: 0.2)")
    if section.esa_fraction > train["epochs"]:
        raise SuiteError(f"{path}: grouping.esa_fraction: {section.esa_fraction} passes through the data exceed "
                         f"train.epochs = {train['epochs']}")
    if "width" not in model:
        raise SuiteError(f"{path}: model: {model['name']!r} has no 'width' to size encoders by (use segnet)")
    return selectors, objective


def sener_method(method: dict[str, Any], path: Path) -> dict[str, Any]:
    """The suite's method with MGDA as its gradient rule (Sener and Koltun 2018): the "Sener et al." row of Standley
    et al. 2020 Table 4 trains the all-task networks so."""
    return {**method, "name": f"{method['name']}+mgda", "gradients": plugin(GRADIENTS, "mgda", "sener", path)}


def network_table(raw: SuiteFile, path: Path, model: dict[str, Any], dataset: dict[str, Any],
                  network_jobs: Callable[..., list[str]], sener: dict[str, Any] | None = None) -> dict[str, Any]:
    """A dataset's candidate networks, each with its encoder width sized to its FLOPs (Sec. 4.1), cost and
    parameters relative to one standard network, and its jobs; with ``sener`` (the MGDA method), also the all-task
    networks of ``traditional_sizes`` trained with it (``sener``: not candidates of any other selector)."""
    instance = build(DATASETS, dataset)
    height, width = getattr(instance, "height", None), getattr(instance, "width", None)
    if height is None or width is None:
        raise SuiteError(f"{path}: dataset: {dataset['name']!r} has no fixed height and width to measure "
                         f"encoder FLOPs at")
    standard = width_for(model, 1, height, width)
    rows = []
    for network in networks_of(list(raw.tasks), raw.grouping):
        encoder = width_for(model, network.size, height, width)
        rows.append({"tasks": list(network.tasks), "size": network.size, "width": encoder.width,
                     "cost": encoder.flops / standard.flops, "params": encoder.params / standard.params,
                     "jobs": network_jobs(dataset, network, encoder.width)})
    table = {"dataset": dataset["name"], "input": [height, width],
             "snt": {"flops": standard.flops, "params": standard.params}, "networks": rows}
    if sener is not None:
        table["sener"] = []
        for size in sorted(set(raw.grouping.traditional_sizes)):
            encoder = width_for(model, size, height, width)
            table["sener"].append({"tasks": list(raw.tasks), "size": size, "width": encoder.width,
                                   "cost": encoder.flops / standard.flops, "params": encoder.params / standard.params,
                                   "jobs": network_jobs(dataset, Network(tuple(raw.tasks), size), encoder.width,
                                                        sener)})
    return table
