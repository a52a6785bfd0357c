"""``evaltray audit verify``."""

from __future__ import annotations

import sys

import click

from ._common import AppContext, emit, json_option, out, pass_app, shown


@click.group()
def audit() -> None:
    """The audit log of every command that writes."""


@audit.command("verify")
@json_option
@pass_app
def audit_verify(app: AppContext, as_json: bool) -> None:
    """Check the audit log's hash chain; exit 1 naming the first row deleted or edited."""
    check = app.ws.verify_audit()
    emit(
        as_json,
        {"rows": check.rows, "ok": check.problem is None, "broken_at": check.broken_at, "problem": check.problem},
        lambda: out().print(shown(check.problem or f"audit log: {check.rows:,} rows, chain intact"), highlight=False),
    )
    if check.problem is not None:
        sys.exit(1)
