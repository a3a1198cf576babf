"""Leaderboards from the results store (pandas; imported only by ``mtlbench leaderboard``)."""
from __future__ import annotations

import warnings
from pathlib import Path

from ..runner.store import Store
from .aggregate import LeaderboardError, Table, tables
from .render import csv, markdown, write


def render_suite(store: Store, suite: str, out: Path | None = None, baseline: str | None = None) -> tuple[Path, Path]:
    """Write ``leaderboards/<suite>.md`` and ``.csv`` (or ``out``) from the suite's result files.

    Only the jobs of the suite as last run count: a result whose job id the suite no longer expands to (its
    config changed, e.g. a new default parameter) is a different experiment and is left out, with a warning.
    """
    summary = store.suite_summary(suite)
    settings = summary.get("leaderboard", {})
    results = list(store.results(suite))
    if "jobs" in summary:
        current = set(summary["jobs"])
        stale = [r["job_id"] for r in results if r["job_id"] not in current]
        if stale:
            warnings.warn(f"{suite}: left out {len(stale)} result(s) of jobs the suite no longer has (their config "
                          f"changed since they ran): {', '.join(sorted(stale))}", stacklevel=2)
        results = [r for r in results if r["job_id"] in current]
    built = tables(results, baseline or settings.get("baseline", "supervised"), settings.get("metrics", {}),
                   summary.get("methods", []), summary.get("scenarios", []))
    hardware = sorted({r["device"] for r in results})
    return write(out or Path("leaderboards") / suite, markdown(summary, built, hardware), csv(built))


__all__ = ["LeaderboardError", "Table", "render_suite", "tables"]
