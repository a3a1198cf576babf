"""Weights & Biases: one run per job, offline unless configured online.

A run's id is the job's id and its results folder's location token (``<job id>-<token>``): a job trains once
per results folder (a suite's, its tuning's, another clone's), and each of those trainings is its own run. The
token is random, made when the folder first logs a run and kept in it (``.wandb-location``), so that it survives
a move of the folder and a resumed job continues its run. The job id alone (mtlbench before 0.3) merged a tuning
trial that trains a suite's job config into that job's run.

wandb is imported only when a run is opened, so the trainer and ``mtlbench bench`` need torch and numpy
alone. Runs live in the job's folder (``<job>/wandb/``), so ``mtlbench sync`` finds them from the store.

One run per job, whatever happened to it. A resumed job's trainer replays the epochs of the checkpoint it
resumes (the record of what was trained) to ``log_resumed``. Offline, every attempt writes a new run folder, so
a resumed attempt first removes the folders its killed or interrupted attempts left and logs every replayed
epoch again. Online, a resumed job continues its run (same id), which holds the epochs logged up to the last one
its summary names; the replayed epochs after that one (trained, but cut off by a kill before they were logged)
are logged. Either way the run carries every epoch once, and ``sync`` uploads one run per job.
"""
from __future__ import annotations

import json
import os
import secrets
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

    def log_resumed(self, record: dict[str, Any]) -> None:
        pass

    def finish(self, summary: dict[str, Any], exit_code: int = 0, config: dict[str, Any] | None = None) -> None:
        pass


def params_of(job: Any) -> str:
    """Whose hyperparameters the job trains with: the paper's (the suite's), or tuned by ``mtlbench tune``."""
    return "tuned" if job.config.get("tuned") else "paper"


def run_tags(job: Any) -> list[str]:
    """Tags to filter a project by: suite, dataset, scenario, method and seed (``key:value``), paper or tuned."""
    return [f"suite:{job.suite}", f"dataset:{job.dataset}", f"scenario:{job.scenario}", f"method:{job.method}",
            f"seed:{job.seed}", params_of(job)]


def job_meta(job: Any, directions: dict[str, dict[str, bool]], primary: dict[str, str]) -> dict[str, Any]:
    """The config block every job's run carries (``mtlbench.method``, ``mtlbench.scenario``, ...): the names the
    tables use, to group and filter by, and what a leaderboard built from W&B needs (directions, primary)."""
    return {"job_id": job.id, "kind": job.kind, "suite": job.suite, "dataset": job.dataset, "scenario": job.scenario,
            "method": job.method, "seed": job.seed, "params": params_of(job),
            "directions": directions, "primary": primary}


LOCATION = ".wandb-location"


def location_token(folder: Path) -> str:
    """The folder's random location token, made on first use (of two processes making it at once, the first
    to link its file wins and both read that one)."""
    path = folder / LOCATION
    if not path.exists():
        folder.mkdir(parents=True, exist_ok=True)
        draft = folder / f".{LOCATION}.{secrets.token_hex(4)}"
        draft.write_text(secrets.token_hex(4))
        try:
            os.link(draft, path)  # never replaces: a token in use stays
        except FileExistsError:
            pass
        finally:
            draft.unlink()
    return path.read_text().strip()


def job_run_id(job: Any, job_dir: Path) -> str:
    """The W&B run id of a job trained in ``job_dir`` (whose parent is the job's results folder)."""
    return f"{job.id}-{location_token(job_dir.parent)}"


def replace_offline_attempts(run_dir: Path) -> None:
    """Remove the offline folders earlier attempts left in a run's folder (one run per folder), so that one
    folder per run is synced; this includes those of mtlbench before 0.3, named by the job id alone."""
    for attempt in run_dir.glob("wandb/offline-run-*"):
        shutil.rmtree(attempt, ignore_errors=True)


def quiet(wandb: Any) -> Any:
    """W&B settings for runs mtlbench opens: no console capture, no system metrics, nothing printed."""
    return wandb.Settings(silent=True, console="off", x_disable_stats=True)


def last_logged_epoch(summary: Any) -> tuple[str, int] | None:
    """(stage, epoch) of the last epoch a run logged, from its summary (None for a run that logged none)."""
    epoch = summary.get("epoch")
    return None if epoch is None else (summary.get("stage"), int(epoch))


class WandbRun:
    def __init__(self, mode: str, project: str, entity: str | None, job: Any, job_dir: Path, group: str | None = None,
                 extra_config: dict[str, Any] | None = None, directions: dict[str, dict[str, bool]] | None = None,
                 primary: dict[str, str] | None = None) -> None:
        try:
            import wandb
        except ImportError:
            raise RuntimeError("W&B logging needs the 'wandb' package: pip install wandb, "
                               "or run with --wandb disabled") from None
        if mode == "offline":
            replace_offline_attempts(job_dir)
        directions = directions or {}
        self.run = wandb.init(
            project=project, entity=entity, id=job_run_id(job, job_dir),
            name=f"{job.method}-seed{job.seed}-{job.id[:6]}",
            group=group or f"{job.suite}/{job.dataset}/{job.scenario}", job_type=job.method,
            tags=run_tags(job),
            config={"suite": job.suite, **job.config, **(extra_config or {}),
                    "mtlbench": job_meta(job, directions, primary or {})},
            mode=mode, dir=str(job_dir), resume="allow", settings=quiet(wandb))
        self.run.define_metric("epoch")
        self.run.define_metric("*", step_metric="epoch")
        for task, metrics in directions.items():  # the summary keeps each validation metric's best epoch
            for metric, higher in metrics.items():
                self.run.define_metric(f"val/{task}/{metric}".replace(".", "\\."), step_metric="epoch",
                                       summary="max" if higher else "min")  # a dot would mean nesting
        self.logged_until = None if mode == "offline" else last_logged_epoch(self.run.summary)

    def log(self, record: dict[str, Any]) -> None:
        self.run.log(flatten(record))

    def log_resumed(self, record: dict[str, Any]) -> None:
        """An epoch an earlier attempt trained, replayed in training order: logged unless the run holds it, i.e.
        unless it comes up to the last epoch the continued run logged."""
        if self.logged_until is None:
            self.log(record)
        elif (record["stage"], record["epoch"]) == self.logged_until:
            self.logged_until = None

    def finish(self, summary: dict[str, Any], exit_code: int = 0, config: dict[str, Any] | None = None) -> None:
        """``config``: what the job learnt about itself that W&B should filter and group by (its hardware, its
        model's size), added to the run's config."""
        if config:
            self.run.config.update(config, allow_val_change=True)
        self.run.summary.update(flatten(summary))
        self.run.finish(exit_code=exit_code)


def open_run(mode: str, project: str, entity: str | None, job: Any, job_dir: Path, group: str | None = None,
             extra_config: dict[str, Any] | None = None, directions: dict[str, dict[str, bool]] | None = None,
             primary: dict[str, str] | None = None) -> NullRun | WandbRun:
    """One run per job; ``group`` (default suite/dataset/scenario) and ``extra_config`` for tuning trials;
    ``directions`` and ``primary``: its tasks' metrics (the summary keeps each validation metric's best value, by
    its direction)."""
    if mode not in MODES:
        raise ValueError(f"--wandb {mode!r}: choose one of {', '.join(MODES)}")
    if mode == "disabled":
        return NullRun()
    return WandbRun(mode, project, entity, job, job_dir, group, extra_config, directions, primary)


def leaderboard_run_id(suite: str, run_dir: Path) -> str:
    """The W&B run id of the suite's leaderboard run, logged from ``run_dir`` in the suite's results folder."""
    return f"{suite}-leaderboard-{location_token(run_dir.parent)}"


def log_leaderboard(mode: str, project: str, entity: str | None, summary: dict[str, Any], run_dir: Path,
                    tables: dict[str, Any], images: dict[str, Path]) -> str:
    """The suite-level run (job type ``leaderboard``, id ``<suite>-leaderboard-<token>``): the suite's summary
    (as JSON text) in its config, each leaderboard table (pandas frames, every number with its interval) as a
    ``wandb.Table`` and each figure as a ``wandb.Image``. Offline, an earlier version of the run is replaced.
    Returns the run's id."""
    import wandb

    run_id = leaderboard_run_id(summary["name"], run_dir)
    if mode == "offline":
        replace_offline_attempts(run_dir)
    run_dir.mkdir(parents=True, exist_ok=True)
    run = wandb.init(project=project, entity=entity, id=run_id, name=f"{summary['name']} leaderboard",
                     group=summary["name"], job_type="leaderboard", tags=[f"suite:{summary['name']}", "leaderboard"],
                     config={"suite": summary["name"],  # as JSON text: W&B drops empty dicts, nests dotted keys
                             "mtlbench": {"kind": "leaderboard", "summary": json.dumps(summary)}},
                     mode=mode, dir=str(run_dir), resume="allow", settings=quiet(wandb))
    run.log({**{f"leaderboard/{name}": wandb.Table(dataframe=frame) for name, frame in tables.items()},
             **{f"figures/{name}": wandb.Image(str(path)) for name, path in images.items()}})
    run.finish()
    return run_id


def offline_runs(root: Path) -> list[Path]:
    """The offline runs under ``root``, the newest per run id (an older one is a superseded attempt)."""
    newest: dict[str, Path] = {}
    for run in sorted(root.glob("**/wandb/offline-run-*")):  # the folder name starts with its date and time
        newest[run.name.split("-", 3)[-1]] = run  # offline-run-<date>_<time>-<run id>; a run id has dashes
    return sorted(newest.values())


def sync(root: Path) -> int:
    """Upload every offline run under ``root`` with ``wandb sync``; returns the number of failures."""
    failures = 0
    for run in offline_runs(root):
        done = subprocess.run([sys.executable, "-m", "wandb", "sync", str(run)]).returncode
        failures += done != 0
    return failures
