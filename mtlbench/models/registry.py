"""The model registry, in a module of its own so that the backbones can import it while ``models/__init__``
imports them (no import that works only by line order)."""
from __future__ import annotations

import warnings

from ..registry import Registry, build

MODELS: Registry[type] = Registry("model")  # each entry a ModelSpec dataclass (protocol.py)


def parameter_count(spec: dict, tasks: dict) -> int:
    """The parameters of the model ``spec`` builds for ``tasks``, built on torch's meta device: nothing is
    allocated, so a model too large for any machine is counted in milliseconds (and a spec that cannot be
    built raises as it would when a job starts)."""
    import torch

    with torch.device("meta"), warnings.catch_warnings():
        warnings.simplefilter("ignore")  # a weights file loaded into meta tensors warns that it is a no-op
        return sum(p.numel() for p in build(MODELS, spec).build(tasks).parameters())
