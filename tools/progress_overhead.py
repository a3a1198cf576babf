"""What following a job's progress costs it (docs/benchmarks.md, "What progress costs"): one job of a suite trained
here with the live view drawn into a buffer at its usual pace, the time spent in progress timed where it is spent
(the trainer's call of the step hook at every step, and each redraw of the view, in the training thread or rich's
refresh thread) as a share of the job's training time. A difference of two runs' wall times cannot show it on a
shared CPU: two runs of the same job differ by more than that.

    python tools/progress_overhead.py suites/quickstart.yaml mtpsl
"""
from __future__ import annotations

import io
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from rich.live import Live

from mtlbench.config import load_suite
from mtlbench.jobs import Hooks
from mtlbench.runner.progress import Progress
from mtlbench.train import run_job


class Clock:
    """Seconds spent in the functions it wraps, per thread (a redraw inside a step is counted once)."""

    def __init__(self) -> None:
        self.seconds = 0.0
        self.calls = 0
        self.inside = threading.local()

    def timed(self, function: Callable[..., Any]) -> Callable[..., Any]:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            if getattr(self.inside, "depth", 0):
                return function(*args, **kwargs)
            self.inside.depth = 1
            start = time.perf_counter()
            try:
                return function(*args, **kwargs)
            finally:
                self.seconds += time.perf_counter() - start
                self.calls += 1
                self.inside.depth = 0

        return wrapper


def main(suite_path: str, method: str) -> None:
    job = next(job for job in load_suite(suite_path).jobs if job.method == method)
    clock = Clock()
    Live.refresh = clock.timed(Live.refresh)
    progress = Progress([job], stream=io.StringIO(), live=True)
    progress.started(job)
    steps = []
    step = clock.timed(lambda step: (steps.append(None), progress.step(job, step)))
    with tempfile.TemporaryDirectory() as folder:
        outcome = run_job(job.config, Path(folder), Hooks(step=step), test=False)
    progress.close()
    share = clock.seconds / outcome["train_seconds"]
    print(f"{job.describe()}: {len(steps)} steps in {outcome['train_seconds']:.1f} s of training; progress took "
          f"{clock.seconds * 1e3:.0f} ms in {clock.calls} calls ({100 * share:.2f}%)")


if __name__ == "__main__":
    main(*sys.argv[1:])
