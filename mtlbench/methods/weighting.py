"""Loss weightings that Yun and Cho 2023 (Tables 1, 7) and Li et al. 2022a (Table 1) compare against.

Each returns one term per task whose sum is the objective (gradient-equivalent terms for non-linear
schemes), so every weighting composes with every gradient combiner. A task absent from a batch (no label)
has no term and its weight state is left untouched: no NaN, no update from a zero loss.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar, Literal, Optional

import torch
from torch import Tensor, nn

from ..data import DATASETS
from ..jobs import RESOLVERS, Resolution, ResultLookup
from ..registry import build, require
from ..space import Choice, Float, Space
from ..tasks import Depth, Detection, Instance, MultiLabel, Normal, Segmentation, Task
from .parts import WEIGHTINGS, Weighting

if TYPE_CHECKING:
    from ..jobs import Job


class TaskState(nn.Module):
    """Per-task parameters or buffers, indexed by task name."""

    def __init__(self, tasks: dict[str, Task]) -> None:
        super().__init__()
        self.names = list(tasks)

    def index(self, name: str) -> int:
        return self.names.index(name)


def weighted_mean_terms(weights: Tensor, task_losses: dict[str, Tensor],
                        mean: Literal["geometric", "arithmetic"]) -> dict[str, Tensor]:
    """Σ_t w_t L_t, or the weighted geometric mean Π_t L_t^{w_t} as gradient-equivalent terms
    (Π L^w) (w_t / L_t) L_t with the coefficients detached."""
    losses = torch.stack(list(task_losses.values()))
    weights = weights.to(losses.device)
    if mean == "arithmetic":
        return {t: weights[j] * losses[j] for j, t in enumerate(task_losses)}
    detached = losses.detach().clamp_min(1e-12)
    total = torch.exp((weights * detached.log()).sum())
    return {t: (total * weights[j] / detached[j]) * losses[j] for j, t in enumerate(task_losses)}


def present_weights(net: nn.Module, task_losses: dict[str, Tensor]) -> Tensor:
    return torch.stack([net.weights[net.index(t)] for t in task_losses])


@WEIGHTINGS.register("uncertainty")
@dataclass(frozen=True)
class Uncertainty(Weighting):
    """Kendall et al. (CVPR 2018), homoscedastic uncertainty, as the MTAN code base implements it:
    Σ_t exp(-s_t) L_t / 2 + s_t / 2 with s_t = log σ_t² learned by the main optimiser, initialised to -0.5."""

    init: float = -0.5

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        state = TaskState(tasks)
        state.log_variance = nn.Parameter(torch.full((len(tasks),), self.init))
        return state

    def terms(self, task_losses: dict[str, Tensor], net: nn.Module | None) -> dict[str, Tensor]:
        s = net.log_variance
        return {t: 0.5 * torch.exp(-s[net.index(t)]) * loss + 0.5 * s[net.index(t)] for t, loss in task_losses.items()}


@WEIGHTINGS.register("dwa")
@dataclass(frozen=True)
class DWA(Weighting):
    """Dynamic Weight Average (Liu et al., CVPR 2019, Eq. 1): w_t = T exp(r_t / τ) / Σ_i exp(r_i / τ) with
    r_t = L_t(e-1) / L_t(e-2), the ratio of the last two epochs' mean training losses; w = 1 in the first two
    epochs; τ = 2. L = Σ_t w_t L_t, or with ``mean: geometric`` Π_t L_t^{w_t} (Yun and Cho 2023 Table 6, DWA-G)."""

    space: ClassVar[dict[str, Space]] = {"temperature": Float(0.5, 8.0, log=True)}
    temperature: float = 2.0
    mean: Literal["arithmetic", "geometric"] = "arithmetic"

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        state = TaskState(tasks)
        state.register_buffer("history", torch.ones(2, len(tasks)))  # losses of epochs e-2, e-1
        state.register_buffer("epochs", torch.zeros((), dtype=torch.long))
        state.register_buffer("weights", torch.ones(len(tasks)))
        return state

    def end_epoch(self, net: nn.Module | None, epoch_losses: dict[str, float]) -> None:
        latest = net.history[1].clone()
        for name, loss in epoch_losses.items():
            latest[net.index(name)] = loss
        net.history.copy_(torch.stack([net.history[1], latest]))
        net.epochs += 1
        if net.epochs >= 2:
            ratio = net.history[1] / net.history[0]
            net.weights.copy_(len(ratio) * torch.softmax(ratio / self.temperature, 0))

    def terms(self, task_losses: dict[str, Tensor], net: nn.Module | None) -> dict[str, Tensor]:
        return weighted_mean_terms(present_weights(net, task_losses), task_losses, self.mean)


@WEIGHTINGS.register("gls")
@dataclass(frozen=True)
class GLS(Weighting):
    """Geometric Loss Strategy (Chennupati et al., CVPRW 2019): L = (Π_t L_t)^(1/T), over the tasks present.
    Returned as c_t L_t with c_t = L / (T L_t) detached: the same value and the same gradient."""

    def terms(self, task_losses: dict[str, Tensor], net: nn.Module | None) -> dict[str, Tensor]:
        losses = torch.stack(list(task_losses.values()))
        geometric = torch.exp(torch.log(losses.detach().clamp_min(1e-12)).mean())
        scale = geometric / (len(losses) * losses.detach().clamp_min(1e-12))
        return {t: scale[j] * loss for j, (t, loss) in enumerate(task_losses.items())}


@WEIGHTINGS.register("rlw")
@dataclass(frozen=True)
class RLW(Weighting):
    """Random Loss Weighting (Lin et al., TMLR 2022): every step, w = softmax(z) with z ~ N(0, I) over the tasks
    present; L = Σ_t w_t L_t, or with ``mean: geometric`` Π_t L_t^{w_t} (Yun and Cho 2023 Table 6, RLW-G)."""

    mean: Literal["arithmetic", "geometric"] = "arithmetic"

    def terms(self, task_losses: dict[str, Tensor], net: nn.Module | None) -> dict[str, Tensor]:
        return weighted_mean_terms(torch.softmax(torch.randn(len(task_losses)), 0), task_losses, self.mean)


ACCURACY = {Segmentation: "miou", Depth: "delta1", Normal: "within_11.25", MultiLabel: "jaccard", Detection: "map",
            Instance: "map"}  # detection: box mAP@[.5:.95] as the authors' code tracks it; instance: the mask mAP
PER_IMAGE = {"within_11.25": "within_11.25_per_image"}  # the authors' normal accuracy (test_net.py)


def accuracy_metric(task: Task, per_image: bool = False) -> str | None:
    """The accuracy AMTL's official code tracks for a task (higher is better, in [0, 1]); ``per_image``: the
    normal accuracy as the authors average it, the mean over images of each image's fraction of pixels within
    11.25 degrees (pooled over the split's pixels otherwise)."""
    metric = next((metric for kind, metric in ACCURACY.items() if isinstance(task, kind)), None)
    return PER_IMAGE.get(metric, metric) if per_image else metric


def check_accuracies(method: str, tasks: dict[str, Task]) -> None:
    missing = [t for t, task in tasks.items() if accuracy_metric(task) is None]
    if missing:
        raise ValueError(f"{method} needs an accuracy for every task; {missing} have none "
                         f"(it knows {', '.join(ACCURACY.values())})")


def accuracy_state(tasks: dict[str, Task], initial_weight: float, per_image: bool = False) -> TaskState:
    """An EMA of each task's validation accuracy, and the weights derived from it."""
    state = TaskState(tasks)
    state.metrics = [accuracy_metric(task, per_image) for task in tasks.values()]
    state.register_buffer("accuracy", torch.zeros(len(tasks)))
    state.register_buffer("measured", torch.zeros((), dtype=torch.bool))
    state.register_buffer("weights", torch.full((len(tasks),), initial_weight))
    return state


def update_accuracy(net: nn.Module, metrics: dict[str, dict[str, float]], ema: float) -> Tensor:
    """new = ema * measured + (1 - ema) * old; the first measurement is taken as is (the authors' code)."""
    measured = torch.tensor([metrics[t][m] for t, m in zip(net.names, net.metrics)], dtype=net.accuracy.dtype,
                            device=net.accuracy.device)  # the state lives on the training device
    net.accuracy.copy_(torch.where(net.measured, ema * measured + (1 - ema) * net.accuracy, measured))
    net.measured.fill_(True)
    return net.accuracy


@WEIGHTINGS.register("amtl")
@dataclass(frozen=True)
class AMTL(Weighting):
    """Achievement-based multi-task loss (Yun and Cho 2023 Eq. 3-5, the authors' defaults).

    w_t = (1 - acc_t / (m p_t))^γ with the potential p_t the STL accuracy of task t on the same dataset and
    scenario (validation split), m = 1 + ``margin``, γ = 2, normalised by a softmax over tasks; acc_t is an
    EMA of the validation accuracy (new = 0.1 measured + 0.9 old, the first measurement taken as is) updated
    after every evaluation; weights start at 1/K. The loss is the weighted geometric mean Π_t L_t^{w_t}
    (``mean: arithmetic`` for Σ w_t L_t, Table 6). Accuracies: seg mIoU, depth δ1, normals within 11.25°, cls
    Jaccard; following the authors' code (test_net.py), the normal accuracy is the mean over images of each
    image's fraction of pixels within 11.25° (``normal_accuracy: pooled`` pools the split's pixels instead),
    for the tracked accuracy and the STL potential alike. The paper is silent on an accuracy beyond the
    potential; the code raises the negative base 1 - acc/(m p) to γ, so with γ = 2 the weight rises again
    (``beyond_potential: code``, the default, which needs an integer γ); ``clip`` clips the base at 0, as
    mtlbench did before 0.2. Not in the paper: in a batch where a task has no label its term is dropped and the
    others' weights are renormalised (the authors' code takes log 0 there: NaN). Unless ``potentials`` is given, the job needs
    the suite's single-task (``networks: per_task``) jobs of its dataset, scenario and tasks, and the
    ``amtl-potentials`` resolver fills the potentials in from their results when the job starts.
    """

    space: ClassVar[dict[str, Space]] = {"gamma": Choice((1.0, 2.0, 3.0, 4.0)), "margin": Float(0.0, 0.2)}
    gamma: float = 2.0
    margin: float = 0.05
    ema: float = 0.1
    mean: Literal["geometric", "arithmetic"] = "geometric"
    potentials: Optional[dict[str, float]] = None
    beyond_potential: Literal["code", "clip"] = "code"
    normal_accuracy: Literal["per_image", "pooled"] = "per_image"

    @classmethod
    def standalone(cls, tasks: list[str]) -> dict[str, Any]:
        return {"potentials": {task: 0.5 for task in tasks}}  # a step costs the same whatever the potentials

    def __post_init__(self) -> None:
        require("gamma", self.gamma, self.gamma >= 0, "must be >= 0 (the focusing factor)")
        require("gamma", self.gamma, self.beyond_potential == "clip" or float(self.gamma).is_integer(),
                "must be an integer with beyond_potential: code (a negative base has no real fractional power); "
                "use beyond_potential: clip for a fractional gamma")
        require("margin", self.margin, self.margin >= 0, "must be >= 0")
        require("ema", self.ema, 0 < self.ema <= 1, "must lie in (0, 1]")

    def check(self, tasks: dict[str, Task]) -> None:
        check_accuracies("amtl", tasks)

    def inputs(self, job: "Job", jobs: list["Job"]) -> dict[str, list[str]]:
        if self.potentials is not None:
            return {}
        stl = [other for other in jobs if other.kind == "train" and is_stl_of(other.config, job.config)]
        same_training = [other for other in stl if other.config["train"] == job.config["train"]]
        stl = [other.id for other in same_training or stl]  # a learning-rate grid: the STL runs at the same rate
        if not stl:
            raise ValueError("amtl takes its potentials from the suite's stl results: add stl to methods, or set "
                             "weighting.potentials")
        return {"amtl-potentials": stl}

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        self.check(tasks)
        if self.potentials is None:
            raise ValueError("amtl needs the STL potentials (run the suite's stl jobs first, or set "
                             "weighting.potentials)")
        state = accuracy_state(tasks, 1.0 / len(tasks), self.normal_accuracy == "per_image")
        state.register_buffer("potential", torch.tensor([float(self.potentials[t]) for t in tasks]))
        return state

    def after_validation(self, net: nn.Module | None, metrics: dict[str, dict[str, float]]) -> None:
        accuracy = update_accuracy(net, metrics, self.ema)
        base = 1 - accuracy / ((1 + self.margin) * net.potential)
        focal = (base.clamp_min(0) if self.beyond_potential == "clip" else base) ** self.gamma
        net.weights.copy_(torch.softmax(focal, 0))

    def terms(self, task_losses: dict[str, Tensor], net: nn.Module | None) -> dict[str, Tensor]:
        weights = present_weights(net, task_losses)
        return weighted_mean_terms(weights / weights.sum(), task_losses, self.mean)


def is_stl_of(candidate: dict[str, Any], config: dict[str, Any]) -> bool:
    """Whether ``candidate`` trains single-task networks on the same data and labels as ``config``."""
    return candidate.get("method", {}).get("networks") == "per_task" and all(
        candidate[key] == config[key] for key in ("dataset", "scenario", "tasks"))


@RESOLVERS.register("amtl-potentials")
def stl_potentials(config: dict[str, Any], needs: tuple[str, ...], lookup: ResultLookup) -> Resolution:
    """AMTL's potentials: each task's STL accuracy on the validation split, the mean over the needed STL jobs
    (one per seed of the suite); recorded in the result as ``potentials``."""
    results = [lookup(job_id) for job_id in needs]
    missing = [job_id for job_id, result in zip(needs, results) if result is None]
    if missing:
        raise RuntimeError(f"amtl needs the STL potentials of jobs {', '.join(missing)}, which have not finished")
    tasks = build(DATASETS, config["dataset"]).tasks()
    per_image = config["method"]["weighting"]["normal_accuracy"] == "per_image"
    metric = {t: accuracy_metric(tasks[t], per_image) for t in config["tasks"]}
    lacking = [job_id for job_id, r in zip(needs, results) for t in config["tasks"] if metric[t] not in r["val"][t]]
    if lacking:
        raise ValueError(f"amtl: the STL results of jobs {', '.join(sorted(set(lacking)))} have no validation "
                         f"{', '.join(sorted(set(metric.values())))} (written by mtlbench < 0.2); train them again with "
                         f"--force (their ids are unchanged)")
    potentials = {t: sum(r["val"][t][metric[t]] for r in results) / len(results) for t in config["tasks"]}
    zero = [f"{t} ({metric[t]} = {p:g})" for t, p in potentials.items() if not p > 0]
    if zero:
        raise ValueError(f"amtl: the STL potential of {', '.join(zero)} is not positive (jobs {', '.join(needs)}), "
                         f"so the achievement accuracy / potential (Yun and Cho 2023 Eq. 3) is undefined: train the "
                         f"stl jobs longer, or set weighting.potentials")
    method = {**config["method"], "weighting": {**config["method"]["weighting"], "potentials": potentials}}
    return Resolution({**config, "method": method}, {"potentials": potentials})


@WEIGHTINGS.register("dtp")
@dataclass(frozen=True)
class DTP(Weighting):
    """Dynamic Task Prioritization (Guo et al., ECCV 2018, task-level focal weights), as Yun and Cho 2023 runs it
    (Tables 1, 4, 6; its authors' code base): w_t = -(1 - κ_t)^γ log κ_t with κ_t the EMA of task t's
    validation accuracy (the same accuracies and EMA as ``amtl``: new = 0.1 measured + 0.9 old), γ = 1,
    weights 1 until the first evaluation and not normalised; L = Σ_t w_t L_t (``mean: geometric`` gives the
    DTP-G row of Table 6, Π_t L_t^{w_t}). A task without labels in a batch has no term."""

    space: ClassVar[dict[str, Space]] = {"gamma": Float(0.5, 4.0)}
    gamma: float = 1.0
    ema: float = 0.1
    mean: Literal["geometric", "arithmetic"] = "arithmetic"

    def __post_init__(self) -> None:
        require("gamma", self.gamma, self.gamma >= 0, "must be >= 0 (the focusing factor)")
        require("ema", self.ema, 0 < self.ema <= 1, "must lie in (0, 1]")

    def check(self, tasks: dict[str, Task]) -> None:
        check_accuracies("dtp", tasks)

    def build(self, tasks: dict[str, Task], model: nn.Module) -> nn.Module:
        self.check(tasks)
        return accuracy_state(tasks, 1.0)

    def after_validation(self, net: nn.Module | None, metrics: dict[str, dict[str, float]]) -> None:
        kpi = update_accuracy(net, metrics, self.ema)
        net.weights.copy_(-((1 - kpi) ** self.gamma) * torch.log(kpi + 1e-20))

    def terms(self, task_losses: dict[str, Tensor], net: nn.Module | None) -> dict[str, Tensor]:
        return weighted_mean_terms(present_weights(net, task_losses), task_losses, self.mean)
