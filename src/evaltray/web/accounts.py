"""Who is acting in the web app: argon2 passwords, sign-in sessions and API tokens.

A session or token is a random secret given to its holder once; the database keeps only its sha256, so a
copy of the database signs nobody in. The role is read afresh on every request: a role changed or a user
removed takes effect at once.
"""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from datetime import timedelta

import sqlalchemy as sa
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from evaltray.core.errors import EvaltrayError, NotFound, PermissionDenied
from evaltray.core.records import Role
from evaltray.core.store import ADMIN_ROLES, Workspace, inserted_id
from evaltray.core.util import now, now_iso

#: A session lasts this long after sign-in; then its holder signs in again.
SESSION_HOURS = 12
MIN_PASSWORD_CHARS = 10
#: Prefix of every API token, so a leaked one is recognisable in logs and secret scanners.
TOKEN_PREFIX = "evt_"

_HASHER = PasswordHasher()
#: Verified against when the name is unknown, so a wrong name costs the same time as a wrong password.
_DUMMY_HASH = _HASHER.hash("not a password anyone has")


class SignInError(EvaltrayError):
    """A name and password that do not match an account (which of the two is wrong is never said)."""


class NotSignedIn(EvaltrayError):
    """The request carries no valid session or token."""


class NeedsTheCli(EvaltrayError):
    """An act that needs the user's private key, which a team server does not hold: it is done in the CLI."""


@dataclass(frozen=True)
class Actor:
    """The user a request acts for: name, current role, and the session's CSRF token (None for an API token)."""

    name: str
    role: Role
    csrf: str | None = None


def _digest(secret: str) -> str:
    return hashlib.sha256(secret.encode("utf-8")).hexdigest()


def _expiry(hours: int) -> str:
    return (now() + timedelta(hours=hours)).isoformat().replace("+00:00", "Z")


def set_password(ws: Workspace, name: str, password: str, actor: str) -> None:
    """Set ``name``'s web password (argon2id); an admin's act, audited as ``user.password`` (never the password).
    Every session ``name`` had is ended."""
    ws.require(actor, ADMIN_ROLES, "setting passwords")
    if len(password) < MIN_PASSWORD_CHARS:
        raise EvaltrayError(f"a password needs at least {MIN_PASSWORD_CHARS} characters")
    users = ws.t["users"]
    with ws.tx() as conn:
        done = conn.execute(users.update().where(users.c.name == name).values(password_hash=_HASHER.hash(password)))
        if done.rowcount == 0:
            raise NotFound(f"no user {name!r}; add them first with `evaltray user add {name} --role ROLE`")
        conn.execute(ws.t["web_sessions"].delete().where(ws.t["web_sessions"].c.name == name))
        ws.audit(conn, actor, "user.password", name)


def sign_in(ws: Workspace, name: str, password: str) -> tuple[str, Actor]:
    """Check ``name``'s password and open a session: the session secret (for the cookie) and the actor."""
    users = ws.t["users"]
    with ws.tx() as conn:
        row = conn.execute(sa.select(users.c.role, users.c.password_hash).where(users.c.name == name)).first()
    stored = row.password_hash if row is not None and row.password_hash else _DUMMY_HASH
    try:
        _HASHER.verify(stored, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        raise SignInError("wrong name or password") from None
    if row is None or not row.password_hash:
        raise SignInError("wrong name or password")
    secret, csrf = secrets.token_urlsafe(32), secrets.token_urlsafe(32)
    with ws.tx() as conn:
        conn.execute(
            ws.t["web_sessions"]
            .insert()
            .values(
                token_hash=_digest(secret),
                name=name,
                csrf=csrf,
                expires_at=_expiry(SESSION_HOURS),
                created_at=now_iso(),
            )
        )
        ws.audit(conn, name, "user.sign_in", name)
    return secret, Actor(name, Role(row.role), csrf)


def session_actor(ws: Workspace, secret: str) -> Actor:
    """The actor of a live session; :class:`NotSignedIn` for an unknown or expired one."""
    sessions, users = ws.t["web_sessions"], ws.t["users"]
    q = ws.statement(  # every request of a signed-in person asks
        "web.session",
        lambda: (
            sa.select(users.c.name, users.c.role, sessions.c.csrf, sessions.c.expires_at)
            .join(users, users.c.name == sessions.c.name)
            .where(sessions.c.token_hash == sa.bindparam("token"))
        ),
    )
    with ws.tx() as conn:
        row = conn.execute(q, {"token": _digest(secret)}).first()
    if row is None or row.expires_at <= now_iso():
        raise NotSignedIn("your session has ended; sign in again")
    return Actor(row.name, Role(row.role), row.csrf)


def sign_out(ws: Workspace, secret: str) -> None:
    sessions = ws.t["web_sessions"]
    with ws.tx() as conn:
        conn.execute(sessions.delete().where(sessions.c.token_hash == _digest(secret)))


def create_token(ws: Workspace, name: str, actor: str, label: str | None = None) -> tuple[int, str]:
    """A new API token for ``name`` (an admin's act): its id and the secret, which is shown this once only."""
    ws.require(actor, ADMIN_ROLES, "making API tokens")
    ws.role_of(name)  # an unknown name is refused before a token exists
    secret = TOKEN_PREFIX + secrets.token_urlsafe(32)
    with ws.tx() as conn:
        token_id = inserted_id(
            conn,
            ws.t["api_tokens"]
            .insert()
            .values(token_hash=_digest(secret), name=name, label=label, created_by=actor, created_at=now_iso()),
        )
        ws.audit(conn, actor, "token.create", name, token_id=token_id, label=label)
    return token_id, secret


def revoke_token(ws: Workspace, token_id: int, actor: str) -> None:
    """End an API token at once (an admin's act); it stays on record."""
    ws.require(actor, ADMIN_ROLES, "revoking API tokens")
    tokens = ws.t["api_tokens"]
    with ws.tx() as conn:
        done = conn.execute(
            tokens.update().where(tokens.c.id == token_id, tokens.c.revoked_at.is_(None)).values(revoked_at=now_iso())
        )
        if done.rowcount == 0:
            raise NotFound(f"no live API token {token_id}")
        ws.audit(conn, actor, "token.revoke", str(token_id))


def list_tokens(ws: Workspace) -> list[dict[str, object]]:
    """Every API token's id, owner, label and dates (never the secret, which is not kept)."""
    tokens = ws.t["api_tokens"]
    cols = [tokens.c[c] for c in ("id", "name", "label", "created_by", "created_at", "last_used_at", "revoked_at")]
    with ws.tx() as conn:
        return [dict(r._mapping) for r in conn.execute(sa.select(*cols).order_by(tokens.c.id))]


def token_actor(ws: Workspace, secret: str) -> Actor:
    """The actor of a live API token; :class:`NotSignedIn` for an unknown or revoked one."""
    tokens, users = ws.t["api_tokens"], ws.t["users"]
    q = (
        sa.select(tokens.c.id, users.c.name, users.c.role)
        .join(users, users.c.name == tokens.c.name)
        .where(tokens.c.token_hash == _digest(secret), tokens.c.revoked_at.is_(None))
    )
    with ws.tx() as conn:
        row = conn.execute(q).first()
        if row is None:
            raise NotSignedIn("the API token is unknown or revoked")
        conn.execute(tokens.update().where(tokens.c.id == row.id).values(last_used_at=now_iso()))
    return Actor(row.name, Role(row.role))


def require_role(actor: Actor, roles: frozenset[Role], what: str) -> None:
    """The web's role check, made before any write: the session or token proved who acts; the role decides."""
    if actor.role not in roles:
        allowed = ", ".join(sorted(r.value for r in roles))
        raise PermissionDenied(f"user {actor.name!r} is a {actor.role.value}; {what} needs one of: {allowed}")
