"""Weights & Biases: one run per job (id = job hash), offline unless configured online.

wandb is imported only when a run is opened, so the trainer and ``mtlbench bench`` need torch and numpy
alone. Runs live in the job's folder (``<job>/wandb/``), so ``mtlbench sync`` finds them from the store.

One run per job, whatever happened to it: online, a resumed job continues its run (same id). Offline, every
attempt writes a new run folder, so a resumed attempt first removes the folders its killed or interrupted
attempts left and logs the epochs they trained again (from metrics.jsonl): the run it leaves carries every
epoch, and ``sync`` uploads one run per job.
"""
from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path
from typing import Any

MODES = ("offline", "online", "disabled")


def flatten(record: dict[str, Any], prefix: str = "") -> dict[str, Any]:
    flat = {}
    for key, value in record.items():
        name = f"{prefix}{key}"
        if isinstance(value, dict):
            flat.update(flatten(value, name + "/"))
        else:
            flat[name] = value
    return flat


class NullRun:
    def log(self, record: dict[str, Any]) -> None:
        pass

    def finish(self, summary: dict[str, Any], exit_code: int = 0) -> None:
        pass


class WandbRun:
    def __init__(self, mode: str, project: str, entity: str | None, job: Any, job_dir: Path, group: str | None = None,
                 extra_config: dict[str, Any] | None = None, earlier: list[dict[str, Any]] = ()) -> None:
        try:
            import wandb
        except ImportError:
            raise RuntimeError("W&B logging needs the 'wandb' package: pip install wandb, "
                               "or run with --wandb disabled") from None
        if mode == "offline":
            for attempt in job_dir.glob(f"wandb/offline-run-*-{job.id}"):
                shutil.rmtree(attempt, ignore_errors=True)
        self.run = wandb.init(
            project=project, entity=entity, id=job.id, name=f"{job.method}-seed{job.seed}-{job.id[:6]}",
            group=group or f"{job.suite}/{job.dataset}/{job.scenario}", job_type=job.method,
            config={"suite": job.suite, **job.config, **(extra_config or {})}, mode=mode, dir=str(job_dir),
            resume="allow",
            settings=wandb.Settings(silent=True, console="off", x_disable_stats=True))
        self.run.define_metric("epoch")
        self.run.define_metric("*", step_metric="epoch")
        if mode == "offline":
            for record in earlier:
                self.log({k: v for k, v in record.items() if k != "epochs"})

    def log(self, record: dict[str, Any]) -> None:
        self.run.log(flatten(record))

    def finish(self, summary: dict[str, Any], exit_code: int = 0) -> None:
        self.run.summary.update(flatten(summary))
        self.run.finish(exit_code=exit_code)


def open_run(mode: str, project: str, entity: str | None, job: Any, job_dir: Path, group: str | None = None,
             extra_config: dict[str, Any] | None = None, earlier: list[dict[str, Any]] = ()) -> NullRun | WandbRun:
    """One run per job; ``group`` (default suite/dataset/scenario) and ``extra_config`` for tuning trials;
    ``earlier``: the epochs a resumed job trained before (re-logged offline)."""
    if mode not in MODES:
        raise ValueError(f"--wandb {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "disabled":
        return NullRun()
    return WandbRun(mode, project, entity, job, job_dir, group, extra_config, earlier)


def offline_runs(root: Path) -> list[Path]:
    """The offline runs under ``root``, the newest per run id (an older one is a superseded attempt)."""
    newest: dict[str, Path] = {}
    for run in sorted(root.glob("**/wandb/offline-run-*")):  # the folder name starts with its date and time
        newest[run.name.rsplit("-", 1)[-1]] = run
    return sorted(newest.values())


def sync(root: Path) -> int:
    """Upload every offline run under ``root`` with ``wandb sync``; returns the number of failures."""
    failures = 0
    for run in offline_runs(root):
        done = subprocess.run([sys.executable, "-m", "wandb", "sync", str(run)]).returncode
        failures += done != 0
    return failures
