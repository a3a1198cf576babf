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

ARROW = {True: "↑", False: "↓"}


def fmt(mean: float, std: float) -> str:
    digits = 2 if abs(mean) >= 10 else 4
    text = f"{mean:.{digits}f}"
    return text if math.isnan(std) else f"{text} ± {std:.{digits}f}"


def best(values: pd.Series, higher_is_better: bool, eligible: list[str] | None = None) -> str | None:
    """The best row among ``eligible`` (default: all); none when fewer than two rows compete."""
    values = values.dropna()
    if eligible is not None:
        values = values[values.index.isin(eligible)]
    if len(values) < 2:
        return None
    return values.idxmax() if higher_is_better else values.idxmin()


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


def markdown_table(table: Table) -> str:
    header = ["method"] + [f"{t} {m} {ARROW[table.higher_is_better[(t, m)]]}" for t, m in table.columns]
    if table.baseline:
        header.append(f"ΔMTL % vs {table.baseline} ↑")
    header += ["seeds", "params"]
    eligible = [method for method in table.rows.index if table.complete(method)]
    winners = {(t, m): best(table.rows[f"{t}/{m}/mean"], table.higher_is_better[(t, m)], eligible)
               for t, m in table.columns}
    if table.baseline:
        winners[("delta", "")] = best(table.rows["delta_mean"], True, eligible)
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for method, row in table.rows.iterrows():
        cells = [method]
        for t, m in table.columns:
            cell = fmt(row[f"{t}/{m}/mean"], row[f"{t}/{m}/std"])
            cells.append(f"**{cell}**" if winners[(t, m)] == method else cell)
        if table.baseline:
            spread = "" if math.isnan(row["delta_std"]) else f" ± {row['delta_std']:.2f}"
            cell = f"{round(row['delta_mean'], 2) + 0.0:+.2f}{spread}"  # + 0.0 turns -0.00 into +0.00
            cells.append(f"**{cell}**" if winners[("delta", "")] == method else cell)
        cells += [seeds_cell(table, method, int(row["seeds"])), row["params"]]
        lines.append("| " + " | ".join(cells) + " |")
    absent = [method for method in table.missing if method not in table.rows.index]
    lines += [f"| {method} | " + " | ".join("—" for _ in header[1:-2]) + f" | 0/{table.expected_seeds} seeds | |"
              for method in absent]
    return "\n".join(lines + missing_note(table))


def commit() -> str:
    try:
        sha = subprocess.run(["git", "rev-parse", "--short", "HEAD"], capture_output=True, text=True,
                             check=True).stdout.strip()
        dirty = subprocess.run(["git", "status", "--porcelain", "--untracked-files=no"], capture_output=True,
                               text=True).stdout.strip()
        return sha + ("-dirty" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def markdown(suite: dict, tables: list[Table], hardware: list[str]) -> str:
    body = []
    for table in tables:
        body += [f"## {table.dataset} / {table.scenario}", "", markdown_table(table), ""]
        if table.baseline is None:
            body += [f"No ΔMTL column: the baseline method {table.asked_baseline!r} has no result in this table "
                     f"(set leaderboard.baseline to one of the suite's methods).", ""]
    return page(suite, "Test-split metrics of the last epoch, mean ± std over seeds; best in bold. "
                       "ΔMTL: paper 003 Eq. 7 in percent (README, \"Metrics\"). params: the paper's (suite's) "
                       "hyperparameters, or tuned on the validation split by `mtlbench tune`.", body, hardware)


def page(suite: dict, note: str, body: list[str], hardware: list[str]) -> str:
    """A leaderboard page: title, the suite's description, a note on what the numbers are, the tables, and a
    footer with the suite, commit, hardware and date."""
    parts = [f"# Leaderboard: {suite['name']}", ""]
    if suite.get("description"):
        parts += [suite["description"].strip(), ""]
    parts += [note, "", *body]
    parts += [f"Suite `{suite.get('path', suite['name'])}` · commit {commit()} · hardware: {'; '.join(hardware)} · "
              f"python {platform.python_version()} · {date.today().isoformat()}", ""]
    return "\n".join(parts)


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
    write_text_atomic(csv_path, table.to_csv(index=False, float_format="%.6g"))
    return md, csv_path
