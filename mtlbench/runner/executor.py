"""Run a suite's jobs: skip finished ones, resume interrupted ones, keep going past a failed one.

Local execution is in process; with several GPUs visible (or ``workers > 1``) jobs are spread over one
spawned worker process per device. The results store is the only shared state, so a suite interrupted at
any point is resumed by running it again.
"""
from __future__ import annotations

import multiprocessing
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from .. import __version__
from ..config import Job, Suite
from ..tracking import open_run
from .progress import Progress
from .store import Store


@dataclass(frozen=True)
class RunOptions:
    results: str = "results"
    force: bool = False
    wandb: str = "offline"
    workers: int = 1
    device: str | None = None  # overrides train.device (set per worker)


@dataclass(frozen=True)
class Validation:
    """How tuning runs a job: the test split is never loaded, the W&B run joins the study's group with the
    trial in its config, and ``score`` turns each epoch's record into values logged with it (it may raise to
    stop the job, e.g. when a pruner says so)."""

    group: str
    config: dict[str, Any] = field(default_factory=dict)
    score: Callable[[dict[str, Any]], dict[str, float]] = lambda record: {}


def execute(job: Job, options: RunOptions, project: str, entity: str | None, progress: Progress,
            validation: Validation | None = None) -> dict[str, Any]:
    """Train one job into the store; returns its result record (``test`` empty under ``validation``)."""
    from ..train import run_job  # torch is imported only when a job really runs

    store = Store(options.results)
    job_dir = store.prepare(job, options.force)
    config = with_allocation(job, store, with_potentials(job, store))
    if options.device is not None:
        config = {**config, "train": {**config["train"], "device": options.device}}
    group, extra = (validation.group, validation.config) if validation else (None, None)
    run = open_run(options.wandb, project, entity, job, job_dir, group, extra)
    history = store.history(job)  # a resumed job keeps the records of the epochs it trained before

    def on_epoch(record: dict[str, Any]) -> None:
        history.append(record)
        store.write_history(job, history)
        scores = validation.score(record) if validation else {}
        run.log({**{k: v for k, v in record.items() if k != "epochs"}, **scores})
        progress.epoch(job, record)

    try:
        outcome = run_job(config, job_dir, on_epoch, test=validation is None)
    except BaseException as error:  # pruned, interrupted or failed: the W&B run says so and the job resumes later
        run.finish({"stopped": type(error).__name__}, exit_code=1)
        raise
    store.write_history(job, outcome["history"])
    result = {
        "schema": 1, "job_id": job.id, "suite": job.suite, "dataset": job.dataset, "scenario": job.scenario,
        "method": job.method, "seed": job.seed, "tasks": list(job.config["tasks"]),
        "test": outcome["test"], "val": outcome["val"],
        **{k: outcome[k] for k in ("primary", "directions", "history", "labels_per_task",
                                   "resumed_from_epoch", "train_seconds",
                                   "device", "torch")},
        "mtlbench": __version__, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": job.config,
    }
    if config["method"]["weighting"] != job.config["method"]["weighting"]:
        result["potentials"] = config["method"]["weighting"]["potentials"]
    if "estimate" in outcome:
        result["estimate"] = outcome["estimate"]
    if config["scenario"]["name"] == "budget":
        result["new_labels"] = config["scenario"]["new_labels"]
    if "allocation" in config:
        result["allocation"] = config["allocation"]
    store.finish(job, result)
    run.finish({"test": result["test"], "val": result["val"], "train_seconds": result["train_seconds"]})
    return result


def with_potentials(job: Job, store: Store) -> dict[str, Any]:
    """AMTL's potentials: each task's STL accuracy on the same dataset and scenario, from the validation
    metrics of the suite's finished ``stl`` jobs (mean over their seeds; only jobs the suite still expands to,
    as in its leaderboard). Other jobs pass unchanged."""
    weighting = job.config["method"]["weighting"]
    if weighting["name"] != "amtl" or weighting.get("potentials") is not None:
        return job.config
    from ..data import DATASETS
    from ..methods.weighting import accuracy_metric
    from ..registry import build

    current = store.suite_summary(job.suite).get("jobs")
    stl = [r for r in store.results(job.suite) if r["method"] == "stl" and r["dataset"] == job.dataset
           and r["scenario"] == job.scenario and r["tasks"] == job.config["tasks"]
           and (current is None or r["job_id"] in current)]
    if not stl:
        raise RuntimeError(f"amtl needs STL potentials for {job.dataset}/{job.scenario}, but "
                           f"{store.suite_dir(job.suite)} has no finished stl job for them: add stl to the suite's "
                           f"methods (its jobs run first) or set weighting.potentials")
    tasks = build(DATASETS, job.config["dataset"]).tasks()
    potentials = {t: sum(r["val"][t][accuracy_metric(tasks[t])] for r in stl) / len(stl) for t in job.config["tasks"]}
    method = {**job.config["method"], "weighting": {**weighting, "potentials": potentials}}
    return {**job.config, "method": method}


def with_allocation(job: Job, store: Store, config: dict[str, Any]) -> dict[str, Any]:
    """TABA's label counts, from the finished estimate jobs the config names (budget/suite.py); the resolved
    counts and the estimates they came from go into the config the job trains with and into its result."""
    if "allocation" not in config:
        return config
    from ..budget.estimates import resolve_allocation

    allocation = resolve_allocation(config["allocation"], lambda job_id: store.result(job.suite, job_id))
    scenario = {**config["scenario"], "new_labels": allocation["new_labels"]}
    return {**config, "scenario": scenario, "allocation": {**config["allocation"], **allocation}}


def run_one(job: Job, options: RunOptions, project: str, entity: str | None, progress: Progress) -> bool:
    start = time.monotonic()
    progress.started(job)
    try:
        execute(job, options, project, entity, progress)
    except Exception as error:  # noqa: BLE001 - one failed job must not stop the suite
        (Store(options.results).job_dir(job) / "error.txt").write_text(traceback.format_exc())
        progress.failed(job, error)
        return False
    progress.finished(job, time.monotonic() - start)
    return True


def run_suite(suite: Suite, options: RunOptions, progress: Progress | None = None) -> list[Job]:
    """Runs every unfinished job of the suite; returns the jobs that failed."""
    store = Store(options.results)
    store.write_suite(suite.name, suite.summary())
    progress = progress or Progress(suite.jobs)
    pending = []
    for job in suite.jobs:
        if store.is_done(job) and not options.force:
            progress.skipped(job)
        else:
            pending.append(job)
    project, entity = suite.raw.wandb.project, suite.raw.wandb.entity
    if options.workers <= 1 or len(pending) <= 1:
        return [job for job in pending if not run_one(job, options, project, entity, progress)]
    # phase 0 (stl, TABA's estimates) first, to the end: other jobs (AMTL, TABA) read its results
    first = [job for job in pending if job.phase == 0]
    rest = [job for job in pending if job.phase != 0]
    return [*run_parallel(first, options, project, entity), *run_parallel(rest, options, project, entity)]


def worker_devices(workers: int) -> list[str | None]:
    import torch

    gpus = torch.cuda.device_count()
    return [f"cuda:{i % gpus}" if gpus else "cpu" for i in range(workers)]


def _worker(queue: Any, failures: Any, options: RunOptions, project: str, entity: str | None) -> None:
    import torch

    if options.device == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads() // options.workers))
    while True:
        job = queue.get()
        if job is None:
            return
        if not run_one(job, options, project, entity, Progress([job], live=False)):
            failures.put(job.id)


def run_parallel(jobs: list[Job], options: RunOptions, project: str, entity: str | None) -> list[Job]:
    if not jobs:
        return []
    context = multiprocessing.get_context("spawn")
    queue, failures = context.Queue(), context.Queue()
    for job in jobs:
        queue.put(job)
    workers = []
    for device in worker_devices(options.workers):
        queue.put(None)
        worker_options = RunOptions(options.results, options.force, options.wandb, options.workers, device)
        process = context.Process(target=_worker, args=(queue, failures, worker_options, project, entity))
        process.start()
        workers.append(process)
    for process in workers:
        process.join()
    failed = set()
    while not failures.empty():
        failed.add(failures.get())
    return [job for job in jobs if job.id in failed]
