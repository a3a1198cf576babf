"""Leaderboards as the papers print them: Markdown (and CSV with every number) per dataset and scenario."""
from __future__ import annotations

import math
import platform
import subprocess
from datetime import date
from pathlib import Path

import pandas as pd

from .aggregate import Table

ARROW = {True: "↑", False: "↓"}


def fmt(mean: float, std: float) -> str:
    digits = 2 if abs(mean) >= 10 else 4
    text = f"{mean:.{digits}f}"
    return text if math.isnan(std) else f"{text} ± {std:.{digits}f}"


def best(values: pd.Series, higher_is_better: bool) -> str | None:
    values = values.dropna()
    if len(values) < 2:
        return None
    return values.idxmax() if higher_is_better else values.idxmin()


def markdown_table(table: Table) -> str:
    header = ["method"] + [f"{t} {m} {ARROW[table.higher_is_better[(t, m)]]}" for t, m in table.columns]
    if table.baseline:
        header.append(f"ΔMTL % vs {table.baseline} ↑")
    header += ["seeds", "params"]
    winners = {(t, m): best(table.rows[f"{t}/{m}/mean"], table.higher_is_better[(t, m)]) for t, m in table.columns}
    if table.baseline:
        winners[("delta", "")] = best(table.rows["delta_mean"], True)
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
        cells += [str(int(row["seeds"])), row["params"]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


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
        rows.insert(0, "scenario", table.scenario)
        rows.insert(0, "dataset", table.dataset)
        rows.index.name = "method"
        frames.append(rows.reset_index())
    return pd.concat(frames, ignore_index=True)


def write(out: Path, text: str, table: pd.DataFrame) -> tuple[Path, Path]:
    out.parent.mkdir(parents=True, exist_ok=True)
    md, csv_path = out.with_suffix(".md"), out.with_suffix(".csv")
    md.write_text(text)
    table.to_csv(csv_path, index=False, float_format="%.6g")
    return md, csv_path
