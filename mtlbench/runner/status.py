"""Where a suite stands, read from the results store alone: every job's state, before or after it ran.

States: ``done`` (a valid result.json), ``running`` (a runner holds a live claim on it: host, process and
heartbeat are shown), ``queued`` (submitted to SLURM and waiting), ``failed`` (its last attempt left error.txt; the first line is shown), ``blocked`` (a job
it needs failed, directly or through another need: that job and its error are shown) and ``pending`` (not run
yet, or interrupted: it resumes from its checkpoint). A job whose result.json is corrupt is pending, and its row
names the file and what is wrong with it (``problem``).
"""
from __future__ import annotations

import dataclasses
from typing import Any

from ..config import Suite
from ..jobs import blocked_by, levels
from .claims import Claims
from .store import Store

STATES = ("done", "running", "queued", "pending", "blocked", "failed")


def job_states(suite: Suite, store: Store, claims: Claims = Claims()) -> list[dict[str, Any]]:
    """One record per job of the suite, in the suite's order; jobs submitted to SLURM carry ``slurm`` (its job
    id, state, node and requeues)."""
    from .slurm import slurm_view

    slurm = slurm_view(store.suite_dir(suite.name))
    failed: dict[str, tuple[str, str]] = {}
    rows: dict[str, dict[str, Any]] = {}
    for level in levels(suite.jobs):
        for job in level:
            row = {"id": job.id, "kind": job.kind, "needs": list(job.needs), "dataset": job.dataset,
                   "scenario": job.scenario, "method": job.method, "seed": job.seed, "label": job.label}
            if job.id in slurm:
                row["slurm"] = slurm[job.id] | finished_slurm(store, suite, job)
            culprit = blocked_by(job, failed)
            holder = claims.holder(store.job_dir(job))
            result, problem = store.read_result(store.job_dir(job))
            if result is not None:
                row["state"] = "done"
            elif holder is not None:
                row |= {"state": "running", "claim": dataclasses.asdict(holder)}
            elif store.has_failed(job):
                row |= {"state": "failed", "error": store.error_line(job)}
                failed[job.id] = (job.id, row["error"])
            elif culprit is not None:
                row |= {"state": "blocked", "blocked_by": culprit[0], "error": culprit[1]}
                failed[job.id] = culprit
            elif row.get("slurm", {}).get("state") in ("PENDING", "REQUEUED", "CONFIGURING"):
                row["state"] = "queued"
            else:
                row["state"] = "pending"
            if problem and row["state"] != "done":
                row["problem"] = f"{problem}; `mtlbench run` moves it aside and trains the job again"
            rows[job.id] = row
    return [rows[job.id] for job in suite.jobs]


def finished_slurm(store: Store, suite: Suite, job: Any) -> dict[str, Any]:
    """The requeue count a finished job recorded."""
    result = store.result(suite.name, job.id)
    return {"requeues": result["slurm"]["requeues"]} if result and "slurm" in result else {}


def counts(rows: list[dict[str, Any]]) -> dict[str, int]:
    return {state: sum(row["state"] == state for row in rows) for state in STATES}


def status_table(rows: list[dict[str, Any]]) -> str:
    """A plain-text table of the jobs, then the counts."""
    lines = [f"{'job':<14}{'kind':<18}{'run':<56}{'needs':>6}  state"]
    for row in rows:
        run = f"{row['dataset']}/{row['label'] or row['scenario']}/{row['method']}/seed{row['seed']}"
        state = row["state"]
        if state == "failed":
            state += f": {row['error']}"
        elif state == "blocked":
            state += f" by {row['blocked_by']}: {row['error']}"
        elif state == "running":
            state += f" on {row['claim']['host']} (pid {row['claim']['pid']}, since {row['claim']['started']})"
        if "problem" in row:
            state += f" ({row['problem']})"
        if "slurm" in row:
            slurm = row["slurm"]
            state += f" [slurm {slurm['slurm_id']} {slurm.get('state') or 'gone'}"
            state += (f" on {slurm['node']}" if slurm.get("node") else "") + f", requeues {slurm.get('requeues', 0)}]"
        lines.append(f"{row['id']:<14}{row['kind']:<18}{run:<56}{len(row['needs']):>6}  {state}")
    total = counts(rows)
    lines.append(", ".join(f"{n} {state}" for state, n in total.items()) + f" of {len(rows)} jobs")
    return "\n".join(lines)
