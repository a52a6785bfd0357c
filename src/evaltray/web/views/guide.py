"""The labeling guide: the current version's text, its history, and a form for its owner to publish."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from evaltray.web import guide
from evaltray.web.accounts import Actor
from evaltray.web.auth import reader, workspace, writer
from evaltray.web.render import page

router = APIRouter()


@router.get("/guide")
def guide_page(request: Request, actor: Annotated[Actor, Depends(reader)], version: str | None = None) -> Response:
    ws = workspace(request)
    every = guide.versions(ws)
    current = ws.settings.guide_version
    wanted = version or current
    shown = next((g for g in every if g.version == wanted), None)
    return page(
        request,
        "guide.html",
        actor,
        versions=every,
        shown=shown,
        wanted=wanted,
        current=current,
        may_publish=actor.role in guide.GUIDE_ROLES,
    )


@router.post("/guide")
def publish(
    request: Request,
    actor: Annotated[Actor, Depends(writer)],
    version: Annotated[str, Form()],
    body: Annotated[str, Form()],
) -> Response:
    made = guide.publish(workspace(request), actor, version, body)
    return RedirectResponse("/guide?" + urlencode({"version": made.version}), status_code=303)
