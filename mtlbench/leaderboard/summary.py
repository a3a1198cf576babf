"""Across the tables of a suite: how each method fares over every (dataset, scenario).

- **Mean rank**: each table ranks its methods by mean ΔMTL (1 = best, ties share the average rank); a method's
  mean rank is over the tables it has results in.
- **IQM of ΔMTL** with a 95% stratified-bootstrap interval, and the **probability of improvement** over the
  baseline, P(ΔMTL of the method > ΔMTL of the baseline) averaged over tables, with its stratified-bootstrap
  interval: the definitions of Agarwal et al. 2021 (Sec. 4). Their ``rliable`` package does not import with the
  pandas this project needs (its ``arch`` dependency breaks on pandas 3), so both are computed here with
  numpy/scipy, following the paper's definitions (``stats.py``).
- **Critical-difference diagram** (Demšar 2006, Sec. 3.2.2): over *independent datasets* as blocks (the tables of
  one dataset are scenarios of the same data, not independent samples, so a dataset's tables make one block: the
  methods' mean ΔMTL over them), the Iman-Davenport form of the Friedman test, as Demšar recommends, then the
  Nemenyi post-hoc test, with scikit-posthocs (chosen over autorank because it runs exactly Demšar's procedure,
  whereas autorank picks its tests from normality checks that are meaningless with a handful of datasets). Only
  methods with results in every table enter. It is drawn only when the Nemenyi critical difference is below
  k - 1 ranks, the largest gap k methods can have: otherwise no pair could ever differ (with k = 4 methods on
  2 blocks the critical difference is 3.32 ranks), so the page says why there is none.

Every number is computed from the per-seed ΔMTL of the tables (``Table.by_seed``); nothing is trained.
"""
from __future__ import annotations

import dataclasses
import math

import pandas as pd

from .aggregate import Table
from .stats import ALPHA, iman_davenport_p, improvement_interval, iqm_interval, nemenyi_critical_difference

DELTA = ("delta", "")


@dataclasses.dataclass
class Summary:
    rows: pd.DataFrame  # index: method; mean_rank, tables, iqm, iqm_low, iqm_high, poi, poi_low, poi_high,
    # complete (every seed of every table)
    tables: int  # tables with a ΔMTL column
    baseline: str
    datasets: int = 0  # independent blocks of the diagram
    iman_davenport_p: float = math.nan
    ranks: pd.Series | None = None  # mean rank of the methods over the datasets (the diagram's)
    nemenyi: pd.DataFrame | None = None  # pairwise p-values
    critical_difference: float = math.nan
    why_no_diagram: str = ""


def summarize(tables: list[Table]) -> Summary | None:
    """The suite's summary over its tables with a ΔMTL column (None when no table has one)."""
    scored = [table for table in tables if table.baseline]
    if not scored:
        return None
    baseline = scored[0].baseline
    methods = list(dict.fromkeys(m for table in scored for m in table.rows.index))
    deltas = pd.DataFrame({i: table.rows["delta_mean"] for i, table in enumerate(scored)}, index=methods)
    ranks = deltas.rank(ascending=False)
    rows = pd.DataFrame(index=methods)
    rows["mean_rank"] = ranks.mean(axis=1)
    rows["tables"] = ranks.notna().sum(axis=1)
    rows["complete"] = [all(table.complete(m) for table in scored) and rows.loc[m, "tables"] == len(scored)
                        for m in methods]
    rows[["poi", "poi_low", "poi_high"]] = math.nan  # the baseline against itself: nothing to say
    for method in methods:
        runs = [table.by_seed[DELTA][method].to_numpy() for table in scored if method in table.rows.index]
        rows.loc[method, ["iqm", "iqm_low", "iqm_high"]] = iqm_interval(runs)
        pairs = [(table.by_seed[DELTA][method].to_numpy(), table.by_seed[DELTA][baseline].to_numpy())
                 for table in scored if method in table.rows.index]  # a scored table has its baseline's runs
        if method != baseline:
            rows.loc[method, ["poi", "poi_low", "poi_high"]] = improvement_interval(pairs)
    summary = Summary(rows, len(scored), baseline)
    per_dataset = deltas.dropna().T.groupby([table.dataset for table in scored]).mean()  # one block per dataset
    diagram(summary, per_dataset)
    return summary


def diagram(summary: Summary, blocks: pd.DataFrame) -> None:
    """Iman-Davenport and Nemenyi over the datasets (rows of ``blocks``: a dataset's mean ΔMTL per method, for
    the methods with a ΔMTL in every table), when they can tell methods apart."""
    summary.datasets, methods = blocks.shape
    if methods < 3:
        summary.why_no_diagram = "fewer than three methods have results in every table"
        return
    critical = nemenyi_critical_difference(methods, summary.datasets)
    if summary.datasets < 2 or critical >= methods - 1:
        summary.why_no_diagram = (
            f"the Friedman and Nemenyi tests (Demšar 2006) rank methods over independent datasets, and the "
            f"{count(summary.tables, 'table')} here come from {count(summary.datasets, 'dataset')} (scenarios of "
            f"one dataset are not independent samples). Over {count(summary.datasets, 'dataset')}, the Nemenyi "
            f"critical difference of {methods} methods would be {critical:.2f} ranks, not below the largest "
            f"possible gap of {methods - 1}: no two methods could be told apart")
        return
    import scikit_posthocs

    values = blocks.to_numpy()
    summary.iman_davenport_p = iman_davenport_p(values)
    summary.ranks = blocks.rank(axis=1, ascending=False).mean(axis=0)  # 1 = the best ΔMTL
    summary.nemenyi = scikit_posthocs.posthoc_nemenyi_friedman(values)
    summary.nemenyi.index = summary.nemenyi.columns = list(blocks.columns)
    summary.critical_difference = critical


def count(n: int, noun: str) -> str:
    return f"{n} {noun}{'' if n == 1 else 's'}"


def interval(point: float, low: float, high: float, digits: int = 2) -> str:
    if math.isnan(point):
        return "—"
    return f"{point:+.{digits}f} [{low:+.{digits}f}, {high:+.{digits}f}]"


def probability(point: float, low: float, high: float) -> str:
    return "—" if math.isnan(point) else f"{point:.2f} [{low:.2f}, {high:.2f}]"


def summary_markdown(summary: Summary) -> list[str]:
    header = ["method", "mean rank ↓", "tables", "IQM ΔMTL % ↑ [95% CI]",
              f"P(ΔMTL > {summary.baseline}) ↑ [95% CI]"]
    lines = ["## Across tables", "", SUMMARY_NOTE, "", "| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, row in summary.rows.iterrows():
        tables = f"{int(row['tables'])}/{summary.tables}" + ("" if row["complete"] else " (seeds missing)")
        lines.append(f"| {method} | {row['mean_rank']:.2f} | {tables} | "
                     f"{interval(row['iqm'], row['iqm_low'], row['iqm_high'])} | "
                     f"{probability(row['poi'], row['poi_low'], row['poi_high'])} |")
    lines += ["", diagram_note(summary), ""]
    return lines


def diagram_note(summary: Summary) -> str:
    if summary.ranks is None:
        return f"No critical-difference diagram: {summary.why_no_diagram}."
    return (f"Iman-Davenport test over {summary.datasets} datasets: p = {summary.iman_davenport_p:.3g}; Nemenyi "
            f"critical difference at α = {ALPHA}: {summary.critical_difference:.2f} ranks (figure `-cd`).")


SUMMARY_NOTE = ("Mean rank: by mean ΔMTL within each table (1 = best), averaged over the tables a method has. IQM: "
                "the interquartile mean of every seed's ΔMTL over all tables, P(ΔMTL > baseline): the probability "
                "that a run of the method beats a run of the baseline in the same table, averaged over tables; both "
                "with 95% stratified-bootstrap intervals (Agarwal et al. 2021). \"seeds missing\": computed over the "
                "seeds it has, fewer than the suite asks for.")


def summary_frame(summary: Summary) -> pd.DataFrame:
    """The summary as CSV rows (every number)."""
    rows = summary.rows.copy()
    rows.index.name = "method"
    rows["iman_davenport_p"] = summary.iman_davenport_p
    rows["critical_difference"] = summary.critical_difference
    rows["cd_rank"] = math.nan if summary.ranks is None else summary.ranks  # empty unless the diagram is drawn
    return rows.reset_index()


def cd_figure(summary: Summary, axis) -> None:
    """Draw the critical-difference diagram on a matplotlib axis."""
    import scikit_posthocs

    scikit_posthocs.critical_difference_diagram(summary.ranks, summary.nemenyi, ax=axis, alpha=ALPHA,
                                                cd=summary.critical_difference)
    axis.set_title(f"Mean rank over {summary.datasets} datasets (Nemenyi, α = {ALPHA})", pad=30)  # above the CD bar


__all__ = ["Summary", "cd_figure", "summarize", "summary_frame", "summary_markdown"]
