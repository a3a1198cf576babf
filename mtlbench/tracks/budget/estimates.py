"""TABA's estimates read back from the finished estimate jobs, and the label counts they lead to: the
``budget-purchase`` resolver of a budget job whose allocator reads estimates."""
from __future__ import annotations

from typing import Any

import numpy as np

from ...errors import UserError
from ...files import as_float, finite_or_none
from ...jobs import RESOLVERS, Resolution, ResultLookup
from ...registry import build
from .allocators import ALLOCATORS, Estimates


class EstimateError(UserError, RuntimeError):
    pass


def estimate_results(ids: list[str], lookup: ResultLookup, what: str) -> list[dict[str, Any]]:
    results = [lookup(job_id) for job_id in ids]
    missing = [job_id for job_id, result in zip(ids, results) if result is None]
    if missing:
        raise EstimateError(f"TABA needs the {what} of jobs {', '.join(missing)}, which have not finished; run the "
                            f"suite again (they run first) or look at their error.txt")
    return results  # type: ignore[return-value]


def gather_estimates(estimates: dict[str, Any], lookup: ResultLookup) -> Estimates:
    """Eq. 3's I_i (Eq. 5 and TAG) averaged over the probe jobs, Eq. 7's beta_i over each task's reduction jobs."""
    fields: dict[str, dict[str, float]] = {}
    if "probe" in estimates:
        probes = [r["estimate"] for r in estimate_results(estimates["probe"], lookup, "informativeness probes")]
        for key in ("informativeness", "tag_informativeness"):  # null (an undefined pair) stays undefined: NaN
            fields[key] = {t: float(np.mean([as_float(p[key][t]) for p in probes])) for t in probes[0][key]}
    if "reduction" in estimates:
        fields["beta"] = {t: float(np.mean([r["estimate"]["beta"] for r in
                                            estimate_results(ids, lookup, f"reduction rate of {t}")]))
                          for t, ids in estimates["reduction"].items()}
    return Estimates(**fields)


def resolve_allocation(allocation: dict[str, Any], lookup: ResultLookup) -> dict[str, Any]:
    """The label counts of an allocation whose allocator reads estimates, with the estimates used."""
    estimates = gather_estimates(allocation["estimates"], lookup)
    allocator = build(ALLOCATORS, allocation["allocator"])
    counts = allocator.allocate(allocation["costs"], allocation["budget"], estimates)
    def recorded(values: dict[str, float]) -> dict[str, float | None] | None:
        return {t: finite_or_none(v) for t, v in values.items()} or None

    return {"new_labels": counts, "informativeness": recorded(estimates.informativeness),
            "tag_informativeness": recorded(estimates.tag_informativeness), "beta": recorded(estimates.beta)}


@RESOLVERS.register("budget-purchase")
def purchase_from_estimates(config: dict[str, Any], needs: tuple[str, ...], lookup: ResultLookup) -> Resolution:
    """The budget job's ``purchase`` resolved: the label counts of its allocator from the finished estimate jobs
    (its needs), set as the scenario's ``new_labels``; the result records the counts and the estimates used."""
    resolved = {**config["purchase"], **resolve_allocation(config["purchase"], lookup)}
    scenario = {**config["scenario"], "new_labels": resolved["new_labels"]}
    return Resolution({**config, "scenario": scenario, "purchase": resolved},
                      {"new_labels": resolved["new_labels"], "purchase": resolved})
