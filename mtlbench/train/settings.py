"""A job's ``train`` section as one frozen, typed object, parsed once where a job starts training.

The suite schema (``config.TrainSection``) is the one place its defaults live: a resolved job config names every
field, so this class holds none and a config that lacks a field is refused here, not silently completed with a
second copy of a default. Standard library only (the trainer runs with torch and numpy alone)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping


@dataclass(frozen=True)
class TrainSettings:
    epochs: int
    batch_size: int
    eval_batch_size: int
    optimizer: Mapping[str, Any]
    scheduler: Mapping[str, Any]
    augment: Mapping[str, Any]
    device: str
    precision: str
    test_every_epoch: bool
    label_smoothing: float

    @classmethod
    def of(cls, train: Mapping[str, Any]) -> TrainSettings:
        """The settings of a resolved ``train`` section (``config.load_suite`` fills in every default)."""
        names = [field.name for field in dataclasses.fields(cls)]
        missing = [name for name in names if name not in train]
        unknown = sorted(set(train) - set(names))
        if missing or unknown:
            raise ValueError(f"a job's train section {'lacks ' + ', '.join(missing) if missing else ''}"
                             f"{' and ' if missing and unknown else ''}"
                             f"{'has unknown ' + ', '.join(unknown) if unknown else ''}: train from the config a "
                             f"suite resolved (config.load_suite names every setting with its default)")
        return cls(**train)
