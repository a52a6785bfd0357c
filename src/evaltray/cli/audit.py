"""``evaltray audit verify``."""

from __future__ import annotations

import sys

import click

from evaltray.tray.release import audit_anchor_problems

from ._common import AppContext, emit, json_option, out, pass_app, shown


@click.group()
def audit() -> None:
    """The audit log of every command that writes."""


@audit.command("verify")
@json_option
@pass_app
def audit_verify(app: AppContext, as_json: bool) -> None:
    """Check the audit log's hash chain and each release's signed anchor in it; exit 1 naming the first row
    deleted or edited, or the release whose anchored rows were cut from the end."""
    check = app.ws.verify_audit()
    problem = check.problem or next(iter(audit_anchor_problems(app.ws)), None)
    emit(
        as_json,
        {"rows": check.rows, "ok": problem is None, "broken_at": check.broken_at, "problem": problem},
        lambda: out().print(shown(problem or f"audit log: {check.rows:,} rows, chain intact"), highlight=False),
    )
    if problem is not None:
        sys.exit(1)
