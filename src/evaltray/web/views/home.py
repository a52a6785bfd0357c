"""The start page: where the work stands."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from evaltray.tray import candidates as pool
from evaltray.tray import review as rev
from evaltray.web.accounts import Actor
from evaltray.web.auth import reader, workspace
from evaltray.web.render import page

router = APIRouter()


@router.get("/")
def home(request: Request, actor: Annotated[Actor, Depends(reader)]) -> Response:
    ws = workspace(request)
    return page(
        request,
        "home.html",
        actor,
        queued=rev.queue_length(ws, cap=rev.COUNT_CAP),
        cap=rev.COUNT_CAP,
        unsigned=len(rev.unsigned(ws)),
        rejected=pool.reject_bin(ws),
        guide_version=ws.settings.guide_version,
        blind=ws.settings.write_expected_first,
    )


@router.get("/api/whoami")
def whoami(actor: Annotated[Actor, Depends(reader)]) -> JSONResponse:
    return JSONResponse({"name": actor.name, "role": actor.role.value})
