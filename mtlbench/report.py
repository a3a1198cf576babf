"""W&B comparison dashboards for a suite (``mtlbench report``): a Report and a saved workspace view, built with
wandb-workspaces (``wandb_workspaces.reports.v2`` and ``.workspaces``, imported only here).

Per (dataset, scenario) of the suite, a panel grid whose run set holds that table's job runs (filtered on the
``mtlbench`` config block every job's run carries) grouped by method: a bar plot of each task's test metrics
and one of ΔMTL (mean over seeds with the standard deviation; the leaderboard's intervals are in its tables),
line plots of the validation metrics per epoch, a run comparer; for the suite's tuning studies, a parallel-
coordinates panel of each study's parameters against its objective; then the leaderboard tables themselves. The
workspace view shows the same panels, grouped by method.

Building the W&B model of a report needs the server (it looks the project's internal id up), so offline the
report is kept as a **spec**: the wandb-workspaces objects as JSON, each tagged with its class, rebuilt through
those classes (``read_spec``; they validate every field). ``mtlbench sync`` uploads the runs and then saves the
spec's report and workspace; ``mtlbench report --save`` saves them at once. The spec relies on the classes of
the pinned wandb-workspaces version (pyproject.toml).
"""
from __future__ import annotations

import dataclasses
import importlib
import json
from pathlib import Path
from typing import Any

from .files import read_json, write_text_atomic

SPEC_FORMAT = 1
SPEC_FILE = "wandb-report.json"


def table_filter(suite: str, dataset: str, scenario: str) -> str:
    """The runs of one (dataset, scenario) table of a suite: its job runs, by the config they all carry."""
    return (f"Config('suite') == '{suite}' and Config('mtlbench.dataset') == '{dataset}' and "
            f"Config('mtlbench.scenario') == '{scenario}'")


GROUP_BY_METHOD = "config.mtlbench.method"


def table_panels(tasks: list[str], shown: dict[str, list[str]]) -> list[Any]:
    """The panels of one table: test metrics per task, ΔMTL, validation curves, the run comparer."""
    import wandb_workspaces.reports.v2 as wr

    bars = [wr.BarPlot(title=f"test {task}", metrics=[wr.SummaryMetric(f"test/{task}/{metric}")
                                                       for metric in shown[task]],
                       groupby_aggfunc="mean", groupby_rangefunc="stddev") for task in tasks]
    delta = wr.BarPlot(title="ΔMTL % vs the baseline", metrics=[wr.SummaryMetric("delta_mtl")],
                       groupby_aggfunc="mean", groupby_rangefunc="stddev")
    curves = [wr.LinePlot(title=f"validation {task} {metric}", x="epoch", y=[f"val/{task}/{metric}"],
                          groupby_aggfunc="mean", groupby_rangefunc="minmax")
              for task in tasks for metric in shown[task][:1]]
    return [*bars, delta, *curves, wr.RunComparer(diff_only="split")]


def shown_metrics(suite: Any) -> dict[str, list[str]]:
    """Per task: its primary metric, then the metrics the suite's leaderboard adds for it."""
    from .data import DATASETS
    from .registry import build

    tasks = build(DATASETS, suite.jobs[0].config["dataset"]).tasks()
    chosen = suite.raw.leaderboard.metrics
    return {t: list(dict.fromkeys([tasks[t].primary, *chosen.get(t, [])])) for t in suite.raw.tasks}


def tables_of(suite: Any) -> list[tuple[str, str]]:
    return list(dict.fromkeys((job.dataset, job.scenario) for job in suite.jobs if job.kind == "train"))


def build_report(suite: Any, entity: str, project: str, leaderboard: str | None, studies: list[Any]) -> Any:
    """The suite's W&B Report (``studies``: its tuning studies, ``leaderboard``: its Markdown tables)."""
    import wandb_workspaces.reports.v2 as wr

    shown = shown_metrics(suite)
    blocks: list[Any] = [wr.H1(f"mtlbench: {suite.name}"), wr.P(suite.raw.description.strip() or suite.name)]
    for dataset, scenario in tables_of(suite):
        runset = wr.Runset(entity=entity, project=project, name=f"{dataset} / {scenario}",
                           filters=table_filter(suite.name, dataset, scenario), groupby=[GROUP_BY_METHOD])
        blocks += [wr.H2(f"{dataset} / {scenario}"),
                   wr.PanelGrid(runsets=[runset], panels=table_panels(list(suite.raw.tasks), shown))]
    for study in studies:
        columns = [wr.ParallelCoordinatesPlotColumn(metric=wr.Config(f"params.{path}")) for path in study.space]
        columns.append(wr.ParallelCoordinatesPlotColumn(metric=wr.SummaryMetric("tune/objective")))
        runset = wr.Runset(entity=entity, project=project, name=study.name,
                           filters=f"Config('study') == '{study.name}'")
        blocks += [wr.H2(f"Tuning: {study.name}"),
                   wr.PanelGrid(runsets=[runset], panels=[wr.ParallelCoordinatesPlot(columns=columns,
                                                                                     title=study.name)])]
    blocks.append(wr.H2("Leaderboard"))
    blocks.append(wr.MarkdownBlock(leaderboard) if leaderboard else
                  wr.P(f"No finished jobs when this report was built: `mtlbench leaderboard {suite.name}`"))
    return wr.Report(project=project, entity=entity, title=f"mtlbench: {suite.name}",
                     description=f"Methods of suite {suite.name} compared, grouped by method", blocks=blocks)


def build_workspace(suite: Any, entity: str, project: str) -> Any:
    """A saved workspace view of the suite's runs grouped by method, a section per table."""
    import wandb_workspaces.workspaces as ws

    shown = shown_metrics(suite)
    sections = [ws.Section(name=f"{dataset} / {scenario}", panels=table_panels(list(suite.raw.tasks), shown),
                           is_open=True) for dataset, scenario in tables_of(suite)]
    return ws.Workspace(entity=entity, project=project, name=f"mtlbench {suite.name} by method", sections=sections,
                        runset_settings=ws.RunsetSettings(filters=f"Config('suite') == '{suite.name}'",
                                                          groupby=[ws.Config("mtlbench.method")]))


# ------------------------------------------------------------------------------------------ the spec
def to_spec(value: Any) -> Any:
    """wandb-workspaces objects as JSON data, each tagged with its class (only the fields it is built from)."""
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        declared = getattr(value, "__pydantic_fields__", {})  # a field may be built under an alias
        fields = {getattr(declared.get(f.name), "alias", None) or f.name: to_spec(getattr(value, f.name))
                  for f in dataclasses.fields(value) if f.init}
        return {"__class__": f"{type(value).__module__}.{type(value).__qualname__}", **fields}
    if hasattr(value, "model_dump") and hasattr(type(value), "model_fields"):  # pydantic models (filter expressions)
        fields = {name: to_spec(getattr(value, name)) for name in type(value).model_fields}
        return {"__class__": f"{type(value).__module__}.{type(value).__qualname__}", **fields}
    if isinstance(value, (list, tuple)):
        return [to_spec(item) for item in value]
    if isinstance(value, dict):
        return {str(key): to_spec(item) for key, item in value.items()}
    return value


def from_spec(data: Any) -> Any:
    """The objects of a spec, rebuilt through wandb-workspaces' own classes (which validate every field)."""
    if isinstance(data, list):
        return [from_spec(item) for item in data]
    if not isinstance(data, dict):
        return data
    fields = {key: from_spec(value) for key, value in data.items() if key != "__class__"}
    if "__class__" not in data:
        return fields
    module, _, name = data["__class__"].rpartition(".")
    if not module.startswith("wandb_workspaces."):
        raise ValueError(f"report spec: class {data['__class__']} is not one of wandb-workspaces'")
    cls = getattr(importlib.import_module(module), name)
    return cls(**fields)


def write_spec(path: Path, report: Any, workspace: Any) -> Path:
    from importlib.metadata import version

    spec = {"format": SPEC_FORMAT, "wandb_workspaces": version("wandb-workspaces"), "report": to_spec(report),
            "workspace": to_spec(workspace)}
    write_text_atomic(path, json.dumps(spec, indent=1, ensure_ascii=False) + "\n")
    return path


def read_spec(path: Path, entity: str | None = None) -> tuple[Any, Any]:
    """The report and the workspace of a spec file (``entity`` fills an entity the spec left empty)."""
    from importlib.metadata import version

    spec = read_json(path)
    if not isinstance(spec, dict) or spec.get("format") != SPEC_FORMAT:
        raise ValueError(f"{path}: not a report spec of format {SPEC_FORMAT}; rebuild it with `mtlbench report`")
    if spec["wandb_workspaces"] != version("wandb-workspaces"):
        raise ValueError(f"{path}: built with wandb-workspaces {spec['wandb_workspaces']}, installed "
                         f"{version('wandb-workspaces')}; rebuild it with `mtlbench report`")
    if entity:
        spec = with_entity(spec, entity)
    return from_spec(spec["report"]), from_spec(spec["workspace"])


def with_entity(data: Any, entity: str) -> Any:
    if isinstance(data, list):
        return [with_entity(item, entity) for item in data]
    if isinstance(data, dict):
        return {k: (entity if k == "entity" and not v else with_entity(v, entity)) for k, v in data.items()}
    return data


def save(path: Path) -> list[str]:
    """Save a spec's report and workspace to the W&B server (needs a login; an empty entity becomes the
    login's default entity); their URLs."""
    import wandb

    report, workspace = read_spec(path, wandb.Api().default_entity)
    report.save()
    workspace.save()
    return [report.url, workspace.url]


__all__ = ["SPEC_FILE", "build_report", "build_workspace", "read_spec", "save", "table_filter", "write_spec"]
