"""What the review flow writes, and where: the review page writes nothing, a label saved is one write
transaction (all of it or none of it), the next task only takes a task that a top-up thread opened."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

import pytest
import sqlalchemy as sa

from evaltray.core.store import Workspace
from evaltray.tray import review as rev
from evaltray.tray import tasks as tq
from evaltray.web import reviewing

from .conftest import add_candidate, sign_in

WRITES = ("INSERT", "UPDATE", "DELETE", "BEGIN IMMEDIATE")


@contextmanager
def watching(ws: Workspace) -> Iterator[dict[str, list[Any]]]:
    """The write statements run meanwhile (with the thread that ran each), and the transactions that wrote."""
    seen: dict[str, list[Any]] = {"writes": [], "committed": []}

    def statement(conn: Any, _cursor: Any, text: str, *_args: Any) -> None:
        if text.lstrip().upper().startswith(WRITES):
            seen["writes"].append((threading.current_thread().name, text.split("(")[0].strip()))
            conn.info["webp95_wrote"] = True

    def commit(conn: Any) -> None:
        if conn.info.pop("webp95_wrote", False):
            seen["committed"].append(threading.current_thread().name)

    sa.event.listen(ws.engine, "before_cursor_execute", statement)
    sa.event.listen(ws.engine, "commit", commit)
    try:
        yield seen
    finally:
        sa.event.remove(ws.engine, "before_cursor_execute", statement)
        sa.event.remove(ws.engine, "commit", commit)


def _settled(client: Any) -> None:
    assert reviewing.top_up_of(client.app).idle(30)


def test_opening_the_review_page_writes_nothing_and_the_first_autosave_keeps_the_draft(client, site):
    csrf = sign_in(client, "lab")
    cid = site.cands[0]
    with watching(site.ws) as seen:
        page = client.get(f"/queue/{cid}")
    assert page.status_code == 200 and seen["writes"] == []
    assert client.post(f"/queue/{cid}/draft", data={"critique": "so far", "csrf": csrf}).status_code == 204
    with site.ws.tx() as conn:
        rows = conn.execute(sa.select(site.ws.t["review_drafts"].c.reviewer, site.ws.t["review_drafts"].c.body)).all()
    assert [(r.reviewer, "so far" in r.body) for r in rows] == [("lab", True)]


def test_a_label_saved_is_one_write_transaction(client, site):
    csrf = sign_in(client, "lab")
    cid = client.get("/queue").headers["location"].rsplit("/", 1)[1]
    _settled(client)
    task = reviewing.label_task(site.ws, cid)
    assert task is not None and task.assignee == "lab"
    with watching(site.ws) as seen:
        r = client.post(f"/queue/{cid}/review", data={"csrf": csrf, "reference": "Five to seven days."})
    assert r.status_code == 303
    assert len(seen["committed"]) == 1  # the review, its audit entry, the time, the task closed: one commit
    assert [w for _, w in seen["writes"]][:3] == ["BEGIN IMMEDIATE", "INSERT INTO reviews", "INSERT INTO audit"]
    review = rev.latest_review(site.ws, cid)
    assert review is not None and review.expected["reference"] == "Five to seven days."
    closed = tq.get_task(site.ws, task.id)
    assert (closed.status, closed.outcome, closed.closed_by) == ("closed", "done", "lab")
    [timing] = reviewing.timings(site.ws, cid)
    assert (timing["review_id"], timing["seconds"]) == (review.id, int(closed.seconds))
    with site.ws.tx() as conn:
        audit = site.ws.t["audit"]
        actions = conn.execute(sa.select(audit.c.action).where(audit.c.object_id == cid).order_by(audit.c.id))
        assert list(actions.scalars())[-2:] == ["review.add", "task.close"]
    assert site.ws.verify_audit().broken_at is None


def test_a_save_that_fails_at_its_last_step_leaves_nothing_behind(client, site, monkeypatch):
    """Closing the task fails after the review was written: the review, its audit entry and the time go too."""
    csrf = sign_in(client, "lab")
    cid = client.get("/queue").headers["location"].rsplit("/", 1)[1]
    _settled(client)
    assert client.post(f"/queue/{cid}/draft", data={"critique": "kept", "csrf": csrf}).status_code == 204
    with site.ws.tx() as conn:
        audit_rows = conn.execute(sa.select(sa.func.count()).select_from(site.ws.t["audit"])).scalar()

    def refused(*_a: Any, **_k: Any) -> None:
        raise tq.TaskError("the queue refused to close the task")

    monkeypatch.setattr(tq, "close_prepared", refused)
    r = client.post(f"/queue/{cid}/review", data={"csrf": csrf, "reference": "Five to seven days."})
    assert r.status_code == 400 and "the queue refused to close the task" in r.text
    assert rev.latest_review(site.ws, cid) is None and reviewing.timings(site.ws, cid) == []
    assert reviewing.open_draft(site.ws, "lab", cid).get("critique") == "kept"  # the draft stays
    task = reviewing.label_task(site.ws, cid)
    assert task is not None and (task.status, task.assignee) == ("open", "lab")
    with site.ws.tx() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(site.ws.t["audit"])).scalar() == audit_rows


def test_the_next_task_takes_a_task_the_top_up_thread_opened(client, site, monkeypatch):
    """``GET /queue`` opens no task itself: the top-up thread opens them (up to LABEL_BATCH free, once fewer
    than LOW_WATER are), a chunk per transaction; the request waits for its first chunk only when none is free."""
    monkeypatch.setattr(reviewing, "LOW_WATER", 4)
    monkeypatch.setattr(reviewing, "LABEL_BATCH", 8)
    monkeypatch.setattr(reviewing, "TOP_UP_CHUNK", 3)
    for n in range(9):
        add_candidate(site.ws, f"Where is parcel {n}?")
    oldest = [c.id for c in rev.queue(site.ws)]
    sign_in(client, "lab")
    with watching(site.ws) as seen:
        assert client.get("/queue").headers["location"] == f"/queue/{oldest[0]}"
        _settled(client)
    opened = [who for who, w in seen["writes"] if w == "INSERT INTO tasks"]
    assert opened == ["evaltray-label-top-up"] * 8  # all by the thread, none in the request
    label = tq.list_tasks(site.ws, kind="label", status="open")
    assert sorted(t.ref for t in label) == sorted(oldest[:8])  # the oldest 8 of the 12
    assert [t.assignee for t in label if t.assignee] == ["lab"]
    with site.ws.tx() as conn:  # each chunk its own transaction: 3 + 3 + 2, and the claim
        audit = site.ws.t["audit"]
        opens = conn.execute(sa.select(audit.c.actor).where(audit.c.action == "task.open")).scalars().all()
    assert opens == ["lab"] * 8  # opened in the name of the reviewer who asked, as before
    assert seen["committed"].count("evaltray-label-top-up") == 3


def test_the_draft_clock_starts_when_the_task_was_taken(client, site, monkeypatch):
    csrf = sign_in(client, "lab")
    monkeypatch.setattr(tq, "now_iso", lambda: "2026-01-01T10:00:00Z")  # the task is taken at 10:00
    cid = client.get("/queue").headers["location"].rsplit("/", 1)[1]
    _settled(client)
    monkeypatch.setattr(reviewing, "now_iso", lambda: "2026-01-01T10:02:00Z")  # saved two minutes later
    client.get(f"/queue/{cid}")
    assert client.post(f"/queue/{cid}/review", data={"csrf": csrf, "reference": "x"}).status_code == 303
    assert reviewing.timings(site.ws, cid)[0]["seconds"] == 120


def test_the_blind_setting_is_read_through_the_audit_index(ws):
    """The newest ``queue.blind`` entry is found through ``ix_audit_action``, not by walking the log."""
    audit = ws.t["audit"]
    q = sa.select(audit.c.detail).where(audit.c.action == "queue.blind", audit.c.object_id == "label")
    q = q.order_by(audit.c.id.desc()).limit(1)
    with ws.tx() as conn:
        plan = " ".join(
            str(r[-1])
            for r in conn.execute(sa.text(f"EXPLAIN QUERY PLAN {q.compile(compile_kwargs={'literal_binds': True})}"))
        )
    assert "USING INDEX ix_audit_action (action=? AND object_id=?)" in plan and "TEMP B-TREE" not in plan


@pytest.mark.parametrize("blind", [True, False])
def test_the_review_page_keeps_the_blind_rule_without_writing_on_a_blind_queue(client, site, blind):
    """A blind queue's page writes nothing; an open one notes, once, that the output was shown first (the review
    must say so), which is the only write a page makes."""
    site.ws.settings.write_expected_first = blind
    sign_in(client, "lab")
    cid = site.cands[1]
    with watching(site.ws) as seen:
        client.get(f"/queue/{cid}")
        client.get(f"/queue/{cid}")
    assert [w for _, w in seen["writes"]] == ([] if blind else ["INSERT INTO review_drafts"])
    assert reviewing.open_draft(site.ws, "lab", cid).output_seen_first is not blind


def test_reviewers_arriving_at_an_empty_queue_all_get_a_task(site, monkeypatch):
    """Twenty reviewers at a fresh server all found no free task and waited for the top-up's first chunk, which
    held fewer tasks than they were: those left over got "nothing waits for you" while the pool was full. Each
    now waits for the next chunk while the top-up opens any."""
    monkeypatch.setattr(reviewing, "TOP_UP_CHUNK", 1)
    for n in range(3):
        add_candidate(site.ws, f"Where is parcel {n}?")
    names = ["lab", "lab2", "w1", "w2"]
    for name in names[2:]:
        site.ws.add_user(name, "labeler", actor="alice")
    top_up, start, got = reviewing.LabelTopUp(site.ws), threading.Barrier(len(names)), {}

    def ask(name: str) -> None:
        start.wait()
        got[name] = reviewing.next_item(site.ws, name, top_up=top_up)

    threads = [threading.Thread(target=ask, args=(name,)) for name in names]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    top_up.stop()
    assert sorted(got) == sorted(names) and None not in got.values()
    assert len({t.ref for t in got.values() if t is not None}) == len(names)  # four different candidates
    assert all(t is not None and t.assignee == name for name, t in got.items())


def test_reviewers_waiting_at_an_empty_queue_get_one_chunk_with_a_task_each(site, monkeypatch):
    """Three reviewers wait for the top-up (none free): its next chunk opens three tasks, not TOP_UP_CHUNK (each
    chunk woke every waiter to walk the queue again, and twenty at a fresh server waited for four chunks)."""
    monkeypatch.setattr(reviewing, "TOP_UP_CHUNK", 1)
    sizes: list[int] = []
    real = tq.open_new_label_tasks

    def opening(ws: Workspace, actor: str, limit: int) -> list[str]:
        sizes.append(limit)
        return real(ws, actor, limit)

    monkeypatch.setattr(tq, "open_new_label_tasks", opening)
    top_up = reviewing.LabelTopUp(site.ws)
    woke: list[bool] = []
    waiters = [threading.Thread(target=lambda: woke.append(top_up.wait(0))) for _ in range(3)]
    for t in waiters:
        t.start()
    deadline = time.monotonic() + 10
    while top_up._waiting < 3:
        assert time.monotonic() < deadline
        time.sleep(0.01)
    top_up.ask("lab")
    for t in waiters:
        t.join(30)
    assert top_up.idle(30)
    top_up.stop()
    assert woke == [True, True, True] and sizes[0] == 3
    assert len(tq.list_tasks(site.ws, kind="label", status="open")) == len(site.cands)  # the pool's three, no more
