"""TABA's informativeness (Sun et al. 2023 Eq. 3 and 5, Algorithm 1 Part 1), probed while an MTL network trains on
the seed set, and TAG's loss look-ahead affinity (Fifty et al. 2021) at the same steps for the Table 3 ablation.

Every ``every`` training steps (10, Alg. 1 line 3, following TAG) the probe copies the network and optimiser,
trains ``steps`` (the m of Eq. 5) further steps in each of these branches, evaluates the validation split and
restores the copy, so training itself goes on as if never probed:

- T_j alone: one mini-batch of task j per step;
- (T_j, T_j): that mini-batch plus a second one of task j, their gradients summed;
- (T_i, T_j): task j's mini-batch plus one of task i (one branch serves I_{i->j} and I_{j->i}).

    I^t_{i->j} = (S_j|(T_i,T_j) - S_j|T_j) / (S_j|(T_j,T_j) - S_j|T_j)              (Eq. 5)
    I_{i->j} = mean_t I^t_{i->j},   I_i = 1 + sum_{j != i} I_{i->j}                   (Eq. 3, I_{i->i} = 1)

S_j is task j's primary metric on the validation split (the paper does not say which split; mtlbench never lets
the test split decide an experiment). The metric's direction cancels in the ratio. The paper does not say what
happens when S_j did not move (a denominator of 0, e.g. a classification score on a small split); mtlbench
leaves such a probe step out of that pair's mean. "Did not move" includes float round-off: two scores that are
mathematically equal (one image's score up, another's down by the same amount) can differ in their last bits,
and such a denominator (about 1e-15) would make the ratio about 1e12. So a denominator counts as 0 when it is
within ``tolerance`` (relative, default 1e-9: far above float64 round-off, far below any real change of a
score) of the larger of the two scores. ``average: terms`` is an option of ours (not the paper's): mean
numerator over mean denominator, steadier when single denominators come close to 0.

TAG (its Eq. 2-3): on one mini-batch per task, Z^t_{i->j} = 1 - L_j(theta_s - lr grad_{theta_s} L_i) / L_j(theta_s),
with theta_s the shared parameters and lr the optimiser's current learning rate. Paper 000 "replaces" Eq. 5 by
it; to put it in Eq. 3's units (self-informativeness 1) mtlbench divides by task j's self-affinity:
I^TAG_{i->j} = mean_t Z_{i->j} / mean_t Z_{j->j} (our normalisation, the paper gives none).

The branches use the job's loss weights (lambda_i = 1, Eq. 8) and optimiser, as the paper requires for the
final training too. m is not given by the paper; mtlbench's default is one step, TAG's look-ahead.
"""
from __future__ import annotations

import copy
import itertools
import time
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn

from ...data import Split
from ...data.augment import Augment
from ...train.evaluation import evaluate
from ...files import finite_or_none
from ...ids import spelt_as_before
from ...jobs import KINDS, Hooks
from ...train import run_job
from ...train.trainer import ObserverFactory, Observed, Stage, autocast_for, derive_seed

AVERAGES = ("ratios", "terms")


@spelt_as_before
def probe_tolerance_exact(config: dict[str, Any]) -> dict[str, Any]:
    """``probe.tolerance`` came with 0.2 and changes the estimate; 0 (only exact zeros left out) is the earlier
    behaviour, hashed as before."""
    if config.get("probe", {}).get("tolerance") == 0:
        del config["probe"]["tolerance"]
    return config


@dataclass(frozen=True)
class ProbeSettings:
    every: int = 10
    steps: int = 1
    val_images: int = 0  # the first N validation images are probed (0: all)
    average: str = "ratios"
    tolerance: float = 1e-9  # a denominator this small relative to S_j means S_j did not move (0: exactly 0 only)

    def __post_init__(self) -> None:
        if self.every < 1 or self.steps < 1 or self.val_images < 0 or not 0 <= self.tolerance < 1:
            raise ValueError(f"probe: every and steps must be >= 1, val_images >= 0 and 0 <= tolerance < 1, "
                             f"got {self}")
        if self.average not in AVERAGES:
            raise ValueError(f"probe: average must be one of {AVERAGES}, got {self.average!r}")


class Probe:
    """A StepObserver of the trainer (train/trainer.py) that records Eq. 5's and TAG's terms."""

    def __init__(self, settings: ProbeSettings, stage: Stage, model: nn.Module, optimizer: torch.optim.Optimizer,
                 val: Split, batch_size: int, eval_batch_size: int, augment: Augment, seed: int,
                 device: torch.device, autocast: Any = None) -> None:
        self.settings, self.stage, self.model, self.optimizer = settings, stage, model, optimizer
        self.names = list(stage.tasks)
        keep = torch.arange(min(len(val), settings.val_images or len(val)), device=val.device)
        self.val = val.subset(keep).select(self.names)
        self.batch_size, self.eval_batch_size, self.augment = batch_size, eval_batch_size, augment
        self.autocast = autocast or autocast_for(device)
        self.device = device
        self.generator = torch.Generator().manual_seed(derive_seed(seed, stage.name, "probe"))
        self.augment_generator = torch.Generator(device).manual_seed(derive_seed(seed, stage.name, "probe-augment"))
        self.labelled = [stage.mask[:, j].nonzero().squeeze(1) for j in range(len(self.names))]
        self.records: list[dict[str, Any]] = []
        self.seconds = 0.0

    @staticmethod
    def factory(job: dict[str, Any]) -> ObserverFactory:
        settings = ProbeSettings(**job["probe"])

        def build(seen: Observed) -> Probe:
            return Probe(settings, seen.stage, seen.model, seen.optimizer, seen.val, job["train"]["batch_size"],
                         job["train"]["eval_batch_size"], Augment(**job["train"]["augment"]), job["seed"],
                         seen.device, seen.autocast)

        return build

    # ------------------------------------------------------------------------------------ observer
    def after_step(self, step: int) -> None:
        if step % self.settings.every == 0 and all(len(rows) for rows in self.labelled):
            start = time.perf_counter()
            self.records.append({"step": step, **self.probe()})
            self.seconds += time.perf_counter() - start

    def epoch_log(self) -> dict[str, float]:
        return {}

    def state(self) -> dict[str, Any]:
        return {"records": self.records, "seconds": self.seconds, "generator": self.generator.get_state(),
                "augment_generator": self.augment_generator.get_state()}

    def restore(self, state: dict[str, Any]) -> None:
        self.records, self.seconds = state["records"], state["seconds"]
        self.generator.set_state(state["generator"])
        self.augment_generator.set_state(state["augment_generator"])

    def report(self) -> dict[str, Any]:
        return summarise(self.records, self.names, self.settings.average, self.settings.tolerance) | {
            "probe_seconds": self.seconds}

    # --------------------------------------------------------------------------------------- probe
    def probe(self) -> dict[str, Any]:
        """Eq. 5's numerators and denominators and TAG's affinities at the current step."""
        k = len(self.names)
        first = [self.draw(j) for j in range(k)]  # [task][step] -> (images, targets)
        second = [self.draw(j) for j in range(k)]
        saved = copy.deepcopy(self.model.state_dict()), copy.deepcopy(self.optimizer.state_dict())
        alone = [self.branch([(j, first[j])], saved)[j] for j in range(k)]
        self_pair = [self.branch([(j, first[j]), (j, second[j])], saved)[j] for j in range(k)]
        joint = np.full((k, k), np.nan)  # joint[i, j]: S_j after training on (T_i, T_j)
        for i, j in itertools.combinations(range(k), 2):
            scores = self.branch([(i, first[i]), (j, first[j])], saved)
            joint[i, j], joint[j, i] = scores[j], scores[i]
        tag = self.lookahead([first[j][0] for j in range(k)])
        self.model.load_state_dict(saved[0])
        alone_v, self_v = np.array(alone), np.array(self_pair)
        return {"numerator": (joint - alone_v[None, :]).tolist(), "denominator": (self_v - alone_v).tolist(),
                "alone": alone, "tag": tag.tolist()}

    def draw(self, task: int) -> list[tuple[Tensor, dict[str, Tensor]]]:
        """``steps`` mini-batches of task ``task``'s labelled images, augmented as in training."""
        rows = self.labelled[task]
        batches = []
        for _ in range(self.settings.steps):
            index = rows[torch.randint(len(rows), (self.batch_size,), generator=self.generator)]
            images, targets = self.stage.train.batch(index.to(self.device), self.stage.tasks)
            batches.append(self.augment(images, targets, self.stage.tasks, self.augment_generator))
        return batches

    def block_losses(self, blocks: list[tuple[int, tuple[Tensor, dict[str, Tensor]]]]) -> list[Tensor]:
        """One forward of the blocks' images; each block's loss is its task's mean loss over its images."""
        images = torch.cat([batch[0] for _, batch in blocks])
        with self.autocast():
            preds = self.model(images)
        losses, start = [], 0
        for task, (block_images, targets) in blocks:
            name = self.names[task]
            rows = slice(start, start + len(block_images))
            losses.append(self.stage.tasks[name].loss_per_image(preds[name][rows], targets[name]).mean())
            start += len(block_images)
        return losses

    def branch(self, plan: list[tuple[int, list]], saved: tuple[dict, dict]) -> list[float]:
        """Train ``steps`` steps on the summed losses of the planned blocks, score every task, restore."""
        self.model.train()
        for step in range(self.settings.steps):
            self.optimizer.zero_grad(set_to_none=True)
            sum(self.block_losses([(task, batches[step]) for task, batches in plan])).backward()
            self.optimizer.step()
        metrics = evaluate(self.model, self.val, self.stage.tasks, self.eval_batch_size, self.autocast)
        self.model.load_state_dict(saved[0])
        self.optimizer.load_state_dict(saved[1])
        return [metrics[name][task.primary] for name, task in self.stage.tasks.items()]

    def lookahead(self, batches: list[tuple[Tensor, dict[str, Tensor]]]) -> np.ndarray:
        """TAG's Z[i, j] = 1 - L_j(after a gradient step of task i on the shared parameters) / L_j(before)."""
        k = len(self.names)
        shared = [p for p in self.model.shared_parameters() if p.requires_grad]
        lr = self.optimizer.param_groups[0]["lr"]
        blocks = list(enumerate(batches))
        self.model.train()
        losses = self.block_losses(blocks)
        before = torch.stack(losses).detach()
        grads = [torch.autograd.grad(loss, shared, retain_graph=i < k - 1, allow_unused=True)
                 for i, loss in enumerate(losses)]
        originals = [p.detach().clone() for p in shared]
        z = np.zeros((k, k))
        with torch.no_grad():
            for i in range(k):
                for p, g in zip(shared, grads[i]):
                    if g is not None:
                        p.sub_(lr * g)
                after = torch.stack(self.block_losses(blocks))
                z[i] = (1 - after / before).cpu().numpy()
                for p, original in zip(shared, originals):
                    p.copy_(original)
        return z


def unmoved(alone: np.ndarray, denominator: np.ndarray, tolerance: float) -> np.ndarray:
    """Where S_j|(T_j,T_j) - S_j|T_j is 0 up to ``tolerance`` relative to the larger of the two scores."""
    return np.abs(denominator) <= tolerance * np.maximum(np.abs(alone), np.abs(alone + denominator))


def summarise(records: list[dict[str, Any]], names: list[str], average: str = "ratios",
              tolerance: float = 0.0) -> dict[str, Any]:
    """I_{i->j} and I_i (Eq. 3, 5), TAG's normalised relatedness and I, from the recorded probe steps."""
    if not records:
        raise ValueError("no probe step was recorded: train for more than `every` steps, with labels for every task")
    numerator = np.array([r["numerator"] for r in records])  # [P, K, K]
    denominator = np.array([r["denominator"] for r in records])  # [P, K]
    alone = np.array([r["alone"] for r in records])  # [P, K]: S_j|T_j
    still = unmoved(alone, denominator, tolerance)
    with np.errstate(divide="ignore", invalid="ignore"), warnings.catch_warnings():
        warnings.simplefilter("ignore", RuntimeWarning)  # a pair with no usable step stays NaN, named later
        if average == "ratios":
            relatedness = np.nanmean(np.where(still[:, None, :], np.nan, numerator / denominator[:, None, :]), 0)
        else:
            still_on_average = unmoved(alone.mean(0), denominator.mean(0), tolerance)
            relatedness = np.where(still_on_average, np.nan, numerator.mean(0) / denominator.mean(0))
    np.fill_diagonal(relatedness, 1.0)
    z = np.array([r["tag"] for r in records]).mean(0)
    tag = z / np.diag(z)[None, :]
    np.fill_diagonal(tag, 1.0)

    def nested(matrix: np.ndarray) -> dict[str, dict[str, float | None]]:
        return {a: {b: finite_or_none(float(matrix[i, j])) for j, b in enumerate(names)} for i, a in enumerate(names)}

    return {"tasks": names, "probes": len(records), "relatedness": nested(relatedness),
            "informativeness": {a: finite_or_none(float(relatedness[i].sum())) for i, a in enumerate(names)},
            "tag_relatedness": nested(tag),
            "tag_informativeness": {a: finite_or_none(float(tag[i].sum())) for i, a in enumerate(names)},
            "skipped": int(still.sum())}  # (probe step, task j) pairs in which S_j did not move


@KINDS.register("taba-probe")
class ProbeJob:
    """The job of TABA's informativeness: the MTL network trained on the seed set with a Probe watching its
    steps; the probe's report is the result's ``estimate``. It never loads the test split."""

    def run(self, config: dict[str, Any], job_dir: Path, hooks: Hooks, test: bool) -> dict[str, Any]:
        outcome = run_job(config, job_dir, hooks, test=False, observers=[Probe.factory(config)])
        outcome["estimate"] = outcome.pop("observed")[0]
        return outcome
