"""Who a request acts for, and the CSRF check every form post passes."""

from __future__ import annotations

import secrets

from fastapi import Request
from starlette.concurrency import run_in_threadpool

from evaltray.core.errors import PermissionDenied
from evaltray.core.store import Workspace, proved_by_front_end

from .accounts import Actor, NotSignedIn, session_actor, token_actor

SESSION_COOKIE = "evaltray_session"
#: The double-submit cookie of the sign-in form (there is no session yet to bind a token to).
LOGIN_CSRF_COOKIE = "evaltray_login_csrf"
CSRF_HEADER = "X-CSRF-Token"


class CsrfRefused(PermissionDenied):
    """A form post without the session's CSRF token: possibly another site posting in the user's name."""


def workspace(request: Request) -> Workspace:
    ws: Workspace = request.app.state.ws
    return ws


def bearer(request: Request) -> str | None:
    header = request.headers.get("authorization", "")
    scheme, _, value = header.partition(" ")
    return value.strip() if scheme.lower() == "bearer" and value.strip() else None


def _actor(request: Request) -> Actor:
    ws = workspace(request)
    token = bearer(request)
    if token is not None:
        return token_actor(ws, token)
    secret = request.cookies.get(SESSION_COOKIE)
    if not secret:
        raise NotSignedIn("sign in first")
    return session_actor(ws, secret)


async def reader(request: Request) -> Actor:
    """The signed-in actor (session cookie, or ``Authorization: Bearer`` API token)."""
    return await run_in_threadpool(_actor, request)


async def writer(request: Request) -> Actor:
    """The actor of a write: a session must also send its CSRF token (form field ``csrf`` or the header htmx
    sends); an API token is not sent by a browser on its own, so it needs none."""
    actor = await reader(request)
    if actor.csrf is not None:
        sent = request.headers.get(CSRF_HEADER)
        if sent is None and request.headers.get("content-type", "").startswith(
            ("application/x-www-form-urlencoded", "multipart/form-data")
        ):
            value = (await request.form()).get("csrf")
            sent = value if isinstance(value, str) else None
        if not sent or not secrets.compare_digest(sent, actor.csrf):
            raise CsrfRefused("the form's CSRF token is missing or wrong; reload the page and try again")
    # the session or token proved who acts: the stages' role checks take that instead of a private key
    proved_by_front_end(actor.name)
    return actor
