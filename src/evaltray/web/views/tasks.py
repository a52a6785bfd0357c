"""A task of the review queue that is not a label: re-validate a golden row, check a judge's verdict, look at a
failing case. Each closes with done, reject (with a reason), escalate (to the adjudicator) or "this is a bug";
a label task's own page is the queue's (:mod:`.queue`), which sends its escalate and bug buttons here."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from evaltray.core.errors import EvaltrayError
from evaltray.core.records import LABEL_ROLES, REJECT_REASONS, Role
from evaltray.core.store import Workspace
from evaltray.tray import oversight
from evaltray.tray import tasks as tq
from evaltray.web import reviewing
from evaltray.web.accounts import Actor, NeedsTheCli, require_role
from evaltray.web.auth import reader, workspace, writer
from evaltray.web.render import page

router = APIRouter()
#: The kinds whose "done" is the person's pass/fail on an output.
VERDICT_KINDS = ("judge_check", "control", "spotcheck", "adjudicate")


def _about(ws: Workspace, task: tq.Task) -> dict[str, Any]:
    """What the page shows of the task's subject: the golden row, or the answer and what was said of it."""
    if task.kind == "revalidate":
        return {"case": tq.case_of(ws, task.ref)}
    if task.kind in ("adjudicate", "control", "spotcheck"):
        return oversight.shown_for(ws, task)
    if task.kind == "judge_check":
        return {"output": task.payload.get("output"), "verdicts": list(task.payload.get("verdicts") or [])}
    reasons = task.payload.get("reasons") or task.payload.get("failures") or []
    return {"output": task.payload.get("output"), "reasons": [str(r) for r in reasons] or [task.reason]}


@router.get("/tasks/{task_id}")
def task_page(request: Request, task_id: str, actor: Annotated[Actor, Depends(reader)]) -> Response:
    ws = workspace(request)
    task = tq.get_task(ws, task_id)
    if task.kind in oversight.LABELING:  # a second label is labeled on the label page, blind to the first
        return RedirectResponse(f"/queue/{task.ref}", status_code=303)
    # the decision is refused on the server (tq.resolve_task); the page only says why it offers no buttons
    own = task.kind == "adjudicate" and actor.name in {r.reviewer for r in tq.disputed_reviews(ws, task)}
    return page(
        request,
        "task.html",
        actor,
        task=task,
        kind=tq.TASK_KINDS.get(task.kind),
        about=_about(ws, task),
        reasons=REJECT_REASONS,
        own_label=own,
        may_act=actor.role in _roles(task) and task.status != "closed" and not own,
    )


def _roles(task: tq.Task) -> frozenset[Role]:
    """Who the page offers the task's outcomes to: the adjudicator's own kinds to those who sign."""
    return tq.TASK_KINDS.get(task.kind).roles if task.kind in ("adjudicate", "spotcheck") else LABEL_ROLES


def resign_command(task: tq.Task, actor: Actor) -> str:
    """The CLI command that re-signs a revalidate task's row (the web never holds a private key)."""
    return f"evaltray -u {actor.name} tasks close {task.id} --outcome done"


@router.post("/tasks/{task_id}/resolve")
def resolve(
    request: Request,
    task_id: str,
    actor: Annotated[Actor, Depends(writer)],
    outcome: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
    verdict: Annotated[str, Form()] = "",
    critique: Annotated[str, Form()] = "",
    tags: Annotated[str, Form()] = "",
) -> Response:
    """Close the task (or escalate it) with what the person said; the rules are :func:`tq.resolve_task`'s."""
    ws = workspace(request)
    require_role(actor, LABEL_ROLES, "closing a review task")
    task = tq.get_task(ws, task_id)
    if task.kind == "revalidate" and outcome == "done":
        raise NeedsTheCli(
            f"task {task.id}: re-signing case {task.ref} is signed with your private key, which this server never "
            f"holds; run `{resign_command(task, actor)}` where your key is"
        )
    if task.kind in oversight.LABELING and outcome == "done":
        raise EvaltrayError(f"task {task.id}: a {task.kind} task is done by saving the review of candidate {task.ref}")
    if task.kind in VERDICT_KINDS and outcome == "done" and verdict not in ("pass", "fail"):
        raise EvaltrayError(f"task {task.id}: answer pass or fail on the output before closing the judge check")
    tq.resolve_task(
        ws,
        task.id,
        actor.name,
        outcome,
        reason=reason or None,
        verdict=verdict or None,
        critique=critique or None,
        tags=[t.strip() for t in tags.split(",") if t.strip()],
    )
    return RedirectResponse("/queue", status_code=303)


@router.get("/api/tasks")
def tasks_json(
    request: Request,
    actor: Annotated[Actor, Depends(reader)],
    kind: str | None = None,
    status: str | None = None,
    assignee: str | None = None,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
) -> JSONResponse:
    """The queue's tasks, most urgent first (``evaltray --server … tasks list``)."""
    found = tq.list_tasks(workspace(request), kind=kind, status=status, assignee=assignee, limit=limit)
    return JSONResponse([asdict(t) for t in found])


@router.post("/api/tasks/next")
def next_task_json(
    request: Request, actor: Annotated[Actor, Depends(writer)], kind: Annotated[list[str] | None, Form()] = None
) -> JSONResponse:
    """Take the next task the queue holds for the actor, assigned to them; null when none
    (``evaltray --server … tasks next``)."""
    task = reviewing.next_item(workspace(request), actor.name, kind or None, reviewing.top_up_of(request.app))
    return JSONResponse(None if task is None else asdict(task))
