"""Leaderboards as the papers print them: Markdown (and CSV with every number) per dataset and scenario."""
from __future__ import annotations

import math
import platform
import subprocess
from datetime import date
from pathlib import Path

import pandas as pd

from ..files import write_text_atomic
from .aggregate import Table
from .published import beside_markdown
from .summary import Summary, summary_markdown
from .stats import not_worse_than_best, power_note

ARROW = {True: "↑", False: "↓"}


def fmt(mean: float, std: float) -> str:
    digits = 2 if abs(mean) >= 10 else 4
    text = f"{mean:.{digits}f}"
    return text if math.isnan(std) else f"{text} ± {std:.{digits}f}"


def seeds_cell(table: Table, method: str, finished: int) -> str:
    """``3``, or ``2/3 seeds`` where the method lacks seeds the suite asks for."""
    if table.expected_seeds is not None and not table.complete(method):
        return f"{finished}/{table.expected_seeds} seeds"
    return str(finished)


def missing_note(table: Table) -> list[str]:
    """Below a table with missing seeds: which jobs each incomplete method lacks."""
    if not table.missing:
        return []
    lines = ["", "Fewer seeds than the suite asks for (failed or not run yet; `mtlbench status` says which): "
             "their means are over the seeds shown, and they are never bold."]
    lines += [f"- {method}: missing job{'s' if len(ids) > 1 else ''} {', '.join(ids)}"
              for method, ids in table.missing.items()]
    return lines


def signed(value: float) -> str:
    return f"{round(value, 2) + 0.0:+.2f}"  # + 0.0 turns -0.00 into +0.00


def delta_cell(row: pd.Series) -> str:
    """ΔMTL mean ± std and its 95% bootstrap interval."""
    spread = "" if math.isnan(row["delta_std"]) else f" ± {row['delta_std']:.2f}"
    interval = "" if math.isnan(row["delta_ci_low"]) else \
        f" [{signed(row['delta_ci_low'])}, {signed(row['delta_ci_high'])}]"
    return f"{signed(row['delta_mean'])}{spread}{interval}"


def p_cell(p: float) -> str:
    return "" if math.isnan(p) else f"{p:.3f}"


def bold_sets(table: Table) -> dict[tuple[str, str], set[str]]:
    """Per column: the best complete method and every complete method not significantly worse than it."""
    eligible = [method for method in table.rows.index if table.complete(method)]
    columns = {column: table.higher_is_better[column] for column in table.columns}
    if table.baseline:
        columns[("delta", "")] = True
    return {column: not_worse_than_best(table.by_seed.get(column, {}), higher, eligible)
            for column, higher in columns.items()}


def table_power_note(table: Table) -> list[str]:
    return power_note(table.expected_seeds or int(table.rows["seeds"].max()), len(table.rows) - 1)


def markdown_table(table: Table) -> str:
    header = ["method"] + [f"{t} {m} {ARROW[table.higher_is_better[(t, m)]]}" for t, m in table.columns]
    if table.baseline:
        header += [f"ΔMTL % vs {table.baseline} ↑ [95% CI]", f"p vs {table.baseline} (Holm)"]
    header += ["seeds", "params"]
    bold = bold_sets(table)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, row in table.rows.iterrows():
        cells = [method]
        for t, m in table.columns:
            cell = fmt(row[f"{t}/{m}/mean"], row[f"{t}/{m}/std"])
            cells.append(f"**{cell}**" if method in bold[(t, m)] else cell)
        if table.baseline:
            cell = delta_cell(row)
            cells += [f"**{cell}**" if method in bold[("delta", "")] else cell, p_cell(row["p_vs_baseline"])]
        cells += [seeds_cell(table, method, int(row["seeds"])), row["params"]]
        lines.append("| " + " | ".join(cells) + " |")
    absent = [method for method in table.missing if method not in table.rows.index]
    lines += [f"| {method} | " + " | ".join("—" for _ in header[1:-2]) + f" | 0/{table.expected_seeds} seeds | |"
              for method in absent]
    return "\n".join(lines + missing_note(table) + table_power_note(table))


def commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no", "--", ".",
                                ":(exclude)leaderboards"],  # the rendered pages themselves are no code change
                               capture_output=True, text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


TABLE_NOTE = ("Test-split metrics of {epoch}, mean ± std over seeds. ΔMTL: Yun and Cho 2023 Eq. 7 in percent "
              "(docs/leaderboards.md), with its 95% percentile-bootstrap interval over seeds (scipy); p: the exact "
              "paired sign-flip test against the baseline over seeds, Holm-adjusted over the table's methods. Bold: "
              "the best, and every method not significantly worse than it (the same test against the best, "
              "Holm-adjusted; p < 0.05). params: the paper's (suite's) hyperparameters, or tuned on the validation "
              "split by `mtlbench tune`.")


def epoch_reported(settings: dict) -> str:
    """Which epoch a leaderboard reports, in words (``leaderboard.select``)."""
    if settings.get("select", "last") == "last":
        return "the last epoch"
    by = settings.get("select_by", "delta_mtl")
    return ("the epoch with the best validation " + ("ΔMTL against the baseline" if by == "delta_mtl" else by)
            + " (leaderboard.select: best_val)")


def table_note(settings: dict) -> str:
    return TABLE_NOTE.format(epoch=epoch_reported(settings))


def markdown(suite: dict, tables: list[Table], hardware: list[str], summary: Summary | None = None) -> str:
    body = []
    for table in tables:
        body += [f"## {table.dataset} / {table.scenario}", "", markdown_table(table)]
        if table.published is not None:
            body += beside_markdown(table.published)
        body.append("")
        if table.baseline is None:
            body += [f"No ΔMTL column: the baseline method {table.asked_baseline!r} has no result in this table "
                     f"(set leaderboard.baseline to one of the suite's methods).", ""]
    if summary is not None:
        body += summary_markdown(summary)
    return page(suite, table_note(suite.get("leaderboard", {})), body, hardware)


def page(suite: dict, note: str, body: list[str], hardware: list[str]) -> str:
    """A leaderboard page: title, the suite's description, a note on what the numbers are, the tables, and a
    footer with the suite, commit, hardware and date."""
    parts = [f"# Leaderboard: {suite['name']}", ""]
    if suite.get("description"):
        parts += [suite["description"].strip(), ""]
    parts += [note, "", *body, footer(suite, hardware), ""]
    return "\n".join(parts)


def footer(suite: dict, hardware: list[str]) -> str:
    """The suite, epoch reported, commit, hardware and date a leaderboard came from."""
    settings = suite.get("leaderboard", {})
    select = settings.get("select", "last") + (f" by {settings.get('select_by', 'delta_mtl')}"
                                                if settings.get("select") == "best_val" else "")
    return (f"Suite `{suite.get('path', suite['name'])}` · epoch: {select} · commit {commit()} · hardware: "
            f"{'; '.join(hardware)} · python {platform.python_version()} · {date.today().isoformat()}")


def csv(tables: list[Table]) -> pd.DataFrame:
    frames = []
    for table in tables:
        rows = table.rows.copy()
        if table.expected_seeds is not None:
            rows.insert(rows.columns.get_loc("seeds") + 1, "seeds_asked", table.expected_seeds)
        rows.insert(0, "scenario", table.scenario)
        rows.insert(0, "dataset", table.dataset)
        rows.index.name = "method"
        frames.append(rows.reset_index())
    return pd.concat(frames, ignore_index=True)


def output_paths(out: Path) -> tuple[Path, Path]:
    """``out``.md and ``out``.csv: the suffixes are added to the name (a suite ``tiny.v2`` keeps its ``.v2``);
    an ``out`` given as ``x.md`` or ``x.csv`` names the pair ``x``."""
    stem = out.with_suffix("") if out.suffix in (".md", ".csv") else out
    return stem.with_name(stem.name + ".md"), stem.with_name(stem.name + ".csv")


def write(out: Path, text: str, table: pd.DataFrame) -> tuple[Path, Path]:
    """Both files written atomically (a kill while writing leaves the previous leaderboard)."""
    out.parent.mkdir(parents=True, exist_ok=True)
    md, csv_path = output_paths(out)
    write_text_atomic(md, text)
    return md, write_csv(csv_path, table)


def write_csv(path: Path, table: pd.DataFrame) -> Path:
    write_text_atomic(path, table.to_csv(index=False, float_format="%.6g"))
    return path
