"""The product owner's read-through: the next unread row of the newest release, read and marked one at a time,
with rows read / total (:mod:`evaltray.tray.readthrough`); JSON twin at ``/api/readthrough``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import JSONResponse, RedirectResponse, Response

from evaltray.tray import readthrough as rt
from evaltray.tray import tasks as tq
from evaltray.web.accounts import Actor
from evaltray.web.auth import reader, workspace, writer
from evaltray.web.render import page

router = APIRouter()


@router.get("/readthrough")
def readthrough_page(request: Request, actor: Annotated[Actor, Depends(reader)]) -> Response:
    ws = workspace(request)
    mine = rt.read_through(ws, reader=actor.name)[0]
    others = [p for p in rt.read_through(ws) if p.reader != actor.name]
    row = tq.case_of(ws, mine.unread[0]) if mine.unread else None
    return page(request, "readthrough.html", actor, mine=mine, others=others, row=row)


@router.post("/readthrough/{case_id}")
def mark(
    request: Request, case_id: str, actor: Annotated[Actor, Depends(writer)], release: Annotated[str, Form()]
) -> Response:
    rt.mark_read(workspace(request), actor.name, [case_id], release)
    return RedirectResponse("/readthrough", status_code=303)


@router.get("/api/readthrough")
def readthrough_json(request: Request, actor: Annotated[Actor, Depends(reader)]) -> JSONResponse:
    progress = rt.read_through(workspace(request))
    return JSONResponse(
        [{"reader": p.reader, "release": p.release, "read": len(p.read), "total": p.total} for p in progress]
    )
