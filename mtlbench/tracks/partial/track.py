"""The partial-label track registered: the default track, whose suites list ``scenarios`` and ``methods``.

Its jobs are every (dataset x scenario x method x seed); a method whose recipe reads other jobs' results (AMTL's
STL potentials) gets them as inputs from its part (``Part.inputs``), so those jobs run first. Its leaderboard
is one table per (dataset, scenario): per-task metrics and ΔMTL against the suite's baseline method.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ...track import TRACKS, Track


@TRACKS.register("partial")
class PartialTrack(Track):
    tunable = True

    def expand(self, raw: Any, path: Path) -> tuple[list, None]:
        from .suite import expand  # pydantic, only where suites are read

        return expand(raw, path), None

    def render(self, summary: dict[str, Any], results: list[dict[str, Any]], hardware: list[str], out: Path,
               baseline: str | None, formats: tuple[str, ...] = ()) -> tuple[Path, ...]:
        from ...leaderboard import LeaderboardError, csv, markdown, tables, write  # pandas, only here
        from ...leaderboard.formats import write_formats
        from ...leaderboard.render import TABLE_NOTE, footer

        settings = summary.get("leaderboard", {})
        baseline = baseline or settings.get("baseline", "supervised")
        if baseline not in summary.get("methods", [baseline]):
            raise LeaderboardError(f"--baseline {baseline!r} is not a method of suite {summary['name']} "
                                   f"({', '.join(summary['methods'])})")
        built = tables(results, baseline, settings.get("metrics", {}), summary.get("methods", []),
                       summary.get("scenarios", []), summary.get("index"))
        missing = [job_id for table in built for ids in table.missing.values() for job_id in ids]
        if missing:
            warnings.warn(f"{summary['name']}: {len(missing)} job(s) of the suite have no result (failed or not run), "
                          f"their rows are marked: {', '.join(missing)}", stacklevel=2)
        md, csv_path = write(out, markdown(summary, built, hardware), csv(built))
        stem = md.with_name(md.name[:-len(".md")])
        return md, csv_path, *write_formats(summary, built, TABLE_NOTE, footer(summary, hardware), stem, formats)
