"""Gate sign-off and retirement: promote signed, complete candidates (a role that may promote), retire a case
with a reason (the composition owner), through the same typed API the CLI calls, every act audited.

A promotion is signed. The server never holds a person's private key; an admin may give it a key of its own
(``evaltray serve --signing-user NAME``, a user registered with a public key): rows promoted in the web are
signed with that key, and the audit log names the person who promoted them (``signed_as`` the server's user).
Without one, the web sends the promoter to the CLI. Sign-offs always stay in the CLI: they are the
adjudicator's own word on a label, signed with their own key."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Form, Query, Request
from fastapi.responses import JSONResponse, Response

from evaltray.core.keys import Signer
from evaltray.core.records import COMPOSE_ROLES
from evaltray.core.store import Workspace
from evaltray.tray import gate
from evaltray.tray import review as rev
from evaltray.web.accounts import Actor, NeedsTheCli, require_role
from evaltray.web.auth import reader, workspace, writer
from evaltray.web.errors import json_or_redirect, wants_json
from evaltray.web.render import page

router = APIRouter()
#: Cases listed per page of the tray.
PAGE_SIZE = 100


def server_signer(request: Request) -> Signer | None:
    signer: Signer | None = getattr(request.app.state, "signer", None)
    return signer


def tray_page_data(ws: Workspace, offset: int, slice_name: str | None) -> dict[str, Any]:
    """The active cases of the default set (one page of them, optionally of one slice) and what waits."""
    cases = [c for c in gate.case_registry(ws, ws.check_set(None)) if c["status"] == "active"]
    if slice_name:
        cases = [c for c in cases if c["slice"] == slice_name]
    shown = [
        {k: c[k] for k in ("id", "slice", "source", "difficulty", "case_type", "promoted_by", "created_at")}
        for c in cases[offset : offset + PAGE_SIZE]
    ]
    return {"total": len(cases), "offset": offset, "cases": shown, "unsigned": len(rev.unsigned(ws))}


@router.get("/tray")
def tray_view(
    request: Request,
    actor: Annotated[Actor, Depends(reader)],
    offset: Annotated[int, Query(ge=0)] = 0,
    slice: str | None = None,
) -> Response:
    ws = workspace(request)
    data = tray_page_data(ws, offset, slice)
    signer = server_signer(request)
    return page(
        request,
        "tray.html",
        actor,
        data=data,
        page_size=PAGE_SIZE,
        slice=slice or "",
        signer=signer.name if signer else None,
        may_promote=actor.role in gate.PROMOTE_ROLES,
        may_retire=actor.role in COMPOSE_ROLES,
    )


@router.get("/api/tray")
def tray_json(
    request: Request,
    actor: Annotated[Actor, Depends(reader)],
    offset: Annotated[int, Query(ge=0)] = 0,
    slice: str | None = None,
) -> JSONResponse:
    signer = server_signer(request)
    return JSONResponse({**tray_page_data(workspace(request), offset, slice), "signer": signer and signer.name})


@router.post("/tray/promote")
def promote(
    request: Request,
    actor: Annotated[Actor, Depends(writer)],
    ids: Annotated[str, Form()] = "",
    dry_run: Annotated[str, Form()] = "",
) -> Response:
    """Promote the signed, complete candidates (all of them, or the ``ids`` given, comma-separated)."""
    require_role(actor, gate.PROMOTE_ROLES, "promoting")
    signer = server_signer(request)
    if signer is None:
        raise NeedsTheCli(
            "this server has no signing key of its own (an admin starts it with `evaltray serve --signing-user "
            f"NAME`), and promotion signs each row; run `evaltray -u {actor.name} promote` where your key is"
        )
    wanted = [i.strip() for i in ids.split(",") if i.strip()] or None
    report = gate.promote(workspace(request), actor.name, candidate_ids=wanted, dry_run=bool(dry_run), signer=signer)
    result = report.as_data()
    if wants_json(request):
        return JSONResponse(result)
    return page(request, "promoted.html", actor, result=result, dry_run=bool(dry_run))


@router.post("/tray/retire")
def retire(
    request: Request,
    actor: Annotated[Actor, Depends(writer)],
    case_id: Annotated[str, Form()],
    reason: Annotated[str, Form()] = "",
) -> Response:
    """Retire one case with a reason (the composition owner's act; the id stays reserved)."""
    require_role(actor, COMPOSE_ROLES, "retiring a case")
    gate.retire(workspace(request), case_id, reason, actor.name)
    return json_or_redirect(request, {"retired": case_id, "reason": reason.strip()}, "/tray")
