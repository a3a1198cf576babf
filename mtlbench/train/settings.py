"""A job's resolved config as frozen, typed objects, parsed once where the job starts training (``JobSpec.of``).

The suite schema (``schema.TrainSection`` and its siblings) is the one place defaults live: a resolved job config
names every field, so these classes hold none and a config that lacks a field is refused here, not silently
completed with a second copy of a default. The dataset, scenario, model and method sections stay mappings here
because their registries parse them into their own frozen plugin objects (``registry.build``, ``Recipe``). Job
ids hash the config, never these objects. Standard library only (the trainer runs with torch and numpy alone)."""
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
    observe: tuple[str, ...]
    devices: int

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
        return cls(**{**train, "observe": tuple(train["observe"])})


@dataclass(frozen=True)
class JobSpec:
    """What the trainer reads of a job: its seed, tasks and sections (a track's own section, such as the budget
    track's ``reduction``, is read by that track from the config it was given)."""

    seed: int
    tasks: tuple[str, ...]
    dataset: Mapping[str, Any]
    scenario: Mapping[str, Any]
    model: Mapping[str, Any]
    method: Mapping[str, Any]
    train: TrainSettings

    @classmethod
    def of(cls, job: Mapping[str, Any]) -> JobSpec:
        missing = [field.name for field in dataclasses.fields(cls) if field.name not in job]
        if missing:
            raise ValueError(f"a job's config lacks {', '.join(missing)}: train from the config a suite resolved "
                             f"(config.load_suite names every section)")
        return cls(job["seed"], tuple(job["tasks"]), job["dataset"], job["scenario"], job["model"], job["method"],
                   TrainSettings.of(job["train"]))
