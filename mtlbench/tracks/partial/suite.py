"""A partial-label suite expanded into jobs: every (dataset x scenario x method x seed), in the suite's order."""
from __future__ import annotations

from pathlib import Path

from ...config import SuiteError, SuiteFile, check_methods, check_scenario, plugin, resolve_common, resolve_method
from ...data import SCENARIOS
from ...jobs import Job, new_job


def expand(raw: SuiteFile, path: Path) -> list[Job]:
    """The jobs of the suite. Which of them read others' results (and so run after them) is decided by the
    recipe parts (``Part.inputs``), when the suite is loaded."""
    for key in ("scenarios", "methods"):
        if not getattr(raw, key):
            raise SuiteError(f"{path}: {key}: must list at least one entry")
    model, train, datasets = resolve_common(raw, path)
    scenarios = [plugin(SCENARIOS, spec, f"scenarios[{i}]", path) for i, spec in enumerate(raw.scenarios)]
    for i, scenario in enumerate(scenarios):
        check_scenario(scenario, raw.tasks, datasets, f"scenarios[{i}]", path)
        scenario["mask_seed"] = raw.mask_seed
    methods = [resolve_method(spec, f"methods[{i}]", path) for i, spec in enumerate(raw.methods)]
    check_methods(methods, datasets, raw.tasks, model, path)
    names = [m["name"] for m in methods]
    if len(set(names)) != len(names):
        duplicated = sorted(n for n in set(names) if names.count(n) > 1)
        raise SuiteError(f"{path}: methods: duplicate method names {duplicated}")
    for task in raw.leaderboard.metrics:
        if task not in raw.tasks:
            raise SuiteError(f"{path}: leaderboard.metrics.{task}: not a task of this suite ({', '.join(raw.tasks)})")
    name = raw.name or path.stem
    return [new_job(name, {"dataset": dataset, "tasks": list(raw.tasks), "scenario": scenario, "method": method,
                           "model": model, "train": train, "seed": seed})
            for dataset in datasets for scenario in scenarios for method in methods for seed in raw.seeds]
