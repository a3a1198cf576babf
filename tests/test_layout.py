"""The architecture as the code must keep it: the core imports no track, and the trainer and the runner know
no method, track, job kind or resolver by name (they reach them through registries)."""
import ast
from pathlib import Path

import pytest

from mtlbench.jobs import KINDS, RESOLVERS
from mtlbench.methods import METHODS
from mtlbench.track import TRACKS
from conftest import REPO

PACKAGE = REPO / "mtlbench"
CORE = ["config.py", "jobs.py", "track.py", "registry.py", "runner", "train", "tuning", "leaderboard"]


def sources(*names):
    for name in names:
        path = PACKAGE / name
        yield from sorted(path.rglob("*.py")) if path.is_dir() else [path]


def imported_names(path: Path):
    """What each import statement binds, fully named (``from . import x`` imports ``package.x``, not the package)."""
    package = path.relative_to(REPO).with_suffix("").parts[:-1]
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = [*package[:len(package) - node.level + 1], *(node.module or "").split(".")] if node.level \
                else node.module.split(".")
            yield from (".".join([*filter(None, base), alias.name]) for alias in node.names)
        elif isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)


@pytest.mark.parametrize("path", list(sources(*CORE)), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_the_core_imports_no_track(path):
    tracks = [m for m in imported_names(path) if m.startswith("mtlbench.tracks")]
    assert not tracks, f"{path.relative_to(REPO)} imports {tracks}"


@pytest.mark.parametrize("path", list(sources("train", "runner")), ids=lambda p: str(p.relative_to(PACKAGE)))
def test_trainer_and_runner_name_no_method_track_kind_or_resolver(path):
    names = {*METHODS.list(), *TRACKS.list(), *(set(KINDS.list()) - {"train"}), *RESOLVERS.list()}
    literals = {node.value for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    assert not literals & names, f"{path.relative_to(REPO)} names {sorted(literals & names)}"


def test_the_import_check_sees_relative_imports():
    modules = set(imported_names(PACKAGE / "tracks" / "budget" / "track.py"))
    assert "mtlbench.track.TRACKS" in modules
    assert "mtlbench.tracks.budget.estimates" in modules


ENTRY_POINTS = ["cli.py", "bench.py", "reference.py", "__init__.py"]


@pytest.mark.parametrize("name", ENTRY_POINTS)
def test_the_entry_points_name_no_track(name):
    """Tracks bring their commands, benchmarks, registries, API names and scenarios through ``Track`` hooks."""
    path = PACKAGE / name
    imported = [m for m in imported_names(path) if m.startswith("mtlbench.tracks")]
    literals = {node.value for node in ast.walk(ast.parse(path.read_text()))
                if isinstance(node, ast.Constant) and isinstance(node.value, str)}
    named = sorted({s for s in literals if s.startswith("mtlbench.tracks")} | (literals & set(TRACKS.list())))
    assert not imported and not named, f"{name} imports {imported}, names {named}"


def test_a_plugin_track_adds_its_own_command_as_extending_md_shows(tmp_path):
    """The example of docs/extending.md, "A track", run as a user's plugin."""
    import os
    import re
    import subprocess
    import sys

    code = re.search(r"```python\n(from pathlib import Path\n\nfrom mtlbench.track import TRACKS.*?)```",
                     (REPO / "docs" / "extending.md").read_text(), re.S).group(1)
    plugin = tmp_path / "my_track.py"
    plugin.write_text(code)
    env = {**os.environ, "PYTHONPATH": str(REPO), "MTLBENCH_PLUGINS": str(plugin)}
    done = subprocess.run([sys.executable, "-m", "mtlbench.cli", "hello", "--name", "you"], env=env,
                          capture_output=True, text=True, timeout=120)
    assert done.returncode == 0 and done.stdout.strip() == "hello, you", done.stderr


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def import_graph() -> dict[str, set[str]]:
    """Each module of the package -> the package's modules it imports anywhere (at the top, inside a function or
    for type hints alone: each is a dependency the layering must allow)."""
    modules = {module_name(path): path for path in PACKAGE.rglob("*.py")}
    graph = {}
    for name, path in modules.items():
        targets = set()
        for imported in imported_names(path):
            while imported not in modules and "." in imported:
                imported = imported.rsplit(".", 1)[0]
            if imported in modules and imported != name:
                targets.add(imported)
        graph[name] = targets
    return graph


def import_circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected components of more than one module (Tarjan): the groups that import each other."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    circles = []

    def visit(module: str) -> None:
        index[module] = low[module] = len(index)
        stack.append(module)
        for target in sorted(graph[module]):
            if target not in index:
                visit(target)
                low[module] = min(low[module], low[target])
            elif target in stack:
                low[module] = min(low[module], index[target])
        if low[module] == index[module]:
            component = stack[stack.index(module):]
            del stack[stack.index(module):]
            if len(component) > 1:
                circles.append(sorted(component))

    for module in sorted(graph):
        if module not in index:
            visit(module)
    return circles


def test_no_module_imports_one_that_imports_it_back():
    circles = import_circles(import_graph())
    assert not circles, "import circles: " + "; ".join(" <-> ".join(c) for c in circles)


def test_the_circle_check_finds_a_circle_through_a_lazy_import():
    graph = import_graph()
    assert "mtlbench.jobs" in graph["mtlbench.train.trainer"]
    graph["mtlbench.jobs"].add("mtlbench.train")  # as jobs.py once imported the trainer inside a function
    assert any({"mtlbench.jobs", "mtlbench.train", "mtlbench.train.trainer"} <= set(c) for c in import_circles(graph))
