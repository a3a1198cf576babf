"""mtlbench: a benchmark suite for label-efficient multi-task learning.

The public API is re-exported here, and imported when first used (``mtlbench.DATASETS``, ``from mtlbench import
run_job``): ``import mtlbench`` itself imports nothing heavy, so that the command line starts at once and handles
Ctrl-C from its first moment. What the API needs is torch and numpy (pydantic, pandas, wandb and optuna are
imported by the commands that use them). The registries of tracks, job kinds and resolvers import
``mtlbench.tracks`` (every track) the first time they are read.
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.3.0"

API = {  # name -> the module that defines it
    **dict.fromkeys(["DATASETS", "SCENARIOS", "label_mask"], "mtlbench.data"),
    **dict.fromkeys(["KINDS", "RESOLVERS", "Job", "job_id"], "mtlbench.jobs"),
    **dict.fromkeys(["GRADIENTS", "METHODS", "REGULARIZERS", "SUPERVISIONS", "WEIGHTINGS", "Recipe"], "mtlbench.methods"),
    **dict.fromkeys(["acc_mtl", "delta_mtl", "delta_t"], "mtlbench.metrics"),
    **dict.fromkeys(["MODELS", "SegNet"], "mtlbench.models"),
    **dict.fromkeys(["Registry", "RegistryError"], "mtlbench.registry"),
    **dict.fromkeys(["TASK_KINDS", "Task"], "mtlbench.tasks"),
    **dict.fromkeys(["TRACKS", "Track"], "mtlbench.track"),
    **dict.fromkeys(["ALLOCATORS", "allocate"], "mtlbench.tracks.budget"),
    **dict.fromkeys(["OBJECTIVES", "SELECTORS", "best_networks", "read_losses"], "mtlbench.tracks.grouping"),
    "run_job": "mtlbench.train",
}


def __getattr__(name: str) -> Any:
    if name not in API:
        raise AttributeError(f"module 'mtlbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(API[name]), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *API])


__all__ = sorted([*API, "__version__"])
