"""A workspace with one user per role (each with a web password), candidates to review, and the web app over
it: in-process (``client``) or as a real server on a free port (``server``)."""

from __future__ import annotations

import contextlib
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import orjson
import pytest
import uvicorn
from fastapi.testclient import TestClient

from evaltray.core.store import Workspace
from evaltray.ingest import ingest_files
from evaltray.tray import candidates as pool
from evaltray.tray import review as rev
from evaltray.web import accounts, create_app
from tests.helpers import register

PASSWORD = "correct horse battery"
#: user -> role; alice (the workspace's admin) is made by the ``ws`` fixture.
USERS = {"lab": "labeler", "lab2": "labeler", "vic": "viewer", "adj": "adjudicator"}
OUTPUT = "Refunds take 5 to 7 business days."


@dataclass
class Site:
    ws: Workspace
    cands: list[str]


def add_candidate(ws: Workspace, text: str, output: str | None = OUTPUT, trajectory: bool = True) -> str:
    """A pending candidate whose recorded output (and the trajectory it came from) the blind rule hides."""
    cid = pool.add_manual(
        ws,
        "alice",
        "sme",
        [{"role": "system", "content": "You are the shop's assistant."}, {"role": "user", "content": text}],
        context=["Policy 4.2: refunds are paid within 7 business days."],
        recorded_output=output,
    )
    if trajectory:  # as candidates from traces keep it
        cands = ws.t["candidates"]
        meta = {"model": "gpt-x", "recorded_trajectory": [{"role": "assistant", "content": output}]}
        with ws.tx() as conn:
            conn.execute(cands.update().where(cands.c.id == cid).values(metadata=orjson.dumps(meta).decode()))
    return cid


@pytest.fixture
def site(ws: Workspace) -> Site:
    for name, role in USERS.items():
        if role == "adjudicator":
            register(ws, name, role)
        else:
            ws.add_user(name, role, actor="alice")
    for name in [*USERS, "alice"]:
        accounts.set_password(ws, name, PASSWORD, actor="alice")
    made = {add_candidate(ws, f"Where is my refund for order {n}?") for n in (1, 2, 3)}
    # in the queue's order (oldest first, then by id: three made within a second go by id)
    return Site(ws, [c.id for c in rev.queue(ws) if c.id in made])


def ingest_chat(ws: Workspace, tmp_path: Path, trace_id: str, text: str, scrub: bool = True) -> None:
    """Ingest one OpenAI-style chat as a trace (scrubbed or not, as the workspace is set for the call)."""
    path = tmp_path / f"{len(list(tmp_path.glob('chat-*.jsonl')))}.jsonl"
    path = path.with_name("chat-" + path.name)
    row = {
        "id": trace_id,
        "metadata": {"feature": "refunds"},
        "messages": [{"role": "user", "content": text}, {"role": "assistant", "content": "We are on it."}],
    }
    path.write_bytes(orjson.dumps(row) + b"\n")
    was, ws.settings.scrub = ws.settings.scrub, scrub
    try:
        ingest_files(ws, [path], actor="alice")
    finally:
        ws.settings.scrub = was


@pytest.fixture
def client(site: Site) -> Iterator[TestClient]:
    with TestClient(create_app(site.ws), base_url="http://127.0.0.1", follow_redirects=False) as c:
        yield c


def sign_in(c: TestClient, name: str, password: str = PASSWORD) -> str:
    """Sign ``name`` in on ``c``; the session's CSRF token."""
    form = c.get("/login")
    token = form.cookies.get("evaltray_login_csrf") or c.cookies.get("evaltray_login_csrf")
    r = c.post("/login", data={"name": name, "password": password, "csrf": token, "next": "/"})
    assert r.status_code == 303, r.text
    secret = c.cookies.get("evaltray_session")
    assert secret
    return accounts.session_actor(c.app.state.ws, secret).csrf or ""  # type: ignore[attr-defined]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@contextlib.contextmanager
def serving(app: Any) -> Iterator[str]:
    """``app`` served by uvicorn on 127.0.0.1 in a thread, for the ``with`` block; its base URL."""
    port = _free_port()
    srv = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning"))
    thread = threading.Thread(target=srv.run, daemon=True)
    thread.start()
    deadline = time.monotonic() + 20
    while not srv.started:
        assert time.monotonic() < deadline, "the server did not start"
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        srv.should_exit = True
        thread.join(10)


@pytest.fixture
def server(site: Site) -> Iterator[str]:
    """The app served by uvicorn on 127.0.0.1 in a thread; its base URL."""
    with serving(create_app(site.ws)) as url:
        yield url


@pytest.fixture
def boards(site: Site, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Site:
    """The site with something on every dashboard: a plan over feature × difficulty, four cases in two
    slices and a release, one rejected candidate, and one scored run (3 of 4 refunds pass, 0 of 1 billing)."""
    from evaltray.curate.plan import Plan, plan_path
    from evaltray.evaluate import run as runner
    from evaltray.evaluate import score
    from evaltray.evaluate.targets import make_target
    from evaltray.tray import gate
    from evaltray.tray.release import create_release
    from tests.helpers import labeled_candidate

    ws = site.ws
    dims = {"feature": ["refunds", "billing"], "difficulty": ["easy", "medium", "hard"]}
    Plan(dimensions=dims, grid=["feature", "difficulty"], target_per_cell=2).save(plan_path(ws), ws.settings.source_mix)
    labeled_candidate(ws, "Refund for a broken cup?", user="alice")
    labeled_candidate(ws, "Refund after 30 days?", user="alice", source="production")
    labeled_candidate(ws, "Refund in another currency?", user="alice", difficulty="hard")
    labeled_candidate(ws, "Why was I billed twice?", user="alice", slice="billing")
    gate.promote(ws, "alice")
    create_release(ws, "1.0.0", "alice")
    pool.reject(ws, site.cands[2], "duplicate", "alice")
    (tmp_path / "dashbot.py").write_text("def answer(inp):\n    return inp['messages'][-1]['content'].upper()\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = [{"id": f"r{i}", "input": f"q{i}", "slice": "refunds", "expected": {"reference": f"Q{i}"}} for i in range(3)]
    rows += [{"id": "r3", "input": "q3", "slice": "refunds", "expected": {"reference": "no"}}]
    rows += [{"id": "b0", "input": "b", "slice": "billing", "expected": {"reference": "no"}}]
    path = tmp_path / "cases.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    made = runner.execute(ws, runner.plan_file_run(path), make_target("python:dashbot:answer"), actor="alice")
    score.score_run(ws, made.run_id, ["exact"], "alice")
    return site
