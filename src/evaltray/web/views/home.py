"""The start page: where the work stands, and the gate's actions (which sign, so the web refuses them)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from evaltray.core.records import SIGN_ROLES, Role
from evaltray.tray import candidates as pool
from evaltray.tray import review as rev
from evaltray.web import reviewing
from evaltray.web.accounts import Actor, NeedsTheCli, require_role
from evaltray.web.auth import reader, workspace, writer
from evaltray.web.render import page

router = APIRouter()

#: Who may promote (as :func:`evaltray.tray.gate.promote` says).
PROMOTE_ROLES = SIGN_ROLES | {Role.COMPOSITION_OWNER}


@router.get("/")
def home(request: Request, actor: Annotated[Actor, Depends(reader)]) -> Response:
    ws = workspace(request)
    return page(
        request,
        "home.html",
        actor,
        queued=len(reviewing.queue_items(ws, actor.name)),
        unsigned=len(rev.unsigned(ws)),
        rejected=pool.reject_bin(ws),
        guide_version=ws.settings.guide_version,
        blind=ws.settings.write_expected_first,
    )


@router.get("/api/whoami")
def whoami(actor: Annotated[Actor, Depends(reader)]) -> JSONResponse:
    return JSONResponse({"name": actor.name, "role": actor.role.value})


@router.post("/tray/promote")
def promote(actor: Annotated[Actor, Depends(writer)]) -> Response:
    """Role-checked, then refused: each promoted row is signed with the promoter's private key."""
    require_role(actor, PROMOTE_ROLES, "promoting")
    raise NeedsTheCli(
        "promotion signs each row with your private key, which this server never holds; "
        f"run `evaltray -u {actor.name} promote` where your key is"
    )
