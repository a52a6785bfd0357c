"""Users: who works on the workspace, and deactivating one (an admin's act): the admin chooses who inherits
their tasks and golden rows (re-signed by the heir) and who owns the slices ``plan.yaml`` gives them
(:func:`evaltray.curate.plan.deactivate`, the same call as ``evaltray user deactivate``); a dry run shows what
would be handed over. JSON twin at ``/api/users``."""

from __future__ import annotations

from dataclasses import asdict
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, Response

from evaltray.core.records import Role
from evaltray.core.store import ADMIN_ROLES, Workspace
from evaltray.curate import plan as planmod
from evaltray.web.accounts import Actor, require_role
from evaltray.web.auth import reader, workspace, writer
from evaltray.web.errors import wants_json
from evaltray.web.render import page

router = APIRouter()


def users_data(ws: Workspace) -> list[dict[str, Any]]:
    """Every user's name, role, key fingerprint and the slices ``plan.yaml`` gives them."""
    return [
        {
            "name": u["name"],
            "role": u["role"],
            "fingerprint": u["fingerprint"],
            "slices": planmod.slices_owned(ws, u["name"]),
        }
        for u in ws.users()
    ]


@router.get("/users")
def users_page(request: Request, actor: Annotated[Actor, Depends(reader)]) -> Response:
    require_role(actor, ADMIN_ROLES, "managing users")
    return page(request, "users.html", actor, users=users_data(workspace(request)), done=None)


@router.get("/api/users")
def users_json(request: Request, actor: Annotated[Actor, Depends(reader)]) -> JSONResponse:
    require_role(actor, ADMIN_ROLES, "managing users")
    return JSONResponse(users_data(workspace(request)))


@router.post("/users/{name}/deactivate")
def deactivate(
    request: Request,
    name: str,
    actor: Annotated[Actor, Depends(writer)],
    heir: Annotated[str, Form()],
    slice_heir: Annotated[str, Form()] = "",
    dry_run: Annotated[str, Form()] = "",
) -> Response:
    """Deactivate ``name``, ``heir`` inheriting their tasks and rows, ``slice_heir`` (default ``heir``) their
    slices; audited (``user.remove``, ``task.reassign``, ``plan.slice_owner``)."""
    require_role(actor, frozenset({Role.ADMIN}), "deactivating a user")
    ws = workspace(request)
    handover, slices = planmod.deactivate(
        ws, actor.name, name, heir, slice_heir=slice_heir.strip() or None, dry_run=bool(dry_run)
    )
    done = {**asdict(handover), "slices": slices, "slice_heir": slice_heir.strip() or heir, "dry_run": bool(dry_run)}
    if wants_json(request):
        return JSONResponse(done)
    return page(request, "users.html", actor, users=users_data(ws), done=done)
