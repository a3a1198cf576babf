"""The results store: ``<results>/<suite>/<job id>/`` with config, mask, per-epoch metrics and result.json.

result.json is written last and atomically: a job is finished exactly when it exists. Its schema:

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
| config | the resolved job config (its hash is job_id) |
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path
from typing import Any, Iterator

from ..jobs import Job

RESULT = "result.json"
ERROR = "error.txt"


def write_json_atomic(path: Path, payload: Any) -> None:
    tmp = path.with_name(path.name + f".{os.getpid()}.tmp")
    tmp.write_text(json.dumps(payload, indent=1, sort_keys=False))
    os.replace(tmp, path)


class Store:
    def __init__(self, root: str | Path) -> None:
        self.root = Path(root)

    def suite_dir(self, suite: str) -> Path:
        return self.root / suite

    def job_dir(self, job: Job) -> Path:
        return self.suite_dir(job.suite) / job.id

    def is_done(self, job: Job) -> bool:
        return (self.job_dir(job) / RESULT).exists()

    def prepare(self, job: Job, force: bool) -> Path:
        directory = self.job_dir(job)
        if force and directory.exists():
            shutil.rmtree(directory)
        directory.mkdir(parents=True, exist_ok=True)
        write_json_atomic(directory / "config.json", job.config)
        return directory

    def write_history(self, job: Job, history: list[dict[str, Any]]) -> None:
        tmp = self.job_dir(job) / f"metrics.jsonl.{os.getpid()}.tmp"
        tmp.write_text("".join(json.dumps(record) + "\n" for record in history))
        os.replace(tmp, self.job_dir(job) / "metrics.jsonl")

    def history(self, job: Job) -> list[dict[str, Any]]:
        """The per-epoch records written so far (an unfinished job's, up to its last checkpoint at most)."""
        path = self.job_dir(job) / "metrics.jsonl"
        return [json.loads(line) for line in path.read_text().splitlines()] if path.exists() else []

    def finish(self, job: Job, result: dict[str, Any]) -> None:
        write_json_atomic(self.job_dir(job) / RESULT, result)
        self.discard_checkpoints(job)

    def discard_checkpoints(self, job: Job) -> None:
        for stale in self.job_dir(job).glob("checkpoint-*.pt"):
            stale.unlink()

    def restart(self, job: Job) -> None:
        """Drop an unfinished job's checkpoints and records, so that it trains from scratch if it runs again
        (a pruned trial's job); its W&B run stays for syncing."""
        self.discard_checkpoints(job)
        (self.job_dir(job) / "metrics.jsonl").unlink(missing_ok=True)

    def write_error(self, job: Job, error: BaseException, trace: str) -> None:
        """error.txt: the error in one line (what ``status`` shows), then the traceback."""
        headline = f"{type(error).__name__}: {error}".splitlines()[0]
        self.job_dir(job).mkdir(parents=True, exist_ok=True)
        (self.job_dir(job) / ERROR).write_text(f"{headline}\n\n{trace}")

    def error_line(self, job: Job) -> str:
        """The first line of the job's error (an older error.txt holds only a traceback: its last line)."""
        path = self.job_dir(job) / ERROR
        if not path.exists():
            return ""
        lines = [line for line in path.read_text(errors="replace").splitlines() if line.strip()]
        if not lines:
            return "(empty error.txt)"
        return lines[-1] if lines[0].startswith("Traceback") else lines[0]

    def has_failed(self, job: Job) -> bool:
        """Whether the job's last attempt failed (and it has not finished since)."""
        return (self.job_dir(job) / ERROR).exists() and not self.is_done(job)

    def write_suite(self, suite: str, summary: dict[str, Any]) -> None:
        self.suite_dir(suite).mkdir(parents=True, exist_ok=True)
        write_json_atomic(self.suite_dir(suite) / "suite.json", summary)

    def suites(self) -> list[str]:
        return sorted(p.parent.name for p in self.root.glob("*/suite.json"))

    def results(self, suite: str) -> Iterator[dict[str, Any]]:
        for path in sorted(self.suite_dir(suite).glob(f"*/{RESULT}")):
            yield json.loads(path.read_text())

    def result(self, suite: str, job_id: str) -> dict[str, Any] | None:
        """A finished job's result record, or None."""
        path = self.suite_dir(suite) / job_id / RESULT
        return json.loads(path.read_text()) if path.exists() else None

    def suite_summary(self, suite: str) -> dict[str, Any]:
        path = self.suite_dir(suite) / "suite.json"
        return json.loads(path.read_text()) if path.exists() else {"name": suite}
