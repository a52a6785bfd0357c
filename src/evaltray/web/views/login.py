"""Sign in and sign out."""

from __future__ import annotations

import secrets
from typing import Annotated

from fastapi import APIRouter, Depends, Form, Request
from fastapi.responses import RedirectResponse, Response

from evaltray.web import accounts
from evaltray.web.auth import LOGIN_CSRF_COOKIE, SESSION_COOKIE, CsrfRefused, workspace, writer
from evaltray.web.render import page

router = APIRouter()


def safe_next(target: str | None) -> str:
    """Where to go after sign-in: a path on this site only (never ``//host`` or a scheme)."""
    if target and target.startswith("/") and not target.startswith(("//", "/\\")):
        return target
    return "/"


def _login_page(request: Request, target: str, message: str | None = None, status: int = 200) -> Response:
    token = secrets.token_urlsafe(32)
    response = page(request, "login.html", None, status=status, csrf=token, next=target, message=message)
    response.set_cookie(
        LOGIN_CSRF_COOKIE, token, httponly=True, samesite="strict", secure=request.url.scheme == "https", path="/login"
    )
    return response


@router.get("/login")
def login_form(request: Request, next: str | None = None) -> Response:
    return _login_page(request, safe_next(next))


@router.post("/login")
def login(
    request: Request,
    name: Annotated[str, Form()],
    password: Annotated[str, Form()],
    csrf: Annotated[str, Form()] = "",
    next: Annotated[str, Form()] = "/",
) -> Response:
    expected = request.cookies.get(LOGIN_CSRF_COOKIE, "")
    if not csrf or not expected or not secrets.compare_digest(csrf, expected):
        raise CsrfRefused("the sign-in form's CSRF token is missing or wrong; reload the page and try again")
    try:
        secret, _ = accounts.sign_in(workspace(request), name.strip(), password)
    except accounts.SignInError as exc:
        return _login_page(request, safe_next(next), str(exc), status=401)
    response = RedirectResponse(safe_next(next), status_code=303)
    response.set_cookie(
        SESSION_COOKIE,
        secret,
        max_age=accounts.SESSION_HOURS * 3600,
        httponly=True,
        samesite="strict",
        secure=request.url.scheme == "https",
        path="/",
    )
    response.delete_cookie(LOGIN_CSRF_COOKIE, path="/login")
    return response


@router.post("/logout")
def logout(request: Request, actor: Annotated[accounts.Actor, Depends(writer)]) -> Response:
    secret = request.cookies.get(SESSION_COOKIE)
    if secret:
        accounts.sign_out(workspace(request), secret)
    response = RedirectResponse("/login", status_code=303)
    response.delete_cookie(SESSION_COOKIE, path="/")
    return response
