"""A trial: the study's jobs with the trial's parameters, trained on the training split and scored on the
validation split, epoch by epoch, so that the pruner can stop it early.

Trials are ordinary harness jobs (id = hash of the config) run with ``Validation``: the test split is never
loaded. They live in ``<results>/<suite>/tuning/``; a trial whose parameters an earlier trial already trained
reuses that job's result, and an interrupted trial's job resumes from its checkpoint when its parameters are
tried again (``mtlbench tune`` re-queues them). A lock file per job keeps two processes from training the same
job at once (the second waits, then reads the result).
"""
from __future__ import annotations

import fcntl
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any, Iterator

from ..jobs import Job
from ..runner.executor import RunOptions, Validation, execute
from ..runner.progress import Progress
from ..runner.store import Store
from .studies import Metrics, StudySpec


class Surplus(Exception):
    """This process asked for a trial after other processes had taken the study's last one."""


@dataclass(frozen=True)
class Context:
    """Where and how a study's jobs run."""

    results: str
    wandb: str
    project: str
    entity: str | None

    def run(self, job: Job, validation: Validation) -> dict[str, Any]:
        """The job's result, trained now unless it is finished (by this or another process)."""
        store = Store(self.results)
        with job_lock(store, job):
            result = store.result(job.suite, job.id)
            if result is None:
                progress = Progress([job], live=False)
                result = execute(job, RunOptions(self.results, wandb=self.wandb), self.project, self.entity,
                                 progress, validation)
        return result


@contextmanager
def job_lock(store: Store, job: Job) -> Iterator[None]:
    directory = store.job_dir(job)
    directory.mkdir(parents=True, exist_ok=True)
    with open(directory / "lock", "w") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def reference_metrics(spec: StudySpec, context: Context) -> Metrics | None:
    """The reference method's validation metrics, averaged over the tuning seeds (None without ΔMTL). Every
    reference job (and the STL jobs AMTL takes its potentials from) is trained, validation only, first."""
    results = {job.id: context.run(job, Validation(spec.name, {"study": spec.name, "role": "reference"}))
               for job in spec.references}
    if spec.baseline is None:
        return None
    baseline = [results[j.id]["val"] for j in spec.references if j.method == spec.baseline]
    return {task: {metric: sum(r[task][metric] for r in baseline) / len(baseline) for metric in baseline[0][task]}
            for task in baseline[0]}


class Objective:
    """Optuna's objective for one study: the mean validation score of the trial's jobs over the tuning seeds."""

    def __init__(self, spec: StudySpec, context: Context, reference: Metrics | None, budget: int) -> None:
        self.spec, self.context, self.reference, self.budget = spec, context, reference, budget
        self.epochs = spec.jobs[0].config["train"]["epochs"]

    def __call__(self, trial: Any) -> float:
        if is_surplus(trial.study, trial.number, self.budget):
            trial.set_user_attr("surplus", True)
            raise Surplus(f"trial {trial.number}: the study's {self.budget} trials are taken")
        params = {path: space.suggest(trial, path) for path, space in self.spec.space.items()}
        try:
            scores = [self.seed_score(trial, i, self.spec.trial_job(base, params), params)
                      for i, base in enumerate(self.spec.jobs)]
        except KeyboardInterrupt:
            trial.set_user_attr("interrupted", True)
            trial.study.enqueue_trial(params, user_attrs={"resumes": trial.number})
            raise
        return sum(scores) / len(scores)

    def seed_score(self, trial: Any, index: int, job: Job, params: dict[str, Any]) -> float:
        import optuna

        offset = index * self.epochs
        store = Store(self.context.results)
        finished = store.result(job.suite, job.id)
        if finished:  # an unfinished job's earlier epochs reach ``score`` as the trainer replays them
            self.report(trial, offset, finished["history"])

        def score(record: dict[str, Any]) -> dict[str, float]:
            if not self.spec.score.covers(record["val"]):
                return {}
            value = self.spec.score(record["val"], self.reference)
            trial.report(value, offset + record["epoch"])
            if trial.should_prune():
                raise optuna.TrialPruned(f"trial {trial.number}: epoch {record['epoch']} scored {value:.4g}")
            return {"tune/objective": value}

        config = {"study": self.spec.name, "trial": trial.number, "params": params}
        try:
            result = self.context.run(job, Validation(self.spec.name, config, score))
        except optuna.TrialPruned:
            store.restart(job)
            raise
        return self.spec.score(result["val"], self.reference)

    def report(self, trial: Any, offset: int, history: list[dict[str, Any]]) -> None:
        """Scores of the epochs of a job that finished before this trial (a repeated trial's)."""
        for record in history:
            if self.spec.score.covers(record["val"]):
                trial.report(self.spec.score(record["val"], self.reference), offset + record["epoch"])


def counts(study: Any) -> dict[str, int]:
    """Trials per state name (COMPLETE, PRUNED, RUNNING, WAITING, FAIL)."""
    tally: dict[str, int] = {}
    for trial in study.get_trials(deepcopy=False):
        tally[trial.state.name] = tally.get(trial.state.name, 0) + 1
    return tally


def is_surplus(study: Any, number: int, budget: int) -> bool:
    """Whether trial ``number`` would exceed the budget: finished trials, and the running or queued ones up to
    this number, take the budget's places (of two trials asked for at once, the later one gives way)."""
    places = 0
    for trial in study.get_trials(deepcopy=False):
        state = trial.state.name
        places += state in ("COMPLETE", "PRUNED") or (state in ("RUNNING", "WAITING") and trial.number <= number)
    return places > budget
