"""mtlbench: a benchmark suite for label-efficient multi-task learning.

The public API is re-exported here, and imported when first used (``mtlbench.DATASETS``, ``from mtlbench import
run_job``): ``import mtlbench`` itself imports nothing heavy, so that the command line starts at once and handles
Ctrl-C from its first moment. What the API needs is torch and numpy (pydantic, pandas, wandb and optuna are
imported by the commands that use them). The registries of tracks, job kinds and resolvers import
``mtlbench.tracks`` (every track) the first time they are read; so does the first name a track adds to the API
(``Track.api``: ``mtlbench.ALLOCATORS``).
"""
from __future__ import annotations

import importlib
from typing import Any

__version__ = "0.3.0"

API = {  # name -> the module that defines it
    **dict.fromkeys(["DATASETS", "SCENARIOS", "label_mask"], "mtlbench.data"),
    **dict.fromkeys(["KINDS", "RESOLVERS", "Job"], "mtlbench.jobs"),
    "job_id": "mtlbench.ids",
    **dict.fromkeys(["GRADIENTS", "METHODS", "REGULARIZERS", "SUPERVISIONS", "WEIGHTINGS", "Recipe"], "mtlbench.methods"),
    **dict.fromkeys(["acc_mtl", "delta_mtl", "delta_t"], "mtlbench.metrics"),
    **dict.fromkeys(["MODELS", "SegNet"], "mtlbench.models"),
    **dict.fromkeys(["Registry", "RegistryError"], "mtlbench.registry"),
    **dict.fromkeys(["TASK_KINDS", "Task"], "mtlbench.tasks"),
    **dict.fromkeys(["TRACKS", "Track"], "mtlbench.track"),
    "run_job": "mtlbench.train",
}


def public_api() -> dict[str, str]:
    """The core's names and those each track adds (``Track.api``; reading them imports the tracks)."""
    from .track import track_api

    return {**API, **track_api()}


def __getattr__(name: str) -> Any:
    if name == "__all__":
        return sorted([*public_api(), "__version__"])
    module = API.get(name) or (None if name.startswith("__") else public_api().get(name))
    if module is None:
        raise AttributeError(f"module 'mtlbench' has no attribute {name!r}")
    value = getattr(importlib.import_module(module), name)
    globals()[name] = value  # imported once
    return value


def __dir__() -> list[str]:
    return sorted([*globals(), *public_api()])
