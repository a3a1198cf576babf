"""ESA's losses (Standley et al. 2020 Sec. 3.3.1), recorded while a candidate network trains.

The trainer's learning-rate schedules step once per epoch, so up to the end of the first epoch (and, for any
fraction, up to the same step of the same schedule) the network of a full run is the network an early-stopped
run with the same seed would have: the validation losses taken after ``fraction`` x N training images are the
early-stopped network's, at no extra training.
"""
from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ...data import Split
from ...train.evaluation import evaluate
from ...jobs import KINDS, Hooks
from ...train import run_job
from ...train.trainer import ObserverFactory, Observed, Stage, autocast_for


class EarlyLosses:
    """A StepObserver of the trainer: the validation metrics (and losses) once ``fraction`` x N images are seen."""

    def __init__(self, fraction: float, stage: Stage, model: nn.Module, val: Split, batch_size: int,
                 eval_batch_size: int, device: torch.device, autocast: Any = None) -> None:
        self.step = max(1, math.ceil(fraction * len(stage.train) / batch_size))
        self.images = self.step * batch_size
        self.model, self.tasks = model, stage.tasks
        self.val = val.select(list(stage.tasks))
        self.eval_batch_size, self.autocast = eval_batch_size, autocast or autocast_for(device)
        self.recorded: dict[str, Any] | None = None

    @staticmethod
    def factory(job: dict[str, Any]) -> ObserverFactory:
        def build(seen: Observed) -> EarlyLosses:
            return EarlyLosses(job["grouping"]["esa_fraction"], seen.stage, seen.model, seen.val,
                               job["train"]["batch_size"], job["train"]["eval_batch_size"], seen.device,
                               seen.autocast)

        return build

    def after_step(self, step: int) -> None:
        if self.recorded is None and step >= self.step:
            start = time.perf_counter()
            val = evaluate(self.model, self.val, self.tasks, self.eval_batch_size, self.autocast)
            self.recorded = {"step": step, "images": self.images, "val": val,
                             "seconds": time.perf_counter() - start}

    def epoch_log(self) -> dict[str, float]:
        return {}

    def state(self) -> dict[str, Any] | None:
        return self.recorded

    def restore(self, state: dict[str, Any] | None) -> None:
        self.recorded = state

    def report(self) -> dict[str, Any] | None:
        return self.recorded


@KINDS.register("grouping-network")
class NetworkJob:
    """A candidate network of the grouping track: an ordinary training job that, with ``esa_fraction`` > 0,
    records ESA's early validation losses as the result's ``estimate``."""

    def run(self, config: dict[str, Any], job_dir: Path, hooks: Hooks, test: bool) -> dict[str, Any]:
        observers = [EarlyLosses.factory(config)] if config["grouping"]["esa_fraction"] else []
        outcome = run_job(config, job_dir, hooks, test=test, observers=observers)
        if observers:
            outcome["estimate"] = outcome.pop("observed")[0]
        return outcome
