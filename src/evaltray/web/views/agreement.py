"""Agreement: how far labelers agree with each other, with the adjudicator and with gold control items, per
week, and the spot-check disagreement rate (:func:`evaltray.tray.agreement.agreement_report`); JSON twin at
``/api/agreement``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, Response

from evaltray.tray.agreement import SPOT_CHECK_MAX, agreement_report
from evaltray.web.accounts import Actor
from evaltray.web.auth import reader, workspace
from evaltray.web.render import page

router = APIRouter()


@router.get("/agreement")
def agreement_page(request: Request, actor: Annotated[Actor, Depends(reader)]) -> Response:
    report = agreement_report(workspace(request))
    return page(request, "agreement.html", actor, r=report, spot_max=SPOT_CHECK_MAX)


@router.get("/api/agreement")
def agreement_json(request: Request, actor: Annotated[Actor, Depends(reader)]) -> JSONResponse:
    return JSONResponse(agreement_report(workspace(request)).as_dict())
