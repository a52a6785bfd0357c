"""The web app on a PostgreSQL workspace (as ``evaltray serve --db postgresql+psycopg://…`` runs it): labels
written through the web and through the CLI at the same time all land, none lost, none doubled."""

from __future__ import annotations

import threading

import httpx
from click.testing import CliRunner

from evaltray.cli import cli
from evaltray.core.store import Workspace
from evaltray.web import accounts, create_app
from tests.core import test_postgres

from .conftest import PASSWORD, add_candidate, serving

pg_url = test_postgres.pg_url  # the PostgreSQL server fixture (skips where there is none)
ROUNDS = 4


def _web_labels(base: str, ws: Workspace, cids: list[str], start: threading.Barrier, errors: list[str]) -> None:
    with httpx.Client(base_url=base, follow_redirects=False, timeout=60) as client:
        token = client.get("/login").cookies["evaltray_login_csrf"]
        client.post("/login", data={"name": "lab", "password": PASSWORD, "csrf": token})
        csrf = accounts.session_actor(ws, client.cookies["evaltray_session"]).csrf or ""
        start.wait()
        for cid in cids:
            r = client.post(f"/queue/{cid}/review", data={"csrf": csrf, "reference": f"web on {cid}"})
            if r.status_code != 303:
                errors.append(f"{cid}: {r.status_code} {r.text[:200]}")


def test_web_and_cli_label_at_once_on_postgres(pg_url, tmp_path, monkeypatch):
    monkeypatch.setenv("EVALTRAY_DB_URL", pg_url)
    made = Workspace.init(tmp_path / "ws", user="alice")
    for name in ("lab", "lab2"):
        made.add_user(name, "labeler", actor="alice")
    accounts.set_password(made, "lab", PASSWORD, actor="alice")
    cands = [add_candidate(made, f"Where is my refund for order {n}?") for n in range(2 * ROUNDS)]
    made.close()
    monkeypatch.delenv("EVALTRAY_DB_URL")  # the server names its database as `serve --db` does
    ws = Workspace.open(tmp_path / "ws", pg_url)
    try:
        assert ws.engine.dialect.name == "postgresql"
        web_cids, cli_cids = cands[::2], cands[1::2]
        start, errors = threading.Barrier(2), []
        with serving(create_app(ws)) as base:
            web = threading.Thread(target=_web_labels, args=(base, ws, web_cids, start, errors))
            web.start()
            start.wait()
            env = {"EVALTRAY_DB_URL": pg_url}
            for cid in cli_cids:
                args = [
                    "-w",
                    str(tmp_path / "ws"),
                    "-u",
                    "lab2",
                    "labels",
                    "record",
                    cid,
                    "--reference",
                    f"cli on {cid}",
                ]
                r = CliRunner().invoke(cli, args, env=env, catch_exceptions=False)
                assert r.exit_code == 0, r.output
            web.join(60)
        assert errors == []
        reviews = ws.t["reviews"]
        with ws.tx() as conn:
            rows = conn.execute(reviews.select().order_by(reviews.c.id)).mappings().all()
        got = sorted((r["candidate_id"], r["reviewer"]) for r in rows)
        assert got == sorted([(c, "lab") for c in web_cids] + [(c, "lab2") for c in cli_cids])
        assert all(f"on {r['candidate_id']}" in r["expected"] for r in rows)
    finally:
        ws.close()
