"""``evaltray scrub`` and ``evaltray vault …``: PII out of the trace store, and back for the key's holder.

The scrub package imports Presidio (seconds), so it is imported inside the commands, never at start-up.
"""

from __future__ import annotations

from pathlib import Path

import click

from evaltray.core.errors import WorkspaceError

from ._common import (
    AppContext,
    dry_run_option,
    emit,
    err,
    json_option,
    out,
    pass_app,
    progress_bar,
    shown,
    table,
    visible,
)


@click.command()
@click.option(
    "--workers",
    type=int,
    default=None,
    help="Processes that scrub in parallel (default: $EVALTRAY_WORKERS, else the usable CPUs).",
)
@dry_run_option
@json_option
@pass_app
def scrub(app: AppContext, workers: int | None, dry_run: bool, as_json: bool) -> None:
    """Scrub PII from traces stored unscrubbed (ingested with scrubbing off, or before it existed).

    Each part of the store is rewritten in one step; running it again changes nothing.
    """
    from evaltray.scrub import scrub_store

    ws = app.ws
    with progress_bar(None, "scrubbing") as bar:
        task = bar.add_task("scrub", total=None)
        report = scrub_store(
            ws,
            app.user,
            workers=workers,
            dry_run=dry_run,
            progress=lambda done, total: bar.update(task, completed=done, total=total),
        )
    data = {
        "dry_run": dry_run,
        "parts": report.parts,
        "parts_rewritten": report.rewritten,
        "traces": report.rows,
        "replaced": dict(sorted(report.counts.items())),
        "quarantined": report.quarantined,
        "truncated": report.truncated,
    }

    def human() -> None:
        verb = "would scrub" if dry_run else "scrubbed"
        out().print(f"{verb} {report.rows:,} trace(s) in {report.rewritten} of {report.parts} part(s)", highlight=False)
        if report.counts:
            out().print(table(None, ["entity", "replaced"], [[k, f"{v:,}"] for k, v in sorted(report.counts.items())]))
        for trace_id in report.quarantined:
            out().print(
                f"quarantined trace {shown(trace_id)}: could not be scrubbed; "
                + ("would be stored" if dry_run else "stored")
                + " without its text",
                highlight=False,
            )
        if report.truncated:
            out().print(
                f"truncated {len(report.truncated)} trace(s): a field over \\[ingest] scrub_max_field_chars "
                + ("would be" if dry_run else "was")
                + f" stored cut: {shown(', '.join(report.truncated[:5]))}",
                highlight=False,
            )

    emit(as_json, data, human)


@click.group()
def vault() -> None:
    """The optional vault: originals sealed with a key its owner keeps outside the workspace."""


@vault.command("keygen")
@click.argument("path", type=click.Path(dir_okay=False, path_type=Path))
@dry_run_option
@json_option
@pass_app
def vault_keygen(app: AppContext, path: Path, dry_run: bool, as_json: bool) -> None:
    """Write a new vault key to PATH, readable by you only; an existing key is never overwritten."""
    from evaltray.scrub import create_vault_key

    try:
        root: Path | None = app.ws.root
    except WorkspaceError:
        root = None  # no workspace yet: a key can be made first
    path = create_vault_key(path, root, dry_run=dry_run, ws=app.ws if root else None, actor=app.user if root else None)

    def human() -> None:
        out().print(f"{'would write' if dry_run else 'wrote'} a vault key to {shown(path)}", highlight=False)
        err().print(
            f'set it in evaltray.toml: [ingest] vault_key = "{visible(path)}"; whoever holds this file can read '
            "the originals of every scrubbed value",
            markup=False,
            highlight=False,
        )

    emit(as_json, {"path": str(path), "dry_run": dry_run}, human)


@vault.command("reveal")
@click.argument("trace_id")
@click.argument("placeholder")
@click.option(
    "--key",
    "key_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="The vault key file (default: [ingest] vault_key).",
)
@json_option
@pass_app
def vault_reveal(app: AppContext, trace_id: str, placeholder: str, key_file: Path | None, as_json: bool) -> None:
    """Print the original behind PLACEHOLDER (such as <EMAIL_1>) in trace TRACE_ID; admins only, audited."""
    from evaltray.scrub import reveal

    value = reveal(app.ws, app.user, trace_id, placeholder, key_file)
    emit(
        as_json, {"trace_id": trace_id, "placeholder": placeholder, "value": value}, lambda: click.echo(visible(value))
    )
