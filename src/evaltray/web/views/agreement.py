"""Agreement: how far labelers agree with each other, with the adjudicator and with gold control items, per
week, and the spot-check disagreement rate (:func:`evaltray.tray.agreement.agreement_report`); JSON twin at
``/api/agreement``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import JSONResponse, Response

from evaltray.core.records import SIGN_ROLES
from evaltray.tray.agreement import SPOT_CHECK_MAX, agreement_report
from evaltray.tray.oversight import open_spotchecks
from evaltray.web.accounts import Actor, require_role
from evaltray.web.auth import reader, workspace, writer
from evaltray.web.errors import json_or_redirect
from evaltray.web.render import page

router = APIRouter()


@router.get("/agreement")
def agreement_page(
    request: Request, actor: Annotated[Actor, Depends(reader)], opened: Annotated[int | None, Query(ge=0)] = None
) -> Response:
    report = agreement_report(workspace(request))
    return page(
        request,
        "agreement.html",
        actor,
        r=report,
        spot_max=SPOT_CHECK_MAX,
        may_spotcheck=actor.role in SIGN_ROLES,
        opened=opened,
    )


@router.post("/agreement/spotcheck")
def spotcheck(
    request: Request,
    actor: Annotated[Actor, Depends(writer)],
    sample: Annotated[int, Form(ge=1, le=1000)],
    seed: Annotated[str, Form()] = "",
) -> Response:
    """Draw ``sample`` golden rows at random for the adjudicator to re-label blind (``spotcheck`` tasks in the
    queue), as ``evaltray spotcheck --sample N`` does; audited with each task opened."""
    require_role(actor, SIGN_ROLES, "opening spot-checks")
    fixed = int(seed) if seed.strip().lstrip("-").isdigit() else None
    ids = open_spotchecks(workspace(request), actor.name, sample, seed=fixed)
    return json_or_redirect(request, {"tasks": ids}, f"/agreement?opened={len(ids)}")


@router.get("/api/agreement")
def agreement_json(request: Request, actor: Annotated[Actor, Depends(reader)]) -> JSONResponse:
    return JSONResponse(agreement_report(workspace(request)).as_dict())
