"""The web queue on typed tasks (HTTP): the next task of any kind, its page, its outcomes (done, reject,
escalate to the adjudicator, "this is a bug"), the label task closed by the review form, and the blind rule
an admin turns off per queue."""

from __future__ import annotations

import sqlalchemy as sa

from evaltray.tray import gate
from evaltray.tray import tasks as tq
from evaltray.web import reviewing
from tests.helpers import labeled_candidate

from .conftest import OUTPUT, sign_in


def _task_id(page: str) -> str:
    start = page.index('action="/tasks/') + len('action="/tasks/')
    return page[start : page.index("/resolve", start)]


def _judge_check(ws, priority: int = 5) -> str:
    payload = {
        "run_id": "r-1",
        "case_id": "c-7",
        "output": "Your refund <b>arrives</b> in 30 days.",
        "verdicts": [{"verdict": "pass", "critique": "Polite and on topic."}],
    }
    return tq.open_task(
        ws,
        "judge_check",
        "r-1/c-7",
        reason="pass and fail across trials",
        actor="alice",
        payload=payload,
        priority=priority,
    )


def test_the_queue_hands_out_label_tasks_and_the_review_closes_them_with_the_time(client, site):
    csrf = sign_in(client, "lab")
    assert client.get("/queue").headers["location"] == f"/queue/{site.cands[0]}"
    tasks = tq.list_tasks(site.ws, kind="label", status="open")
    assert sorted(t.ref for t in tasks) == sorted(site.cands)  # the pool's candidates, in the one queue
    first = reviewing.label_task(site.ws, site.cands[0])
    assert first is not None and first.assignee == "lab"
    data = {"csrf": csrf, "reference": "Five to seven days."}
    client.post(f"/queue/{site.cands[0]}/expected", data=data)
    assert client.post(f"/queue/{site.cands[0]}/review", data={**data, "verdict": "fail"}).status_code == 303
    done = tq.get_task(site.ws, first.id)
    assert (done.status, done.outcome, done.closed_by) == ("closed", "done", "lab")
    assert done.seconds == reviewing.timings(site.ws, site.cands[0])[0]["seconds"]
    client.post(f"/queue/{site.cands[1]}/reject", data={"csrf": csrf, "reason": "duplicate"})
    rejected = tq.list_tasks(site.ws, kind="label", ref=site.cands[1])[0]
    assert (rejected.outcome, rejected.outcome_reason) == ("reject", "duplicate")
    assert client.get("/queue").headers["location"] == f"/queue/{site.cands[2]}"


def test_escalate_sends_a_label_task_to_the_adjudicator_who_closes_it_by_labeling(client, site):
    csrf = sign_in(client, "lab")
    client.get("/queue")
    page = client.get(f"/queue/{site.cands[0]}").text
    assert 'id="escalate-form"' in page and 'id="bug-form"' in page
    tid = _task_id(page)
    r = client.post(f"/tasks/{tid}/resolve", data={"csrf": csrf, "outcome": "escalate", "reason": "policy unclear"})
    assert (r.status_code, r.headers["location"]) == (303, "/queue")
    task = tq.get_task(site.ws, tid)
    assert (task.status, task.escalated_by, task.outcome_reason, task.assignee) == (
        "escalated",
        "lab",
        "policy unclear",
        None,
    )
    assert client.get("/queue").headers["location"] == f"/queue/{site.cands[1]}"  # not hers any more
    client.cookies.clear()
    csrf = sign_in(client, "adj")
    assert client.get("/queue").headers["location"] == f"/queue/{site.cands[0]}"  # escalated ones first
    assert 'id="escalate-form"' not in client.get(f"/queue/{site.cands[0]}").text
    data = {"csrf": csrf, "reference": "Seven business days at most."}
    client.post(f"/queue/{site.cands[0]}/expected", data=data)
    assert client.post(f"/queue/{site.cands[0]}/review", data=data).status_code == 303
    closed = tq.get_task(site.ws, tid)
    assert (closed.status, closed.outcome, closed.closed_by) == ("closed", "done", "adj")


def test_a_labeler_cannot_close_an_escalated_task_by_labeling_it(client, site):
    csrf = sign_in(client, "lab")
    client.get("/queue")
    tid = _task_id(client.get(f"/queue/{site.cands[0]}").text)
    client.post(f"/tasks/{tid}/resolve", data={"csrf": csrf, "outcome": "escalate", "reason": "hard"})
    client.cookies.clear()
    csrf = sign_in(client, "lab2")
    data = {"csrf": csrf, "reference": "Five days."}
    client.post(f"/queue/{site.cands[0]}/expected", data=data)
    client.post(f"/queue/{site.cands[0]}/review", data=data)
    assert tq.get_task(site.ws, tid).status == "escalated"  # still the adjudicator's to decide
    r = client.post(f"/tasks/{tid}/resolve", data={"csrf": csrf, "outcome": "bug", "critique": "x"})
    assert r.status_code == 403 and "closing an escalated label task needs one of: adjudicator, admin" in r.text


def test_a_judge_check_shows_the_output_and_the_judges_verdict_and_needs_a_pass_or_fail(client, site):
    tid = _judge_check(site.ws)
    csrf = sign_in(client, "lab")
    r = client.get("/queue")
    assert r.headers["location"] == f"/tasks/{tid}"
    page = client.get(f"/tasks/{tid}").text
    assert "Your refund &lt;b&gt;arrives&lt;/b&gt; in 30 days." in page  # escaped, as all trace text
    assert '<strong>pass</strong> — <span class="text">Polite and on topic.</span>' in page
    assert "pass and fail across trials" in page
    r = client.post(f"/tasks/{tid}/resolve", data={"csrf": csrf, "outcome": "done"})
    assert r.status_code == 400 and "answer pass or fail on the output" in r.text
    assert tq.get_task(site.ws, tid).status == "open"
    data = {"csrf": csrf, "outcome": "done", "verdict": "fail", "critique": "Policy says 7 days."}
    assert client.post(f"/tasks/{tid}/resolve", data=data).status_code == 303
    task = tq.get_task(site.ws, tid)
    assert (task.outcome, task.verdict, task.critique, task.closed_by) == ("done", "fail", "Policy says 7 days.", "lab")


def test_a_failing_case_shows_its_reasons_and_this_is_a_bug_reaches_the_bug_list(client, site):
    payload = {"output": "I cannot help.", "reasons": ["refused a refund question", "assertion: mentions 7 days"]}
    tid = tq.open_task(site.ws, "failing_case", "r-2/c-9", reason="failed", actor="alice", payload=payload, priority=3)
    csrf = sign_in(client, "lab")
    assert client.get("/queue").headers["location"] == f"/tasks/{tid}"
    page = client.get(f"/tasks/{tid}").text
    assert "<li>refused a refund question</li>" in page and "<li>assertion: mentions 7 days</li>" in page
    data = {"csrf": csrf, "outcome": "bug", "critique": "the refund tool is never called", "tags": "no_lookup, refusal"}
    assert client.post(f"/tasks/{tid}/resolve", data=data).status_code == 303
    [bug] = tq.bug_list(site.ws)
    assert (bug["task_id"], bug["run_id"], bug["case_id"], bug["critique"], bug["tags"], bug["who"]) == (
        tid,
        "r-2",
        "c-9",
        "the refund tool is never called",
        ["no_lookup", "refusal"],
        "lab",
    )


def test_reject_needs_a_reason_and_a_viewer_cannot_close_a_task(client, site):
    tid = _judge_check(site.ws)
    csrf = sign_in(client, "lab")
    r = client.post(f"/tasks/{tid}/resolve", data={"csrf": csrf, "outcome": "reject", "reason": ""})
    assert r.status_code == 400 and f"task {tid}: rejecting needs a reason" in r.text
    client.cookies.clear()
    csrf = sign_in(client, "vic")
    assert 'id="done-form"' not in client.get(f"/tasks/{tid}").text
    r = client.post(f"/tasks/{tid}/resolve", data={"csrf": csrf, "outcome": "reject", "reason": "dup"})
    assert r.status_code == 403
    assert tq.get_task(site.ws, tid).status == "open"


def test_revalidation_shows_the_golden_row_and_re_signing_is_sent_to_the_cli(client, site):
    labeled_candidate(site.ws, "How long do refunds take?", reference="Five days.")
    case_id = gate.promote(site.ws, "alice").promoted[0].case_id
    tid = tq.open_task(site.ws, "revalidate", case_id, reason="guide v2", actor="alice", priority=2)
    csrf = sign_in(client, "adj")
    assert client.get("/queue").headers["location"] == f"/tasks/{tid}"
    page = client.get(f"/tasks/{tid}").text
    assert "How long do refunds take?" in page and "Five days." in page
    assert f"evaltray -u adj tasks close {tid} --outcome done" in page
    r = client.post(f"/tasks/{tid}/resolve", data={"csrf": csrf, "outcome": "done"})
    assert (
        r.status_code == 409 and f"run `evaltray -u adj tasks close {tid} --outcome done` where your key is" in r.text
    )
    assert tq.awaiting_revalidation(site.ws) == [case_id]  # still a candidate, not re-signed


def test_an_admin_turns_the_label_queues_blind_rule_off_and_it_is_audited(client, site):
    assert reviewing.queue_blind(site.ws, "label") is True  # the workspace's write_expected_first
    csrf = sign_in(client, "lab")
    assert OUTPUT not in client.get(f"/queue/{site.cands[0]}").text
    r = client.post("/queues/label/blind", data={"csrf": csrf, "blind": "off"})
    assert r.status_code == 403 and "blind rule on or off needs one of: admin" in r.text
    client.cookies.clear()
    csrf = sign_in(client, "alice")
    assert client.post("/queues/label/blind", data={"csrf": csrf, "blind": "off"}).status_code == 303
    assert reviewing.queue_blind(site.ws, "label") is False
    assert "output shown first" in client.get("/queues").text
    r = client.post("/queues/judge_check/blind", data={"csrf": csrf, "blind": "on"})
    assert r.status_code == 400 and "only label can be blind" in r.text
    client.cookies.clear()
    sign_in(client, "lab")
    assert OUTPUT in client.get(f"/queue/{site.cands[0]}").text  # shown before the expected behaviour
    audit = site.ws.t["audit"]
    with site.ws.tx() as conn:
        rows = conn.execute(sa.select(audit.c.actor, audit.c.object_id).where(audit.c.action == "queue.blind")).all()
    assert [tuple(r) for r in rows] == [("alice", "label")]
