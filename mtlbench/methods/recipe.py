"""A training method is a recipe: one part per axis (methods/parts.py) plus how many networks it trains.

``METHODS`` holds the named presets a suite refers to; a suite may also spell out a recipe explicitly
(``{name: my_method, supervision: full, weighting: uniform, ...}``). Presets are plain data, so the resolved
job config (and its hash) records every part and hyperparameter that the method ran with.
"""
from __future__ import annotations

from contextlib import AbstractContextManager, nullcontext
from typing import Any, Callable

import torch
from torch import Tensor, nn

from ..data.augment import Augment, warped_targets
from ..registry import Registry, build
from ..models.protocol import computes_losses
from ..tasks import Task
from .context import StepContext, View
from .parts import SUPERVISIONS, GRADIENTS, REGULARIZERS, WEIGHTINGS

AXES = {"supervision": SUPERVISIONS, "weighting": WEIGHTINGS, "gradients": GRADIENTS, "regularizer": REGULARIZERS}
AXIS_ALIASES = {"allocation": "supervision"}  # the axis' name until 0.2, still read in suites
NETWORKS = ("shared", "per_task")

METHODS: Registry[dict[str, Any]] = Registry("method")


def preset(name: str, networks: str = "shared", **parts: str | dict[str, Any]) -> None:
    recipe = {"supervision": "full", "weighting": "uniform", "gradients": "sum", "regularizer": "none", **parts}
    METHODS.register(name)({"name": name, "networks": networks,
                            **{k: v if isinstance(v, dict) else {"name": v} for k, v in recipe.items()}})


PLAIN = "supervised"  # the plain recipe, every part at its default: what other recipes are measured against
preset(PLAIN)  # Nishi et al. 2024 Eq. 1: one shared network, each image's labelled tasks averaged
preset("stl", networks="per_task")  # one network per task, trained on that task's labelled images only
preset("consistency", regularizer="consistency")  # Nishi et al. 2024 Eq. 2
preset("mtpsl", regularizer="mtpsl")  # Li et al. 2022b as Nishi et al. 2024 Eq. 3 and the released code
preset("jtr", regularizer="jtr")  # Nishi et al. 2024 Eq. 4-6, the released code's gradient flow
for _supervision in ("sta", "ista", "ft_plus"):  # Li et al. 2022a Alg. 1, Alg. 2, Table 5
    preset(_supervision, supervision=_supervision)
for _weighting in ("uncertainty", "dwa", "gls", "rlw"):  # the loss weightings of Li et al. 2022a and Yun and Cho 2023
    preset(_weighting, weighting=_weighting)
# the gradient combiners of Li et al. 2022a and Yun and Cho 2023
for _gradients in ("pcgrad", "imtl_g", "mgda", "cagrad", "gradnorm"):
    preset(_gradients, gradients=_gradients)
preset("sta+uncertainty", supervision="sta", weighting="uncertainty")  # Li et al. 2022a Tables 1, 3
preset("ista+uncertainty", supervision="ista", weighting="uncertainty")
preset("pcgrad+uncertainty", gradients="pcgrad", weighting="uncertainty")
preset("amtl", weighting="amtl")  # Yun and Cho 2023 Eq. 3-5
preset("amtl+pcgrad", weighting="amtl", gradients="pcgrad")
preset("ista+gradnorm", supervision="ista", gradients="gradnorm")  # Li et al. 2022a Figs. 5-6
for _gap in (2, 4, 8, 16):  # Li et al. 2022a Table 7
    preset(f"sta_gap{_gap}", supervision={"name": "sta_gap", "gap": _gap})
preset("dtp", weighting="dtp")  # Guo et al. 2018, as Yun and Cho 2023 runs it
for _weighting in ("rlw", "dwa", "dtp"):  # Yun and Cho 2023 Table 6: the weighted geometric mean
    preset(f"{_weighting}_g", weighting={"name": _weighting, "mean": "geometric"})
preset("amtl+cagrad", weighting="amtl", gradients="cagrad")  # Yun and Cho 2023 Table 5


class Recipe:
    """The parts of one method, bound to a model: one call of ``train_step`` per batch."""

    def __init__(self, method: dict[str, Any], tasks: dict[str, Task], model: nn.Module,
                 augment: Augment = Augment(), generator: torch.Generator | None = None,
                 autocast: Callable[[], AbstractContextManager] = nullcontext):
        self.parts = {axis: build(registry, method[axis]) for axis, registry in AXES.items()}
        self.supervision, self.weighting, self.gradients, self.regularizer = self.parts.values()
        self.tasks, self.model, self.augment, self.autocast = tasks, model, augment, autocast
        self.generator = generator or torch.Generator().manual_seed(0)
        built = {axis: part.build(tasks, model) for axis, part in self.parts.items()}
        self.nets = nn.ModuleDict({axis: net for axis, net in built.items() if net is not None})
        self.own = [pair for axis, net in self.nets.items() for pair in self.parts[axis].own_optimizers(net)]
        self.model_losses = computes_losses(model)
        needing = [t for t, task in tasks.items() if task.loss_from_model]
        if needing and not self.model_losses:
            raise ValueError(f"task {needing[0]}: its loss is its model's, and {type(model).__name__} computes none; "
                             f"train it with model: maskrcnn")
        if self.model_losses and method["regularizer"]["name"] != "none":
            raise ValueError(f"method {method.get('name', '')}: regularizer {method['regularizer']['name']!r} needs "
                             f"the model's predictions of the training batch, and {type(model).__name__} computes its "
                             f"losses from its proposals instead; use regularizer: none")

    def net(self, axis: str) -> nn.Module | None:
        return self.nets[axis] if axis in self.nets else None

    def parameters(self) -> list[nn.Parameter]:
        """What the main optimiser trains: the model and the parts' shared parameters."""
        extra = [p for axis, net in self.nets.items() for p in self.parts[axis].main_parameters(net)]
        return [*self.model.parameters(), *extra]

    def to(self, device: torch.device) -> "Recipe":
        self.nets.to(device)
        return self

    def views(self, images: Tensor, targets: dict[str, Tensor]) -> list[View]:
        """View 0 and ``extra_views`` further augmentations of it, forwarded as one batch."""
        warps = [self.augment.sample(images, self.generator) for _ in range(self.regularizer.extra_views)]
        views = [self.augment.photometric(view, self.generator) for view in [images, *(w.images(images) for w in warps)]]
        batch = torch.cat(views) if warps else views[0]
        with self.autocast():
            preds, feature = self.model(batch, return_feature=True)
        b = len(images)
        chunks = [slice(i * b, (i + 1) * b) for i in range(len(warps) + 1)]
        return [View(batch[c], warped_targets(w, targets, self.tasks) if w else targets, {t: p[c] for t, p in preds.items()},
                     feature[c], w) for c, w in zip(chunks, [None, *warps])]

    @property
    def interleaved_batches(self) -> int:
        return self.supervision.interleaved_batches

    def train_step(self, optimizer: torch.optim.Optimizer, images: Tensor, targets: dict[str, Tensor],
                   mask: Tensor) -> dict[str, Tensor]:
        """One batch: every sub-step the allocation asks for is a forward, a backward and an update."""
        return self.train_batches(optimizer, [(images, targets, mask)])

    def train_batches(self, optimizer: torch.optim.Optimizer,
                      batches: list[tuple[Tensor, dict[str, Tensor], Tensor]]) -> dict[str, Tensor]:
        """Consecutive batches taking turns: round r makes the r-th sub-step of every batch that has one, so
        a batch meets its next allocation ``len(batches)`` updates later (one batch: back to back)."""
        plans = [self.supervision.steps(mask) for _, _, mask in batches]
        logs: dict[str, Tensor] = {}
        for r in range(max(map(len, plans))):
            for (images, targets, _), plan in zip(batches, plans):
                if r < len(plan):
                    self.update(optimizer, images, targets, plan[r], logs)
        return logs

    def update(self, optimizer: torch.optim.Optimizer, images: Tensor, targets: dict[str, Tensor],
               supervise: Tensor, logs: dict[str, Tensor]) -> None:
        """A forward, a backward and an update, supervised by the (image, task) pairs of ``supervise``.

        ``supervise`` [B, T] lives on the CPU, so selecting the labelled rows of each task costs no device
        sync. A task with no supervised image gets no loss term at all, so its head receives no gradient (not
        even a zero one that Adam's momentum would turn into an update).
        """
        names = list(self.tasks)
        rows = {t: supervise[:, j].nonzero().squeeze(1) for j, t in enumerate(names)}
        active = [t for t in names if len(rows[t])]
        optimizer.zero_grad(set_to_none=True)
        for own, _ in self.own:
            own.zero_grad(set_to_none=True)
        device_rows = {t: rows[t].to(images.device, non_blocking=True) for t in active}
        views = None if self.model_losses else self.views(images, targets)
        per_image = self.losses_per_image(images, targets, views, device_rows)
        task_losses = self.supervision.task_losses(per_image, {t: rows[t] for t in active}, supervise) \
            if active else {}
        terms = self.weighting.terms(task_losses, self.net("weighting")) if task_losses else {}
        with self.autocast():
            regularization = None if views is None else self.regularizer.loss(
                StepContext(self.tasks, supervise, views), self.net("regularizer"))
        if regularization is not None:
            logs["regularizer"] = logs.get("regularizer", 0) + regularization.detach()
        if not terms and regularization is None:
            return
        self.gradients.backward(terms, regularization, self.model, self.net("gradients"))
        optimizer.step()
        for own, _ in self.own:
            own.step()
        for t, loss in task_losses.items():
            logs[f"loss/{t}"] = logs.get(f"loss/{t}", 0) + loss.detach()

    def losses_per_image(self, images: Tensor, targets: dict[str, Tensor], views: list[View] | None,
                         rows: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each supervised task's loss on its supervised images: the task's on the model's predictions, or, for a
        model that computes its losses (a two-stage detector), the model's on the photometrically augmented batch."""
        if views is None:
            if not rows:
                return {}
            with self.autocast():
                return self.model.losses_per_image(self.augment.photometric(images, self.generator), targets, rows)
        preds = views[0].preds
        return {t: self.tasks[t].loss_per_image(preds[t][r], targets[t][r]) for t, r in rows.items()}

    def end_epoch(self, epoch_losses: dict[str, float]) -> None:
        for _, scheduler in self.own:
            scheduler.step()
        for axis, part in self.parts.items():
            part.end_epoch(self.net(axis), epoch_losses)

    def after_validation(self, metrics: dict[str, dict[str, float]]) -> None:
        for axis, part in self.parts.items():
            part.after_validation(self.net(axis), metrics)

    def state_dict(self) -> dict[str, Any]:
        return {"nets": self.nets.state_dict(), "own": [(o.state_dict(), s.state_dict()) for o, s in self.own]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        self.nets.load_state_dict(state["nets"])
        for (optimizer, scheduler), (o, s) in zip(self.own, state["own"], strict=True):
            optimizer.load_state_dict(o)
            scheduler.load_state_dict(s)
