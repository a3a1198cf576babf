"""Suite files: schema, validation with precise errors, ``--set`` overrides, and expansion into jobs.

A suite is YAML. Plugins (dataset, scenarios, methods' parts, model, optimiser, scheduler) are written as a
name or as ``{name: ..., param: value}``; their parameters are checked against the registered dataclass, and
every default is filled in, so a job's resolved config names everything it depends on and its hash is its id.

Every error names the file, the field (as a dotted path) and the valid choices, and is raised before any
training starts.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, PositiveFloat, PositiveInt, TypeAdapter, ValidationError

from .data import DATASETS, SCENARIOS, DatasetError
from .methods import AXES, METHODS, NETWORKS
from .models import MODELS
from .registry import Registry, RegistryError, build, parameters
from .train.optim import OPTIMIZERS, SCHEDULERS

SCHEMA_VERSION = 1


class SuiteError(ValueError):
    """A suite that cannot run; the message says where (file and field) and how to fix it."""


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class AugmentSection(Strict):
    scale_crop: bool = True
    flip: bool = True


class TrainSection(Strict):
    epochs: PositiveInt = 10
    batch_size: PositiveInt = 8
    eval_batch_size: PositiveInt = 32
    optimizer: str | dict[str, Any] = "adam"
    scheduler: str | dict[str, Any] = "step"
    augment: AugmentSection = AugmentSection()
    device: str = "auto"


class LeaderboardSection(Strict):
    baseline: str = "supervised"
    metrics: dict[str, list[str]] = Field(default_factory=dict,
                                          description="metrics per task entering ΔMTL (default: the primary)")


class WandbSection(Strict):
    project: str = "mtlbench"
    entity: str | None = None


class BudgetSection(Strict):
    """The label-budget track (paper 000): seed labels per task, one table per cost setting, the allocators."""

    seed_labels: PositiveInt
    costs: dict[str, dict[str, PositiveInt]] = Field(description="cost setting label -> {task: cost per label}")
    budget: PositiveInt | None = Field(None, description="default: seed_labels x the sum of costs (Sec. 5.2)")
    allocators: list[str | dict[str, Any]]
    probe: dict[str, Any] = Field(default_factory=dict, description="TABA's informativeness probe settings")
    reduction: dict[str, Any] = Field(default_factory=dict, description="TABA's reduction-rate settings")
    estimate_seeds: list[int] = [0]
    steps_per_epoch: int = Field(0, ge=0, description="0: an epoch draws as many labels as there are")


class GroupingSection(Strict):
    """The task-grouping track (paper 001): which networks to train, which selectors to compare, at which budgets."""

    selection_sizes: list[PositiveFloat] = Field([0.5], description="single-task sizes that join C_0 (Sec. 4.2)")
    independent_sizes: list[PositiveFloat] = Field([0.2, 0.3, 0.4, 0.5, 0.8, 1.0],
                                                   description="single-task sizes of the Independent baseline")
    traditional_sizes: list[PositiveFloat] = Field([1.0, 2.0, 2.5, 4.0],
                                                   description="all-task network sizes of Traditional MTL")
    budgets: list[PositiveFloat] | None = Field(None, description="SNT; default 1 to K in steps of 0.5")
    esa_fraction: float = Field(0.2, ge=0, description="ESA's passes through the training data (0: no ESA)")
    methods: list[str | dict[str, Any]] = ["optimal", "esa", "hoa", "traditional", "independent", "random",
                                           "pessimal"]
    objective: str | dict[str, Any] = "lowest_total"


class TuneSection(Strict):
    """``mtlbench tune``: one Optuna study per (dataset, scenario, method), scored on the validation split."""

    trials: PositiveInt = Field(20, description="finished (complete or pruned) trials per study, every method alike")
    seeds: list[int] | None = Field(None, description="training seeds of every trial (default: the suite's first)")
    objective: str = Field("delta_mtl", description="delta_mtl (validation ΔMTL vs baseline) or TASK/METRIC")
    baseline: str | None = Field(None, description="ΔMTL's reference method (default: leaderboard.baseline)")
    pruner: str | dict[str, Any] = "median"
    sampler_seed: int = 0
    startup_trials: PositiveInt = Field(10, description="TPE's random trials before it models the results")
    space: dict[str, dict[str, Any] | None] = Field(
        default_factory=dict, description="per parameter path: null (not tuned), {low, high} or {values: [...]}")


class SuiteFile(Strict):
    name: str | None = None
    description: str = ""
    dataset: str | dict[str, Any] | None = None
    datasets: list[str | dict[str, Any]] = Field(default_factory=list)
    tasks: list[str]
    scenarios: list[str | dict[str, Any]] = Field(default_factory=list)
    mask_seed: int = 0
    methods: list[str | dict[str, Any]] = Field(default_factory=list)
    budget: BudgetSection | None = None
    grouping: GroupingSection | None = None
    seeds: list[int] = [0]
    model: str | dict[str, Any] = "segnet"
    train: TrainSection = TrainSection()
    leaderboard: LeaderboardSection = LeaderboardSection()
    tune: TuneSection = TuneSection()
    wandb: WandbSection = WandbSection()


@dataclasses.dataclass(frozen=True)
class Job:
    id: str
    suite: str
    config: dict[str, Any]
    label: str = ""  # how progress shows it (not part of the id)

    @property
    def method(self) -> str:
        if "probe" in self.config:
            return "taba-probe"
        if "reduction" in self.config:
            return f"taba-reduction-{self.config['reduction']['task']}"
        return self.config["method"]["name"]

    @property
    def phase(self) -> int:
        """Jobs of phase 0 run before the others, which may read their results (AMTL, TABA)."""
        return 0 if self.method == "stl" or "probe" in self.config or "reduction" in self.config else 1

    @property
    def dataset(self) -> str:
        return self.config["dataset"]["name"]

    @property
    def scenario(self) -> str:
        return scenario_label(self.config["scenario"])

    @property
    def seed(self) -> int:
        return self.config["seed"]

    def describe(self) -> str:
        return f"{self.dataset}/{self.label or self.scenario}/{self.method}/seed{self.seed}"


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    raw: SuiteFile
    jobs: list[Job]
    budget: dict[str, Any] | None = None  # the budget track's tables: which jobs make which row
    grouping: dict[str, Any] | None = None  # the grouping track's networks, their costs and jobs, the selectors

    def summary(self) -> dict[str, Any]:
        """What the leaderboard needs to know about the suite (saved next to its results)."""
        summary = {"name": self.name, "path": str(self.path), "description": self.raw.description,
                   "leaderboard": self.raw.leaderboard.model_dump(), "tasks": self.raw.tasks,
                   "scenarios": list(dict.fromkeys(job.scenario for job in self.jobs)),
                   "methods": list(dict.fromkeys(job.method for job in self.jobs)),
                   "jobs": [job.id for job in self.jobs]}
        tracks = {"budget": self.budget, "grouping": self.grouping}
        return summary | {key: value for key, value in tracks.items() if value is not None}


def scenario_label(scenario: dict[str, Any]) -> str:
    if scenario["name"] == "budget":
        return "budget"
    unlabeled = scenario.get("unlabeled", 0.0)
    name = f"canonical-{scenario['labels']}" if scenario["name"] == "canonical" else scenario["name"]
    return name + (f"+{round(100 * unlabeled)}%unlabeled" if unlabeled else "")


def job_id(config: dict[str, Any]) -> str:
    return hashlib.sha256(json.dumps(config, sort_keys=True).encode()).hexdigest()[:12]


# ----------------------------------------------------------------------------------------- loading
def load_suite(path: str | Path, overrides: list[str] = ()) -> Suite:
    path = Path(path)
    if not path.exists():
        raise SuiteError(f"{path}: suite file not found")
    try:
        data = yaml.safe_load(path.read_text()) or {}
    except yaml.YAMLError as error:
        raise SuiteError(f"{path}: not valid YAML: {error}") from None
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: a suite is a mapping of fields, got {type(data).__name__}")
    for override in overrides:
        apply_override(data, override, path)
    try:
        raw = SuiteFile.model_validate(data)
    except ValidationError as error:
        raise SuiteError(describe_validation_error(path, error)) from None
    if raw.budget is not None and raw.grouping is not None:
        raise SuiteError(f"{path}: a suite has a budget or a grouping section, not both")
    if raw.budget is not None:
        from .budget.suite import expand_budget

        return Suite(raw.name or path.stem, path, raw, *expand_budget(raw, path))
    if raw.grouping is not None:
        from .grouping.suite import expand_grouping

        jobs, grouping = expand_grouping(raw, path)
        return Suite(raw.name or path.stem, path, raw, jobs, grouping=grouping)
    return Suite(raw.name or path.stem, path, raw, expand(raw, path))


def apply_override(data: dict[str, Any], override: str, path: Path) -> None:
    """``--set train.epochs=3`` or ``--set scenarios.0.unlabeled=0.3``: the value is parsed as YAML."""
    if "=" not in override:
        raise SuiteError(f"--set {override!r}: expected KEY=VALUE, e.g. --set train.epochs=3")
    key, value = override.split("=", 1)
    *parents, last = key.split(".")
    node: Any = data
    for part in parents:
        node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
    if isinstance(node, list):
        node[int(last)] = yaml.safe_load(value)
    else:
        node[last] = yaml.safe_load(value)


def describe_validation_error(path: Path, error: ValidationError) -> str:
    lines = [f"{path}: invalid suite"]
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"] if not str(p).startswith(("str", "dict[", "list[")))
        if item["type"] == "extra_forbidden":
            valid = ", ".join(fields_at(SuiteFile, item["loc"][:-1]))
            lines.append(f"  {where}: unknown field. Valid fields here: {valid}")
        elif item["type"] == "missing":
            lines.append(f"  {where}: required field is missing")
        else:
            lines.append(f"  {where}: {item['msg']} (got {item.get('input')!r})")
    return "\n".join(lines)


def fields_at(model: type[BaseModel], loc: tuple[Any, ...]) -> list[str]:
    for part in loc:
        annotation = model.model_fields[part].annotation if part in model.model_fields else None
        if not (isinstance(annotation, type) and issubclass(annotation, BaseModel)):
            break
        model = annotation
    return list(model.model_fields)


# ----------------------------------------------------------------------------------------- plugins
def plugin(registry: Registry[Any], spec: str | dict[str, Any], where: str, path: Path,
           shared: dict[str, Any] | None = None) -> dict[str, Any]:
    """Validate ``spec`` against a registered dataclass and return it resolved, with every default."""
    spec = {"name": spec} if isinstance(spec, str) else dict(spec)
    if "name" not in spec:
        raise SuiteError(f"{path}: {where}: missing 'name'. Valid choices: {', '.join(registry.list())}")
    name = spec.pop("name")
    try:
        cls = registry.get(name)
    except RegistryError as error:
        raise SuiteError(f"{path}: {where}.name: {error}") from None
    declared = parameters(cls)
    unknown = sorted(set(spec) - set(declared))
    if unknown:
        valid = ", ".join(declared) or "(none: it takes no parameters)"
        raise SuiteError(f"{path}: {where}: unknown parameter {', '.join(unknown)} for {registry.kind} "
                         f"{name!r}. Valid parameters: {valid}")
    missing = [k for k, v in declared.items() if v is dataclasses.MISSING and k not in spec]
    if missing:
        raise SuiteError(f"{path}: {where}: {registry.kind} {name!r} needs {', '.join(missing)}")
    try:
        instance = TypeAdapter(cls).validate_python(spec)
    except ValidationError as error:
        detail = "; ".join(f"{'.'.join(map(str, e['loc']))}: {e['msg']}" for e in error.errors())
        raise SuiteError(f"{path}: {where}: {detail}") from None
    resolved = json.loads(json.dumps(dataclasses.asdict(instance)))  # tuples -> lists, as the hash sees them
    return {"name": name, **resolved}


def resolve_method(spec: str | dict[str, Any], where: str, path: Path) -> dict[str, Any]:
    if isinstance(spec, str):
        try:
            spec = METHODS.get(spec)
        except RegistryError as error:
            raise SuiteError(f"{path}: {where}: {error}. A method may also be written as an explicit "
                             f"recipe {{name, networks, {', '.join(AXES)}}}") from None
    spec = dict(spec)
    unknown = sorted(set(spec) - {"name", "networks", *AXES})
    if unknown or "name" not in spec:
        raise SuiteError(f"{path}: {where}: a recipe has fields name, networks, {', '.join(AXES)}"
                         + (f"; unknown: {', '.join(unknown)}" if unknown else "; 'name' is missing"))
    networks = spec.get("networks", "shared")
    if networks not in NETWORKS:
        raise SuiteError(f"{path}: {where}.networks: {networks!r} is not one of {', '.join(NETWORKS)}")
    method = {"name": spec["name"], "networks": networks}
    for axis, registry in AXES.items():
        method[axis] = plugin(registry, spec.get(axis, METHODS.get("supervised")[axis]), f"{where}.{axis}", path)
    return method


def check_scenario(scenario: dict[str, Any], tasks: list[str], datasets: list[dict[str, Any]], where: str,
                   path: Path) -> None:
    if scenario["name"] == "mask_file" and not Path(scenario["path"]).exists():
        raise SuiteError(f"{path}: {where}.path: mask file {scenario['path']!r} not found "
                         f"(paths are relative to the directory mtlbench runs in)")
    if scenario["name"] == "budget":
        raise SuiteError(f"{path}: {where}: the budget scenario is made by a suite's budget section (README, "
                         f"\"Label-budget track\"), not listed under scenarios")
    if scenario["name"] == "extended":
        bases = [n for n in SCENARIOS.list() if n not in ("extended", "mask_file", "budget")]
        if scenario["base"] not in bases:
            raise SuiteError(f"{path}: {where}.base: {scenario['base']!r} is not one of {', '.join(bases)}")
        if scenario["task"] not in tasks:
            raise SuiteError(f"{path}: {where}.task: {scenario['task']!r} is not a task of this suite "
                             f"({', '.join(tasks)})")
        for dataset in datasets:
            if not dataset.get("pool"):
                raise SuiteError(f"{path}: {where}: 'extended' needs extra pool images; set the dataset's "
                                 f"'pool' (synthrooms: a number of images, e.g. pool: 400; nyuv2: the folder of its "
                                 f"depth-only images)")


def check_dataset(dataset: dict[str, Any], tasks: list[str], model: dict[str, Any], where: str,
                  path: Path) -> None:
    instance = build(DATASETS, dataset)
    if hasattr(instance, "require"):  # datasets read from disk: fail in seconds, before any job starts
        try:
            instance.require()
        except DatasetError as error:
            raise SuiteError(f"{path}: {where}: {error}") from None
    available = instance.tasks()
    unknown = [t for t in tasks if t not in available]
    if unknown:
        raise SuiteError(f"{path}: tasks: {', '.join(unknown)} not in dataset {dataset['name']!r}. "
                         f"Valid tasks: {', '.join(available)}")
    multiple = getattr(MODELS.get(model["name"]), "input_multiple", 1)
    for side in ("height", "width"):
        if side in dataset and dataset[side] % multiple:
            raise SuiteError(f"{path}: {where}.{side}: {dataset[side]} is not a multiple of {multiple}, "
                             f"which model {model['name']!r} needs")


def check_methods(methods: list[dict[str, Any]], datasets: list[dict[str, Any]], tasks: list[str],
                  model: dict[str, Any], path: Path) -> None:
    """Each part states which task sets it can train (e.g. JTR stacks dense maps only; AMTL needs accuracies
    and, unless given, the potentials of the suite's stl jobs) and which backbones it is defined for."""
    names = [m["name"] for m in methods]
    for i, method in enumerate(methods):
        if method["weighting"]["name"] == "amtl" and method["weighting"].get("potentials") is None \
                and "stl" not in names:
            raise SuiteError(f"{path}: methods[{i}].weighting: amtl takes its potentials from the suite's stl "
                             f"results: add stl to methods, or set weighting.potentials")
    for dataset in datasets:
        available = build(DATASETS, dataset).tasks()
        for i, method in enumerate(methods):
            for axis, registry in AXES.items():
                part = build(registry, method[axis])
                if part.models is not None and model["name"] not in part.models:
                    raise SuiteError(f"{path}: methods[{i}].{axis}: {method[axis]['name']} is defined for models "
                                     f"{list(part.models)} only, not {model['name']!r}")
                try:
                    part.check({t: available[t] for t in tasks})
                except ValueError as error:
                    raise SuiteError(f"{path}: methods[{i}].{axis}: {error}") from None


def resolve_common(raw: SuiteFile, path: Path) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]]]:
    """The model, the training settings and the datasets, resolved and checked (every track has them)."""
    if raw.dataset is not None and raw.datasets:
        raise SuiteError(f"{path}: give either 'dataset' or 'datasets', not both")
    dataset_specs = raw.datasets or ([raw.dataset] if raw.dataset is not None else [])
    if not dataset_specs:
        raise SuiteError(f"{path}: dataset: required field is missing. Valid choices: {', '.join(DATASETS.list())}")
    for key in ("tasks", "seeds"):
        if not getattr(raw, key):
            raise SuiteError(f"{path}: {key}: must list at least one entry")
    model = plugin(MODELS, raw.model, "model", path)
    train = raw.train.model_dump()
    train["optimizer"] = plugin(OPTIMIZERS, raw.train.optimizer, "train.optimizer", path)
    train["scheduler"] = plugin(SCHEDULERS, raw.train.scheduler, "train.scheduler", path)
    datasets = [plugin(DATASETS, spec, f"datasets[{i}]" if raw.datasets else "dataset", path)
                for i, spec in enumerate(dataset_specs)]
    for i, dataset in enumerate(datasets):
        check_dataset(dataset, raw.tasks, model, f"datasets[{i}]" if raw.datasets else "dataset", path)
    return model, train, datasets


def resolve_single_method_track(raw: SuiteFile, path: Path, track: str, no_scenarios: str,
                                method_role: str) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]],
                                                            dict[str, Any]]:
    """A track that trains one shared-network method on labels it decides itself (budget, grouping): the
    model, training settings, datasets and that method (default ``supervised``), checked."""
    if raw.scenarios:
        raise SuiteError(f"{path}: scenarios: a {track} suite has none ({no_scenarios})")
    if len(raw.methods) > 1:
        raise SuiteError(f"{path}: methods: a {track} suite trains one method ({method_role}), got "
                         f"{len(raw.methods)}")
    model, train, datasets = resolve_common(raw, path)
    method = resolve_method(raw.methods[0] if raw.methods else "supervised", "methods[0]", path)
    if method["networks"] != "shared":
        raise SuiteError(f"{path}: methods[0]: the {track} track trains one shared network per job, not "
                         f"{method['networks']!r} networks")
    check_methods([method], datasets, raw.tasks, model, path)
    return model, train, datasets, method


def expand(raw: SuiteFile, path: Path) -> list[Job]:
    """Every (dataset x scenario x method x seed) job, ``stl`` first (other methods may read its results)."""
    for key in ("scenarios", "methods"):
        if not getattr(raw, key):
            raise SuiteError(f"{path}: {key}: must list at least one entry")
    model, train, datasets = resolve_common(raw, path)
    scenarios = [plugin(SCENARIOS, spec, f"scenarios[{i}]", path) for i, spec in enumerate(raw.scenarios)]
    for i, scenario in enumerate(scenarios):
        check_scenario(scenario, raw.tasks, datasets, f"scenarios[{i}]", path)
        scenario["mask_seed"] = raw.mask_seed
    methods = [resolve_method(spec, f"methods[{i}]", path) for i, spec in enumerate(raw.methods)]
    check_methods(methods, datasets, raw.tasks, model, path)
    names = [m["name"] for m in methods]
    if len(set(names)) != len(names):
        duplicated = sorted(n for n in set(names) if names.count(n) > 1)
        raise SuiteError(f"{path}: methods: duplicate method names {duplicated}")
    methods.sort(key=lambda m: m["name"] != "stl")
    for task in raw.leaderboard.metrics:
        if task not in raw.tasks:
            raise SuiteError(f"{path}: leaderboard.metrics.{task}: not a task of this suite ({', '.join(raw.tasks)})")
    name = raw.name or path.stem
    jobs = []
    for dataset in datasets:
        for scenario in scenarios:
            for method in methods:
                for seed in raw.seeds:
                    config = {"dataset": dataset, "tasks": list(raw.tasks), "scenario": scenario, "method": method,
                              "model": model, "train": train, "seed": seed}
                    jobs.append(Job(job_id(config), name, config))
    return jobs
