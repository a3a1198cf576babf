"""A partial-label suite expanded into jobs: every (dataset x scenario x method x seed), in the suite's order."""
from __future__ import annotations

from pathlib import Path

from ...config import SuiteError, check_methods, check_scenario, plugin, resolve_common, resolve_method
from ...schema import SuiteFile
from ...data import DATASETS, SCENARIOS
from ...jobs import Job, new_job, scenario_label
from ...registry import build


def check_leaderboard(raw: SuiteFile, methods: list[str], datasets: list[dict], path: Path) -> None:
    """A baseline the suite names is one of its methods (the default, supervised, may be absent: the tables then
    have no ΔMTL column and say so), and every ΔMTL metric is one its task reports."""
    baseline = raw.leaderboard.baseline
    if "baseline" in raw.leaderboard.model_fields_set and baseline not in methods:
        raise SuiteError(f"{path}: leaderboard.baseline: {baseline!r} is not a method of this suite; ΔMTL needs it. "
                         f"Add it to methods or set leaderboard.baseline to one of {', '.join(methods)}")
    for task, metrics in raw.leaderboard.metrics.items():
        if task not in raw.tasks:
            raise SuiteError(f"{path}: leaderboard.metrics.{task}: not a task of this suite ({', '.join(raw.tasks)})")
        for dataset in datasets:
            reported = build(DATASETS, dataset).tasks()[task].directions
            unknown = [m for m in metrics if m not in reported]
            if unknown:
                raise SuiteError(f"{path}: leaderboard.metrics.{task}: {', '.join(unknown)} is not a metric of "
                                 f"{task}; its metrics: {', '.join(reported)}")


def expand(raw: SuiteFile, path: Path) -> list[Job]:
    """The jobs of the suite. Which of them read others' results (and so run after them) is decided by the
    recipe parts (``Part.inputs``), when the suite is loaded."""
    for key in ("scenarios", "methods"):
        if not getattr(raw, key):
            raise SuiteError(f"{path}: {key}: must list at least one entry")
    model, train, datasets = resolve_common(raw, path)
    scenarios = [plugin(SCENARIOS, spec, f"scenarios[{i}]", path) for i, spec in enumerate(raw.scenarios)]
    scenarios = swept(scenarios, raw, path)
    for i, scenario in enumerate(scenarios):
        check_scenario(scenario, raw.tasks, datasets, raw.mask_seed, f"scenarios[{i}]", path)
        scenario["mask_seed"] = raw.mask_seed
    methods = [resolve_method(spec, f"methods[{i}]", path) for i, spec in enumerate(raw.methods)]
    check_methods(methods, datasets, raw.tasks, model, path)
    names = [m["name"] for m in methods]
    if len(set(names)) != len(names):
        duplicated = sorted(n for n in set(names) if names.count(n) > 1)
        raise SuiteError(f"{path}: methods: duplicate method names {duplicated}")
    check_leaderboard(raw, names, datasets, path)
    check_grid(raw, datasets, path)
    name = raw.name or path.stem
    rates = raw.lr_grid.rates if raw.lr_grid else [None]
    return [new_job(name, {"dataset": dataset, "tasks": list(raw.tasks), "scenario": scenario, "method": method,
                           "model": model, "train": at_rate(train, rate), "seed": seed},
                    label="" if rate is None else f"{scenario_label(scenario)} lr={rate:g}")
            for dataset in datasets for scenario in scenarios for method in methods for rate in rates
            for seed in raw.seeds]


def swept(scenarios: list[dict], raw: SuiteFile, path: Path) -> list[dict]:
    """Each scenario at each value of the suite's ``sweep`` (as listed without one): a scenario at a value it
    would have anyway is the same scenario, and its jobs keep their ids."""
    if raw.sweep is None:
        return scenarios
    parameter = raw.sweep.parameter
    for i, scenario in enumerate(scenarios):
        if parameter not in scenario:
            raise SuiteError(f"{path}: sweep.parameter: {parameter!r} is not a parameter of scenarios[{i}] "
                             f"({scenario['name']}: {', '.join(k for k in scenario if k != 'name')})")
    expanded = [{**scenario, parameter: type(scenario[parameter])(value)}
                for scenario in scenarios for value in raw.sweep.values]
    labels = [scenario_label(scenario) for scenario in expanded]
    alike = sorted({label for label in labels if labels.count(label) > 1})
    if alike:
        raise SuiteError(f"{path}: sweep.values: two values give the same scenario {alike[0]!r} (tables name a "
                         f"scenario by its label, e.g. the unlabelled share in whole percent); give values further "
                         f"apart")
    return expanded


def at_rate(train: dict, rate: float | None) -> dict:
    """The training settings with the optimiser's learning rate set to one of the grid's (None: as they are)."""
    return train if rate is None else {**train, "optimizer": {**train["optimizer"], "lr": rate}}


def check_grid(raw: SuiteFile, datasets: list[dict], path: Path) -> None:
    """The grid's score is acc_mtl or a metric of the suite's tasks, and each rate keeps a run after trimming."""
    grid = raw.lr_grid
    if grid is None:
        return
    if len(raw.seeds) <= 2 * grid.trim:
        raise SuiteError(f"{path}: lr_grid.trim: {grid.trim} runs left out at each end of {len(raw.seeds)} seeds "
                         f"leave none; give more seeds or a smaller trim")
    if grid.score != "acc_mtl":
        task, _, metric = grid.score.partition("/")
        for dataset in datasets:
            reported = build(DATASETS, dataset).tasks()
            if task not in raw.tasks or metric not in reported[task].directions:
                raise SuiteError(f"{path}: lr_grid.score: {grid.score!r} is neither acc_mtl nor TASK/METRIC of this "
                                 f"suite's tasks ({', '.join(raw.tasks)})")
