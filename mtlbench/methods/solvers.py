"""Counting the optimisation problems a part solves at every step, so that none fails silently.

Nash-MTL, CAGrad, FairGrad and Aligned-MTL solve a small problem on the task Gram matrix at every step. A solver
may stop without converging; the part then uses what the authors' code uses (the last iterate), and *counts* it.
The counts live in buffers of the part's state (checkpoints carry them), reach result.json and W&B through the
trainer's epoch record (``solver``), and a run whose failure rate passes the part's ``max_failure_rate`` stops
with a message naming the method, the counts and the fix.
"""
from __future__ import annotations

import torch
from torch import nn

from ..tasks import Task


class SolverFailures(RuntimeError):
    """A part's solver failed on more steps than its ``max_failure_rate`` allows."""


class SolverCounts(nn.Module):
    """Per-task state of a part that solves a problem each step: the task names, the calls and the failures."""

    def __init__(self, tasks: dict[str, Task]) -> None:
        super().__init__()
        self.names = list(tasks)
        self.register_buffer("solver_calls", torch.zeros((), dtype=torch.long))
        self.register_buffer("solver_failures", torch.zeros((), dtype=torch.long))


def count(net: nn.Module, converged: bool) -> None:
    net.solver_calls += 1
    net.solver_failures += int(not converged)


def solver_report(net: nn.Module | None) -> dict[str, int]:
    """The counts of a part's state, or nothing for a part that solves nothing."""
    if net is None or not hasattr(net, "solver_calls"):
        return {}
    return {"calls": int(net.solver_calls), "failures": int(net.solver_failures)}


def check_failure_rate(method: str, net: nn.Module | None, max_rate: float | None) -> None:
    report = solver_report(net)
    if max_rate is None or not report or not report["calls"]:
        return
    rate = report["failures"] / report["calls"]
    if rate > max_rate:
        raise SolverFailures(
            f"{method}: its solver did not converge on {report['failures']} of {report['calls']} steps "
            f"({rate:.1%}, above max_failure_rate {max_rate:g}); the steps used the solver's last iterate, as the "
            f"authors' code does. Check the gradients (a task whose loss is constant gives a zero row), lower the "
            f"learning rate, or raise {method}'s max_failure_rate in the suite if this rate is acceptable")
