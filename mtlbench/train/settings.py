"""A job's resolved config as frozen, typed objects, parsed once where the job starts training (``JobSpec.of``).

The suite schema (``config.TrainSection`` and its siblings) is the one place defaults live: a resolved job config
names every field, so these classes hold none and a config that lacks a field is refused here, not silently
completed with a second copy of a default. The dataset, scenario, model and method sections stay mappings here
because their registries parse them into their own frozen plugin objects (``registry.build``, ``Recipe``). Job
ids hash the config, never these objects. Standard library only (the trainer runs with torch and numpy alone)."""
from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any, Mapping


def refuse_mismatch(section: str, names: list[str], given: Mapping[str, Any]) -> None:
    missing = [name for name in names if name not in given]
    unknown = sorted(set(given) - set(names))
    if missing or unknown:
        raise ValueError(f"a job's {section} {'lacks ' + ', '.join(missing) if missing else ''}"
                         f"{' and ' if missing and unknown else ''}"
                         f"{'has unknown ' + ', '.join(unknown) if unknown else ''}: train from the config a "
                         f"suite resolved (config.load_suite names every setting with its default)")


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
        refuse_mismatch("train section", [field.name for field in dataclasses.fields(cls)], train)
        return cls(**train)


@dataclass(frozen=True)
class JobSpec:
    """What the trainer reads of a job: its seed, tasks and sections, and ``config``, the whole resolved config,
    for the hooks that read a track's own section (the budget track's ``reduction``) and for the observers."""

    seed: int
    tasks: tuple[str, ...]
    dataset: Mapping[str, Any]
    scenario: Mapping[str, Any]
    model: Mapping[str, Any]
    method: Mapping[str, Any]
    train: TrainSettings
    config: Mapping[str, Any]

    @classmethod
    def of(cls, job: Mapping[str, Any]) -> JobSpec:
        sections = ("seed", "tasks", "dataset", "scenario", "model", "method", "train")
        missing = [name for name in sections if name not in job]
        if missing:
            raise ValueError(f"a job's config lacks {', '.join(missing)}: train from the config a suite resolved "
                             f"(config.load_suite names every section)")
        return cls(job["seed"], tuple(job["tasks"]), job["dataset"], job["scenario"], job["model"], job["method"],
                   TrainSettings.of(job["train"]), job)
