"""One registry type for every plugin kind: datasets, scenarios, models, recipe parts, allocators, selectors.

Modelled on torchvision's model registry: ``register`` refuses a duplicate name, ``get`` names the valid
choices (and the closest match) when a name is unknown, ``list`` shows what is there. As timm keeps deprecated
model names, an entry may carry ``aliases``: older names that still resolve (``canonical`` gives the current
one), so a renamed plugin keeps working in suites written before the rename. A plugin declares its
parameters as data: a registered class is a dataclass whose fields (with the paper's defaults) are its
parameters, so the suite validator, the CLI and the docs read them without instantiating anything.
"""
from __future__ import annotations

import dataclasses
import difflib
import importlib
from typing import Any, Callable, Generic, TypeVar

from .errors import UserError

T = TypeVar("T")


class RegistryError(UserError, KeyError):
    """An unknown or duplicate plugin name; the message lists the valid choices."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


def unknown_message(kind: str, name: str, choices: list[str]) -> str:
    """``unknown KIND 'NAME'. Did you mean 'X'? Valid choices: ...`` (the hint only for a close name)."""
    close = difflib.get_close_matches(name, choices, n=1)
    hint = f" Did you mean {close[0]!r}?" if close else ""
    return f"unknown {kind} {name!r}.{hint} Valid choices: {', '.join(choices) or '(none)'}"


class Registry(Generic[T]):
    """``plugins``: the modules whose import registers entries defined outside the registry's own module (the
    tracks, for the registries the core defines); they are imported the first time the registry is read, as
    entry points would be, so that the module defining the registry never imports them (nor they it back)."""

    def __init__(self, kind: str, plugins: str | tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}
        self._plugins = (plugins,) if isinstance(plugins, str) else plugins

    def _loaded(self) -> "Registry[T]":
        modules, self._plugins = self._plugins, ()  # before importing: the imports read registries too
        for module in modules:
            importlib.import_module(module)
        return self

    def register(self, name: str, aliases: tuple[str, ...] = ()) -> Callable[[T], T]:
        def add(item: T) -> T:
            for taken in (name, *aliases):
                if taken in self._items or taken in self._aliases:
                    raise RegistryError(f"{self.kind} {taken!r} is already registered")
            self._items[name] = item
            self._aliases.update(dict.fromkeys(aliases, name))
            return item

        return add

    def canonical(self, name: str) -> str:
        """The current name of ``name`` (itself unless it is an alias)."""
        return self._loaded()._aliases.get(name, name)

    def get(self, name: str) -> T:
        try:
            return self._items[self.canonical(name)]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def aliases(self) -> dict[str, str]:
        """Every alias and the name it stands for."""
        return dict(self._loaded()._aliases)

    def unknown_message(self, name: str) -> str:
        return unknown_message(self.kind, name, self.list())

    def list(self) -> list[str]:
        return sorted(self._loaded()._items)

    def __contains__(self, name: object) -> bool:
        self._loaded()
        return name in self._items or name in self._aliases


def parameters(plugin: Any) -> dict[str, Any]:
    """The declared parameters of a registered dataclass and their defaults (MISSING when required)."""
    if not dataclasses.is_dataclass(plugin):
        return {}
    return {
        f.name: (f.default if f.default is not dataclasses.MISSING
                 else f.default_factory() if f.default_factory is not dataclasses.MISSING  # type: ignore[misc]
                 else dataclasses.MISSING)
        for f in dataclasses.fields(plugin) if f.init
    }


def require(field: str, value: Any, ok: bool, rule: str) -> None:
    """For a plugin's ``__post_init__``: refuse a parameter value, naming the field and the rule it breaks."""
    if not ok:
        raise ValueError(f"{field} = {value!r}: {rule}")


def build(registry: Registry[Any], spec: dict[str, Any]) -> Any:
    """Instantiate ``{name: ..., **params}`` from a registry (specs are validated by config.py first)."""
    params = dict(spec)
    return registry.get(params.pop("name"))(**params)
