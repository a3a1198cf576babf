"""The per-table leaderboard (one table per dataset and scenario, methods as rows), from results to files.

Steps: pick each job's reported epoch (``select.py``), in a learning-rate grid each method's rate and runs
(``grid.py``), build the tables with their statistics
(``aggregate.py``), put the papers' numbers beside them (``published.py``), summarise across tables
(``summary.py``), then write Markdown and CSV, and the LaTeX, HTML and figures asked for (``formats.py``).
A track whose jobs are (dataset, scenario, method, seed) renders with it.
"""
from __future__ import annotations

import warnings
from pathlib import Path
from typing import Any

from ..provenance import Provenance
from ..jobs import TUNED, baseline_row, row_name
from .aggregate import LeaderboardError, tables
from .formats import write_formats
from .grid import choose_rates, grid_markdown
from .published import beside
from .render import csv_frame, footer, markdown, table_note, write, write_csv
from .select import select_epochs
from .summary import summarize, summary_frame
from .sweep import mark_swept, sweep_frame, sweep_markdown


def per_table_board(summary: dict[str, Any], results: list[dict[str, Any]], provenance: Provenance, out: Path,
                    baseline: str | None, formats: tuple[str, ...]) -> tuple[Path, ...]:
    settings = summary["leaderboard"]  # resolved: every default filled in (leaderboard/settings.py)
    results = [{**r, "method": row_name(r["method"], bool(r.get("config", {}).get("tuned")))} for r in results]
    asked = baseline or settings["baseline"]
    present = {r["method"] for r in results}
    baseline = baseline_row(asked, present)
    if not {asked, baseline} & {*summary.get("methods", [asked]), *present}:
        raise LeaderboardError(f"--baseline {baseline!r} is not a method of suite {summary['name']} "
                               f"({', '.join(summary['methods'])})")
    chosen = settings["metrics"]
    results = select_epochs(results, settings["select"], settings["select_by"],
                            baseline, chosen)
    grid = summary.get("lr_grid")
    finished = {r["job_id"] for r in results}
    if grid:
        results, rates = choose_rates(results, grid, chosen, summary.get("index"),
                                      paper_then_tuned(summary.get("methods", [])))
    built = tables(results, baseline, chosen, paper_then_tuned(summary.get("methods", [])),
                   summary.get("scenarios", []), summary.get("index"), acc=settings["acc_mtl"],
                   finished=finished, shown=tuple(settings["columns"]))
    if grid:  # each method reports the runs its best rate keeps: the seeds asked less the trimmed ones
        for table in built:
            if table.expected_seeds is not None:
                table.expected_seeds -= 2 * grid["trim"]
    missing = [job_id for table in built for ids in table.missing.values() for job_id in ids]
    if missing:
        warnings.warn(f"{summary['name']}: {len(missing)} job(s) of the suite have no result (failed or not run), "
                      f"their rows are marked: {', '.join(missing)}", stacklevel=2)
    for table in built:
        table.published = beside(table, settings["published"])
    mark_swept(built, summary.get("sweep"))
    swept = sweep_frame(built)
    overview = summarize(built)
    sections = (grid_markdown(rates, grid) if grid else []) + sweep_markdown(swept, out.name)
    md, csv_path = write(out, markdown(summary, built, provenance, overview, sections), csv_frame(built))
    stem = md.with_name(md.name[:-len(".md")])
    extra = [write_csv(stem.with_name(stem.name + "-grid.csv"), rates)] if grid else []
    if swept is not None:
        extra.append(write_csv(stem.with_name(stem.name + "-sweep.csv"), swept))
    if overview is not None:
        extra.append(write_csv(stem.with_name(stem.name + "-summary.csv"), summary_frame(overview)))
    published = [table.published.assign(dataset=table.dataset, scenario=table.scenario,
                                        source=table.published.attrs["source"], table=table.published.attrs["table"])
                 for table in built if table.published is not None]
    if published:
        import pandas as pd

        extra.append(write_csv(stem.with_name(stem.name + "-published.csv"), pd.concat(published)))
    return (md, csv_path, *extra, *write_formats(summary, built, table_note(settings), footer(summary, provenance),
                                                 stem, formats, results, overview))


def paper_then_tuned(methods: list[str]) -> list[str]:
    """The suite's method order, each method's tuned row right after its paper row."""
    return list(dict.fromkeys(name for m in methods for name in (m.removesuffix(TUNED), m.removesuffix(TUNED) + TUNED)))


__all__ = ["per_table_board"]
