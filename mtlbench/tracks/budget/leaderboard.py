"""Budget-track leaderboards like Sun et al. 2023 Tables 1-3: one table per (dataset, cost setting), a row per
allocator with its label counts, Δ_i per task and Δ_T (Eq. 9, in percent) as mean ± std over the repeats, and
the test metrics themselves (App. C); then TABA's estimates (I_i, β_i, the relatedness of Table 5) and its
compute as a multiple of one MTL retraining.

Δ of one repeat compares its test metrics with the seed-set model's, averaged over the seed-set jobs (one per
seed); each task's primary metric enters (Jaccard, mIoU, L1, ... as Sec. 5.2).
"""
from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from ...files import as_float
from ...metrics import delta_t
from ...leaderboard.published import beside_markdown, comparison, entry_for, frame_lookup
from ...leaderboard.cells import mean_std, number
from ...leaderboard.render import ARROW
from ...leaderboard.stats import power_note, significantly_best
from ...registry import build
from .allocators import ALLOCATORS


def mean_metrics(results: list[dict[str, Any]], tasks: list[str]) -> dict[str, dict[str, float]]:
    return {t: {m: float(np.mean([r["test"][t][m] for r in results])) for m in results[0]["test"][t]} for t in tasks}


def deltas(result: dict[str, Any], reference: dict[str, dict[str, float]], tasks: list[str]) -> dict[str, float]:
    """Δ_i of every task and Δ_T of one retraining against the seed-set reference."""
    primary = {t: result["primary"][t] for t in tasks}
    out = {t: delta_t({t: result["test"][t]}, reference, result["directions"], {t: primary[t]}) for t in tasks}
    out["T"] = delta_t(result["test"], reference, result["directions"], primary)
    return out


def setting_rows(setting: dict[str, Any], by_id: dict[str, dict[str, Any]], tasks: list[str],
                 reference: dict[str, dict[str, float]]) -> list[dict[str, Any]]:
    rows = []
    for row in setting["rows"]:
        results = [by_id[i] for i in row["jobs"] if i in by_id]
        if not results:
            continue
        new_labels = results[0].get("new_labels") or row["new_labels"]
        record = {"allocator": row["allocator"], "repeats": len(results),
                  **{f"N_{t}": new_labels[t] for t in tasks},
                  "spent": build(ALLOCATORS, row["spec"]).spent(setting["costs"], new_labels)}  # derived labels: free
        per_repeat = [deltas(r, reference, tasks) for r in results]
        record["runs"] = {r["seed"]: d["T"] for r, d in zip(results, per_repeat)}  # Δ_T by repeat, for the test
        for key in [*tasks, "T"]:
            record[f"delta_{key}"], record[f"delta_{key}_std"] = mean_std([d[key] for d in per_repeat])
        for t in tasks:
            metric = results[0]["primary"][t]
            record[f"{t}/{metric}"], record[f"{t}/{metric}_std"] = mean_std([r["test"][t][metric] for r in results])
        rows.append(record)
    return rows


def estimate_cell(value: float, spec: str) -> str:
    """A value as the table prints it; an undefined one (no usable probe step) as —, never as nan."""
    return format(value, spec) if math.isfinite(value) else "—"


def markdown_setting(dataset: str, setting: dict[str, Any], rows: list[dict[str, Any]], tasks: list[str],
                     seed_metrics: dict[str, dict[str, float]], primary: dict[str, str],
                     directions: dict[str, dict[str, bool]]) -> list[str]:
    costs = " : ".join(str(setting["costs"][t]) for t in tasks)
    head = ["allocator", *[f"N {t}" for t in tasks], "spent", *[f"Δ {t} % ↑" for t in tasks], "Δ_T % ↑",
            *[f"{t} {primary[t]} {ARROW[directions[t][primary[t]]]}" for t in tasks], "repeats"]
    lines = [f"### {dataset}: c {' : '.join(tasks)} = {costs}, B = {setting['budget']}", "",
             "| " + " | ".join(head) + " |", "|" + "---|" * len(head),
             "| Initial seed set | " + " | ".join("0" for _ in tasks) + " | 0 | " + " | ".join("" for _ in tasks)
             + " |  | " + " | ".join(f"{seed_metrics[t][primary[t]]:.4f}" for t in tasks) + " |  |"]
    bold = significantly_best({r["allocator"]: pd.Series(r["runs"]) for r in rows}, True,
                               [r["allocator"] for r in rows])
    for r in rows:
        delta_total = number(r["delta_T"], r["delta_T_std"], digits=1, signed=True)
        cells = [r["allocator"], *[str(r[f"N_{t}"]) for t in tasks], str(r["spent"]),
                 *[number(r[f"delta_{t}"], r[f"delta_{t}_std"], digits=1, signed=True) for t in tasks],
                 f"**{delta_total}**" if r["allocator"] in bold else delta_total,
                 *[number(r[f"{t}/{primary[t]}"], r[f"{t}/{primary[t]}_std"]) for t in tasks], str(r["repeats"])]
        lines.append("| " + " | ".join(cells) + " |")
    if rows:
        lines += power_note(max(len(r["runs"]) for r in rows), len(rows) - 1, "repeat")
    return lines + [""]


def markdown_estimates(table: dict[str, Any], by_id: dict[str, dict[str, Any]], tasks: list[str],
                       retrain_seconds: float) -> list[str]:
    """TABA's I_i, β_i, the relatedness matrix (like Table 5) and TABA's compute."""
    probes = [by_id[i] for i in table["estimates"].get("probe", []) if i in by_id]
    reductions = {t: [by_id[i] for i in ids if i in by_id]
                  for t, ids in table["estimates"].get("reduction", {}).items()}
    if not probes and not any(reductions.values()):
        return []
    lines = ["### TABA's estimates on the seed set", "",
             "| task | I_i (Eq. 3, 5) | I_i (TAG) | β_i (Eq. 7) | Δs_i | fit L1 |", "|---|---|---|---|---|---|"]
    for t in tasks:
        cells = [t]
        for key in ("informativeness", "tag_informativeness"):
            cells.append(estimate_cell(np.mean([as_float(p["estimate"][key][t]) for p in probes]), ".3f") if probes else "")
        fits = [r["estimate"] for r in reductions.get(t, [])]
        cells += ([f"{np.mean([f['beta'] for f in fits]):.5f}", f"{np.mean([f['delta_s'] for f in fits]):.3g}",
                   f"{np.mean([f['fit_l1'] for f in fits]):.3g}"] if fits else ["", "", ""])
        lines.append("| " + " | ".join(cells) + " |")
    lines.append("")
    if probes:
        lines += ["Relatedness I_{i→j} (row i gives to column j; Eq. 5, mean over probe steps):", "",
                  "| i \\ j | " + " | ".join(tasks) + " |", "|" + "---|" * (len(tasks) + 1)]
        for i in tasks:
            means = [np.mean([as_float(p["estimate"]["relatedness"][i][j]) for p in probes]) for j in tasks]
            lines.append(f"| {i} | " + " | ".join(estimate_cell(m, "+.2f") for m in means) + " |")
        lines.append("")
    seconds = sum(p["train_seconds"] for p in probes)
    seconds += sum(r["train_seconds"] for rs in reductions.values() for r in rs)
    if retrain_seconds > 0:
        lines += [f"TABA's compute (probe job{'s' if len(probes) > 1 else ''} incl. probes, "
                  f"{sum(len(rs) for rs in reductions.values())} reduction-rate jobs): {seconds:.0f} s = "
                  f"{seconds / retrain_seconds:.1f} x one MTL retraining ({retrain_seconds:.1f} s, mean of this "
                  f"table's retrainings).", ""]
    return lines


def budget_report(summary: dict[str, Any], results: list[dict[str, Any]]) -> tuple[list[str], pd.DataFrame,
                                                                                   pd.DataFrame | None]:
    """Markdown lines and a CSV frame for a budget suite's tables, and the papers' numbers beside ours (keys:
    ``delta_TASK``, ``delta_T`` and ``TASK/METRIC``; rows: the allocators as the table names them)."""
    by_id = {r["job_id"]: r for r in results}
    tasks = summary["tasks"]
    lines, frames, published = [], [], []
    for table in summary["budget"]["tables"]:
        seed_results = [by_id[i] for i in table["seed_jobs"] if i in by_id]
        if not seed_results:
            lines += [f"## {table['dataset']}", "", "(no finished seed-set job yet: Δ needs it)", ""]
            continue
        reference = mean_metrics(seed_results, tasks)
        primary, directions = seed_results[0]["primary"], seed_results[0]["directions"]
        lines += [f"## {table['dataset']}, {table['seed_labels']} seed labels per task", ""]
        retrain = []
        for setting in table["settings"]:
            rows = setting_rows(setting, by_id, tasks, reference)
            lines += markdown_setting(table["dataset"], setting, rows, tasks, reference, primary, directions)
            found = entry_for(table["dataset"], setting["label"], summary["leaderboard"]["published"])
            if found is not None:
                compared = comparison(found, frame_lookup({r["allocator"]: r for r in rows},
                                                          f"{table['dataset']} costs {setting['label']}"))
                lines += [*beside_markdown(compared)[1:], ""]
                published.append(compared.assign(dataset=table["dataset"], costs=setting["label"]))
            retrain += [by_id[i]["train_seconds"] for row in setting["rows"] for i in row["jobs"] if i in by_id]
            frame = pd.DataFrame([{k: v for k, v in r.items() if k != "runs"} for r in rows])
            frame.insert(0, "budget", setting["budget"])
            frame.insert(0, "costs", setting["label"])
            frame.insert(0, "dataset", table["dataset"])
            frames.append(frame)
        lines += markdown_estimates(table, by_id, tasks, float(np.mean(retrain)) if retrain else 0.0)
    return (lines, pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(),
            pd.concat(published, ignore_index=True) if published else None)
