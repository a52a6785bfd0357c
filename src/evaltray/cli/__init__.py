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
from .audit import audit
from .curate import candidates, labels, reject, review, signoff
from .drift import drift_command
from .evaluate import (
    aa_command,
    assertions_group,
    gate_command,
    judge_group,
    label_errors_command,
    report_command,
    run_command,
    score_command,
    screen_command,
    stats,
)
from .generate import score_live_command, synth_command
from .health import health_command, refresh_command, selftest_command, watch_command
from .monitor import contamination_command, corpora, exclusions_command, leakage_command
from .plan import coverage, plan, sample
from .release import export, release
from .scrub import scrub, vault
from .stages import cluster, dedup
from .tasks import bugs_group, failures_command, tasks_group, taxonomy_group
from .traces import ingest, traces
from .tray import cases, promote, tray
from .web import USER_COMMANDS, serve
from .workspace import demo, init, user


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
    and exit status 1."""

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
@click.version_option(package_name="evaltray")
@click.pass_context
def cli(ctx: click.Context, workspace: str | None, user: str | None) -> None:
    """evaltray: turn production traces into a golden eval tray you can defend row by row."""
    ctx.obj = AppContext(workspace, user)
    ctx.call_on_close(ctx.obj.close)


for command in (
    init,
    user,
    demo,
    ingest,
    traces,
    candidates,
    review,
    labels,
    reject,
    signoff,
    cases,
    promote,
    tray,
    release,
    export,
    plan,
    coverage,
    sample,
    dedup,
    cluster,
    scrub,
    vault,
    audit,
    run_command,
    score_command,
    report_command,
    judge_group,
    gate_command,
    failures_command,
    taxonomy_group,
    tasks_group,
    bugs_group,
    screen_command,
    label_errors_command,
    synth_command,
    score_live_command,
    stats,
    aa_command,
    assertions_group,
    serve,
    contamination_command,
    exclusions_command,
    corpora,
    leakage_command,
    health_command,
    selftest_command,
    refresh_command,
    watch_command,
    drift_command,
):
    cli.add_command(command)
for command in USER_COMMANDS:
    user.add_command(command)
cli.add_command(user, "users")  # the group's name before keys came; scripts still call it


def main() -> None:
    cli(prog_name="evaltray")
