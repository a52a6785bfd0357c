"""``evaltray tasks`` (the review queue), ``bugs``, ``failures`` and ``taxonomy`` (error analysis)."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import click

from evaltray.core.store import Workspace
from evaltray.core.util import loads
from evaltray.evaluate import failures as fl
from evaltray.tray import oversight
from evaltray.tray import tasks as tq

from ._common import AppContext, emit, emit_table, json_option, out, pass_app, set_option, shown, table

KIND = click.Choice(tq.TASK_KINDS.names())


def task_data(task: tq.Task) -> dict[str, Any]:
    return dataclasses.asdict(task)


def show_task(ws: Workspace, task: tq.Task) -> None:
    """A task for a person: what to do, about what, why, and what came with it."""
    kind = tq.TASK_KINDS.get(task.kind)
    out().rule(f"task {shown(task.id)}  ·  {shown(task.kind)}  ·  {shown(task.ref)}  ·  {shown(task.status)}")
    out().print(f"[bold]{shown(kind.what)}[/]", highlight=False)
    out().print(f"why: {shown(task.reason)}", highlight=False)
    for key, value in task.payload.items():
        if key not in ("review_before", "reviews", "first_reviewer"):  # a second label stays blind to the first
            out().print(f"  {shown(key)}: {shown(value)}", highlight=False)
    for key, value in oversight.shown_for(ws, task).items():
        out().print(f"  {shown(key)}: {shown(value)}", highlight=False)
    if task.escalated_by:
        out().print(f"escalated by {shown(task.escalated_by)}: {shown(task.outcome_reason or '')}", highlight=False)


@click.group("tasks")
def tasks_group() -> None:
    """The review queue: typed tasks (label, revalidate, overlap, adjudicate, …) a person takes and closes."""


@tasks_group.command("open")
@click.argument("kind", type=KIND)
@click.argument("ref")
@click.option("--reason", required=True, help="Why a person should look at it.")
@click.option("--priority", type=int, default=0, show_default=True, help="Higher comes first.")
@click.option("--payload", help="A JSON object kept with the task.")
@json_option
@pass_app
def tasks_open(
    app: AppContext, kind: str, ref: str, reason: str, priority: int, payload: str | None, as_json: bool
) -> None:
    """Open a task about REF (a candidate id, a case id, or RUN/CASE); the open one if it exists."""
    extra = _payload(payload)
    tid = tq.open_task(app.ws, kind, ref, reason=reason, actor=app.user, payload=extra, priority=priority)
    emit(as_json, {"task_id": tid}, lambda: out().print(f"task {shown(tid)}: {shown(kind)} {shown(ref)}"))


def _payload(text: str | None) -> dict[str, Any] | None:
    if text is None:
        return None
    try:
        value = loads(text)
    except ValueError:
        raise click.BadParameter("not JSON", param_hint="--payload") from None
    if not isinstance(value, dict):
        raise click.BadParameter("a JSON object, {…}", param_hint="--payload")
    return value


@tasks_group.command("list")
@click.option("--kind", type=KIND)
@click.option("--status", type=click.Choice(tq.STATUSES), help="open: not closed (escalated ones too).")
@click.option("--assignee")
@click.option("--outcome", type=click.Choice(tq.OUTCOMES))
@click.option("--limit", type=click.IntRange(1), default=50, show_default=True)
@json_option
@pass_app
def tasks_list(
    app: AppContext,
    kind: str | None,
    status: str | None,
    assignee: str | None,
    outcome: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """Tasks of the queue, most urgent first."""
    if app.remote is not None:
        if outcome:
            raise click.UsageError("--outcome acts on a local workspace, not with --server")
        query = {"kind": kind, "status": status, "assignee": assignee, "limit": limit}
        found = [tq.Task(**t) for t in app.remote.call("GET", "/api/tasks", query=query)]
    else:
        found = tq.list_tasks(app.ws, kind=kind, status=status, assignee=assignee, outcome=outcome, limit=limit)
    rows = [[t.id, t.kind, t.ref, t.status, t.priority, t.assignee or "", t.outcome or "", t.reason] for t in found]
    columns = ["id", "kind", "ref", "status", "priority", "assignee", "outcome", "why"]
    emit_table(as_json, [task_data(t) for t in found], columns, rows, title=f"{len(found)} task(s)")


@tasks_group.command("next")
@click.option("--kind", "kinds", type=KIND, multiple=True, help="Only this kind (repeatable).")
@json_option
@pass_app
def tasks_next(app: AppContext, kinds: tuple[str, ...], as_json: bool) -> None:
    """Take the next task the queue holds for you (your unfinished one first)."""
    if app.remote is not None:  # the token says who "you" are
        found = app.remote.call("POST", "/api/tasks/next", data=[("kind", k) for k in kinds])
        task = None if found is None else tq.Task(**found)
    else:
        task = oversight.next_for(app.ws, app.user, kinds=kinds or None)
    if task is None:
        emit(as_json, None, lambda: out().print("the queue holds nothing for you"))
        return
    emit(as_json, task_data(task), lambda: show_task(app.ws, task))


@tasks_group.command("close")
@click.argument("task_id")
@click.option("--outcome", type=click.Choice(tq.OUTCOMES), required=True)
@click.option(
    "--reason",
    help="Why (needed to reject and to adjudicate; a label task's: not plausible, unlabelable, duplicate, …).",
)
@click.option(
    "--verdict",
    type=click.Choice(["pass", "fail"]),
    help="Your pass/fail on the output (judge checks, control items, spot-checks, adjudication).",
)
@click.option("--critique")
@click.option("--tag", "tags", multiple=True, help="A failure tag (repeatable).")
@click.option("--seconds", type=click.FloatRange(0), help="Time spent (default: since you took it).")
@json_option
@pass_app
def tasks_close(
    app: AppContext,
    task_id: str,
    outcome: str,
    reason: str | None,
    verdict: str | None,
    critique: str | None,
    tags: tuple[str, ...],
    seconds: float | None,
    as_json: bool,
) -> None:
    """Close a task: done, reject (with --reason), escalate (to the adjudicator) or bug."""
    task = tq.resolve_task(
        app.ws,
        task_id,
        app.user,
        outcome,
        reason=reason,
        verdict=verdict,
        critique=critique,
        tags=tags,
        seconds=seconds,
    )
    said = "escalated to the adjudicator" if task.status == tq.ESCALATED else f"closed: {task.outcome}"
    emit(as_json, task_data(task), lambda: out().print(f"task {shown(task.id)} {said}"))


@tasks_group.command("release")
@click.argument("task_id")
@json_option
@pass_app
def tasks_release(app: AppContext, task_id: str, as_json: bool) -> None:
    """Hand a task you took back to the queue, unfinished."""
    task = tq.release_task(app.ws, task_id, app.user)
    emit(as_json, task_data(task), lambda: out().print(f"task {shown(task.id)} is back in the queue"))


@tasks_group.command("add-candidates")
@click.option("--limit", type=click.IntRange(1), help="At most this many, oldest first.")
@set_option
@json_option
@pass_app
def tasks_add_candidates(app: AppContext, limit: int | None, set_name: str | None, as_json: bool) -> None:
    """Put the pool's unreviewed candidates in the queue as label tasks."""
    ids = tq.open_label_tasks(app.ws, app.user, set_name, limit)
    emit(as_json, {"tasks": ids}, lambda: out().print(f"{len(ids)} label task(s) in the queue"))


@tasks_group.command("show")
@click.argument("task_id")
@json_option
@pass_app
def tasks_show(app: AppContext, task_id: str, as_json: bool) -> None:
    """One task, with what came with it."""
    task = tq.get_task(app.ws, task_id)
    emit(as_json, task_data(task), lambda: show_task(app.ws, task))


# ----------------------------------------------------------------------------- bugs


@click.group("bugs")
def bugs_group() -> None:
    """The bug list: review outcomes "this is a bug — fix it"."""


@bugs_group.command("list")
@json_option
@pass_app
def bugs_list(app: AppContext, as_json: bool) -> None:
    """Every task closed as a bug."""
    rows = tq.bug_list(app.ws)
    shown_rows = [
        [b["task_id"], b["case_id"] or b["candidate_id"], b["trace_id"], b["critique"], b["who"]] for b in rows
    ]
    emit_table(as_json, rows, ["task", "case", "trace", "critique", "who"], shown_rows, title=f"{len(rows)} bug(s)")


@bugs_group.command("export")
@click.option(
    "--to", "to_path", type=click.Path(dir_okay=False, path_type=Path), required=True, help="bugs.jsonl or .csv"
)
@json_option
@pass_app
def bugs_export(app: AppContext, to_path: Path, as_json: bool) -> None:
    """Write the bug list as JSON lines or CSV (case/trace id, critique, tags, who, when)."""
    n = tq.export_bugs(app.ws, to_path, app.user)
    emit(as_json, {"bugs": n, "path": str(to_path)}, lambda: out().print(f"wrote {n} bug(s) to {shown(to_path)}"))


# ----------------------------------------------------------------------------- error analysis


def _category_rows(found: list[fl.FailureCategory], top: int) -> list[list[Any]]:
    rows = []
    for i, c in enumerate(found[:top]):
        levels = [c.levels.get(level, 0) for level in fl.LEVELS]
        name = c.name if c.kept else f"{c.name} (proposed)"
        rows.append([i + 1, name, len(c.cases), *levels, f"{c.score:.1f}", c.examples[0][:60] if c.examples else ""])
    return rows


_CATEGORY_COLUMNS = ["#", "category", "cases", "high", "medium", "low", "score", "for example"]


@click.command("failures")
@click.argument("run_id", required=False)
@click.option("--top", type=click.IntRange(1, 100), default=5, show_default=True, help="Categories to show.")
@click.option("--by-release", is_flag=True, help="The top categories of each release's latest scored run.")
@click.option("--send", is_flag=True, help="Put the run's failing cases in the review queue (failing_case tasks).")
@click.option("--category", help="With --send: only this category's cases.")
@json_option
@pass_app
def failures_command(
    app: AppContext, run_id: str | None, top: int, by_release: bool, send: bool, category: str | None, as_json: bool
) -> None:
    """Failure categories of a scored run (kept ones by name, the rest proposed), by frequency × severity."""
    if by_release:
        return _by_release(app, top, as_json)
    if run_id is None:
        raise click.UsageError("name a scored run, or pass --by-release")
    found = fl.failure_categories(app.ws, run_id)
    data: dict[str, Any] = {"categories": [dataclasses.asdict(c) for c in found], "matrix": fl.failure_matrix(found)}
    if send:
        data["tasks"] = fl.send_failing(app.ws, run_id, app.user, category)

    def human() -> None:
        out().print(table(f"failure categories of {run_id}", _CATEGORY_COLUMNS, _category_rows(found, top)))
        if send:
            out().print(f"sent {len(data['tasks'])} failing case(s) to the review queue")

    emit(as_json, data, human)
    return None


def _by_release(app: AppContext, top: int, as_json: bool) -> None:
    found = fl.top_by_release(app.ws, top)
    data = {
        v: {"run_id": r["run_id"], "categories": [dataclasses.asdict(c) for c in r["categories"]]}
        for v, r in found.items()
    }

    def human() -> None:
        if not found:
            out().print("no release has a scored run yet")
        for version, r in found.items():
            title = f"release {version} · run {r['run_id']}"
            out().print(table(title, _CATEGORY_COLUMNS, _category_rows(r["categories"], top)))

    emit(as_json, data, human)


@click.group("taxonomy")
def taxonomy_group() -> None:
    """The workspace's failure taxonomy: proposed categories a person keeps, names and merges."""


@taxonomy_group.command("list")
@json_option
@pass_app
def taxonomy_list(app: AppContext, as_json: bool) -> None:
    """The kept categories (and those merged into them)."""
    rows = fl.taxonomy(app.ws)
    shown_rows = [
        [
            r["name"],
            r["status"],
            r["merged_into"] or "",
            ", ".join(r["tags"]),
            " | ".join(", ".join(g) for g in r["terms"]),
        ]
        for r in rows
    ]
    emit_table(as_json, rows, ["category", "status", "merged into", "tags", "words"], shown_rows)


@taxonomy_group.command("keep")
@click.argument("run_id")
@click.argument("number", type=click.IntRange(1))
@click.option("--name", required=True, help="What the category is, in your words.")
@json_option
@pass_app
def taxonomy_keep(app: AppContext, run_id: str, number: int, name: str, as_json: bool) -> None:
    """Keep proposed category NUMBER of `evaltray failures RUN_ID` as NAME."""
    row = fl.keep_category(app.ws, run_id, number, name, app.user)
    emit(as_json, row, lambda: out().print(f"kept {shown(row['name'])}"))


@taxonomy_group.command("rename")
@click.argument("old")
@click.argument("new")
@json_option
@pass_app
def taxonomy_rename(app: AppContext, old: str, new: str, as_json: bool) -> None:
    """Rename a kept category."""
    fl.rename_category(app.ws, old, new, app.user)
    emit(as_json, {"old": old, "name": new}, lambda: out().print(f"{shown(old)} is now {shown(new)}"))


@taxonomy_group.command("merge")
@click.argument("names", nargs=-1, required=True)
@click.option("--into", required=True, help="The category they become (one of them, or a new name).")
@json_option
@pass_app
def taxonomy_merge(app: AppContext, names: tuple[str, ...], into: str, as_json: bool) -> None:
    """Merge kept categories into one."""
    row = fl.merge_categories(app.ws, list(names), into, app.user)
    emit(as_json, row, lambda: out().print(f"merged {shown(', '.join(row['merged']))} into {shown(into)}"))
