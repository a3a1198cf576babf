"""Which CPU kernels train a job: ``portable`` (the default) gives the same numbers on every x86-64 CPU with AVX2
at any thread count; ``native`` lets oneDNN and MKL pick this CPU's fastest code, whose summation order (so the
last bits of every step, and after a few epochs the metrics) depends on the instruction set and the threads.

Measured on the quickstart (docs/results.md, "What reproduces where"): with oneDNN's convolutions the numbers
moved with the thread count and with oneDNN's or MKL's instruction set; with oneDNN off and MKL held to its AVX2
code path (``MKL_CBWR``) they did not, and a job took no longer. ``MTLBENCH_CPU_KERNELS=native`` chooses speed
over that. GPU jobs are not affected (their kernels are cuDNN's). Standard library only: MKL reads ``MKL_CBWR``
when it first runs, so the command line sets it before torch is imported.
"""
from __future__ import annotations

import os
from typing import Any

VARIABLE = "MTLBENCH_CPU_KERNELS"
CHOICES = ("portable", "native")
MKL_BRANCH = "AVX2"  # the newest instruction set every x86-64 CPU of the last ten years runs


def cpu_kernels() -> str:
    """The chosen kernels, from ``MTLBENCH_CPU_KERNELS`` (default ``portable``)."""
    value = os.environ.get(VARIABLE, "portable")
    if value not in CHOICES:
        raise ValueError(f"environment variable {VARIABLE}={value!r}: choose portable (the same numbers on every "
                         f"x86-64 CPU, at any thread count) or native (this CPU's fastest kernels)")
    return value


def pin_blas() -> None:
    """Hold MKL to one code path on every CPU; effective only before MKL's first call in the process (a value
    the user set is kept)."""
    if cpu_kernels() == "portable":
        os.environ.setdefault("MKL_CBWR", MKL_BRANCH)


def use_cpu_kernels(torch: Any) -> str:
    """Set the process's CPU kernels where a job starts (oneDNN's convolutions only for ``native``); returns
    the choice, which the job's result records."""
    pin_blas()
    choice = cpu_kernels()
    torch.backends.mkldnn.enabled = choice == "native"
    return choice
