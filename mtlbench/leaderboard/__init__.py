"""Leaderboards from the results store (pandas; imported only by ``mtlbench leaderboard``)."""
from __future__ import annotations

from pathlib import Path

from ..runner.store import Store
from .aggregate import LeaderboardError, Table, tables
from .render import csv, markdown, write


def render_suite(store: Store, suite: str, out: Path | None = None, baseline: str | None = None) -> tuple[Path, Path]:
    """Write ``leaderboards/<suite>.md`` and ``.csv`` (or ``out``) from the suite's result files."""
    summary = store.suite_summary(suite)
    settings = summary.get("leaderboard", {})
    results = list(store.results(suite))
    built = tables(results, baseline or settings.get("baseline", "supervised"), settings.get("metrics", {}),
                   summary.get("methods", []))
    hardware = sorted({r["device"] for r in results})
    return write(out or Path("leaderboards") / suite, markdown(summary, built, hardware), csv(built))


__all__ = ["LeaderboardError", "Table", "render_suite", "tables"]
