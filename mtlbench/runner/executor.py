"""Run a suite's jobs in dependency order: skip finished ones, resume interrupted ones, keep going past a
failed one, report the jobs that need a failed one as blocked (they do not run), and never train a job that
another runner holds (runner/claims.py).

Local execution is in process; with several GPUs visible (or ``workers > 1``) the runnable jobs of each level of
the job graph are spread over one spawned worker process per device. The results store is the only shared
state, so a suite interrupted at any point is resumed by running it again, and several runners (processes,
machines) can share one results folder. How a job runs is its kind's business (``mtlbench.jobs.KINDS``) and what
it takes from its needs its resolvers' (``RESOLVERS``): this module knows no track and no method.
"""
from __future__ import annotations

import dataclasses
import multiprocessing
import signal
import sys
import time
import traceback
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from .. import __version__
from ..config import Suite
from ..files import non_finite_fields
from ..interrupts import exit_code_of, interrupt_behind, sigterm_as_interrupt
from ..provenance import source_commit
from ..jobs import KINDS, RESOLVERS, RESUMED, Hooks, Job, Resolution, blocked_by, levels
from ..tasks import METRICS_VERSION
from ..track import TRACKS, summary_track
from ..tracking import open_run
from .claims import STALE_AFTER, Claims
from .progress import Progress, Relay, replay
from .store import Store

FINISHED, FAILED, ELSEWHERE = "finished", "failed", "elsewhere"


@dataclass(frozen=True)
class RunOptions:
    """How a suite runs; none of it enters a job's config (ids do not depend on it)."""

    results: str = "results"
    force: bool = False
    wandb: str = "offline"
    workers: int = 1
    device: str | None = None  # overrides train.device (set per worker)
    stale_after: float = STALE_AFTER  # seconds without a heartbeat after which another runner's claim is taken over
    poll: float = 5.0  # seconds between looks at jobs that other runners hold
    record: dict[str, Any] = field(default_factory=dict)  # fields the executor adds to result.json (slurm: ids)


@dataclass(frozen=True)
class Validation:
    """How tuning runs a job: the test split is never loaded, the W&B run joins the study's group with the
    trial in its config, and ``score`` turns each epoch's record into values logged with it (it may raise to
    stop the job, e.g. when a pruner says so)."""

    group: str
    config: dict[str, Any] = field(default_factory=dict)
    score: Callable[[dict[str, Any]], dict[str, float]] = lambda record: {}


def execute(job: Job, options: RunOptions, project: str, entity: str | None, progress: Progress | Relay,
            validation: Validation | None = None) -> dict[str, Any]:
    """Train one job into the store; returns its result record (``test`` empty under ``validation``)."""
    started = time.perf_counter()
    store = Store(options.results)
    job_dir = store.prepare(job, options.force)
    resolved = resolve_inputs(job, store)
    config = resolved.config
    if options.device is not None:
        config = {**config, "train": {**config["train"], "device": options.device}}
    group, extra = (validation.group, validation.config) if validation else (None, None)
    history: list[dict[str, Any]] = []  # a resumed job's earlier epochs come first, replayed by the trainer
    directions, primary = task_metrics(config)
    run = open_run(options.wandb, project, entity, job, job_dir, group, extra, directions, primary)

    def on_epoch(record: dict[str, Any]) -> None:
        resumed = record.get(RESUMED, False)
        record = {k: v for k, v in record.items() if k != RESUMED}
        history.append(record)
        store.write_history(job, history)
        scores = validation.score(record) if validation else {}
        logged = {**{k: v for k, v in record.items() if k != "epochs"}, **scores}
        if resumed:
            run.log_resumed(logged)
        else:
            run.log(logged)
            progress.epoch(job, record)

    try:
        hooks = Hooks(epoch=on_epoch, step=lambda step: progress.step(job, step))
        outcome = KINDS.get(job.kind)().run(config, job_dir, hooks, validation is None)
    except BaseException as caught:  # pruned, interrupted or failed: the W&B run says so and the job resumes later
        error = interrupt_behind(caught)
        run.finish({"stopped": type(error).__name__}, exit_code=exit_code_of(error))
        if error is caught:
            raise
        raise error from caught
    store.write_history(job, outcome["history"])
    result = result_record(job, outcome, resolved, options, time.perf_counter() - started)
    bad = non_finite_fields(result)
    if bad:
        raise ValueError(f"job {job.id}: {', '.join(bad[:5])} {'is' if len(bad) == 1 else 'are'} not finite; no "
                         f"result is written (strict JSON has no NaN or infinity)")
    store.finish(job, result)
    run.finish({"test": result["test"], "train_seconds": result["train_seconds"], "device": result["device"],
                "commit": result["commit"], "metrics_version": result["metrics_version"],
                **track_run_summary(store, job, result),
                **{k: result[k] for k in ("constant", "diverged", "costs", "pseudo_labels") if k in result}},
               config=run_config_of(result))
    return result


def run_config_of(result: dict[str, Any]) -> dict[str, Any]:
    """What a finished job adds to its W&B config: the hardware it ran on and its size (parameters, FLOPs of a
    step), which W&B filters and groups by; the timings and the peak memory are in its summary."""
    costs = result.get("costs", {})
    return {"device": result["device"],
            "costs": {k: costs[k] for k in ("parameters", "method_parameters", "step_flops") if k in costs}}


def result_record(job: Job, outcome: dict[str, Any], resolved: Resolution, options: RunOptions,
                  wall_seconds: float) -> dict[str, Any]:
    """The job's result.json (its schema: runner/store.py); ``wall_seconds``: the job in this process (W&B, data,
    training, evaluation)."""
    return {
        "schema": 1, "job_id": job.id, "suite": job.suite, "dataset": job.dataset, "scenario": job.scenario,
        "method": job.method, "seed": job.seed, "tasks": list(job.config["tasks"]),
        "test": outcome["test"], "val": outcome["val"],
        **{k: outcome[k] for k in ("primary", "directions", "history", "labels_per_task",
                                   "resumed_from_epoch", "train_seconds",
                                   "device", "torch")},
        **{k: outcome[k] for k in ("estimate", "data_seconds", "data_source", "eval_seconds", "constant",
                                   "first_step_loss",
                                   "diverged", "images_left_out_per_epoch", "solver", "observed", "costs",
                                   "pseudo_labels", "optimizer_groups", "devices")
           if k in outcome},
        "wall_seconds": wall_seconds,
        **resolved.record,
        **options.record,
        "mtlbench": __version__, "commit": source_commit(), "metrics_version": METRICS_VERSION,
        "finished_at": datetime.now(timezone.utc).isoformat(timespec="seconds"),
        "config": job.config,
    }


def task_metrics(config: dict[str, Any]) -> tuple[dict[str, dict[str, bool]], dict[str, str]]:
    """Each task's metric directions and primary metric, as the job's result will record them."""
    from ..data import DATASETS
    from ..registry import build

    tasks = build(DATASETS, config["dataset"]).tasks()
    return ({t: tasks[t].directions for t in config["tasks"]}, {t: tasks[t].primary for t in config["tasks"]})


def track_run_summary(store: Store, job: Job, result: dict[str, Any]) -> dict[str, Any]:
    """What the suite's track adds to the job's W&B summary (ΔMTL once the baseline has finished)."""
    summary = store.suite_summary(job.suite)
    return TRACKS.get(summary_track(summary))().run_summary(summary, result,
                                                            lambda job_id: store.result(job.suite, job_id))


@dataclass(frozen=True)
class SuiteResults:
    """A resolver's view of the store (``jobs.ResultLookup``): the suite's finished results and job folders."""

    store: Store
    suite: str

    def __call__(self, job_id: str) -> dict[str, Any] | None:
        return self.store.result(self.suite, job_id)

    def folder(self, job_id: str) -> Path:
        return self.store.suite_dir(self.suite) / job_id


def resolve_inputs(job: Job, store: Store) -> Resolution:
    """The config the job trains with and the fields its result records, from its resolvers (each reads
    the results of the jobs it names; they are finished, since a job runs after its needs)."""
    resolution = Resolution(job.config, {})
    for name, ids in job.inputs.items():
        step = RESOLVERS.get(name)(resolution.config, ids, SuiteResults(store, job.suite))
        resolution = Resolution(step.config, {**resolution.record, **step.record})
    return resolution


def run_one(job: Job, options: RunOptions, project: str, entity: str | None, progress: Progress | Relay) -> str:
    """Claim the job and train it: FINISHED (also when another runner finished it first), FAILED, or
    ELSEWHERE when another live runner holds it."""
    store = Store(options.results)
    claims = Claims(options.stale_after)
    held = claims.acquire(store.job_dir(job))
    if held is None:
        progress.elsewhere(job, claims.holder(store.job_dir(job)))
        return ELSEWHERE
    with held:
        if not options.force:
            store.adopt(job)  # a teacher finished in another suite of the results folder is not trained again
        finished = store.finished(job)
        if finished is not None and not options.force:
            progress.skipped(job, finished.get("wall_seconds"))
            return FINISHED
        start = time.monotonic()
        progress.started(job)
        try:
            execute(job, options, project, entity, progress)
        except Exception as error:  # noqa: BLE001 - one failed job must not stop the suite
            record_failure(store, job, error)
            progress.failed(job, error)
            return FAILED
    progress.finished(job, time.monotonic() - start)
    return FINISHED


def record_failure(store: Store, job: Job, error: Exception) -> None:
    """error.txt in the job's folder; if even that cannot be written (a full disk), the error goes to stderr."""
    try:
        store.write_error(job, error, traceback.format_exc())
    except OSError as unwritable:
        print(f"{job.id}: could not write error.txt ({unwritable}); the job failed with: {error}", file=sys.stderr)


@dataclass
class Ledger:
    """What one ``run`` knows of the suite's jobs: settled ones (finished, failed or blocked) and why."""

    done: set[str] = field(default_factory=set)
    failed: dict[str, tuple[str, str]] = field(default_factory=dict)  # id -> (failed job at the root, error line)
    ran: set[str] = field(default_factory=set)  # run by this invocation (--force reruns each job once)

    def settled(self, job: Job) -> bool:
        return job.id in self.done or job.id in self.failed


def run_suite(suite: Suite, options: RunOptions, progress: Progress | None = None) -> list[Job]:
    """Runs every unfinished job of the suite, level by level of the job graph, until each is finished, failed
    or blocked by a failed need; jobs that other runners hold are waited for (and taken over if their runner
    dies). Returns the jobs that failed or were blocked."""
    store = Store(options.results)
    store.write_suite(suite.name, suite.summary())
    progress = progress or Progress(suite.jobs, workers=options.workers)
    ledger = Ledger()
    try:
        run_graph(suite, options, store, ledger, progress)
    finally:
        progress.close()
    return [job for job in suite.jobs if job.id in ledger.failed]


def run_graph(suite: Suite, options: RunOptions, store: Store, ledger: Ledger, progress: Progress) -> None:
    """The graph's levels in order, again and again, until every job is settled in ``ledger``."""
    project, entity = suite.raw.wandb.project, suite.raw.wandb.entity
    graph = levels(suite.jobs)
    while True:
        moved = False
        for level in graph:
            runnable = [job for job in level if not ledger.settled(job) and ready(job, store, options, ledger, progress)]
            if options.workers <= 1 or len(runnable) <= 1:
                outcomes = {job.id: run_one(job, options, project, entity, progress) for job in runnable}
            else:
                outcomes = run_parallel(runnable, options, project, entity, progress)
            for job in runnable:
                moved |= settle(job, outcomes[job.id], store, ledger)
        if all(ledger.settled(job) for job in suite.jobs):
            return
        if not moved:
            time.sleep(options.poll)  # what is left is held by other runners (or needs what they hold)


def ready(job: Job, store: Store, options: RunOptions, ledger: Ledger, progress: Progress) -> bool:
    """Whether the job should run now; settles it in the ledger if it is finished or blocked."""
    finished = store.finished(job) if job.id in ledger.ran or not options.force else None
    if finished is not None:
        if job.id not in ledger.ran:
            progress.skipped(job, finished.get("wall_seconds"))
            store.tidy(job)
            Claims(options.stale_after).clear_stale(store.job_dir(job))
        ledger.done.add(job.id)
        return False
    culprit = blocked_by(job, ledger.failed)
    if culprit is not None:
        ledger.failed[job.id] = culprit
        progress.blocked(job, *culprit)
        return False
    return all(need in ledger.done for need in job.needs)


def settle(job: Job, outcome: str, store: Store, ledger: Ledger) -> bool:
    """Record a run's outcome; True if the suite moved on (finished or failed)."""
    if outcome == ELSEWHERE:
        return False
    ledger.ran.add(job.id)
    if outcome == FINISHED:
        ledger.done.add(job.id)
    else:
        ledger.failed[job.id] = (job.id, store.error_line(job))
    return True


def worker_devices(workers: int) -> list[str | None]:
    import torch

    gpus = torch.cuda.device_count()
    return [f"cuda:{i % gpus}" if gpus else "cpu" for i in range(workers)]


def die_with_parent() -> None:
    """Ask Linux to send this process SIGTERM when its parent dies, so that no worker outlives a killed run."""
    if sys.platform.startswith("linux"):
        import ctypes

        PR_SET_PDEATHSIG = 1
        ctypes.CDLL("libc.so.6", use_errno=True).prctl(PR_SET_PDEATHSIG, signal.SIGTERM)


def _worker(queue: Any, results: Any, options: RunOptions, project: str, entity: str | None) -> None:
    """Runs the jobs it takes from ``queue`` until it takes None; puts each one's outcome on ``results`` as
    ``("outcome", job id, outcome)``, its progress events before it (``Relay``)."""
    import torch

    from ..plugins import load_plugins

    die_with_parent()
    load_plugins()  # a spawned process starts with mtlbench's registries only
    if options.device == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads() // options.workers))
    try:
        with sigterm_as_interrupt():
            while True:
                job = queue.get()
                if job is None:
                    return
                results.put(("outcome", job.id, run_one(job, options, project, entity, Relay(results))))
    except KeyboardInterrupt:  # the parent stops the suite: the job keeps its last checkpoint
        return


def collect(results: Any, workers: list[Any], jobs: list[Job], progress: Progress) -> dict[str, str]:
    """Each job's outcome from the workers, their progress events replayed on ``progress``; a job whose worker
    died without a word (killed, out of memory) counts as failed."""
    import queue as queues

    outcomes: dict[str, str] = {}
    while len(outcomes) < len(jobs):
        try:
            message = results.get(timeout=1.0)
        except queues.Empty:
            if not any(process.is_alive() for process in workers):
                break
            continue
        if message[0] == "outcome":
            outcomes[message[1]] = message[2]
        else:
            replay(progress, message)
    for job in jobs:
        if job.id not in outcomes:
            progress.failed(job, "its worker process died without a word (killed, or out of memory)")
    return {job.id: outcomes.get(job.id, FAILED) for job in jobs}


def run_parallel(jobs: list[Job], options: RunOptions, project: str, entity: str | None,
                 progress: Progress) -> dict[str, str]:
    """The jobs spread over one worker process per device; their outcomes by job id."""
    context = multiprocessing.get_context("spawn")
    queue, results = context.Queue(), context.Queue()
    for job in jobs:
        queue.put(job)
    workers = []
    try:
        for device in worker_devices(min(options.workers, len(jobs))):
            queue.put(None)
            worker_options = dataclasses.replace(options, device=device)
            process = context.Process(target=_worker, args=(queue, results, worker_options, project, entity))
            process.start()
            workers.append(process)
        outcomes = collect(results, workers, jobs, progress)
    except BaseException:  # interrupted: the workers stop with the run, each job keeps its last checkpoint
        for process in workers:
            process.terminate()
        for process in workers:
            process.join()
        for channel in (queue, results):  # jobs no worker took would block the exit, flushing into a full pipe
            channel.cancel_join_thread()
        raise
    for process in workers:
        process.join()
    return outcomes
