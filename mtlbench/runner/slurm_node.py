"""What a SLURM task runs (pickled by submitit with small arguments; see runner/slurm.py)."""
from __future__ import annotations

import os

import submitit

from ..config import Suite, load_suite
from ..errors import UserError
from ..plugins import load_plugins
from ..jobs import Job
from ..interrupts import sigterm_as_interrupt
from .executor import FAILED, RunOptions, run_one
from .executors import Launch
from .progress import Progress
from .store import Store


class NodeError(UserError, RuntimeError):
    """A submitted job the node cannot train as submitted (the suite changed, or a need did not finish)."""


class NodeJob(submitit.helpers.Checkpointable):
    """The job ``job_id`` of the suite (or each of a list of jobs, side by side in a process each), rebuilt on the
    node and trained like a local job (claim, resume, result.json). At its time limit, submitit's
    ``Checkpointable`` requeues it with the same arguments."""

    def __call__(self, launch: Launch, job_id: str | list[str]) -> str:
        with sigterm_as_interrupt():  # SLURM's requeue and cancel send SIGTERM: stop as a local run does
            if isinstance(job_id, str):
                return train_on_node(launch, job_id)
            return train_side_by_side(launch, job_id)


def train_side_by_side(launch: Launch, job_ids: list[str]) -> str:
    """The jobs in one process each (spawned: no CUDA state crosses a fork), sharing the task's CPU threads; the
    first failure's outcome, else the last job's. Stopped (SIGTERM), the processes stop with it, each keeping its
    last checkpoint."""
    import multiprocessing

    context = multiprocessing.get_context("spawn")
    with context.Pool(len(job_ids)) as pool:
        try:
            outcomes = pool.starmap(train_in_process, [(launch, job_id, len(job_ids)) for job_id in job_ids])
        except KeyboardInterrupt:
            pool.terminate()  # SIGTERM to each: they stop as an interrupted local run does
            raise
    return next((outcome for outcome in outcomes if outcome == FAILED), outcomes[-1])


def train_in_process(launch: Launch, job_id: str, side_by_side: int) -> str:
    import torch

    torch.set_num_threads(max(1, (len(os.sched_getaffinity(0)) or 1) // side_by_side))
    with sigterm_as_interrupt():
        return train_on_node(launch, job_id)


def train_on_node(launch: Launch, job_id: str) -> str:
    load_plugins()  # the node inherits MTLBENCH_PLUGINS from sbatch's environment
    suite = load_suite(launch.suite, list(launch.overrides))
    if launch.params:
        from ..tuning import apply_params

        suite = apply_params(suite, launch.params, beside_paper=True)  # the job is one or the other
    job = job_of(suite, job_id)
    if job is None:
        raise NodeError(f"{launch.suite} no longer has job {job_id} (the suite changed since it was submitted)")
    store = Store(launch.results)
    lacking = [need for need in job.needs if not store.is_done(job_of(suite, need))]
    if lacking:
        cause = store.error_line(job_of(suite, lacking[0])) or "no result"
        store.write_error(job, NodeError(f"blocked: its need {lacking[0]} did not finish ({cause})"), "")
        return FAILED
    record = {"slurm": {"job_id": os.environ.get("SLURM_ARRAY_JOB_ID", os.environ.get("SLURM_JOB_ID", "")),
                        "task": os.environ.get("SLURM_ARRAY_TASK_ID"), "requeues": requeue_count(),
                        "node": os.environ.get("SLURMD_NODENAME")}, "runner": launch.runner}
    options = RunOptions(launch.results, wandb=launch.wandb, stale_after=launch.stale_after, record=record)
    return run_one(job, options, suite.raw.wandb.project, suite.raw.wandb.entity, Progress([job], live=False))


def requeue_count() -> int:
    """How often SLURM has requeued this task (its time limit reached, or preempted)."""
    return int(os.environ.get("SLURM_RESTART_COUNT", "0") or 0)


def job_of(suite: Suite, job_id: str) -> Job | None:
    return next((job for job in suite.jobs if job.id == job_id), None)
