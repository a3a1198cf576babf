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
from ..data.base import Split
from ..distributed import Shard, gather_rows, own_rows, shard, sum_gradients, summed_over_ranks, world
from ..registry import Registry, build
from ..models.protocol import computes_losses
from ..tasks import Task
from .context import MetaStep, SeenBatch, StepContext, View
from .parts import SUPERVISIONS, GRADIENTS, REGULARIZERS, WEIGHTINGS
from .solvers import check_failure_rate, solver_report

AXES = {"supervision": SUPERVISIONS, "weighting": WEIGHTINGS, "gradients": GRADIENTS, "regularizer": REGULARIZERS}
AXIS_ALIASES = {"allocation": "supervision"}  # the axis' name until 0.2, still read in suites
NETWORKS = ("shared", "per_task")
COUNTERS = (".solver_calls", ".solver_failures")

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
preset("jtr_no_recon", regularizer={"name": "jtr", "reconstruction": False})  # Nishi et al. 2024 Table 8
for _distance in ("l1", "l2"):  # Nishi et al. 2024 Table 16
    preset(f"jtr_{_distance}", regularizer={"name": "jtr", "distance": _distance})
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
# the balancers and aggregators of 2020-2024 (issue 34; docs/methods.md, "Loss balancers and gradient aggregators")
for _weighting in ("si", "imtl_l", "uw_so", "famo", "stch", "auto_lambda"):
    preset(_weighting, weighting=_weighting)
for _gradients in ("upgrad", "dualproj", "config_grad", "graddrop", "aligned_mtl", "rgw", "nash_mtl", "fairgrad",
                   "gradvac", "moco", "excess_mtl"):
    preset(_gradients, gradients=_gradients)
preset("cosreg", gradients="cosreg")  # Suteu and Guo 2019, Li et al. 2022a Table 1
for _supervision in ("sta", "ista"):  # Li et al. 2022a Table 6 (PCGrad) and Figs. 5-6 (GradNorm)
    preset(f"{_supervision}+pcgrad", supervision=_supervision, gradients="pcgrad")
preset("sta+gradnorm", supervision="sta", gradients="gradnorm")
preset("imtl", weighting="imtl_l", gradients="imtl_g")  # Liu et al. 2021: IMTL-L on every loss, IMTL-G on shared
preset("db_mtl", weighting={"name": "si", "eps": 1e-8}, gradients="db_mtl")  # Lin et al. 2023: both balancings
# students of single-task teachers (the suite's stl jobs; methods/teachers.py): Yun and Cho 2023 Table 8
preset("must", supervision="must")  # Ghiasi et al. 2021: hard pseudo-labels; Nishi et al. 2024 Table 9
preset("noisy_student", supervision="noisy_student")  # Xie et al. 2020: soft pseudo-labels, a noised student
preset("kd_mtl", regularizer="kd_mtl")  # Li and Bilen 2020: feature distillation through task adaptors


def single_device_parts(method: dict[str, Any]) -> list[str]:
    """The method's parts that cannot train one job on several devices, each with its reason."""
    parts = {axis: build(registry, method[axis]) for axis, registry in AXES.items()}
    return [f"{axis} {method[axis]['name']!r}: {part.single_device}" for axis, part in parts.items()
            if part.single_device]


class Recipe:
    """The parts of one method, bound to a model: one call of ``train_step`` per batch."""

    def __init__(self, method: dict[str, Any], tasks: dict[str, Task], model: nn.Module,
                 augment: Augment = Augment(), generator: torch.Generator | None = None,
                 autocast: Callable[[], AbstractContextManager] = nullcontext):
        self.parts = {axis: build(registry, method[axis]) for axis, registry in AXES.items()}
        self.part_names = {axis: method[axis]["name"] for axis in AXES}
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
        if self.weighting.meta_batches and method["regularizer"]["name"] != "none":
            raise ValueError(f"method {method.get('name', '')}: weighting {method['weighting']['name']!r} meta-learns "
                             f"the task weights from the supervised losses alone; use regularizer: none")
        self.previous: SeenBatch | None = None  # the epoch's previous batch, for a weighting's meta step
        self.term_watchers: list[Callable[[dict[str, Tensor]], None]] = []  # observers of each update's task terms
        if self.model_losses and method["regularizer"]["name"] != "none":
            raise ValueError(f"method {method.get('name', '')}: regularizer {method['regularizer']['name']!r} needs "
                             f"the model's predictions of the training batch, and {type(model).__name__} computes its "
                             f"losses from its proposals instead; use regularizer: none")

    def relabel(self, train: Split, mask: Tensor, batch_size: int) -> tuple[Split, Tensor, dict[str, Any]]:
        """The training split and mask as the supervision trains with them, and its report (``Supervision.relabel``)."""
        return self.supervision.relabel(self.tasks, self.model, train, mask, batch_size, self.autocast)

    def net(self, axis: str) -> nn.Module | None:
        return self.nets[axis] if axis in self.nets else None

    def parameters(self) -> list[nn.Parameter]:
        """What the main optimiser trains: the model and the parts' shared parameters."""
        extra = [p for axis, net in self.nets.items() for p in self.parts[axis].main_parameters(net)]
        return [*self.model.parameters(), *extra]

    def to(self, device: torch.device) -> "Recipe":
        self.nets.to(device)
        return self

    def views(self, images: Tensor, targets: dict[str, Tensor], seen: Tensor | None = None,
              part: Shard | None = None) -> list[View]:
        """View 0 (``seen``, or the batch augmented photometrically) and ``extra_views`` further augmentations of
        it, forwarded as one batch (``part``: this device's share of the global batch)."""
        warps = [self.augment.sample(images, self.generator, part) for _ in range(self.regularizer.extra_views)]
        views = [seen if seen is not None else self.augment.photometric(images, self.generator, part),
                 *(self.augment.photometric(w.images(images), self.generator, part) for w in warps)]
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
        even a zero one that Adam's momentum would turn into an update). On several devices (mtlbench/distributed.py)
        ``images`` and ``targets`` are this device's share of the batch and ``supervise`` is the whole batch's.
        """
        names = list(self.tasks)
        rows = {t: supervise[:, j].nonzero().squeeze(1) for j, t in enumerate(names)}
        active = [t for t in names if len(rows[t])]
        part = shard(len(supervise))
        optimizer.zero_grad(set_to_none=True)
        for own, _ in self.own:
            own.zero_grad(set_to_none=True)
        device_rows = {t: own_rows(rows[t]).to(images.device, non_blocking=True) for t in active}
        if self.weighting.meta_batches:
            seen = self.meta_step(optimizer, images, targets, device_rows, {t: rows[t] for t in active}, supervise)
            views = None if self.model_losses else self.views(images, targets, seen)
        elif self.model_losses:
            views, seen = None, self.augment.photometric(images, self.generator, part) if active else images
        else:
            views = self.views(images, targets, part=part)
            seen = views[0].images
        per_image = self.gathered(self.losses_per_image(seen, targets, views, device_rows), rows)
        task_losses = self.supervision.task_losses(per_image, {t: rows[t] for t in active}, supervise) \
            if active else {}
        terms = self.weighting.terms(task_losses, self.net("weighting")) if task_losses else {}
        with self.autocast():
            regularization = None if views is None else self.regularizer.loss(
                StepContext(self.tasks, supervise, views, part.rows if part else None), self.net("regularizer"))
        if regularization is not None:
            logs["regularizer"] = logs.get("regularizer", 0) + summed_over_ranks(regularization.detach())
        if not terms and regularization is None:
            return
        for watch in self.term_watchers:
            watch(terms)
        self.gradients.backward(terms, regularization, self.model, self.net("gradients"))
        if world() > 1:
            self.sum_shares()
        optimizer.step()
        for own, _ in self.own:
            own.step()
        if self.weighting.losses_after_update and task_losses:
            batch = SeenBatch(seen, targets, device_rows, {t: rows[t] for t in active}, supervise)
            with torch.no_grad():
                after = self.task_losses_on(self.model, batch)
            self.weighting.after_update(self.net("weighting"), {t: v.detach() for t, v in task_losses.items()}, after)
        for t, loss in task_losses.items():
            logs[f"loss/{t}"] = logs.get(f"loss/{t}", 0) + loss.detach()

    def losses_per_image(self, seen: Tensor, targets: dict[str, Tensor], views: list[View] | None,
                         rows: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each supervised task's loss on its supervised images: the task's on the model's predictions, or, for a
        model that computes its losses (a two-stage detector), the model's on ``seen``, the photometrically
        augmented batch."""
        if views is None:
            if not rows:
                return {}
            with self.autocast():
                return self.model.losses_per_image(seen, targets, rows)
        return self.losses_of(views[0].preds, targets, rows)

    def gathered(self, per_image: dict[str, Tensor], rows: dict[str, Tensor]) -> dict[str, Tensor]:
        """Each task's per-image losses over the global batch's ``rows``, from this device's (one device: as they are)."""
        if world() == 1:
            return per_image
        return {t: gather_rows(loss, rows[t]) for t, loss in per_image.items()}

    def sum_shares(self) -> None:
        """The network's gradients, each device's share of them, summed over the devices, but for those the gradient
        rule left whole, and the regularizer's networks' (each device's images' share); the weighting's and the rule's
        own parameters see global values only and are whole too."""
        whole = {id(p) for p in self.gradients.whole_gradients(self.model)}
        regularizer = self.net("regularizer")
        sum_gradients([p for p in self.model.parameters() if id(p) not in whole] +
                      (list(regularizer.parameters()) if regularizer is not None else []))

    def losses_of(self, preds: dict[str, Tensor], targets: dict[str, Tensor],
                  rows: dict[str, Tensor]) -> dict[str, Tensor]:
        return {t: self.tasks[t].loss_per_image(preds[t][r], targets[t][r]) for t, r in rows.items()}

    def task_losses_on(self, model: nn.Module, batch: SeenBatch) -> dict[str, Tensor]:
        """The present tasks' losses of ``model`` (the recipe's, or a copy with other weights) on a seen batch:
        FAMO's losses after the update, Auto-λ's virtual step."""
        if self.model_losses:
            with self.autocast():
                per_image = model.losses_per_image(batch.images, batch.targets, batch.device_rows)
        else:
            with self.autocast():
                preds = model(batch.images)
            per_image = self.losses_of(preds, batch.targets, batch.device_rows)
        return self.supervision.task_losses(self.gathered(per_image, batch.rows), batch.rows, batch.mask)

    def meta_step(self, optimizer: torch.optim.Optimizer, images: Tensor, targets: dict[str, Tensor],
                  device_rows: dict[str, Tensor], rows: dict[str, Tensor], supervise: Tensor) -> Tensor:
        """Augment the batch, let the weighting meta-learn on it against the epoch's previous batch, and return
        the augmented images the update trains on."""
        seen = self.augment.photometric(images, self.generator) if rows or not self.model_losses else images
        batch = SeenBatch(seen, targets, device_rows, rows, supervise)
        if self.previous is not None and rows and self.previous.rows:
            self.weighting.meta_step(self.net("weighting"), MetaStep(self.model, optimizer, batch, self.previous,
                                                                     self.task_losses_on))
            optimizer.zero_grad(set_to_none=True)
        self.previous = batch
        return seen

    def end_epoch(self, epoch_losses: dict[str, float]) -> None:
        self.previous = None  # a meta step pairs batches of one epoch only, so a resumed run makes the same steps
        for _, scheduler in self.own:
            scheduler.step()
        for axis, part in self.parts.items():
            part.end_epoch(self.net(axis), epoch_losses)

    def after_validation(self, metrics: dict[str, dict[str, float]]) -> None:
        for axis, part in self.parts.items():
            part.after_validation(self.net(axis), metrics)

    def solver_counts(self) -> dict[str, dict[str, int]]:
        """For each part that solves a problem every step, its calls and failures so far (methods/solvers.py)."""
        return {axis: report for axis in self.parts if (report := solver_report(self.net(axis)))}

    def check_solvers(self) -> None:
        """Raise SolverFailures if a part's solver failed on more steps than its ``max_failure_rate`` allows."""
        for axis, part in self.parts.items():
            check_failure_rate(self.part_names[axis], self.net(axis), getattr(part, "max_failure_rate", None))

    def state_dict(self) -> dict[str, Any]:
        return {"nets": self.nets.state_dict(), "own": [(o.state_dict(), s.state_dict()) for o, s in self.own]}

    def load_state_dict(self, state: dict[str, Any]) -> None:
        missing, unexpected = self.nets.load_state_dict(state["nets"], strict=False)
        lost = [key for key in missing if not key.endswith(COUNTERS)]  # counters came with 0.3: they restart
        if lost or unexpected:
            raise RuntimeError(f"the checkpoint's method state does not fit this method: missing {lost}, "
                               f"unexpected {unexpected}")
        for (optimizer, scheduler), (o, s) in zip(self.own, state["own"], strict=True):
            optimizer.load_state_dict(o)
            scheduler.load_state_dict(s)
