"""Leaderboards as the papers print them: Markdown (and CSV with every number) per dataset and scenario."""
from __future__ import annotations

import math
import platform
from dataclasses import dataclass
from datetime import date
from pathlib import Path
from typing import Callable

import pandas as pd

from ..files import write_text_atomic
from ..provenance import Provenance
from .aggregate import ACC, DELTA, Table
from .costs import COST_COLUMNS
from .cells import number
from .published import beside_markdown
from .summary import Summary, summary_markdown
from .stats import CONFIDENCE, power_note, significantly_best

ARROW = {True: "↑", False: "↓"}
ENTERS = "†"  # after a column's arrow: the metric enters ΔMTL
NO_BETTER = "‡"  # after a cell: some seed is no better than the constant prediction
CONSTANT_ROW = "(constant)"


def seeds_cell(table: Table, method: str, finished: int) -> str:
    """``3``, or ``2/3 seeds`` where the method lacks seeds the suite asks for."""
    if table.expected_seeds is not None and not table.complete(method):
        return f"{finished}/{table.expected_seeds} seeds"
    return str(finished)


def missing_note(table: Table) -> list[str]:
    """Below a table with missing seeds: which jobs each incomplete method lacks."""
    if not table.missing:
        return []
    return ["Fewer seeds than the suite asks for (failed or not run yet; `mtlbench status` says which): their means "
            "are over the seeds shown, and they are never bold. "
            + "; ".join(f"{method}: missing job{'s' if len(ids) > 1 else ''} {', '.join(ids)}"
                        for method, ids in table.missing.items()) + "."]


def delta_cell(row: pd.Series) -> str:
    """ΔMTL mean ± std and the 95% interval of its paired difference from the baseline (none for the baseline)."""
    interval = "" if math.isnan(row["delta_ci_low"]) else \
        f" [{number(row['delta_ci_low'], digits=2, signed=True)}, {number(row['delta_ci_high'], digits=2, signed=True)}]"
    return number(row["delta_mean"], row["delta_std"], digits=2, signed=True) + interval


def acc_cell(row: pd.Series) -> str:
    """Acc_MTL mean ± std; "— (undefined)" where a seed's metric is not positive (Eq. 8 is a geometric mean)."""
    return "— (undefined)" if math.isnan(row["acc_mean"]) else number(row["acc_mean"], row["acc_std"], digits=4)


ACC_HEADER = "Acc_MTL ↑"


def metric_cell(table: Table, method: str, row: pd.Series, column: tuple[str, str]) -> str:
    """mean ± std of a metric, marked when some seed is no better than the constant prediction."""
    t, m = column
    mark = f" {NO_BETTER}" if table.below_constant.get(column, {}).get(method) else ""
    return number(row[f"{t}/{m}/mean"], row[f"{t}/{m}/std"]) + mark


def method_cell(table: Table, method: str) -> str:
    """The method's name, and the seeds whose training diverged."""
    seeds = table.diverged.get(method)
    return method + (f" (diverged: seed{'s' if len(seeds) > 1 else ''} {', '.join(map(str, seeds))})" if seeds else "")


def column_header(table: Table, column: tuple[str, str]) -> str:
    t, m = column
    return f"{t} {m} {ARROW[table.higher_is_better[column]]}{ENTERS if table.entering(column) else ''}"


def delta_header(table: Table) -> str:
    return f"ΔMTL % vs {table.baseline} ↑ [{CONFIDENCE:.0%} CI of the paired difference]"


def p_cell(p: float) -> str:
    return "" if math.isnan(p) else f"{p:.3f}"


def bold_sets(table: Table) -> dict[tuple[str, str], set[str]]:
    """Per column: the best method, when the paired test finds it better than every other eligible one."""
    bold = {column: significantly_best(table.by_seed.get(column, {}), table.higher_is_better[column],
                                       table.eligible(column)) for column in table.columns}
    if table.baseline:
        eligible = [m for m in table.rows.index if table.complete(m) and not table.diverged.get(m)]
        bold[DELTA] = significantly_best(table.by_seed.get(DELTA, {}), True, eligible)
    if table.acc:
        eligible = [m for m in table.rows.index if table.complete(m) and not table.diverged.get(m)
                    and not math.isnan(table.rows.loc[m, "acc_mean"])]
        bold[ACC] = significantly_best(table.by_seed[ACC], True, eligible)
    return bold


def table_power_note(table: Table) -> list[str]:
    return power_note(table.expected_seeds or int(table.rows["seeds"].max()), len(table.rows) - 1)


def delta_note(table: Table) -> str:
    """Which metrics enter ΔMTL, and what its interval and p-value are."""
    metrics = ", ".join(f"{t} {m}" for t in table.tasks for m in table.delta_metrics[t])
    acc = (" Acc_MTL: Yun and Cho 2023 Eq. 8, the geometric mean over the same metrics of each metric raised to "
           "+1 (higher is better) or −1, needing no baseline." if table.acc else "")
    if not table.baseline:
        return f"ΔMTL would average {metrics} (columns marked {ENTERS}).{acc}"
    seeds = table.expected_seeds or int(table.rows["seeds"].max())
    return (f"ΔMTL against {table.baseline} over {metrics} (columns marked {ENTERS}); its interval is the "
            f"{CONFIDENCE:.0%} Student t interval over {seeds} seeds of each method's paired per-seed difference from "
            f"{table.baseline}, and p the exact sign-flip test of the same differences, Holm-adjusted over "
            f"{len(table.rows) - 1} comparisons.{acc}")


def degenerate_notes(table: Table) -> list[str]:
    """What the marks of diverged runs and of cells no better than the constant prediction mean."""
    notes = []
    if table.diverged:
        notes.append("diverged: the run's last-epoch training loss of some task is over 10 times its first step's "
                     "(it kept finite numbers, but they mean nothing); such rows are never bold.")
    if any(table.below_constant.values()):
        notes.append(f"{NO_BETTER}: some seed scores no better than a constant prediction of the training targets "
                     f"(row {CONSTANT_ROW}: their mean, the majority class for segmentation); such cells are never "
                     f"bold.")
    return notes


def table_notes(table: Table) -> list[str]:
    """Every line that belongs under a table, as plain text: ΔMTL's definition, the marks, missing seeds and
    what the seeds can show (Markdown lists, HTML paragraphs and LaTeX captions carry the same)."""
    costs = table.costs.notes() if any(table.shows(g) for g in COST_COLUMNS) else \
        [UNMEASURED] if table.costs is not None and set(COST_COLUMNS) & set(table.shown) else []
    return [delta_note(table), *degenerate_notes(table), *missing_note(table), *costs, *pseudo_note(table),
            *(line for line in table_power_note(table) if line)]


def pseudo_note(table: Table) -> list[str]:
    """Which share of each task's training targets a teacher gave, for the methods trained on pseudo-labels."""
    if not table.pseudo:
        return []
    rows = "; ".join(f"{method}: " + ", ".join(f"{task} {images:.0%} of the images ({pixels:.0%} of their pixels)"
                                               for task, (images, pixels) in table.pseudo[method].items())
                     for method in table.rows.index if method in table.pseudo)
    return [f"Pseudo-labels (training targets a single-task teacher gave where the scenario has no label; a pixel "
            f"it was not sure of is left unlabelled): {rows}."]


def constant_cells(table: Table) -> list[str]:
    return [number(table.constant[c]) if c in table.constant else "—" for c in table.columns]


UNMEASURED = ("No cost columns: none of these results measured what its job cost (they were written before mtlbench "
              "measured costs); rerun them with --force to measure it.")
COST_HEADERS = {"time": "time ×", "memory": "memory ×", "flops": "GFLOPs/step"}


def cost_cell(table: Table, method: str, group: str) -> str:
    """A ratio to the baseline (``2.80×``) or GFLOPs per step; ``—`` where nothing comparable was measured."""
    costs = table.costs
    value = costs.gflops(method) if group == "flops" else costs.ratio(
        method, "epoch_seconds" if group == "time" else "peak_bytes")
    if math.isnan(value):
        return "—"
    return f"{value:.3g}" if group == "flops" else f"{value:.2f}×"


@dataclass(frozen=True)
class Column:
    """One column of a Markdown table: its header, what kind of column it is (``metric`` columns take the
    constant prediction's row), and its cell of a method's row."""

    header: str
    kind: str
    cell: Callable[[str, pd.Series], str]


def markdown_columns(table: Table) -> list[Column]:
    """The columns the table shows (``leaderboard.columns``), bold where the paired test backs it."""
    bold = bold_sets(table)

    def marked(text: str, column: tuple[str, str], method: str) -> str:
        return f"**{text}**" if method in bold[column] else text

    columns = [Column(column_header(table, c), "metric",
                      lambda m, row, c=c: marked(metric_cell(table, m, row, c), c, m))
               for c in table.columns] if table.shows("metrics") else []
    if table.shows("delta"):
        columns += [Column(delta_header(table), "delta", lambda m, row: marked(delta_cell(row), DELTA, m)),
                    Column(f"p vs {table.baseline} (Holm)", "p", lambda m, row: p_cell(row["p_vs_baseline"]))]
    if table.shows("acc"):
        columns.append(Column(ACC_HEADER, "acc", lambda m, row: marked(acc_cell(row), ACC, m)))
    columns += [Column(COST_HEADERS[g], g, lambda m, row, g=g: cost_cell(table, m, g))
                for g in COST_COLUMNS if table.shows(g)]
    if table.shows("seeds"):
        columns.append(Column("seeds", "seeds", lambda m, row: seeds_cell(table, m, int(row["seeds"]))))
    if table.shows("params"):
        columns.append(Column("params", "params", lambda m, row: row["params"]))
    return columns


def markdown_table(table: Table) -> str:
    columns = markdown_columns(table)
    lines = ["| " + " | ".join(["method", *(c.header for c in columns)]) + " |", "|" + "---|" * (len(columns) + 1)]
    for method, row in table.rows.iterrows():
        lines.append("| " + " | ".join([method_cell(table, method), *(c.cell(method, row) for c in columns)]) + " |")
    absent = {"seeds": f"0/{table.expected_seeds} seeds", "params": ""}
    lines += ["| " + " | ".join([method, *(absent.get(c.kind, "—") for c in columns)]) + " |"
              for method in table.missing if method not in table.rows.index]
    if table.constant and table.shows("metrics"):
        constant = iter(constant_cells(table))
        lines.append("| " + " | ".join([CONSTANT_ROW, *(next(constant) if c.kind == "metric" else "—"
                                                          for c in columns)]) + " |")
    notes = table_notes(table)
    return "\n".join(lines + [""] + [f"- {line}" for line in notes])


TABLE_NOTE = ("Test-split metrics of {epoch}, mean ± std over seeds. ΔMTL: Yun and Cho 2023 Eq. 7 in percent "
              "(docs/leaderboards.md); beside it, the 95% Student t interval of its paired per-seed difference from "
              "the baseline, and p, the exact sign-flip test of those differences, Holm-adjusted over the table's "
              "methods. Bold: the best mean of a column, only where the same paired test finds it better than every "
              "other method (Holm-adjusted, p < 0.05). params: the paper's (suite's) hyperparameters, or tuned on the "
              "validation split by `mtlbench tune`.")


def epoch_reported(settings: dict) -> str:
    """Which epoch a leaderboard reports, in words (``leaderboard.select``)."""
    if settings["select"] == "last":
        return "the last epoch"
    by = settings["select_by"]
    return ("the epoch with the best validation " + ("ΔMTL against the baseline" if by == "delta_mtl" else by)
            + " (leaderboard.select: best_val)")


def table_note(settings: dict) -> str:
    return TABLE_NOTE.format(epoch=epoch_reported(settings))


def markdown(suite: dict, tables: list[Table], provenance: Provenance, summary: Summary | None = None,
             grid: list[str] = ()) -> str:
    body = []
    for table in tables:
        body += [f"## {table.dataset} / {table.scenario}", "", markdown_table(table)]
        if table.published is not None:
            body += beside_markdown(table.published)
        body.append("")
        if table.baseline is None:
            body += [f"No ΔMTL column: the baseline method {table.asked_baseline!r} has no result in this table "
                     f"(set leaderboard.baseline to one of the suite's methods).", ""]
    body += grid
    if summary is not None:
        body += summary_markdown(summary)
    return page(suite, table_note(suite["leaderboard"]), body, provenance)


def page(suite: dict, note: str, body: list[str], provenance: Provenance) -> str:
    """A leaderboard page: title, the suite's description, a note on what the numbers are, the tables, and a
    footer with the suite, the results' commits and hardware, and the date."""
    parts = [f"# Leaderboard: {suite['name']}", ""]
    if suite.get("description"):
        parts += [suite["description"].strip(), ""]
    parts += [note, "", *body, footer(suite, provenance), ""]
    return "\n".join(parts)


def footer(suite: dict, provenance: Provenance) -> str:
    """The suite, epoch reported, the mtlbench commits and hardware its results ran on, and the date of the page."""
    settings = suite["leaderboard"]
    select = settings["select"] + (f" by {settings['select_by']}" if settings["select"] == "best_val" else "")
    return (f"Suite `{suite.get('path', suite['name'])}` · epoch: {select} · {provenance.commit_text()} · hardware: "
            f"{'; '.join(provenance.hardware)} · python {platform.python_version()} · {date.today().isoformat()}")


def csv_frame(tables: list[Table]) -> pd.DataFrame:
    """Every number of the tables; per method also the seeds that diverged and, per column, those no better than
    the constant prediction, whose values are the row ``(constant)``."""
    frames = []
    for table in tables:
        rows = table.rows.copy()
        if table.expected_seeds is not None:
            rows.insert(rows.columns.get_loc("seeds") + 1, "seeds_asked", table.expected_seeds)
        rows["diverged_seeds"] = [len(table.diverged.get(m, [])) for m in rows.index]
        for (t, m), below in table.below_constant.items():
            rows[f"{t}/{m}/below_constant_seeds"] = [len(below.get(method, [])) for method in rows.index]
        for task in dict.fromkeys(t for tasks in table.pseudo.values() for t in tasks):
            shares = [table.pseudo.get(m, {}).get(task, (math.nan, math.nan)) for m in rows.index]
            rows[f"{task}/pseudo_images"], rows[f"{task}/pseudo_pixels"] = zip(*shares)
        if table.constant:
            rows.loc[CONSTANT_ROW, [f"{t}/{m}/mean" for t, m in table.constant]] = list(table.constant.values())
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
