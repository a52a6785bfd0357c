"""The FastAPI application: security headers on every answer, static files, the pages, the error handlers."""

from __future__ import annotations

from collections.abc import Awaitable, Callable

from fastapi import FastAPI, Request, Response
from fastapi.staticfiles import StaticFiles

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


async def _security_headers(request: Request, call_next: Callable[[Request], Awaitable[Response]]) -> Response:
    response = await call_next(request)
    response.headers.update(HEADERS)
    if not request.url.path.startswith("/static/"):
        response.headers["Cache-Control"] = "no-store"  # pages hold trace text: never kept by a shared cache
    return response


def create_app(ws: Workspace, signer: Signer | None = None) -> FastAPI:
    """The web app over ``ws`` (opened by the caller, who closes it); ``signer`` is the server's own registered
    key, which signs the rows promoted in the web (None: promotion stays in the CLI)."""
    app = FastAPI(title="evaltray", docs_url=None, redoc_url=None, openapi_url=None, lifespan=otlp.lifespan)
    app.state.ws = ws
    app.state.signer = signer
    app.middleware("http")(_security_headers)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    for view in (login, home, queue, tasks, queues, guide, traces, agreement, readthrough, gate, dash, plan, users):
        app.include_router(view.router)
    app.include_router(otlp.router)
    errors.install(app)
    return app
