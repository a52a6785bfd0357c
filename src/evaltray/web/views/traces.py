"""The trace store: search and filter, open a trace, send it to the candidate pool.

Filters are bound parameters, never SQL the user writes; text not scrubbed yet is never shown (PII only in
scrubbed form).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Annotated, Any
from urllib.parse import urlencode

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from evaltray.core.errors import EvaltrayError
from evaltray.core.store import CURATE_ROLES
from evaltray.core.traces import LIST_COLUMNS, show_trace
from evaltray.tray import candidates as pool
from evaltray.web.accounts import Actor, require_role
from evaltray.web.auth import reader, workspace, writer
from evaltray.web.render import page

router = APIRouter()

#: Filters the page offers: form field -> (predicate with a bound parameter, how the value is bound).
FILTERS: dict[str, tuple[str, Callable[[str], str]]] = {
    "q": (
        "input_text ILIKE $q ESCAPE '\\'",
        lambda v: "%" + v.replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_") + "%",
    ),
    "feature": ("feature = $feature", str),
    "model": ("model = $model", str),
    "status": ("status = $status", str),
}
PAGE_SIZE = 50


def search(store: Any, filters: dict[str, str], limit: int = PAGE_SIZE) -> list[dict[str, Any]]:
    """Traces matching every given filter, by id; the text of one not scrubbed yet is left out."""
    given = {k: v.strip() for k, v in filters.items() if k in FILTERS and v and v.strip()}
    where = " AND ".join(FILTERS[k][0] for k in given) or None
    params = {k: FILTERS[k][1](v) for k, v in given.items()}
    rows = store.query(
        where, columns=[*LIST_COLUMNS, "scrubbed"], limit=limit, order_by="trace_id", params=params
    ).to_pylist()
    for r in rows:
        r["unscrubbed"] = r.pop("scrubbed") is not True
    return rows


@router.get("/traces")
def traces_page(
    request: Request,
    actor: Annotated[Actor, Depends(reader)],
    q: str = "",
    feature: str = "",
    model: str = "",
    status: str = "",
) -> Response:
    ws = workspace(request)
    filters = {"q": q, "feature": feature, "model": model, "status": status}
    rows = search(ws.trace_store(), filters)
    for r in rows:
        r["hide_text"] = ws.settings.scrub and r["unscrubbed"]
    return page(request, "traces.html", actor, rows=rows, filters=filters, page_size=PAGE_SIZE)


@router.get("/trace")
def trace_page(request: Request, actor: Annotated[Actor, Depends(reader)], id: str, added: str = "") -> Response:
    ws = workspace(request)
    listing = show_trace(ws.trace_store(), id, scrubs=ws.settings.scrub)
    return page(
        request,
        "trace.html",
        actor,
        trace=listing.rows[0],
        hide_text=bool(listing.unscrubbed),
        added=added,
        may_curate=actor.role in CURATE_ROLES,
    )


@router.post("/trace/candidate")
def send_to_pool(
    request: Request, actor: Annotated[Actor, Depends(writer)], trace_id: Annotated[str, Form()]
) -> Response:
    """Copy the trace into the candidate pool (through the same API as ``evaltray candidates add``)."""
    require_role(actor, CURATE_ROLES, "adding candidates")
    ws = workspace(request)
    literal = "'" + trace_id.replace("'", "''") + "'"
    added = pool.add_from_traces(ws, actor.name, where=f"trace_id = {literal}", trace_ids=[trace_id])
    if not added:
        cid = pool.candidate_id(ws.check_set(None), trace_id)
        try:
            pool.get(ws, cid)
        except EvaltrayError:
            raise EvaltrayError(
                f"trace {trace_id} was not added: it has no kept payload, no user turn, or is not scrubbed yet"
            ) from None
        added = [cid]
    return RedirectResponse("/trace?" + urlencode({"id": trace_id, "added": added[0]}), status_code=303)
