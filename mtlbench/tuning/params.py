"""The best-parameters file: what ``mtlbench tune`` found, and ``mtlbench run SUITE --params FILE`` applies.

YAML, one entry per study, matched to a suite's jobs by (dataset, scenario, method)::

    suite: quickstart
    studies:
    - dataset: synthrooms
      scenario: onelabel
      method: dwa
      study: quickstart/synthrooms/onelabel/dwa-1a2b3c4d
      storage: sqlite:///results/quickstart/tuning/optuna.db
      objective: delta_mtl vs supervised (validation)
      direction: maximize
      trials: {complete: 18, pruned: 2}
      best_trial: 7
      value: 3.41
      params: {train.optimizer.lr: 0.00031, method.weighting.temperature: 3.2}

A job that gets parameters from the file has them set in its config and the study's name under ``tuned``, so
its id differs from the untuned job's and the leaderboard marks its row as tuned.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import yaml

from ..config import Suite, SuiteError, yaml_problem
from ..files import write_text_atomic
from ..ids import job_id
from ..jobs import Job
from ..track import TRACKS
from .studies import with_values

KEY_FIELDS = ("dataset", "scenario", "method")


def read_params(path: str | Path) -> list[dict[str, Any]]:
    path = Path(path)
    if not path.exists():
        raise SuiteError(f"--params {path}: file not found (mtlbench tune writes it, by default to "
                         f"results/SUITE/tuning/params.yaml)")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise SuiteError(yaml_problem(path, error)) from None
    studies = data.get("studies") if isinstance(data, dict) else None
    if not isinstance(studies, list):
        raise SuiteError(f"{path}: studies: expected a list of entries with {', '.join(KEY_FIELDS)} and params")
    for i, entry in enumerate(studies):
        missing = [k for k in (*KEY_FIELDS, "study", "params") if not isinstance(entry, dict) or k not in entry]
        if missing:
            raise SuiteError(f"{path}: studies[{i}]: missing {', '.join(missing)}")
        if not isinstance(entry["params"], dict):
            raise SuiteError(f"{path}: studies[{i}].params: expected a mapping of parameter path to value")
    return studies


def write_params(path: Path, suite: str, entries: list[dict[str, Any]]) -> None:
    """Merge ``entries`` into the file (an entry replaces the one with its dataset, scenario and method) and
    write it atomically."""
    kept = [e for e in (read_params(path) if path.exists() else [])
            if all(key(e) != key(n) for n in entries)]
    header = ("# mtlbench tune: the best parameters of each study, chosen on the validation split.\n"
              "# Apply with: mtlbench run SUITE --params THIS_FILE\n")
    path.parent.mkdir(parents=True, exist_ok=True)
    write_text_atomic(path, header + yaml.safe_dump({"suite": suite, "studies": kept + entries}, sort_keys=False,
                                                    allow_unicode=True))


def key(entry: dict[str, Any]) -> tuple[str, ...]:
    return tuple(str(entry[k]) for k in KEY_FIELDS)


def apply_params(suite: Suite, path: str | Path, beside_paper: bool = False) -> Suite:
    """The suite with each job whose (dataset, scenario, method) has an entry trained with its parameters; with
    ``beside_paper``, the suite's own jobs stay too, so that its leaderboard has a paper and a tuned row per
    tuned method (``<method> (tuned)``, jobs.row_name)."""
    entries = {key(e): e for e in read_params(path)}
    if not TRACKS.get(suite.track).tunable:
        raise SuiteError(f"--params: suite {suite.name} is a {suite.track} suite, which `mtlbench tune` does not "
                         f"tune; tuned parameters apply to suites of the tracks {', '.join(tunable_tracks())}")
    jobs, matched = [], set()
    for job in suite.jobs:
        entry = entries.get((job.dataset, job.scenario, job.method))
        if entry is None:
            jobs.append(job)
            continue
        matched.add(key(entry))
        try:
            config = {**with_values(job.config, entry["params"]), "tuned": entry["study"]}
        except (KeyError, TypeError) as error:
            raise SuiteError(f"{path}: study {entry['study']}: parameter {error} is not in the config of "
                             f"{job.describe()}; the file was tuned for another recipe") from None
        jobs.append(dataclasses.replace(job, id=job_id(config), config=config))
    if not matched:
        raise SuiteError(f"{path}: no entry matches a (dataset, scenario, method) of suite {suite.name}; entries: "
                         f"{', '.join('/'.join(k) for k in entries)}")
    tuned = renamed_needs(jobs, dict(zip((j.id for j in suite.jobs), jobs)))
    if beside_paper:
        paper = {job.id for job in suite.jobs}
        tuned = [*suite.jobs, *(job for job in tuned if job.id not in paper)]
    return dataclasses.replace(suite, jobs=tuned)


def renamed_needs(jobs: list[Job], by_old_id: dict[str, Job]) -> list[Job]:
    """The jobs with their inputs pointing at the tuned jobs' new ids (a tuned stl job feeds AMTL)."""
    return [dataclasses.replace(job, inputs={r: tuple(by_old_id[i].id for i in ids) for r, ids in job.inputs.items()})
            for job in jobs]


def tunable_tracks() -> list[str]:
    return [name for name in TRACKS.list() if TRACKS.get(name).tunable]
