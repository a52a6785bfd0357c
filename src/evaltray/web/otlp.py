"""``POST /v1/traces``: the OTLP/HTTP trace receiver, on the web app and alone (``evaltray receive``).

An exporter authenticates with an API token of a user who may ingest (``Authorization: Bearer TOKEN`` or
``x-api-key: TOKEN``; ``evaltray user token NAME`` makes one). A 200 means the spans are journaled on disk
(:mod:`evaltray.ingest.otlp`); a journal backlog over its bound answers 503 with ``Retry-After``, which
OpenTelemetry exporters retry, so nothing is dropped unseen.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import AsyncIterator

from fastapi import APIRouter, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from starlette.concurrency import run_in_threadpool

from evaltray.core.errors import EvaltrayError, PermissionDenied
from evaltray.core.store import CURATE_ROLES, Workspace
from evaltray.ingest import otlp
from evaltray.ingest.otlp import JOURNAL_DIR, BadRequest, Journal, Receiver

from .accounts import NotSignedIn, require_role, token_actor
from .auth import bearer

router = APIRouter()
#: Seconds an exporter is told to wait when the journal backlog is over its bound.
RETRY_AFTER = 5


_STARTING = threading.Lock()
#: The answer of a web app served by several worker processes: the journal may have one writer only.
OFF = (
    "this server runs several worker processes (`evaltray serve --workers`), which cannot share the trace "
    "journal; send OTLP to `evaltray receive`"
)


def receiver(app: FastAPI) -> Receiver:
    """The app's receiver, started (journal replayed) on first use when the app's lifespan did not start it;
    two first requests at once start one."""
    found: Receiver | None = getattr(app.state, "otlp", None)
    if found is None:
        with _STARTING:
            found = getattr(app.state, "otlp", None)
            if found is None:
                found = Receiver(app.state.ws, **getattr(app.state, "otlp_options", {}))
                found.start()
                app.state.otlp = found
    return found


@contextlib.asynccontextmanager
async def lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Start the receiver with the server where it has a journal (replaying it: traces acknowledged before a
    crash reach the store), and store everything journaled on shutdown."""
    if getattr(app.state, "otlp_off", False):
        pass  # several worker processes: the journal is `evaltray receive`'s
    elif getattr(app.state, "otlp_always", False) or Journal.exists(app.state.ws.root / JOURNAL_DIR):
        await run_in_threadpool(receiver, app)
    try:
        yield
    finally:
        rec: Receiver | None = getattr(app.state, "otlp", None)
        if rec is not None:
            await run_in_threadpool(rec.stop)


def _refused(status: int, message: str, **headers: str) -> Response:
    return JSONResponse({"code": status, "message": message}, status_code=status, headers=headers)


def _authorize(ws: Workspace, request: Request) -> None:
    secret = bearer(request) or request.headers.get("x-api-key", "").strip()
    if not secret:
        raise NotSignedIn("send an API token as `Authorization: Bearer TOKEN` or `x-api-key: TOKEN`")
    require_role(token_actor(ws, secret), CURATE_ROLES, "sending traces")


def _journal(rec: Receiver, request: Request, raw: bytes) -> Response:
    kind = otlp.media_type(request.headers.get("content-type"))
    body = otlp.inflate(raw, request.headers.get("content-encoding"))
    checked = otlp.check(body, kind)
    if rec.overloaded():
        rec.stats.refused += 1
        return _refused(503, "the receiver's journal is full; retry later", **{"Retry-After": str(RETRY_AFTER)})
    if checked.accepted:
        rec.accept(kind, body, checked.accepted)
    media = otlp.PROTOBUF if kind == "protobuf" else otlp.JSON
    return Response(otlp.response_body(kind, checked.rejected, checked.reason), media_type=media)


def _too_big() -> Response:
    return _refused(413, f"the body is over {otlp.MAX_BODY >> 20} MiB; export smaller batches")


async def _body(request: Request) -> bytes | None:
    """The request body, or None past :data:`otlp.MAX_BODY` (a chunked body has no Content-Length to check)."""
    raw = bytearray()
    async for chunk in request.stream():
        raw += chunk
        if len(raw) > otlp.MAX_BODY:
            return None
    return bytes(raw)


@router.post("/v1/traces")
async def export_traces(request: Request) -> Response:
    """OTLP/HTTP ``ExportTraceServiceRequest`` (protobuf or JSON, gzip or not) → ``ExportTraceServiceResponse``."""
    length = request.headers.get("content-length", "")
    if length.isdigit() and int(length) > otlp.MAX_BODY:
        return _too_big()
    app: FastAPI = request.app
    if getattr(app.state, "otlp_off", False):
        return _refused(404, OFF)
    try:
        await run_in_threadpool(_authorize, app.state.ws, request)
        raw = await _body(request)
        if raw is None:
            return _too_big()
        rec = receiver(app)
        return await run_in_threadpool(_journal, rec, request, raw)
    except NotSignedIn as exc:
        return _refused(401, str(exc))
    except PermissionDenied as exc:
        return _refused(403, str(exc))
    except BadRequest as exc:
        return _refused(400, str(exc))
    except (EvaltrayError, OSError) as exc:  # e.g. the journal's disk is full: the exporter retries a 503
        return _refused(503, str(exc), **{"Retry-After": str(RETRY_AFTER)})


def create_receiver_app(ws: Workspace, **options: float | None) -> FastAPI:
    """An app serving only ``POST /v1/traces`` over ``ws`` (``evaltray receive``); ``options`` go to
    :class:`Receiver` (group, delay, settle, max_backlog, workers)."""
    app = FastAPI(title="evaltray receiver", docs_url=None, redoc_url=None, openapi_url=None, lifespan=lifespan)
    app.state.ws = ws
    app.state.otlp_options = options
    app.state.otlp_always = True
    app.include_router(router)
    return app
