"""Plan changes: a proposed change of the coverage plan's slice mix and targets, shown as a diff per slice (target
share before → after, the slice's share of the tray now and of production traffic) and approved or rejected with
a reason by the composition owner or an admin (:mod:`evaltray.curate.plan_changes`, the API `evaltray plan
propose|changes|approve|reject` calls). JSON twins at ``/api/plan/changes`` and ``/api/plan/changes/ID``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from evaltray.core.errors import EvaltrayError
from evaltray.core.store import Workspace
from evaltray.curate import plan_changes as pc
from evaltray.curate.plan import plan_path
from evaltray.monitor.health import live_traffic
from evaltray.web.accounts import Actor, require_role
from evaltray.web.auth import reader, workspace, writer
from evaltray.web.errors import json_or_redirect
from evaltray.web.render import page

router = APIRouter()


def change_data(ws: Workspace, change_id: str) -> dict[str, Any]:
    """One change, its diff against the plan now (production shares from the newest ``score-live``)."""
    change = pc.get_change(ws, change_id)
    return {**asdict(change), "diff": pc.plan_diff(ws, change, live_traffic(ws)).as_dict()}


@router.get("/plan/changes")
def changes_page(request: Request, actor: Annotated[Actor, Depends(reader)]) -> Response:
    ws = workspace(request)
    path = plan_path(ws)
    return page(
        request,
        "plan_changes.html",
        actor,
        changes=pc.list_changes(ws),
        current=path.read_text(encoding="utf-8") if path.exists() else "",
        may_propose=actor.role in pc.PROPOSE_ROLES,
    )


@router.get("/api/plan/changes")
def changes_json(request: Request, actor: Annotated[Actor, Depends(reader)]) -> JSONResponse:
    return JSONResponse([asdict(c) for c in pc.list_changes(workspace(request))])


@router.post("/plan/changes")
def propose(
    request: Request,
    actor: Annotated[Actor, Depends(writer)],
    plan_text: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Propose ``plan_text`` as the new plan.yaml; it waits for the composition owner."""
    require_role(actor, pc.PROPOSE_ROLES, "proposing a plan change")
    change = pc.propose(workspace(request), actor.name, plan_text, reason)
    return json_or_redirect(request, asdict(change), f"/plan/changes/{change.id}")


@router.get("/plan/changes/{change_id}")
async def change_page(request: Request, change_id: str, actor: Annotated[Actor, Depends(reader)]) -> Response:
    data = await run_in_threadpool(change_data, workspace(request), change_id)
    return page(request, "plan_change.html", actor, c=data, may_decide=actor.role in pc.APPROVE_ROLES)


@router.get("/api/plan/changes/{change_id}")
async def change_json(request: Request, change_id: str, actor: Annotated[Actor, Depends(reader)]) -> JSONResponse:
    return JSONResponse(await run_in_threadpool(change_data, workspace(request), change_id))


@router.post("/plan/changes/{change_id}/decide")
def decide(
    request: Request,
    change_id: str,
    actor: Annotated[Actor, Depends(writer)],
    decision: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Approve (plan.yaml is written) or reject the change, with a reason; the composition owner's or an admin's."""
    require_role(actor, pc.APPROVE_ROLES, "approving or rejecting a plan change")
    if decision not in ("approve", "reject"):
        raise EvaltrayError(f"plan change {change_id}: decide approve or reject, not {decision!r}")
    done = pc.decide(workspace(request), actor.name, change_id, decision == "approve", reason)
    return json_or_redirect(request, asdict(done), f"/plan/changes/{done.id}")
