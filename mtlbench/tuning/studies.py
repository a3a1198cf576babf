"""What ``mtlbench tune`` searches: one study per (dataset, scenario, method) of a suite, its search space, the
jobs each trial trains, the reference jobs it is scored against, and the study's name (a hash of all that).

Parameters are addressed by their path in the job config (``train.optimizer.lr``,
``method.weighting.temperature``); each path's range is the ``space`` its plugin declares (mtlbench/space.py),
narrowed or switched off by the suite's ``tune.space``. The suite's own value of each parameter (the paper's,
unless the suite changed it) is the study's first trial, so it must lie inside the range.
"""
from __future__ import annotations

import copy
import dataclasses
import math
from typing import Any

from ..config import Suite, SuiteError, plugin
from ..schema import TuneSection
from ..ids import job_id
from ..jobs import Job
from ..track import TRACKS
from ..data import DATASETS
from ..methods import AXES
from ..metrics import acc_mtl, delta_mtl
from ..registry import build
from ..space import Choice, Float, Space, describe, search_space
from ..train.optim import OPTIMIZERS
from .pruners import PRUNERS

SCORES = ("delta_mtl", "acc_mtl")  # the multi-task scores a study may maximise (else one TASK/METRIC)
TUNING = "tuning"  # trials and references live in <results>/<suite>/tuning/, the default storage too
Metrics = dict[str, dict[str, float]]


@dataclasses.dataclass(frozen=True)
class Score:
    """A trial's score on the validation split: ΔMTL (Yun and Cho 2023 Eq. 7, percent) against the reference
    method's mean validation metrics, Acc_MTL (Yun and Cho 2023 Eq. 8, over the same metrics, needing no reference),
    or one validation metric ``task/metric``."""

    objective: str
    chosen: dict[str, list[str]]  # the metrics per task that enter ΔMTL
    directions: dict[str, dict[str, bool]]

    @property
    def maximize(self) -> bool:
        if self.objective in SCORES:
            return True
        task, metric = self.objective.split("/")
        return self.directions[task][metric]

    def covers(self, metrics: Metrics) -> bool:
        """Whether an epoch's validation has every task (a per-task network's stage has only its own)."""
        return all(task in metrics for task in self.chosen)

    def __call__(self, metrics: Metrics, reference: Metrics | None) -> float:
        if self.objective == "delta_mtl":
            return delta_mtl(metrics, reference, self.directions, self.chosen)
        if self.objective == "acc_mtl":
            return acc_mtl(metrics, self.directions, self.chosen)
        task, metric = self.objective.split("/")
        return metrics[task][metric]


@dataclasses.dataclass(frozen=True)
class StudySpec:
    name: str
    suite: str
    dataset: str
    scenario: str
    method: str
    jobs: tuple[Job, ...]  # this method's job per tuning seed, with the suite's parameters
    space: dict[str, Space]  # parameter path -> range
    references: tuple[Job, ...]  # trained first, with the suite's parameters: ΔMTL's baseline, AMTL's STL
    baseline: str | None  # the method whose references ΔMTL compares with (None: a plain metric)
    score: Score
    pruner: dict[str, Any]  # resolved PRUNERS spec
    settings: TuneSection

    @property
    def first(self) -> dict[str, Any]:
        """The suite's value of every searched parameter: the first trial."""
        return {path: get_path(self.jobs[0].config, path) for path in self.space}

    def trial_job(self, base: Job, params: dict[str, Any]) -> Job:
        config = with_values(base.config, params)
        return dataclasses.replace(base, id=job_id(config), config=config)


def get_path(config: dict[str, Any], path: str) -> Any:
    node = config
    for key in path.split("."):
        node = node[key]
    return node


def with_values(config: dict[str, Any], values: dict[str, Any]) -> dict[str, Any]:
    """A copy of ``config`` with each ``path: value`` set (every path must exist)."""
    config = copy.deepcopy(config)
    for path, value in values.items():
        *parents, last = path.split(".")
        node = config
        for key in parents:
            node = node[key]
        if last not in node:
            raise KeyError(path)
        node[last] = value
    return config


def declared_space(config: dict[str, Any]) -> dict[str, Space]:
    """The ranges the job's optimiser and recipe parts declare, by parameter path."""
    spaces = {f"train.optimizer.{k}": s for k, s in search_space(OPTIMIZERS.get(config["train"]["optimizer"]["name"]))
              .items()}
    for axis, registry in AXES.items():
        part = registry.get(config["method"][axis]["name"])
        spaces.update({f"method.{axis}.{k}": s for k, s in search_space(part).items()})
    return spaces


def overridden(space: dict[str, Space], overrides: dict[str, dict[str, Any] | None], where: str) -> dict[str, Space]:
    """``tune.space``: ``null`` keeps a parameter at the suite's value, ``{low, high}`` narrows or widens a
    range, ``{values: [...]}`` makes it a choice."""
    space = dict(space)
    for path, override in overrides.items():
        if path not in space:
            continue
        if override is None:
            del space[path]
        elif set(override) == {"values"} and override["values"]:
            space[path] = Choice(tuple(override["values"]))
        elif set(override) == {"low", "high"} and not isinstance(space[path], Choice) \
                and 0 <= override["low"] < override["high"]:
            space[path] = dataclasses.replace(space[path], low=float(override["low"]), high=float(override["high"]))
        else:
            raise SuiteError(f"{where}.space.{path}: expected null, {{low: L, high: H}} with 0 <= L < H (ranges "
                             f"only), or {{values: [...]}}; got {override!r}")
    return space


def plan_studies(suite: Suite, methods: list[str] | None = None) -> list[StudySpec]:
    """The suite's studies (of ``methods`` only, if given), checked before anything trains."""
    raw, path = suite.raw, suite.path
    where = f"{path}: tune"
    if not TRACKS.get(suite.track).tunable:
        raise SuiteError(f"{where}: tuning compares the methods of a suite of scenarios x methods; a {suite.track} "
                         f"suite trains one method")
    if raw.lr_grid:
        raise SuiteError(f"{where}: the suite states its own protocol (lr_grid: each method at its best of "
                         f"{len(raw.lr_grid.rates)} learning rates); tune it with --set lr_grid=null")
    settings = raw.tune
    seeds = settings.seeds or raw.seeds[:1]
    by_id = {job.id: job for job in suite.jobs}
    groups: dict[tuple[str, str, str], Job] = {}
    for job in suite.jobs:
        groups.setdefault((job.dataset, job.scenario, job.method), job)
    names = list(dict.fromkeys(method for _, _, method in groups))
    unknown = [m for m in methods or [] if m not in names]
    if unknown:
        raise SuiteError(f"--method: {', '.join(unknown)} not in suite {suite.name}; its methods: {', '.join(names)}")
    baseline = (settings.baseline or raw.leaderboard.baseline) if settings.objective == "delta_mtl" else None
    if baseline is not None and baseline not in names:
        raise SuiteError(f"{where}.baseline: ΔMTL compares with method {baseline!r}, which the suite does not run; "
                         f"add it to methods or set tune.baseline to one of {', '.join(names)}")
    pruner = plugin(PRUNERS, settings.pruner, "tune.pruner", path)
    used: set[str] = set()
    studies = []
    for (dataset, scenario, method), job in groups.items():
        if methods and method not in methods:
            continue
        jobs = tuple(seeded(job, seed, by_id) for seed in seeds)
        declared = declared_space(job.config)
        used |= set(declared) & set(settings.space)
        space = around_suite_values(overridden(declared, settings.space, where), job.config,
                                    set(settings.space))
        check_first(space, job.config, f"{where}: method {method!r}")
        references = [seeded(groups[dataset, scenario, baseline], seed, by_id) for seed in seeds] if baseline else []
        references += [seeded(by_id[need], seed, by_id) for seed in seeds for need in job.needs]
        references = list({j.id: j for j in references}.values())
        score = make_score(settings.objective, job.config, raw.leaderboard.metrics, where)
        identity = {"jobs": [j.id for j in jobs], "references": [j.id for j in references],
                    "space": {p: describe(s) for p, s in space.items()}, "objective": settings.objective,
                    "metrics": score.chosen, "pruner": pruner, "sampler_seed": settings.sampler_seed,
                    "startup_trials": settings.startup_trials}
        name = f"{suite.name}/{dataset}/{scenario}/{method}-{job_id(identity)[:8]}"
        studies.append(StudySpec(name, suite.name, dataset, scenario, method, jobs, space,
                                 tuple(references), baseline, score, pruner, settings))
    stray = sorted(set(settings.space) - used)
    if stray and not methods:
        raise SuiteError(f"{where}.space: {', '.join(stray)} is no tunable parameter of the suite's methods; see "
                         f"`mtlbench list` for each part's space")
    return studies


def seeded(job: Job, seed: int, by_id: dict[str, Job]) -> Job:
    """The job with training seed ``seed`` in the tuning folder; its needs are seeded alike (AMTL's trial at
    seed s reads the STL jobs at seed s)."""
    config = {**job.config, "seed": seed}
    inputs = {resolver: tuple(dict.fromkeys(seeded(by_id[i], seed, by_id).id for i in ids))
              for resolver, ids in job.inputs.items()}
    return dataclasses.replace(job, id=job_id(config), suite=f"{job.suite}/{TUNING}", config=config, inputs=inputs)


def around_suite_values(space: dict[str, Space], config: dict[str, Any], set_by_suite: set[str]) -> dict[str, Space]:
    """A declared range that does not hold the suite's value is moved to centre on it, keeping its width (on
    the log scale for a log range): the papers declare ranges for their own settings (e.g. lr 8e-5 to 8e-4 for
    Adam at 1e-4 over hundreds of epochs), and a suite with another setting (the quickstart's lr 1e-3) searches
    as widely around its own value. Ranges that hold the value, and ranges the suite sets in tune.space, stay. A
    weight a method sets to 0 on a log-scale range switches its term off (an ablation: MTPSL without its
    regularisation): no range is centred on 0, and the weight is not tuned."""
    moved = dict(space)
    for path, range_ in space.items():
        value = get_path(config, path)
        if path in set_by_suite or not isinstance(range_, Float) or range_.contains(value) \
                or not isinstance(value, (int, float)):
            continue
        if range_.log and value == 0:
            del moved[path]
        elif range_.log and value > 0:
            factor = value / math.sqrt(range_.low * range_.high)
            moved[path] = dataclasses.replace(range_, low=range_.low * factor, high=range_.high * factor)
        elif not range_.log:
            shift = value - (range_.low + range_.high) / 2
            low = range_.low + shift if range_.low + shift >= 0 or range_.low < 0 else 0.0
            moved[path] = dataclasses.replace(range_, low=low, high=range_.high + shift)
    return moved


def check_first(space: dict[str, Space], config: dict[str, Any], where: str) -> None:
    for path, range_ in space.items():
        value = get_path(config, path)
        if not range_.contains(value):
            raise SuiteError(f"{where}: {path} = {value!r} lies outside its search space {describe(range_)}; the "
                             f"suite's value is the first trial, so set tune.space.{path} to a range that holds it")


def make_score(objective: str, config: dict[str, Any], chosen: dict[str, list[str]], where: str) -> Score:
    tasks = build(DATASETS, config["dataset"]).tasks()
    directions = {t: tasks[t].directions for t in config["tasks"]}
    metrics = {t: chosen.get(t, [tasks[t].primary]) for t in config["tasks"]}
    if objective not in SCORES:
        task, _, metric = objective.partition("/")
        if task not in directions or metric not in directions[task]:
            valid = ", ".join(f"{t}/{m}" for t, ms in directions.items() for m in ms)
            raise SuiteError(f"{where}.objective: {objective!r} is neither delta_mtl, acc_mtl nor a validation metric "
                             f"TASK/METRIC of this suite ({valid})")
    return Score(objective, metrics, directions)
