"""``evaltray init``, ``evaltray users``, ``evaltray demo``."""

from __future__ import annotations

from pathlib import Path

import click

from evaltray.core.records import Role
from evaltray.core.store import Workspace

from ._common import AppContext, emit, emit_table, json_option, out, pass_app, shown


@click.command()
@click.argument("directory", type=click.Path(file_okay=False), default=".")
@click.option("--name", help="Workspace name (default: the directory's name).")
@json_option
@pass_app
def init(app: AppContext, directory: str, name: str | None, as_json: bool) -> None:
    """Create a workspace: evaltray.toml, state, and the `main` and `edge` sets."""
    ws = Workspace.init(Path(directory), name=name, user=app.explicit_user)
    try:
        data = {"root": str(ws.root), "sets": ws.settings.sets, "admin": ws.settings.default_user}
        emit(
            as_json,
            data,
            lambda: out().print(
                f"Created workspace [bold]{shown(ws.settings.name)}[/] in {shown(ws.root)}\n"
                f"  sets: {shown(', '.join(ws.settings.sets))}   admin: {shown(ws.settings.default_user)}\n"
                f"Next: cd {shown(directory)} && evaltray ingest TRACES..."
            ),
        )
    finally:
        ws.close()


@click.group()
def users() -> None:
    """Who may label, sign off and compose the tray."""


@users.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@json_option
@pass_app
def users_add(app: AppContext, name: str, role: str, as_json: bool) -> None:
    """Add a user or change their role (admins only)."""
    app.ws.add_user(name, role, actor=app.user)
    emit(as_json, {"name": name, "role": role}, lambda: out().print(f"{shown(name)}: {role}"))


@users.command("list")
@json_option
@pass_app
def users_list(app: AppContext, as_json: bool) -> None:
    """List users and their roles."""
    rows = app.ws.users()
    emit_table(as_json, rows, ["name", "role", "since"], [[r["name"], r["role"], r["created_at"]] for r in rows])


@click.command()
@click.argument("directory", type=click.Path(file_okay=False), default="evaltray-demo")
@click.option("--force", is_flag=True, help="Replace DIRECTORY if it already holds a demo workspace.")
@json_option
def demo(directory: str, force: bool, as_json: bool) -> None:
    """Build a workspace from bundled real traces and walk every stage."""
    from ..demo import run_demo

    summary = run_demo(Path(directory), force=force, echo=None if as_json else out().print)
    if as_json:
        emit(True, summary, lambda: None)
