"""Your own datasets, scenarios and recipe parts without editing mtlbench: ``MTLBENCH_PLUGINS`` names Python
modules (``my_lab.parts``) or files (``./my_parts.py``), comma-separated, that register themselves in
mtlbench's registries when imported. Every mtlbench process imports them first: the command line, the worker
processes of ``--workers``, and the SLURM nodes (which inherit the environment of ``sbatch``)."""
from __future__ import annotations

import importlib
import importlib.util
import os
import sys
from pathlib import Path

from .errors import UserError

VARIABLE = "MTLBENCH_PLUGINS"


class PluginError(UserError, ImportError):
    pass


def load_plugins(spec: str | None = None) -> list[str]:
    """Import each module or file of ``spec`` (default: the environment variable); the names imported."""
    entries = [e.strip() for e in (os.environ.get(VARIABLE, "") if spec is None else spec).split(",") if e.strip()]
    for entry in entries:
        try:
            if entry.endswith(".py"):
                load_file(Path(entry))
            else:
                importlib.import_module(entry)
        except PluginError:
            raise
        except Exception as error:  # the plugin's own error, whatever it is, named with where it came from
            raise PluginError(f"{VARIABLE}: {entry}: {type(error).__name__}: {error}") from error
    return entries


def load_file(path: Path) -> None:
    if not path.is_file():
        raise PluginError(f"{VARIABLE}: {path}: no such file (give a .py file or an importable module name)")
    name = f"mtlbench_plugin_{path.stem}"
    if name in sys.modules:
        return
    spec = importlib.util.spec_from_file_location(name, path.resolve())
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)


__all__ = ["PluginError", "VARIABLE", "load_plugins"]
