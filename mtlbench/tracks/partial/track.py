"""The partial-label track registered: the default track, whose suites list ``scenarios`` and ``methods``.

Its jobs are every (dataset x scenario x method x seed); a method whose recipe reads other jobs' results (AMTL's
STL potentials) gets them as inputs from its part (``Part.inputs``), so those jobs run first. Its leaderboard
is one table per (dataset, scenario): per-task metrics and ΔMTL against the suite's baseline method.
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

from ...provenance import Provenance
from ...track import TRACKS, Track


@TRACKS.register("partial")
class PartialTrack(Track):
    tunable = True
    selects_epochs = True
    published_metrics = True

    def expand(self, raw: Any, path: Path) -> tuple[list, None]:
        from .suite import expand  # pydantic, only where suites are read

        return expand(raw, path), None

    def run_summary(self, summary: dict[str, Any], result: dict[str, Any],
                    finished: Callable[[str], dict[str, Any] | None]) -> dict[str, Any]:
        """The job's ΔMTL against the mean of the suite's baseline runs of its table, once all have finished
        (the leaderboard's per-seed ΔMTL; docs/leaderboards.md)."""
        from ...jobs import baseline_row
        from ...schema import resolved
        from ...metrics import UndefinedDelta, delta_mtl, seed_mean

        settings = resolved(summary)["leaderboard"]
        index = summary.get("index", {})
        baseline = baseline_row(settings["baseline"], (row[2] for row in index.values()))
        table = (result["dataset"], result["scenario"], baseline)
        references = [finished(job_id) for job_id, row in index.items() if tuple(row[:3]) == table]
        if not result["test"] or not references or any(r is None for r in references):
            return {}
        chosen = {t: settings["metrics"].get(t, [result["primary"][t]]) for t in result["test"]}
        reference = seed_mean([r["test"] for r in references], chosen)
        try:
            return {"delta_mtl": delta_mtl(result["test"], reference, result["directions"], chosen),
                    "delta_mtl_baseline": baseline}
        except UndefinedDelta:  # a baseline metric of 0: the leaderboard names it; the run's summary has no ΔMTL
            return {}

    def render(self, summary: dict[str, Any], results: list[dict[str, Any]], provenance: Provenance, out: Path,
               baseline: str | None, formats: tuple[str, ...] = ()) -> tuple[Path, ...]:
        from ...leaderboard.board import per_table_board  # pandas, only here

        return per_table_board(summary, results, provenance, out, baseline, formats)
