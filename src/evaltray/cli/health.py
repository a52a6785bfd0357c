"""``evaltray health``, ``selftest``, ``refresh`` and ``watch``: is the tray still golden, and keeping it so."""

from __future__ import annotations

import dataclasses
import sys
from typing import Any

import click

from evaltray.monitor.health import HealthReport, send_revalidation, tray_health
from evaltray.monitor.refresh import parse_every, refresh, watch
from evaltray.monitor.selftest import selftest

from ._common import AppContext, dry_run_option, emit, json_option, out, pass_app, set_option, shown, table

_MARK = {"green": "green", "amber": "amber", "red": "red", "unknown": "-"}


def _report_data(report: HealthReport) -> dict[str, Any]:
    return {"set": report.set_name, "level": report.level, "signals": [dataclasses.asdict(s) for s in report.signals]}


def _show(report: HealthReport) -> None:
    rows = [[s.name, _MARK[s.level], s.value, s.threshold, ", ".join(s.rows[:8])] for s in report.signals]
    out().print(
        table(f"health of {report.set_name}: {report.level}", ["signal", "level", "value", "threshold", "rows"], rows)
    )
    for s in report.signals:
        if s.todo and s.level in ("amber", "red"):
            out().print(f"{s.name}: {shown(s.todo)}", highlight=False)


@click.command("health")
@click.option("--send", is_flag=True, help="Open a revalidate task for every row due (6 months, newer guide).")
@set_option
@dry_run_option
@json_option
@pass_app
def health_command(app: AppContext, send: bool, set_name: str | None, dry_run: bool, as_json: bool) -> None:
    """Every health signal of the tray, green/amber/red, with the rows behind it."""
    report = tray_health(app.ws, set_name)
    sent = send_revalidation(app.ws, app.user, report, dry_run=dry_run) if send else []
    data = {**_report_data(report), "sent": sent}

    def human() -> None:
        _show(report)
        if send:
            verb = "would send" if dry_run else "sent"
            out().print(f"{verb} {len(sent)} row(s) back for re-validation", highlight=False)

    emit(as_json, data, human)


@click.command("selftest")
@set_option
@json_option
@pass_app
def selftest_command(app: AppContext, set_name: str | None, as_json: bool) -> None:
    """Seed 003's five yeses, each answered from the workspace's data; exit 1 unless all five are yes."""
    result = selftest(app.ws, set_name)
    data = {"golden": result.golden, "answers": [dataclasses.asdict(a) for a in result.answers]}

    def human() -> None:
        for i, a in enumerate(result.answers, 1):
            out().print(f"{i}. {a.question}\n   {a.answer.upper()}: {shown(a.evidence)}", highlight=False)
            if a.todo:
                out().print(f"   to do: {shown(a.todo)}", highlight=False)
        yeses = sum(a.answer == "yes" for a in result.answers)
        out().print(f"{yeses} of 5 yeses" + ("" if result.golden else ": the next eval number is partly fiction"))

    emit(as_json, data, human)
    if not result.golden:
        sys.exit(1)


@click.command("refresh")
@click.option("--incident", help="Declare an incident: pulls at least 50 recent conversations (seed 001).")
@click.option(
    "--n", "n", type=click.IntRange(1, 1000), help="Conversations to pull (default 30; 50 after an incident)."
)
@set_option
@dry_run_option
@json_option
@pass_app
def refresh_command(
    app: AppContext, incident: str | None, n: int | None, set_name: str | None, dry_run: bool, as_json: bool
) -> None:
    """The refresh ritual: recent conversations into the pool, rows due sent back for re-validation."""
    result = refresh(app.ws, app.user, n=n, incident=incident, set_name=set_name, dry_run=dry_run)

    def human() -> None:
        verb = "would pull" if dry_run else "pulled"
        out().print(f"triggers: {shown('; '.join(result.triggers))}", highlight=False)
        out().print(f"{verb} {len(result.pulled)} conversation(s) into the candidate pool", highlight=False)
        out().print(f"{len(result.revalidate)} row(s) sent back for re-validation", highlight=False)
        if result.pulled and not dry_run:
            out().print("next: `evaltray review`, then `evaltray promote`", highlight=False)

    emit(as_json, dataclasses.asdict(result), human)


@click.command("watch")
@click.option(
    "--every", default="1d", show_default=True, help="Run the checks when the last run is this old (30m, 12h, 1d, 1w)."
)
@click.option("--force", is_flag=True, help="Run the checks now, whenever they last ran.")
@set_option
@json_option
@pass_app
def watch_command(app: AppContext, every: str, force: bool, set_name: str | None, as_json: bool) -> None:
    """Scheduled health checks for cron: exit 0 green (or not due), 1 amber, 2 red.

    Example crontab line (hourly; the checks run once a day):
    ``0 * * * * cd /path/to/workspace && evaltray watch --every 1d --json >> watch.log``
    """
    result = watch(app.ws, parse_every(every), set_name, force=force)

    def human() -> None:
        if not result.ran:
            out().print(f"not due: last ran {result.last}", highlight=False)
            return
        assert result.report is not None
        _show(result.report)
        if result.refresh_due:
            out().print(f"refresh due: {shown('; '.join(result.refresh_due))}; run `evaltray refresh`", highlight=False)

    emit(as_json, result.to_dict(), human)
    sys.exit(result.status)
