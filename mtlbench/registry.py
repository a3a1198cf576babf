"""One registry type for every plugin kind: datasets, scenarios, models, recipe parts, allocators, selectors.

Modelled on torchvision's model registry: ``register`` refuses a duplicate name, ``get`` names the valid
choices (and the closest match) when a name is unknown, ``list`` shows what is there. A plugin declares its
parameters as data: a registered class is a dataclass whose fields (with the paper's defaults) are its
parameters, so the suite validator, the CLI and the docs read them without instantiating anything.
"""
from __future__ import annotations

import dataclasses
import difflib
from typing import Any, Callable, Generic, TypeVar

T = TypeVar("T")


class RegistryError(KeyError):
    """An unknown or duplicate plugin name; the message lists the valid choices."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0])


class Registry(Generic[T]):
    def __init__(self, kind: str) -> None:
        self.kind = kind
        self._items: dict[str, T] = {}

    def register(self, name: str) -> Callable[[T], T]:
        def add(item: T) -> T:
            if name in self._items:
                raise RegistryError(f"{self.kind} {name!r} is already registered")
            self._items[name] = item
            return item

        return add

    def get(self, name: str) -> T:
        try:
            return self._items[name]
        except KeyError:
            raise RegistryError(self.unknown_message(name)) from None

    def unknown_message(self, name: str) -> str:
        close = difflib.get_close_matches(name, self._items, n=1)
        hint = f" Did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}.{hint} Valid choices: {', '.join(self.list())}"

    def list(self) -> list[str]:
        return sorted(self._items)

    def __contains__(self, name: object) -> bool:
        return name in self._items


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


def build(registry: Registry[Any], spec: dict[str, Any]) -> Any:
    """Instantiate ``{name: ..., **params}`` from a registry (specs are validated by config.py first)."""
    params = dict(spec)
    return registry.get(params.pop("name"))(**params)
