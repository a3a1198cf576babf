"""A W&B project as a results store: ``mtlbench leaderboard --from-wandb ENTITY/PROJECT [--suite S]``.

Every job's run carries what its result.json holds for a leaderboard: the ``mtlbench`` config block (job id,
dataset, scenario, method, seed, params, metric directions, primary metrics) and the test metrics, hardware,
metric conventions, the constant prediction's metrics, the diverged tasks and the job's costs in its summary. The suite-level run (``<suite>-leaderboard``) carries the suite's
summary (method order, baseline, published numbers, ...). For ``leaderboard.select: best_val`` the runs' logged
epochs (their history) are fetched too: each row holds an epoch's stage, validation and, with
``train.test_every_epoch``, test metrics. ``fetch`` is the only call to the server (the public API); everything
else works on ``RunRecord``s, whatever read them.
"""
from __future__ import annotations

import dataclasses
import json
from typing import Any

from .aggregate import LeaderboardError
from ..schema import resolved
from ..track import DEFAULT_TRACK, summary_track


@dataclasses.dataclass(frozen=True)
class RunRecord:
    """What a leaderboard reads of a W&B run: its config, summary, tags and state, and its logged rows when
    fetched (flat keys as W&B keeps them: ``stage``, ``epoch``, ``val/TASK/METRIC``, ...)."""

    config: dict[str, Any]
    summary: dict[str, Any]
    tags: tuple[str, ...] = ()
    state: str = "finished"
    history: tuple[dict[str, Any], ...] = ()


def fetch(path: str, suite: str | None, with_history: bool = False) -> list[RunRecord]:
    """The finished runs of ``ENTITY/PROJECT`` (of one suite when given), from the W&B public API; with
    ``with_history``, every logged row of each run too (one more request per run)."""
    import wandb

    filters = {"state": "finished", **({"config.suite": suite} if suite else {})}
    return [RunRecord(dict(run.config), dict(run.summary._json_dict), tuple(run.tags), run.state,
                      tuple(run.scan_history()) if with_history else ())
            for run in wandb.Api().runs(path, filters=filters)]


def needs_history(summary: dict[str, Any], select: str | None) -> bool:
    """Whether the leaderboard reports a chosen epoch (``--select``, else the suite's ``leaderboard.select``)."""
    return resolved(summary, select)["leaderboard"]["select"] == "best_val"


def suites_in(runs: list[RunRecord]) -> list[str]:
    return sorted({run.config["suite"] for run in runs if "suite" in run.config and "mtlbench" in run.config})


def epoch_records(rows: tuple[dict[str, Any], ...]) -> list[dict[str, Any]]:
    """A run's logged epochs as the results store keeps them (``history``): stage, epoch, val and, where logged,
    test; an epoch logged twice (a continued run) counts once, as last logged."""
    records: dict[tuple[str, int], dict[str, Any]] = {}
    for row in rows:
        if "stage" in row and "epoch" in row:
            record = {"stage": row["stage"], "epoch": int(row["epoch"]), "val": nested(row, "val")}
            test = nested(row, "test")
            records[record["stage"], record["epoch"]] = {**record, **({"test": test} if test else {})}
    return list(records.values())


def last_validation(history: list[dict[str, Any]]) -> dict[str, dict[str, float]]:
    """Each stage's last-epoch validation metrics (a result's ``val``), from its epoch records."""
    val: dict[str, dict[str, float]] = {}
    for record in sorted(history, key=lambda r: r["epoch"]):
        val.update(record["val"])
    return val


def nested(summary: dict[str, Any], split: str) -> dict[str, dict[str, float]]:
    """``split/TASK/METRIC`` keys of a summary or a logged row as {task: {metric: value}}; a value W&B keeps as
    {"min"|"max": v} (a summary's best validation epoch, by the metric's direction) is that value."""
    values: dict[str, dict[str, float]] = {}
    for key, value in summary.items():
        parts = key.split("/")
        if len(parts) == 3 and parts[0] == split:
            values.setdefault(parts[1], {})[parts[2]] = next(iter(value.values())) if isinstance(value, dict) \
                else value
    return values


def result_of(run: RunRecord) -> dict[str, Any]:
    """A job's result as the leaderboard reads it, from its run."""
    meta = run.config["mtlbench"]
    tasks = run.config["tasks"]  # the job's order (a summary's keys are sorted)
    history = epoch_records(run.history)
    test = nested(run.summary, "test")
    val = last_validation(history) if history else nested(run.summary, "val")  # the summary: each best epoch
    return {"job_id": meta["job_id"], "suite": meta["suite"], "dataset": meta["dataset"],
            "scenario": meta["scenario"], "method": meta["method"], "seed": meta["seed"], "tasks": tasks,
            "test": {t: test[t] for t in tasks if t in test}, "val": {t: val[t] for t in tasks if t in val},
            "history": history, "primary": meta["primary"],
            "directions": meta["directions"], "device": run.summary.get("device", "unknown (W&B run)"),
            **({"commit": run.summary["commit"]} if "commit" in run.summary else {}),
            "metrics_version": run.summary.get("metrics_version", 1),
            "constant": nested(run.summary, "constant"), "diverged": list(run.summary.get("diverged", [])),
            **({"costs": costs} if (costs := under(run.summary, "costs")) else {}),
            "config": {"tuned": meta.get("params") == "tuned"}}


def under(summary: dict[str, Any], prefix: str) -> dict[str, Any]:
    """The ``prefix/NAME`` keys of a summary as {NAME: value} (a job's ``costs``, flattened when logged)."""
    return {key[len(prefix) + 1:]: value for key, value in summary.items() if key.startswith(prefix + "/")}


def suite_from_runs(runs: list[RunRecord], suite: str | None) -> tuple[dict[str, Any], list[dict[str, Any]]]:
    """The suite's summary and its jobs' results from a project's runs (tuning trials left out)."""
    names = suites_in(runs)
    if suite is None:
        if len(names) != 1:
            raise LeaderboardError(f"the W&B runs hold {len(names)} suites ({', '.join(names) or 'none'}): name one "
                                   f"with --suite")
        suite = names[0]
    mine = [run for run in runs if run.config.get("suite") == suite and run.state == "finished"]
    boards = [run for run in mine if run.config.get("mtlbench", {}).get("kind") == "leaderboard"]
    jobs = [run for run in mine if run.config.get("mtlbench", {}).get("kind") == "train" and "study" not in run.config]
    if not jobs:
        raise LeaderboardError(f"no finished job run of suite {suite!r} in the W&B runs (runs of mtlbench 0.2 and "
                               f"later carry the config block this needs)")
    results = [result_of(run) for run in jobs]
    summary = json.loads(boards[0].config["mtlbench"]["summary"]) if boards else {
        "name": suite, "path": "W&B", "leaderboard": {},
        "methods": list(dict.fromkeys(r["method"] for r in results))}
    track = summary_track(summary)
    if track != DEFAULT_TRACK:
        raise LeaderboardError(f"suite {suite!r} is a {track} suite; --from-wandb builds the default track's "
                               f"per-table leaderboards")
    return {**summary, "path": f"{summary.get('path', suite)} (from W&B)"}, results


__all__ = ["RunRecord", "fetch", "needs_history", "result_of", "suite_from_runs"]
