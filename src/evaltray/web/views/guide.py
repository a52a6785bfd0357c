"""The labeling guide: the current version's text, its history, and a form for its owner to publish."""

from __future__ import annotations

from typing import Annotated
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from evaltray.tray import oversight
from evaltray.web import guide
from evaltray.web.accounts import Actor
from evaltray.web.auth import reader, workspace, writer
from evaltray.web.render import page

router = APIRouter()


@router.get("/guide")
def guide_page(
    request: Request, actor: Annotated[Actor, Depends(reader)], version: str | None = None, sent: int | None = None
) -> Response:
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
        sent=sent,
        codes=ws.settings.behavior_codes,
    )


@router.post("/guide")
def publish(
    request: Request,
    actor: Annotated[Actor, Depends(writer)],
    version: Annotated[str, Form()],
    body: Annotated[str, Form()],
    codes: Annotated[str, Form()] = "",
    slices: Annotated[str, Form()] = "",
) -> Response:
    """Publish the version; the behaviour codes and slices it changes send their golden rows back to the queue."""
    ws = workspace(request)
    codes_, slices_ = _listed(codes), _listed(slices)
    made = guide.publish(ws, actor, version, body)
    query: dict[str, str | int] = {"version": made.version}
    if codes_ or slices_:
        query["sent"] = len(oversight.revalidate_affected(ws, actor.name, made.version, codes=codes_, slices=slices_))
    return RedirectResponse("/guide?" + urlencode(query), status_code=303)


def _listed(text: str) -> list[str]:
    return [part.strip() for part in text.replace("\n", ",").split(",") if part.strip()]
