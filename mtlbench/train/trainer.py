"""The one training loop of mtlbench: a resolved job config in, per-epoch history and test metrics out.

Every track trains through ``run_job``; methods differ only in their recipe (methods/). A job trains one or
more *stages*: a shared network for the MTL recipes, one network per task for ``networks: per_task``. Each stage
checkpoints after every epoch (model, optimiser, scheduler, RNG states, history) and resumes exactly from
its checkpoint. The model is selected by nothing: the last epoch's network is tested, and the validation
split is evaluated after every epoch for tracking (and for tuning, which never sees the test split); with
``train.test_every_epoch`` the test split too, so that a leaderboard can report the epoch chosen on validation.

Only torch and numpy are needed here; W&B and the results store reach the trainer through callbacks.
"""
from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import time
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Protocol, Sequence

import numpy as np
import torch
from torch import Tensor, nn

from ..data import DATASETS, SPLITS, LabelPlan, Split, prepared, scenario
from ..data.streaming import feed
from ..data.augment import Augment
from ..distributed import Shard, broadcast_state, rank, shard, with_global_batchnorm, world
from ..errors import UserError
from ..files import write_atomic
from ..jobs import RESUMED, EpochCallback, Hooks, Step, StepCallback
from ..kernels import cpu_kernels, use_cpu_kernels
from ..methods import Recipe
from ..models import MODELS
from ..registry import build
from ..tasks import Task
from . import checkpoint
from .costs import PeakMemory, counted_flops, job_costs, parameter_count
from .evaluation import constant_reference, evaluate, unmergeable
from .optim import OPTIMIZERS, SCHEDULERS, group_record, parameter_groups
from .ranks import DevicesError, check_devices, run_on_devices
from .settings import JobSpec, TrainSettings

def derive_seed(*parts: Any) -> int:
    """A seed per experiment axis: the same (seed, stage, purpose) always gives the same stream."""
    return int(hashlib.sha256(json.dumps(parts).encode()).hexdigest()[:8], 16)


class DeviceError(UserError, ValueError):
    """A device name torch does not know."""


def check_device(name: str) -> str:
    """``name`` if torch can name it (``auto`` too); whether this machine has it is checked where a run starts."""
    if name != "auto":
        try:
            torch.device(name)
        except RuntimeError:
            raise DeviceError(f"{name!r} is not a device torch knows; use auto, cpu, cuda, cuda:N or mps") from None
    return name


def resolve_device(name: str) -> torch.device:
    """The device ``train.device`` names, with this process's CPU kernels set for the job (mtlbench.kernels)."""
    use_cpu_kernels(torch)
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    return torch.device(name)


def rank_device(name: str) -> torch.device:
    """This rank's device of a job on several (mtlbench/distributed.py): cuda:(i + rank) from the job's cuda:i."""
    device = resolve_device(name)
    return torch.device("cuda", (device.index or 0) + rank()) if device.type == "cuda" else device


PRECISIONS = ("auto", "fp32", "tf32", "bf16")


def autocast_for(device: torch.device, precision: str = "auto") -> Callable[[], contextlib.AbstractContextManager]:
    """The numeric precision of a job (``train.precision``), as an autocast context, and TF32 switched on or
    off for CUDA matmuls and convolutions (process-wide flags, set for each job):

    - ``fp32``: float32 throughout, TF32 off (as the authors' scripts run);
    - ``tf32``: float32 storage, TF32 tensor-core matmuls and convolutions;
    - ``bf16``: bfloat16 autocast (on the CPU too), PyTorch's default TF32 flags;
    - ``auto`` (the default): bf16 on CUDA, fp32 elsewhere, PyTorch's default TF32 flags (mtlbench before 0.2).
    """
    if precision not in PRECISIONS:
        raise ValueError(f"train.precision {precision!r}: choose one of {', '.join(PRECISIONS)}")
    if device.type == "cuda":
        tf32 = {"fp32": (False, False), "tf32": (True, True)}.get(precision, (False, True))  # PyTorch defaults
        torch.backends.cuda.matmul.allow_tf32, torch.backends.cudnn.allow_tf32 = tf32
    if precision == "bf16" or (precision == "auto" and device.type == "cuda"):
        return lambda: torch.autocast(device.type, dtype=torch.bfloat16)
    return contextlib.nullcontext


def device_name(device: torch.device) -> str:
    if device.type == "cuda":
        return torch.cuda.get_device_name(device)
    return f"{cpu_model()}, {torch.get_num_threads()} threads, {cpu_kernels()} kernels"


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    import platform

    return platform.processor() or platform.machine()


def cycled(items: Tensor, count: int, generator: torch.Generator) -> Tensor:
    """``count`` items drawn as consecutive fresh permutations of ``items`` (a small set is over-sampled)."""
    rounds = -(-count // len(items))
    return torch.cat([items[torch.randperm(len(items), generator=generator)] for _ in range(rounds)])[:count]


@dataclass
class Stage:
    """One network to train: its name, its tasks, the training images it sees and their label mask."""

    name: str
    tasks: dict[str, Task]
    train: Split
    mask: Tensor  # [N_stage, T_stage], CPU
    appended: Tensor = field(default_factory=lambda: torch.zeros(0, dtype=torch.long))  # see LabelPlan
    per_batch: int = 0
    per_task: bool = False
    steps: int = 0  # per_task: steps per epoch (0: as many labels as there are)

    def batches(self, batch_size: int, generator: torch.Generator) -> list[tuple[Tensor, Tensor]]:
        """One epoch of (image rows, their label mask [B, T]).

        By default the regular images in random order, ``per_batch`` appended images added to each batch
        (cycling through fresh permutations of them). With ``per_task``, every step holds one mini-batch of
        ``batch_size`` images per task, drawn from that task's labelled images and supervising that task only;
        an epoch draws as many (image, task) labels as the stage has, or ``steps`` steps.
        """
        if self.per_task:
            return self.per_task_batches(batch_size, generator)
        if not self.per_batch:
            return [(index, self.mask[index]) for index in torch.randperm(len(self.train), generator=generator)
                    .split(batch_size)]
        is_appended = torch.zeros(len(self.train), dtype=torch.bool)
        is_appended[self.appended] = True
        regular = (~is_appended).nonzero().squeeze(1)
        batches = list(regular[torch.randperm(len(regular), generator=generator)].split(batch_size))
        draws = cycled(self.appended, len(batches) * self.per_batch, generator)
        indices = [torch.cat([b, draws[i * self.per_batch:(i + 1) * self.per_batch]]) for i, b in enumerate(batches)]
        return [(index, self.mask[index]) for index in indices]

    def batch_sizes(self, batch_size: int) -> list[int]:
        """The sizes of an epoch's batches, as ``batches`` makes them (without drawing them): what a schedule
        stepped per batch needs to know before the first epoch."""
        if self.per_task:
            labels = [int(n) for n in self.mask.sum(0).tolist() if n]
            return [len(labels) * batch_size] * (self.steps or -(-sum(labels) // (len(labels) * batch_size)))
        regular = len(self.train) - (len(self.appended) if self.per_batch else 0)
        sizes = [batch_size] * (regular // batch_size) + ([regular % batch_size] if regular % batch_size else [])
        return [size + self.per_batch for size in sizes]

    def per_task_batches(self, batch_size: int, generator: torch.Generator) -> list[tuple[Tensor, Tensor]]:
        labelled = {j: self.mask[:, j].nonzero().squeeze(1) for j in range(self.mask.shape[1])}
        labelled = {j: rows for j, rows in labelled.items() if len(rows)}
        steps = self.steps or -(-sum(map(len, labelled.values())) // (len(labelled) * batch_size))
        draws = {j: cycled(rows, steps * batch_size, generator).view(steps, batch_size) for j, rows in labelled.items()}
        block_mask = torch.zeros(len(labelled) * batch_size, self.mask.shape[1])
        for k, j in enumerate(labelled):
            block_mask[k * batch_size:(k + 1) * batch_size, j] = 1
        return [(torch.cat([draws[j][s] for j in labelled]), block_mask) for s in range(steps)]


@dataclass
class StageResult:
    history: list[dict[str, Any]] = field(default_factory=list)
    test: dict[str, dict[str, float]] = field(default_factory=dict)
    resumed_from_epoch: int = 0
    train_seconds: float = 0.0
    first_loss: dict[str, float] = field(default_factory=dict)  # task -> its training loss at its first step
    images_left_out: int = 0  # per epoch, in batches shorter than the model's min_batch
    model: nn.Module | None = None  # the trained network, for procedures that use it further (not saved here)
    observed: list[Any] = field(default_factory=list)  # what each StepObserver reports
    step_flops: int | None = None  # one training step's, per batch (costs.py); None: no step was counted
    parameters: int = 0  # the network's
    method_parameters: int = 0  # those the method learns beside the network
    pseudo_labels: dict[str, Any] = field(default_factory=dict)  # task -> what of its targets are teachers'
    optimizer_groups: dict[str, Any] = field(default_factory=dict)  # named parameter groups (train.optimizer.head_lr)


class StepObserver(Protocol):
    """Watches a stage's training steps, as a Lightning callback does (the estimates some tracks take while a
    network trains); its state is checkpointed with the stage."""

    def after_step(self, step: int) -> None: ...

    def epoch_log(self) -> dict[str, float]:
        """What the epoch's record (W&B history) gets from the observer, read once after each epoch."""
        ...

    def state(self) -> Any: ...

    def restore(self, state: Any) -> None: ...

    def report(self) -> Any: ...


@dataclass(frozen=True)
class Observed:
    """What a step observer is built from: the job, the stage being trained, its network, optimiser and
    recipe, the validation split and the device."""

    job: JobSpec
    stage: Stage
    model: nn.Module
    optimizer: torch.optim.Optimizer
    recipe: Recipe
    val: Split
    device: torch.device
    autocast: Callable[[], contextlib.AbstractContextManager] = contextlib.nullcontext


ObserverFactory = Callable[[Observed], StepObserver]
# Sets a stage's freshly built network before its recipe and optimiser are made (a track's initial weights, such as
# another job's encoder); a checkpoint restored afterwards overrides it, so a resumed job resumes what it trained.
Initialiser = Callable[["Stage", nn.Module], None]


def plan_stages(networks: str, tasks: dict[str, Task], train: Split, plan: LabelPlan) -> list[Stage]:
    mask_t = torch.from_numpy(plan.mask)
    if networks == "shared":
        return [Stage("mtl", tasks, train, mask_t, torch.from_numpy(plan.appended), plan.per_batch, plan.per_task,
                      plan.steps)]
    stages = []
    for j, (name, task) in enumerate(tasks.items()):
        labelled = mask_t[:, j].nonzero().squeeze(1)
        stages.append(Stage(name, {name: task}, train.subset(labelled.to(train.device)).select([name]),
                            torch.ones(len(labelled), 1)))
    return stages


@dataclass
class JobData:
    """A job's tasks, its splits on the device and the label plan of its training split."""

    tasks: dict[str, Task]
    splits: dict[str, Split]
    plan: LabelPlan
    source: str = "files"  # where the splits were read: the dataset's own files, or its prepared folder


def load_job_data(job: JobSpec, device: torch.device, test: bool = True) -> JobData:
    """The data a job trains on; ``test=False`` for jobs that must not read the test split (estimates that
    decide an experiment)."""
    dataset = build(DATASETS, job.dataset)
    names = list(job.tasks)
    tasks = smoothed({name: dataset.tasks()[name] for name in names}, job.train.label_smoothing)
    wanted = [s for s in SPLITS if test or s != "test"]
    labels = scenario(job.scenario)
    source = prepared.Source.of(job.dataset, wanted + (["pool"] if labels.pool else []))
    splits = {s: source.split(dataset, job.dataset, s).select(names) for s in wanted}
    n_pool = dataset.split_size("pool") if labels.pool else 0
    plan = labels.plan(len(splits["train"]), names, job.scenario["mask_seed"], n_pool)
    if labels.pool:
        splits["train"] = splits["train"].concat(source.split(dataset, job.dataset, "pool").select(names))
    return JobData(tasks, {name: split.to(device) for name, split in splits.items()},
                   within_labels(plan, splits["train"], names), source.describe())


def within_labels(plan: LabelPlan, train: Split, names: list[str]) -> LabelPlan:
    """The scenario's mask left only where the dataset has labels (a dataset assembled from sources labels each
    task on its source's images alone)."""
    labelled = train.labelled  # a streamed split reads its flags from disk: once
    if not labelled:
        return plan
    has = np.stack([labelled[name].cpu().numpy() if name in labelled else np.ones(len(train), bool)
                    for name in names], 1)
    return dataclasses.replace(plan, mask=plan.mask * has.astype(plan.mask.dtype))


def smoothed(tasks: dict[str, Task], label_smoothing: float) -> dict[str, Task]:
    """The tasks with ``train.label_smoothing`` set where a task has it (segmentation's cross-entropy)."""
    return {name: dataclasses.replace(task, label_smoothing=label_smoothing)
            if any(f.name == "label_smoothing" for f in dataclasses.fields(task)) else task
            for name, task in tasks.items()}


def run_job(config: dict[str, Any], job_dir: Path, hooks: Hooks = Hooks(), test: bool = True,
            observers: Sequence[ObserverFactory] = (), initialise: Initialiser | None = None) -> dict[str, Any]:
    """Train and test one job; returns the result record (without the bookkeeping the runner adds).

    ``hooks`` hear of every epoch and step (progress, W&B: the runner's); ``observers`` watch every stage's training
    steps and ``initialise`` sets each stage's new network (the caller's: the trainer knows none of them); what the
    observers report on the first stage is the outcome's ``observed`` list. With ``test=False`` (tuning trials,
    estimates that decide an experiment) the test split is never loaded and ``test`` is empty.
    """
    job = JobSpec.of(config)
    if job.train.devices > 1 and world() == 1:
        device = resolve_device(job.train.device)
        check_devices(job, observers, device)
        return run_on_devices(job, config, job_dir, device, test,
                              lambda: run_job(config, job_dir, hooks, test, observers, initialise))
    device = resolve_device(job.train.device) if world() == 1 else rank_device(job.train.device)
    memory = PeakMemory(device)
    memory.reset()
    start = time.perf_counter()
    data = load_job_data(job, device, test=test)
    data_seconds = time.perf_counter() - start
    if world() > 1 and (tasks := unmergeable(data.tasks)):
        raise DevicesError(f"train.devices: {job.train.devices}: the meters of {', '.join(tasks)} cannot merge the "
                           f"ranks' shards of a split (no Meter.merge): define it, or set train.devices: 1")
    if rank() == 0:
        write_atomic(job_dir / "mask.npy", lambda stream: np.save(stream, data.plan.mask))
    stages = plan_stages(job.method["networks"], data.tasks, data.splits["train"], data.plan)
    results = {stage.name: train_stage(stage, job, data.splits, device, job_dir / f"checkpoint-{stage.name}.pt",
                                       hooks, observers, initialise) for stage in stages}
    costs = job_costs(results.values(), memory)  # read before the constant reference, which is no training cost
    constant = constant_reference(data.splits["train"], data.splits["test"], data.tasks,
                                  torch.from_numpy(data.plan.mask), job.train.eval_batch_size) if test else None
    if rank() > 0:  # rank 0 reports the job
        return {}
    outcome = job_outcome(data.tasks, data.plan.mask, results, device)
    outcome["data_seconds"] = data_seconds
    outcome["data_source"] = data.source
    outcome["costs"] = costs
    if constant is not None:
        outcome["constant"] = constant
    if observers:
        outcome["observed"] = next(iter(results.values())).observed
    return outcome


def job_outcome(tasks: dict[str, Task], mask: np.ndarray, results: dict[str, "StageResult"],
                device: torch.device) -> dict[str, Any]:
    return {
        "test": {t: m for r in results.values() for t, m in r.test.items()},
        "primary": {t: task.primary for t, task in tasks.items()},
        "directions": {t: task.directions for t, task in tasks.items()},
        "val": {t: m for r in results.values() for t, m in r.history[-1]["val"].items()},
        "history": [record for r in results.values() for record in r.history],
        "resumed_from_epoch": {name: r.resumed_from_epoch for name, r in results.items()},
        "train_seconds": sum(r.train_seconds for r in results.values()),
        "eval_seconds": sum(record.get("eval_seconds", 0.0) for r in results.values() for record in r.history),
        "labels_per_task": dict(zip(tasks, mask.sum(0).astype(int).tolist())),
        "first_step_loss": {t: loss for r in results.values() for t, loss in r.first_loss.items()},
        "diverged": [t for r in results.values() for t in diverged_tasks(r.first_loss, r.history[-1])],
        **({"solver": solver} if (solver := {name: r.history[-1]["solver"] for name, r in results.items()
                                             if "solver" in r.history[-1]}) else {}),
        **({"optimizer_groups": groups} if (groups := next(iter(results.values())).optimizer_groups) else {}),
        **({"pseudo_labels": pseudo} if (pseudo := {t: p for r in results.values() for t, p in r.pseudo_labels.items()})
           else {}),
        **({"images_left_out_per_epoch": left_out} if (left_out := {name: r.images_left_out for name, r in
                                                                    results.items() if r.images_left_out}) else {}),
        "device": device_name(device),
        **({"devices": world()} if world() > 1 else {}),
        "torch": torch.__version__,
    }


def augmented(stage: Stage, fetched: tuple[Tensor, dict[str, Tensor]], augment: Augment, generator: torch.Generator,
              device: torch.device, part: Shard | None = None) -> tuple[Tensor, dict[str, Tensor]]:
    """A fetched batch's images and targets augmented on the device (``part``: the device's share of the batch)."""
    images, targets = augment(*fetched, stage.tasks, generator, part)
    if device.type == "cuda":
        images = images.contiguous(memory_format=torch.channels_last)
    return images, targets


@dataclass
class StageParts:
    """What trains one stage, built before its first epoch (and before a checkpoint is restored into it)."""

    stage: Stage
    settings: TrainSettings
    device: torch.device
    model: nn.Module
    recipe: Recipe
    optimizer: torch.optim.Optimizer
    schedule: Any  # the SCHEDULERS entry: whether it steps per batch
    scheduler: Any
    generators: dict[str, torch.Generator]
    augment: Augment
    autocast: Callable[[], contextlib.AbstractContextManager]
    min_batch: int  # the model's smallest trainable batch: a shorter last batch of an epoch is left out
    watchers: list[StepObserver] = field(default_factory=list)
    step_flops: int | None = None  # counted on a step this process trains (or restored): ``counts``
    relabelled: dict[str, Any] = field(default_factory=dict)  # the supervision's pseudo-labels, per task

    def counts(self, first: int, steps: int) -> bool:
        """Whether the epoch's step at batch ``first`` of ``steps`` batches is the one whose FLOPs the stage
        records: the second step of the first epoch this process trains, or the only one. Not the first: a method
        may skip work there that every other step does (Auto-λ's meta update needs the previous batch)."""
        group = self.recipe.interleaved_batches
        return self.step_flops is None and (first == group or steps <= group)

    def train_step(self, loaded: list[tuple[Tensor, dict[str, Tensor], Tensor]], count: bool) -> dict[str, Tensor]:
        """The recipe's update(s) of ``loaded``; with ``count``, also counted, per batch (costs.py)."""
        if not count:
            return self.recipe.train_batches(self.optimizer, loaded)
        logs, flops = counted_flops(lambda: self.recipe.train_batches(self.optimizer, loaded))
        self.step_flops = flops // len(loaded)
        return logs

    def batches(self) -> list[tuple[Tensor, Tensor]]:
        """One epoch's batches, those shorter than the model can train on left out."""
        return [b for b in self.stage.batches(self.settings.batch_size, self.generators["order"])
                if len(b[0]) >= self.min_batch]

    def images_left_out(self) -> int:
        """Images per epoch in batches shorter than ``min_batch`` (a BatchNorm needs two per channel)."""
        return sum(size for size in self.stage.batch_sizes(self.settings.batch_size) if size < self.min_batch)


def build_stage(stage: Stage, job: JobSpec, splits: dict[str, Split], device: torch.device,
                observers: Sequence[ObserverFactory], initialise: Initialiser | None = None) -> StageParts:
    """The stage's network, recipe, optimiser, schedule, random streams and observers, seeded per stage; the
    order of the draws is part of what a job id promises, so it never changes."""
    seed, settings = job.seed, job.train
    torch.manual_seed(derive_seed(seed, stage.name, "init"))
    spec = build(MODELS, job.model)
    model = spec.build(stage.tasks).to(device)
    if world() > 1:
        model = with_global_batchnorm(model)
    if initialise is not None:
        initialise(stage, model)
    if device.type == "cuda":
        model = model.to(memory_format=torch.channels_last)
    generators = {"order": torch.Generator().manual_seed(derive_seed(seed, stage.name, "order")),
                  "augment": torch.Generator(device).manual_seed(derive_seed(seed, stage.name, "augment"))}
    augment = Augment(**settings.augment)
    autocast = autocast_for(device, settings.precision)
    recipe = Recipe(job.method, stage.tasks, model, augment, generators["augment"], autocast).to(device)
    train, mask, relabelled = recipe.relabel(stage.train, stage.mask, settings.eval_batch_size)
    stage = dataclasses.replace(stage, train=train, mask=mask)
    optimizer_spec = build(OPTIMIZERS, settings.optimizer)
    optimizer = optimizer_spec.build(parameter_groups(model, recipe.parameters(),
                                                      getattr(optimizer_spec, "head_lr", None)))
    schedule = build(SCHEDULERS, settings.scheduler)
    min_batch = getattr(spec, "min_batch", 1)
    steps = sum(size >= min_batch for size in stage.batch_sizes(settings.batch_size))
    parts = StageParts(stage, settings, device, model, recipe, optimizer, schedule,
                       schedule.build(optimizer, settings.epochs, steps, settings.batch_size), generators, augment,
                       autocast, min_batch)
    torch.manual_seed(derive_seed(seed, stage.name, "train"))
    parts.watchers = [make(Observed(job, stage, model, optimizer, recipe, splits["val"], device, autocast))
                      for make in observers]
    parts.relabelled = relabelled
    return parts


def restore(parts: StageParts, path: Path, on_epoch: EpochCallback) -> StageResult:
    """The stage's state from its checkpoint, if it has one, its epochs replayed to ``on_epoch`` (marked
    resumed): the checkpoint, not a log written after it, says what was trained."""
    saved = checkpoint.load(path)
    if saved is None:
        return StageResult()
    parts.model.load_state_dict(saved["model"])
    parts.recipe.load_state_dict(saved["recipe"])
    parts.optimizer.load_state_dict(saved["optimizer"])
    parts.scheduler.load_state_dict(saved["scheduler"])
    checkpoint.restore_rng(saved["rng"], parts.generators)
    parts.step_flops = saved.get("step_flops")
    result = StageResult(saved["history"], saved.get("test", {}), saved["epoch"], saved["train_seconds"],
                         saved.get("first_loss", {}))  # checkpoints older than those fields lack them
    for watcher, state in zip(parts.watchers, observer_states(saved)):
        watcher.restore(state)
    for record in result.history:
        on_epoch({**record, "epochs": parts.settings.epochs, RESUMED: True})
    return result


@dataclass
class EpochTrained:
    """What one epoch of training leaves: the summed logs, the number of batches and of images, its seconds."""

    sums: dict[str, Tensor]
    batches: int
    images: int
    seconds: float
    data_wait: float = 0.0  # seconds the steps waited for their batches (read, copied to the device)

    def mean_logs(self) -> dict[str, float]:
        return {key: float(value) / self.batches for key, value in self.sums.items()}


def train_one_epoch(parts: StageParts, epoch: int, first_losses: dict[str, Any],
                    on_step: StepCallback = lambda step: None) -> EpochTrained:
    """One epoch of training steps, the scheduler and the recipe's end of epoch; raises NonFiniteLoss before
    anything of a diverged epoch is validated, checkpointed or logged. ``first_losses`` gets each task's loss at
    its first step and ``on_step`` each step's ``Step`` (tensors: no host sync)."""
    start = time.perf_counter()
    parts.model.train()
    sums: dict[str, Tensor] = {}
    watch = NonFiniteWatch()
    batches = parts.batches()
    group = parts.recipe.interleaved_batches
    images, waited = 0, 0.0
    shares = [shard(len(index)) for index, _ in batches]  # None on one device
    fetched = feed(parts.stage.train, [index if part is None else index[part.rows] for (index, _), part
                                       in zip(batches, shares)], parts.stage.tasks, parts.device)
    for first in range(0, len(batches), group):
        loaded = []
        for (_, mask), part in zip(batches[first:first + group], shares[first:first + group]):  # masks stay on the CPU
            asked = time.perf_counter()
            batch = next(fetched)
            waited += time.perf_counter() - asked
            loaded.append((*augmented(parts.stage, batch, parts.augment, parts.generators["augment"], parts.device,
                                      part), mask))
        logs = parts.train_step(loaded, parts.counts(first, len(batches)))
        images += sum(len(index) for index, _ in batches[first:first + group])
        on_step(Step(parts.stage.name, epoch + 1, parts.settings.epochs, first + len(loaded), len(batches), images,
                     time.perf_counter() - start, logs, len(loaded)))
        if parts.schedule.per_step:
            step_schedule(parts, logs, len(loaded))
        watch.step(logs, first + 1)
        if len(first_losses) < len(parts.stage.tasks):
            first_losses.update({k.removeprefix("loss/"): v / len(loaded) for k, v in logs.items()
                                 if k.startswith("loss/") and k.removeprefix("loss/") not in first_losses})
        for key, value in logs.items():
            sums[key] = sums.get(key, 0) + value
        for watcher in parts.watchers:
            watcher.after_step(epoch * len(batches) + first + len(loaded))
    watch.check(parts.stage.name, epoch + 1)
    if not parts.schedule.per_step:
        parts.scheduler.step()
    trained = EpochTrained(sums, len(batches), images, 0.0, waited)
    parts.recipe.end_epoch({k.removeprefix("loss/"): v for k, v in trained.mean_logs().items()
                            if k.startswith("loss/")})
    parts.recipe.check_solvers()
    trained.seconds = time.perf_counter() - start
    return trained


def step_schedule(parts: StageParts, logs: dict[str, Tensor], batches: int) -> None:
    """Steps a per-batch schedule once per batch of the update; one that reads the loss gets the mean of the tasks'
    training losses (the update's, for each of its batches)."""
    if not parts.schedule.reads_loss:
        for _ in range(batches):
            parts.scheduler.step()
        return
    losses = [logs[f"loss/{t}"] for t in parts.stage.tasks if f"loss/{t}" in logs]
    loss = torch.stack(losses).mean() / batches if losses else None
    for _ in range(batches):
        if loss is not None:
            parts.scheduler.step(loss)


def schedule_finished(parts: StageParts) -> bool:
    """Whether the schedule ended training (``LossPlateau`` below its minimum rate)."""
    return bool(getattr(parts.scheduler, "finished", False))


def evaluate_epoch(parts: StageParts, splits: dict[str, Split], epoch: int, trained: EpochTrained,
                   result: StageResult) -> dict[str, Any]:
    """The epoch's record: validation after every epoch; the test split after the last (the stage's result)
    and, with ``train.test_every_epoch``, after every epoch for ``leaderboard.select: best_val``."""
    stage, settings = parts.stage, parts.settings
    evaluated = time.perf_counter()
    validated = evaluate(parts.model, splits["val"].select(list(stage.tasks)), stage.tasks, settings.eval_batch_size,
                         parts.autocast)  # on several devices, each rank its share, merged on every rank
    record = {"stage": stage.name, "epoch": epoch + 1, "lr": parts.optimizer.param_groups[0]["lr"],
              "seconds": trained.seconds, "images_per_second": trained.images / trained.seconds,
              "data_wait_seconds": trained.data_wait,
              **{f"train/{k}": v for k, v in trained.mean_logs().items()},
              **({"solver": solved} if (solved := parts.recipe.solver_counts()) else {}),
              **{key: value for watcher in parts.watchers for key, value in watcher.epoch_log().items()},
              "val": validated}
    parts.recipe.after_validation(record["val"])
    last = epoch + 1 == settings.epochs or schedule_finished(parts)
    if "test" in splits and (last or settings.test_every_epoch):
        tested = evaluate(parts.model, splits["test"].select(list(stage.tasks)), stage.tasks,
                          settings.eval_batch_size, parts.autocast)
        if settings.test_every_epoch:
            record["test"] = tested
        if last:
            result.test = tested
    record["eval_seconds"] = time.perf_counter() - evaluated  # validation and, when it ran, test
    return record


def save_checkpoint(parts: StageParts, result: StageResult, epoch: int, path: Path) -> None:
    checkpoint.save_atomic({"model": parts.model.state_dict(), "recipe": parts.recipe.state_dict(),
                            "optimizer": parts.optimizer.state_dict(), "scheduler": parts.scheduler.state_dict(),
                            "rng": checkpoint.rng_state(parts.generators), "epoch": epoch + 1,
                            "history": result.history, "test": result.test, "train_seconds": result.train_seconds,
                            "first_loss": result.first_loss, "step_flops": parts.step_flops,
                            "observers": [watcher.state() for watcher in parts.watchers]}, path)


def train_stage(stage: Stage, job: JobSpec, splits: dict[str, Split], device: torch.device,
                path: Path, hooks: Hooks, observers: Sequence[ObserverFactory] = (),
                initialise: Initialiser | None = None) -> StageResult:
    """Train one stage to ``train.epochs`` or until its schedule ends it (resuming from its checkpoint), validate
    after every epoch and test the last epoch's network when ``splits`` has a test split."""
    settings = job.train
    parts = build_stage(stage, job, splits, device, observers, initialise)
    result = restore(parts, path, hooks.epoch)
    broadcast_state(parts.model, parts.recipe.nets)  # rank 0's initialised or restored weights everywhere
    result.images_left_out = parts.images_left_out()
    result.parameters = parameter_count(parts.model.parameters())
    result.method_parameters = parameter_count(parts.recipe.nets.parameters())
    if result.images_left_out:
        warnings.warn(f"stage {stage.name}: the last batch of each epoch ({result.images_left_out} image(s)) is "
                      f"left out, the model needs batches of at least {parts.min_batch}; result.json records it "
                      f"(images_left_out_per_epoch)", stacklevel=2)
    first_losses: dict[str, Any] = dict(result.first_loss)
    for epoch in range(result.resumed_from_epoch, settings.epochs):
        if schedule_finished(parts):  # resumed after the schedule's last epoch
            break
        trained = train_one_epoch(parts, epoch, first_losses, hooks.step)
        result.first_loss = {task: float(loss) for task, loss in first_losses.items()}
        result.train_seconds += trained.seconds
        record = evaluate_epoch(parts, splits, epoch, trained, result)
        result.history.append(record)
        if rank() == 0:
            save_checkpoint(parts, result, epoch, path)
        hooks.epoch({**record, "epochs": settings.epochs})
        if schedule_finished(parts):
            break
    result.model = parts.model
    result.observed = [watcher.report() for watcher in parts.watchers]
    result.step_flops = parts.step_flops
    result.pseudo_labels = parts.relabelled
    result.optimizer_groups = group_record(parts.optimizer)
    return result


class NonFiniteLoss(FloatingPointError):
    """A training loss became NaN or infinite: the job stops, its last finite checkpoint stays."""


class NonFiniteWatch:
    """Remembers, on the device, the first step at which each logged loss was not finite, so that a training
    step needs no host sync; ``check`` (once per epoch) raises NonFiniteLoss naming the task, epoch and step."""

    def __init__(self) -> None:
        self.first: dict[str, Tensor] = {}

    def step(self, logs: dict[str, Tensor], step: int) -> None:
        for key, value in logs.items():
            bad = ~torch.isfinite(torch.as_tensor(value).detach())
            seen = self.first.get(key)
            self.first[key] = torch.where(bad, step, -1) if seen is None else torch.where((seen < 0) & bad, step, seen)

    def check(self, stage: str, epoch: int) -> None:
        steps = {key: int(step) for key, step in self.first.items()}
        bad = {key: step for key, step in steps.items() if step >= 0}
        if bad:
            key, step = min(bad.items(), key=lambda item: item[1])
            task = key.removeprefix("loss/")
            kept = (f"the checkpoint of epoch {epoch - 1} stays" if epoch > 1 else
                    "no checkpoint was written yet, so the job starts again from scratch when run again")
            raise NonFiniteLoss(f"the training loss of {task} (stage {stage}) became NaN or infinite at epoch {epoch}, "
                                f"step {step}: the run diverged. Lower the learning rate or check the data; {kept}, "
                                f"and nothing of epoch {epoch} is recorded")


DIVERGENCE_FACTOR = 10.0


def diverged_tasks(first_loss: dict[str, float], last: dict[str, Any]) -> list[str]:
    """The tasks whose mean training loss in the last epoch is above ``DIVERGENCE_FACTOR`` times their loss at
    their first step (the untrained network's): the run diverged without reaching NaN. Training lowers a task's
    loss, and a network that learns nothing keeps it near where it started; ten times above it, the updates
    have thrown the weights far off (Adam at lr 1e6: 1e12 times)."""
    return [task for task, loss in first_loss.items()
            if loss > 0 and last.get(f"train/loss/{task}", 0.0) > DIVERGENCE_FACTOR * loss]


def observer_states(saved: dict[str, Any]) -> list[Any]:
    """The observers' states in a checkpoint (one written before observers became a list has one)."""
    if "observers" in saved:
        return saved["observers"]
    return [saved["observer"]] if saved.get("observer") is not None else []
