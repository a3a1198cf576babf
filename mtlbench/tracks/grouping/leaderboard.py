"""Grouping-track leaderboards like Standley et al. 2020: Table 4 (total test loss per selector and budget, mean ± std
over seeds), the chosen networks per budget as text (Fig. 5), Tables 1-2 (multi-task relationships from the pair and
half-size networks), the candidates' measured costs, and Fig. 4 (total loss against budget) as a PNG. The loss
tables of every seed are written next to it, in the format ``mtlbench select`` reads.
"""
from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from ...leaderboard.aggregate import LeaderboardError
from ...leaderboard.cells import mean_std, number
from ...leaderboard.published import beside_markdown, comparison, entry_for, frame_lookup
from ...leaderboard.stats import column_power_note, counted, significantly_best
from ...registry import build
from .approximations import esa_agreement, hoa_agreement
from .baselines import affinity, relative_performance
from .losses import LossFileError, LossTable, Network, write_losses
from .methods import SELECTORS, Choice, Tables, choose_per_budget
from .selection import OBJECTIVES
from .transfer import pair_correlation, transfer_gains, transferred_losses

SPLITS = ("val", "test", "esa")


def loss_of(result: dict[str, Any], split: str, task: str) -> float:
    if split == "esa":
        return result["estimate"]["val"][task]["loss"]
    return result[split][task]["loss"]


def at_lowest_validation_loss(result: dict[str, Any]) -> dict[str, Any]:
    """``leaderboard.select: best_val`` for a network: Sec. 4.2's "the network with the [lowest] validation loss
    (checked after each epoch ...) was saved", the epoch whose validation loss summed over the network's tasks is
    lowest (ties: the earliest), with the test losses recorded at it (``train.test_every_epoch``)."""
    history = result.get("history") or []
    if not history or not all("test" in record for record in history):
        raise LeaderboardError(f"leaderboard.select: best_val needs the test losses of every epoch, and job "
                               f"{result['job_id']} ran without train.test_every_epoch: set it in the suite and "
                               f"rerun, or use --select last")
    best = min(history, key=lambda record: sum(record["val"][task]["loss"] for task in record["val"]))
    return {**result, "val": best["val"], "test": best["test"], "selected_epochs": {best["stage"]: best["epoch"]}}


def unfinished(table: dict[str, Any], seed_index: int, by_id: dict[str, dict[str, Any]]) -> int:
    """How many of one seed's jobs (candidates, sener's networks, transfers) have no result yet. A seed counts
    only when it has none: selecting among part of the candidates would be another experiment."""
    rows = [*table["networks"], *table.get("sener", []), *table.get("transfer", [])]
    return sum(row["jobs"][seed_index] not in by_id for row in rows)


def unfinished_note(missing: dict[int, int], seeds: int, suite: str) -> list[str]:
    if not missing:
        return []
    listed = ", ".join(f"seed {seed} ({counted(count, 'job')})" for seed, count in missing.items())
    return [f"**{len(missing)} of {seeds} seeds left out**, their jobs not all finished: {listed}; "
            f"`mtlbench status {suite}` says why.", ""]


def seed_tables(table: dict[str, Any], tasks: list[str], seed_index: int, by_id: dict[str, dict[str, Any]],
                selection_sizes: list[float]) -> Tables:
    """One seed's loss tables from its candidate jobs, every one finished (``unfinished``)."""
    rows: dict[str, list] = {split: [] for split in SPLITS}
    for network in table["networks"]:
        result = by_id[network["jobs"][seed_index]]
        net = Network(tuple(network["tasks"]), network["size"])
        for split in SPLITS:
            if split != "esa" or result.get("estimate"):
                rows[split].append((net, network["cost"], {t: loss_of(result, split, t) for t in net.tasks}))
    tables = {split: LossTable.from_rows(tuple(tasks), rows[split]) if rows[split] else None for split in SPLITS}
    sener = [(Network(tuple(n["tasks"]), n["size"]), n["cost"], {t: loss_of(by_id[n["jobs"][seed_index]], "test", t)
                                                                for t in n["tasks"]})
             for n in table.get("sener", [])]
    return Tables(tables["val"], tables["test"], tables["esa"], tuple(selection_sizes),
                  LossTable.from_rows(tuple(tasks), sener) if sener else None,
                  transferred_losses(table.get("transfer", []), seed_index, by_id))


def choices(tables: Tables, selectors: list[dict[str, Any]], budgets: list[float],
            objective: Any) -> dict[str, dict[float, Choice | None]]:
    return {spec["name"]: choose_per_budget(build(SELECTORS, spec), tables, budgets, objective) for spec in selectors}


def uses(choice: Choice, test: LossTable) -> str:
    """The chosen networks and the tasks each predicts (its best among the chosen, Fig. 5's black edges), from the
    test losses they were chosen from."""
    rows = test.rows_of(list(choice.networks))
    losses = test.losses[rows]
    owner = losses.argmin(0)
    parts = []
    for k, network in enumerate(choice.networks):
        served = [t for j, t in enumerate(test.tasks) if owner[j] == k]
        parts.append(f"{network.name} → {', '.join(served) if served else 'nothing'}")
    return " · ".join(parts)


def cell(mean: float, std: float, bold: bool) -> str:
    text = number(mean, std, digits=4)
    return f"**{text}**" if bold else text


def seed_totals(per_seed: list[dict[str, dict[float, Choice | None]]], name: str, budget: float) -> pd.Series:
    """A selector's total test loss at a budget, indexed by seed (seeds pair: the same candidate networks)."""
    return pd.Series({i: seed[name][budget].total for i, seed in enumerate(per_seed)
                      if seed[name][budget] is not None}, dtype=float)


def table4(per_seed: list[dict[str, dict[float, Choice | None]]], names: list[str], budgets: list[float]) -> tuple[
        list[str], pd.DataFrame]:
    """Table 4 as Markdown lines and a frame; bold per budget: the lowest mean total, where the exact paired test
    over seeds (Holm-adjusted) finds it lower than every other selector's, as in every mtlbench table."""
    totals = {(name, budget): seed_totals(per_seed, name, budget) for name in names for budget in budgets}
    shown = {key: mean_std(list(values)) for key, values in totals.items() if len(values)}
    frame = pd.DataFrame.from_records(
        [{"method": name, "budget": budget, "total_test_loss": mean, "std": std, "seeds": len(totals[name, budget])}
         for (name, budget), (mean, std) in shown.items()],
        columns=["method", "budget", "total_test_loss", "std", "seeds"])
    bold = {budget: significantly_best({name: totals[name, budget] for name in names}, False, names)
            for budget in budgets}
    lines = ["| method | " + " | ".join(f"{b:g}" for b in budgets) + " |", "|---|" + "---|" * len(budgets)]
    for name in names:
        cells = [cell(*shown[name, budget], name in bold[budget]) if (name, budget) in shown else "—"
                 for budget in budgets]
        lines.append(f"| {name} | " + " | ".join(cells) + " |")
    compared = {f"{budget:g}": sum((name, budget) in shown for name in names) - 1 for budget in budgets}
    return lines + column_power_note(len(per_seed), compared), frame


def matrix_lines(tasks: tuple[str, ...], values: np.ndarray, corner: str, upper_only: bool = False) -> list[str]:
    lines = [f"| {corner} | " + " | ".join(tasks) + " | mean |", "|---|" + "---|" * (len(tasks) + 1)]
    for i, task in enumerate(tasks):
        shown = [("" if (upper_only and j <= i) or np.isnan(values[i, j]) else f"{values[i, j]:+.2f}%")
                 for j in range(len(tasks))]
        mean = np.nanmean(values[i]) if not upper_only else math.nan
        lines.append(f"| {task} | " + " | ".join(shown) + f" | {'' if math.isnan(mean) else f'{mean:+.2f}%'} |")
    if not upper_only:
        means = np.nanmean(values, 0)
        lines.append("| mean | " + " | ".join(f"{m:+.2f}%" for m in means) + f" | {np.nanmean(values):+.2f}% |")
    return lines


def agreement_lines(seeds: list[Tables]) -> list[str]:
    """How well ESA and HOA predict the trained networks (Sec. 3.3, 5), mean ± std over seeds; nothing where no seed
    has what a measure needs (early losses; networks of three or more tasks)."""
    rows = []
    for name, measure in (("ESA", lambda t: esa_agreement(t.esa, t.test) if t.esa is not None else None),
                          ("HOA", lambda t: hoa_agreement(t.c0(t.val)))):
        found = []
        for tables in seeds:
            try:
                agreement = measure(tables)
            except LossFileError:
                agreement = None
            if agreement is not None:
                found.append(agreement)
        if found:
            cells = [number(*mean_std([getattr(a, key) for a in found]), digits=3) if name == "HOA" or
                     key == "pearson_r" else "—" for key in ("pearson_r", "max_ratio_error", "overestimate")]
            rows.append(f"| {name} | {' | '.join(cells)} | {len(found)} |")
    if not rows:
        return []
    return ["### How well ESA and HOA predict (Sec. 3.3, 5)", "",
            "Pearson r between each approximation's (network, task) losses and the trained networks' (ESA: "
            "validation after the early pass against the final test loss; HOA: its predictions of the networks of "
            "three or more tasks against their validation losses), HOA's average max ratio error and how much it "
            "overestimates performance (mean of trained / predicted - 1); Standley et al. report r = 0.49, 5.2% and "
            "about 1.4% (`mtlbench select --evaluate` computes them from loss files).", "",
            "| approximation | Pearson r | max ratio error | overestimate | seeds |", "|---|---|---|---|---|",
            *rows, ""]


def relationships(seeds: list[Tables]) -> list[str]:
    """Tables 1-2, mean over the seeds (the transfer section correlates with the same means)."""
    try:
        relative = np.mean([relative_performance(tables.test, 0.5) for tables in seeds], 0)
    except LossFileError:
        return []
    tasks = seeds[0].test.tasks
    return ["Relative performance on each task (columns) when trained in a full-size pair with another (rows) "
            f"instead of alone in a half-size network, test losses, mean over {len(seeds)} seed(s) (Table 1):", "",
            *matrix_lines(tasks, relative, "trained with ↓ / on →"), "",
            "Multi-task affinity: the mean of that table and its transpose (Table 2):", "",
            *matrix_lines(tasks, affinity(relative), "", upper_only=True), ""]


def transfer_lines(seeds: list[Tables]) -> list[str]:
    """Transfer gains and affinities averaged over the seeds that have them, and their correlation with the
    multi-task affinity of the same seeds (transfer.py); nothing for a suite without ``grouping.transfer``."""
    measured = [tables for tables in seeds if tables.transfer]
    try:
        gains = np.mean([transfer_gains(t.test, t.transfer) for t in measured], 0) if measured else None
        multi = np.mean([affinity(relative_performance(t.test, 0.5)) for t in measured], 0) if measured else None
    except LossFileError:
        return []
    if gains is None:
        return []
    tasks = measured[0].test.tasks
    symmetric = (gains + gains.T) / 2
    r, p, pairs = pair_correlation(symmetric, multi)
    return ["### Transfer affinity (Table 3, Fig. 3)", "",
            "How much lower each target's (columns) test loss is when its full-size network is fine-tuned from the "
            "source's (rows) full-size single-task network than when trained from scratch, mean over "
            f"{len(measured)} seed(s):", "",
            *matrix_lines(tasks, gains, "source ↓ / target →"), "",
            "Transfer affinity: the mean of that table and its transpose (Table 3's forward and backward):", "",
            *matrix_lines(tasks, symmetric, "", upper_only=True), "",
            f"Pearson r between the transfer affinity and the multi-task affinity (Table 2, mean over the same "
            f"seeds) over {pairs} task pairs: {r:+.2f} (p = {p:.2f}); Standley et al. find -0.54 (p = 0.13) against "
            "Taskonomy's transfer affinities, one outlier removed.", ""]


def training_cost(table: dict[str, Any], by_id: dict[str, dict[str, Any]], summary: dict[str, Any]) -> list[str]:
    """What each selector needed trained, in measured CPU seconds of the candidates (one seed)."""
    seconds = {}
    for network in table["networks"]:
        result = by_id.get(network["jobs"][0])
        if result is not None:
            seconds[(tuple(network["tasks"]), network["size"])] = result["train_seconds"]
    c0 = [key for key in seconds if key[1] == 1 or (len(key[0]) == 1 and key[1] in summary["selection_sizes"])]
    full = sum(seconds[k] for k in c0)
    if not full:
        return []
    hoa = sum(seconds[k] for k in c0 if len(k[0]) <= 2)
    epochs = next(iter(by_id.values()))["config"]["train"]["epochs"]  # one schedule for every network
    esa = summary["esa_fraction"] / epochs
    return [f"Training C_0 ({len(c0)} networks) took {full:.0f} s (seed {summary['seeds'][0]}). HOA trains only "
            f"the networks of one or two tasks: {hoa:.0f} s ({100 * hoa / full:.0f}%); ESA trains each network "
            f"for {summary['esa_fraction']:g} of {epochs} epochs ({100 * esa:.1f}% of the candidates' training), "
            f"then only the chosen networks to the end.", ""]


def candidates_lines(table: dict[str, Any]) -> list[str]:
    snt = table["snt"]
    sizes: dict[float, dict[str, Any]] = {}
    for network in table["networks"]:
        sizes.setdefault(network["size"], network)
    lines = [f"1 SNT = {snt['flops'] / 1e9:.3f} GFLOPs per {table['input'][0]}x{table['input'][1]} image through the "
             f"shared encoder ({snt['params'] / 1e6:.3f} M parameters), measured. Sizes:", "",
             "| size | width | cost (SNT, measured FLOPs) | parameters (x standard) |", "|---|---|---|---|"]
    for size, network in sorted(sizes.items()):
        lines.append(f"| {size:g} | {network['width']:g} | {network['cost']:.4f} | {network['params']:.4f} |")
    return lines + [""]


def plot(frame: pd.DataFrame, names: list[str], path: Path, title: str) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    figure, axes = plt.subplots(figsize=(6.4, 4.2))
    for name in names:
        rows = frame[frame["method"] == name].sort_values("budget")
        if len(rows):
            axes.errorbar(rows["budget"], rows["total_test_loss"], yerr=rows["std"].fillna(0), marker="o",
                          capsize=2, label=name)
    axes.set_xlabel("inference budget (SNT)")
    axes.set_ylabel("total test loss (lower is better)")
    axes.set_title(title)
    axes.grid(alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=120)
    plt.close(figure)


def grouping_report(summary: dict[str, Any], results: list[dict[str, Any]], out: Path) -> tuple[
        list[str], pd.DataFrame, pd.DataFrame | None, tuple[Path, ...]]:
    """The page body, the Table 4 frame, the papers' numbers beside it (rows: selectors; keys: budgets, e.g.
    "1.5") and the plots; writes the plots and the per-seed loss tables next to ``out``."""
    grouping = summary["grouping"]
    if summary["leaderboard"]["select"] == "best_val":
        results = [at_lowest_validation_loss(r) for r in results]
    by_id = {r["job_id"]: r for r in results}
    budgets = grouping["budgets"]
    objective = build(OBJECTIVES, grouping["objective"])
    names = [spec["name"] for spec in grouping["methods"]]
    body: list[str] = []
    frames, published, images = [], [], []
    for table in grouping["tables"]:
        per_seed, first, seed_loss_tables, missing = [], None, [], {}
        for index, seed in enumerate(grouping["seeds"]):
            if count := unfinished(table, index, by_id):
                missing[seed] = count
                continue
            tables = seed_tables(table, grouping["tasks"], index, by_id, grouping["selection_sizes"])
            first = first or tables
            seed_loss_tables.append(tables)
            per_seed.append(choices(tables, grouping["methods"], budgets, objective))
            for split in SPLITS:
                loss_table = getattr(tables, split)
                if loss_table is not None:
                    write_losses(loss_table, out.parent / f"{out.name}-{table['dataset']}-seed{seed}-{split}.csv")
        if not per_seed:
            continue
        lines, frame = table4(per_seed, names, budgets)
        found = entry_for(table["dataset"], None, summary["leaderboard"]["published"])
        if found is not None:
            compared = comparison(found, frame_lookup(budget_rows(frame), f"{table['dataset']}'s Table 4"))
            lines += beside_markdown(compared)
            published.append(compared.assign(dataset=table["dataset"]))
        frame.insert(0, "dataset", table["dataset"])
        frames.append(frame)
        image = out.parent / f"{out.name}-{table['dataset']}.png"
        plot(frame, names, image, f"{summary['name']}: {table['dataset']}")
        images.append(image)
        body += [f"## {table['dataset']}: total test loss per inference budget (Table 4)", "",
                 f"{len(per_seed)} seed(s); the objective: {grouping['objective']['name']}.", "",
                 *unfinished_note(missing, len(grouping["seeds"]), summary["name"]), *lines, "",
                 f"![total test loss against budget]({image.name})", "",
                 "### Chosen networks (Fig. 5), first seed", "",
                 "Each network with the tasks it predicts (its lowest test loss among the chosen); a network "
                 "name lists its tasks, @s marks a size other than 1 SNT.", ""]
        for name in names:
            if name == "random":
                continue
            test = first.sener if name == "sener" else first.test
            body.append(f"- **{name}**")
            for budget in budgets:
                choice = per_seed[0][name][budget]
                if choice is not None and choice.networks:
                    body.append(f"  - {budget:g} SNT ({choice.total:.4f}): {uses(choice, test)}")
        body += ["", *agreement_lines(seed_loss_tables), "### Task relationships", "",
                 *relationships(seed_loss_tables), *transfer_lines(seed_loss_tables),
                 "### Candidates", "",
                 *candidates_lines(table), *training_cost(table, by_id, grouping)]
    if not frames:
        raise LeaderboardError(f"{summary['name']}: no seed has finished all its jobs yet; `mtlbench status "
                               f"{summary['name']}` lists them")
    return (body, pd.concat(frames, ignore_index=True), pd.concat(published, ignore_index=True) if published
            else None, tuple(images))


def budget_rows(frame: pd.DataFrame) -> dict[str, dict[str, float]]:
    """Table 4 as published numbers address it: selector -> {budget as written, e.g. "1.5": total test loss}."""
    return {method: {**{f"{b:g}": v for b, v in zip(group["budget"], group["total_test_loss"])},
                     **{f"{b:g}_std": v for b, v in zip(group["budget"], group["std"])}}
            for method, group in frame.groupby("method", sort=False)}
