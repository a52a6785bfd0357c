"""``evaltray init``, ``evaltray user`` (also ``users``), ``evaltray demo``."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import click

from evaltray.core import keys
from evaltray.core.records import Role
from evaltray.core.store import Workspace, current_user

from ._common import AppContext, dry_run_option, emit, emit_table, err, json_option, out, pass_app, shown


@click.command()
@click.argument("directory", type=click.Path(file_okay=False), default=".")
@click.option("--name", help="Workspace name (default: the directory's name).")
@json_option
@pass_app
def init(app: AppContext, directory: str, name: str | None, as_json: bool) -> None:
    """Create a workspace: evaltray.toml, state, and the `main` and `edge` sets."""
    ws = Workspace.init(Path(directory), name=name, user=app.explicit_user)
    try:
        key_path, made = ws.admin_key or (None, False)
        data = {"root": str(ws.root), "sets": ws.settings.sets, "admin": ws.settings.default_user, "key": str(key_path)}
        err().print(
            f"{'Made' if made else 'Using'} the admin's signing key {shown(key_path)} (keep it private)",
            highlight=False,
        )
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
def user() -> None:
    """Who may label, sign off and compose the tray, and the keys that prove it (also `evaltray users`)."""


@user.command("keygen")
@click.argument("name", required=False)
@json_option
@pass_app
def user_keygen(app: AppContext, name: str | None, as_json: bool) -> None:
    """Make NAME's Ed25519 key pair in your config dir (NAME: -u, else your login); never overwrites one."""
    name = name or current_user(app.explicit_user)
    key_path, pub_path, public_key = keys.keygen(name)
    data = {
        "name": name,
        "key": str(key_path),
        "public_key_file": str(pub_path),
        "public_key": public_key,
        "fingerprint": keys.fingerprint(public_key),
    }
    emit(
        as_json,
        data,
        lambda: out().print(
            f"private key {shown(key_path)} (keep it; never share it)\npublic key  {shown(pub_path)}\n"
            f"{shown(public_key)}\nNext: an admin runs `evaltray user add {shown(name)} --role ROLE --key "
            f"{shown(pub_path.name)}`",
            highlight=False,
        ),
    )


@user.command("add")
@click.argument("name")
@click.option("--role", type=click.Choice([r.value for r in Role]), required=True)
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The user's public key file (NAME.pub from `evaltray user keygen`); adjudicators and admins need one.",
)
@json_option
@pass_app
def user_add(app: AppContext, name: str, role: str, key_file: Path | None, as_json: bool) -> None:
    """Add a user, or change their role or key (admins only)."""
    public_key = keys.read_public_file(key_file) if key_file is not None else None
    app.ws.add_user(name, role, actor=app.user, public_key=public_key)
    fp = keys.fingerprint(public_key) if public_key else None
    emit(
        as_json,
        {"name": name, "role": role, "fingerprint": fp},
        lambda: out().print(f"{shown(name)}: {role}" + (f" (key {fp})" if fp else ""), highlight=False),
    )


@user.command("deactivate")
@click.argument("name")
@click.option("--heir", required=True, help="Who inherits their tasks and golden rows (re-signs the rows).")
@click.option("--slice-heir", help="Who owns the slices plan.yaml gives them (default: the heir).")
@dry_run_option
@json_option
@pass_app
def user_deactivate(
    app: AppContext, name: str, heir: str, slice_heir: str | None, dry_run: bool, as_json: bool
) -> None:
    """Take NAME off the workspace; HEIR inherits their tasks, and their rows come back as revalidate tasks."""
    from evaltray.curate.plan import deactivate

    done, slices = deactivate(app.ws, app.user, name, heir, slice_heir=slice_heir, dry_run=dry_run)

    def human() -> None:
        verb = "would hand" if dry_run else "handed"
        out().print(
            f"{verb} {len(done.tasks)} task(s) and {len(done.rows)} golden row(s) of {shown(name)} to {shown(heir)}"
            + ("" if dry_run else f"; {shown(name)} is no longer a user"),
            highlight=False,
        )
        if slices:
            out().print(f"{verb} slice(s) {shown(', '.join(slices))} to {shown(slice_heir or heir)}", highlight=False)
        for setting in done.settings:
            out().print(f"{setting} in evaltray.toml still names {shown(name)}: edit it", highlight=False)

    emit(as_json, {**dataclasses.asdict(done), "slices": slices, "slice_heir": slice_heir or heir}, human)


@user.command("list")
@json_option
@pass_app
def user_list(app: AppContext, as_json: bool) -> None:
    """List users, their roles and their keys' fingerprints."""
    rows = app.ws.users()
    emit_table(
        as_json,
        rows,
        ["name", "role", "key", "since"],
        [[r["name"], r["role"], r["fingerprint"] or "", r["created_at"]] for r in rows],
    )


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
