"""One generic registry per extension point (models, datasets, tasks, metrics, evaluators).

Entries are registered with a decorator next to the thing they name, so there is exactly one
registration per object.  Registries are *lazy* in the sense that matters for the CLI: the modules
that register entries never import torch at module level (heavy imports happen inside builders),
so ``bench list`` can import every registering module and still start in well under a second.
"""

from __future__ import annotations

import difflib
import importlib
import pkgutil
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import Generic, TypeVar

T = TypeVar("T")
M = TypeVar("M")


class RegistryError(KeyError):
    """Unknown or duplicate registry name; ``str()`` is the full human-readable message."""

    def __str__(self) -> str:  # KeyError would wrap the message in quotes
        return str(self.args[0]) if self.args else ""


def closest(name: str, choices: list[str], n: int = 3) -> list[str]:
    """Names in ``choices`` that look like ``name`` (for "did you mean" hints), best first."""
    lowered = {c.lower(): c for c in choices}
    hits = difflib.get_close_matches(name.lower(), list(lowered), n=n, cutoff=0.5)
    prefix = [c for c in choices if c.lower().startswith(name.lower()) and c.lower() not in hits]
    return [lowered[h] for h in hits] + prefix[: max(0, n - len(hits))]


def unknown_name_message(kind: str, name: str, choices: list[str]) -> str:
    """``unknown model 'yolo3'; did you mean 'yolo_v3'? available: a, b, c``."""
    hint = closest(name, choices)
    msg = f"unknown {kind} {name!r}"
    if hint:
        msg += "; did you mean " + " or ".join(repr(h) for h in hint) + "?"
    return msg + f" available: {', '.join(sorted(choices)) or '(none)'}"


@dataclass(frozen=True)
class Entry(Generic[T, M]):
    """A registered object with its typed metadata."""

    name: str
    obj: T
    meta: M


class Registry(Generic[T, M]):
    """Name -> (object, metadata) mapping filled by decorators in ``discover`` packages.

    ``discover`` names packages whose (non-underscore) submodules are imported on first lookup;
    that is what keeps registration in one place (the decorator) without a hand-kept table.
    """

    def __init__(self, kind: str, discover: tuple[str, ...] = ()) -> None:
        self.kind = kind
        self._discover = discover
        self._entries: dict[str, Entry[T, M]] = {}
        self._discovered = False

    def register(self, name: str, meta: M) -> Callable[[T], T]:
        """Decorator: ``@MODELS.register("unet", ModelSpec(...))`` over a builder."""

        def deco(obj: T) -> T:
            self.add(name, obj, meta)
            return obj

        return deco

    def add(self, name: str, obj: T, meta: M) -> None:
        """Register ``obj`` under ``name``; a second registration of the same name is an error."""
        if name in self._entries:
            prev = self._entries[name].obj
            where = getattr(prev, "__module__", "?") + "." + getattr(prev, "__qualname__", "?")
            raise RegistryError(f"duplicate {self.kind} name {name!r}: already registered by {where}")
        self._entries[name] = Entry(name, obj, meta)

    def _ensure_discovered(self) -> None:
        if self._discovered:
            return
        self._discovered = True
        for pkg_name in self._discover:
            pkg = importlib.import_module(pkg_name)
            if not hasattr(pkg, "__path__"):  # a plain module (e.g. a plugin) registers on import
                continue
            for info in pkgutil.walk_packages(pkg.__path__, prefix=pkg_name + "."):
                # Underscore modules hold the torch-heavy implementations; they are imported
                # by builders on demand, never during discovery.
                if any(part.startswith("_") for part in info.name.split(".")):
                    continue
                importlib.import_module(info.name)

    def get(self, name: str) -> Entry[T, M]:
        """Entry for ``name`` or a RegistryError with did-you-mean and the available names."""
        self._ensure_discovered()
        try:
            return self._entries[name]
        except KeyError:
            raise RegistryError(unknown_name_message(self.kind, name, self.names())) from None

    def __contains__(self, name: object) -> bool:
        self._ensure_discovered()
        return name in self._entries

    def names(self) -> list[str]:
        """Registered names, sorted."""
        self._ensure_discovered()
        return sorted(self._entries)

    def entries(self) -> Iterator[Entry[T, M]]:
        """All entries, sorted by name."""
        for name in self.names():
            yield self._entries[name]

