"""A learning-rate grid (``lr_grid``, Yun and Cho 2023 Sec. 4.1): which rate each method is reported at, and the
runs reported.

For each (dataset, scenario, method) and each rate, the runs' scores (Acc_MTL over the metrics entering ΔMTL, or one
metric, on the grid's split) are sorted and the ``trim`` largest and smallest left out; the rest are averaged. The
rate with the best average is the method's, and its kept runs are what the method's row shows. A rate with a run
missing, or with a score that is not finite, is not compared (its cell says why): a winner is never picked from an
incomplete grid, and the row then has no result.
"""
from __future__ import annotations

import math
from typing import Any

import pandas as pd

from ..metrics import acc_mtl

Result = dict[str, Any]


def rate_of(result: Result) -> float:
    return float(result["config"]["train"]["optimizer"]["lr"])


def score_of(result: Result, grid: dict[str, Any], chosen: dict[str, list[str]]) -> float:
    """The grid's score of one run on its split: Acc_MTL (Eq. 8) over ``chosen`` (default: each task's primary
    metric), or one TASK/METRIC signed so that higher is better."""
    metrics = result[grid["split"]]
    if grid["score"] == "acc_mtl":
        over = {task: chosen.get(task, [result["primary"][task]]) for task in metrics}
        return acc_mtl(metrics, result["directions"], over)
    task, _, metric = grid["score"].partition("/")
    return metrics[task][metric] * (1 if result["directions"][task][metric] else -1)


def trimmed_mean(scores: list[float], trim: int) -> float:
    kept = sorted(scores)[trim:len(scores) - trim]
    return math.fsum(kept) / len(kept) if kept else math.nan


def choose_rates(results: list[Result], grid: dict[str, Any], chosen: dict[str, list[str]],
                 expected: dict[str, list[Any]] | None, order: list[str] = ()) -> tuple[list[Result], pd.DataFrame]:
    """The runs each method is reported with, and the grid's table (one row per dataset, scenario, method and rate:
    runs, runs expected, the trimmed mean score, whether it was chosen). ``expected`` (job id -> [dataset, scenario,
    method, seed]) counts the runs each rate should have; without it (an older summary) every rate is taken as
    complete."""
    grouped: dict[tuple[str, str, str], dict[float, list[Result]]] = {}
    for result in results:
        method = grouped.setdefault((result["dataset"], result["scenario"], result["method"]), {})
        method.setdefault(rate_of(result), []).append(result)
    asked = {} if expected is None else seeds_asked(expected, len(grid["rates"]))
    rows, kept = [], []
    rank = {method: i for i, method in enumerate(order)}
    for (dataset, scenario, method), rates in sorted(grouped.items(), key=lambda item: rank.get(item[0][2], len(rank))):
        means = {}
        for rate in grid["rates"]:
            runs = rates.get(rate, [])
            scores = [score_of(r, grid, chosen) for r in runs]
            want = asked.get((dataset, scenario, method), len(runs))
            complete = len(runs) >= want and all(math.isfinite(s) for s in scores)
            means[rate] = trimmed_mean(scores, grid["trim"]) if complete else math.nan
            rows.append({"dataset": dataset, "scenario": scenario, "method": method, "lr": rate, "runs": len(runs),
                         "runs_asked": want, "score": means[rate], "chosen": False})
        compared = {rate: mean for rate, mean in means.items() if not math.isnan(mean)}
        if len(compared) < len(grid["rates"]):
            continue  # an incomplete grid picks no rate: the row has no result, and the grid table shows why
        best = max(compared, key=compared.get)
        for row in rows[-len(grid["rates"]):]:
            row["chosen"] = row["lr"] == best
        kept += trimmed_runs(rates[best], grid, chosen)
    return kept, pd.DataFrame(rows)


def seeds_asked(expected: dict[str, list[Any]], rates: int) -> dict[tuple[str, str, str], int]:
    """Runs per rate the suite asks of each (dataset, scenario, method): its jobs there over the rates."""
    counts: dict[tuple[str, str, str], int] = {}
    for dataset, scenario, method, _ in expected.values():
        counts[dataset, scenario, method] = counts.get((dataset, scenario, method), 0) + 1
    return {key: count // rates for key, count in counts.items()}


def trimmed_runs(runs: list[Result], grid: dict[str, Any], chosen: dict[str, list[str]]) -> list[Result]:
    """The runs whose scores survive the trim (ties broken by seed, so the choice is reproducible)."""
    ranked = sorted(runs, key=lambda r: (score_of(r, grid, chosen), r["seed"]))
    return ranked[grid["trim"]:len(ranked) - grid["trim"]]


def grid_markdown(frame: pd.DataFrame, grid: dict[str, Any]) -> list[str]:
    """The grid as a table per (dataset, scenario): a method per row, a rate per column, the chosen rate bold."""
    score = "Acc_MTL" if grid["score"] == "acc_mtl" else grid["score"]
    lines = ["## Learning-rate grid", "",
             f"Each method trained with every seed at each rate (lr_grid, Yun and Cho 2023 Sec. 4.1). A cell: the "
             f"mean {score} on the {grid['split']} split of the rate's runs without the {grid['trim']} largest and "
             f"{grid['trim']} smallest; bold: the rate each method is reported at, over those runs. A rate with runs "
             f"missing (or a score not finite) is not compared, and its method is not reported. The kept runs of "
             f"two methods need not share seeds: their paired comparisons above are over the seeds they share.", ""]
    for (dataset, scenario), table in frame.groupby(["dataset", "scenario"], sort=False):
        lines += [f"{dataset} / {scenario}:", "",
                  "| method | " + " | ".join(f"lr {rate:g}" for rate in grid["rates"]) + " |",
                  "|---|" + "---|" * len(grid["rates"])]
        for method, rows in table.groupby("method", sort=False):
            cells = [grid_cell(row) for row in rows.itertuples(index=False)]
            lines.append(f"| {method} | " + " | ".join(cells) + " |")
        lines.append("")
    return lines


def grid_cell(row: Any) -> str:
    if math.isnan(row.score):
        return f"— ({row.runs}/{row.runs_asked} runs)" if row.runs < row.runs_asked else "— (not finite)"
    text = f"{row.score:.4f}"
    return f"**{text}**" if row.chosen else text


__all__ = ["choose_rates", "grid_markdown"]
