"""Which epoch a leaderboard reports (``leaderboard.select``), chosen on the validation split, never on test.

- ``last`` (the default): the last epoch's network, as the papers' tables report.
- ``best_val``: per job and per stage (STL trains one network per task), the epoch with the best validation
  score, and the test metrics recorded at that epoch (jobs run with ``train.test_every_epoch``), as LibMTL
  reports. The score (``leaderboard.select_by``) is ``delta_mtl``, the validation ΔMTL of the stage's tasks
  against the baseline method's last-epoch validation metrics averaged over its seeds (fixed, so that no job's
  choice depends on another's), or ``TASK/METRIC``, that metric in its direction (stages that do not train
  TASK, such as STL's other networks, are chosen by validation ΔMTL). Ties go to the earliest epoch.
"""
from __future__ import annotations

import copy
from typing import Any

import numpy as np

from ..metrics import UndefinedDelta, delta_mtl
from .aggregate import LeaderboardError

SELECTIONS = ("last", "best_val")


def select_epochs(results: list[dict[str, Any]], select: str, select_by: str, baseline: str,
                  chosen: dict[str, list[str]]) -> list[dict[str, Any]]:
    """The results with ``test`` and ``val`` taken from the selected epoch of each stage (``selected_epochs``
    records which); ``last`` leaves them as they are."""
    if select not in SELECTIONS:
        raise LeaderboardError(f"leaderboard.select {select!r}: choose one of {', '.join(SELECTIONS)}")
    if select == "last":
        return results
    untested = [r["job_id"] for r in results
                if not r.get("history") or not all("test" in record for record in r["history"])]
    if untested:
        raise LeaderboardError(f"leaderboard.select: best_val needs the test metrics of every epoch, and "
                               f"{len(untested)} job(s) ran without train.test_every_epoch ({', '.join(untested[:5])}"
                               f"{', ...' if len(untested) > 5 else ''}): set train.test_every_epoch: true in the "
                               f"suite and rerun it, or use --select last")
    references = baseline_validation(results, baseline)
    return [selected(result, references.get((result["dataset"], result["scenario"])), select_by, baseline, chosen)
            for result in results]


def baseline_validation(results: list[dict[str, Any]], baseline: str) -> dict[tuple[str, str], dict]:
    """Per (dataset, scenario): the baseline's last-epoch validation metrics, averaged over its seeds."""
    grouped: dict[tuple[str, str], list[dict]] = {}
    for result in results:
        if result["method"] == baseline:
            grouped.setdefault((result["dataset"], result["scenario"]), []).append(result["val"])
    return {key: {task: {metric: float(np.mean([v[task][metric] for v in vals])) for metric in vals[0][task]}
                  for task in vals[0]} for key, vals in grouped.items()}


def selected(result: dict[str, Any], reference: dict | None, select_by: str, baseline: str,
             chosen: dict[str, list[str]]) -> dict[str, Any]:
    result = copy.deepcopy(result)
    stages: dict[str, list[dict]] = {}
    for record in result["history"]:
        stages.setdefault(record["stage"], []).append(record)
    result["selected_epochs"] = {}
    for stage, records in stages.items():
        score = scorer(result, list(records[-1]["val"]), reference, select_by, baseline, chosen)
        best = max(records, key=lambda record: (score(record["val"]), -record["epoch"]))
        result["selected_epochs"][stage] = best["epoch"]
        result["test"].update(best["test"])
        result["val"].update(best["val"])
    return result


def scorer(result: dict[str, Any], tasks: list[str], reference: dict | None, select_by: str, baseline: str,
           chosen: dict[str, list[str]]):
    """Higher is better: the chosen metric signed by its direction, or the validation ΔMTL of ``tasks``."""
    task, _, metric = select_by.partition("/")
    if select_by != "delta_mtl" and task in tasks:
        if metric not in result["directions"][task]:
            raise LeaderboardError(f"leaderboard.select_by {select_by!r}: task {task} has no metric {metric!r} "
                                   f"(it has {', '.join(result['directions'][task])})")
        sign = 1.0 if result["directions"][task][metric] else -1.0
        return lambda val: sign * val[task][metric]
    if select_by != "delta_mtl" and task not in result["directions"]:
        raise LeaderboardError(f"leaderboard.select_by {select_by!r}: give delta_mtl or TASK/METRIC with a task "
                               f"of the suite ({', '.join(result['directions'])})")
    if reference is None:
        raise LeaderboardError(f"leaderboard.select: best_val by validation ΔMTL needs the baseline {baseline!r} "
                               f"in {result['dataset']} / {result['scenario']}, which has no result of it: set "
                               f"leaderboard.select_by to TASK/METRIC or run the baseline")
    metrics = {t: chosen.get(t, [result["primary"][t]]) for t in tasks}
    directions = {t: result["directions"][t] for t in tasks}
    try:
        delta_mtl(reference, reference, directions, metrics)
    except UndefinedDelta as error:
        raise LeaderboardError(f"leaderboard.select: best_val by validation ΔMTL in {result['dataset']} / "
                               f"{result['scenario']}: {error} (the last-epoch validation mean of {baseline}); set "
                               f"leaderboard.select_by to TASK/METRIC or choose other leaderboard.metrics") from None
    return lambda val: delta_mtl(val, reference, directions, metrics)


__all__ = ["SELECTIONS", "select_epochs"]
