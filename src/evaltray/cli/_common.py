"""What every command shares: the workspace, the acting user, ``--json``/``--dry-run``, output."""

from __future__ import annotations

import importlib.util
import math
import re
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import TYPE_CHECKING, Any, TypeVar

import click
import orjson
from rich.console import Console
from rich.markup import escape
from rich.table import Table
from rich.text import Text

from evaltray.core.settings import check_version

if TYPE_CHECKING:  # the workspace (sqlalchemy, pydantic) is imported once a command opens it
    from evaltray.core.store import Workspace

    from .remote import Remote

F = TypeVar("F", bound=Callable[..., Any])

#: A count a user gives (``--limit``, ``--show``): never negative.
COUNT = click.IntRange(min=0)


#: What a terminal acts on instead of showing: C0 controls but tab and newline, DEL, C1 controls (CSI, OSC …),
#: and the bidi marks, embeddings, overrides and isolates that reorder the text around them.
_ACTED_ON = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200e\u200f\u202a-\u202e\u2066-\u2069]")


def _symbol(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # the Control Pictures block: ESC shows as ␛, CR as ␍
    return "\u2421" if code == 0x7F else f"<U+{code:04X}>"


def visible(value: object) -> str:
    """``value`` as text a terminal shows and never acts on: ESC as ␛, a bidi override as ``<U+202E>``."""
    return _ACTED_ON.sub(_symbol, "" if value is None else str(value))


def shown(value: object) -> str:
    """Data (trace text, ids, file names, reasons, names) for a rich markup string: ``visible`` with markup
    escaped, so ``[bold]`` in a trace prints as itself. Human output only: ``--json`` keeps the exact string."""
    return escape(visible(value))


def number(value: float | None) -> str:
    """A number as people read it: ``13,990`` (never ``1.399e+04``), ``2.5``, ``0.00123``; None as blank."""
    if value is None:
        return ""
    if value == 0:
        return "0"
    if isinstance(value, int) or not math.isfinite(value):
        return f"{value:,}"
    decimals = max(0, 3 - math.floor(math.log10(abs(value))))  # four significant digits
    if abs(round(value, decimals)) >= 1000:
        return f"{value:,.0f}"
    return f"{value:.{decimals}f}".rstrip("0").rstrip(".")


class _DataConsole(Console):
    """A console that shows control characters instead of sending them: the net under ``shown``, for any
    string that reaches it (the CLI itself never prints a control character but newline and tab)."""

    def render_str(self, text: str, **kwargs: Any) -> Text:
        return super().render_str(visible(text), **kwargs)


def out() -> Console:
    """The console for data (stdout), made once per command invocation."""
    return _console(stderr=False)


def err() -> Console:
    """The console for progress, warnings and logs (stderr), made once per command invocation."""
    return _console(stderr=True)


def _console(*, stderr: bool) -> Console:
    # Made when a command first writes, never at import: a long-running process serves many invocations,
    # each with its own streams (and a test runner swaps them per call).
    ctx = click.get_current_context(silent=True)
    meta: dict[str, Any] = ctx.meta if ctx is not None else {}
    key = "evaltray.console.err" if stderr else "evaltray.console.out"
    if key not in meta:
        console = _DataConsole(stderr=stderr, soft_wrap=True, emoji=False)  # `:smile:` in a trace stays text
        if not stderr and not console.is_terminal:  # piped or captured: wide enough that tables do not fold
            console.width = 160
        meta[key] = console
    return meta[key]


def lazy_module(name: str) -> ModuleType:
    """Module ``name``, executed on first attribute access: a command module names what its commands use
    without importing every stage's libraries when another command runs (``evaltray --help`` too). Under
    ``TYPE_CHECKING`` import the module itself, so its names stay typed."""
    if name in sys.modules:
        return sys.modules[name]
    parent, _, child = name.rpartition(".")
    spec = importlib.util.find_spec(name)
    if spec is None or spec.loader is None:
        raise ImportError(f"no module {name}")
    spec.loader = importlib.util.LazyLoader(spec.loader)
    module = importlib.util.module_from_spec(spec)
    sys.modules[name] = module
    spec.loader.exec_module(module)
    setattr(sys.modules[parent], child, module)
    return module


class AppContext:
    """Opens the workspace on first use, so ``init`` and ``--help`` never need one."""

    def __init__(self, workspace: str | None, user: str | None, server: str | None = None) -> None:
        self._path = Path(workspace) if workspace else None
        self._user = user
        self._ws: Workspace | None = None
        self._server = server
        self._remote: Remote | None = None

    @property
    def remote(self) -> Remote | None:
        """The team server the command acts on (``--server``), or None: the local workspace."""
        if self._server and self._remote is None:
            import os

            from .remote import TOKEN_ENV, Remote

            self._remote = Remote(self._server, os.environ.get(TOKEN_ENV))
        return self._remote

    @property
    def ws(self) -> Workspace:
        if self._server:  # never act on a local workspace when a server was named
            from .remote import REMOTE_COMMANDS, RemoteError

            raise RemoteError(
                f"--server works with: {', '.join(REMOTE_COMMANDS)}; this command acts on a local workspace "
                "(leave out --server and unset EVALTRAY_SERVER)"
            )
        if self._ws is None:
            from evaltray.core.store import Workspace

            self._ws = Workspace.open(self._path)
        return self._ws

    @property
    def user(self) -> str:
        from evaltray.core.store import current_user

        return current_user(self._user, self.ws.settings)

    @property
    def explicit_user(self) -> str | None:
        return self._user

    @property
    def path(self) -> Path | None:
        return self._path

    def close(self) -> None:
        if self._ws is not None:
            self._ws.close()


pass_app = click.make_pass_decorator(AppContext)


def json_option(fn: F) -> F:
    return click.option("--json", "as_json", is_flag=True, help="Print machine-readable JSON on stdout.")(fn)


def dry_run_option(fn: F) -> F:
    return click.option("--dry-run", is_flag=True, help="Show what would change; write nothing.")(fn)


def set_option(fn: F) -> F:
    """``--set NAME``, checked against the workspace's sets as it is read (so every command refuses
    ``../../x`` alike, one that only lists included); not given, the command picks its default."""
    return click.option(
        "--set",
        "set_name",
        callback=_checked_set,
        help="Which set of the tray (default: the workspace's default set).",
    )(fn)


def _checked_set(ctx: click.Context, param: click.Parameter, value: str | None) -> str | None:
    return None if value is None else ctx.find_object(AppContext).ws.check_set(value)  # type: ignore[union-attr]


def version_argument(name: str = "version") -> Callable[[F], F]:
    """A release version argument, refused as it is read unless the whole of it is a semantic version: a
    version names files, so ``2.0.0`` followed by a newline or ``../1.0.0`` must never reach a path."""
    return click.argument(name, callback=lambda ctx, param, value: check_version(value))


def emit(as_json: bool, data: Any, human: Callable[[], None]) -> None:
    """JSON on stdout for machines, or the human rendering."""
    if as_json:
        click.echo(orjson.dumps(data, option=orjson.OPT_INDENT_2 | orjson.OPT_NON_STR_KEYS, default=str).decode())
    else:
        human()


def emit_table(as_json: bool, data: Any, columns: list[str], rows: list[list[Any]], title: str | None = None) -> None:
    """``data`` as JSON for machines, or ``rows`` as a table for people."""
    emit(as_json, data, lambda: out().print(table(title, columns, rows)))


def table(title: str | None, columns: list[str], rows: list[list[Any]]) -> Table:
    """A table of data: every cell (and the title) is shown as text, never read as markup; numbers are
    formatted with ``number``."""
    t = Table(
        title=None if title is None else Text(visible(title)),
        title_justify="left",
        show_edge=False,
        header_style="bold",
    )
    for c in columns:
        t.add_column(c, overflow="fold")
    for r in rows:
        t.add_row(*(Text(number(v) if _is_number(v) else visible(v)) for v in r))
    return t


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def progress_bar(total: int | None, description: str):  # type: ignore[no-untyped-def]
    """A rich progress bar on stderr (hidden when stderr is not a terminal)."""
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    return Progress(
        TextColumn(description),
        BarColumn(),
        MofNCompleteColumn(),
        TimeElapsedColumn(),
        console=err(),
        transient=True,
        disable=not err().is_terminal,
    )
