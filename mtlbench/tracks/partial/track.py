"""The partial-label track registered: the default track, whose suites list ``scenarios`` and ``methods``.

Its jobs are every (dataset x scenario x method x seed); a method whose recipe reads other jobs' results (AMTL's
STL potentials) gets them as inputs from its part (``Part.inputs``), so those jobs run first. Its leaderboard
is one table per (dataset, scenario): per-task metrics and ΔMTL against the suite's baseline method.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

from ...track import TRACKS, Track


@TRACKS.register("partial")
class PartialTrack(Track):
    tunable = True
    selects_epochs = True
    published_metrics = True

    def expand(self, raw: Any, path: Path) -> tuple[list, None]:
        from .suite import expand  # pydantic, only where suites are read

        return expand(raw, path), None

    def render(self, summary: dict[str, Any], results: list[dict[str, Any]], hardware: list[str], out: Path,
               baseline: str | None, formats: tuple[str, ...] = ()) -> tuple[Path, ...]:
        from ...leaderboard.board import per_table_board  # pandas, only here

        return per_table_board(summary, results, hardware, out, baseline, formats)
