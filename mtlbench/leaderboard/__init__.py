"""Leaderboards from the results store (pandas; imported only by ``mtlbench leaderboard``)."""
from __future__ import annotations

import warnings
from pathlib import Path

from ..runner.store import Store
from .aggregate import LeaderboardError, Table, tables
from .budget import budget_report
from .grouping import grouping_report
from .render import csv, markdown, page, write

BUDGET_NOTE = ("Δ_i: paper 000 Eq. 9, the test-split gain in percent of each task's primary metric over the model "
               "trained on the seed set only (mean of its seeds); Δ_T = mean_i Δ_i. Mean ± std over the repeats "
               "(each a new draw of the bought images and a new training seed); best Δ_T in bold. N: labels bought "
               "per task; spent: Σ N_i c_i.")


def render_budget(summary: dict, results: list[dict], hardware: list[str], out: Path) -> tuple[Path, Path]:
    body, frame = budget_report(summary, results)
    return write(out, page(summary, BUDGET_NOTE, body, hardware), frame)


GROUPING_NOTE = ("Paper 001's task grouping: every selector chooses networks on validation losses (ESA: the "
                 "early-stopped validation losses; HOA: higher-order networks predicted from their pairs) within "
                 "the budget, and the table reports the chosen set's total test loss Σ_t min_n L(n, t) (Sec. 3); "
                 "lower is better, lowest per budget in bold; — where a baseline has no network of that size. "
                 "Random: the mean over its random groupings; Pessimal: the worst valid grouping.")


def render_grouping(summary: dict, results: list[dict], hardware: list[str], out: Path) -> tuple[Path, Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    body, frame = grouping_report(summary, results, out)
    return write(out, page(summary, GROUPING_NOTE, body, hardware), frame)


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
    hardware = sorted({r["device"] for r in results})
    if "budget" in summary:
        return render_budget(summary, results, hardware, out or Path("leaderboards") / suite)
    if "grouping" in summary:
        return render_grouping(summary, results, hardware, out or Path("leaderboards") / suite)
    built = tables(results, baseline or settings.get("baseline", "supervised"), settings.get("metrics", {}),
                   summary.get("methods", []), summary.get("scenarios", []))
    return write(out or Path("leaderboards") / suite, markdown(summary, built, hardware), csv(built))


__all__ = ["LeaderboardError", "Table", "render_suite", "tables"]
