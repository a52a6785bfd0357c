"""The review queue of typed tasks: opened once per (kind, ref), handed out by role and urgency, closed with an
outcome and the time spent; bugs collected and exported; every action audited."""

from __future__ import annotations

import csv
import json
import threading

import pytest
import sqlalchemy as sa

from evaltray.core.errors import NotFound, PermissionDenied
from evaltray.tray import candidates as pool
from evaltray.tray import gate, tasks
from evaltray.tray import review as rev
from evaltray.tray.lifecycle import get_case
from tests.helpers import labeled_candidate, register


def _cand(ws, text="Where is my refund?", trace_id=None):
    return pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": text}])


def _actions(ws):
    with ws.tx() as conn:
        return [r[0] for r in conn.execute(sa.text("SELECT action FROM audit WHERE action LIKE 'task.%' ORDER BY id"))]


def test_open_is_idempotent_while_open_and_a_new_task_once_closed(ws):
    cid = _cand(ws)
    first = tasks.open_task(ws, "label", cid, reason="new in the pool", actor="alice", payload={"a": 1})
    again = tasks.open_task(ws, "label", cid, reason="asked twice", actor="alice", payload={"b": 2}, priority=3)
    assert again == first
    task = tasks.get_task(ws, first)
    assert (task.kind, task.ref, task.status, task.reason, task.priority) == (
        "label",
        cid,
        "open",
        "new in the pool",
        3,
    )
    assert task.payload == {"a": 1, "b": 2, "review_before": None}  # a review after that one closes it
    rev.record_review(ws, cid, "alice", rev.normalize_expected(ws, "alice", "Say 5 days."), verdict="pass")
    tasks.resolve_task(ws, first, "alice", "done", seconds=12.5)
    second = tasks.open_task(ws, "label", cid, reason="again", actor="alice")
    assert second != first
    assert _actions(ws) == ["task.open", "task.close", "task.open"]


@pytest.mark.parametrize(
    ("kind", "ref", "reason", "message"),
    [
        (
            "chat",
            "x",
            "r",
            "unknown task kind 'chat': one of adjudicate, control, failing_case, judge_check, label, overlap, revalidate, spotcheck",
        ),
        ("label", " ", "r", r"a label task needs a ref \(a candidate id\)"),
        ("label", "cand-1", " ", "a label task about cand-1 needs a reason"),
        ("failing_case", "r-1/" + "c" * 400, "r", "a task's ref is at most 300 characters; r-1/ccc"),
    ],
)
def test_a_bad_task_is_refused(ws, kind, ref, reason, message):
    with pytest.raises(tasks.TaskError, match=message):
        tasks.open_task(ws, kind, ref, reason=reason, actor="alice")


def test_a_viewer_cannot_open_and_a_labeler_cannot_take_revalidation(ws):
    register(ws, "vic", "viewer")
    register(ws, "lou", "labeler")
    with pytest.raises(PermissionDenied, match="user 'vic' is a viewer"):
        tasks.open_task(ws, "failing_case", "r-1/c1", reason="failed", actor="vic")
    tasks.open_task(ws, "revalidate", "c-0000000001", reason="guide v2", actor="alice")
    assert tasks.next_task(ws, "lou") is None  # revalidation is for those who sign
    assert tasks.next_task(ws, "alice").kind == "revalidate"


def test_next_task_resumes_then_escalated_first_then_priority_then_age(ws):
    register(ws, "lou", "labeler")
    a = tasks.open_task(ws, "failing_case", "r-1/a", reason="failed", actor="alice")
    b = tasks.open_task(ws, "failing_case", "r-1/b", reason="failed", actor="alice", priority=5)
    c = tasks.open_task(ws, "judge_check", "r-1/c", reason="unparsed", actor="alice")
    assert tasks.next_task(ws, "lou").id == b  # most urgent
    assert tasks.next_task(ws, "lou").id == b  # still hers until closed
    tasks.resolve_task(ws, b, "lou", "escalate", reason="policy unclear", seconds=30)
    assert tasks.next_task(ws, "lou").id == a  # the escalated one is the adjudicator's now; then the oldest
    assert tasks.next_task(ws, "alice").id == b  # escalated first for a signer
    assert tasks.next_task(ws, "alice", kinds=["judge_check"]).id == c  # asked for one kind: one of that kind
    done = tasks.resolve_task(ws, b, "alice", "done", seconds=45)
    assert (done.status, done.outcome, done.seconds, done.escalated_by) == ("closed", "done", 75.0, "lou")
    assert tasks.next_task(ws, "alice").id == c  # the one she still holds
    # b to lou, escalated, a to lou, b to alice, c to alice, b closed
    assert _actions(ws)[3:] == ["task.assign", "task.escalate", *["task.assign"] * 3, "task.close"]
    assert [t.id for t in tasks.list_tasks(ws, status="open")] == [a, c]
    assert [t.id for t in tasks.list_tasks(ws, assignee="lou")] == [a]


def test_only_a_signer_closes_an_escalated_task(ws):
    register(ws, "lou", "labeler")
    t = tasks.open_task(ws, "failing_case", "r-1/a", reason="failed", actor="alice")
    tasks.resolve_task(ws, t, "lou", "escalate")
    with pytest.raises(
        PermissionDenied,
        match="user .lou. is a labeler; closing an escalated failing_case task needs one of: adjudicator, admin",
    ):
        tasks.resolve_task(ws, t, "lou", "done")
    with pytest.raises(tasks.TaskError, match="already with the adjudicator"):
        tasks.resolve_task(ws, t, "alice", "escalate")


def test_a_label_task_is_done_only_once_reviewed_and_reject_sends_the_candidate_to_the_bin(ws):
    one, two = _cand(ws, "one?"), _cand(ws, "two?")
    t1 = tasks.open_task(ws, "label", one, reason="pool", actor="alice")
    t2 = tasks.open_task(ws, "label", two, reason="pool", actor="alice")
    with pytest.raises(tasks.TaskError, match=f"candidate {one} has no review since the task was opened"):
        tasks.resolve_task(ws, t1, "alice", "done")
    with pytest.raises(tasks.TaskError, match="rejecting needs a reason"):
        tasks.resolve_task(ws, t2, "alice", "reject")
    with pytest.raises(tasks.TaskError, match="reject reason 'boring' is not one of"):
        tasks.resolve_task(ws, t2, "alice", "reject", reason="boring")
    closed = tasks.resolve_task(ws, t2, "alice", "reject", reason="out of scope", critique="not our product")
    assert (closed.outcome, closed.outcome_reason) == ("reject", "out of scope")
    assert (pool.get(ws, two).status, pool.get(ws, two).reject_reason) == ("rejected", "out_of_scope")
    with pytest.raises(tasks.TaskError, match=f"task {t2} .* is already closed"):
        tasks.resolve_task(ws, t2, "alice", "done")


def test_a_label_task_reviewed_outside_the_queue_is_closed_when_met(ws):
    one, two = _cand(ws, "one?"), _cand(ws, "two?")
    t1 = tasks.open_task(ws, "label", one, reason="pool", actor="alice")
    t2 = tasks.open_task(ws, "label", two, reason="pool", actor="alice")
    rev.record_review(ws, one, "alice", rev.normalize_expected(ws, "alice", "Say hi."))
    assert tasks.next_task(ws, "alice").id == t2
    closed = tasks.get_task(ws, t1)
    assert (closed.status, closed.outcome, closed.closed_by) == ("closed", "done", "evaltray")


def test_time_spent_defaults_to_the_time_since_assignment(ws, monkeypatch):
    t = tasks.open_task(ws, "failing_case", "r-1/a", reason="failed", actor="alice")
    monkeypatch.setattr(tasks, "now_iso", lambda: "2026-01-01T10:00:00Z")
    tasks.next_task(ws, "alice")
    monkeypatch.setattr(tasks, "now_iso", lambda: "2026-01-01T10:02:05Z")
    assert tasks.resolve_task(ws, t, "alice", "done").seconds == 125.0
    with pytest.raises(tasks.TaskError, match="cannot be negative"):
        tasks.resolve_task(
            ws, tasks.open_task(ws, "failing_case", "r-1/b", reason="x", actor="alice"), "alice", "done", seconds=-1
        )


def test_revalidation_keeps_the_row_a_candidate_until_an_adjudicator_re_signs_it(ws):
    labeled_candidate(ws, "How long do refunds take?", reference="Five days.")
    case_id = gate.promote(ws, "alice").promoted[0].case_id
    t = tasks.open_task(ws, "revalidate", case_id, reason="suspected label error", actor="alice")
    assert tasks.awaiting_revalidation(ws) == [case_id]
    tasks.resolve_task(ws, t, "alice", "done", label={"reference": "Seven days."}, critique="policy changed")
    assert tasks.awaiting_revalidation(ws) == []
    report = gate.promote(ws, "alice")
    assert [p.case_id for p in report.promoted] == [case_id]  # the re-signed label applied under the same id
    assert get_case(ws, case_id)["expected"]["reference"] == "Seven days."


def test_revalidation_done_without_a_new_label_re_signs_the_current_one(ws):
    labeled_candidate(ws, "How long do refunds take?", reference="Five days.")
    case_id = gate.promote(ws, "alice").promoted[0].case_id
    t = tasks.open_task(ws, "revalidate", case_id, reason="older than 6 months", actor="alice")
    before = rev.latest_review(ws, pool.list_candidates(ws)[0].id)
    tasks.resolve_task(ws, t, "alice", "done")
    after = rev.latest_review(ws, pool.list_candidates(ws)[0].id)
    assert after.id != before.id and after.expected["reference"] == "Five days." and after.signed_by == "alice"


def test_bugs_are_collected_and_exported_as_jsonl_and_csv(ws, tmp_path):
    register(ws, "lou", "labeler")
    cid = pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": "x"}])
    with ws.tx() as conn:
        conn.execute(sa.text("UPDATE candidates SET trace_id = 'tr-9' WHERE id = :c"), {"c": cid})
    t1 = tasks.open_task(ws, "failing_case", "r-abc/c-1", reason="failed", actor="alice", payload={"trace_id": "tr-1"})
    t2 = tasks.open_task(ws, "label", cid, reason="pool", actor="alice")
    tasks.open_task(ws, "failing_case", "r-abc/c-2", reason="failed", actor="alice")
    tasks.resolve_task(ws, t1, "lou", "bug", critique="Tool call sends the wrong order id", tags=["tools", "ids"])
    tasks.resolve_task(ws, t2, "lou", "bug", critique="Crashes on empty cart")
    rows = tasks.bug_list(ws)
    assert [(r["task_id"], r["case_id"], r["run_id"], r["trace_id"], r["candidate_id"]) for r in rows] == [
        (t1, "c-1", "r-abc", "tr-1", None),
        (t2, None, None, "tr-9", cid),
    ]
    assert rows[0]["tags"] == ["ids", "tools"] and rows[0]["who"] == "lou" and rows[0]["when"]
    assert tasks.export_bugs(ws, tmp_path / "bugs.jsonl", "lou") == 2
    lines = [json.loads(x) for x in (tmp_path / "bugs.jsonl").read_text().splitlines()]
    assert lines[0]["critique"] == "Tool call sends the wrong order id"
    tasks.export_bugs(ws, tmp_path / "bugs.csv", "lou")
    table = list(csv.DictReader((tmp_path / "bugs.csv").open()))
    assert (table[0]["tags"], table[1]["trace_id"]) == ("ids; tools", "tr-9")
    with pytest.raises(tasks.TaskError, match=r"bugs.txt: the bug list is written as .jsonl or .csv"):
        tasks.export_bugs(ws, tmp_path / "bugs.txt", "lou")


def test_an_unknown_task_or_outcome_is_named(ws):
    with pytest.raises(NotFound, match="no task 99"):
        tasks.get_task(ws, "99")
    with pytest.raises(tasks.TaskError, match="'x' is not a task id"):
        tasks.get_task(ws, "x")
    t = tasks.open_task(ws, "failing_case", "r-1/a", reason="failed", actor="alice")
    with pytest.raises(tasks.TaskError, match="unknown outcome 'maybe': one of done, reject, escalate, bug"):
        tasks.resolve_task(ws, t, "alice", "maybe")


def test_a_rejected_revalidation_retires_the_row(ws):
    labeled_candidate(ws, "How long do refunds take?", reference="Five days.")
    case_id = gate.promote(ws, "alice").promoted[0].case_id
    t = tasks.open_task(ws, "revalidate", case_id, reason="policy v2", actor="alice")
    tasks.resolve_task(ws, t, "alice", "reject", reason="refunds are no longer offered")
    row = {r["id"]: r for r in gate.case_registry(ws)}[case_id]
    assert (row["status"], row["retired_reason"]) == ("retired", "re-validation: refunds are no longer offered")


def test_a_task_handed_back_goes_to_the_next_person(ws):
    register(ws, "lou", "labeler")
    register(ws, "max", "labeler")
    t = tasks.open_task(ws, "failing_case", "r-1/a", reason="failed", actor="alice")
    assert tasks.next_task(ws, "lou").id == t
    assert tasks.next_task(ws, "max") is None
    with pytest.raises(PermissionDenied, match=f"task {t} is lou's; only they or an adjudicator hand it back"):
        tasks.release_task(ws, t, "max")
    assert tasks.release_task(ws, t, "lou").assignee is None
    assert tasks.next_task(ws, "max").id == t
    with pytest.raises(tasks.TaskError, match="is not taken by anybody"):
        tasks.release_task(ws, tasks.open_task(ws, "failing_case", "r-1/b", reason="x", actor="alice"), "alice")


def test_the_candidate_pool_enters_the_queue_as_label_tasks(ws):
    one, two, three = _cand(ws, "one?"), _cand(ws, "two?"), _cand(ws, "three?")
    rev.record_review(ws, two, "alice", rev.normalize_expected(ws, "alice", "Say hi."))
    opened = tasks.open_label_tasks(ws, "alice")
    assert sorted(tasks.get_task(ws, t).ref for t in opened) == sorted([one, three])  # two has its review already
    assert tasks.open_label_tasks(ws, "alice", limit=1) == opened[:1]  # the open task, not another


def test_a_refill_opens_a_chunk_of_label_tasks_per_transaction(ws):
    """60 candidates: 3 transactions (25, 25, 10), each task audited and with no review before it; the
    one re-opened after its candidate's review takes that review as its baseline."""
    ids = [_cand(ws, f"question {i}?") for i in range(tasks.OPEN_CHUNK * 2 + 10)]
    commits, inserted_in = [0], set()  # the transactions (numbered by the commits before them) that opened tasks

    def count(*_):
        commits[0] += 1

    def note(conn, cursor, statement, *_):
        if statement.startswith("INSERT INTO tasks"):
            inserted_in.add(commits[0])

    sa.event.listen(ws.engine, "commit", count)
    sa.event.listen(ws.engine, "before_cursor_execute", note)
    opened = tasks.open_label_tasks(ws, "alice")
    sa.event.remove(ws.engine, "before_cursor_execute", note)
    sa.event.remove(ws.engine, "commit", count)
    assert [tasks.get_task(ws, t).ref for t in opened] == [c.id for c in rev.queue(ws)]
    assert sorted(tasks.get_task(ws, t).ref for t in opened) == sorted(ids)
    assert all(tasks.get_task(ws, t).payload == {"review_before": None} for t in opened)
    assert _actions(ws) == ["task.open"] * len(ids)
    assert len(inserted_in) == 3  # one per chunk (one per task before)
    review = rev.record_review(ws, ids[0], "alice", rev.normalize_expected(ws, "alice", "Say hi."))
    again = tasks.open_task(ws, "label", ids[0], reason="relabel", actor="alice")
    assert again == opened[[tasks.get_task(ws, t).ref for t in opened].index(ids[0])]  # still open: the same task
    tasks.resolve_task(ws, again, "alice", "done")
    fresh = tasks.open_task(ws, "label", ids[0], reason="relabel", actor="alice")
    assert fresh != again and tasks.get_task(ws, fresh).payload == {"review_before": review.id}


def test_a_stale_list_of_the_pool_opens_no_task_for_a_candidate_labelled_since(ws, monkeypatch):
    """A refill reads the pool, a reviewer saves and closes meanwhile: no second label task for that candidate."""
    one, two = _cand(ws, "one?"), _cand(ws, "two?")
    stale = rev.queue(ws)  # the refill's read, before the label below
    [first, _] = tasks.open_label_tasks(ws, "alice")
    rev.record_review(ws, one, "alice", rev.normalize_expected(ws, "alice", "Say hi."))
    tasks.next_task(ws, "alice")  # closes the reviewed task
    monkeypatch.setattr(tasks, "queue", lambda *a, **k: stale)
    reopened = tasks.open_label_tasks(ws, "alice")
    assert [tasks.get_task(ws, t).ref for t in reopened] == [two]
    assert [t.ref for t in tasks.list_tasks(ws, kind="label", status="open")] == [two]
    assert tasks.get_task(ws, first).status == "closed"


def test_the_free_label_task_taken_meanwhile_is_not_an_empty_queue(ws, monkeypatch):
    """A reviewer saw a free label task, another took it before them: the pool is refilled, not 'nothing for you'."""
    from evaltray.tray import oversight
    from evaltray.web import reviewing

    register(ws, "lou", "labeler")
    _cand(ws, "one?")
    tasks.open_label_tasks(ws, "alice", limit=1)  # the free task the reviewer sees
    later = _cand(ws, "two?")
    real, calls = oversight.next_for, []

    def racing(w, user, kinds=None):  # the first look finds the free task gone: another reviewer took it
        calls.append(user)
        if len(calls) == 1:
            tasks.next_task(w, "lou")
            return None
        return real(w, user, kinds=kinds)

    monkeypatch.setattr(oversight, "next_for", racing)
    task = reviewing.next_item(ws, "alice")
    assert task is not None and task.ref == later and len(calls) == 2


def test_a_label_task_closed_by_a_walk_after_the_page_looked_it_up_does_not_refuse_the_review(ws, monkeypatch):
    """The save looked the open task up; another reviewer's queue walk closed it (its candidate has the review)
    before the save closed it: the review stands, no error (bench_web saw a 400 for it under 20 reviewers)."""
    from evaltray.web import reviewing

    cid = _cand(ws, "Where is my parcel?")
    [task_id] = tasks.open_label_tasks(ws, "alice")
    stale = tasks.get_task(ws, task_id)
    closing = reviewing.label_closing(ws, "alice", stale, "done", 3)  # what the save checked before that
    rev.record_review(ws, cid, "alice", rev.normalize_expected(ws, "alice", reference="Tracking link."))
    assert tasks.next_task(ws, "alice") is None  # the walk closes the reviewed task
    with ws.atomic():
        assert reviewing.hold_label_task(ws, closing) is None  # read again under the lock: closed meanwhile
        reviewing.close_label_task(ws, None)
    closed = tasks.get_task(ws, task_id)
    assert (closed.status, closed.closed_by, closed.outcome_reason) == (
        "closed",
        "evaltray",
        "reviewed outside the queue",
    )
    register(ws, "lou", "labeler")
    other = tasks.get_task(ws, tasks.open_task(ws, "failing_case", "r-1/a", reason="x", actor="alice"))
    with pytest.raises(tasks.TaskError, match="rejecting needs a reason"):  # an error on a task still open is raised
        reviewing.label_closing(ws, "lou", other, "reject", 3)
    with ws.atomic():
        assert reviewing.hold_label_task(ws, reviewing.label_closing(ws, "lou", other, "done", 3)) is not None


def test_the_next_task_tops_the_label_queue_up_below_the_low_water_mark(ws, monkeypatch):
    """Fewer free label tasks than LOW_WATER: the person asking opens the missing ones, up to LABEL_BATCH, so
    twenty reviewers never all wait on an empty queue's refill."""
    from evaltray.web import reviewing

    monkeypatch.setattr(reviewing, "LABEL_BATCH", 8)
    monkeypatch.setattr(reviewing, "LOW_WATER", 4)
    for i in range(12):
        _cand(ws, f"question {i}?")
    tasks.open_label_tasks(ws, "alice", limit=5)
    opened = []
    for name in ("lou", "max", "ned"):
        register(ws, name, "labeler")
        assert reviewing.next_item(ws, name).assignee == name
        opened.append(len(tasks.list_tasks(ws, kind="label", status="open")))
    assert opened == [5, 5, 8]  # 5 free, then 4 (not below 4), then 3: topped up to the oldest 8
    free = [t for t in tasks.list_tasks(ws, kind="label", status="open") if t.assignee is None]
    assert len(free) == 5 and reviewing._free_label_tasks(ws) == 4  # counted up to LOW_WATER only


def test_two_walks_closing_the_same_reviewed_label_task_both_pass(ws):
    from evaltray.web import reviewing

    cid = pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": "Where is my parcel?"}])
    [task_id] = tasks.open_label_tasks(ws, "alice")
    stale = tasks.get_task(ws, task_id)  # what a second walk read before the first one closed it
    closing = reviewing.label_closing(ws, "alice", stale, "done", 3)
    rev.record_review(ws, cid, "alice", rev.normalize_expected(ws, "alice", reference="Tracking link."), sign=False)
    assert tasks.next_task(ws, "alice") is None  # the first walk closes the reviewed task
    assert tasks._closed_elsewhere(ws, stale) is True  # the second finds it closed: no error
    with ws.atomic():  # nor for the reviewer's own close, coming late: it finds the task closed and leaves it
        assert reviewing.hold_label_task(ws, closing) is None
    assert tasks.get_task(ws, task_id).status == "closed"
    with pytest.raises(tasks.TaskClosedMeanwhile, match=f"task {task_id} was closed meanwhile"):
        tasks._close(ws, stale, "alice", "done", seconds=0.0)  # the race itself, made by hand


def test_reviewers_asking_at_once_start_at_different_free_tasks():
    """The n-th walk under way starts at the n-th of the most urgent free tasks (so twenty reviewers do not all
    queue to claim the oldest); alone, a reviewer starts at the oldest; a less urgent task stays behind."""
    from types import SimpleNamespace

    rows = [SimpleNamespace(id=i, priority=p) for i, p in ((1, 1), (2, 0), (3, 0), (4, 0), (5, -1))]
    assert [r.id for r in tasks._spread(rows, 0)] == [1, 2, 3, 4, 5]  # one urgent task: everybody tries it first
    rows = rows[1:]
    assert [r.id for r in tasks._spread(rows, 0)] == [2, 3, 4, 5]
    assert [r.id for r in tasks._spread(rows, 1)] == [3, 4, 2, 5]
    assert [r.id for r in tasks._spread(rows, 4)] == [3, 4, 2, 5]  # past the last: round again
    assert tasks._spread([], 3) == []
    with tasks._walking() as first, tasks._walking() as second:
        assert (first, second) == (0, 1)
    with tasks._walking() as again:
        assert again == 0  # both walks ended


def test_a_walk_passes_a_task_another_walk_of_this_process_is_claiming(ws):
    """While one walk of this process claims a task, another passes it without a look or a claim (a claim that
    loses waits for the write lock); once the claim is over, the task is anybody's again."""
    register(ws, "lou", "labeler")
    for text in ("Where is my parcel?", "Refund please"):
        _cand(ws, text)
    first, second = sorted(tasks.open_label_tasks(ws, "alice"), key=int)
    held = tasks.get_task(ws, first)
    statements: list[str] = []
    sa.event.listen(ws.engine, "before_cursor_execute", lambda _c, _cur, text, *_a: statements.append(text))
    with tasks._claiming(ws, held) as ours:
        assert ours
        with tasks._claiming(ws, held) as again:
            assert not again
        statements.clear()
        assert tasks.next_task(ws, "lou").id == second  # the oldest is being claimed: the next one
        looked = [t for t in statements if t.startswith(("SELECT tasks.assignee", "UPDATE tasks"))]
        assert len(looked) == 2  # one look at the second task and its claim: none at the first
        register(ws, "bo", "labeler")
        walk = threading.Thread(target=lambda: statements.append(tasks.next_task(ws, "bo")))
        walk.start()
        walk.join(10)  # the only free one is being claimed: nothing for bo (the walk once read it again and again)
        assert not walk.is_alive() and statements[-1] is None
    assert tasks.next_task(ws, "alice").id == first  # given back: the next walk takes it
