"""The suite schema's parts that are read outside ``config`` (pydantic only, no torch): the base of every
section, and the ``leaderboard`` and ``wandb`` sections, the one place their defaults live, with ``resolved``, the
parse every leaderboard reader goes through so that none repeats a default."""
from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    """Unknown keys are errors: a misspelt setting must not be ignored."""

    model_config = ConfigDict(extra="forbid")


class PublishedSection(Strict):
    """Numbers a paper published for this suite's setting, shown beside ours (``leaderboard.published``)."""

    source: str = Field(description="the paper, as docs/papers.md cites it, e.g. 'Kim et al. 2023'")
    table: str = Field(description="where in the paper, e.g. 'Table 1'")
    dataset: str | None = Field(None, description="the table it belongs to (default: every dataset)")
    scenario: str | None = Field(None, description="the scenario label it belongs to (default: every scenario)")
    note: str = Field("", description="how the paper's setting differs from the suite's, if it does")
    rows: dict[str, dict[str, float]] = Field(description="method -> {TASK/METRIC or delta_mtl: value}")
    baseline: str | None = Field(None, description="the method the paper's delta_mtl is against, as the suite names "
                                                   "it (a delta_mtl beside ours is compared only if it matches)")
    metrics: dict[str, list[str]] | Literal["unstated"] | None = Field(
        None, description="per task, the metrics the paper's delta_mtl averages (compared with leaderboard.metrics); "
                          "unstated: the paper does not say, and its delta_mtl is not set against ours")
    notes: dict[str, str] = Field(default_factory=dict, description="per row: how the paper's setting of that row "
                                                                    "differs from the suite's")


class LeaderboardSection(Strict):
    baseline: str = "supervised"
    metrics: dict[str, list[str]] = Field(default_factory=dict,
                                          description="metrics per task entering ΔMTL (default: the primary)")
    select: Literal["last", "best_val"] = Field(
        "last", description="the epoch reported: the last, or the best on validation (needs train.test_every_epoch)")
    select_by: str = Field("delta_mtl", description="best_val's criterion: delta_mtl (validation ΔMTL vs the "
                                                    "baseline) or TASK/METRIC")
    published: list[PublishedSection] = Field(default_factory=list,
                                              description="papers' numbers shown beside ours")

    @model_validator(mode="after")
    def published_once(self) -> "LeaderboardSection":
        keys = [(p.dataset, p.scenario) for p in self.published]
        twice = sorted({str(k) for k in keys if keys.count(k) > 1})
        if twice:
            raise ValueError(f"published: more than one entry for (dataset, scenario) {', '.join(twice)}")
        return self


class WandbSection(Strict):
    project: str = "mtlbench"
    entity: str | None = None


def resolved(summary: dict[str, Any], select: str | None = None) -> dict[str, Any]:
    """``summary`` (a suite.json, or what a W&B project gave back) with its leaderboard section validated and
    every default filled in, ``select`` overriding the epoch reported: what every leaderboard reader indexes."""
    settings = LeaderboardSection.model_validate(summary.get("leaderboard") or {})  # before 0.2: no section
    if select is not None:
        settings = settings.model_copy(update={"select": select})
    return {**summary, "leaderboard": settings.model_dump()}
