"""The results store: ``<results>/<suite>/<job id>/`` with config, mask, per-epoch metrics and result.json.

result.json is written last and atomically, as strict JSON (no NaN or infinity). A job is finished exactly when
its result.json parses and has the fields below; one that does not (a truncated copy, a hand edit) is
corrupt: ``run`` moves it aside with a warning and trains the job again, ``status`` shows the job as pending
and the leaderboard names the file and leaves it out. Its schema:

| field | content |
|---|---|
| schema | 1 |
| job_id, suite, dataset, scenario, method, seed | identity (scenario as its label, e.g. onelabel+30%unlabeled) |
| tasks | task names in column order |
| test, val | {task: {metric: value}} of the last epoch's network |
| primary | {task: primary metric}; directions: {task: {metric: higher_is_better}} |
| history | per-epoch records: stage, epoch, lr, seconds, images_per_second, train/loss/*, val |
| labels_per_task | labelled training images per task (from the saved mask) |
| resumed_from_epoch | {stage: epoch the run resumed from (0 if it never stopped)} |
| train_seconds, device, torch, mtlbench, finished_at | cost and provenance |
| runner | the ``mtlbench run`` that trained (or, on SLURM, submitted) it: the one whose job finished last logs the suite's W&B leaderboard run |
| constant | {task: {metric: value}}: the test metrics of a constant prediction of the labelled training targets (their mean; the majority class for segmentation) |
| first_step_loss, diverged | each task's training loss at its first step, and the tasks whose last-epoch training loss exceeds 10 times it (the run diverged without NaN) |
| metrics_version | the metric conventions that scored it (2 since 0.2; absent: 1) |
| config | the resolved job config (its hash is job_id) |
| pseudo_labels | a student of teachers (MuST, Noisy Student): {task: {images: share of training images whose target was the teacher's, pixels: share of their pixels it labelled}} |
| teacher | a student of teachers: {job_id, val} of the STL job it learnt from |
| optimizer_groups | with ``train.optimizer.head_lr``: {backbone, heads, method: {lr, parameters}}, the optimiser's named parameter groups |
| copied_from | a teacher copied from another suite of the results folder, where the same job finished: that suite |
| devices | a job trained on several devices (``train.devices``): their number (``device`` is rank 0's) |

A job whose weights another job reads (a teacher) also keeps ``weights-<stage>.pt`` ({"model": state dict}, read
with ``weights_only``) beside result.json; every other finished job keeps no network.
"""
from __future__ import annotations

import functools
import json
import shutil
import warnings
from pathlib import Path
from typing import Any, Iterator

from ..files import (CorruptFile, check_name, load_tensors, move_aside, read_json, remove_stale_temporaries,
                     write_atomic, write_json_atomic, write_text_atomic)
from ..jobs import Job
from .claims import CLAIM

RESULT = "result.json"
ERROR = "error.txt"
HISTORY = "metrics.jsonl"
WEIGHTS = "weights-{}.pt"  # a stage's trained network, kept by a job whose weights others read
# the fields every reader of results relies on (leaderboards, resolvers, tuning)
REQUIRED = {"schema": int, "job_id": str, "suite": str, "dataset": str, "scenario": str, "method": str,
            "seed": int, "test": dict, "primary": dict, "directions": dict}


def result_problem(result: Any, job_id: str) -> str | None:
    """Why a parsed result.json is not a finished job's result (None if it is one)."""
    if not isinstance(result, dict):
        return f"a result is a JSON object, this is {type(result).__name__}"
    wrong = [f"{key} ({kind.__name__})" for key, kind in REQUIRED.items() if not isinstance(result.get(key), kind)]
    if wrong:
        return f"fields missing or of the wrong type: {', '.join(wrong)}"
    if result["schema"] != 1:
        return f"schema {result['schema']}, this mtlbench reads schema 1"
    if result["job_id"] != job_id:
        return f"job_id {result['job_id']!r} in the folder of job {job_id}"
    return None


class Store:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def suite_dir(self, suite: str) -> Path:
        """The suite's folder; every part of the name is checked, so it never leaves the results folder (a
        tuning suite is ``<suite>/tuning``)."""
        return self.root.joinpath(*(check_name(part) for part in suite.split("/")))

    def job_dir(self, job: Job) -> Path:
        return self.suite_dir(job.suite) / job.id

    # ------------------------------------------------------------------------------------------ results
    def read_result(self, directory: Path) -> tuple[dict[str, Any] | None, str | None]:
        """(result, None) for a finished job, (None, why) for a corrupt result.json, (None, None) without one."""
        path = directory / RESULT
        if not path.exists():
            return None, None
        try:
            result = read_json(path)
        except CorruptFile as error:
            return None, str(error)
        problem = result_problem(result, directory.name)
        return (None, f"{path}: {problem}") if problem else (result, None)

    def is_done(self, job: Job) -> bool:
        return self.finished(job) is not None

    def finished(self, job: Job) -> dict[str, Any] | None:
        """The job's result if it is finished: result.json, and for a job whose weights others read (a teacher),
        its weights too (one finished before a student needed it trains again, once, to keep them)."""
        result = self.read_result(self.job_dir(job))[0]
        if result is None or not job.keeps_weights:
            return result
        return result if self.kept_weights(job.suite, job.id) else None

    def adopt(self, job: Job) -> str | None:
        """For a job whose weights others read and that has not finished here: copy it from another suite of this
        results folder where the same job (same id: same config) finished and kept its weights, so that a teacher
        trains once across suites; the name of that suite, or None. The copy's result.json says where it came from."""
        if not job.keeps_weights or self.finished(job) is not None:
            return None
        for suite in self.suites():
            if suite == job.suite or not self.kept_weights(suite, job.id):
                continue
            result = self.result(suite, job.id)
            if result is None:
                continue
            source, target = self.suite_dir(suite) / job.id, self.job_dir(job)
            target.mkdir(parents=True, exist_ok=True)
            for path in sorted(source.iterdir()):
                if path.is_file() and path.name not in (RESULT, CLAIM, ERROR) and not path.name.endswith(".tmp"):
                    shutil.copyfile(path, target / path.name)
            write_json_atomic(target / RESULT, {**result, "suite": job.suite, "copied_from": suite})
            return suite
        return None

    def kept_weights(self, suite: str, job_id: str) -> dict[str, Path]:
        """{stage: weights file} a finished job kept (empty if it kept none)."""
        found = sorted((self.suite_dir(suite) / job_id).glob(WEIGHTS.format("*")))
        return {path.name[len("weights-"):-len(".pt")]: path for path in found}

    def result(self, suite: str, job_id: str) -> dict[str, Any] | None:
        """A finished job's result record, or None."""
        return self.read_result(self.suite_dir(suite) / job_id)[0]

    def results(self, suite: str) -> Iterator[dict[str, Any]]:
        """Every finished job's result; a corrupt one is named in a warning and left out."""
        for path in sorted(self.suite_dir(suite).glob(f"*/{RESULT}")):
            result, problem = self.read_result(path.parent)
            if problem:
                warnings.warn(f"{problem}; left out (run the suite again to retrain the job)", stacklevel=2)
            elif result is not None:
                yield result

    def set_aside_corrupt_result(self, job: Job) -> None:
        """Move a corrupt result.json aside (with a warning naming it), so the job trains again."""
        _, problem = self.read_result(self.job_dir(job))
        if problem:
            move_aside(self.job_dir(job) / RESULT, problem)

    # ----------------------------------------------------------------------------------- a job's files
    def prepare(self, job: Job, force: bool) -> Path:
        """The job's folder, ready for training (emptied but for the claim with ``force``); temporary files of
        killed writers are removed (the caller holds the job's claim)."""
        directory = self.job_dir(job)
        if force and directory.exists():
            for entry in directory.iterdir():
                if entry.name != CLAIM:
                    shutil.rmtree(entry) if entry.is_dir() else entry.unlink()
        directory.mkdir(parents=True, exist_ok=True)
        remove_stale_temporaries(directory)
        self.set_aside_corrupt_result(job)
        write_json_atomic(directory / "config.json", job.config)
        return directory

    def write_history(self, job: Job, history: list[dict[str, Any]]) -> None:
        write_text_atomic(self.job_dir(job) / HISTORY,
                          "".join(json.dumps(record, allow_nan=False) + "\n" for record in history))

    def finish(self, job: Job, result: dict[str, Any]) -> None:
        """Write result.json (the job is finished from then on), then tidy the folder. A job whose weights others
        read first keeps each stage's network, as ``weights-<stage>.pt`` ({"model": state dict})."""
        if job.keeps_weights:
            self.keep_weights(job)
        write_json_atomic(self.job_dir(job) / RESULT, result)
        self.tidy(job)

    def keep_weights(self, job: Job) -> None:
        import torch

        for path in sorted(self.job_dir(job).glob("checkpoint-*.pt")):
            model = load_tensors(path, "checkpoint")["model"]
            stage = path.name[len("checkpoint-"):-len(".pt")]
            write_atomic(path.with_name(WEIGHTS.format(stage)), lambda stream: torch.save({"model": model}, stream))

    def tidy(self, job: Job) -> None:
        """Remove what a finished job no longer needs: checkpoints, temporary files, its last error. Never
        fails: the job is finished whatever happens to these files."""
        directory = self.job_dir(job)
        for stale in [*directory.glob("checkpoint-*.pt"), *directory.glob("*.tmp"), directory / ERROR]:
            try:
                stale.unlink(missing_ok=True)
            except OSError:
                pass

    def restart(self, job: Job) -> None:
        """Drop an unfinished job's checkpoints and records, so that it trains from scratch if it runs again
        (a pruned trial's job); its W&B run stays for syncing."""
        for stale in self.job_dir(job).glob("checkpoint-*.pt"):
            stale.unlink(missing_ok=True)
        (self.job_dir(job) / HISTORY).unlink(missing_ok=True)

    def write_error(self, job: Job, error: BaseException, trace: str) -> None:
        """error.txt: the error in one line (what ``status`` shows), then the traceback, written atomically (a
        full disk leaves none rather than an empty one). The folder is made again if something deleted it while
        the job ran."""
        headline = f"{type(error).__name__}: {error}".splitlines()[0]
        self.job_dir(job).mkdir(parents=True, exist_ok=True)
        write_text_atomic(self.job_dir(job) / ERROR, f"{headline}\n\n{trace}")

    def error_line(self, job: Job) -> str:
        """The first line of the job's error (an older error.txt holds only a traceback: its last line)."""
        path = self.job_dir(job) / ERROR
        try:
            lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
        except FileNotFoundError:
            return ""
        if not lines:
            return "(error.txt is empty: its writer was stopped, e.g. by a full disk; run the job again)"
        return lines[-1] if lines[0].startswith("Traceback") else lines[0]

    def has_failed(self, job: Job) -> bool:
        """Whether the job's last attempt failed (and it has not finished since)."""
        return (self.job_dir(job) / ERROR).exists() and not self.is_done(job)

    # ------------------------------------------------------------------------------------------ suites
    def write_suite(self, suite: str, summary: dict[str, Any]) -> None:
        self.suite_dir(suite).mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.suite_dir(suite) / "suite.json", summary)

    def last_finished(self, suite: str, job_ids: list[str]) -> dict[str, Any] | None:
        """The result of the job that finished last (ties, within the second ``finished_at`` keeps, broken by job
        id, so that every runner names the same one); None if none has finished."""
        finished = [r for r in map(functools.partial(self.result, suite), job_ids) if r is not None]
        return max(finished, key=lambda r: (r.get("finished_at", ""), r["job_id"]), default=None)

    def suites(self) -> list[str]:
        return sorted(p.parent.name for p in self.root.glob("*/suite.json"))

    def suite_summary(self, suite: str) -> dict[str, Any]:
        path = self.suite_dir(suite) / "suite.json"
        if not path.exists():
            return {"name": suite}
        summary = read_json(path)
        if not isinstance(summary, dict):
            raise CorruptFile(f"{path}: not a suite summary; run the suite again to rewrite it")
        return summary


__all__ = ["ERROR", "HISTORY", "RESULT", "Store", "result_problem", "write_json_atomic"]
