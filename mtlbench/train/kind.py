"""The ``train`` job kind, registered in ``jobs.KINDS``, which loads this module by name: the job graph imports no
trainer, so that the trainer and the methods can import the graph."""
from __future__ import annotations

from typing import Any

from ..jobs import KINDS, Hooks
from .observers import OBSERVERS
from .trainer import run_job


@KINDS.register("train")
class Train:  # registered as a class, like every plugin: the runner calls KINDS.get(kind)().run(...)
    """An ordinary job: the trainer's ``run_job`` on its config, with the step observers it asks for
    (``train.observe``)."""

    def run(self, config: dict[str, Any], job_dir: Any, hooks: Hooks, test: bool) -> dict[str, Any]:
        observers = [OBSERVERS.get(name) for name in config["train"].get("observe", [])]
        return run_job(config, job_dir, hooks, test=test, observers=observers)
