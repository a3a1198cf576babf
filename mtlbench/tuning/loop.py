"""``mtlbench tune``: run each study of a suite to its trial budget and write the best parameters.

Every study gets the same budget: ``trials`` finished (complete or pruned) trials. Several processes on one
storage share a study: each asks Optuna for the next trial while places are left, and a trial asked for after
the last place was taken gives way (it is recorded as failed with the user attribute ``surplus``), so the
study ends with exactly ``trials`` finished trials. An interrupted trial (Ctrl-C, SIGTERM) is recorded as failed
and its parameters are queued again, so the next ``mtlbench tune`` resumes its job from the checkpoint.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from ..config import Suite
from ..interrupts import sigterm_as_interrupt
from ..runner.preflight import check_machine
from .objective import Context, Objective, Surplus, counts, reference_metrics
from .params import write_params
from .studies import TUNING, StudySpec


@dataclass(frozen=True)
class TuneOptions:
    results: str = "results"
    trials: int | None = None  # default: the suite's tune.trials
    storage: str | None = None  # default: sqlite:///<results>/<suite>/tuning/optuna.db
    out: str | None = None  # the best-parameters file (default: <results>/<suite>/tuning/params.yaml)
    wandb: str = "offline"
    reclaim: bool = False


def default_storage(results: str, suite: str) -> str:
    folder = Path(results) / suite / TUNING
    folder.mkdir(parents=True, exist_ok=True)
    return f"sqlite:///{folder / 'optuna.db'}"


def tune_suite(suite: Suite, studies: list[StudySpec], options: TuneOptions) -> list[dict[str, Any]]:
    """Run every study to its budget; returns (and writes) the best-parameters entries."""
    import optuna

    from .backend import open_storage, redacted

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    check_machine(suite)
    url = options.storage or default_storage(options.results, suite.name)
    storage = open_storage(url)
    context = Context(options.results, options.wandb, suite.raw.wandb.project, suite.raw.wandb.entity)
    out = Path(options.out) if options.out else Path(options.results) / suite.name / TUNING / "params.yaml"
    entries = []
    with sigterm_as_interrupt():  # a scheduler's stop: a clean interrupt
        for spec in studies:
            study = run_study(spec, storage, context, options.trials or spec.settings.trials, options.reclaim)
            entry = best_entry(spec, study, redacted(url))
            if entry is not None:
                entries.append(entry)
                write_params(out, suite.name, [entry])
    if entries:
        print(f"best parameters: {out}  (apply: mtlbench run {suite.path} --params {out})")
    print(f"dashboard: optuna-dashboard {url.removeprefix('journal:')}")
    return entries


def run_study(spec: StudySpec, storage: Any, context: Context, budget: int, reclaim: bool) -> Any:
    import optuna

    from .backend import HEARTBEAT_SECONDS, PaperFirstTPE

    study = optuna.create_study(
        storage=storage, study_name=spec.name, load_if_exists=True,
        direction="maximize" if spec.score.maximize else "minimize",
        sampler=PaperFirstTPE(spec.first, spec.settings.sampler_seed, spec.settings.startup_trials),
        pruner=build_pruner(spec))
    describe_study(study, spec)
    if reclaim:
        reclaim_running(study)
    print(f"{spec.name}: {budget} trials, searching {', '.join(spec.space) or 'nothing'}"
          f" ({objective_label(spec)})")
    objective = Objective(spec, context, reference_metrics(spec, context), budget)
    while places_left(study, budget):
        errors = failed(study)
        if errors >= budget:
            raise RuntimeError(f"{spec.name}: {errors} trials failed (see the errors above); the study stops")
        study.optimize(objective, n_trials=1, catch=(Surplus,), callbacks=[print_trial])
    tally = counts(study)
    if tally.get("RUNNING"):
        print(f"{spec.name}: {tally['RUNNING']} trial(s) still running in other processes; if a process died, run "
              f"again after {2 * HEARTBEAT_SECONDS} s (SQL storages fail it by heartbeat) or with --reclaim (journal)")
    return study


def build_pruner(spec: StudySpec) -> Any:
    from ..registry import build
    from .pruners import PRUNERS

    return build(PRUNERS, spec.pruner).build()


def describe_study(study: Any, spec: StudySpec) -> None:
    """What the study is, readable in optuna-dashboard."""
    from ..space import describe

    attributes = {"suite": spec.suite, "dataset": spec.dataset, "scenario": spec.scenario, "method": spec.method,
                  "objective": objective_label(spec), "space": {p: describe(s) for p, s in spec.space.items()},
                  "first_trial": spec.first, "jobs": [j.id for j in spec.jobs]}
    for key, value in attributes.items():
        if study.user_attrs.get(key) != value:
            study.set_user_attr(key, value)


def objective_label(spec: StudySpec) -> str:
    name = f"ΔMTL % vs {spec.baseline}" if spec.baseline else spec.score.objective
    return f"validation {name}, {'higher' if spec.score.maximize else 'lower'} is better"


def places_left(study: Any, budget: int) -> bool:
    """Whether a trial may start: a queued one (an interrupted trial's parameters), or a new one while
    finished, running and queued trials leave room."""
    tally = counts(study)
    taken = sum(tally.get(state, 0) for state in ("COMPLETE", "PRUNED", "RUNNING", "WAITING"))
    return taken < budget or tally.get("WAITING", 0) > 0


def failed(study: Any) -> int:
    """Trials that failed by an error (not the ones that gave way or were interrupted)."""
    return sum(t.state.name == "FAIL" and not {"surplus", "interrupted"} & set(t.user_attrs)
               for t in study.get_trials(deepcopy=False))


def reclaim_running(study: Any) -> None:
    """Fail the trials left running by processes that died and queue their parameters again."""
    from optuna.trial import TrialState

    for trial in study.get_trials(deepcopy=False, states=(TrialState.RUNNING,)):
        study.tell(trial.number, state=TrialState.FAIL)
        study.enqueue_trial(trial.params, user_attrs={"resumes": trial.number})
        print(f"{study.study_name}: trial {trial.number} reclaimed; its parameters are queued again")


def print_trial(study: Any, trial: Any) -> None:
    if trial.user_attrs.get("surplus"):
        return
    values = ", ".join(f"{p.rsplit('.', 1)[-1]}={v:.4g}" if isinstance(v, float) else f"{p.rsplit('.', 1)[-1]}={v}"
                       for p, v in trial.params.items())
    value = "" if trial.value is None else f" {trial.value:.4f}"
    print(f"  trial {trial.number}: {trial.state.name.lower()}{value}  {values}", flush=True)


def best_entry(spec: StudySpec, study: Any, storage: str) -> dict[str, Any] | None:
    tally = counts(study)
    if not tally.get("COMPLETE"):
        return None
    best = study.best_trial
    return {"dataset": spec.dataset, "scenario": spec.scenario, "method": spec.method, "study": spec.name,
            "storage": storage, "objective": objective_label(spec),
            "trials": {"complete": tally.get("COMPLETE", 0), "pruned": tally.get("PRUNED", 0)},
            "best_trial": best.number, "value": float(best.value), "params": dict(best.params)}
