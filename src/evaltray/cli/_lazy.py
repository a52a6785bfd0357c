"""Top-level commands loaded when used: ``evaltray --help`` and ``evaltray tasks list`` import only what they
run, not every stage's libraries (duckdb, scipy, sklearn, presidio, aiohttp…).

A command is named by ``module:function`` under ``evaltray.cli``; its module is imported the first time the
command is looked up. The top-level help lists every command with the first line of its function's docstring,
read from the module's source without importing it.
"""

from __future__ import annotations

import ast
import functools
from collections.abc import Callable, Iterator, MutableMapping
from importlib import import_module, resources

import click

__all__ = ["LazyCommands"]


@functools.cache
def _docstrings(module: str) -> dict[str, str]:
    """The docstrings of a CLI module's top-level functions, by name, from its source."""
    source = resources.files("evaltray.cli").joinpath(f"{module}.py").read_text(encoding="utf-8")
    return {
        node.name: ast.get_docstring(node) or "" for node in ast.parse(source).body if isinstance(node, ast.FunctionDef)
    }


class LazyCommands(MutableMapping[str, click.Command]):
    """A group's ``commands`` whose entries are imported on first access; ``loaded`` hooks run on a command
    once it is imported (a group that gains subcommands from another module)."""

    def __init__(self, specs: dict[str, str], loaded: dict[str, Callable[[click.Command], None]]) -> None:
        self._specs = dict(specs)
        self._loaded = loaded
        self._commands: dict[str, click.Command] = {}

    def __getitem__(self, name: str) -> click.Command:
        if name not in self._commands:
            module, attr = self._specs[name].split(":")
            cmd: click.Command = getattr(import_module(f"evaltray.cli.{module}"), attr)
            if name in self._loaded:
                self._loaded[name](cmd)
            self._commands[name] = cmd
        return self._commands[name]

    def __setitem__(self, name: str, cmd: click.Command) -> None:
        self._specs.pop(name, None)
        self._commands[name] = cmd

    def __delitem__(self, name: str) -> None:
        self._specs.pop(name, None)
        self._commands.pop(name, None)

    def __iter__(self) -> Iterator[str]:
        return iter({**dict.fromkeys(self._specs), **dict.fromkeys(self._commands)})

    def __len__(self) -> int:
        return len(set(self._specs) | set(self._commands))

    def short_help(self, name: str, limit: int) -> str:
        """The command's line in the group's help, without importing it when it is not loaded yet."""
        if name in self._commands or name not in self._specs:
            return self[name].get_short_help_str(limit)
        module, attr = self._specs[name].split(":")
        return click.Command(name, help=_docstrings(module)[attr]).get_short_help_str(limit)
