"""Where a finished suite's time went, per method and per phase, from its result files:

    python tools/time_profile.py [RESULTS] SUITE

Phases: data (building the job's splits and masks), training (the epochs' steps), evaluation (validation after
every epoch, the test split at the end), and the rest of the job's wall time in its process (W&B's run, the
model's construction, checkpoints, writing results). The suite's own overhead (process start, imports, the
leaderboard) is what the command's total time adds to the sum of the jobs'.
"""
from __future__ import annotations

import sys

from mtlbench.runner import Store

PHASES = ("data_seconds", "train_seconds", "eval_seconds")


def profile(results: str, suite: str) -> str:
    rows: dict[str, list[float]] = {}
    for result in Store(results).results(suite):
        if "wall_seconds" not in result:
            raise SystemExit(f"{result['job_id']}: no timings (a result written before mtlbench recorded them)")
        phases = [result.get(phase, 0.0) for phase in PHASES]
        totals = rows.setdefault(result["method"], [0.0] * 6)
        for i, value in enumerate([1, result["wall_seconds"], *phases, result["wall_seconds"] - sum(phases)]):
            totals[i] += value
    rows["all methods"] = [sum(column) for column in zip(*rows.values())]
    lines = ["| method | jobs | wall s | data s | training s | evaluation s | W&B and other s |",
             "|---|---|---|---|---|---|---|"]
    lines += [f"| {method} | {jobs:.0f} | " + " | ".join(f"{seconds:.1f}" for seconds in times) + " |"
              for method, (jobs, *times) in rows.items()]
    return "\n".join(lines)


if __name__ == "__main__":
    *root, name = sys.argv[1:] or ["quickstart"]
    print(profile(root[0] if root else "results", name))
