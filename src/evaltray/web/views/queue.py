"""The review queue: the next task of any kind (:mod:`.tasks` shows the kinds other than ``label``); a label
task is one candidate at a time, its whole trace, blind unless an admin turned it off, labeled from the keyboard."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import HTMLResponse, JSONResponse, RedirectResponse, Response
from starlette.concurrency import run_in_threadpool

from evaltray.core.errors import EvaltrayError
from evaltray.core.records import LABEL_ROLES, REJECT_REASONS, SIGN_ROLES
from evaltray.core.store import Workspace
from evaltray.tray import candidates as pool
from evaltray.tray import review as rev
from evaltray.tray import tasks as tq
from evaltray.tray.oversight import LABELING
from evaltray.web import reviewing
from evaltray.web.accounts import Actor, NeedsTheCli, require_role
from evaltray.web.auth import reader, workspace, writer
from evaltray.web.errors import wants_json
from evaltray.web.render import fragment, page

router = APIRouter()
#: The most candidates one call of ``/api/queue`` lists.
MAX_PAGE = 500


def _step(ws: Workspace, actor: Actor, cid: str) -> tuple[rev.ReviewSession, rev.ReviewStep]:
    """A review session over the one candidate: the web never signs (it holds no private key)."""
    see_first = not reviewing.queue_blind(ws, "label")
    session = rev.ReviewSession(ws, actor.name, [cid], sign=False, show_output_first=see_first)
    return session, next(iter(session))


@router.get("/queue")
def queue_start(request: Request, actor: Annotated[Actor, Depends(reader)]) -> Response:
    """A person who labels gets their next task (assigned to them); a reader reads the label queue."""
    ws = workspace(request)
    if actor.role in LABEL_ROLES:
        task = reviewing.next_item(ws, actor.name, top_up=reviewing.top_up_of(request.app))
        if task is not None:
            where = f"/queue/{task.ref}" if task.kind in LABELING else f"/tasks/{task.id}"
            return RedirectResponse(where, status_code=303)
        return page(request, "queue_empty.html", actor)
    items = reviewing.queue_items(ws, actor.name, limit=1)
    if items:
        return RedirectResponse(f"/queue/{items[0].id}", status_code=303)
    return page(request, "queue_empty.html", actor)


@router.get("/api/queue")
def queue_json(
    request: Request,
    actor: Annotated[Actor, Depends(reader)],
    limit: Annotated[int, Query(ge=1, le=MAX_PAGE)] = MAX_PAGE,
    offset: Annotated[int, Query(ge=0)] = 0,
) -> JSONResponse:
    """The queue for scripts: ids, sources, slices and creation times, in order (a page of it: ``offset``
    and ``limit``, at most :data:`MAX_PAGE`)."""
    items = reviewing.queue_items(workspace(request), actor.name, limit=limit, offset=offset)
    return JSONResponse(
        [
            {"id": c.id, "set": c.set_name, "source": c.source, "slice": c.slice, "created_at": c.created_at}
            for c in items
        ]
    )


@router.get("/queue/{cid}")
def queue_item(request: Request, cid: str, actor: Annotated[Actor, Depends(reader)]) -> Response:
    ws = workspace(request)
    session, step = _step(ws, actor, cid)
    may_label = actor.role in LABEL_ROLES
    task = reviewing.label_task(ws, cid, actor.name if may_label else None)
    # a reader keeps no draft; a labeler's is only read here (kept from their first autosave on)
    draft = reviewing.open_draft(ws, actor.name, cid, task) if may_label else reviewing.Draft()
    view = reviewing.shown(step, draft, session.blind, ws, actor.name if may_label else None)
    place = reviewing.queue_place(ws, actor.name, cid)
    return page(
        request,
        "queue.html",
        actor,
        view=view,
        draft=draft,
        prev_id=place.prev_id,
        next_id=place.next_id,
        position=place.position,
        total=place.total,
        cap=rev.COUNT_CAP,
        reasons=REJECT_REASONS,
        codes=ws.settings.behavior_codes,
        guide_version=ws.settings.guide_version,
        may_label=may_label,
        task=task,
    )


@router.post("/queue/{cid}/draft")
async def save_draft(request: Request, cid: str, actor: Annotated[Actor, Depends(writer)]) -> Response:
    form = await request.form()
    return await _in_thread(_save_draft, workspace(request), actor, cid, reviewing.form_values(form))


async def _in_thread(fn: Any, *args: Any) -> Any:
    """Run a handler's blocking part (the database, argon2) off the event loop, once its form is read."""
    return await run_in_threadpool(fn, *args)


def _save_draft(ws: Workspace, actor: Actor, cid: str, values: dict[str, str]) -> Response:
    require_role(actor, LABEL_ROLES, "labeling")
    draft, _ = _draft(ws, actor, cid)
    draft.values.update(values)
    reviewing.save_draft(ws, actor.name, cid, draft)
    return Response(status_code=204)


@router.post("/queue/{cid}/expected")
async def write_expected(request: Request, cid: str, actor: Annotated[Actor, Depends(writer)]) -> Response:
    """Write the expected behaviour; the answer shows the recorded output (an htmx swap, else a redirect)."""
    form = await request.form()
    return await _in_thread(_write_expected, request, workspace(request), actor, cid, reviewing.form_values(form))


def _write_expected(request: Request, ws: Workspace, actor: Actor, cid: str, values: dict[str, str]) -> Response:
    require_role(actor, LABEL_ROLES, "labeling")
    session, step = _step(ws, actor, cid)
    draft, _ = _draft(ws, actor, cid)
    draft.values.update(values)
    step.write_expected(draft.get("reference"), draft.get("behavior_code"), draft.assertions())
    draft.expected_written = True
    reviewing.save_draft(ws, actor.name, cid, draft)
    if wants_json(request):  # `evaltray --server … review`: the verdict follows in its own request
        return JSONResponse({"candidate_id": cid, "expected_written": True})
    if request.headers.get("hx-request") != "true":
        return RedirectResponse(f"/queue/{cid}", status_code=303)
    view = reviewing.shown(step, draft, session.blind, ws, actor.name)
    return HTMLResponse(fragment("_output.html", view=view, draft=draft, may_label=True))


@router.post("/queue/{cid}/review")
async def record(request: Request, cid: str, actor: Annotated[Actor, Depends(writer)]) -> Response:
    form = await request.form()
    values = reviewing.form_values(form)
    return await _in_thread(_record, workspace(request), actor, cid, values, wants_json(request))


def _draft(ws: Workspace, actor: Actor, cid: str) -> tuple[reviewing.Draft, tq.Task | None]:
    """``actor``'s draft of ``cid``, its clock started when they took its label task (if they did), and that task."""
    task = reviewing.label_task(ws, cid, actor.name)
    return reviewing.open_draft(ws, actor.name, cid, task), task


def _record(ws: Workspace, actor: Actor, cid: str, values: dict[str, str], as_json: bool = False) -> Response:
    """Record the review through the session (which keeps the blind rule and stamps the guide version): the
    review, its audit entry, the time spent, the draft dropped and the label task closed, in one transaction."""
    require_role(actor, LABEL_ROLES, "labeling")
    _, step = _step(ws, actor, cid)
    draft, task = _draft(ws, actor, cid)
    draft.values.update(values)
    verdict = draft.get("verdict").strip().lower() or None
    if verdict is not None and not draft.expected_written and not draft.output_seen_first:
        raise rev.BlindReviewError(
            f"candidate {cid}: a verdict judges the recorded output; write the expected behaviour to see it first"
        )
    if draft.output_seen_first:
        step.recorded_output()  # seen before the expected behaviour: the review says so
    step.write_expected(draft.get("reference"), draft.get("behavior_code"), draft.assertions())
    ready = step.prepare(  # every read before the write transaction: it holds the write lock for writes only
        verdict=verdict,
        critique=draft.get("critique") or None,
        failure_tags=draft.failure_tags(),
        slice=draft.get("slice").strip() or None,
    )
    seconds = reviewing.spent(draft)
    closing = reviewing.label_closing(ws, actor.name, task, "done", seconds)
    with ws.atomic():
        closing = reviewing.hold_label_task(ws, closing)
        made = rev.write_review(ws, ready)
        reviewing.finish(ws, actor.name, cid, "review", seconds, made.id)
        reviewing.close_label_task(ws, closing, made)
    if as_json:  # a script or `evaltray --server … labels record`
        return JSONResponse({"candidate_id": cid, "review_id": made.id, "reviewer": actor.name})
    return RedirectResponse("/queue", status_code=303)


@router.post("/queue/{cid}/reject")
async def reject(request: Request, cid: str, actor: Annotated[Actor, Depends(writer)]) -> Response:
    form = await request.form()
    reason, note = form.get("reason"), form.get("note")
    return await _in_thread(
        _reject,
        workspace(request),
        actor,
        cid,
        reason if isinstance(reason, str) else "",
        note if isinstance(note, str) else "",
        wants_json(request),
    )


def _reject(ws: Workspace, actor: Actor, cid: str, reason: str, note: str, as_json: bool = False) -> Response:
    require_role(actor, LABEL_ROLES, "rejecting a candidate")
    if not reason.strip():
        raise EvaltrayError(f"candidate {cid}: pick a reason to reject it ({', '.join(REJECT_REASONS)})")
    draft, task = _draft(ws, actor, cid)
    seconds = reviewing.spent(draft)
    closing = reviewing.label_closing(ws, actor.name, task, "reject", seconds, reason)
    with ws.atomic():  # the rejection, the time spent and the task closed: one transaction
        closing = reviewing.hold_label_task(ws, closing)
        pool.reject(ws, cid, reason, actor.name, note=note.strip() or None)
        reviewing.finish(ws, actor.name, cid, "reject", seconds)
        reviewing.close_label_task(ws, closing)
    if as_json:  # a script or `evaltray --server … reject`
        return JSONResponse({"candidate_id": cid, "reason": pool.get(ws, cid).reject_reason})
    return RedirectResponse("/queue", status_code=303)


@router.post("/queue/{cid}/signoff")
def sign_off(cid: str, actor: Annotated[Actor, Depends(writer)]) -> Response:
    """Refused in the web: a sign-off is signed with the adjudicator's private key, which the server never holds."""
    require_role(actor, SIGN_ROLES, "signing labels off")
    raise NeedsTheCli(
        f"candidate {cid}: a sign-off is signed with your private key, which this server never holds; "
        f"run `evaltray -u {actor.name} signoff {cid}` where your key is"
    )
