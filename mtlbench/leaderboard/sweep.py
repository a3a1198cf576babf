"""Label-efficiency curves (a suite's ``sweep``): each method's ΔMTL and each task's primary metric against the
swept scenario parameter, as Sun et al. 2023 Fig. 2 draws accuracy against label budget.

The figure is ``figures.sweep_figure``. Every point is one table of the leaderboard (one scenario at one value); its band is the 95% interval the table
itself reports: for ΔMTL the Student t interval of the paired per-seed difference from the baseline, for a task's
metric the t interval of the mean over seeds. ``-sweep.csv`` has every point.
"""
from __future__ import annotations

from typing import Any

import pandas as pd

from .aggregate import Table
from .stats import t_interval


def mark_swept(tables: list[Table], sweep: dict[str, Any] | None) -> None:
    """Each table's place on a curve (``Table.swept``: curve, parameter, value), from the suite's sweep."""
    if not sweep:
        return
    for table in tables:
        at = sweep["at"].get(table.scenario)
        if at is not None:
            table.swept = (at["curve"], sweep["parameter"], float(at["value"]))


def sweep_frame(tables: list[Table]) -> pd.DataFrame | None:
    """One row per (dataset, curve, value, method, quantity): the mean and its interval; None without a sweep."""
    rows = []
    for table in tables:
        if table.swept is None:
            continue
        curve, parameter, value = table.swept
        for method, row in table.rows.iterrows():
            where = {"dataset": table.dataset, "curve": curve, "parameter": parameter, "value": value,
                     "method": method, "seeds": int(row["seeds"]), "complete": table.complete(method)}
            if table.baseline:
                rows.append({**where, "quantity": f"ΔMTL % vs {table.baseline}", "mean": row["delta_mean"],
                             "low": row["delta_ci_low"], "high": row["delta_ci_high"]})
            for task, metric in table.columns[:len(table.tasks)]:  # each task's primary metric comes first
                low, high = t_interval(table.by_seed[(task, metric)][method].to_numpy())
                rows.append({**where, "quantity": f"{task} {metric}", "mean": row[f"{task}/{metric}/mean"],
                             "low": low, "high": high})
    return pd.DataFrame(rows) if rows else None


def sweep_markdown(frame: pd.DataFrame | None, stem_name: str) -> list[str]:
    """The page's section on the curves: where they are, what the bands are, which points lack seeds."""
    if frame is None:
        return []
    short = frame[~frame["complete"]].drop_duplicates(["dataset", "curve", "value", "method"])
    lines = ["## Label-efficiency curves", "",
             f"`{stem_name}-sweep.png` draws each method's ΔMTL and each task's primary metric against "
             f"`{frame['parameter'].iloc[0]}` (one point per table above; bands: the 95% intervals the tables "
             f"report); `{stem_name}-sweep.csv` has every point."]
    if not short.empty:
        lines.append("Points from fewer seeds than the suite asks for (hollow in the figure): "
                     + "; ".join(f"{r.method} at {r.value:g} ({r.seeds} seeds)" for r in short.itertuples()) + ".")
    return lines + [""]


__all__ = ["mark_swept", "sweep_frame", "sweep_markdown"]
