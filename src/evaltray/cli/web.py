"""``evaltray serve`` and the web app's accounts: ``evaltray user passwd``, ``user token``, ``user tokens``,
``user revoke-token``."""

from __future__ import annotations

import os
import sys

import click

from evaltray.core.store import ADMIN_ROLES, Workspace

from ._common import AppContext, emit, emit_table, err, json_option, out, pass_app, shown


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=8080, show_default=True)
@click.option("--db", "db_url", help="State database URL (default: the workspace's), e.g. postgresql+psycopg://…")
@click.option(
    "--signing-user",
    help="A user registered with a public key whose private key is in this server's config dir: it signs the "
    "rows promoted in the web (the audit log names who promoted them). Without it, promotion stays in the CLI.",
)
@click.option(
    "--workers",
    type=click.IntRange(1, 64),
    default=1,
    show_default=True,
    help="Worker processes answering requests (sessions live in the state database, so any worker answers any "
    "user). With more than one, OTLP is not received here: run `evaltray receive` for it.",
)
@json_option
@pass_app
def serve(
    app: AppContext, host: str, port: int, db_url: str | None, signing_user: str | None, workers: int, as_json: bool
) -> None:
    """Serve the web app: review queue, labeling guide, traces, tray, dashboards (sign in with `evaltray user
    passwd`)."""
    import uvicorn

    from evaltray.web import create_app
    from evaltray.web.app import WORKER_ENV

    ws = Workspace.open(app.path, db_url)
    try:
        signer = ws.signer(signing_user) if signing_user else None  # checked now, not at the first promotion
        if not any(u.get("password_hash") for u in ws.users()):
            err().print("No user has a web password yet: an admin runs `evaltray user passwd NAME`", highlight=False)
        url = f"http://{host}:{port}/"
        emit(as_json, {"url": url}, lambda: out().print(f"evaltray web app on {shown(url)} (Ctrl+C stops it)"))
        if workers == 1:
            uvicorn.run(create_app(ws, signer), host=host, port=port, log_level="warning")
            return
        os.environ.update(zip(WORKER_ENV, (str(ws.root), db_url or "", signing_user or ""), strict=True))
        target = "evaltray.web.app:worker_app"
        uvicorn.run(target, factory=True, workers=workers, host=host, port=port, log_level="warning")
    finally:
        ws.close()


@click.command()
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=click.IntRange(1, 65535), default=4318, show_default=True, help="OTLP/HTTP's port.")
@click.option(
    "--settle",
    type=click.FloatRange(0),
    default=5.0,
    show_default=True,
    help="Seconds a trace without its root span waits for more spans before it is stored.",
)
@click.option(
    "--flush-every",
    type=click.FloatRange(0.01),
    default=1.0,
    show_default=True,
    help="Seconds between the flusher's rounds that move journaled spans into the trace store.",
)
@click.option(
    "--max-backlog-mb",
    type=click.IntRange(1),
    default=256,
    show_default=True,
    help="Journaled MiB not yet stored past which exporters are told to retry later (503).",
)
@click.option(
    "--workers",
    type=click.IntRange(1),
    default=None,
    help="Processes that scrub received traces (default: $EVALTRAY_WORKERS, else the usable CPUs).",
)
@json_option
@pass_app
def receive(
    app: AppContext,
    host: str,
    port: int,
    settle: float,
    flush_every: float,
    max_backlog_mb: int,
    workers: int | None,
    as_json: bool,
) -> None:
    """Receive OpenTelemetry traces (OTLP/HTTP, POST /v1/traces) into the trace store, scrubbed; exporters
    send an API token from `evaltray user token NAME`."""
    import uvicorn

    from evaltray.web.otlp import create_receiver_app

    ws = app.ws
    url = f"http://{host}:{port}/v1/traces"
    emit(as_json, {"url": url}, lambda: out().print(f"OTLP/HTTP receiver on {shown(url)} (Ctrl+C stops it)"))
    server = create_receiver_app(
        ws, settle=settle, delay=flush_every, max_backlog=max_backlog_mb << 20, workers=workers
    )
    uvicorn.run(server, host=host, port=port, log_level="warning")


def _read_password(from_stdin: bool) -> str:
    if from_stdin:
        return sys.stdin.readline().rstrip("\r\n")
    return str(click.prompt("New password", hide_input=True, confirmation_prompt=True, err=True))


@click.command("passwd")
@click.argument("name")
@click.option("--password-stdin", is_flag=True, help="Read the password from the first line of stdin.")
@json_option
@pass_app
def passwd(app: AppContext, name: str, password_stdin: bool, as_json: bool) -> None:
    """Set NAME's web password (admins only); their open sessions end."""
    from evaltray.web import accounts

    ws = app.ws  # the workspace (and the admin's right) before the password is asked for
    ws.require(app.user, ADMIN_ROLES, "setting passwords")
    accounts.set_password(ws, name, _read_password(password_stdin), actor=app.user)
    emit(as_json, {"name": name, "password_set": True}, lambda: out().print(f"password set for {shown(name)}"))


@click.command("token")
@click.argument("name")
@click.option("--label", help="What the token is for, e.g. 'CI'.")
@json_option
@pass_app
def token(app: AppContext, name: str, label: str | None, as_json: bool) -> None:
    """Make an API token for NAME (admins only); it is printed this once and never kept."""
    from evaltray.web import accounts

    token_id, secret = accounts.create_token(app.ws, name, app.user, label)
    emit(
        as_json,
        {"id": token_id, "name": name, "token": secret},
        lambda: out().print(
            f"token {token_id} for {shown(name)}: {secret}\n(send it as `Authorization: Bearer TOKEN`; "
            "it is not shown again)",
            highlight=False,
        ),
    )


@click.command("tokens")
@json_option
@pass_app
def tokens(app: AppContext, as_json: bool) -> None:
    """List API tokens (never their secrets)."""
    from evaltray.web import accounts

    rows = accounts.list_tokens(app.ws)
    emit_table(
        as_json,
        rows,
        ["id", "user", "label", "made", "last used", "revoked"],
        [
            [r["id"], r["name"], r["label"] or "", r["created_at"], r["last_used_at"] or "", r["revoked_at"] or ""]
            for r in rows
        ],
    )


@click.command("revoke-token")
@click.argument("token_id", type=int)
@json_option
@pass_app
def revoke_token(app: AppContext, token_id: int, as_json: bool) -> None:
    """Revoke an API token at once (admins only)."""
    from evaltray.web import accounts

    accounts.revoke_token(app.ws, token_id, app.user)
    emit(as_json, {"id": token_id, "revoked": True}, lambda: out().print(f"token {token_id} revoked"))


#: Commands of the ``user`` group that the web app's accounts add.
USER_COMMANDS = (passwd, token, tokens, revoke_token)
