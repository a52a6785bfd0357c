"""The web app on a PostgreSQL workspace (as ``evaltray serve --db postgresql+psycopg://…`` runs it): labels
written through the web and through the CLI at the same time all land, none lost, none doubled."""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import httpx
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from evaltray.cli import cli
from evaltray.core.store import Workspace
from evaltray.tray import review as rev
from evaltray.tray import tasks as tq
from evaltray.web import accounts, create_app, reviewing
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


def _until(done: Any, timeout: float = 10.0) -> bool:
    """Poll ``done()`` until it is true or ``timeout`` s pass; whether it came true."""
    deadline = time.monotonic() + timeout
    while not done():
        if time.monotonic() > deadline:
            return False
        time.sleep(0.02)
    return True


def _lock_waiter(probe: sa.Engine, statement: str) -> bool:
    """Whether a session of the server waits for a lock while running a statement that starts with ``statement``."""
    q = sa.text("SELECT count(*) FROM pg_stat_activity WHERE wait_event_type = 'Lock' AND query LIKE :q")
    with probe.connect() as conn:
        return bool(conn.execute(q, {"q": statement + "%"}).scalar())


def _signed_in(base: str, name: str, ws: Workspace) -> tuple[httpx.Client, str]:
    client = httpx.Client(base_url=base, follow_redirects=False, timeout=60)
    token = client.get("/login").cookies["evaltray_login_csrf"]
    client.post("/login", data={"name": name, "password": PASSWORD, "csrf": token})
    return client, accounts.session_actor(ws, client.cookies["evaltray_session"]).csrf or ""


def _fresh_database(pg_url: str, name: str) -> str:
    """A new, empty database on the module's PostgreSQL server (its tests share the first one); its URL."""
    server = sa.create_engine(pg_url, isolation_level="AUTOCOMMIT")
    try:
        with server.connect() as conn:
            conn.exec_driver_sql(f"CREATE DATABASE {name}")
    finally:
        server.dispose()
    return sa.engine.make_url(pg_url).set(database=name).render_as_string(hide_password=False)


def _pg_workspace(pg_url: str, root: Path, monkeypatch: pytest.MonkeyPatch, cands: int) -> Workspace:
    """A PostgreSQL workspace (at ``pg_url``) with labelers lab, lab2 and lab3 and ``cands`` candidates, each in
    the queue as a free label task."""
    monkeypatch.setenv("EVALTRAY_DB_URL", pg_url)
    made = Workspace.init(root, user="alice")
    for name in ("lab", "lab2", "lab3"):
        made.add_user(name, "labeler", actor="alice")
        accounts.set_password(made, name, PASSWORD, actor="alice")
    for n in range(cands):
        add_candidate(made, f"Where is my refund for order {n}?")
    tq.open_label_tasks(made, "alice")
    made.close()
    monkeypatch.delenv("EVALTRAY_DB_URL")
    return Workspace.open(root, pg_url)


def test_a_save_and_a_claim_of_the_same_task_at_once_both_answer_on_postgres(pg_url, tmp_path, monkeypatch):
    """lab saves a label on a candidate whose label task is free while lab2's next task claims that task. The save
    writes the audit log, then closes the task; a claim locks the task's row, then the audit log. Held in the
    worst order (the save paused after its audit entry until the claim has the row or waits for it), each once
    waited for what the other held: PostgreSQL aborted one (a deadlock: a 500). Now the save locks the row first."""
    pg_url = _fresh_database(pg_url, "save_and_claim")
    ws = _pg_workspace(pg_url, tmp_path / "ws", monkeypatch, cands=1)
    probe = sa.create_engine(pg_url)
    claimed, paused = threading.Event(), threading.Event()

    def claim_seen(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("UPDATE tasks SET assignee"):
            claimed.set()

    real_finish = reviewing.finish

    def finish_late(*args: Any, **kwargs: Any) -> Any:  # after the review's audit entry, before the task is closed
        paused.set()
        assert _until(lambda: claimed.is_set() or _lock_waiter(probe, "UPDATE tasks SET assignee"))
        return real_finish(*args, **kwargs)

    monkeypatch.setattr(reviewing, "finish", finish_late)
    sa.event.listen(ws.engine, "after_cursor_execute", claim_seen)
    [cid] = [c.id for c in rev.queue(ws)]
    answers: dict[str, httpx.Response] = {}
    try:
        with serving(create_app(ws)) as base:
            saver, csrf = _signed_in(base, "lab", ws)
            taker, _ = _signed_in(base, "lab2", ws)
            try:
                save = threading.Thread(
                    target=lambda: answers.update(
                        save=saver.post(f"/queue/{cid}/review", data={"csrf": csrf, "reference": "lab's label"})
                    )
                )
                save.start()
                assert paused.wait(30)
                answers["next"] = taker.get("/queue")
                save.join(60)
            finally:
                saver.close()
                taker.close()
        assert answers["save"].status_code == 303, answers["save"].text[:300]
        assert answers["next"].status_code == 200, answers["next"].text[:300]  # nothing else waits for lab2
        [task] = tq.list_tasks(ws, kind="label")
        assert (task.status, task.outcome, task.closed_by, task.assignee) == ("closed", "done", "lab", None)
        with ws.tx() as conn:
            reviews = ws.t["reviews"]
            assert conn.execute(sa.select(reviews.c.reviewer, reviews.c.candidate_id)).all() == [("lab", cid)]
        assert ws.verify_audit().problem is None
    finally:
        sa.event.remove(ws.engine, "after_cursor_execute", claim_seen)
        probe.dispose()
        ws.close()


def test_two_claims_of_the_same_task_at_once_give_it_to_one_on_postgres(pg_url, tmp_path, monkeypatch):
    """Two server processes (two engines) walk to the one free task at once: the first claim holds the row (paused
    there until the second waits for it), the second then finds it taken. One gets the task, the other nothing,
    neither an error (claims lock the row, then the audit log: one order, so no deadlock)."""
    pg_url = _fresh_database(pg_url, "two_claims")
    first = _pg_workspace(pg_url, tmp_path / "ws", monkeypatch, cands=1)
    second = Workspace.open(tmp_path / "ws", pg_url)
    probe = sa.create_engine(pg_url)
    got: dict[str, Any] = {}

    def hold_on(_conn: Any, _cursor: Any, statement: str, *_args: Any) -> None:
        if statement.startswith("UPDATE tasks SET assignee") and "second" not in got:
            threading.Thread(target=lambda: got.update(second=_next(second, "lab2"))).start()
            assert _until(lambda: _lock_waiter(probe, "UPDATE tasks SET assignee"))

    def _next(ws: Workspace, name: str) -> Any:
        try:
            return tq.next_task(ws, name)
        except Exception as exc:  # noqa: BLE001 - the test reports it
            return exc

    sa.event.listen(first.engine, "after_cursor_execute", hold_on)
    try:
        got["first"] = _next(first, "lab")
        assert _until(lambda: "second" in got, 30)
        assert isinstance(got["first"], tq.Task) and got["first"].assignee == "lab"
        assert got["second"] is None
        [task] = tq.list_tasks(first, kind="label")
        assert (task.id, task.assignee) == (got["first"].id, "lab")
        with first.tx() as conn:
            audit = first.t["audit"]
            assigned = conn.execute(sa.select(audit.c.actor).where(audit.c.action == "task.assign")).scalars().all()
        assert assigned == ["lab"] and first.verify_audit().problem is None
    finally:
        sa.event.remove(first.engine, "after_cursor_execute", hold_on)
        probe.dispose()
        second.close()
        first.close()
