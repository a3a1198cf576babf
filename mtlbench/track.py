"""Benchmark tracks as plugins: what a track supplies, and the registry the core finds tracks in.

A track (partial-label, label budget, task grouping, ...) supplies:

- ``section()``: the pydantic model of its suite section (``budget:``, ``grouping:``), or None for the
  default track, whose suites have no section of their own;
- ``expand``: the suite's jobs (with their kinds and inputs) and the track's summary, which is saved with the
  results under the section's name and read back by its leaderboard;
- ``render``: its leaderboard, from that summary and the finished results;
- ``run_summary``: what a finished job's W&B run adds to its summary (the partial-label track: ΔMTL);
- ``published_names``: what the suite's ``leaderboard.published`` entries may name;
- ``tunable``: whether ``mtlbench tune`` can compare its methods.

The job kinds and resolvers a track's jobs use are registered in ``mtlbench.jobs.KINDS`` / ``RESOLVERS`` by
the track's own modules. Suite expansion, the runner, the trainer, tuning and the leaderboard core import no
track; ``mtlbench.tracks`` imports them all, one line each, so that they register. A track imports pydantic
and pandas only inside ``section``/``expand`` and ``render``, so that ``import mtlbench`` needs torch and
numpy alone.
"""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, ClassVar

from .registry import Registry

if TYPE_CHECKING:
    import argparse

    from pydantic import BaseModel

    from .schema import SuiteFile
    from .provenance import Provenance
    from .jobs import Job


class Track:
    tunable: ClassVar[bool] = False
    selects_epochs: ClassVar[bool] = False  # its leaderboard honours leaderboard.select (best_val)
    published_metrics: ClassVar[bool] = False  # published values are delta_mtl or TASK/METRIC (checked on load)
    api: ClassVar[tuple[str, ...]] = ()  # names its package adds to mtlbench's public API (``mtlbench.ALLOCATORS``)

    def section(self) -> "type[BaseModel] | None":
        """The model of the track's suite section, named like the track (None: the track has none)."""
        return None

    def expand(self, raw: "SuiteFile", path: Path) -> tuple[list["Job"], dict[str, Any] | None]:
        """The suite's jobs, in the order they should run, and the summary the leaderboard reads (or None)."""
        raise NotImplementedError

    def run_summary(self, summary: dict[str, Any], result: dict[str, Any],
                    finished: Callable[[str], dict[str, Any] | None]) -> dict[str, Any]:
        """What a finished job's W&B run adds to its summary beyond its metrics (e.g. its ΔMTL against the
        suite's baseline once that has finished); ``finished(job_id)`` reads another job's result or None."""
        return {}

    def published_names(self, jobs: list["Job"], details: dict[str, Any] | None) -> dict[str, set[str]]:
        """What ``leaderboard.published`` entries may name: their dataset, scenario and rows (``method``); the
        default: the jobs' datasets, scenarios and methods."""
        return {"dataset": {job.dataset for job in jobs}, "scenario": {job.scenario for job in jobs},
                "method": {job.method for job in jobs}}

    def registries(self) -> list[tuple[str, str, Registry[Any]]]:
        """(title, what a suite writes to use one, registry) for each registry the track adds, as ``mtlbench list``
        and docs/reference.md show them."""
        return []

    def add_commands(self, sub: "argparse._SubParsersAction") -> None:
        """Add the track's own ``mtlbench`` subcommands (``sub.add_parser``, each with ``set_defaults(func=...)``
        returning the exit code); the command line names no track."""

    def add_bench_options(self, group: "argparse._MutuallyExclusiveGroup") -> None:
        """Add ``mtlbench bench`` options that select one of the track's benchmarks instead of the methods'."""

    def bench(self, args: "argparse.Namespace") -> str | None:
        """The report of the track's benchmark if ``args`` selects one, else None."""
        return None

    def render(self, summary: dict[str, Any], results: list[dict[str, Any]], provenance: Provenance, out: Path,
               baseline: str | None, formats: tuple[str, ...] = ()) -> tuple[Path, ...]:
        """Write the leaderboard ``out``.md and .csv, and the further ``formats`` the track makes (tex, html,
        png); returns the paths written."""
        raise NotImplementedError


TRACKS: Registry[type[Track]] = Registry("track", plugins="mtlbench.tracks")
DEFAULT_TRACK = "partial"  # a suite with no track section: scenarios x methods x seeds


def track_api() -> dict[str, str]:
    """Each name the tracks add to mtlbench's public API -> the track package that defines it."""
    return {name: TRACKS.get(track).__module__.rsplit(".", 1)[0] for track in TRACKS.list()
            for name in TRACKS.get(track).api}


def summary_track(summary: dict[str, Any]) -> str:
    """The track that made a suite's results, from its summary (one written before tracks were named has the
    track's section under the track's name)."""
    return summary.get("track") or next((name for name in TRACKS.list() if name in summary), DEFAULT_TRACK)
