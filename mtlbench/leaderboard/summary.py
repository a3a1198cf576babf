"""Across the tables of a suite: how each method fares over every (dataset, scenario).

- **Mean rank**: each table ranks its methods by mean ΔMTL (1 = best, ties share the average rank); a method's
  mean rank is over the tables it has results in.
- **IQM of ΔMTL** with a 95% stratified-bootstrap interval, and the **probability of improvement** over the
  baseline, P(ΔMTL of the method > ΔMTL of the baseline) averaged over tables, with its stratified-bootstrap
  interval: the definitions of Agarwal et al. 2021 (Sec. 4). Their ``rliable`` package does not import with the
  pandas this project needs (its ``arch`` dependency breaks on pandas 3), so both are computed here with
  numpy/scipy, following the paper's definitions (``stats.py``).
- **Critical-difference diagram** (Demšar 2006): the Friedman test over the tables as blocks, then the Nemenyi
  post-hoc test, with scikit-posthocs. It was chosen over autorank because it runs exactly Demšar's procedure,
  whereas autorank picks its tests from normality checks that are meaningless with a handful of tables. Only
  methods with results in every table enter; it needs at least two tables and three methods.

Every number is computed from the per-seed ΔMTL of the tables (``Table.by_seed``); nothing is trained.
"""
from __future__ import annotations

import dataclasses
import math

import pandas as pd

from .aggregate import Table
from .stats import ALPHA, improvement_interval, iqm_interval, nemenyi_critical_difference

DELTA = ("delta", "")


@dataclasses.dataclass
class Summary:
    rows: pd.DataFrame  # index: method; mean_rank, tables, iqm, iqm_low, iqm_high, poi, poi_low, poi_high,
    # complete (every seed of every table)
    tables: int  # tables with a ΔMTL column
    baseline: str
    friedman_p: float = math.nan
    ranks: pd.Series | None = None  # mean rank of the methods in every table (the diagram's)
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
    for method in methods:
        runs = [table.by_seed[DELTA][method].to_numpy() for table in scored if method in table.rows.index]
        rows.loc[method, ["iqm", "iqm_low", "iqm_high"]] = iqm_interval(runs)
        pairs = [(table.by_seed[DELTA][method].to_numpy(), table.by_seed[DELTA][baseline].to_numpy())
                 for table in scored if method in table.rows.index]  # a scored table has its baseline's runs
        rows.loc[method, ["poi", "poi_low", "poi_high"]] = improvement_interval(pairs)
    summary = Summary(rows, len(scored), baseline)
    diagram(summary, deltas.dropna())
    return summary


def diagram(summary: Summary, deltas: pd.DataFrame) -> None:
    """Friedman and Nemenyi over the methods with a ΔMTL in every table (ranked among themselves), when there
    are enough of both."""
    if deltas.shape[1] < 2:
        summary.why_no_diagram = (f"one table only: a critical-difference diagram ranks methods over at least two "
                                  f"tables (datasets or scenarios)")
        return
    if deltas.shape[0] < 3:
        summary.why_no_diagram = "fewer than three methods have results in every table"
        return
    from scipy.stats import friedmanchisquare
    import scikit_posthocs

    blocks = deltas.T  # rows: tables, columns: methods
    summary.friedman_p = float(friedmanchisquare(*blocks.to_numpy().T).pvalue)
    summary.ranks = blocks.rank(axis=1, ascending=False).mean(axis=0)  # 1 = the best ΔMTL
    summary.nemenyi = scikit_posthocs.posthoc_nemenyi_friedman(blocks.to_numpy())
    summary.nemenyi.index = summary.nemenyi.columns = list(blocks.columns)
    summary.critical_difference = nemenyi_critical_difference(blocks.shape[1], blocks.shape[0])


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
    return (f"Friedman test over {summary.tables} tables: p = {summary.friedman_p:.3g}; Nemenyi critical difference "
            f"at α = {ALPHA}: {summary.critical_difference:.2f} ranks (figure `-cd`).")


SUMMARY_NOTE = ("Mean rank: by mean ΔMTL within each table (1 = best), averaged over the tables a method has. IQM: "
                "the interquartile mean of every seed's ΔMTL over all tables, P(ΔMTL > baseline): the probability "
                "that a run of the method beats a run of the baseline in the same table, averaged over tables; both "
                "with 95% stratified-bootstrap intervals (Agarwal et al. 2021). \"seeds missing\": computed over the "
                "seeds it has, fewer than the suite asks for.")


def summary_frame(summary: Summary) -> pd.DataFrame:
    """The summary as CSV rows (every number)."""
    rows = summary.rows.copy()
    rows.index.name = "method"
    rows["friedman_p"] = summary.friedman_p
    rows["critical_difference"] = summary.critical_difference
    if summary.ranks is not None:
        rows["cd_rank"] = summary.ranks
    return rows.reset_index()


def cd_figure(summary: Summary, axis) -> None:
    """Draw the critical-difference diagram on a matplotlib axis."""
    import scikit_posthocs

    scikit_posthocs.critical_difference_diagram(summary.ranks, summary.nemenyi, ax=axis, alpha=ALPHA,
                                                cd=summary.critical_difference)
    axis.set_title(f"Mean rank over {summary.tables} tables (Nemenyi, α = {ALPHA})", pad=30)  # above the CD bar


__all__ = ["Summary", "cd_figure", "summarize", "summary_frame", "summary_markdown"]
