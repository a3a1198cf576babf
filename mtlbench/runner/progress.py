"""Progress of a suite: a live table of jobs on a terminal, one plain line per event otherwise."""
from __future__ import annotations

import sys
import time
from typing import Any, TextIO

from ..jobs import Job


class Progress:
    def __init__(self, jobs: list[Job], stream: TextIO | None = None, live: bool | None = None) -> None:
        self.jobs = jobs
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.status = {job.id: "pending" for job in jobs}
        self.drawn = 0
        self.start = time.monotonic()

    def _line(self, text: str) -> None:
        if self.live:
            self._draw()
        else:
            print(f"[{time.monotonic() - self.start:7.1f}s] {text}", file=self.stream, flush=True)

    def _draw(self) -> None:
        rows = [f"{'job':<14}{'run':<48}status"] + [
            f"{job.id:<14}{job.describe():<48}{self.status[job.id]}" for job in self.jobs]
        if self.drawn:
            self.stream.write(f"\x1b[{self.drawn}F")
        self.stream.write("".join(f"\x1b[2K{row}\n" for row in rows))
        self.stream.flush()
        self.drawn = len(rows)

    def skipped(self, job: Job) -> None:
        self.status[job.id] = "done (skipped)"
        self._line(f"skip {job.id} {job.describe()}: result.json exists")

    def started(self, job: Job) -> None:
        self.status[job.id] = "starting"
        self._line(f"start {job.id} {job.describe()}")

    def epoch(self, job: Job, record: dict[str, Any]) -> None:
        primary = "  ".join(f"{task}.{name}={value:.4g}" for task, metrics in record["val"].items()
                            for name, value in list(metrics.items())[:1])
        self.status[job.id] = f"{record['stage']} epoch {record['epoch']}/{record['epochs']}  val {primary}"
        self._line(f"epoch {job.id} {record['stage']} {record['epoch']}/{record['epochs']} "
                   f"({record['images_per_second']:.0f} img/s) val {primary}")

    def finished(self, job: Job, seconds: float) -> None:
        self.status[job.id] = f"done in {seconds:.0f}s"
        self._line(f"done {job.id} {job.describe()} in {seconds:.1f}s")

    def note(self, job: Job, state: str, detail: str = "") -> None:
        """A state another process reports (a SLURM task: PENDING, RUNNING, done, failed)."""
        self.status[job.id] = state + (f": {detail}" if detail else "")
        self._line(f"{state} {job.id} {job.describe()}" + (f": {detail}" if detail else ""))

    def elsewhere(self, job: Job, holder: Any) -> None:
        where = holder.describe().split(" (heartbeat")[0] if holder is not None else "another runner"
        status = f"running elsewhere: {where}"
        if self.status[job.id] != status:  # said once, not at every look
            self.status[job.id] = status
            self._line(f"elsewhere {job.id} {job.describe()}: claimed by {where}; waiting for it")

    def blocked(self, job: Job, need: str, error: str) -> None:
        self.status[job.id] = f"BLOCKED by {need}"
        self._line(f"BLOCKED {job.id} {job.describe()}: needs {need}, which failed: {error}")

    def failed(self, job: Job, error: BaseException) -> None:
        self.status[job.id] = f"FAILED: {error}"
        self._line(f"FAILED {job.id} {job.describe()}: {error}")
