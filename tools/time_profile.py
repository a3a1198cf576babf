"""Where a finished suite's time went, per method and per phase, from its result files:

    python tools/time_profile.py [RESULTS] SUITE

Phases: data (building the job's splits and masks), training (the epochs' steps), evaluation (validation after
every epoch, the test split at the end), and the rest of the job's wall time in its process (W&B's run, the
model's construction, checkpoints, writing results). The suite's own overhead (process start, imports, the
leaderboard) is what the command's total time adds to the sum of the jobs'.

A job resumed from a checkpoint sums training and evaluation over all its processes but has the wall time of its
last process only, so its rest is unknown: such jobs are counted in their own column and left out of the
others.
"""
from __future__ import annotations

import sys

from mtlbench.runner import Store

PHASES = ("data_seconds", "train_seconds", "eval_seconds")


def resumed(result: dict) -> bool:
    return any(epoch > 0 for epoch in result.get("resumed_from_epoch", {}).values())


def job_times(result: dict) -> list[float]:
    """jobs, resumed jobs, wall, the phases and the rest; a resumed job is counted, not timed."""
    if "wall_seconds" not in result:
        raise SystemExit(f"{result['job_id']}: no timings (a result written before mtlbench recorded them)")
    if resumed(result):
        return [0, 1] + [0.0] * (len(PHASES) + 2)
    phases = [result.get(phase, 0.0) for phase in PHASES]
    return [1, 0, result["wall_seconds"], *phases, result["wall_seconds"] - sum(phases)]


def profile(results: str, suite: str) -> str:
    rows: dict[str, list[float]] = {}
    for result in Store(results).results(suite):
        totals = rows.setdefault(result["method"], [0.0] * 7)
        for i, value in enumerate(job_times(result)):
            totals[i] += value
    rows["all methods"] = [sum(column) for column in zip(*rows.values())]
    lines = ["| method | jobs | resumed (left out) | wall s | data s | training s | evaluation s | W&B and other s |",
             "|---|---|---|---|---|---|---|---|"]
    lines += [f"| {method} | {jobs:.0f} | {again:.0f} | " + " | ".join(f"{seconds:.1f}" for seconds in times) + " |"
              for method, (jobs, again, *times) in rows.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    *root, name = sys.argv[1:] or ["quickstart"]
    print(profile(root[0] if root else "results", name))
