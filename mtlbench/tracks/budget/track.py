"""The label-budget track registered: its suite section, expansion, job kinds and leaderboard."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ...provenance import Provenance
from ...track import TRACKS, Track
from . import estimates, probe, reduction, scenario  # noqa: F401  (register the resolver, the job kinds, the scenario)

NOTE = ("Δ_i: paper 000 Eq. 9, the test-split gain in percent of each task's primary metric over the model "
        "trained on the seed set only (mean of its seeds); Δ_T = mean_i Δ_i. Mean ± std over the repeats "
        "(each a new draw of the bought images and a new training seed); bold: the best Δ_T, only where the exact "
        "paired sign-flip test over repeats finds it above every other allocator's (Holm-adjusted, p < 0.05). N: "
        "labels bought per task; spent: Σ N_i c_i over the labels paid for (a derived label, as the cls labels of "
        "100% seg*, comes free).")


@TRACKS.register("budget")
class BudgetTrack(Track):
    """Paper 000: allocators decide how many labels each task buys under a budget; Δ_T scores the retraining."""

    api = ("ALLOCATORS", "allocate")

    def registries(self) -> list[tuple[str, str, Any]]:
        from .allocators import ALLOCATORS

        return [("Allocators (budget track)", "`budget.allocators:`", ALLOCATORS)]

    def section(self) -> Any:
        from .suite import BudgetSection  # pydantic, only where suites are read

        return BudgetSection

    def expand(self, raw: Any, path: Path) -> tuple[list, dict[str, Any]]:
        from .suite import expand_budget

        return expand_budget(raw, path)

    def published_names(self, jobs: list, details: dict[str, Any] | None) -> dict[str, set[str]]:
        """Published rows are allocators as the tables name them, scenarios the cost settings' labels; values
        are delta_TASK, delta_T or TASK/METRIC (checked against the tables when they are made)."""
        tables = (details or {}).get("tables", [])
        return {"dataset": {t["dataset"] for t in tables},
                "scenario": {s["label"] for t in tables for s in t["settings"]},
                "method": {r["allocator"] for t in tables for s in t["settings"] for r in s["rows"]}}

    def add_commands(self, sub: "argparse._SubParsersAction") -> None:
        from .cli import add_commands  # `mtlbench allocate`

        add_commands(sub)

    def render(self, summary: dict[str, Any], results: list[dict[str, Any]], provenance: Provenance, out: Path,
               baseline: str | None, formats: tuple[str, ...] = ()) -> tuple[Path, ...]:
        from ...leaderboard.formats import track_formats  # pandas, only where leaderboards are made
        from .leaderboard import budget_report

        body, frame, published = budget_report(summary, results)
        return track_formats(summary, NOTE, body, provenance, frame, published, out, formats)
