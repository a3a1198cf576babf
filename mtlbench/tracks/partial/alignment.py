"""Does a partial-label regularizer push the network where the labels it never sees would?

Consistency, MTPSL and JTR (Nishi et al. 2024 Eq. 2-6) are meant to stand in for the supervision an image lacks:
for an (image, task) pair without a label, the regularizer's gradient should point the way that label's own loss
would. synthrooms keeps every label (a scenario's mask only hides some from the method), so this can be measured
rather than argued. ``GradientAlignment``, a StepObserver of the trainer, takes the first ``images`` training
images as a fixed probe set and, at the first step and every ``every`` steps, computes with the network as it
stands, summed over the probe set's batches of the job's batch size:

    g_R      = ∇θ R                                       the regularizer's loss (its own views and draws)
    g_hidden = ∇θ Σ_t mean_{x: t hidden} L_t(x)          the labels the mask hides from the method
    g_sup    = ∇θ Σ_t mean_{x: t labelled} L_t(x)        the labels it trains on (uniform over tasks)

and records cos(g_R, g_hidden), cos(g_R, g_sup) and |g_R| / |g_sup| over the shared parameters (every model
parameter outside the task heads) and over each task's head. A regularizer that works as intended has
cos(g_R, g_hidden) > 0: it moves the network as the missing labels would. The probe changes nothing in training:
its forward passes run on copies of the RNG states and of the normalisation statistics, and its gradients are
taken with ``torch.autograd.grad``, so a job's weights are bit-identical with and without it.
"""
from __future__ import annotations

import math
from typing import Any

import torch
from torch import Tensor, nn

from ...methods.context import StepContext
from ...tasks import Task
from ...train.trainer import ObserverFactory, Observed

TERMS = ("regularizer", "hidden", "labelled")


def regions(model: nn.Module, tasks: list[str]) -> dict[str, list[nn.Parameter]]:
    """The model's parameters by region: ``shared`` (outside every head), then each task's head."""
    heads = {t: list(model.heads[t].parameters()) for t in tasks}
    in_heads = {id(p) for params in heads.values() for p in params}
    return {"shared": [p for p in model.parameters() if id(p) not in in_heads], **heads}


def mean_over_rows(tasks: dict[str, Task], preds: dict[str, Tensor], targets: dict[str, Tensor],
                   rows: Tensor) -> Tensor | None:
    """Σ_t mean over the rows where ``rows[:, t]`` of task t's per-image loss; None where no row is set."""
    terms = []
    for j, (name, task) in enumerate(tasks.items()):
        index = rows[:, j].nonzero().squeeze(1).to(preds[name].device)
        if len(index):
            terms.append(task.loss_per_image(preds[name][index], targets[name][index]).mean())
    return sum(terms) if terms else None


def batch_gradients(recipe: Any, images: Tensor, targets: dict[str, Tensor], mask: Tensor,
                    params: list[nn.Parameter]) -> dict[str, list[Tensor]]:
    """The three gradients of one batch (zeros where a term is absent), the regularizer's views drawn from
    the recipe's own generators as a training step draws them."""
    views = recipe.views(images, targets)
    with recipe.autocast():
        losses = {"regularizer": recipe.regularizer.loss(StepContext(recipe.tasks, mask, views),
                                                         recipe.net("regularizer")),
                  "hidden": mean_over_rows(recipe.tasks, views[0].preds, targets, mask == 0),
                  "labelled": mean_over_rows(recipe.tasks, views[0].preds, targets, mask == 1)}
    present = {term: loss for term, loss in losses.items() if loss is not None}
    grads = {}
    for i, (term, loss) in enumerate(present.items()):
        grads[term] = torch.autograd.grad(loss, params, retain_graph=i < len(present) - 1, allow_unused=True)
    return {term: [torch.zeros_like(p) if g is None else g.detach() for p, g in zip(params, grads[term])]
            if term in grads else [torch.zeros_like(p) for p in params] for term in TERMS}


def cosine(a: Tensor, b: Tensor) -> float:
    norms = float(a.norm() * b.norm())
    return float(a @ b) / norms if norms > 0 else math.nan


def compare(grads: dict[str, dict[str, Tensor]]) -> dict[str, dict[str, float]]:
    """Per region: cos(g_R, g_hidden), cos(g_R, g_sup) and |g_R| / |g_sup| (NaN where undefined)."""
    out = {}
    for region, by_term in grads.items():
        r, hidden, labelled = (by_term[term] for term in TERMS)
        sup_norm = float(labelled.norm())
        out[region] = {"cos_hidden": cosine(r, hidden), "cos_labelled": cosine(r, labelled),
                       "norm_ratio": float(r.norm()) / sup_norm if sup_norm > 0 else math.nan}
    return out


class GradientAlignment:
    """A StepObserver: the alignment of the regularizer's gradient with the hidden labels', during training."""

    def __init__(self, seen: Observed, images: int = 32, every: int = 20) -> None:
        self.seen, self.every = seen, every
        self.batch_size = seen.job.train.batch_size
        self.rows = torch.arange(min(images, len(seen.stage.train)))
        self.records: list[dict[str, Any]] = []

    @staticmethod
    def factory(images: int = 32, every: int = 20) -> ObserverFactory:
        return lambda seen: GradientAlignment(seen, images, every)

    def after_step(self, step: int) -> None:
        if step == 1 or step % self.every == 0:
            self.records.append({"step": step, "images_seen": step * self.batch_size, **self.measure()})

    def measure(self) -> dict[str, dict[str, float]]:
        """The comparison on the probe set, leaving every RNG state and normalisation statistic as it was."""
        recipe, stage = self.seen.recipe, self.seen.stage
        by_region = regions(self.seen.model, list(stage.tasks))
        params = [p for group in by_region.values() for p in group]
        buffers = {name: b.clone() for name, b in self.modules().named_buffers()}
        generator_state = recipe.generator.get_state()
        devices = [self.seen.device] if self.seen.device.type == "cuda" else []
        totals = {term: [torch.zeros_like(p) for p in params] for term in TERMS}
        with torch.random.fork_rng(devices=devices):
            for chunk in self.rows.split(self.batch_size):
                images, targets = stage.train.batch(chunk.to(self.seen.device), stage.tasks)
                batch = batch_gradients(recipe, images, targets, stage.mask[chunk], params)
                for term in TERMS:
                    totals[term] = [t + g for t, g in zip(totals[term], batch[term])]
        recipe.generator.set_state(generator_state)
        with torch.no_grad():
            for name, b in self.modules().named_buffers():
                b.copy_(buffers[name])
        flat = {}
        start = 0
        for region, group in by_region.items():
            end = start + len(group)
            flat[region] = {term: torch.cat([g.flatten() for g in totals[term][start:end]]) for term in TERMS}
            start = end
        return compare(flat)

    def epoch_log(self) -> dict[str, float]:
        return {}

    def modules(self) -> nn.Module:
        return nn.ModuleList([self.seen.model, self.seen.recipe.nets])

    def state(self) -> list[dict[str, Any]]:
        return self.records

    def restore(self, state: list[dict[str, Any]]) -> None:
        self.records = list(state)

    def report(self) -> list[dict[str, Any]]:
        return self.records


def measure_job(config: dict[str, Any], job_dir: Any, images: int = 32, every: int = 20) -> list[dict[str, Any]]:
    """Train ``config`` in validation mode (the test split is never read) into ``job_dir`` and return the
    alignment records of its first stage."""
    from ...train import run_job

    outcome = run_job(config, job_dir, test=False, observers=[GradientAlignment.factory(images, every)])
    return outcome["observed"][0]


def table(records: dict[str, list[list[dict[str, Any]]]], tasks: list[str]) -> str:
    """A markdown table: per method (its runs' records, one list per seed) and probe step, the seeds' mean of
    cos(g_R, g_hidden) per region, cos(g_R, g_sup) and |g_R| / |g_sup| on the shared parameters."""
    head = ["method", "images seen", *(f"cos(R, hidden) {r}" for r in ["shared", *tasks]),
            "cos(R, labelled) shared", "abs R / sup shared"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for method, runs in records.items():
        for at in zip(*runs):
            def mean(region: str, key: str) -> str:
                values = [record[region][key] for record in at if not math.isnan(record[region][key])]
                return f"{sum(values) / len(values):+.3f}" if values else "n/a"

            cells = [method, str(at[0]["images_seen"]), *(mean(r, "cos_hidden") for r in ["shared", *tasks]),
                     mean("shared", "cos_labelled"), mean("shared", "norm_ratio").lstrip("+")]
            lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)
