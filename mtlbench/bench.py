"""``mtlbench bench``: training throughput of each method on random tensors of a dataset's shape.

Needs torch and numpy only (it runs on a lent GPU machine without the rest). Methods take turns step by step
in one process, so drift of the machine (thermal, other load) hits them alike; the figure is the median
step time over the measured steps, reported as training images per second and as a cost ratio to the
first method (``supervised`` by default). ``--sweep`` repeats the measurement for 2..7 dense tasks to show
how each method's cost grows with the number of tasks. ``--parts`` measures every registered supervision,
weighting and gradients part swapped one at a time into ``supervised`` (full supervision, uniform weighting,
summed gradients), as a cost ratio to that plain recipe. Tracks add benchmarks of their own (``Track.add_bench_options``:
the grouping track's ``--selection K``).
"""
from __future__ import annotations

import json
import statistics
import time
from dataclasses import dataclass, field, fields
from typing import Any

import numpy as np
import torch

from .data import DATASETS, SCENARIOS, scenario
from .data.augment import Augment
from .errors import UserError
from .methods import AXES, METHODS, PLAIN, Recipe
from .models import MODELS, SegNet
from .registry import RegistryError, build, parameters, unknown_message
from .tasks import Task
from .train.trainer import autocast_for, check_device, device_name, resolve_device


class BenchOptionError(UserError, ValueError):
    """A bench option that names nothing it can build."""


SHAPES = {"synthrooms": (64, 96), "nyuv2": (288, 384), "cityscapes": (128, 256), "taskonomy": (256, 256)}
DENSE_TASKS = ("seg", "depth", "normal", "edge", "keypoint", "shading", "albedo")


def regularized_methods() -> tuple[str, ...]:
    """The presets that add a regularizer to the plain recipe: the partial-label methods, a plugin's included."""
    return tuple(name for name in METHODS.list() if METHODS.get(name)["regularizer"]["name"] != "none")


@dataclass(frozen=True)
class BenchConfig:
    """What ``mtlbench bench`` measures; the one place its defaults live (the command line leaves unset what
    it was not given)."""

    methods: tuple[str, ...] = field(default_factory=lambda: (PLAIN, *regularized_methods()))
    tasks: tuple[str, ...] = ("seg", "depth", "normal")
    height: int = 64
    width: int = 96
    model_width: float = 0.125
    model: str = "segnet"
    dataset: str = "synthrooms"  # whose tasks are trained: a registered name, or its settings as a JSON mapping
    batch_size: int = 8
    scenario: str = "onelabel"
    steps: int = 6
    warmup: int = 2
    device: str = "auto"

    def __post_init__(self) -> None:
        """Unknown names fail here, before anything is built (``RegistryError``: the valid choices)."""
        check_device(self.device)
        for method in self.methods:
            METHODS.get(method)
        MODELS.get(self.model)
        SCENARIOS.get(self.scenario)
        known = list(bench_dataset(self).tasks())
        for task in self.tasks:
            if task not in known:
                raise RegistryError(unknown_message("task", task, known))


def random_batch(tasks: dict[str, Task], batch: int, height: int, width: int, device: torch.device,
                 generator: torch.Generator) -> tuple[torch.Tensor, dict[str, torch.Tensor]]:
    targets = {name: task.random_target(batch, height, width, generator).to(device) for name, task in tasks.items()}
    return torch.rand(batch, 3, height, width, generator=generator).to(device), targets


def bench_dataset(config: BenchConfig) -> Any:
    """The dataset whose tasks are trained, at the bench's size where it has one (a detection head is built for a
    size); only its task definitions are used, so its files need not exist (e.g. ``{"name": "union", "parts":
    [{"name": "pascal_voc_detection", "segmentation": true, "tasks": ["detection", "seg"]}, {"name": "nyu_depth",
    "tasks": ["depth"]}]}``, Yun and Cho 2023 Table 7's tasks)."""
    text = config.dataset.strip()
    try:
        settings = json.loads(text) if text.startswith("{") else {"name": text}
    except json.JSONDecodeError as error:
        raise BenchOptionError(f"--dataset: not a JSON mapping ({error}); give a dataset name or its settings as "
                               f"JSON, e.g. '{{\"name\": \"synthrooms\"}}'") from None
    size = {k: getattr(config, k) for k in ("height", "width") if k in parameters(DATASETS.get(settings.get("name")))}
    try:
        return build(DATASETS, {**size, **settings})
    except (TypeError, ValueError) as error:
        raise BenchOptionError(f"--dataset {text}: {error}") from None


def bench_tasks(config: BenchConfig) -> dict[str, Task]:
    all_tasks = bench_dataset(config).tasks()
    return {t: all_tasks[t] for t in config.tasks}


PLAIN_LABEL = "uniform+sum"


def part_recipes(config: BenchConfig) -> dict[str, dict]:
    """The reference (``supervised``) with one part swapped in, for every registered supervision, weighting and
    gradients part; the first entry is the plain recipe itself."""
    base = METHODS.get(PLAIN)
    recipes = {PLAIN_LABEL: base}
    for axis in ("supervision", "weighting", "gradients"):
        for name in AXES[axis].list():
            if name == base[axis]["name"]:
                continue
            recipes[f"{axis}={name}"] = {**base, axis: {"name": name}}
    return recipes


def standalone(method: dict, tasks: list[str]) -> dict:
    """The recipe with the settings each part needs to run without the jobs it reads (AMTL's potentials, the
    teachers of MuST, Noisy Student and KD-MTL: ``Part.standalone``), where the recipe does not give them."""
    return {axis: {**AXES[axis].get(spec["name"]).standalone(tasks), **spec} if axis in AXES else spec
            for axis, spec in method.items()}


def build_model(config: BenchConfig, tasks: dict[str, Task]) -> torch.nn.Module:
    """SegNet at the configured width, or another registered model with its defaults (at the images' size, for a
    model built for one)."""
    if config.model == "segnet":
        return SegNet(tasks, config.model_width)
    spec = MODELS.get(config.model)
    size = {k: getattr(config, k) for k in ("height", "width") if k in parameters(spec)}  # a model built for a size
    return spec(**size).build(tasks)


def measure(config: BenchConfig, recipes: dict[str, dict] | None = None) -> dict[str, float]:
    """Median seconds per training step (one batch, however many updates its supervision part makes) of each
    method, or of each of ``recipes``, taking turns."""
    recipes = recipes or {method: METHODS.get(method) for method in config.methods}
    device = resolve_device(config.device)
    tasks = bench_tasks(config)
    generator = torch.Generator().manual_seed(0)
    images, targets = random_batch(tasks, config.batch_size, config.height, config.width, device, generator)
    mask = torch.from_numpy(scenario({"name": config.scenario}).mask(config.batch_size, list(tasks), 0))
    autocast = autocast_for(device)
    runs = {}
    for label, method in recipes.items():
        torch.manual_seed(0)
        model = build_model(config, tasks).to(device)
        if device.type == "cuda":
            model = model.to(memory_format=torch.channels_last)
        recipe = Recipe(standalone(method, list(tasks)), tasks, model, Augment(), torch.Generator(device).manual_seed(0),
                        autocast).to(device)
        runs[label] = (recipe, torch.optim.Adam(recipe.parameters(), 1e-4), [])
    for step in range(config.warmup + config.steps):
        for recipe, optimizer, times in runs.values():
            synchronize(device)
            start = time.perf_counter()
            recipe.train_step(optimizer, images, targets, mask)
            synchronize(device)
            if step >= config.warmup:
                times.append(time.perf_counter() - start)
    return {method: statistics.median(times) for method, (_, _, times) in runs.items()}


def synchronize(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def table(config: BenchConfig, seconds: dict[str, float]) -> str:
    """Images per second and the cost ratio to the first entry (the reference method, or the plain recipe)."""
    first = next(iter(seconds))
    rows = [f"| {'recipe' if first == PLAIN_LABEL else 'method'} | images/s | cost vs {first} |", "|---|---|---|"]
    rows += [f"| {m} | {config.batch_size / s:.1f} | {s / seconds[first]:.2f}x |" for m, s in seconds.items()]
    return "\n".join(rows)


def sweep(config: BenchConfig, counts: range = range(2, 8)) -> str:
    """Seconds per step against the number of dense tasks, and a least-squares fit of the growth."""
    results = {n: measure(BenchConfig(**{**config.__dict__, "tasks": DENSE_TASKS[:n]})) for n in counts}
    header = "| tasks | " + " | ".join(f"{m} s/step" for m in config.methods) + " |"
    rows = [header, "|" + "---|" * (len(config.methods) + 1)]
    rows += [f"| {n} | " + " | ".join(f"{results[n][m]:.3f}" for m in config.methods) + " |" for n in counts]
    rows.append("")
    reference = config.methods[0]
    for method in config.methods[1:]:
        extra = np.array([results[n][method] - results[n][reference] for n in counts])
        rows.append(f"{method}: extra cost over {reference} ≈ {growth(np.array(list(counts)), extra)}")
    return "\n".join(rows)


def growth(n: np.ndarray, extra: np.ndarray) -> str:
    """Fit extra = a + b n + c n² and say how much of the growth from the smallest to the largest n the
    quadratic term explains; an extra cost that changes by less than a tenth of its mean is called flat."""
    a, b, c = np.polyfit(n, extra, 2)[::-1]
    fit = f"{a:+.3f} {b:+.4f}·T {c:+.5f}·T² s/step"
    change = extra[-1] - extra[0]
    if abs(change) < 0.1 * np.abs(extra).mean():
        return f"{fit} (flat: {extra[0]:.3f} s at T={n[0]}, {extra[-1]:.3f} s at T={n[-1]})"
    share = round(100 * c * (n[-1] ** 2 - n[0] ** 2) / change)
    return f"{fit} (x{extra[-1] / extra[0]:.1f} from T={n[0]} to T={n[-1]}; quadratic term: {share:d}% of the growth)"


def header(config: BenchConfig) -> str:
    device = resolve_device(config.device)
    return (f"device: {device_name(device)}; torch {torch.__version__}; {config.height}x{config.width}, "
            f"{model_label(config)}, batch {config.batch_size}, scenario {config.scenario}, "
            f"median of {config.steps} steps after {config.warmup} warm-up")


def model_label(config: BenchConfig) -> str:
    return f"SegNet width {config.model_width}" if config.model == "segnet" else f"{config.model} (defaults)"


def config_of(given: dict[str, object]) -> BenchConfig:
    """The configuration from the command line's values; those it was not given (None) keep their defaults."""
    names = {f.name for f in fields(BenchConfig)}
    return BenchConfig(**{name: value for name, value in given.items() if name in names and value is not None})
