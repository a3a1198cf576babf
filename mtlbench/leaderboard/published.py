"""Numbers a paper published, beside ours (``leaderboard.published`` in the suite).

Each entry names its source and table, the (dataset, scenario) table it belongs to (default: every one) and rows
of values per method: ``TASK/METRIC`` in mtlbench's units (mIoU as a fraction, not percent), ``delta_mtl``
(percent, against the paper's own baseline) or ``acc_mtl`` (Yun and Cho 2023 Eq. 8, with leaderboard.acc_mtl). Below each leaderboard table, one row per (method, value): ours
(mean ± std over seeds), the paper's, ours minus the paper's, and a note.

A paper's ΔMTL is comparable with ours only if it is against the same baseline over the same metrics: an entry
states them (``baseline``, ``metrics``), and a ``delta_mtl`` row whose table differs in either shows no difference
and says why (one whose entry states neither says that it is unchecked). ``notes`` per row say how the paper's
setting of that row differs from the suite's (a schedule, the epoch reported).
"""
from __future__ import annotations

import functools
import math
from typing import Any, Callable

import pandas as pd

from . import cells
from .aggregate import LeaderboardError, Table

DELTA_KEY = "delta_mtl"
ACC_KEY = "acc_mtl"


Lookup = Callable[[str, str, str], "tuple[float, float]"]  # (method, key, field) -> our (mean, std)


def entry_for(dataset: str, scenario: str | None, published: list[dict[str, Any]]
              ) -> tuple[int, dict[str, Any]] | None:
    """The published entry (and its index in the suite) of a table: the most specific that matches."""
    matches = [(i, p) for i, p in enumerate(published) if p["dataset"] in (None, dataset)
               and p["scenario"] in (None, scenario)]
    if not matches:
        return None
    return max(matches, key=lambda match: sum(match[1][key] is not None for key in ("dataset", "scenario")))


Check = Callable[[str], "tuple[bool, str]"]  # key -> (comparable with ours, why not / what is unchecked)


def comparison(found: tuple[int, dict[str, Any]], lookup: Lookup,
               check: Check = lambda key: (True, "")) -> pd.DataFrame:
    """Rows (method, value, ours, ours_std, paper, difference, comparable, note) of a published entry; ``lookup``
    gives our number of (method, key) and raises LeaderboardError naming the field when the results cannot show
    it; ``check(key)`` says whether a value can be set against ours: a row that cannot has no difference, and
    its note (after the entry's note for the row) says why."""
    index, entry = found
    rows = []
    for method, values in entry["rows"].items():
        for key, paper in values.items():
            ours, spread = lookup(method, key, f"leaderboard.published[{index}].rows.{method}.{key}")
            comparable, why = check(key)
            note = "; ".join(text for text in (entry["notes"].get(method, ""), why) if text)
            rows.append({"method": method, "value": key, "ours": ours, "ours_std": spread, "paper": paper,
                         "difference": ours - paper if comparable else math.nan, "comparable": comparable,
                         "note": note})
    frame = pd.DataFrame(rows, columns=["method", "value", "ours", "ours_std", "paper", "difference", "comparable",
                                        "note"])
    frame.attrs.update(source=entry["source"], table=entry["table"], note=entry["note"])
    return frame


def delta_comparability(table: Table, entry: dict[str, Any], key: str) -> tuple[bool, str]:
    """Whether the paper's ΔMTL can stand beside this table's (the same baseline over the same metrics), or its
    Acc_MTL (the same metrics; Eq. 8 has no baseline)."""
    if key == ACC_KEY:
        return metrics_comparability(table, entry, "Acc_MTL", f"ours is over {metric_list(table.delta_metrics)}")
    if key != DELTA_KEY or table.baseline is None:
        return True, ""
    ours = f"ours is against {table.baseline} over {metric_list(table.delta_metrics)}"
    if entry["metrics"] == "unstated":
        return False, f"not comparable: the paper does not state which metrics its ΔMTL averages ({ours})"
    if entry["baseline"] is None or entry["metrics"] is None:
        return True, f"comparability unchecked: the entry states no baseline and metrics of the paper's ΔMTL ({ours})"
    paper = {task: list(metrics) for task, metrics in entry["metrics"].items()}
    if entry["baseline"] != table.baseline or paper != table.delta_metrics:
        return False, f"not comparable: the paper's ΔMTL is against {entry['baseline']} over {metric_list(paper)}, {ours}"
    return True, ""


def metrics_comparability(table: Table, entry: dict[str, Any], score: str, ours: str) -> tuple[bool, str]:
    if entry["metrics"] == "unstated":
        return False, f"not comparable: the paper does not state which metrics its {score} averages ({ours})"
    if entry["metrics"] is None:
        return True, f"comparability unchecked: the entry states no metrics of the paper's {score} ({ours})"
    paper = {task: list(metrics) for task, metrics in entry["metrics"].items()}
    if paper != table.delta_metrics:
        return False, f"not comparable: the paper's {score} is over {metric_list(paper)}, {ours}"
    return True, ""


def metric_list(metrics: dict[str, list[str]]) -> str:
    return ", ".join(f"{task} {metric}" for task, names in metrics.items() for metric in names)


def beside(table: Table, published: list[dict[str, Any]]) -> pd.DataFrame | None:
    """The paper's numbers for a per-table leaderboard's table (None when the suite gives none)."""
    found = entry_for(table.dataset, table.scenario, published)
    if found is None:
        return None
    return comparison(found, functools.partial(ours_of, table), functools.partial(delta_comparability, table, found[1]))


def ours_of(table: Table, method: str, key: str, field: str) -> tuple[float, float]:
    """Our mean and std of a published value (NaN when the method has no finished seed)."""
    if method not in table.rows.index and method not in table.missing:
        raise LeaderboardError(f"{field.rsplit('.', 1)[0]}: {method!r} is not a method of {table.dataset} / "
                               f"{table.scenario} (it has {', '.join(table.rows.index)}); use the suite's method names")
    if key == DELTA_KEY:
        if table.baseline is None:
            raise LeaderboardError(f"{field}: the table has no ΔMTL column (its baseline has no result)")
        columns = ("delta_mean", "delta_std")
    elif key == ACC_KEY:
        if not table.acc:
            raise LeaderboardError(f"{field}: the table has no Acc_MTL column; set leaderboard.acc_mtl: true")
        columns = ("acc_mean", "acc_std")
    else:
        task, _, metric = key.partition("/")
        if (task, metric) not in table.columns:
            shown = ", ".join(f"{t}/{m}" for t, m in table.columns)
            raise LeaderboardError(f"{field}: not a value of this table; give delta_mtl, acc_mtl or one of {shown} (add "
                                   f"others to leaderboard.metrics)")
        columns = (f"{key}/mean", f"{key}/std")
    if method not in table.rows.index:
        return math.nan, math.nan
    return float(table.rows.loc[method, columns[0]]), float(table.rows.loc[method, columns[1]])


def frame_lookup(rows: dict[str, dict[str, float]], what: str) -> Lookup:
    """A lookup over a track's own rows: row name -> {key: value, key + "_std": spread}."""
    def lookup(method: str, key: str, field: str) -> tuple[float, float]:
        if method not in rows:
            raise LeaderboardError(f"{field.rsplit('.', 1)[0]}: {method!r} is not a row of {what} (it has "
                                   f"{', '.join(rows)})")
        if key not in rows[method]:
            keys = ", ".join(k for k in rows[method] if not k.endswith("_std"))
            raise LeaderboardError(f"{field}: not a value of {what}; give one of {keys}")
        return float(rows[method][key]), float(rows[method].get(key + "_std", math.nan))

    return lookup


def beside_markdown(frame: pd.DataFrame) -> list[str]:
    lines = ["", f"Beside {frame.attrs['source']}, {frame.attrs['table']}"
             + (f" ({frame.attrs['note']})" if frame.attrs["note"] else "") + ":", "",
             "| method | value | ours | paper | ours − paper | note |", "|---|---|---|---|---|---|"]
    for row in frame.itertuples(index=False):
        lines.append(f"| {row.method} | {row.value} | {number(row.ours, row.ours_std)} | {number(row.paper)} | "
                     f"{difference(row)} | {row.note} |")
    return lines


def difference(row: Any) -> str:
    """Ours minus the paper's; "—" where the two are not comparable (the note says why)."""
    return number(row.difference, signed=True) if row.comparable else "—"


def number(value: float, std: float = math.nan, signed: bool = False) -> str:
    return "— (no result)" if math.isnan(value) else cells.number(value, std, signed=signed)


__all__ = ["beside", "beside_markdown", "comparison", "entry_for", "frame_lookup"]
