"""What a job costs, measured while it trains (Yun and Cho 2023 Tables 1-3 give seconds per epoch and GMACs,
Nishi et al. 2024 Tables 6-7 and 18-19 peak memory and time): a result's ``costs``.

- FLOPs of one training step, the method's own work included (its extra forwards, one backward per task, a
  double backward), counted by ``torch.utils.flop_counter``'s formulas on the second step a process trains (an
  epoch's first can lack work every other step does: Auto-λ's meta update): the real step, whose numbers the counter
  leaves untouched, so nothing is built or run twice. The counter counts convolutions,
  linear layers and matrix products (a multiply-add is 2 FLOPs) and nothing else: not activations, normalisation,
  interpolation or the optimiser's update.
- Peak memory: on CUDA torch's peak allocation, else the process's peak resident set (Linux's ``VmHWM``), both reset
  where the job starts, so a worker that trains one job after another reports each job's own peak.
- Parameters: the networks', and apart from them those the method itself learns (JTR's auto-encoder, MTPSL's
  mapping network, IMTL-L's scales).
Standard library and torch only, like the trainer."""
from __future__ import annotations

import re
import resource
import sys
from pathlib import Path
from typing import Any, Callable, Iterable, TypeVar

import torch
from torch import nn
from torch.utils._python_dispatch import TorchDispatchMode

T = TypeVar("T")
HWM = Path("/proc/self/status")
CLEAR_REFS = Path("/proc/self/clear_refs")


def counted_flops(step: Callable[[], T]) -> tuple[T, int]:
    """``step()``'s value and the FLOPs it ran (forward, backward and double backward alike), by the formulas of
    ``torch.utils.flop_counter`` (the same total as its ``FlopCounterMode``, tested). That mode also attributes each
    operation to its module through hooks on every module call, which tripled the counted step's extra time; a
    job needs the total alone."""
    counter = _FlopCount()
    with counter:
        value = step()
    return value, counter.total


class _FlopCount(TorchDispatchMode):
    """Sums ``torch.utils.flop_counter``'s formula of every operation that has one."""

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple = (), kwargs: dict | None = None) -> Any:
        from torch.utils.flop_counter import flop_registry

        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        formula = flop_registry.get(func._overloadpacket)
        if formula is not None:
            self.total += int(formula(*args, **kwargs, out_val=out))
        return out


def parameter_count(parameters: Iterable[nn.Parameter]) -> int:
    return sum(p.numel() for p in parameters if p.requires_grad)


class PeakMemory:
    """The peak memory of a job on ``device`` since ``reset``: what ``measured`` names."""

    def __init__(self, device: torch.device) -> None:
        self.device = device

    @property
    def measured(self) -> str:
        if self.device.type == "cuda":
            return "torch.cuda.max_memory_allocated"
        return "process peak RSS (VmHWM)" if HWM.exists() else "process peak RSS (ru_maxrss, since the process began)"

    def reset(self) -> None:
        if self.device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(self.device)
        elif CLEAR_REFS.exists():
            CLEAR_REFS.write_text("5")  # Linux: the resident high-water mark starts again from the current size

    def peak(self) -> int:
        """Bytes at the peak; a high-water mark, so reading it once at the end misses nothing."""
        if self.device.type == "cuda":
            return int(torch.cuda.max_memory_allocated(self.device))
        if HWM.exists():
            found = re.search(r"^VmHWM:\s+(\d+) kB", HWM.read_text(), re.MULTILINE)
            if found:
                return int(found.group(1)) * 1024
        scale = 1 if sys.platform == "darwin" else 1024  # ru_maxrss: bytes on macOS, kibibytes on Linux
        return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


def job_costs(stages: Iterable[Any], memory: PeakMemory) -> dict[str, Any]:
    """A result's ``costs`` from its stages' results (``StageResult``): per epoch of the job (one epoch of every
    stage: a network per task trains T of them; each stage's mean over the epochs it trained, which a schedule may
    end early), per training step and at the peak."""
    stages = list(stages)
    records = [record for stage in stages for record in stage.history]
    train_seconds = sum(record["seconds"] for record in records)
    images = sum(record["seconds"] * record["images_per_second"] for record in records)
    flops = [stage.step_flops for stage in stages]

    def per_epoch(key: str) -> float:
        return sum(sum(record.get(key, 0.0) for record in stage.history) / max(len(stage.history), 1)
                   for stage in stages)

    return {
        "epoch_seconds": per_epoch("seconds"),
        "evaluation_seconds": per_epoch("eval_seconds"),
        "samples_per_second": images / train_seconds if train_seconds > 0 else None,
        "data_wait_share": (sum(record.get("data_wait_seconds", 0.0) for record in records) / train_seconds
                            if train_seconds > 0 else None),
        "step_flops": sum(flops) if None not in flops else None,
        "parameters": sum(stage.parameters for stage in stages),
        "method_parameters": sum(stage.method_parameters for stage in stages),
        "peak_memory_bytes": memory.peak(),
        "memory_measured": memory.measured,
    }


__all__ = ["PeakMemory", "counted_flops", "job_costs", "parameter_count"]
