"""Leaderboards from the results store (pandas; imported only by ``mtlbench leaderboard``).

The core reads the suite's summary and its finished results; the suite's track renders them (``Track.render``).
"""
from __future__ import annotations

import contextlib
import tempfile
import warnings
from pathlib import Path
from typing import Any, Iterator

from ..provenance import Provenance
from ..runner.store import Store
from ..track import TRACKS, summary_track as track_of
from .aggregate import LeaderboardError, Table, tables
from .formats import FORMATS
from ..schema import WandbSection, resolved
from .render import csv_frame, markdown, page, write


def render_suite(store: Store, suite: str, out: Path | None = None, baseline: str | None = None,
                 formats: tuple[str, ...] = FORMATS, select: str | None = None,
                 columns: list[str] | None = None) -> tuple[Path, ...]:
    """Write ``<results>/<suite>/leaderboard/<suite>.md`` and ``.csv`` (or ``out``.md, .csv) from the suite's
    result files, and the further ``formats``; ``select`` and ``columns`` override the suite's
    ``leaderboard.select`` and ``leaderboard.columns``. The
    default stays in the results folder, which git ignores: the committed pages under ``leaderboards/`` change
    only when ``out`` names them.

    Only the jobs of the suite as last run count: a result whose job id the suite no longer expands to (its
    config changed, e.g. a new default parameter) is a different experiment and is left out, with a warning.
    """
    return render(store.suite_summary(suite), list(store.results(suite)), out or default_out(store.root, suite),
                  baseline, formats, select, columns)


def default_out(results: Path, suite: str) -> Path:
    """Where a suite's leaderboard is written unless ``--out`` says: beside its results."""
    return results / suite / "leaderboard" / suite


def render(summary: dict[str, Any], results: list[dict[str, Any]], out: Path, baseline: str | None = None,
           formats: tuple[str, ...] = FORMATS, select: str | None = None,
           columns: list[str] | None = None) -> tuple[Path, ...]:
    """A suite's leaderboard from its summary and its results, wherever they were read (the results store, a
    W&B project)."""
    suite = summary["name"]
    if "jobs" in summary:
        current = set(summary["jobs"])
        stale = [r["job_id"] for r in results if r["job_id"] not in current]
        if stale:
            warnings.warn(f"{suite}: left out {len(stale)} result(s) of jobs the suite no longer has (their config "
                          f"changed since they ran): {', '.join(sorted(stale))}", stacklevel=2)
        results = [r for r in results if r["job_id"] in current]
    versions = sorted({r.get("metrics_version", 1) for r in results})
    if len(versions) > 1:
        warnings.warn(f"{suite}: results scored by metric conventions {versions} are mixed (docs/datasets.md, "
                      f"\"Tasks and metrics\"); rerun the older jobs with --force to compare like with like",
                      stacklevel=2)
    track = TRACKS.get(track_of(summary))()
    summary = resolved(summary, select, columns)
    if summary["leaderboard"]["select"] != "last" and not track.selects_epochs:
        raise LeaderboardError(f"{suite}: the {track_of(summary)} track reports the last epoch of its jobs; "
                               f"leaderboard.select: best_val is for per-table (partial-label) suites")
    return track.render(summary, results, Provenance.of(results), out, baseline, formats)


@contextlib.contextmanager
def scratch_render(store: Store, suite: str, formats: tuple[str, ...]) -> Iterator[dict[str, Path]]:
    """The suite's leaderboard rendered into a scratch folder (no leaderboard file changes), as
    {part: path}: ``md``, ``csv``, and the name after the suite's (``summary.csv``, ``delta.png``, ...)."""
    with tempfile.TemporaryDirectory() as scratch:
        paths = render_suite(store, suite, Path(scratch) / suite, formats=formats)
        yield {p.name[len(suite):].lstrip("-.") or p.suffix.lstrip("."): p for p in paths}


def markdown_tables(store: Store, suite: str) -> str | None:
    """The suite's leaderboard tables as Markdown, without the page's title; None, with a warning that says why,
    when there are none to show (no job finished, or the leaderboard cannot be rendered)."""
    if not store.suite_dir(suite).exists():
        warnings.warn(f"{suite}: no results under {store.root}/, so the report has no leaderboard tables",
                      stacklevel=2)
        return None
    try:
        with scratch_render(store, suite, ("md", "csv")) as parts:
            return parts["md"].read_text().split("\n", 1)[1].strip()
    except (LeaderboardError, LookupError) as error:
        warnings.warn(f"{suite}: the report has no leaderboard tables ({error})", stacklevel=2)
        return None


def log_to_wandb(store: Store, suite: str, mode: str) -> str:
    """The suite's leaderboard as its suite-level W&B run: every CSV table and every figure the leaderboard
    makes; returns the run's id."""
    import pandas as pd

    from ..tracking import log_leaderboard

    summary = store.suite_summary(suite)
    settings = WandbSection.model_validate(summary.get("wandb") or {})  # a suite.json of before 0.2 has none
    with scratch_render(store, suite, ("md", "csv", "png")) as parts:
        tables = {("tables" if part == "csv" else part.removesuffix(".csv")): pd.read_csv(path)
                  for part, path in parts.items() if path.suffix == ".csv"}
        images = {part.removesuffix(".png"): path for part, path in parts.items() if path.suffix == ".png"}
        return log_leaderboard(mode, settings.project, settings.entity, summary,
                               store.suite_dir(suite) / "leaderboard", tables, images)


__all__ = ["LeaderboardError", "Table", "csv_frame", "default_out", "log_to_wandb", "markdown", "markdown_tables", "page",
           "render", "render_suite", "tables", "write"]
