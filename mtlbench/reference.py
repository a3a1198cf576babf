"""The registries as text: ``mtlbench list`` (a terminal summary) and ``mtlbench list --markdown`` (the
documentation's reference page, docs/reference.md, which a test keeps equal to what this generates)."""
from __future__ import annotations

import dataclasses
import inspect
from typing import Any, Iterator

from .registry import Registry, parameters
from .space import describe, search_space


def registries() -> list[tuple[str, str, Registry[Any]]]:
    """(title, what a suite writes to use one, registry) for every registry a user picks from."""
    from .data import DATASETS, SCENARIOS
    from .jobs import KINDS, RESOLVERS
    from .methods import AXES
    from .models import MODELS
    from .runner import EXECUTORS
    from .track import TRACKS
    from .train.observers import OBSERVERS
    from .train.optim import OPTIMIZERS, SCHEDULERS
    from .tuning import PRUNERS

    return [("Datasets", "`dataset:`", DATASETS), ("Scenarios", "`scenarios:`", SCENARIOS),
            *[(f"Recipe parts: {axis}", f"`methods: [{{name: ..., {axis}: ...}}]`", registry)
              for axis, registry in AXES.items()],
            ("Models", "`model:`", MODELS), ("Optimizers", "`train.optimizer:`", OPTIMIZERS),
            ("Schedulers", "`train.scheduler:`", SCHEDULERS), ("Pruners", "`tune.pruner:`", PRUNERS),
            ("Observers", "`train.observe:`", OBSERVERS),
            *[entry for track in TRACKS.list() for entry in TRACKS.get(track)().registries()],
            ("Executors", "`executor:`", EXECUTORS), ("Tracks", "a suite's section", TRACKS),
            ("Job kinds", "(internal: how a job runs)", KINDS), ("Resolvers", "(internal: a job's inputs)", RESOLVERS)]


def dataset_tasks(cls: type, quote: str = "") -> str:
    """The tasks a dataset gives with its defaults; one that needs settings first (``union``: its parts) says so."""
    if any(default is dataclasses.MISSING for default in parameters(cls).values()):
        return "tasks: those its settings name"
    return "tasks: " + ", ".join(f"{quote}{t}{quote}" for t in cls().tasks())


def part_label(spec: dict[str, Any]) -> str:
    """``sta_gap(gap=4)``: a recipe part with its non-default settings."""
    settings = ", ".join(f"{k}={v!r}" for k, v in spec.items() if k != "name")
    return spec["name"] + (f"({settings})" if settings else "")


def terminal() -> Iterator[str]:
    """``mtlbench list``: each registry's names with their parameters and search spaces."""
    from .data import DATASETS
    from .methods import AXES, METHODS

    yield "(parameters as name=default; a name alone is required)"
    for title, _, registry in registries():
        yield f"{title.lower()}:"
        for name in registry.list():
            params = ", ".join(k if v is dataclasses.MISSING else f"{k}={v!r}"  # a name alone: required
                               for k, v in parameters(registry.get(name)).items())
            space = ", ".join(f"{k} in {describe(s)}" for k, s in search_space(registry.get(name)).items())
            yield f"  {name}" + (f" ({params})" if params else "") + (f"; tune: {space}" if space else "")
        if registry is DATASETS:
            yield from (f"  {name} {dataset_tasks(DATASETS.get(name))}" for name in DATASETS.list())
    yield "methods (presets):"
    for name in METHODS.list():
        recipe = METHODS.get(name)
        yield f"  {name}: networks={recipe['networks']}, " + ", ".join(f"{a}={part_label(recipe[a])}" for a in AXES)


def cell(value: Any) -> str:
    if value is dataclasses.MISSING:
        return "(required)"
    return f"`{value!r}`".replace("|", "\\|")


def field_notes(plugin: Any) -> dict[str, str]:
    """A dataclass field's ``description`` metadata, where it declares one."""
    if not dataclasses.is_dataclass(plugin):
        return {}
    return {f.name: f.metadata.get("description", "") for f in dataclasses.fields(plugin)}


def entry(name: str, plugin: Any) -> list[str]:
    lines = [f"### `{name}`", ""]
    doc = inspect.getdoc(plugin) if inspect.isclass(plugin) else None
    if doc and not doc.startswith(f"{plugin.__name__}("):  # a dataclass's generated signature is no documentation
        lines += [doc, ""]
    params, space, notes = parameters(plugin), search_space(plugin), field_notes(plugin)
    if params:
        lines += ["| parameter | default | search space | note |", "|---|---|---|---|"]
        lines += [f"| `{key}` | {cell(default)} | {describe(space[key]) if key in space else ''} | "
                  f"{notes.get(key, '')} |" for key, default in params.items()]
        lines.append("")
    return lines


def spaces_table() -> list[str]:
    """docs/tuning.md's table of declared search spaces: every optimiser and recipe part with a ``space``, each
    parameter by its path in the job config (how ``tune.space`` names it), its range and its default."""
    from .methods import AXES
    from .train.optim import OPTIMIZERS

    lines = ["| plugin | parameter (path) | search space | default |", "|---|---|---|---|"]
    for prefix, registry in [("train.optimizer", OPTIMIZERS), *((f"method.{a}", r) for a, r in AXES.items())]:
        for name in registry.list():
            plugin = registry.get(name)
            defaults = parameters(plugin)
            lines += [f"| {name} | `{prefix}.{key}` | {describe(space)} | {cell(defaults[key])} |"
                      for key, space in search_space(plugin).items()]
    bare = [name for registry in AXES.values() for name in registry.list() if not search_space(registry.get(name))]
    return lines + ["", f"Recipe parts without a declared space, tuned in their optimiser's parameters only: "
                        f"{', '.join(bare)}."]


def markdown() -> str:
    """docs/reference.md: every registered name with its docstring, parameters, defaults and search space."""
    from .data import DATASETS
    from .methods import AXES, METHODS

    lines = ["# Reference", "",
             "Generated by `mtlbench list --markdown > docs/reference.md` from the registries; a test fails when this "
             "page differs from what the command prints. Every name below can be written in a suite as shown, "
             "e.g. `{name: dwa, temperature: 2.0}`, with the parameters' defaults filled in; a search space is "
             "what `mtlbench tune` searches (docs/tuning.md).", ""]
    for title, usage, registry in registries():
        lines += [f"## {title}", "", f"Used as {usage}.", ""]
        for name in registry.list():
            lines += entry(name, registry.get(name))
            if registry is DATASETS:
                lines += [f"T{dataset_tasks(registry.get(name), '`')[1:]}.", ""]
    lines += ["## Method presets", "", "Used as `methods: [NAME]`: a recipe of one part per axis (docs/methods.md).",
              "", "| method | networks | " + " | ".join(AXES) + " |", "|---|---|" + "---|" * len(AXES)]
    for name in METHODS.list():
        recipe = METHODS.get(name)
        lines.append(f"| `{name}` | {recipe['networks']} | "
                     + " | ".join(f"`{part_label(recipe[axis])}`" for axis in AXES) + " |")
    return "\n".join(lines) + "\n"


__all__ = ["markdown", "part_label", "spaces_table", "terminal"]
