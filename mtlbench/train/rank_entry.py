"""The process of a rank above 0 of a job on several devices (train/ranks.py starts it):
``python -m mtlbench.train.rank_entry CONFIG JOB_DIR RANK DEVICES test|no-test``."""
from __future__ import annotations

import json
import sys
from pathlib import Path

import torch.distributed as dist

from ..plugins import load_plugins
from .ranks import join
from .settings import JobSpec
from .trainer import resolve_device, run_job


def main(argv: list[str]) -> None:
    config_file, job_dir, rank, devices, test = argv
    load_plugins()  # the registries a suite's plugins add, as a runner's worker loads them
    config = json.loads(Path(config_file).read_text())
    join(int(rank), int(devices), Path(config_file).parent / "rendezvous",
         resolve_device(JobSpec.of(config).train.device))
    try:
        run_job(config, Path(job_dir), test=test == "test")
    finally:
        dist.destroy_process_group()


if __name__ == "__main__":
    main(sys.argv[1:])
