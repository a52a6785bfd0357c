"""Overlap, adjudication, control items, spot-checks and the agreement page over HTTP."""

from __future__ import annotations

from evaltray.tray import candidates as pool
from evaltray.tray import gate, oversight
from evaltray.tray import review as rev
from evaltray.tray import tasks as tq
from tests.helpers import labeled_candidate

from .conftest import sign_in


def _label(client, cid, csrf, verdict, reference):
    data = {"csrf": csrf, "reference": reference}
    client.post(f"/queue/{cid}/expected", data=data)
    assert client.post(f"/queue/{cid}/review", data={**data, "verdict": verdict}).status_code == 303


def _first_label_of_one_overlap_item(client, site, user: str, reference: str) -> tuple[str, str]:
    """Overlap on every item, all candidates but the first rejected; ``user`` signs in and labels it "pass".
    Returns the candidate and the user's CSRF token."""
    site.ws.settings.overlap = 1.0
    first, *others = site.cands
    for cid in others:
        pool.reject(site.ws, cid, "duplicate", "alice")
    csrf = sign_in(client, user)
    assert client.get("/queue").headers["location"] == f"/queue/{first}"
    _label(client, first, csrf, "pass", reference)
    return first, csrf


def test_a_second_label_is_blind_and_a_disagreement_is_decided_on_the_adjudicate_page(client, site):
    first, csrf = _first_label_of_one_overlap_item(client, site, "lab", "Five to seven days; offer the status.")
    [second] = tq.list_tasks(site.ws, kind="overlap", status="open")
    assert client.get("/queue").status_code == 200  # nothing for lab: not her own second label
    client.cookies.clear()
    csrf = sign_in(client, "lab2")
    assert client.get("/queue").headers["location"] == f"/queue/{first}"
    page = client.get(f"/queue/{first}").text
    assert "Five to seven days; offer the status." not in page  # blind to the first label
    _label(client, first, csrf, "fail", "Look up the order first.")
    assert tq.get_task(site.ws, second.id).status == "closed"
    [adj] = tq.list_tasks(site.ws, kind="adjudicate", status="open")
    client.cookies.clear()
    csrf = sign_in(client, "adj")
    assert client.get("/queue").headers["location"] == f"/tasks/{adj.id}"
    page = client.get(f"/tasks/{adj.id}").text
    assert "Five to seven days; offer the status." in page and "Look up the order first." in page
    assert "lab said <strong" in page and "lab2 said <strong" in page
    r = client.post(f"/tasks/{adj.id}/resolve", data={"csrf": csrf, "outcome": "done", "verdict": "fail"})
    assert r.status_code == 400 and "needs a verdict (pass or fail) and a reason" in r.text
    r = client.post(
        f"/tasks/{adj.id}/resolve",
        data={"csrf": csrf, "outcome": "done", "verdict": "fail", "reason": "the guide says look it up"},
    )
    assert r.status_code == 303
    final = rev.latest_review(site.ws, first)
    assert (final.reviewer, final.verdict, final.expected["reference"]) == ("adj", "fail", "Look up the order first.")
    data = client.get("/api/agreement").json()
    assert (data["overall"]["n"], data["overall"]["agree"], data["decisions"]) == (1, 0, 1)
    page = client.get("/agreement").text
    assert "over 1 item(s) labeled twice" in page and "lab / lab2" in page


def test_a_labeler_cannot_decide_and_a_control_item_shows_its_row_blind(client, site):
    labeled_candidate(site.ws, "How long do refunds take?", reference="Five days.", recorded_output="Ten days.")
    case_id = gate.promote(site.ws, "alice").promoted[0].case_id
    site.ws.settings.control_rate = 1.0
    csrf = sign_in(client, "lab")
    where = client.get("/queue").headers["location"]
    [control] = tq.list_tasks(site.ws, kind="control")
    assert (where, control.ref, control.assignee) == (f"/tasks/{control.id}", f"{case_id}/lab", "lab")
    page = client.get(where).text
    assert "How long do refunds take?" in page and "Ten days." in page and "Five days." not in page
    r = client.post(f"/tasks/{control.id}/resolve", data={"csrf": csrf, "outcome": "done"})
    assert r.status_code == 400 and "answer pass or fail" in r.text
    client.post(f"/tasks/{control.id}/resolve", data={"csrf": csrf, "outcome": "done", "verdict": "fail"})
    [answer] = oversight.control_results(site.ws)
    assert (answer.who, answer.verdict, answer.known, answer.agrees) == ("lab", "fail", "pass", False)
    spot = oversight.open_spotchecks(site.ws, "alice", 1)[0]
    page = client.get(f"/tasks/{spot}").text
    assert 'id="done-form"' not in page  # the adjudicator's, not a labeler's
    r = client.post(f"/tasks/{spot}/resolve", data={"csrf": csrf, "outcome": "done", "verdict": "pass"})
    assert r.status_code == 403


def test_publishing_a_guide_version_sends_the_rows_it_changes_back(client, site):
    labeled_candidate(site.ws, "How long do refunds take?", reference="Five days.", slice="refunds")
    labeled_candidate(site.ws, "Where is my parcel?", reference="Track it.", slice="shipping")
    promoted = {p.case_id for p in gate.promote(site.ws, "alice").promoted}
    csrf = sign_in(client, "adj")
    r = client.post("/guide", data={"csrf": csrf, "version": "2", "body": "Refunds: 7 days.", "slices": "refunds"})
    assert r.headers["location"] == "/guide?version=2&sent=1"
    [task] = tq.list_tasks(site.ws, kind="revalidate")
    assert task.ref in promoted and task.reason == "guide v2 changes refunds"
    assert "1 golden row(s) sent back" in client.get(r.headers["location"]).text


def test_the_product_owner_reads_the_release_row_by_row(client, site):
    from evaltray.tray.release import create_release

    labeled_candidate(site.ws, "How long do refunds take?", reference="Five days.")
    labeled_candidate(site.ws, "Where is my parcel?", reference="Track it.")
    gate.promote(site.ws, "alice")
    create_release(site.ws, "1.0.0", "alice")
    csrf = sign_in(client, "vic")  # a viewer reads and marks
    page = client.get("/readthrough").text
    assert "You have read <strong>0</strong> of 2 rows." in page
    first = page.split('id="row-id">')[1].split("<")[0]
    r = client.post(f"/readthrough/{first}", data={"csrf": csrf, "release": "1.0.0"})
    assert r.status_code == 303
    page = client.get("/readthrough").text
    assert "You have read <strong>1</strong> of 2 rows." in page and f'id="row-id">{first}<' not in page
    assert client.get("/api/readthrough").json() == [{"reader": "vic", "release": "1.0.0", "read": 1, "total": 2}]


def test_an_adjudicator_who_labeled_an_item_is_refused_on_the_server_and_another_decides(client, site):
    first, csrf = _first_label_of_one_overlap_item(client, site, "adj", "Five to seven days.")
    client.cookies.clear()
    csrf_lab = sign_in(client, "lab")
    _label(client, first, csrf_lab, "fail", "Look up the order first.")
    [adj] = tq.list_tasks(site.ws, kind="adjudicate", status="open")
    client.cookies.clear()
    csrf = sign_in(client, "adj")
    assert client.get("/queue").status_code == 200  # the queue does not offer adj a decision on her own label
    page = client.get(f"/tasks/{adj.id}").text
    assert "One of the two labels is yours" in page and 'id="done-form"' not in page
    # a hand-made post is refused all the same, by the server
    r = client.post(
        f"/tasks/{adj.id}/resolve", data={"csrf": csrf, "outcome": "done", "verdict": "pass", "reason": "mine"}
    )
    assert r.status_code == 403
    assert f"adj labeled candidate {first} and may not adjudicate it" in r.text
    assert "back in the queue for another adjudicator (alice)" in r.text  # alice is the admin
    assert tq.get_task(site.ws, adj.id).status == "open"
    client.cookies.clear()
    csrf = sign_in(client, "alice")
    assert client.get("/queue").headers["location"] == f"/tasks/{adj.id}"
    r = client.post(
        f"/tasks/{adj.id}/resolve", data={"csrf": csrf, "outcome": "done", "verdict": "fail", "reason": "guide 2.1"}
    )
    assert r.status_code == 303
    assert rev.latest_review(site.ws, first).reviewer == "alice"
