"""The one place where an exception becomes what the user sees: a page, an htmx fragment or JSON.

Messages are evaltray's own (they name record ids, never trace text); anything unexpected is a plain 500
whose detail goes to the server's log only.
"""

from __future__ import annotations

import logging
from typing import Any
from urllib.parse import urlencode

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import JSONResponse, RedirectResponse, Response
from starlette.exceptions import HTTPException

from evaltray.core.errors import EvaltrayError, NotFound, PermissionDenied

from .accounts import NeedsTheCli, NotSignedIn, SignInError
from .auth import bearer
from .render import fragment, page

log = logging.getLogger(__name__)


def status_of(exc: Exception) -> int:
    if isinstance(exc, NotSignedIn | SignInError):
        return 401
    if isinstance(exc, PermissionDenied):
        return 403
    if isinstance(exc, NotFound):
        return 404
    if isinstance(exc, NeedsTheCli):
        return 409
    return 400


def wants_json(request: Request) -> bool:
    return request.url.path.startswith("/api/") or bearer(request) is not None


def json_or_redirect(request: Request, data: Any, url: str) -> Response:
    """A form's answer: ``data`` as JSON to a script (an ``/api/`` path or an API token), else a 303 to ``url``."""
    return JSONResponse(data) if wants_json(request) else RedirectResponse(url, status_code=303)


def error_response(request: Request, status: int, message: str) -> Response:
    """``message`` as JSON for scripts, a fragment for htmx, else a whole page; always escaped."""
    if wants_json(request):
        return JSONResponse({"error": message}, status_code=status)
    if request.headers.get("hx-request") == "true":
        return Response(fragment("_error.html", message=message), status_code=status, media_type="text/html")
    return page(request, "error.html", None, status=status, status_code=status, message=message)


async def _evaltray_error(request: Request, exc: Exception) -> Response:
    if isinstance(exc, NotSignedIn) and request.method == "GET" and not wants_json(request):
        target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
        return RedirectResponse("/login?" + urlencode({"next": target}), status_code=303)
    return error_response(request, status_of(exc), str(exc))


async def _http_error(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, HTTPException)
    message = "no such page" if exc.status_code == 404 else str(exc.detail)
    return error_response(request, exc.status_code, message)


async def _invalid_request(request: Request, exc: Exception) -> Response:
    assert isinstance(exc, RequestValidationError)
    problems = "; ".join(f"{'.'.join(str(p) for p in e['loc'][1:])}: {e['msg']}" for e in exc.errors())
    return error_response(request, 422, f"the request is not one this page takes ({problems})")


async def _unexpected(request: Request, exc: Exception) -> Response:
    log.exception("unexpected error on %s %s", request.method, request.url.path)
    return error_response(request, 500, "something went wrong on the server; the error is in its log")


def install(app: FastAPI) -> None:
    """Register the handlers: evaltray's errors by kind, HTTP errors, bad requests, and anything else."""
    app.add_exception_handler(EvaltrayError, _evaltray_error)
    app.add_exception_handler(HTTPException, _http_error)
    app.add_exception_handler(RequestValidationError, _invalid_request)
    app.add_exception_handler(Exception, _unexpected)
