"""One job on ``train.devices`` devices: rank 0 trains in the calling process (so the runner's hooks and a track's
initialiser stay where they were made), ranks 1..N-1 in child processes of ``python -m mtlbench.train.rank_entry``;
they meet through a file in the job's folder (gloo on the CPU, NCCL on CUDA). What each rank does is
mtlbench/distributed.py's; only rank 0 writes the job's files and reports it.
"""
from __future__ import annotations

import json
import subprocess
import sys
import threading
from datetime import timedelta
from pathlib import Path
from typing import Any, Callable, Sequence

import torch
import torch.distributed as dist

from ..errors import UserError
from ..files import write_atomic
from ..methods import single_device_parts
from .settings import JobSpec

TIMEOUT = timedelta(minutes=30)  # a collective waiting longer than this fails (a rank slowed by its data, say)


class DevicesError(UserError, ValueError):
    """A job asks for several devices in a way that cannot run."""


def check_devices(job: JobSpec, observers: Sequence[Any], device: torch.device) -> None:
    """Refuse, before anything starts, a job on several devices that cannot run so, saying why and what to do."""
    devices = job.train.devices
    reasons = single_device_parts(dict(job.method))
    if reasons:
        raise DevicesError(f"train.devices: {devices}: method {job.method.get('name', '')!r} trains on one device "
                           f"only: {'; '.join(reasons)}. Set train.devices: 1")
    if observers:
        raise DevicesError(f"train.devices: {devices}: step observers (train.observe) read one process's gradients; "
                           f"drop train.observe or set train.devices: 1")
    if device.type == "cuda" and (device.index or 0) + devices > torch.cuda.device_count():
        raise DevicesError(f"train.devices: {devices} from {device} needs {devices} GPUs from there, and this machine "
                           f"has {torch.cuda.device_count()}: lower train.devices, or run with --workers 1")
    if device.type not in ("cuda", "cpu"):
        raise DevicesError(f"train.devices: {devices} runs on CUDA (NCCL) or the CPU (gloo), not on {device.type}")


def join(rank: int, devices: int, rendezvous: Path, device: torch.device) -> None:
    """Join the job's process group; on the CPU each rank takes its share of the threads."""
    if device.type == "cpu":
        torch.set_num_threads(max(1, torch.get_num_threads() // devices))
    else:
        torch.cuda.set_device(torch.device("cuda", (device.index or 0) + rank))
    dist.init_process_group("nccl" if device.type == "cuda" else "gloo", init_method=f"file://{rendezvous}",
                            rank=rank, world_size=devices, timeout=TIMEOUT)


def run_on_devices(job: JobSpec, config: dict[str, Any], job_dir: Path, device: torch.device, test: bool,
                   train: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """Train the job on its devices, ``train`` being rank 0's training; rank 0's outcome. A rank that fails stops the
    others and names its log."""
    folder = job_dir / "ranks"
    folder.mkdir(parents=True, exist_ok=True)
    rendezvous = folder / "rendezvous"
    rendezvous.unlink(missing_ok=True)
    write_atomic(folder / "config.json", lambda stream: stream.write(json.dumps(config).encode()))
    children = [start_rank(r, job, folder, job_dir, test) for r in range(1, job.train.devices)]
    watch = threading.Thread(target=stop_all_if_one_fails, args=(children,), daemon=True)
    watch.start()
    threads = torch.get_num_threads()
    try:
        join(0, job.train.devices, rendezvous, device)
        outcome = train()
    except BaseException:
        for child in children:
            child.terminate()
        raise
    finally:
        if dist.is_initialized():
            dist.destroy_process_group()
        torch.set_num_threads(threads)
        for child in children:
            child.wait()
    failed = [r for r, child in enumerate(children, 1) if child.returncode]
    if failed:
        raise RuntimeError(f"rank {failed[0]} of {job.train.devices} failed: see {folder / f'rank{failed[0]}.log'}")
    return outcome


def start_rank(rank: int, job: JobSpec, folder: Path, job_dir: Path, test: bool) -> subprocess.Popen:
    log = open(folder / f"rank{rank}.log", "w")
    return subprocess.Popen([sys.executable, "-m", "mtlbench.train.rank_entry", str(folder / "config.json"), str(job_dir),
                             str(rank), str(job.train.devices), "test" if test else "no-test"],
                            stdout=log, stderr=subprocess.STDOUT)


def stop_all_if_one_fails(children: list[subprocess.Popen]) -> None:
    """A rank that exits with an error leaves the others waiting in a collective: stop them (rank 0's collective
    then fails on the closed connections)."""
    while any(child.poll() is None for child in children):
        if any(child.poll() for child in children):
            for child in children:
                child.terminate()
            return
        threading.Event().wait(1.0)
