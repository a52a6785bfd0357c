"""The one registry: every family of plug-ins (ingest formats, exporters, embedding backends, PII
recognizers, migrations — next scorers, judges and monitors) is a :class:`Registry` filled by decorator.

    EXPORTERS: Registry[Writer] = Registry("export format", error=ExportError)

    @EXPORTERS.register("jsonl")
    def _jsonl(rows, release): ...

    EXPORTERS.get("csv")   # ExportError: unknown export format 'csv': one of hf, inspect, jsonl, promptfoo
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Generic, TypeVar

from evaltray.core.errors import EvaltrayError

T = TypeVar("T")


class UnknownName(EvaltrayError):
    """A plug-in was asked for by a name nobody registered."""


class Registry(Generic[T]):
    """Named implementations of one kind, in registration order; names are unique."""

    def __init__(self, kind: str, *, error: type[EvaltrayError] = UnknownName) -> None:
        self.kind = kind
        self._error = error
        self._items: dict[str, T] = {}
        self._aliases: dict[str, str] = {}

    def register(self, name: str, *aliases: str) -> Callable[[T], T]:
        """Decorator: register the decorated object under ``name`` (and ``aliases``)."""

        def wrap(obj: T) -> T:
            self.add(name, obj, *aliases)
            return obj

        return wrap

    def add(self, name: str, obj: T, *aliases: str) -> None:
        """Register ``obj`` under ``name`` (and ``aliases``). A name taken twice is a programming error,
        raised at import as RuntimeError (no input of a user's can cause it); nothing is registered then."""
        keys = (name, *aliases)
        for i, key in enumerate(keys):
            if key in self._items or key in keys[:i]:
                raise RuntimeError(f"{self.kind} {key!r} registered twice")
        self._items.update(dict.fromkeys(keys, obj))
        self._aliases.update(dict.fromkeys(aliases, name))

    def get(self, name: str) -> T:
        """The implementation registered as ``name``; otherwise ``unknown <kind> 'x': one of …``."""
        try:
            return self._items[name]
        except KeyError:
            raise self._error(f"unknown {self.kind} {name!r}: one of {', '.join(self.names())}") from None

    def names(self) -> list[str]:
        """The registered names (aliases left out), sorted."""
        return sorted(k for k in self._items if k not in self._aliases)

    def items(self) -> list[tuple[str, T]]:
        """(name, implementation) in registration order, aliases left out."""
        return [(k, v) for k, v in self._items.items() if k not in self._aliases]

    def __contains__(self, name: object) -> bool:
        return name in self._items

    def __iter__(self) -> Iterator[str]:
        return iter(self.names())

    def __len__(self) -> int:
        return len(self.names())
