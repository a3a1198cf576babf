"""A leaderboard's figures (matplotlib, Agg), each written as PNG and PDF next to the tables.

- ``-delta``: ΔMTL per method with its 95% bootstrap interval, one panel per table.
- ``-curves``: validation metrics per epoch, mean over seeds with a band from the lowest to the highest seed,
  one panel per (table, task).
- ``-tasks``: each task's test metric per method, mean with the standard deviation over seeds.
- ``-cosine``: with ``train.observe: [gradient_cosine]``, each task pair's gradient cosine on the shared parameters
  per epoch (its epoch means, mean over seeds with a band from the lowest to the highest seed), one panel per
  (table, pair); ``-angles``: the distribution of the angle between the pair's gradients over every update of every
  seed, one line per method (Li et al. 2022a Fig. 1).
- ``-pareto``: ΔMTL with its interval against training time per epoch as a ratio to the baseline (result.json's
  ``costs``, measured on one device), the methods nothing beats on both axes joined by the Pareto front.
- ``-sweep``: with a suite's ``sweep``, each method's ΔMTL and task metrics against the swept parameter
  (leaderboard/sweep.py).
- ``-cd``: the critical-difference diagram of the across-table summary (when it has one).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any, Callable

import numpy as np
import pandas as pd

from .aggregate import Table
from .summary import Summary, cd_figure
from .sweep import sweep_frame

COLOR = "#4c72b0"


def pyplot():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    return plt


def grid(rows: int, columns: int, width: float = 4.5, height: float = 3.2):
    return pyplot().subplots(rows, columns, figsize=(width * columns, height * rows), squeeze=False)


def delta_figure(tables: list[Table]):
    scored = [table for table in tables if table.baseline]
    if not scored:
        return None
    fig, axes = grid(1, len(scored), width=5, height=3.5)
    for axis, table in zip(axes[0], scored):
        rows = table.rows
        means = rows["delta_mean"].to_numpy()
        # the interval of the paired difference is centred on the mean ΔMTL when the method has the baseline's
        # seeds; clipped at the bar where it is not (a method missing seeds), and none for the baseline itself
        low = np.maximum(means - rows["delta_ci_low"].fillna(rows["delta_mean"]).to_numpy(), 0)
        high = np.maximum(rows["delta_ci_high"].fillna(rows["delta_mean"]).to_numpy() - means, 0)
        axis.bar(range(len(rows)), means, yerr=[low, high], capsize=3, color=COLOR)
        axis.axhline(0, color="black", linewidth=0.8)
        axis.set_xticks(range(len(rows)), list(rows.index), rotation=45, ha="right")
        axis.set_ylabel(f"ΔMTL % vs {table.baseline} (95% CI of the paired difference)")
        axis.set_title(f"{table.dataset} / {table.scenario}")
    return fig


def task_figure(tables: list[Table]):
    panels = [(table, column) for table in tables for column in table.columns]
    if not panels:
        return None
    columns = max(len(table.columns) for table in tables)
    fig, axes = grid(len(tables), columns)
    for i, table in enumerate(tables):
        for j in range(columns):
            axis = axes[i][j]
            if j >= len(table.columns):
                axis.set_visible(False)
                continue
            task, metric = table.columns[j]
            means = table.rows[f"{task}/{metric}/mean"]
            spread = table.rows[f"{task}/{metric}/std"].fillna(0)
            axis.bar(range(len(means)), means.to_numpy(), yerr=spread.to_numpy(), capsize=3, color=COLOR)
            axis.set_xticks(range(len(means)), list(means.index), rotation=45, ha="right")
            arrow = "↑" if table.higher_is_better[(task, metric)] else "↓"
            axis.set_title(f"{table.dataset} / {table.scenario}: {task} {metric} {arrow}", fontsize=9)
    return fig


def first_metrics(table: Table) -> dict[str, str]:
    """Each task's first metric in the table (its primary one)."""
    return dict(table.columns[::-1])


def curves(results: list[dict[str, Any]], tables: list[Table]) -> pd.DataFrame:
    """One row per (dataset, scenario, method, seed, epoch, task) with the validation value of the task's
    primary metric (the first the table shows)."""
    shown = {(table.dataset, table.scenario): first_metrics(table) for table in tables}
    records = [{"dataset": r["dataset"], "scenario": r["scenario"], "method": r["method"], "seed": r["seed"],
                "epoch": record["epoch"], "task": task, "value": values[metric]}
               for r in results if (r["dataset"], r["scenario"]) in shown
               for record in r.get("history", [])
               for task, values in record["val"].items()
               for metric in [shown[r["dataset"], r["scenario"]].get(task)] if metric in values]
    return pd.DataFrame.from_records(records, columns=["dataset", "scenario", "method", "seed", "epoch", "task",
                                                       "value"])


def curve_figure(results: list[dict[str, Any]], tables: list[Table]):
    data = curves(results, tables)
    if data.empty:
        return None
    columns = max(len(table.tasks) for table in tables)
    fig, axes = grid(len(tables), columns)
    colors = pyplot().get_cmap("tab20")
    for i, table in enumerate(tables):
        here = data[(data["dataset"] == table.dataset) & (data["scenario"] == table.scenario)]
        for j in range(columns):
            axis = axes[i][j]
            if j >= len(table.tasks):
                axis.set_visible(False)
                continue
            task = table.tasks[j]
            metric = first_metrics(table)[task]
            for k, method in enumerate(table.rows.index):
                per_epoch = here[(here["task"] == task) & (here["method"] == method)].groupby("epoch")["value"]
                if not len(per_epoch):
                    continue
                mean, low, high = per_epoch.mean(), per_epoch.min(), per_epoch.max()
                axis.plot(mean.index, mean.to_numpy(), color=colors(k % 20), label=method, linewidth=1.2)
                axis.fill_between(mean.index, low.to_numpy(), high.to_numpy(), color=colors(k % 20), alpha=0.15)
            arrow = "↑" if table.higher_is_better[(task, metric)] else "↓"
            axis.set_title(f"{table.dataset} / {table.scenario}: val {task} {metric} {arrow}", fontsize=9)
            axis.set_xlabel("epoch")
            axis.xaxis.get_major_locator().set_params(integer=True)
    axes[0][0].legend(fontsize=7, ncol=2)
    return fig


def cosine_records(results: list[dict[str, Any]], tables: list[Table]) -> pd.DataFrame:
    """One row per (dataset, scenario, method, seed, epoch, pair): the epoch's mean gradient cosine."""
    shown = {(table.dataset, table.scenario) for table in tables}
    records = [{"dataset": r["dataset"], "scenario": r["scenario"], "method": r["method"], "seed": r["seed"],
                "epoch": record["epoch"], "pair": key.removeprefix("cos/"), "value": value}
               for r in results if (r["dataset"], r["scenario"]) in shown
               for record in r.get("history", []) for key, value in record.items() if key.startswith("cos/")]
    return pd.DataFrame.from_records(records, columns=["dataset", "scenario", "method", "seed", "epoch", "pair",
                                                       "value"])


def pair_panels(tables: list[Table], data: pd.DataFrame) -> list[tuple[Table, str]]:
    return [(table, pair) for table in tables
            for pair in dict.fromkeys(data[(data["dataset"] == table.dataset)
                                           & (data["scenario"] == table.scenario)]["pair"])]


def cosine_figure(results: list[dict[str, Any]], tables: list[Table]):
    data = cosine_records(results, tables)
    panels = pair_panels(tables, data)
    if not panels:
        return None
    fig, axes = grid(1, len(panels))
    colors = pyplot().get_cmap("tab20")
    for axis, (table, pair) in zip(axes[0], panels):
        here = data[(data["dataset"] == table.dataset) & (data["scenario"] == table.scenario) & (data["pair"] == pair)]
        for k, method in enumerate(table.rows.index):
            per_epoch = here[here["method"] == method].groupby("epoch")["value"]
            if not len(per_epoch):
                continue
            mean = per_epoch.mean()
            axis.plot(mean.index, mean.to_numpy(), color=colors(k % 20), label=method, linewidth=1.2)
            axis.fill_between(mean.index, per_epoch.min().to_numpy(), per_epoch.max().to_numpy(),
                              color=colors(k % 20), alpha=0.15)
        axis.axhline(0, color="black", linewidth=0.8)
        axis.set_title(f"{table.dataset} / {table.scenario}: cos(∇{pair.replace('|', ', ∇')}) shared", fontsize=9)
        axis.set_xlabel("epoch")
        axis.xaxis.get_major_locator().set_params(integer=True)
    axes[0][0].legend(fontsize=7, ncol=2)
    return fig


def angle_figure(results: list[dict[str, Any]], tables: list[Table]):
    """Per (table, pair): each method's histogram (density) of the angle between the pair's gradients, in degrees,
    over every update of every seed."""
    angles: dict[tuple[str, str, str], dict[str, list[float]]] = {}
    for r in results:
        for report in r.get("observed") or []:
            if isinstance(report, dict) and report.get("observer") == "gradient_cosine":
                for k, pair in enumerate(report["pairs"]):
                    values = [row[k] for row in report["cosines"] if row[k] is not None]
                    angles.setdefault((r["dataset"], r["scenario"], pair), {}).setdefault(r["method"], []).extend(
                        np.degrees(np.arccos(np.clip(values, -1, 1))).tolist())
    panels = [(table, pair) for table in tables for (d, s, pair) in angles if (d, s) == (table.dataset, table.scenario)]
    if not panels:
        return None
    fig, axes = grid(1, len(panels))
    colors = pyplot().get_cmap("tab20")
    bins = np.linspace(0, 180, 37)
    for axis, (table, pair) in zip(axes[0], panels):
        for k, method in enumerate(table.rows.index):
            values = angles[table.dataset, table.scenario, pair].get(method)
            if values:
                axis.hist(values, bins=bins, density=True, histtype="step", color=colors(k % 20), label=method)
        axis.axvline(90, color="black", linewidth=0.8)
        axis.set_title(f"{table.dataset} / {table.scenario}: angle({pair.replace('|', ', ')}) shared", fontsize=9)
        axis.set_xlabel("degrees")
    axes[0][0].legend(fontsize=7, ncol=2)
    return fig


def pareto_front(points: list[tuple[float, float]]) -> list[int]:
    """The indices of the points no other point beats on both axes (lower cost, higher ΔMTL), by cost."""
    order = sorted(range(len(points)), key=lambda i: (points[i][0], -points[i][1]))
    front, best = [], -np.inf
    for i in order:
        if points[i][1] > best:
            front.append(i)
            best = points[i][1]
    return front


def pareto_figure(tables: list[Table]):
    """ΔMTL with its interval against training time per epoch (a ratio to the baseline, one device), the
    Pareto front drawn through the methods nothing beats on both; one panel per table."""
    shown = [t for t in tables if t.baseline and t.shows("delta") and t.shows("time") and "time_ratio" in t.rows]
    if not shown:
        return None
    fig, axes = grid(1, len(shown), width=5.5, height=4)
    for axis, table in zip(axes[0], shown):
        rows = table.rows[table.rows["time_ratio"].notna()]
        x, y = rows["time_ratio"].to_numpy(), rows["delta_mean"].to_numpy()
        low = np.maximum(y - rows["delta_ci_low"].fillna(rows["delta_mean"]).to_numpy(), 0)
        high = np.maximum(rows["delta_ci_high"].fillna(rows["delta_mean"]).to_numpy() - y, 0)
        axis.errorbar(x, y, yerr=[low, high], fmt="o", color=COLOR, capsize=3)
        for method, xi, yi in zip(rows.index, x, y):
            axis.annotate(method, (xi, yi), textcoords="offset points", xytext=(4, 4), fontsize=8)
        front = pareto_front(list(zip(x, y)))
        # above the zero line, which a front through the baseline runs along
        axis.step(x[front], y[front], where="post", color="tab:orange", linestyle="--", linewidth=1, zorder=3)
        axis.axhline(0, color="black", linewidth=0.8)
        axis.set_xlabel(f"training time per epoch, × {table.baseline}\n({table.costs.reference().device})")
        if axis is axes[0][0]:  # one y label for the row: the panels share its meaning
            axis.set_ylabel(f"ΔMTL % vs {table.baseline}\n(95% CI of the paired difference)")
        left_out = [m for m in table.rows.index if m not in rows.index]
        axis.set_title(f"{table.dataset} / {table.scenario}" + (f"\n(no comparable time: {', '.join(left_out)})"
                                                               if left_out else ""), fontsize=9)
    fig.tight_layout()
    return fig


def sweep_figure(tables: list[Table]):
    """One row of panels per (dataset, curve) with at least two values: ΔMTL, then each task's primary metric."""
    frame = sweep_frame(tables)
    if frame is None:
        return None
    curves = [key for key, part in frame.groupby(["dataset", "curve"], sort=False) if part["value"].nunique() > 1]
    if not curves:
        return None
    quantities = list(dict.fromkeys(frame["quantity"]))
    fig, axes = grid(len(curves), len(quantities), width=4.2, height=3.2)
    for axes_row, (dataset, curve) in zip(axes, curves):
        part = frame[(frame["dataset"] == dataset) & (frame["curve"] == curve)]
        for axis, quantity in zip(axes_row, quantities):
            for method, line in part[part["quantity"] == quantity].groupby("method", sort=False):
                line = line.sort_values("value")
                drawn = axis.plot(line["value"], line["mean"], marker="o", label=method)[0]
                short = line[~line["complete"]]  # fewer seeds than asked: hollow, never passed off as complete
                axis.plot(short["value"], short["mean"], "o", markerfacecolor="white", color=drawn.get_color())
                band = line.dropna(subset=["low", "high"])
                axis.fill_between(band["value"], band["low"], band["high"], alpha=0.15, color=drawn.get_color())
            axis.set_xlabel(part["parameter"].iloc[0])
            axis.set_title(f"{dataset} / {curve}: {quantity}", fontsize=9)
        axes_row[0].legend(fontsize=7)
    return fig


def cd_diagram(summary: Summary | None):
    if summary is None or summary.ranks is None:
        return None
    fig, axes = grid(1, 1, width=8, height=0.4 * len(summary.ranks) + 1.5)
    cd_figure(summary, axes[0][0])
    return fig


IMAGE_FORMATS = ("png", "pdf")


def save(fig, stem: Path, name: str, formats: tuple[str, ...]) -> list[Path]:
    """``stem-name.png`` and/or ``.pdf`` (``formats``), each written atomically."""
    paths = []
    fig.tight_layout()
    for suffix in (f".{kind}" for kind in formats):
        path = stem.with_name(f"{stem.name}-{name}{suffix}")
        tmp = path.with_name(path.name + ".tmp" + suffix)
        fig.savefig(tmp, dpi=120)
        tmp.replace(path)
        paths.append(path)
    pyplot().close(fig)
    return paths


FIGURES: dict[str, tuple[str, Callable[..., Any]]] = {
    "delta": ("ΔMTL per method with 95% intervals", lambda tables, results, summary: delta_figure(tables)),
    "tasks": ("each task's test metric per method (mean ± std over seeds)",
              lambda tables, results, summary: task_figure(tables)),
    "curves": ("validation metrics per epoch (mean over seeds, band: lowest to highest seed)",
               lambda tables, results, summary: curve_figure(results, tables)),
    "cosine": ("gradient cosine of each task pair per epoch (train.observe: [gradient_cosine])",
               lambda tables, results, summary: cosine_figure(results, tables)),
    "angles": ("distribution of the angle between task gradients over updates (Li et al. 2022a Fig. 1)",
               lambda tables, results, summary: angle_figure(results, tables)),
    "pareto": ("ΔMTL with its 95% interval against training time per epoch, the Pareto front dashed",
               lambda tables, results, summary: pareto_figure(tables)),
    "sweep": ("each method's ΔMTL and task metrics against the swept scenario parameter (suite sweep)",
              lambda tables, results, summary: sweep_figure(tables)),
    "cd": ("critical-difference diagram over tables", lambda tables, results, summary: cd_diagram(summary)),
}


def write_figures(tables: list[Table], results: list[dict[str, Any]], summary: Summary | None,
                  stem: Path, formats: tuple[str, ...] = IMAGE_FORMATS) -> dict[str, list[Path]]:
    """Every figure the data allow, in ``formats`` (png, pdf): name -> its files; a stale file of a figure that
    no longer applies goes."""
    written = {}
    for name, (_, make) in FIGURES.items():
        fig = make(tables, results, summary)
        if fig is None:
            for kind in IMAGE_FORMATS:
                stem.with_name(f"{stem.name}-{name}.{kind}").unlink(missing_ok=True)
            continue
        written[name] = save(fig, stem, name, formats)
    return written


__all__ = ["FIGURES", "IMAGE_FORMATS", "curves", "write_figures"]
