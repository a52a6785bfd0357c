"""The FastAPI application: security headers on every answer, static files, the pages, the error handlers."""

from __future__ import annotations

import contextlib
import os
from collections.abc import AsyncIterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.staticfiles import StaticFiles
from starlette.concurrency import run_in_threadpool
from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from evaltray.core.keys import Signer
from evaltray.core.store import Workspace

from . import errors, otlp
from .render import STATIC_DIR
from .views import agreement, dash, gate, guide, home, login, plan, queue, queues, readthrough, tasks, traces, users

#: No script but our own files, no inline script or style, nothing loaded from elsewhere, no framing:
#: a script or stylesheet that slipped through escaping would still neither run nor reach another host.
CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self'; connect-src 'self'; "
    "font-src 'self'; form-action 'self'; base-uri 'none'; frame-ancestors 'none'"
)
HEADERS = {
    "Content-Security-Policy": CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
    "X-Frame-Options": "DENY",
    "Cross-Origin-Opener-Policy": "same-origin",
}


class SecurityHeaders:
    """Adds :data:`HEADERS` (and ``no-store`` to every page) to each answer. A plain ASGI middleware: the
    ``@app.middleware("http")`` kind wraps every response in a stream and a task of its own, which was a
    measurable share of a small page under twenty reviewers."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        cache = not scope["path"].startswith("/static/")

        async def with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                headers.update(HEADERS)
                if cache:  # pages hold trace text: never kept by a shared cache
                    headers["Cache-Control"] = "no-store"
            await send(message)

        await self.app(scope, receive, with_headers)


@contextlib.asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    """The OTLP receiver's lifespan; at shutdown the label queue's top-up thread is stopped too."""
    async with otlp.lifespan(app):
        try:
            yield
        finally:
            top_up = getattr(app.state, "label_top_up", None)
            if top_up is not None:
                await run_in_threadpool(top_up.stop)


def create_app(ws: Workspace, signer: Signer | None = None, *, receive: bool = True) -> FastAPI:
    """The web app over ``ws`` (opened by the caller, who closes it); ``signer`` is the server's own registered
    key, which signs the rows promoted in the web (None: promotion stays in the CLI). ``receive``: whether
    ``POST /v1/traces`` journals traces (one process only may own the journal)."""
    app = FastAPI(title="evaltray", docs_url=None, redoc_url=None, openapi_url=None, lifespan=_lifespan)
    app.state.ws = ws
    app.state.signer = signer
    app.state.otlp_off = not receive
    app.add_middleware(SecurityHeaders)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for view in (login, home, queue, tasks, queues, guide, traces, agreement, readthrough, gate, dash, plan, users):
        app.include_router(view.router)
    app.include_router(otlp.router)
    errors.install(app)
    return app


#: Where :func:`worker_app` finds what ``evaltray serve --workers N`` was asked to serve (each worker process
#: opens the workspace itself: sessions, CSRF tokens, drafts and tasks all live in the state database).
WORKER_ENV = ("EVALTRAY_SERVE_ROOT", "EVALTRAY_SERVE_DB", "EVALTRAY_SERVE_SIGNER")


def worker_app() -> FastAPI:
    """The app of one worker process of ``evaltray serve --workers N`` (uvicorn calls it in each): the workspace
    and signing user named in :data:`WORKER_ENV`; OTLP is left to ``evaltray receive``, since its journal has
    one owner."""
    root, db_url, signing_user = (os.environ.get(name) or None for name in WORKER_ENV)
    ws = Workspace.open(Path(root) if root else None, db_url)
    return create_app(ws, ws.signer(signing_user) if signing_user else None, receive=False)
