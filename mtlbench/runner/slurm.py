"""The ``slurm`` executor: a suite's jobs as SLURM job arrays, submitted with submitit.

How the job graph reaches SLURM: every level of the graph is one job array, made dependent (``afterany``) on
the arrays that hold its jobs' needs, and everything is submitted at once. We chose SLURM dependencies over an
orchestrator that would submit each level as the last one finishes because ``--detach`` must work: nothing of
mtlbench stays alive on the login node, yet a TABA retraining may start only after its estimates. ``afterany``
(not ``afterok``): a task whose need failed still starts, sees the failure in the results store and reports
itself blocked by it, in one line, like the local runner.

A task is submitted as (suite file, overrides, job id, results folder) and rebuilds its job on the node by
expanding the suite again: no tensor and no config is pickled. With ``jobs_per_task`` N (``mtlbench run
--jobs-per-device N``) a task gets N job ids of a level and trains them side by side, one process each, on its
devices: small jobs fill a GPU that one of them would leave mostly idle. On the node it runs like a local job: it claims
the job (runner/claims.py), trains it, resumes from its last epoch checkpoint if it ran before, and writes
result.json. A job already finished, claimed by a live runner, or queued or running in SLURM for this suite is
not submitted again. Preemption and time limits: submitit's ``Checkpointable`` requeues a task that reaches its
time limit (SLURM signals it ``signal_delay_s`` before), and a task that SLURM requeues (``scontrol requeue``,
preemption) is stopped by SIGTERM like a local run: it keeps its last epoch checkpoint and its claim is
released, so the requeued task resumes at once. The requeue count (``SLURM_RESTART_COUNT``) is in result.json
(``slurm.requeues``) and in ``status``. What was submitted is recorded in ``<results>/<suite>/slurm/
submissions.json`` (mtlbench job id -> SLURM job id), which ``status`` and ``cancel`` read.
"""
from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, ClassVar

from ..config import Suite
from ..errors import UserError
from ..files import read_json, write_json_atomic
from ..jobs import Job, levels
from .claims import Claims
from .executor import RunOptions
from .executors import EXECUTORS, Launch
from .progress import Progress
from .store import Store

ACTIVE = ("PENDING", "CONFIGURING", "RUNNING", "COMPLETING", "REQUEUED", "REQUEUE_HOLD", "REQUEUE_FED",
          "RESIZING", "SUSPENDED", "STAGE_OUT")


class SlurmError(UserError, RuntimeError):
    pass


@EXECUTORS.register("slurm")
@dataclass(frozen=True)
class Slurm:
    """SLURM settings (suite ``executor:`` section or ``--set executor.KEY=VALUE``); none enters a job id."""

    detachable: ClassVar[bool] = True

    partition: str | None = None
    account: str | None = None
    qos: str | None = None
    constraint: str | None = None
    gpus_per_job: int = 0
    cpus_per_job: int = 1
    mem_gb: float | None = None
    time_min: int = 60
    array_parallelism: int = 256
    jobs_per_task: int = 1  # jobs one task trains side by side on its devices (mtlbench run --jobs-per-device)
    max_requeues: int = 3
    sbatch: dict[str, Any] = field(default_factory=dict)  # any further sbatch option, e.g. {exclude: node7}
    poll: float = 10.0  # seconds between looks at the queue while `run` waits

    def __post_init__(self) -> None:
        for name in ("gpus_per_job", "max_requeues"):
            if getattr(self, name) < 0:
                raise ValueError(f"{name} = {getattr(self, name)}: must be >= 0")
        for name in ("cpus_per_job", "time_min", "array_parallelism", "jobs_per_task"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name} = {getattr(self, name)}: must be >= 1")

    # ----------------------------------------------------------------------------------------- submit
    def executor(self, folder: Path, dependency: str | None) -> Any:
        import submitit  # only where jobs are submitted (pip install mtlbench[slurm])

        executor = submitit.AutoExecutor(folder=str(folder), cluster="slurm", slurm_max_num_timeout=self.max_requeues)
        parameters: dict[str, Any] = {
            "timeout_min": self.time_min, "slurm_array_parallelism": self.array_parallelism,
            "cpus_per_task": self.cpus_per_job,
            "slurm_additional_parameters": {"requeue": True, **self.sbatch}}
        parameters |= {key: value for key, value in {
            "slurm_partition": self.partition, "slurm_account": self.account, "slurm_qos": self.qos,
            "slurm_constraint": self.constraint, "gpus_per_node": self.gpus_per_job or None,
            "mem_gb": self.mem_gb, "slurm_dependency": dependency}.items() if value is not None}
        executor.update_parameters(**parameters)
        return executor

    def task_devices(self, jobs: list[Job]) -> dict[str, int]:
        """What a task of ``jobs`` asks for beyond ``executor``'s: as many GPUs as the level's job that trains on the
        most devices (``train.devices``; all of one task's ranks run on its node), and as many CPUs per device."""
        devices = max(job.config["train"].get("devices", 1) for job in jobs)
        if devices == 1:
            return {}
        return {"gpus_per_node": max(self.gpus_per_job, devices)} if self.gpus_per_job else \
            {"cpus_per_task": self.cpus_per_job * devices}

    def run(self, suite: Suite, options: RunOptions, launch: Launch, detach: bool = False) -> list[Job]:
        store = Store(options.results)
        store.write_suite(suite.name, suite.summary())
        record = Submissions(store.suite_dir(suite.name))
        submitted = self.submit(suite, options, launch, store, record)
        arrays = sorted({slurm_id.split("_")[0] for slurm_id in submitted.values()})
        if submitted:
            print(f"submitted {len(submitted)} job(s) of suite {suite.name} to SLURM as array(s) {', '.join(arrays)}")
        else:
            print(f"suite {suite.name}: nothing to submit (finished, queued or claimed)")
        if detach:
            print(f"detached: `mtlbench status {launch.suite}` shows where the suite stands")
            return []
        return self.wait(suite, store, record)

    def submit(self, suite: Suite, options: RunOptions, launch: Launch, store: Store,
               record: "Submissions") -> dict[str, str]:
        """Submit the jobs that are not finished, claimed or in the queue, level by level; returns job id ->
        SLURM job id of what it submitted."""
        from .slurm_node import NodeJob  # submitit, imported only where jobs are submitted

        claims = Claims(options.stale_after)
        queued = record.active()
        array_of: dict[str, str] = {job_id: slurm_id.split("_")[0] for job_id, slurm_id in queued.items()}
        submitted: dict[str, str] = {}
        folder = store.suite_dir(suite.name) / "slurm"
        for level in levels(suite.jobs):
            if not options.force:
                for job in level:
                    store.adopt(job)  # a teacher finished in another suite of the results folder
            todo = [job for job in level if job.id not in queued and not (store.is_done(job) and not options.force)
                    and claims.holder(store.job_dir(job)) is None]
            if not todo:
                continue
            waits = sorted({array_of[need] for job in todo for need in job.needs if need in array_of})
            executor = self.executor(folder, f"afterany:{':'.join(waits)}" if waits else None)
            executor.update_parameters(name=f"mtlbench-{suite.name}", **self.task_devices(todo))
            groups = [[job.id for job in todo[i:i + self.jobs_per_task]]
                      for i in range(0, len(todo), self.jobs_per_task)]
            tasks = executor.map_array(NodeJob(), [launch] * len(groups),
                                       [group[0] if len(group) == 1 else group for group in groups])
            now = {job_id: task.job_id for group, task in zip(groups, tasks) for job_id in group}
            for job_id, slurm_id in now.items():
                submitted[job_id] = slurm_id
                array_of[job_id] = slurm_id.split("_")[0]
            record.add(now)
        return submitted

    def wait(self, suite: Suite, store: Store, record: "Submissions") -> list[Job]:
        """Until no job of the suite is queued or running: the live table (plain lines off a terminal), then the
        jobs that did not finish."""
        progress = Progress(suite.jobs)
        shown: dict[str, str] = {}
        try:
            while True:
                states = record.states()
                for job in suite.jobs:
                    state = "done" if store.is_done(job) else "failed" if store.has_failed(job) else \
                        states.get(job.id, {}).get("state", "")
                    if state and shown.get(job.id) != state:
                        shown[job.id] = state
                        progress.note(job, state, store.error_line(job) if state == "failed" else "",
                                      (store.result(job.suite, job.id) or {}).get("wall_seconds"))
                if not any(s["state"] in ACTIVE for s in states.values()):
                    break
                time.sleep(self.poll)
        finally:
            progress.close()
        return [job for job in suite.jobs if not store.is_done(job)]


class Submissions:
    """``<suite folder>/slurm/submissions.json``: mtlbench job id -> SLURM job id of its last submission."""

    def __init__(self, suite_dir: Path) -> None:
        self.path = suite_dir / "slurm" / "submissions.json"

    def read(self) -> dict[str, str]:
        return read_json(self.path) if self.path.exists() else {}

    def add(self, submitted: dict[str, str]) -> None:
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.path, {**self.read(), **submitted})

    def states(self) -> dict[str, dict[str, Any]]:
        """Each submitted job's SLURM state, node and requeue count (jobs no longer in the queue: absent)."""
        return queue_states(self.read())

    def active(self) -> dict[str, str]:
        """The submitted jobs still queued or running."""
        states = self.states()
        return {job_id: slurm_id for job_id, slurm_id in self.read().items()
                if states.get(job_id, {}).get("state") in ACTIVE}


def queue_states(submitted: dict[str, str]) -> dict[str, dict[str, Any]]:
    """squeue's view of the submitted SLURM jobs, by mtlbench job id."""
    if not submitted:
        return {}
    arrays = sorted({slurm_id.split("_")[0] for slurm_id in submitted.values()})
    out = subprocess.run(["squeue", "-h", "-r", "-j", ",".join(arrays), "-o", "%i|%T|%N|%r"],
                         capture_output=True, text=True)
    if out.returncode != 0 and "Invalid job id" not in out.stderr:
        raise SlurmError(f"squeue failed: {out.stderr.strip()}")
    by_slurm = {}
    for line in out.stdout.splitlines():
        slurm_id, state, node, reason = line.split("|", 3)
        by_slurm[slurm_id] = {"slurm_id": slurm_id, "state": state, "node": node or None,
                              "reason": reason if reason not in ("None", "") else None}
    return {job_id: by_slurm[slurm_id] for job_id, slurm_id in submitted.items() if slurm_id in by_slurm}


def restarts() -> dict[str, int]:
    """``Restarts`` of every job SLURM knows, by job id (array tasks as ``<array>_<task>``)."""
    out = subprocess.run(["scontrol", "-o", "show", "job"], capture_output=True, text=True)
    counts = {}
    for line in out.stdout.splitlines():
        fields = dict(part.split("=", 1) for part in line.split() if "=" in part)
        key = f"{fields['ArrayJobId']}_{fields['ArrayTaskId']}" if "ArrayTaskId" in fields else fields.get("JobId")
        if key:
            counts[key] = int(fields.get("Restarts", "0") or 0)
    return counts


def slurm_view(suite_dir: Path) -> dict[str, dict[str, Any]]:
    """What ``status`` shows of the suite's SLURM submissions: per mtlbench job id, its SLURM id, state, node
    and requeue count (state None once the job has left the queue); empty without submissions or SLURM."""
    submitted = Submissions(suite_dir).read()
    if not submitted or shutil.which("squeue") is None:
        return {job_id: {"slurm_id": slurm_id, "state": None} for job_id, slurm_id in submitted.items()}
    states, requeued = queue_states(submitted), restarts()
    return {job_id: {"slurm_id": slurm_id, "state": None, "node": None, **states.get(job_id, {}),
                     "requeues": requeued.get(slurm_id, 0)} for job_id, slurm_id in submitted.items()}


def cancel(suite: Suite, results: str) -> list[str]:
    """scancel every queued or running SLURM job of the suite; returns their SLURM ids."""
    active = Submissions(Store(results).suite_dir(suite.name)).active()
    if active:
        subprocess.run(["scancel", *sorted(set(active.values()))], check=True)
    return sorted(set(active.values()))


__all__ = ["ACTIVE", "Slurm", "SlurmError", "Submissions", "cancel", "queue_states"]
