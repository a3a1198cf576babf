"""Run a suite's jobs in dependency order: skip finished ones, resume interrupted ones, keep going past a
failed one, and report the jobs that need a failed one as blocked (they do not run).

Local execution is in process; with several GPUs visible (or ``workers > 1``) each level of the job graph is
spread over one spawned worker process per device. The results store is the only shared state, so a suite
interrupted at any point is resumed by running it again. How a job runs is its kind's business
(``mtlbench.jobs.KINDS``) and what it takes from its needs its resolvers' (``RESOLVERS``): this module knows
no track and no method.
"""
from __future__ import annotations

import multiprocessing
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from typing import Any, Callable

from .. import __version__
from ..config import Suite
from ..jobs import KINDS, RESOLVERS, Job, Resolution, blocked_by, levels
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
    resolved = resolve_inputs(job, store)
    config = resolved.config
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
        outcome = KINDS.get(job.kind)().run(config, job_dir, on_epoch, validation is None)
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
        **{k: outcome[k] for k in ("estimate",) if k in outcome},
        **resolved.record,
        "mtlbench": __version__, "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": job.config,
    }
    store.finish(job, result)
    run.finish({"test": result["test"], "val": result["val"], "train_seconds": result["train_seconds"]})
    return result


def resolve_inputs(job: Job, store: Store) -> Resolution:
    """The config the job trains with and the fields its result records, from its resolvers (each reads
    the results of the jobs it names; they are finished, since a job runs after its needs)."""
    resolution = Resolution(job.config, {})
    for name, ids in job.inputs.items():
        step = RESOLVERS.get(name)(resolution.config, ids, lambda job_id: store.result(job.suite, job_id))
        resolution = Resolution(step.config, {**resolution.record, **step.record})
    return resolution


def run_one(job: Job, options: RunOptions, project: str, entity: str | None, progress: Progress) -> bool:
    start = time.monotonic()
    progress.started(job)
    try:
        execute(job, options, project, entity, progress)
    except Exception as error:  # noqa: BLE001 - one failed job must not stop the suite
        Store(options.results).write_error(job, error, traceback.format_exc())
        progress.failed(job, error)
        return False
    progress.finished(job, time.monotonic() - start)
    return True


def run_suite(suite: Suite, options: RunOptions, progress: Progress | None = None) -> list[Job]:
    """Runs every unfinished job of the suite, level by level of the job graph; returns the jobs that failed
    or were blocked by a failed need."""
    store = Store(options.results)
    store.write_suite(suite.name, suite.summary())
    progress = progress or Progress(suite.jobs)
    project, entity = suite.raw.wandb.project, suite.raw.wandb.entity
    failed: dict[str, tuple[str, str]] = {}  # job id -> (the failed job at the root, its first error line)
    stopped: list[Job] = []
    for level in levels(suite.jobs):
        pending = []
        for job in level:
            culprit = blocked_by(job, failed)
            if store.is_done(job) and not options.force:
                progress.skipped(job)
            elif culprit is not None:
                failed[job.id] = culprit
                stopped.append(job)
                progress.blocked(job, *culprit)
            else:
                pending.append(job)
        if options.workers <= 1 or len(pending) <= 1:
            lost = [job for job in pending if not run_one(job, options, project, entity, progress)]
        else:
            lost = run_parallel(pending, options, project, entity)
        failed.update({job.id: (job.id, store.error_line(job)) for job in lost})
        stopped += lost
    stopped_ids = {job.id for job in stopped}
    return [job for job in suite.jobs if job.id in stopped_ids]


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
