"""The ``evaltray`` command: a thin click layer over the Python API.

Data goes to stdout (tables, or JSON with ``--json``); progress and logs go to stderr.
"""

from __future__ import annotations

import errno
import sys

import click

from evaltray.core.errors import EvaltrayError
from evaltray.core.settings import USER_ENV, WORKSPACE_ENV

from ._common import AppContext, visible
from ._lazy import LazyCommands

#: Every top-level command, ``module:function`` under ``evaltray.cli``, imported when first used.
COMMANDS = {
    "init": "workspace:init",
    "user": "workspace:user",
    "demo": "workspace:demo",
    "ingest": "traces:ingest",
    "pull": "traces:pull_command",
    "traces": "traces:traces",
    "candidates": "curate:candidates",
    "review": "curate:review",
    "labels": "curate:labels",
    "reject": "curate:reject",
    "signoff": "curate:signoff",
    "cases": "tray:cases",
    "promote": "tray:promote",
    "tray": "tray:tray",
    "release": "release:release",
    "export": "release:export",
    "plan": "plan:plan",
    "coverage": "plan:coverage",
    "sample": "plan:sample",
    "dedup": "stages:dedup",
    "cluster": "stages:cluster",
    "scrub": "scrub:scrub",
    "vault": "scrub:vault",
    "audit": "audit:audit",
    "run": "evaluate:run_command",
    "score": "evaluate:score_command",
    "report": "evaluate:report_command",
    "judge": "evaluate:judge_group",
    "gate": "evaluate:gate_command",
    "failures": "tasks:failures_command",
    "taxonomy": "tasks:taxonomy_group",
    "tasks": "tasks:tasks_group",
    "bugs": "tasks:bugs_group",
    "screen": "evaluate:screen_command",
    "label-errors": "evaluate:label_errors_command",
    "synth": "generate:synth_command",
    "score-live": "generate:score_live_command",
    "stats": "evaluate:stats",
    "aa": "evaluate:aa_command",
    "assertions": "evaluate:assertions_group",
    "serve": "web:serve",
    "receive": "web:receive",
    "contamination": "monitor:contamination_command",
    "exclusions": "monitor:exclusions_command",
    "corpora": "monitor:corpora",
    "leakage": "monitor:leakage_command",
    "drift": "drift:drift_command",
    "rolling": "drift:rolling",
    "health": "health:health_command",
    "agreement": "agreement:agreement_command",
    "spotcheck": "agreement:spotcheck_command",
    "revalidate": "agreement:revalidate_command",
    "readthrough": "agreement:readthrough_command",
    "selftest": "health:selftest_command",
    "refresh": "health:refresh_command",
    "watch": "health:watch_command",
    "users": "workspace:user",  # the group's name before keys came; scripts still call it
}


def _user_commands(group: click.Command) -> None:
    """The account commands the web app's module defines join ``evaltray user``."""
    from .web import USER_COMMANDS

    assert isinstance(group, click.Group)
    for command in USER_COMMANDS:
        if command.name not in group.commands:
            group.add_command(command)


class _UsageLine(click.ClickException):
    """A usage error said in one line, ``Error: …`` with exit status 1, as every other error is."""

    def __init__(self, exc: click.UsageError) -> None:
        hint = f" (try `{exc.ctx.command_path} --help`)" if exc.ctx is not None else ""
        super().__init__(exc.format_message() + hint)


def _one_line(exc: click.UsageError) -> click.ClickException:
    # Bare `evaltray traces` shows the group's help, as click does; every other usage error is one line.
    return exc if isinstance(exc, click.exceptions.NoArgsIsHelpError) else _UsageLine(exc)


class _Group(click.Group):
    """Turns evaltray's errors, click's usage errors and the system's refusals into ``Error: …`` on stderr
    and exit status 1; lists its commands without importing them (:class:`LazyCommands`)."""

    def format_commands(self, ctx: click.Context, formatter: click.HelpFormatter) -> None:
        if not isinstance(self.commands, LazyCommands):
            return super().format_commands(ctx, formatter)
        names = self.list_commands(ctx)
        limit = formatter.width - 6 - max(map(len, names))
        with formatter.section("Commands"):
            formatter.write_dl([(name, self.commands.short_help(name, limit)) for name in names])

    def make_context(self, info_name, args, parent=None, **extra):  # type: ignore[no-untyped-def]
        try:
            return super().make_context(info_name, args, parent=parent, **extra)
        except click.UsageError as exc:  # the top level's own options: `evaltray --frob`
            raise _one_line(exc) from None

    def invoke(self, ctx: click.Context):  # type: ignore[no-untyped-def]
        try:
            return super().invoke(ctx)
        except click.UsageError as exc:  # a subcommand's options and arguments, or an unknown command
            raise _one_line(exc) from None
        except EvaltrayError as exc:
            click.echo(f"Error: {visible(exc)}", err=True)
            sys.exit(1)
        except OSError as exc:  # a directory that cannot be made, a file that cannot be written
            if exc.errno == errno.EPIPE:
                raise
            where = f"{exc.filename}: " if exc.filename is not None else ""
            click.echo(f"Error: {visible(where)}{exc.strerror or exc}", err=True)
            sys.exit(1)


@click.group("evaltray", cls=_Group, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "-w",
    "--workspace",
    type=click.Path(file_okay=False),
    envvar=WORKSPACE_ENV,
    help="Workspace directory (default: the nearest one above the current directory).",
)
@click.option("-u", "--user", envvar=USER_ENV, help="Act as this user (default: the workspace's default user).")
@click.option(
    "--server",
    envvar="EVALTRAY_SERVER",
    metavar="URL",
    help="Act on this team server with the API token in EVALTRAY_TOKEN (promote, tasks list/next, labels record, review, reject).",
)
@click.version_option(package_name="evaltray")
@click.pass_context
def cli(ctx: click.Context, workspace: str | None, user: str | None, server: str | None) -> None:
    """evaltray: turn production traces into a golden eval tray you can defend row by row."""
    ctx.obj = AppContext(workspace, user, server)
    ctx.call_on_close(ctx.obj.close)


cli.commands = LazyCommands(COMMANDS, {"user": _user_commands, "users": _user_commands})


def main() -> None:
    cli(prog_name="evaltray")
