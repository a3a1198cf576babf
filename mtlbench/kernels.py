"""Which CPU kernels train a job (``MTLBENCH_CPU_KERNELS``). On a CPU, the instruction set oneDNN and MKL pick
(AVX2, AVX-512) decides the order of their floating-point sums, so the last bits of every step and, after a few
epochs, the metrics:

- ``portable`` (the default): oneDNN and MKL held to their AVX2 code (``ONEDNN_MAX_CPU_ISA``, ``MKL_CBWR``), the
  same code on every x86-64 CPU of the last ten years, at native speed;
- ``strict``: oneDNN off (PyTorch's own convolutions) and MKL held to AVX2: no kernel choice left to the CPU's
  caches either, and most jobs equal at any thread count, at up to twice the time of a regularizer's step;
- ``native``: this CPU's fastest code.

Measured in docs/results.md, "What reproduces where" (the same CPU model reproduces; an AMD EPYC and an Intel Xeon
gave different numbers with ``portable`` kernels, one cause being MKL's matrix products in synthrooms' renderer).
GPU jobs are not affected (their kernels are cuDNN's).
Standard library only: oneDNN and MKL read their variables when first called, so the command line sets them
before torch is imported, and a job's start sets them again (effective in a process that computed nothing yet).
"""
from __future__ import annotations

import os
from typing import Any

VARIABLE = "MTLBENCH_CPU_KERNELS"
CHOICES = ("portable", "strict", "native")
ISA = "AVX2"  # the newest instruction set every x86-64 CPU of the last ten years runs


def cpu_kernels() -> str:
    """The chosen kernels, from ``MTLBENCH_CPU_KERNELS`` (default ``portable``)."""
    value = os.environ.get(VARIABLE, "portable")
    if value not in CHOICES:
        raise ValueError(f"environment variable {VARIABLE}={value!r}: choose portable (oneDNN and MKL held to AVX2, "
                         f"the default), strict (oneDNN off as well) or native (this CPU's fastest kernels)")
    return value


def pin_instruction_sets() -> None:
    """Hold oneDNN (portable) and MKL (portable, strict) to AVX2; a value the user set is kept."""
    choice = cpu_kernels()
    if choice != "native":
        os.environ.setdefault("MKL_CBWR", ISA)
    if choice == "portable":
        os.environ.setdefault("ONEDNN_MAX_CPU_ISA", ISA)


def use_cpu_kernels(torch: Any) -> None:
    """Set this process's CPU kernels where a job starts (the job's ``device`` names them)."""
    pin_instruction_sets()
    torch.backends.mkldnn.enabled = cpu_kernels() != "strict"
