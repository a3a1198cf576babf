"""Jobs and the job graph: what every layer shares (suite expansion, tracks, runner, tuning, leaderboards).

A job is one fully resolved config (its hash is the job's id), the suite it belongs to, its **kind** (how it
runs: ``train`` for an ordinary training job; tracks register others, e.g. TABA's estimates) and its
**inputs**: for each registered resolver, the ids of the jobs whose results that resolver reads when the job
starts (AMTL's STL potentials, TABA's estimates). The ids a job reads are its ``needs``; they make the suite a
directed acyclic graph that executors run in dependency order.

Kinds and resolvers are registries, like every other plugin: the runner looks a job's kind and resolvers up
by name and knows none of them.
"""
from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Protocol

from .errors import UserError
from .ids import job_id
from .registry import Registry

def scenario_label(scenario: dict[str, Any]) -> str:
    """How results and tables name a scenario, e.g. ``onelabel+30%unlabeled`` (each scenario class says)."""
    from .data import SCENARIOS

    return SCENARIOS.get(scenario["name"]).label_of(scenario)


@dataclasses.dataclass(frozen=True)
class Job:
    id: str
    suite: str
    config: dict[str, Any]
    label: str = ""  # how progress shows it (not part of the id)
    kind: str = "train"  # a name in KINDS: how the job runs
    inputs: Mapping[str, tuple[str, ...]] = dataclasses.field(default_factory=dict)  # resolver -> job ids
    name: str = ""  # what results and tables call the job (default: its method's name)
    keeps_weights: bool = False  # another job reads its trained weights (a teacher): kept when it finishes

    @property
    def needs(self) -> tuple[str, ...]:
        """The ids of the jobs whose results this job reads: they must finish first."""
        return tuple(dict.fromkeys(i for ids in self.inputs.values() for i in ids))

    @property
    def method(self) -> str:
        return self.name or self.config["method"]["name"]

    @property
    def dataset(self) -> str:
        return self.config["dataset"]["name"]

    @property
    def scenario(self) -> str:
        return scenario_label(self.config["scenario"])

    @property
    def seed(self) -> int:
        return self.config["seed"]

    @property
    def row(self) -> str:
        """What the leaderboard calls the job's method (``row_name``)."""
        return row_name(self.method, bool(self.config.get("tuned")))

    def describe(self) -> str:
        return f"{self.dataset}/{self.label or self.scenario}/{self.method}/seed{self.seed}"


TUNED = " (tuned)"


def row_name(method: str, tuned: bool) -> str:
    """A job trained with `mtlbench tune`'s parameters is a row of its own, ``<method> (tuned)``, so that a results
    folder holding a suite run with and without ``--params`` shows both rows rather than averaging them."""
    return method + TUNED if tuned else method


def baseline_row(baseline: str, rows: Iterable[str]) -> str:
    """The baseline's row: its paper row, or its tuned row where only that ran (a suite run with --params)."""
    rows = set(rows)
    return baseline + TUNED if baseline not in rows and baseline + TUNED in rows else baseline


def new_job(suite: str, config: dict[str, Any], label: str = "", kind: str = "train",
            inputs: Mapping[str, Iterable[str]] | None = None, name: str = "") -> Job:
    """A job whose id is the hash of ``config``."""
    return Job(job_id(config), suite, config, label, kind,
               {resolver: tuple(ids) for resolver, ids in (inputs or {}).items()}, name)


# ------------------------------------------------------------------------------------------ the graph
class GraphError(UserError, ValueError):
    """A need that is not in the suite, or a cycle; raised before anything trains."""


def check_graph(jobs: list[Job]) -> None:
    """Every need is a job of the suite, every kind and resolver is registered, and there is no cycle."""
    ids = {job.id for job in jobs}
    for job in jobs:
        if job.kind not in KINDS:
            raise GraphError(f"job {job.id} ({job.describe()}): {KINDS.unknown_message(job.kind)}")
        for resolver in job.inputs:
            if resolver not in RESOLVERS:
                raise GraphError(f"job {job.id} ({job.describe()}): {RESOLVERS.unknown_message(resolver)}")
        missing = [need for need in job.needs if need not in ids]
        if missing:
            raise GraphError(f"job {job.id} ({job.describe()}) needs {', '.join(missing)}, which the suite does not "
                             f"have")
    levels(jobs)


def levels(jobs: list[Job]) -> list[list[Job]]:
    """The jobs in dependency order: level k holds the jobs whose needs all lie in levels < k, each level in
    the suite's order (so a suite without needs is one level, in its own order)."""
    depth: dict[str, int] = {}
    by_id = {job.id: job for job in jobs}
    visiting: set[str] = set()

    def depth_of(job: Job) -> int:
        if job.id not in depth:
            if job.id in visiting:
                raise GraphError(f"job {job.id} ({job.describe()}) needs itself through {', '.join(job.needs)}")
            visiting.add(job.id)
            depth[job.id] = 1 + max((depth_of(by_id[n]) for n in job.needs if n in by_id), default=-1)
            visiting.discard(job.id)
        return depth[job.id]

    out: list[list[Job]] = []
    for job in jobs:
        level = depth_of(job)
        out.extend([] for _ in range(level + 1 - len(out)))
        out[level].append(job)
    return out


def blocked_by(job: Job, failed: Mapping[str, tuple[str, str]]) -> tuple[str, str] | None:
    """Why ``job`` cannot run: for its first need in ``failed`` (job id -> the failed job at the root of it and
    that job's first error line), that root and line; None if no need failed."""
    return next((failed[need] for need in job.needs if need in failed), None)


# ------------------------------------------------------------------------------ kinds and resolvers
# Called with each epoch's record as it is trained; a resumed job's kind first replays the records of the epochs an
# earlier attempt trained (as its checkpoint holds them), marked ``{RESUMED: True}``, so the runner's per-epoch
# records and W&B run hold every epoch however the earlier attempt ended.
EpochCallback = Callable[[dict[str, Any]], None]
RESUMED = "resumed"


class ResultLookup(Protocol):
    """What a resolver reads of the jobs it needs: a finished job's result.json (None if it has none), and the
    folder that holds the files it keeps (a teacher's weights)."""

    def __call__(self, job_id: str) -> dict[str, Any] | None: ...

    def folder(self, job_id: str) -> Path: ...


@dataclasses.dataclass(frozen=True)
class Step:
    """Where a stage's epoch stands after a training step: what a progress bar inside the epoch shows."""

    stage: str
    epoch: int  # from 1
    epochs: int
    batches: int  # trained in this epoch so far
    of: int  # the epoch's batches
    images: int  # trained in this epoch so far
    seconds: float  # since the epoch started
    logs: Mapping[str, Any]  # the step's logs, summed over its ``group`` batches; tensors on the job's device
    group: int = 1

    def loss(self) -> float:
        """The step's training loss, summed over its tasks, per batch. Reading it waits for the device: call it
        rarely (a progress bar a few times a second), never at every step."""
        return float(sum(value for key, value in self.logs.items() if key.startswith("loss/"))) / self.group


StepCallback = Callable[[Step], None]


def ignore(_: Any) -> None:
    """A hook nobody listens to."""


@dataclasses.dataclass(frozen=True)
class Hooks:
    """What a job tells whoever runs it while it trains, as Lightning's callbacks: ``epoch`` gets each epoch's
    record (a resumed job first replays those of its checkpoint, marked ``{RESUMED: True}``), ``step`` each
    training step's ``Step``. The trainer calls them and knows none of their listeners."""

    epoch: EpochCallback = ignore
    step: StepCallback = ignore


class JobKind(Protocol):
    """How a job of a kind runs: ``run`` trains it and returns the outcome the runner records in result.json
    (``test`` and ``val`` metrics, ``history``, ...; ``estimate`` for jobs that estimate something)."""

    def run(self, config: dict[str, Any], job_dir: Any, hooks: Hooks, test: bool) -> dict[str, Any]: ...


@dataclasses.dataclass(frozen=True)
class Resolution:
    """What a resolver takes from a job's finished needs: the config the job then trains with (its id stays
    the hash of the unresolved config) and the fields it adds to the job's result.json."""

    config: dict[str, Any]
    record: dict[str, Any]


Resolver = Callable[[dict[str, Any], tuple[str, ...], ResultLookup], Resolution]
WEIGHTS_READERS: set[str] = set()  # resolvers that read their needs' trained weights, which those jobs then keep


def reads_weights(name: str) -> Callable[[Resolver], Resolver]:
    """Register a resolver that reads the trained weights of the jobs it needs (teachers): the suite marks those jobs
    ``keeps_weights``, so that finishing them keeps ``weights-<stage>.pt`` instead of deleting every checkpoint."""
    def register(resolver: Resolver) -> Resolver:
        WEIGHTS_READERS.add(name)
        return RESOLVERS.register(name)(resolver)
    return register


def with_kept_weights(jobs: list[Job]) -> list[Job]:
    """The jobs, those whose weights a resolver of another job reads marked ``keeps_weights``."""
    read = {i for job in jobs for name, ids in job.inputs.items() if name in WEIGHTS_READERS for i in ids}
    return [dataclasses.replace(job, keeps_weights=True) if job.id in read else job for job in jobs]

# The trainer registers ``train`` (mtlbench.train.kind) and the tracks their kinds: loaded by name, so that the job
# graph, which the trainer and the methods import, imports neither of them back.
KINDS: Registry[type[JobKind]] = Registry("job kind", plugins=("mtlbench.train.kind", "mtlbench.tracks"))
RESOLVERS: Registry[Resolver] = Registry("resolver", plugins="mtlbench.tracks")
