"""The scale sweep's figure, per-seed CSV and summary table (docs/committed.md, "Where the papers' effects appear"):

    python tools/scale_figure.py RESULTS OUT        # OUT.png, OUT.csv, OUT.md from RESULTS/synthrooms_scale*

Every point of the sweep is a suite `synthrooms_scale[-POINT]` whose jobs test after every epoch. For each point,
scenario, method, seed and epoch: ΔMTL (Yun and Cho 2023 Eq. 7, primary metric of each task) against the mean of
Supervised MTL's seeds at the same epoch, and the 95% Student t interval of its paired per-seed difference from
Supervised MTL, as the leaderboards compute them. Epoch e of a run at a constant learning rate is the run of e
epochs, so one 20-epoch run per seed gives the whole epochs axis; no model is chosen on these test numbers.
"""
from __future__ import annotations

import sys
from pathlib import Path

import numpy as np
import pandas as pd

from mtlbench.leaderboard.stats import t_interval
from mtlbench.metrics import delta_mtl
from mtlbench.runner import Store

BASELINE = "supervised"
COMPARED = ("mtpsl", "jtr")
TASKS = ("seg", "depth", "normal")
PRIMARY = {"seg": "mIoU ↑", "depth": "abs err ↓", "normal": "mean angle ↓"}


def point_label(suite: str, config: dict) -> str:
    data, model = config["dataset"], config["model"]
    label = f"{data['train']} images, width {model['width']:g}, {data['height']}x{data['width']}"
    return f"{label} (base)" if suite == "synthrooms_scale" else label


def steps_per_epoch(config: dict) -> int:
    return -(-config["dataset"]["train"] // config["train"]["batch_size"])


def per_epoch_rows(results: Path) -> pd.DataFrame:
    """One row per (point, scenario, method, seed, epoch) with the primary test metric of every task."""
    rows = []
    store = Store(results)
    for folder in sorted(p for p in results.glob("synthrooms_scale*") if p.is_dir()):
        for result in store.results(folder.name):
            primary = result["primary"]
            for record in result["history"]:
                if "test" not in record:
                    raise SystemExit(f"{folder.name}/{result['job_id']}: epoch {record['epoch']} was not tested "
                                     f"(the sweep's suites set train.test_every_epoch)")
                rows.append({"point": point_label(folder.name, result["config"]), "suite": folder.name,
                             "scenario": result["scenario"], "method": result["method"], "seed": result["seed"],
                             "epoch": record["epoch"], "steps": record["epoch"] * steps_per_epoch(result["config"]),
                             **{t: record["test"][t][m] for t, m in primary.items()},
                             **{f"{t}/constant": result["constant"][t][m] for t, m in primary.items()},
                             "_directions": {t: {m: result["directions"][t][m]} for t, m in primary.items()}})
    if not rows:
        raise SystemExit(f"{results}: no synthrooms_scale results; run bash tools/scale_sweep.sh first")
    return pd.DataFrame(rows)


def with_delta(frame: pd.DataFrame) -> pd.DataFrame:
    """ΔMTL of every row against the baseline's mean at its (point, scenario, epoch)."""
    tasks = [t for t in TASKS if t in frame]
    directions = frame["_directions"].iloc[0]
    chosen = {t: list(directions[t]) for t in tasks}
    deltas = []
    for _, row in frame.iterrows():
        same = frame[(frame["point"] == row["point"]) & (frame["scenario"] == row["scenario"])
                     & (frame["epoch"] == row["epoch"]) & (frame["method"] == BASELINE)]
        reference = {t: {chosen[t][0]: float(same[t].mean())} for t in tasks}
        deltas.append(delta_mtl({t: {chosen[t][0]: row[t]} for t in tasks}, reference, directions, chosen))
    return frame.assign(delta_mtl=deltas).drop(columns="_directions")


def summary(frame: pd.DataFrame) -> pd.DataFrame:
    """Per (point, scenario, method, epoch): mean ΔMTL, seeds, and the paired 95% interval against the baseline."""
    rows = []
    for (point, scenario, epoch), group in frame.groupby(["point", "scenario", "epoch"]):
        base = group[group["method"] == BASELINE].set_index("seed")["delta_mtl"]
        for method, runs in group.groupby("method"):
            runs = runs.set_index("seed")["delta_mtl"]
            common = runs.index.intersection(base.index)
            low, high = t_interval((runs[common] - base[common]).to_numpy()) if method != BASELINE else (np.nan,) * 2
            rows.append({"point": point, "scenario": scenario, "method": method, "epoch": epoch,
                         "steps": int(group["steps"].iloc[0]), "seeds": len(runs), "delta_mtl": runs.mean(),
                         "ci_low": low, "ci_high": high})
    return pd.DataFrame(rows)


def markdown(table: pd.DataFrame) -> str:
    """Each point's last epoch and, for the base point, epochs 5, 10 and 20: ΔMTL [95% interval] per scenario."""
    chosen = []
    for point, group in table.groupby("point", sort=False):
        epochs = sorted(group["epoch"].unique())
        keep = [e for e in (5, 10, 20) if e in epochs] if "(base)" in point else [epochs[-1]]
        chosen.append(group[group["epoch"].isin(keep)])
    picked = pd.concat(chosen)
    scenarios = sorted(picked["scenario"].unique())
    lines = ["| point | epochs (steps) | " + " | ".join(f"{m} {s}" for s in scenarios for m in COMPARED) + " |",
             "|---|---|" + "---|" * (len(scenarios) * len(COMPARED))]
    for (point, epoch), group in picked.groupby(["point", "epoch"], sort=False):
        cells = []
        for scenario in scenarios:
            for method in COMPARED:
                row = group[(group["scenario"] == scenario) & (group["method"] == method)]
                cells.append("" if row.empty else f"{signed(row['delta_mtl'].iloc[0])} [{signed(row['ci_low'].iloc[0])}, "
                                                  f"{signed(row['ci_high'].iloc[0])}] (n={row['seeds'].iloc[0]})")
        lines.append(f"| {point} | {epoch} ({group['steps'].iloc[0]}) | " + " | ".join(cells) + " |")
    return "\n".join(lines)


def signed(value: float) -> str:
    return f"{value:+.1f}".replace("-", "−")


def task_panels(axes: list, frame: pd.DataFrame) -> None:
    """Each task's test metric per step at the base point, mean over seeds, per method and scenario, with the
    constant prediction's level (grey): a run at that level has learnt nothing of the task."""
    base = frame[frame["point"].str.endswith("(base)")]
    colours = {"supervised": "tab:blue", "mtpsl": "tab:orange", "jtr": "tab:green"}
    for ax, task in zip(axes, TASKS):
        for (method, scenario), runs in base.groupby(["method", "scenario"]):
            mean = runs.groupby("steps")[task].mean()
            ax.plot(mean.index, mean.values, color=colours.get(method, "black"),
                    linestyle="-" if scenario == "onelabel" else "--", label=f"{method}, {scenario}")
        ax.axhline(base[f"{task}/constant"].mean(), color="grey", linewidth=1, label="constant prediction")
        ax.set_title(f"base point: test {task} ({PRIMARY[task]}), mean over seeds")
        ax.set_xlabel("training steps (batch 8)")
    axes[0].legend(fontsize=6)


def figure(table: pd.DataFrame, frame: pd.DataFrame, out: Path) -> None:
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    scenarios = sorted(table["scenario"].unique())
    fig, axes = plt.subplots(2, max(len(scenarios), len(TASKS)), figsize=(18, 8), squeeze=False)
    colours = {"mtpsl": "tab:orange", "jtr": "tab:green"}
    markers = ["o", "s", "^", "D", "v"]
    for ax, scenario in zip(axes[0], scenarios):
        for (point, group), marker in zip(table[table["scenario"] == scenario].groupby("point", sort=False), markers):
            for method in COMPARED:
                line = group[group["method"] == method].sort_values("steps")
                if line.empty:
                    continue
                ax.plot(line["steps"], line["delta_mtl"], marker=marker, markersize=3, color=colours[method],
                        linestyle="-" if "(base)" in point else ":", label=f"{method}, {point}")
                if "(base)" in point:
                    ax.fill_between(line["steps"], line["ci_low"], line["ci_high"], color=colours[method], alpha=0.15)
        ax.axhline(0, color="black", linewidth=0.8)
        ax.set_title(f"synthrooms, {scenario}: ΔMTL vs Supervised MTL")
        ax.set_xlabel("training steps (batch 8)")
    axes[0][0].set_ylabel("ΔMTL % (band: 95% t interval, paired by seed)")
    axes[0][0].legend(fontsize=6, loc="lower right")
    for ax in axes[0][len(scenarios):]:
        ax.axis("off")
    task_panels(axes[1], frame)
    fig.tight_layout()
    fig.savefig(out.with_suffix(".png"), dpi=120)


def main() -> None:
    if len(sys.argv) != 3:
        raise SystemExit(__doc__)
    results, out = Path(sys.argv[1]), Path(sys.argv[2])
    frame = with_delta(per_epoch_rows(results))
    frame.to_csv(out.with_suffix(".csv"), index=False, float_format="%.6g")
    table = summary(frame)
    out.with_suffix(".md").write_text(markdown(table) + "\n")
    figure(table, frame, out)
    print(markdown(table))


if __name__ == "__main__":
    main()
