"""The screenshot of a run's live progress in docs/getting-started.md: a small suite run here with two workers,
its terminal view (the events so far, the suite's tally, a bar per running job) saved as SVG at the first moment
two jobs are halfway through an epoch after one has finished.

    python tools/progress_screenshot.py docs/img/progress.svg
"""
from __future__ import annotations

import io
import sys
import tempfile
import time
from typing import Any

from rich.console import Console
from rich.text import Text

from mtlbench.config import load_suite
from mtlbench.runner import RunOptions, run_suite
from mtlbench.runner.progress import Position, Progress

SUITE = "suites/quickstart.yaml"
OVERRIDES = ["methods=[supervised,mtpsl]", "seeds=[0,1]", "train.epochs=2"]
WIDTH = 110
COMMAND = f"mtlbench run {SUITE} --workers 2 " + " ".join(f"--set '{o}'" for o in OVERRIDES)


class Screenshot(Progress):
    """The live view, drawn into a buffer; ``shot`` saves it once, as a terminal ``WIDTH`` columns wide shows it."""

    def __init__(self, jobs: list[Any], path: str) -> None:
        super().__init__(jobs, stream=io.StringIO(), live=True, workers=2)
        self.path, self.lines, self.taken = path, [], False

    def _line(self, text: str, style: str = "", tally: bool = False) -> None:
        self.lines.append((f"[{time.monotonic() - self.start:7.1f}s] {text}", style))
        super()._line(text, style, tally)

    def position(self, job: Any, position: Position) -> None:
        super().position(job, position)
        halfway = [p for job_id, p in self.positions.items()
                   if self.state[job_id] == "running" and p.of > p.batches >= p.of / 2]
        if not self.taken and self.counts()["done"] and len(halfway) == 2:
            self.shot()

    def shot(self) -> None:
        console = Console(record=True, width=WIDTH, file=io.StringIO(), force_terminal=True)
        console.print(Text(f"$ {COMMAND}", style="bold"))
        for line, style in self.lines:
            console.print(Text(line, style=style))
        console.print(self.display.get_renderable())
        console.save_svg(self.path, title="mtlbench run")
        self.taken = True


def main(path: str) -> None:
    suite = load_suite(SUITE, OVERRIDES)
    screenshot = Screenshot(suite.jobs, path)
    with tempfile.TemporaryDirectory() as results:
        run_suite(suite, RunOptions(results=results, wandb="disabled", workers=2), screenshot)
    if not screenshot.taken:
        sys.exit("no moment with two jobs halfway through an epoch: nothing saved")
    print(f"saved {path}")


if __name__ == "__main__":
    main(*sys.argv[1:])
