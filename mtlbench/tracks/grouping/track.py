"""The task-grouping track registered: its suite section, expansion, job kind and leaderboard."""
from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from ...provenance import Provenance
from ...track import TRACKS, Track
from . import early, transfer  # noqa: F401  (register the grouping-network and grouping-transfer job kinds and
#   the transfer_source resolver)

NOTE = ("Paper 001's task grouping: every selector chooses networks on validation losses (ESA: the "
        "early-stopped validation losses; HOA: higher-order networks predicted from their pairs) within "
        "the budget, and the table reports the chosen set's total test loss Σ_t min_n L(n, t) (Sec. 3); "
        "lower is better; bold per budget: the lowest mean, only where the exact paired sign-flip test over "
        "seeds finds it below every other selector's (Holm-adjusted, p < 0.05); — where a baseline has no "
        "network of that size. "
        "Random: the mean over its random groupings; Pessimal: the worst valid grouping.")


@TRACKS.register("grouping")
class GroupingTrack(Track):
    """Paper 001: which networks (task subsets, encoder sizes) to train and deploy under an inference budget."""

    api = ("OBJECTIVES", "SELECTORS", "best_networks", "read_losses")
    selects_epochs = True  # best_val: each network at its lowest summed validation loss (Sec. 4.2)

    def registries(self) -> list[tuple[str, str, Any]]:
        from .methods import SELECTORS
        from .selection import OBJECTIVES

        return [("Selectors (grouping track)", "`grouping.methods:`", SELECTORS),
                ("Objectives (grouping track)", "`grouping.objective:`", OBJECTIVES)]

    def section(self) -> Any:
        from .suite import GroupingSection  # pydantic, only where suites are read

        return GroupingSection

    def expand(self, raw: Any, path: Path) -> tuple[list, dict[str, Any]]:
        from .suite import expand_grouping

        return expand_grouping(raw, path)

    def published_names(self, jobs: list, details: dict[str, Any] | None) -> dict[str, set[str]]:
        """Published rows are selectors, values the budgets as written ("1.5"); there are no scenarios."""
        details = details or {}
        return {"dataset": {t["dataset"] for t in details.get("tables", [])}, "scenario": set(),
                "method": {spec["name"] for spec in details.get("methods", [])}}

    def add_commands(self, sub: "argparse._SubParsersAction") -> None:
        from .cli import add_commands  # `mtlbench select`

        add_commands(sub)

    def add_bench_options(self, group: "argparse._MutuallyExclusiveGroup") -> None:
        from .bench import add_bench_options

        add_bench_options(group)

    def bench(self, args: "argparse.Namespace") -> str | None:
        from .bench import selection_timing

        return selection_timing(args.selection) if args.selection else None

    def render(self, summary: dict[str, Any], results: list[dict[str, Any]], provenance: Provenance, out: Path,
               baseline: str | None, formats: tuple[str, ...] = ()) -> tuple[Path, ...]:
        from ...leaderboard.formats import track_formats  # pandas, only where leaderboards are made
        from .leaderboard import grouping_report

        out.parent.mkdir(parents=True, exist_ok=True)
        body, frame, published, images = grouping_report(summary, results, out)
        return track_formats(summary, NOTE, body, provenance, frame, published, out, formats, images)
