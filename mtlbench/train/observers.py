"""Step observers a suite asks for by name (``train.observe``): measurements taken while a job trains, which change
no step. The ``train`` job kind builds them and hands them to the trainer, which knows none of them."""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor

from ..methods.gradients import flat_gradients
from ..registry import Registry
from .costs import PeakMemory as JobMemory
from .trainer import Observed

OBSERVERS: Registry[type] = Registry("observer")


def finite_or_none(value: float) -> float | None:
    return value if math.isfinite(value) else None


@OBSERVERS.register("gradient_cosine")
class GradientCosine:
    """The cosine between every two tasks' gradients on the shared parameters, at every update (Li et al. 2022a
    Figs. 1-2, which show their distribution under full-task training, STA and ISTA).

    Each update's task terms, as the method weights and supervises them (STA's allocated images, a weighting's
    scale, which leaves a cosine unchanged), are differentiated with ``torch.autograd.grad`` before the method's own
    backward pass: the weights are bit-identical with and without the observer, which costs one extra backward pass
    per task and update when on and nothing when off. A pair is recorded at the updates where both tasks have a
    supervised image (None where one is absent or its gradient is zero: result.json is strict JSON). ``report``: the pairs, and per update the batch step and the
    cosines; each epoch's record (W&B history) gets the epoch's mean per pair, ``cos/<a>|<b>``.
    """

    def __init__(self, seen: Observed) -> None:
        self.model, self.names = seen.model, list(seen.stage.tasks)
        self.pairs = [(a, b) for i, a in enumerate(self.names) for b in self.names[i + 1:]]
        self.pair_index = [(self.names.index(a), self.names.index(b)) for a, b in self.pairs]
        self.pending: list[Tensor] = []
        self.steps: list[int] = []
        self.cosines: list[list[float]] = []
        self.epoch_start = 0
        seen.recipe.term_watchers.append(self.on_terms)

    def on_terms(self, terms: dict[str, Tensor]) -> None:
        present = [t for t in self.names if t in terms]
        if len(present) < 2:
            return
        shared = [p for p in self.model.shared_parameters() if p.requires_grad]
        grads = torch.stack([flat_gradients(terms[t], shared) for t in present]).detach().double()
        norms = grads.norm(dim=1)
        cos = (grads @ grads.T) / (norms[:, None] * norms[None, :])  # 0/0 = NaN for a zero gradient
        full = torch.full((len(self.names), len(self.names)), math.nan, dtype=torch.float64, device=cos.device)
        index = torch.tensor([self.names.index(t) for t in present], device=cos.device)
        full[index[:, None], index[None, :]] = cos
        self.pending.append(full)

    def after_step(self, step: int) -> None:
        for full in self.pending:  # one host copy per batch, not per pair
            values = full.cpu()
            self.steps.append(step)
            self.cosines.append([finite_or_none(float(values[i, j])) for i, j in self.pair_index])
        self.pending = []

    def epoch_log(self) -> dict[str, float]:
        """Each pair's mean cosine over the epoch's updates where both tasks were present."""
        epoch = self.cosines[self.epoch_start:]
        self.epoch_start = len(self.cosines)
        log = {}
        for k, (a, b) in enumerate(self.pairs):
            values = [row[k] for row in epoch if row[k] is not None]
            if values:
                log[f"cos/{a}|{b}"] = math.fsum(values) / len(values)
        return log

    def state(self) -> dict[str, Any]:
        return {"steps": self.steps, "cosines": self.cosines, "epoch_start": self.epoch_start}

    def restore(self, state: dict[str, Any]) -> None:
        self.steps, self.cosines = list(state["steps"]), [list(row) for row in state["cosines"]]
        self.epoch_start = state["epoch_start"]

    def report(self) -> dict[str, Any]:
        return {"observer": "gradient_cosine", "pairs": [f"{a}|{b}" for a, b in self.pairs], "steps": self.steps,
                "cosines": self.cosines}


@OBSERVERS.register("peak_memory")
class PeakMemory:
    """Peak memory per epoch (Nishi et al. 2024 Tables 6-7, 18-19): every result has the job's peak in its
    ``costs`` (train/costs.py, the same measure: torch's peak allocation on CUDA, else the process's peak resident
    set, both since the job started); this observer adds each epoch's ``memory/peak_mb`` to its record (W&B
    history), and reports the peak in bytes and what it measured."""

    def __init__(self, seen: Observed) -> None:
        self.meter = JobMemory(seen.device)
        self.peak = 0

    def after_step(self, step: int) -> None:
        """Nothing per step: the peak is read once per epoch (no device synchronisation in the loop)."""

    def epoch_log(self) -> dict[str, float]:
        self.peak = max(self.peak, self.meter.peak())
        return {"memory/peak_mb": self.peak / 2 ** 20}

    def state(self) -> dict[str, Any]:
        return {"peak": self.peak}

    def restore(self, state: dict[str, Any]) -> None:
        self.peak = state["peak"]

    def report(self) -> dict[str, Any]:
        return {"observer": "peak_memory", "device": self.meter.device.type, "measured": self.meter.measured,
                "peak_bytes": self.peak}


__all__ = ["OBSERVERS", "GradientCosine", "PeakMemory"]
