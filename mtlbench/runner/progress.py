"""Progress of a suite, for the person waiting on it.

On a terminal (drawn with rich): a line for the suite (jobs done, running, failed, blocked, and when the suite
should end) and, for each running job, a bar through its current epoch (batches, images per second, training
loss), below a log of the suite's events. Off a terminal (CI, a SLURM log, a file): one plain line per event,
each epoch's included, and nothing per step.

The estimate of when the suite ends adds up, job by job, what each job left is expected to take, and divides it
among the runner's workers. A job is expected to take what jobs of its kind took, the closest kind measured:
finished jobs of the same job kind, dataset, method and scenario (their ``wall_seconds``, those of an earlier
run's results included); then of the same method in any scenario; then the running jobs of that method, their
time so far divided by the share of their epochs done (a job of several stages, one network per task, is
projected from the stage it is in); then finished jobs of the dataset; then any finished job.

A worker process reports through a ``Relay``; the parent replays its calls on the suite's ``Progress``.
"""
from __future__ import annotations

import sys
import time
from dataclasses import dataclass
from typing import Any, TextIO

from ..jobs import Job, Step

@dataclass(frozen=True)
class Position:
    """A ``Step`` as progress shows it: plain numbers that a worker can send to its parent."""

    stage: str
    epoch: int
    epochs: int
    batches: int
    of: int
    images: int
    seconds: float
    loss: float

    @classmethod
    def of_step(cls, step: Step) -> "Position":
        return cls(step.stage, step.epoch, step.epochs, step.batches, step.of, step.images, step.seconds,
                   step.loss())

    def describe(self) -> str:
        rate = self.images / self.seconds if self.seconds > 0 else 0.0
        where = "validating" if self.batches == self.of else f"{self.batches}/{self.of}"
        return f"{self.stage} {self.epoch}/{self.epochs} · {where} · {rate:,.0f} img/s · loss {self.loss:.3g}"


def duration(seconds: float) -> str:
    minutes, second = divmod(int(round(seconds)), 60)
    hours, minute = divmod(minutes, 60)
    return f"{hours}:{minute:02d}:{second:02d}" if hours else f"{minute}:{second:02d}"


Kind = tuple[str, ...]
PROJECTED_AFTER = 0.05  # the share of its epochs a running job has done before its pace stands for its method's


class Timings:
    """What finished jobs took, by kind: the estimate of what a job left will take (see the module docstring)."""

    def __init__(self) -> None:
        self.seconds: dict[Kind, list[float]] = {}

    @staticmethod
    def kinds(job: Job) -> list[Kind]:
        """The job's kinds, closest first (see the module docstring)."""
        return [(job.kind, job.dataset, job.method, job.scenario), (job.kind, job.dataset, job.method),
                (job.kind, job.dataset), ()]

    def add(self, job: Job, seconds: float) -> None:
        for kind in self.kinds(job):
            self.seconds.setdefault(kind, []).append(seconds)

    def estimate(self, job: Job, projected: dict[Kind, list[float]] | None = None) -> float | None:
        """The mean of the closest kind measured; ``projected``: running jobs' projected seconds by method kind."""
        scenario, method, dataset, anything = self.kinds(job)
        for source, kind in ((self.seconds, scenario), (self.seconds, method), (projected or {}, method),
                             (self.seconds, dataset), (self.seconds, anything)):
            if source.get(kind):
                return sum(source[kind]) / len(source[kind])
        return None


SETTLED = ("done", "failed", "blocked")
STEP_INTERVAL = 0.25  # seconds between two redraws of a job's bar (each reads the loss, which waits for the device)


class Throttle:
    """Whether a job's step is due to be shown: at most one every ``STEP_INTERVAL`` seconds per job."""

    def __init__(self) -> None:
        self.shown: dict[str, float] = {}

    def due(self, job: Job) -> bool:
        now = time.monotonic()
        if now - self.shown.get(job.id, 0.0) < STEP_INTERVAL:
            return False
        self.shown[job.id] = now
        return True


class Progress:
    """The suite's progress, live on a terminal or as plain lines (``live``; default: whether ``stream`` is a
    terminal). ``workers``: how many jobs run at once, for the estimate of the end."""

    def __init__(self, jobs: list[Job], stream: TextIO | None = None, live: bool | None = None,
                 workers: int = 1) -> None:
        self.jobs = {job.id: job for job in jobs}
        self.stream = stream or sys.stdout
        self.live = self.stream.isatty() if live is None else live
        self.workers = workers
        self.state = {job.id: "pending" for job in jobs}  # pending, running, done, failed, blocked, elsewhere
        self.holders: dict[str, str] = {}  # job id -> the runner said to hold it
        self.timings = Timings()
        self.began: dict[str, float] = {}
        self.throttle = Throttle()
        self.start = time.monotonic()
        self.display: Any = None  # the live view (rich), made at the first event
        self.bars: dict[str, Any] = {}  # job id -> its bar in the live view
        self.positions: dict[str, Position] = {}  # job id -> where its epoch stood when last drawn

    # --------------------------------------------------------------------------------------- events
    def skipped(self, job: Job, seconds: float | None = None) -> None:
        """A job finished before (``seconds``: the ``wall_seconds`` its result records)."""
        self._settle(job, "done", seconds)
        self._line(f"skip {job.id} {job.describe()}: result.json exists", "dim")

    def started(self, job: Job) -> None:
        self.state[job.id] = "running"
        self.began[job.id] = time.monotonic()
        self._line(f"start {job.id} {job.describe()}")
        if self.live:
            self._add_bar(job, None, "loading its data")

    def step(self, job: Job, step: Step) -> None:
        """After each training step: at most one redraw every ``STEP_INTERVAL`` seconds, and none off a
        terminal."""
        if self.live and self.throttle.due(job):
            self.position(job, Position.of_step(step))

    def position(self, job: Job, position: Position) -> None:
        self.positions[job.id] = position
        if self.live:
            self._bar(job, position)

    def epoch(self, job: Job, record: dict[str, Any]) -> None:
        primary = "  ".join(f"{task}.{name}={value:.4g}" for task, metrics in record["val"].items()
                            for name, value in list(metrics.items())[:1])
        self._line(f"epoch {job.id} {record['stage']} {record['epoch']}/{record['epochs']} "
                   f"({record['images_per_second']:.0f} img/s) val {primary}", "dim")

    def finished(self, job: Job, seconds: float) -> None:
        self._settle(job, "done", seconds)
        self._line(f"done {job.id} {job.describe()} in {seconds:.1f}s", "green", tally=True)

    def note(self, job: Job, state: str, detail: str = "", seconds: float | None = None) -> None:
        """A state another process reports (a SLURM task: PENDING, RUNNING, done with its ``seconds``, failed)."""
        settled = {"done": "done", "failed": "failed"}.get(state)
        if settled:
            self._settle(job, settled, seconds)
        else:
            self.state[job.id] = "running" if state == "RUNNING" else "pending"
            self.began.setdefault(job.id, time.monotonic())
        self._line(f"{state} {job.id} {job.describe()}" + (f": {detail}" if detail else ""),
                   "red" if state == "failed" else "", tally=bool(settled))

    def elsewhere(self, job: Job, holder: Any) -> None:
        where = holder.describe().split(" (heartbeat")[0] if holder is not None else "another runner"
        if self.holders.get(job.id) != where:  # said once, not at every look
            self.state[job.id], self.holders[job.id] = "elsewhere", where
            self._line(f"elsewhere {job.id} {job.describe()}: claimed by {where}; waiting for it", "yellow")

    def blocked(self, job: Job, need: str, error: str) -> None:
        self._settle(job, "blocked")
        self._line(f"BLOCKED {job.id} {job.describe()}: needs {need}, which failed: {error}", "yellow", tally=True)

    def failed(self, job: Job, error: BaseException | str) -> None:
        self._settle(job, "failed")
        self._line(f"FAILED {job.id} {job.describe()}: {error}", "bold red", tally=True)

    def close(self) -> None:
        """The suite's last line; the live view ends (the terminal keeps what it showed)."""
        if self.display is not None:
            self._update_suite()
            self.display.stop()
            self.display = None

    # ------------------------------------------------------------------------------------- the tally
    def counts(self) -> dict[str, int]:
        states = list(self.state.values())
        return {state: states.count(state) for state in ("done", "running", "failed", "blocked", "elsewhere")}

    def eta(self) -> float | None:
        """Seconds until this runner's jobs are settled (see the module docstring); None before any job has
        finished. Jobs other runners hold are theirs to estimate."""
        now = time.monotonic()
        projected = self.projected(now)
        left = 0.0
        for job_id, state in self.state.items():
            if state in ("pending", "running"):
                estimate = self.timings.estimate(self.jobs[job_id], projected)
                if estimate is None:
                    return None
                left += max(estimate - (now - self.began.get(job_id, now)), 0.0) if state == "running" else estimate
        running = self.counts()["running"]
        return left / max(self.workers, running, 1)

    def projected(self, now: float) -> dict[Kind, list[float]]:
        """What the running jobs will take at their pace so far, by method kind."""
        projected: dict[Kind, list[float]] = {}
        for job_id, position in self.positions.items():
            share = ((position.epoch - 1) + position.batches / position.of) / position.epochs
            if self.state[job_id] == "running" and share >= PROJECTED_AFTER:
                kind = Timings.kinds(self.jobs[job_id])[1]
                projected.setdefault(kind, []).append((now - self.began.get(job_id, now)) / share)
        return projected

    def tally(self) -> str:
        counts, total = self.counts(), len(self.state)
        parts = [f"{counts['done']}/{total} done"] + [f"{counts[state]} {state}" for state in
                                                       ("running", "failed", "blocked", "elsewhere") if counts[state]]
        eta = self.eta()
        ending = ("" if counts["running"] + list(self.state.values()).count("pending") == 0 else
                  f" · ETA ~{duration(eta)}" if eta is not None else " · ETA after the first job")
        return f"{' · '.join(parts)} · {duration(time.monotonic() - self.start)} elapsed{ending}"

    # ---------------------------------------------------------------------------------------- drawing
    def _settle(self, job: Job, state: str, seconds: float | None = None) -> None:
        self.state[job.id] = state
        if seconds is not None and state == "done":
            self.timings.add(job, seconds)
        if self.display is not None and job.id in self.bars:
            self.display.remove_task(self.bars.pop(job.id))

    def _line(self, text: str, style: str = "", tally: bool = False) -> None:
        line = f"[{time.monotonic() - self.start:7.1f}s] {text}"
        if not self.live:
            print(line + (f"  [{self.tally()}]" if tally else ""), file=self.stream, flush=True)
            return
        from rich.text import Text

        display = self._display()
        self._update_suite()
        display.refresh()  # printing above the view redraws it as last refreshed
        display.console.print(Text(line, style=style), soft_wrap=True)

    def _display(self) -> Any:
        """The live view: the suite's row (its jobs settled, the tally), then a row per running job; rows are
        short, so that an 80-column terminal shows them whole."""
        if self.display is None:
            from rich.console import Console
            from rich.progress import BarColumn, Progress as Rows, TextColumn

            console = Console(file=self.stream, force_terminal=True, width=None if self.stream.isatty() else 120)
            self.display = Rows(TextColumn("{task.description}"), BarColumn(bar_width=16),
                                TextColumn("{task.fields[detail]}"), console=console, refresh_per_second=4)
            self.display.add_task("suite", total=len(self.state), detail=self.tally())
            self.display.start()
        return self.display

    def _update_suite(self) -> None:
        settled = sum(self.counts()[state] for state in SETTLED)
        self.display.update(self.display.task_ids[0], completed=settled, detail=self.tally())

    def _add_bar(self, job: Job, total: int | None, detail: str) -> None:
        self.bars[job.id] = self._display().add_task(f"{job.id} {job.method} s{job.seed}", total=total,
                                                     detail=detail)

    def _bar(self, job: Job, position: Position) -> None:
        if job.id not in self.bars:  # a job another process started
            self._add_bar(job, position.of, "")
        self.display.update(self.bars[job.id], completed=position.batches, total=position.of,
                            detail=position.describe())
        self._update_suite()


class Relay:
    """The Progress of a worker process: each event goes to the parent through ``queue`` as ``("progress", event,
    job id, arguments)``, a job's steps as ``Position``s at most every ``STEP_INTERVAL`` seconds. Its events are
    those ``run_one`` reports."""

    def __init__(self, queue: Any) -> None:
        self.queue = queue
        self.throttle = Throttle()

    def _send(self, event: str, job: Job, *arguments: Any) -> None:
        self.queue.put(("progress", event, job.id, arguments))

    def skipped(self, job: Job, seconds: float | None = None) -> None:
        self._send("skipped", job, seconds)

    def started(self, job: Job) -> None:
        self._send("started", job)

    def step(self, job: Job, step: Step) -> None:
        if self.throttle.due(job):
            self._send("position", job, Position.of_step(step))

    def epoch(self, job: Job, record: dict[str, Any]) -> None:
        self._send("epoch", job, record)

    def finished(self, job: Job, seconds: float) -> None:
        self._send("finished", job, seconds)

    def elsewhere(self, job: Job, holder: Any) -> None:
        self._send("elsewhere", job, holder)

    def failed(self, job: Job, error: BaseException | str) -> None:
        self._send("failed", job, str(error))  # an exception need not pickle; its message does


def replay(progress: Progress, message: tuple[str, str, str, tuple[Any, ...]]) -> None:
    """A worker's event (see ``Relay``) on the suite's progress."""
    _, event, job_id, arguments = message
    getattr(progress, event)(progress.jobs[job_id], *arguments)


class ProgressBar:
    """One bar per part of a long task (``mtlbench data prepare``: a bar per split), drawn with rich on a terminal;
    elsewhere a plain line at every tenth of a part and at its end."""

    def __init__(self, what: str, stream: TextIO | None = None, live: bool | None = None) -> None:
        self.what, self.stream = what, stream or sys.stderr
        self.live = self.stream.isatty() if live is None else live
        self.display: Any = None
        self.tasks: dict[str, Any] = {}
        self.tenths: dict[str, int] = {}
        self.start = time.monotonic()

    def __enter__(self) -> "ProgressBar":
        if self.live:
            from rich.console import Console
            from rich.progress import BarColumn, MofNCompleteColumn, Progress as Rows, TextColumn, TimeRemainingColumn

            self.display = Rows(TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(),
                                TimeRemainingColumn(), console=Console(file=self.stream))
            self.display.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        if self.display is not None:
            self.display.stop()

    def update(self, part: str, done: int, total: int) -> None:
        if self.display is not None:
            if part not in self.tasks:
                self.tasks[part] = self.display.add_task(f"{self.what} {part}", total=total)
            self.display.update(self.tasks[part], completed=done)
            return
        tenth = 10 * done // max(total, 1)
        if tenth > self.tenths.get(part, 0) or done == total:
            self.tenths[part] = tenth
            print(f"[{time.monotonic() - self.start:7.1f}s] {self.what} {part}: {done}/{total}", file=self.stream,
                  flush=True)
