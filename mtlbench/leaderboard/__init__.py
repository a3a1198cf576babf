"""Leaderboards from the results store (pandas; imported only by ``mtlbench leaderboard``).

The core reads the suite's summary and its finished results; the suite's track renders them (``Track.render``).
"""
from __future__ import annotations

import warnings
from pathlib import Path

from ..runner.store import Store
from ..track import DEFAULT_TRACK, TRACKS
from .aggregate import LeaderboardError, Table, tables
from .render import csv, markdown, page, write


def track_of(summary: dict) -> str:
    """The track that made the suite's results (a summary written before tracks were named has the track's
    section under the track's name)."""
    return summary.get("track") or next((name for name in TRACKS.list() if name in summary), DEFAULT_TRACK)


def render_suite(store: Store, suite: str, out: Path | None = None, baseline: str | None = None,
                 formats: tuple[str, ...] = ("md", "csv", "tex", "html", "png"),
                 select: str | None = None) -> tuple[Path, ...]:
    """Write ``leaderboards/<suite>.md`` and ``.csv`` (or ``out``) from the suite's result files, and the
    further ``formats``; ``select`` overrides the suite's ``leaderboard.select``.

    Only the jobs of the suite as last run count: a result whose job id the suite no longer expands to (its
    config changed, e.g. a new default parameter) is a different experiment and is left out, with a warning.
    """
    summary = store.suite_summary(suite)
    results = list(store.results(suite))
    if "jobs" in summary:
        current = set(summary["jobs"])
        stale = [r["job_id"] for r in results if r["job_id"] not in current]
        if stale:
            warnings.warn(f"{suite}: left out {len(stale)} result(s) of jobs the suite no longer has (their config "
                          f"changed since they ran): {', '.join(sorted(stale))}", stacklevel=2)
        results = [r for r in results if r["job_id"] in current]
    versions = sorted({r.get("metrics_version", 1) for r in results})
    if len(versions) > 1:
        warnings.warn(f"{suite}: results scored by metric conventions {versions} are mixed (README, \"Tasks and "
                      f"metrics\"); rerun the older jobs with --force to compare like with like", stacklevel=2)
    hardware = sorted({r["device"] for r in results})
    track = TRACKS.get(track_of(summary))()
    if select is not None:
        summary = {**summary, "leaderboard": {**summary.get("leaderboard", {}), "select": select}}
    if summary.get("leaderboard", {}).get("select", "last") != "last" and not track.selects_epochs:
        raise LeaderboardError(f"{suite}: the {track_of(summary)} track reports the last epoch of its jobs; "
                               f"leaderboard.select: best_val is for per-table (partial-label) suites")
    return track.render(summary, results, hardware, out or Path("leaderboards") / suite, baseline, formats)


__all__ = ["LeaderboardError", "Table", "csv", "markdown", "page", "render_suite", "tables", "write"]
