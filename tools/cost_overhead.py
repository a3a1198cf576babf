"""What measuring a job's costs adds to it: for seeds 0 and 1 of each method of a suite (trained here, in one
process, one thread), each stage's FLOP-counted first step less its median plain step, summed over the job's
stages, as a share of the job's wall time (docs/benchmarks.md, "What measuring costs costs").

    python tools/cost_overhead.py suites/synthrooms_label_efficiency.yaml
"""
from __future__ import annotations

import json
import statistics
import sys
import tempfile
import time
from pathlib import Path

import torch

from mtlbench.config import load_suite
from mtlbench.train import trainer


def main(suite_path: str) -> None:
    torch.set_num_threads(1)
    steps: list[tuple[int, bool, float]] = []
    plain_step = trainer.StageParts.train_step

    def timed(self, loaded, count):
        start = time.perf_counter()
        logs = plain_step(self, loaded, count)
        steps.append((id(self), count, time.perf_counter() - start))
        return logs

    trainer.StageParts.train_step = timed
    jobs = load_suite(suite_path).jobs
    for job in jobs:
        if job.seed not in (0, 1) or job.scenario != jobs[0].scenario:
            continue
        steps.clear()
        with tempfile.TemporaryDirectory() as folder:
            start = time.perf_counter()
            trainer.run_job(job.config, Path(folder))
            wall = time.perf_counter() - start
        extra = 0.0
        for stage in {s for s, _, _ in steps}:
            mine = [(counted, seconds) for s, counted, seconds in steps if s == stage]
            extra += sum(s for c, s in mine if c) - statistics.median(s for c, s in mine if not c)
        print(json.dumps({"method": job.method, "seed": job.seed, "wall_s": round(wall, 2),
                          "extra_s": round(extra, 3), "share_percent": round(100 * extra / wall, 2)}), flush=True)


if __name__ == "__main__":
    main(sys.argv[1])
