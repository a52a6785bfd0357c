"""The queues' settings: an admin turns the blind rule on or off per queue (task kind)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from evaltray.core.records import Role
from evaltray.tray import tasks as tq
from evaltray.web import reviewing
from evaltray.web.accounts import Actor, require_role
from evaltray.web.auth import reader, workspace, writer
from evaltray.web.render import page

router = APIRouter()
ADMIN = frozenset({Role.ADMIN})


@router.get("/queues")
def queues_page(request: Request, actor: Annotated[Actor, Depends(reader)]) -> Response:
    ws = workspace(request)
    kinds = [(k, tq.TASK_KINDS.get(k), reviewing.queue_blind(ws, k)) for k in tq.TASK_KINDS.names()]
    return page(
        request, "queues.html", actor, kinds=kinds, blind_kinds=reviewing.BLIND_KINDS, may_set=actor.role in ADMIN
    )


@router.post("/queues/{kind}/blind")
def set_blind(
    request: Request, kind: str, actor: Annotated[Actor, Depends(writer)], blind: Annotated[str, Form()]
) -> Response:
    require_role(actor, ADMIN, "turning a queue's blind rule on or off")
    reviewing.set_queue_blind(workspace(request), kind, blind == "on", actor.name)
    return RedirectResponse("/queues", status_code=303)
