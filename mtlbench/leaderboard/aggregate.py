"""From result files to leaderboard tables: mean ± std over seeds and ΔMTL against a baseline method.

ΔMTL convention (docs/datasets.md, "Tasks and metrics"): Yun and Cho 2023 Eq. 7 in percent. For each seed of a
method, its metrics are compared with the baseline method's metrics averaged over the baseline's seeds; the table
shows the mean and standard deviation (ddof 1) of that per-seed ΔMTL. The metrics entering ΔMTL are each task's
primary metric unless the suite's ``leaderboard.metrics`` chooses others (e.g. depth: [delta1, rmse] as Yun and Cho
2023 Table 7).

Against the baseline, a method is judged by its paired per-seed differences d_s = ΔMTL_m,s - ΔMTL_b,s (the same
seed trains both on the same masks): their Student t interval and their exact sign-flip test, Holm-adjusted over
the table's methods. Both describe the same quantity, whose mean is the row's mean ΔMTL (the baseline's per-seed
ΔMTL averages to 0) when the method has the baseline's seeds.

Each job also records how a constant prediction of its training targets scores (``constant``) and whether its
training loss blew up (``diverged``); a table marks the cells no better than that constant and the runs that
diverged, and neither can be bold.
"""
from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from ..errors import UserError
from ..metrics import UndefinedDelta, acc_mtl, delta_mtl, seed_mean
from ..schema import LEADERBOARD_COLUMNS
from .costs import COST_COLUMNS, TableCosts, table_costs
from .stats import holm, paired_p, t_interval

DELTA = ("delta", "")
ACC = ("acc_mtl", "")  # Yun and Cho 2023 Eq. 8 over the metrics entering ΔMTL (leaderboard.acc_mtl)


class LeaderboardError(UserError, ValueError):
    pass


@dataclass
class Table:
    dataset: str
    scenario: str
    tasks: list[str]
    columns: list[tuple[str, str]]  # (task, metric) shown, in order
    higher_is_better: dict[tuple[str, str], bool]
    rows: pd.DataFrame  # index: method; columns: task/metric/mean|std, delta_mean, delta_std, seeds, params
    baseline: str | None
    missing: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # method -> job ids without a result
    expected_seeds: int | None = None  # seeds the suite asks for (None: unknown, a summary of an older run)
    asked_baseline: str = ""  # the ΔMTL baseline asked for (``baseline`` is None when it has no results here)
    by_seed: dict[tuple[str, str], dict[str, pd.Series]] = dataclasses.field(default_factory=dict)  # column ->
    # method -> values by seed (("delta", "") for ΔMTL), for paired comparisons
    published: pd.DataFrame | None = None  # a paper's numbers beside ours (published.beside)
    delta_metrics: dict[str, list[str]] = dataclasses.field(default_factory=dict)  # task -> metrics in ΔMTL
    diverged: dict[str, list[int]] = dataclasses.field(default_factory=dict)  # method -> seeds that diverged
    below_constant: dict[tuple[str, str], dict[str, list[int]]] = dataclasses.field(default_factory=dict)  # column
    # -> method -> seeds no better than the constant prediction
    constant: dict[tuple[str, str], float] = dataclasses.field(default_factory=dict)  # column -> the constant's
    acc: bool = False  # whether rows carry Acc_MTL (acc_mean, acc_std) and by_seed[ACC]
    costs: TableCosts | None = None  # what each method cost (leaderboard/costs.py)
    shown: tuple[str, ...] = LEADERBOARD_COLUMNS  # the column groups asked for (leaderboard.columns, --columns)
    swept: tuple[str, str, float] | None = None  # on a sweep's curve: (curve, parameter, value), leaderboard/sweep.py
    pseudo: dict[str, dict[str, tuple[float, float]]] = dataclasses.field(default_factory=dict)  # method -> task ->
    # (share of training images whose target is a teacher's, share of their pixels it labelled), means over seeds

    def shows(self, group: str) -> bool:
        """Whether the table shows a column group: asked for, and with something to show."""
        available = {"delta": self.baseline is not None, "acc": self.acc,
                     **dict.fromkeys(COST_COLUMNS, self.costs is not None and self.costs.measured)}
        return group in self.shown and available.get(group, True)

    def complete(self, method: str) -> bool:
        """Whether the method has every seed the suite asks for (only complete rows can be bold)."""
        return not self.missing.get(method)

    def eligible(self, column: tuple[str, str]) -> list[str]:
        """The methods a column may bold: complete, no seed diverged, no seed no better than the constant."""
        below = self.below_constant.get(column, {})
        return [method for method in self.rows.index
                if self.complete(method) and not self.diverged.get(method) and not below.get(method)]

    def entering(self, column: tuple[str, str]) -> bool:
        """Whether a shown metric enters ΔMTL."""
        task, metric = column
        return metric in self.delta_metrics.get(task, [])


def frame(results: list[dict[str, Any]]) -> pd.DataFrame:
    """One row per (job, task, metric) of the test split; ``tuned``: the job ran with `mtlbench tune`'s
    parameters (``run --params``); ``constant``: the constant prediction's value of that metric (NaN when the job
    did not record one, before mtlbench 0.3); ``diverged``: the job's training loss blew up."""
    records = [{"job_id": r["job_id"], "dataset": r["dataset"], "scenario": r["scenario"], "method": r["method"],
                "seed": r["seed"], "tuned": bool(r.get("config", {}).get("tuned")), "task": task, "metric": metric,
                "value": value, "higher_is_better": r["directions"][task][metric],
                "primary": r["primary"][task] == metric,
                "constant": r.get("constant", {}).get(task, {}).get(metric, math.nan),
                "diverged": bool(r.get("diverged"))}
               for r in results for task, metrics in r["test"].items() for metric, value in metrics.items()]
    if not records:
        raise LeaderboardError("no finished jobs (no result.json) to make a leaderboard from")
    return pd.DataFrame.from_records(records)


def suite_order(first: list[str], present: set[str]) -> list[str]:
    """The suite's order, then anything else with results (older runs), alphabetically."""
    return [x for x in dict.fromkeys([*first, *sorted(present)]) if x in present]


def tables(results: list[dict[str, Any]], baseline: str, chosen: dict[str, list[str]],
           methods: list[str] = (), scenarios: list[str] = (),
           expected: dict[str, list[Any]] | None = None, acc: bool = False,
           finished: set[str] | None = None, shown: tuple[str, ...] = LEADERBOARD_COLUMNS) -> list[Table]:
    """One table per (dataset, scenario), scenarios in the suite's order; rows in the suite's method order.
    ``expected`` (job id -> [dataset, scenario, method, seed], from the suite's summary) lets each table mark the
    methods with fewer finished seeds than the suite asks for, and name the jobs they lack (``finished``: the ids of
    every finished job, where ``results`` holds only those reported, as in a learning-rate grid); ``acc`` adds
    Acc_MTL; ``shown``: the column groups to show."""
    data = frame(results)
    methods = suite_order(list(methods), {r["method"] for r in results})
    scenarios = suite_order(list(scenarios), {r["scenario"] for r in results})
    groups = dict(list(data.groupby(["dataset", "scenario"], sort=False)))
    built = [table(dataset, scenario, groups[dataset, scenario], methods, baseline, chosen, acc)
             for dataset in suite_order([], {d for d, _ in groups}) for scenario in scenarios
             if (dataset, scenario) in groups]
    for made in built:
        made.shown = shown
        own = [r for r in results if (r["dataset"], r["scenario"]) == (made.dataset, made.scenario)]
        add_costs(made, own)
        made.pseudo = pseudo_labels(own)
    if expected is not None:
        finished = finished if finished is not None else {r["job_id"] for r in results}
        for made in built:
            asked = [(job_id, row) for job_id, row in expected.items() if row[:2] == [made.dataset, made.scenario]]
            seeds = {row[3] for _, row in asked}
            made.expected_seeds = len(seeds)
            for job_id, row in asked:
                if job_id not in finished:
                    made.missing.setdefault(row[2], []).append(job_id)
    return built


def table(dataset: str, scenario: str, group: pd.DataFrame, order: list[str], baseline: str,
          chosen: dict[str, list[str]], acc: bool = False) -> Table:
    tasks = list(dict.fromkeys(group["task"]))
    directions = {(t, m): bool(h) for t, m, h in
                  group[["task", "metric", "higher_is_better"]].drop_duplicates().itertuples(index=False)}
    primary = {t: m for t, m in group.loc[group["primary"], ["task", "metric"]].itertuples(index=False)}
    delta_metrics = {t: chosen.get(t, [primary[t]]) for t in tasks}
    shown = list(dict.fromkeys([(t, primary[t]) for t in tasks] + [(t, m) for t in tasks for m in delta_metrics[t]]))
    unknown = [(t, m) for t, m in shown if (t, m) not in directions]
    if unknown:
        raise LeaderboardError(f"leaderboard.metrics names metrics the results do not have: {unknown}")
    wide = group.pivot_table(index=["method", "seed"], columns=["task", "metric"], values="value")
    stats = wide.groupby(level="method").agg(["mean", "std"])
    seeds = wide.groupby(level="method").size()
    methods = [m for m in order if m in stats.index]
    rows = pd.DataFrame(index=methods)
    for task, metric in shown:
        rows[f"{task}/{metric}/mean"] = stats[(task, metric, "mean")]
        rows[f"{task}/{metric}/std"] = stats[(task, metric, "std")]
    rows["seeds"] = seeds
    by_seed = {(task, metric): {m: wide.loc[m][(task, metric)].dropna() for m in methods} for task, metric in shown}
    tuned = group.groupby("method")["tuned"].any()
    rows["params"] = ["tuned" if tuned[m] else "paper" for m in methods]
    made = Table(dataset, scenario, tasks, shown, {c: directions[c] for c in shown}, rows, None,
                 asked_baseline=baseline, by_seed=by_seed, delta_metrics=delta_metrics)
    mark_degenerate(made, group)
    if acc:
        score_accuracy(made, wide)
    if baseline in stats.index:
        score_against_baseline(made, wide, group, baseline)
    return made


def pseudo_labels(results: list[dict[str, Any]]) -> dict[str, dict[str, tuple[float, float]]]:
    """Per method whose jobs trained on teachers' pseudo-labels (result.json's ``pseudo_labels``), per task, the mean
    over its seeds of the share of training images whose target was the teacher's and of their pixels it labelled."""
    shares: dict[str, dict[str, list[tuple[float, float]]]] = {}
    for r in results:
        for task, share in r.get("pseudo_labels", {}).items():
            shares.setdefault(r["method"], {}).setdefault(task, []).append((share["images"], share["pixels"]))
    return {method: {task: tuple(float(np.mean(v)) for v in zip(*values)) for task, values in tasks.items()}
            for method, tasks in shares.items()}


def add_costs(made: Table, results: list[dict[str, Any]]) -> None:
    """The table's measured costs, and their numbers in its rows (the CSV's columns)."""
    made.costs = table_costs(results, list(made.rows.index), made.baseline)
    if not made.costs.measured:
        return
    methods = list(made.rows.index)
    own = made.costs.methods
    made.rows["epoch_seconds"] = [own[m].epoch_seconds for m in methods]
    made.rows["peak_memory_mib"] = [own[m].peak_bytes / 2 ** 20 for m in methods]
    made.rows["time_ratio"] = [made.costs.ratio(m, "epoch_seconds") for m in methods]
    made.rows["memory_ratio"] = [made.costs.ratio(m, "peak_bytes") for m in methods]
    made.rows["gflops_per_step"] = [made.costs.gflops(m) for m in methods]
    made.rows["cost_device"] = [own[m].device or "" for m in methods]


def score_accuracy(made: Table, wide: pd.DataFrame) -> None:
    """Each seed's Acc_MTL over the metrics entering ΔMTL, and its mean and std per method (a seed whose Acc_MTL is
    undefined, a metric not positive, makes the mean NaN: shown as missing, never averaged away)."""
    directions = {t: {m: made.higher_is_better[(t, m)] for m in made.delta_metrics[t]} for t in made.tasks}
    per_seed = {method: pd.Series([acc_mtl({t: {m: row[(t, m)] for m in made.delta_metrics[t]} for t in made.tasks},
                                           directions, made.delta_metrics)
                                   for _, row in wide.loc[method].iterrows()], index=wide.loc[method].index)
                for method in made.rows.index}
    made.rows["acc_mean"] = [float(per_seed[m].mean(skipna=False)) for m in made.rows.index]
    made.rows["acc_std"] = [float(per_seed[m].std(ddof=1, skipna=False)) if len(per_seed[m]) > 1 else np.nan
                            for m in made.rows.index]
    made.by_seed[ACC] = per_seed
    made.acc = True


def mark_degenerate(made: Table, group: pd.DataFrame) -> None:
    """The seeds that diverged, and per shown column those no better than the constant prediction of their
    job's training targets (with the constant's value, the same for every job of a table)."""
    jobs = group.drop_duplicates("job_id")
    made.diverged = {m: sorted(s) for m, s in jobs[jobs["diverged"]].groupby("method")["seed"]}
    for task, metric in made.columns:
        cells = group[(group["task"] == task) & (group["metric"] == metric)].dropna(subset=["constant"])
        if cells.empty:
            continue
        made.constant[(task, metric)] = float(cells["constant"].mean())
        higher = made.higher_is_better[(task, metric)]
        no_better = cells[cells["value"] <= cells["constant"]] if higher else cells[cells["value"] >= cells["constant"]]
        made.below_constant[(task, metric)] = {m: sorted(s) for m, s in no_better.groupby("method")["seed"]}


def score_against_baseline(made: Table, wide: pd.DataFrame, group: pd.DataFrame, baseline: str) -> None:
    """Each method's per-seed ΔMTL against the baseline's mean metrics, its mean and std, and (the baseline
    itself excepted) the t interval and Holm-adjusted p-value of its paired differences from the baseline."""
    delta_metrics, methods = made.delta_metrics, list(made.rows.index)
    runs = [{t: {m: row[(t, m)] for m in delta_metrics[t]} for t in made.tasks}
            for _, row in wide.loc[baseline].iterrows()]
    reference = seed_mean(runs, delta_metrics)
    directions = {t: {m: made.higher_is_better[(t, m)] for m in delta_metrics[t]} for t in made.tasks}
    try:
        per_seed = {method: pd.Series([delta_mtl({t: {m: row[(t, m)] for m in delta_metrics[t]} for t in made.tasks},
                                                 reference, directions, delta_metrics)
                                       for _, row in wide.loc[method].iterrows()], index=wide.loc[method].index)
                    for method in methods}
    except UndefinedDelta as error:
        jobs = sorted(group.loc[group["method"] == baseline, "job_id"].unique())
        raise LeaderboardError(f"{made.dataset} / {made.scenario}: {error} (the mean over the jobs of "
                               f"{baseline}: {', '.join(jobs)}). Choose metrics the baseline scores above 0 "
                               f"(leaderboard.metrics) or another baseline (leaderboard.baseline, --baseline)") from None
    rows = made.rows
    rows["delta_mean"] = [float(per_seed[m].mean()) for m in methods]
    rows["delta_std"] = [float(per_seed[m].std(ddof=1)) if len(per_seed[m]) > 1 else np.nan for m in methods]
    differences = {m: paired_differences(per_seed[m], per_seed[baseline]) for m in methods if m != baseline}
    intervals = {m: t_interval(d) for m, d in differences.items()}
    rows["delta_ci_low"] = [intervals.get(m, (math.nan, math.nan))[0] for m in methods]
    rows["delta_ci_high"] = [intervals.get(m, (math.nan, math.nan))[1] for m in methods]
    made.by_seed[DELTA] = per_seed
    rows["p_vs_baseline"] = compared_with(per_seed, baseline, methods)
    made.baseline = baseline


def paired_differences(method: pd.Series, baseline: pd.Series) -> np.ndarray:
    """Per seed both have: the method's value minus the baseline's."""
    common = method.index.intersection(baseline.index)
    return (method[common] - baseline[common]).to_numpy()


def compared_with(samples: dict[str, pd.Series], baseline: str, methods: list[str]) -> list[float]:
    """Each method's Holm-adjusted p-value against the baseline, paired by seed (NaN for the baseline itself and
    for a method with no seed in common with it)."""
    raw = {}
    for method in methods:
        common = samples[method].index.intersection(samples[baseline].index)
        if method != baseline and len(common):
            raw[method] = paired_p(samples[method][common], samples[baseline][common])
    adjusted = holm(raw)
    return [adjusted.get(method, np.nan) for method in methods]
