"""Transfer affinities, an optional estimate beside the multi-task ones (Standley et al. 2020 Sec. 5.1, Table 3,
Fig. 3).

Standley et al. compare their multi-task affinity (Table 2) with Taskonomy's transfer affinity (Zamir et al. 2018),
"the averaged forward and backward transfer learning affinity between tasks" (Table 3), and find them negatively
correlated (Fig. 3: Pearson r = -0.54, p = 0.13, one outlier removed). Table 3 is Taskonomy's, measured with its own
networks; with ``grouping.transfer: true`` a suite measures transfer on its own networks instead: for every ordered
pair of tasks (source s, target t), the full-size single-task network of s, already a candidate, is fine-tuned for t
(a ``grouping-transfer`` job: the network's shared part starts from s's trained weights, its decoder for t from
scratch, every weight trains on the suite's schedule). The transfer gain of s to t is how much lower t's loss is
than with the full-size single-task network of t trained from scratch (percent, test losses, as Table 1 compares);
the affinity of a pair is the mean of its two directions (Table 3's "forward and backward"), set against the
multi-task affinity of the same pair by Pearson r over the pairs (Fig. 3; no outlier is removed here).
"""
from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from torch import nn

from ...files import load_tensors
from ...jobs import KINDS, Hooks, Resolution, ResultLookup, reads_weights
from ...train import run_job
from ...train.trainer import Stage
from .losses import LossTable, Network

SOURCE = "transfer_source"  # the resolver


def shared_state(model: nn.Module) -> set[str]:
    """The state-dict keys of the network's shared part: its shared parameters and the buffers of their modules
    (BatchNorm's running statistics)."""
    shared = {id(p) for p in model.shared_parameters()}
    names = {name for name, p in model.named_parameters() if id(p) in shared}
    modules = {name.rpartition(".")[0] for name in names}
    buffers = {name for name, _ in model.named_buffers() if name.rpartition(".")[0] in modules}
    return names | buffers


def load_shared(model: nn.Module, source: dict[str, Any], where: str) -> int:
    """Copies the source network's shared part into ``model`` (same model and width); returns the entries copied.
    The target task's own layers keep their fresh initialisation."""
    keys = shared_state(model)
    own = model.state_dict()
    missing = sorted(k for k in keys if k not in source or source[k].shape != own[k].shape)
    if missing:
        raise RuntimeError(f"{where}: the source network's shared part does not match this network's ({len(missing)} "
                           f"entries differ, e.g. {missing[0]}): source and target must share model and width")
    model.load_state_dict({**own, **{k: source[k] for k in keys}})
    return len(keys)


@reads_weights(SOURCE)
def transfer_source(config: dict[str, Any], needs: tuple[str, ...], lookup: ResultLookup) -> Resolution:
    """The source network's weights file (its job keeps it, ``weights-<stage>.pt``), filled in as
    ``grouping.transfer_weights``."""
    (source,) = needs
    if lookup(source) is None:
        raise RuntimeError(f"the transfer source {source} has not finished")
    kept = sorted(lookup.folder(source).glob("weights-*.pt"))  # a single-task network: one stage, one file
    if len(kept) != 1:
        raise RuntimeError(f"the transfer source {source} kept {len(kept)} weights files in {lookup.folder(source)}, "
                           f"not one: run the suite again, and it trains the source again to keep them")
    grouping = {**config["grouping"], "transfer_weights": str(kept[0])}
    return Resolution({**config, "grouping": grouping}, {"transfer_source": source})


@KINDS.register("grouping-transfer")
class TransferJob:
    """A source task's network fine-tuned for a target task (the module docstring)."""

    def run(self, config: dict[str, Any], job_dir: Path, hooks: Hooks, test: bool) -> dict[str, Any]:
        path = Path(config["grouping"]["transfer_weights"])
        source = load_tensors(path, "transfer source's weights")["model"]

        def initialise(stage: Stage, model: nn.Module) -> None:
            load_shared(model, source, str(path))

        return run_job(config, job_dir, hooks, test=test, initialise=initialise)


def transfer_gains(test: LossTable, transferred: dict[tuple[str, str], float]) -> np.ndarray:
    """[source, target]: percent by which fine-tuning the source's full-size network lowers the target's test loss
    below its own full-size single-task network's; NaN where a pair was not trained (and on the diagonal)."""
    k = len(test.tasks)
    out = np.full((k, k), np.nan)
    for j, target in enumerate(test.tasks):
        alone = test.losses[test.rows_of([Network((target,))], "transfer")[0], j]
        for i, source in enumerate(test.tasks):
            if (source, target) in transferred:
                out[i, j] = 100 * (alone - transferred[source, target]) / alone
    return out


def pair_correlation(first: np.ndarray, second: np.ndarray) -> tuple[float, float, int]:
    """Pearson r (and its two-sided p) between two symmetric affinity matrices over the task pairs both give."""
    from scipy.stats import pearsonr

    upper = np.triu_indices(len(first), 1)
    a, b = first[upper], second[upper]
    keep = np.isfinite(a) & np.isfinite(b)
    if keep.sum() < 3:
        return float("nan"), float("nan"), int(keep.sum())
    r, p = pearsonr(a[keep], b[keep])
    return float(r), float(p), int(keep.sum())


def transferred_losses(rows: list[dict[str, Any]], seed_index: int, by_id: dict[str, dict[str, Any]],
                       ) -> dict[tuple[str, str], float]:
    """{(source, target): the transfer network's test loss on the target} of one seed's finished transfer jobs."""
    found = {}
    for row in rows:
        result = by_id.get(row["jobs"][seed_index])
        if result is not None:
            found[row["source"], row["target"]] = result["test"][row["target"]]["loss"]
    return found
