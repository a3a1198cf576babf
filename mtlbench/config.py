"""Suite files: schema, validation with precise errors, ``--set`` overrides, and expansion into jobs.

A suite is YAML. Plugins (dataset, scenarios, methods' parts, model, optimiser, scheduler) are written as a
name or as ``{name: ..., param: value}``; their parameters are checked against the registered dataclass, and
every default is filled in, so a job's resolved config names everything it depends on and its hash is its id.

Every error names the file, the field (as a dotted path) and the valid choices, and is raised before any
training starts.
"""
from __future__ import annotations

import dataclasses
import json
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, TypeAdapter, ValidationError, create_model

from .data import DATASETS, SCENARIOS, SPLITS, DatasetError
from .data.scenarios import ScenarioError
from .errors import UserError
from .files import check_name
from .ids import spelt_as_before
from .jobs import GraphError, Job, check_graph, with_kept_weights
from .methods import AXES, AXIS_ALIASES, METHODS, NETWORKS
from .models import MODELS, parameter_count
from .registry import Registry, RegistryError, build, parameters
from .schema import SuiteFile, TrainSection
from .track import DEFAULT_TRACK, TRACKS, Track
from .train.observers import OBSERVERS
from .train.optim import OPTIMIZERS, SCHEDULERS

SCHEMA_VERSION = 1


class SuiteError(UserError, ValueError):
    """A suite that cannot run; the message says where (file and field) and how to fix it."""


def default_of(section: type[BaseModel], name: str) -> Any:
    """A setting's default as the schema holds it: the spelling rules below compare with it, never a copy."""
    return section.model_fields[name].default


@spelt_as_before
def precision_default(config: dict[str, Any]) -> dict[str, Any]:
    """``train.precision`` came with 0.2; ``auto`` is the earlier behaviour, hashed as before."""
    if config.get("train", {}).get("precision") == default_of(TrainSection, "precision"):
        del config["train"]["precision"]
    return config


@spelt_as_before
def test_every_epoch_default(config: dict[str, Any]) -> dict[str, Any]:
    """``train.test_every_epoch`` came with 0.2 and trains nothing differently; off, it is hashed as before."""
    if config.get("train", {}).get("test_every_epoch") is default_of(TrainSection, "test_every_epoch"):
        del config["train"]["test_every_epoch"]
    return config


@spelt_as_before
def label_smoothing_default(config: dict[str, Any]) -> dict[str, Any]:
    """``train.label_smoothing`` came with 0.3; 0 is the earlier loss, hashed as before."""
    if config.get("train", {}).get("label_smoothing") == default_of(TrainSection, "label_smoothing"):
        del config["train"]["label_smoothing"]
    return config


@spelt_as_before
def head_lr_default(config: dict[str, Any]) -> dict[str, Any]:
    """``train.optimizer.head_lr`` came with 0.3; null (one learning rate) is the earlier training, hashed as before."""
    optimizer = config.get("train", {}).get("optimizer", {})
    if "head_lr" in optimizer and optimizer["head_lr"] is None:
        del optimizer["head_lr"]
    return config


@spelt_as_before
def observe_default(config: dict[str, Any]) -> dict[str, Any]:
    """``train.observe`` came with 0.3; no observer is the earlier behaviour, hashed as before."""
    if config.get("train", {}).get("observe") == []:
        del config["train"]["observe"]
    return config


@spelt_as_before
def devices_default(config: dict[str, Any]) -> dict[str, Any]:
    """``train.devices`` came with 0.3; one device is the earlier training, hashed as before."""
    if config.get("train", {}).get("devices") == default_of(TrainSection, "devices"):
        del config["train"]["devices"]
    return config


@spelt_as_before
def align_corners_default(config: dict[str, Any]) -> dict[str, Any]:
    """``train.augment.align_corners`` came with 0.2; without a scale-crop nothing is resized, so such a job
    trains as before and is hashed without it."""
    augment = config.get("train", {}).get("augment", {})
    if not augment.get("scale_crop", True):
        augment.pop("align_corners", None)
    if augment.get("photometric_ops") == 0:  # RandAugment (0.2) off: its magnitude changes nothing
        augment.pop("photometric_ops")
        augment.pop("photometric_magnitude", None)
    return config


@dataclasses.dataclass(frozen=True)
class Suite:
    name: str
    path: Path
    raw: SuiteFile
    jobs: list[Job]
    track: str = DEFAULT_TRACK
    details: dict[str, Any] | None = None  # the track's summary: which jobs make which table (budget, grouping)

    def summary(self) -> dict[str, Any]:
        """What the leaderboard needs to know about the suite (saved next to its results)."""
        summary = {"name": self.name, "path": str(self.path), "description": self.raw.description,
                   "leaderboard": self.raw.leaderboard.model_dump(), "tasks": self.raw.tasks,
                   "scenarios": list(dict.fromkeys(job.scenario for job in self.jobs)),
                   "methods": list(dict.fromkeys(job.row for job in self.jobs)),
                   "jobs": [job.id for job in self.jobs], "track": self.track,
                   "index": {job.id: [job.dataset, job.scenario, job.row, job.seed] for job in self.jobs},
                   "wandb": self.raw.wandb.model_dump(),
                   **({"lr_grid": self.raw.lr_grid.model_dump()} if self.raw.lr_grid else {}),
                   **({"sweep": self.sweep_summary()} if self.raw.sweep else {})}
        return summary | ({self.track: self.details} if self.details is not None else {})

    def sweep_summary(self) -> dict[str, Any]:
        """The sweep's parameter, and per scenario label of the suite the curve it lies on (the listed scenario's
        name, numbered where two listed scenarios share one) and the parameter's value there."""
        parameter = self.raw.sweep.parameter
        curves: dict[str, str] = {}
        at = {}
        for job in self.jobs:
            scenario = job.config["scenario"]
            key = json.dumps({k: v for k, v in scenario.items() if k != parameter}, sort_keys=True)
            if key not in curves:
                named = sum(curve.split(" #")[0] == scenario["name"] for curve in curves.values())
                curves[key] = scenario["name"] + (f" #{named + 1}" if named else "")
            at[job.scenario] = {"curve": curves[key], "value": scenario[parameter]}
        return {"parameter": parameter, "values": self.raw.sweep.values, "at": at}


# ----------------------------------------------------------------------------------------- loading
class UniqueKeyLoader(yaml.SafeLoader):
    """YAML's safe loader, refusing a key given twice in one mapping (YAML would silently keep the last)."""

    def construct_mapping(self, node: yaml.MappingNode, deep: bool = False) -> dict[Any, Any]:
        seen: set[Any] = set()
        for key_node, _ in node.value:
            key = self.construct_object(key_node, deep=deep)
            if key in seen:
                raise yaml.constructor.ConstructorError(None, None, f"key {key!r} is given twice",
                                                        key_node.start_mark)
            seen.add(key)
        return super().construct_mapping(node, deep)


def read_yaml(path: Path) -> Any:
    """A suite file's content; SuiteError names the file when it is missing, not a file, not text or not YAML."""
    if not path.exists():
        raise SuiteError(f"{path}: suite file not found")
    if not path.is_file():
        raise SuiteError(f"{path}: is a directory, not a suite file; give the path of a .yaml file")
    try:
        text = path.read_text()
    except UnicodeDecodeError:
        raise SuiteError(f"{path}: not a text file (a suite is YAML text)") from None
    try:
        return yaml.load(text, Loader=UniqueKeyLoader)
    except yaml.YAMLError as error:
        raise SuiteError(yaml_problem(path, error)) from None


def yaml_problem(path: Path | str, error: yaml.YAMLError) -> str:
    """One line, ``FILE:LINE:COLUMN: not valid YAML: PROBLEM``, the place counted from 1 as editors do (PyYAML
    would name the text ``<unicode string>``, over several lines)."""
    mark = getattr(error, "problem_mark", None)
    place = f":{mark.line + 1}:{mark.column + 1}" if mark is not None else ""
    problem = getattr(error, "problem", None) or str(error)
    context = getattr(error, "context", None)
    return f"{path}{place}: not valid YAML: {problem}" + (f" ({context})" if context else "")


def load_suite(path: str | Path, overrides: list[str] = ()) -> Suite:
    path = Path(path)
    data = read_yaml(path) or {}
    if not isinstance(data, dict):
        raise SuiteError(f"{path}: a suite is a mapping of fields, got {type(data).__name__}")
    for override in overrides:
        apply_override(data, override, path)
    schema = suite_schema()
    try:
        raw = schema.model_validate(data)
    except ValidationError as error:
        raise SuiteError(describe_validation_error(path, error, schema)) from None
    suite_name(raw, path)
    track = track_of(raw, path)
    plugin_track = TRACKS.get(track)()
    jobs, details = plugin_track.expand(raw, path)
    jobs = with_kept_weights(with_part_inputs(jobs, path))
    try:
        check_graph(jobs)
    except GraphError as error:
        raise SuiteError(f"{path}: {error}") from None
    check_published(raw, plugin_track, jobs, details, path)
    return Suite(suite_name(raw, path), path, raw, jobs, track, details)


def check_published(raw: SuiteFile, track: Track, jobs: list[Job], details: dict[str, Any] | None,
                    path: Path) -> None:
    """Each published entry names a dataset, scenario and rows of the suite, as its track names them (values are
    checked against the results when the leaderboard is made)."""
    names = track.published_names(jobs, details)
    for i, entry in enumerate(raw.leaderboard.published):
        where = f"{path}: leaderboard.published[{i}]"
        for field in ("dataset", "scenario"):
            value = getattr(entry, field)
            if value is not None and value not in names[field]:
                valid = ", ".join(sorted(names[field])) or "none: leave it out"
                raise SuiteError(f"{where}.{field}: {value!r} is not one of the suite's ({valid})")
        for method in entry.notes:
            if method not in entry.rows:
                raise SuiteError(f"{where}.notes.{method}: not one of the entry's rows ({', '.join(entry.rows)})")
        for task in entry.metrics if isinstance(entry.metrics, dict) else {}:
            if task not in raw.tasks:
                raise SuiteError(f"{where}.metrics.{task}: not a task of the suite ({', '.join(raw.tasks)})")
        for method, values in entry.rows.items():
            if method not in names["method"]:
                raise SuiteError(f"{where}.rows.{method}: not a row of the suite's tables "
                                 f"({', '.join(sorted(names['method']))})")
            for key in values:
                task, slash, _ = key.partition("/")
                if key == "acc_mtl" and not raw.leaderboard.acc_mtl:
                    raise SuiteError(f"{where}.rows.{method}.{key}: the tables show Acc_MTL only with "
                                     f"leaderboard.acc_mtl: true")
                if track.published_metrics and key not in ("delta_mtl", "acc_mtl") and (
                        not slash or task not in raw.tasks):
                    raise SuiteError(f"{where}.rows.{method}.{key}: give delta_mtl, acc_mtl or TASK/METRIC with a "
                                     f"task of the suite ({', '.join(raw.tasks)})")


def suite_name(raw: SuiteFile, path: Path) -> str:
    """The suite's name (its ``name``, else the file's stem), which names its results and leaderboard folders."""
    try:
        return check_name(raw.name or path.stem)
    except ValueError as error:
        where = "name" if raw.name is not None else "name (not set: the file name gives it)"
        raise SuiteError(f"{path}: {where}: {error}") from None


def suite_schema() -> type[SuiteFile]:
    """The suite model: the common fields and every registered track's section (optional)."""
    sections = {name: TRACKS.get(name)().section() for name in TRACKS.list()}
    fields = {name: (model | None, None) for name, model in sections.items() if model is not None}
    return create_model("Suite", __base__=SuiteFile, **fields)  # type: ignore[call-overload]


def track_of(raw: SuiteFile, path: Path) -> str:
    """The track whose section the suite has (the default track when it has none)."""
    given = [name for name in TRACKS.list() if getattr(raw, name, None) is not None]
    if len(given) > 1:
        raise SuiteError(f"{path}: a suite has at most one track section; got {', '.join(given)}")
    return given[0] if given else DEFAULT_TRACK


def with_part_inputs(jobs: list[Job], path: Path) -> list[Job]:
    """Each job with the inputs its recipe parts read from other jobs' results (AMTL: the STL potentials)."""
    out = []
    for job in jobs:
        inputs = dict(job.inputs)
        for axis, registry in AXES.items() if "method" in job.config else ():
            part = build(registry, job.config["method"][axis])
            try:
                inputs.update(part.inputs(job, jobs))
            except ValueError as error:
                raise SuiteError(f"{path}: method {job.method!r}, {axis}: {error}") from None
        out.append(dataclasses.replace(job, inputs={k: tuple(v) for k, v in inputs.items()}))
    return out


def apply_override(data: dict[str, Any], override: str, path: Path) -> None:
    """``--set train.epochs=3`` or ``--set scenarios.0.unlabeled=0.3``: the value is parsed as YAML."""
    if "=" not in override:
        raise SuiteError(f"--set {override!r}: expected KEY=VALUE, e.g. --set train.epochs=3")
    key, value = override.split("=", 1)
    try:
        parsed = yaml.safe_load(value)
    except yaml.YAMLError as error:
        raise SuiteError(f"--set {override!r}: the value is not valid YAML ({getattr(error, 'problem', None) or error}"
                         f"); quote it for the shell, e.g. --set 'methods=[a, b]'") from None
    *parents, last = key.split(".")
    node: Any = data
    try:
        for part in parents:
            node = node[int(part)] if isinstance(node, list) else node.setdefault(part, {})
        if isinstance(node, list):
            node[int(last)] = parsed
        else:
            node[last] = parsed
    except (ValueError, IndexError, TypeError, AttributeError):
        raise SuiteError(f"--set {override!r}: {key!r} names no field of {path} (a list takes an index, e.g. "
                         f"scenarios.0.unlabeled; a value that is not a mapping has no fields)") from None


def describe_validation_error(path: Path, error: ValidationError, schema: type[BaseModel] = SuiteFile) -> str:
    lines = [f"{path}: invalid suite"]
    for item in error.errors():
        where = ".".join(str(p) for p in item["loc"] if not str(p).startswith(("str", "dict[", "list[")))
        if item["type"] == "extra_forbidden":
            valid = ", ".join(fields_at(schema, item["loc"][:-1]))
            lines.append(f"  {where}: unknown field. Valid fields here: {valid}")
        elif item["type"] == "missing":
            lines.append(f"  {where}: required field is missing")
        elif not where:  # a rule across fields: its message names them, the input is the whole suite
            lines.append(f"  {item['msg'].removeprefix('Value error, ')}")
        else:
            lines.append(f"  {where}: {item['msg'].removeprefix('Value error, ')} (got {item.get('input')!r})")
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
    try:
        cls = registry.get(spec["name"])
    except RegistryError as error:
        raise SuiteError(f"{path}: {where}.name: {error}") from None
    name = registry.canonical(spec.pop("name"))
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
        detail = "; ".join(f"{'.'.join(map(str, e['loc'])) + ': ' if e['loc'] else ''}"
                           f"{e['msg'].removeprefix('Value error, ')}" for e in error.errors())
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
    spec = {AXIS_ALIASES.get(key, key): value for key, value in spec.items()}
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


def check_scenario(scenario: dict[str, Any], tasks: list[str], datasets: list[dict[str, Any]], mask_seed: int,
                   where: str, path: Path) -> None:
    """A scenario the suite lists: one a suite may list, usable with these tasks and datasets, and whose label
    plan can be made for each dataset's training split (a mask file of the wrong size fails here, not when its
    first job starts)."""
    made_by = SCENARIOS.get(scenario["name"]).made_by
    if made_by:
        raise SuiteError(f"{path}: {where}: the {scenario['name']} scenario is made by a suite's {made_by} section, "
                         f"not listed under scenarios")
    labels = build(SCENARIOS, {k: v for k, v in scenario.items() if k != "mask_seed"})
    try:
        labels.check_suite(tasks, datasets)
        for dataset in datasets:
            instance = build(DATASETS, dataset)
            n_pool = instance.split_size("pool") if labels.pool else 0
            labels.plan(instance.split_size("train"), tasks, mask_seed, n_pool)
    except ScenarioError as error:
        raise SuiteError(f"{path}: {where}{'.' + error.field if error.field else ''}: {error}") from None


def check_model(model: dict[str, Any], tasks: list[str], dataset: dict[str, Any], path: Path) -> None:
    """The model can be built for these tasks: built on the meta device, which allocates nothing (whether its
    weights fit a device is checked when a local run starts, runner/preflight.py)."""
    available = build(DATASETS, dataset).tasks()
    try:
        parameter_count(model, {t: available[t] for t in tasks})
    except (ValueError, RuntimeError, TypeError) as error:
        raise SuiteError(f"{path}: model: {model['name']} cannot be built with {model}: {error}") from None


def check_dataset(dataset: dict[str, Any], tasks: list[str], model: dict[str, Any], where: str,
                  path: Path) -> None:
    instance = build(DATASETS, dataset)
    if hasattr(instance, "require"):  # datasets read from disk: fail in seconds, before any job starts
        try:
            instance.require()
        except DatasetError as error:
            raise SuiteError(f"{path}: {where}: {error}") from None
    for split in SPLITS:
        if instance.split_size(split) < 1:
            raise SuiteError(f"{path}: {where}: the {split} split has no images; every job trains, validates and "
                             f"tests, so give each split at least one")
    available = instance.tasks()
    unknown = [t for t in tasks if t not in available]
    if unknown:
        raise SuiteError(f"{path}: tasks: {', '.join(unknown)} not in dataset {dataset['name']!r}. "
                         f"Valid tasks: {', '.join(available)}")
    multiple = getattr(build(MODELS, model), "input_multiple", 1)
    for side in ("height", "width"):
        if side in dataset and dataset[side] % multiple:
            raise SuiteError(f"{path}: {where}.{side}: {dataset[side]} is not a multiple of {multiple}, "
                             f"which model {model['name']!r} needs")


def check_methods(methods: list[dict[str, Any]], datasets: list[dict[str, Any]], tasks: list[str],
                  model: dict[str, Any], path: Path) -> None:
    """Each part states which task sets it can train (e.g. JTR stacks dense maps only; AMTL needs accuracies)
    and which backbones it is defined for; what a part reads from other jobs is checked with the job graph."""
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
    unknown = [name for name in raw.train.observe if name not in OBSERVERS.list()]
    if unknown:
        raise SuiteError(f"{path}: train.observe: unknown observer {', '.join(unknown)}. Valid observers: "
                         f"{', '.join(OBSERVERS.list())}")
    datasets = [plugin(DATASETS, spec, f"datasets[{i}]" if raw.datasets else "dataset", path)
                for i, spec in enumerate(dataset_specs)]
    for i, dataset in enumerate(datasets):
        check_dataset(dataset, raw.tasks, model, f"datasets[{i}]" if raw.datasets else "dataset", path)
    check_model(model, raw.tasks, datasets[0], path)
    return model, train, datasets


def resolve_single_method_track(raw: SuiteFile, path: Path, track: str, no_scenarios: str,
                                method_role: str) -> tuple[dict[str, Any], dict[str, Any], list[dict[str, Any]],
                                                            dict[str, Any]]:
    """A track that trains one shared-network method on labels it decides itself (budget, grouping): the
    model, training settings, datasets and that method (default ``supervised``), checked."""
    if raw.scenarios:
        raise SuiteError(f"{path}: scenarios: a {track} suite has none ({no_scenarios})")
    if raw.train.observe:
        raise SuiteError(f"{path}: train.observe: a {track} suite's jobs take their own measurements; step observers "
                         f"run in suites of scenarios x methods")
    if raw.lr_grid:
        raise SuiteError(f"{path}: lr_grid: a {track} suite trains one method; a learning-rate grid compares methods "
                         f"(a suite of scenarios x methods)")
    if raw.sweep:
        raise SuiteError(f"{path}: sweep: a {track} suite has no scenarios to sweep ({no_scenarios})")
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


