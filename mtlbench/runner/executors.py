"""Executors as plugins: how a suite's jobs get run. ``local`` runs them here (in process, or one worker per
GPU); ``slurm`` submits them to a SLURM cluster (runner/slurm.py). A suite chooses one in its ``executor:``
section or with ``mtlbench run --executor NAME``; executor settings never enter a job's config, so they never
change a job id.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import ClassVar

from ..config import Suite
from ..jobs import Job
from ..registry import Registry
from .executor import RunOptions, run_suite
from .preflight import check_machine

EXECUTORS: Registry[type] = Registry("executor")


@dataclass(frozen=True)
class Launch:
    """What a node needs to rebuild a job from scratch: the suite file, its overrides and a parameters file
    (paths absolute), the results folder, the W&B mode and the claim timeout; and the ``runner`` that launched it
    (recorded in the result, so that the runner whose job finished last logs the suite's leaderboard run). No
    tensor, no config."""

    suite: str
    overrides: tuple[str, ...] = ()
    params: str | None = None
    results: str = "results"
    wandb: str = "offline"
    stale_after: float = 300.0
    runner: str = ""


@EXECUTORS.register("local")
@dataclass(frozen=True)
class Local:
    """This machine: in process, or one worker process per GPU (``--workers``)."""

    detachable: ClassVar[bool] = False

    def run(self, suite: Suite, options: RunOptions, launch: Launch, detach: bool = False) -> list[Job]:
        check_machine(suite, options.device)
        return run_suite(suite, options)
