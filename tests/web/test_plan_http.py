"""Plan changes in the web: a labeler proposes a new slice mix, the page shows it per slice (target before →
after, tray share, production share, by hand), the composition owner approves or rejects it with a reason;
role checks, CSRF and escaping on the server, every act audited."""

from __future__ import annotations

import orjson
import sqlalchemy as sa

from evaltray.curate import plan_changes as pc
from evaltray.curate.plan import plan_path
from evaltray.evaluate.live import LIVE_DIR
from evaltray.tray import gate
from tests.helpers import labeled_candidate, register

from .conftest import sign_in

BEFORE = """dimensions:
  feature: [refunds, billing]
grid: [feature]
slices:
  refunds: {owner: alice, target_share: 0.6}
  billing: {owner: alice, target_share: 0.4}
"""
AFTER = BEFORE.replace("0.6", "0.5").replace("0.4", "0.3") + "  shipping: {owner: alice, target_share: 0.2}\n"


def _setup(site) -> None:
    ws = site.ws
    register(ws, "co", "composition_owner")
    from evaltray.web import accounts

    accounts.set_password(ws, "co", "correct horse battery", actor="alice")
    plan_path(ws).write_text(BEFORE)
    for i in range(3):
        labeled_candidate(ws, f"Refund {i}?", slice="refunds")
    labeled_candidate(ws, "Billing?", slice="billing")
    gate.promote(ws, "alice")
    live = ws.root / LIVE_DIR / "l-000000000001"  # the newest score-live: 40 refunds, 40 billing, 20 shipping
    live.mkdir(parents=True)
    slices = {"refunds": {"n": 40}, "billing": {"n": 40}, "shipping": {"n": 20}}
    doc = {"until": "2026-12-01T00:00:00Z", "created_at": "2026-12-01T00:00:00Z", "slices": slices}
    (live / "live.json").write_bytes(orjson.dumps(doc))


def test_a_labeler_proposes_and_the_composition_owner_approves_with_a_reason(client, site):
    _setup(site)
    ws = site.ws
    csrf = sign_in(client, "lab")
    page = client.get("/plan/changes").text
    assert 'id="propose-form"' in page and "target_share: 0.6" in page  # the current plan, to edit
    r = client.post("/plan/changes", data={"plan_text": AFTER, "reason": "<b>shipping</b> is new"})
    assert r.status_code == 403 and "CSRF" in r.text
    r = client.post("/plan/changes", data={"csrf": csrf, "plan_text": AFTER, "reason": "<b>shipping</b> is new"})
    assert r.status_code == 303
    [change] = pc.list_changes(ws)
    assert r.headers["location"] == f"/plan/changes/{change.id}" and change.status == "pending"
    page = client.get(r.headers["location"]).text
    assert "&lt;b&gt;shipping&lt;/b&gt; is new" in page and "<b>shipping</b>" not in page
    # refunds: 60% -> 50%, 3 of 4 rows in the tray, 40 of 100 live conversations
    row = page.split('<tr id="slice-refunds" class="changed">')[1].split("</tr>")[0]
    assert row == "<th>refunds</th><td>60%</td><td><strong>50%</strong></td><td>75%</td><td>40%</td>"
    row = page.split('<tr id="slice-shipping" class="changed">')[1].split("</tr>")[0]
    assert row == "<th>shipping</th><td>–</td><td><strong>20%</strong></td><td>–</td><td>20%</td>"
    assert 'id="decide-form"' not in page and "Waiting for the composition owner" in page
    r = client.post(f"/plan/changes/{change.id}/decide", data={"csrf": csrf, "decision": "approve", "reason": "x"})
    assert (
        r.status_code == 403 and "approving or rejecting a plan change needs one of: admin, composition_owner" in r.text
    )
    assert plan_path(ws).read_text() == BEFORE
    client.cookies.clear()
    csrf = sign_in(client, "co")
    assert 'id="approve"' in client.get(f"/plan/changes/{change.id}").text
    twin = client.get(f"/api/plan/changes/{change.id}").json()
    assert [(s["slice"], s["production"]) for s in twin["diff"]["slices"]] == [
        ("billing", 0.4),
        ("refunds", 0.4),
        ("shipping", 0.2),
    ]
    r = client.post(f"/plan/changes/{change.id}/decide", data={"csrf": csrf, "decision": "approve", "reason": ""})
    assert r.status_code == 400 and "say why you approve it" in r.text
    r = client.post(
        f"/plan/changes/{change.id}/decide", data={"csrf": csrf, "decision": "approve", "reason": "matches traffic"}
    )
    assert r.status_code == 303 and plan_path(ws).read_text() == AFTER
    page = client.get(f"/plan/changes/{change.id}").text
    assert "Approved by co" in page and "matches traffic" in page and 'id="decide-form"' not in page
    with ws.tx() as conn:
        q = sa.text("SELECT actor, action FROM audit WHERE action LIKE 'plan.%' ORDER BY id")
        assert [tuple(r) for r in conn.execute(q)] == [("lab", "plan.propose"), ("co", "plan.approve")]


def test_a_rejected_change_and_a_stale_one_leave_the_plan_and_a_viewer_only_reads(client, site):
    _setup(site)
    ws = site.ws
    first = pc.propose(ws, "lab", AFTER, "shipping")
    second = pc.propose(ws, "lab", BEFORE.replace("0.6", "0.55").replace("0.4", "0.45"), "nudge")
    csrf = sign_in(client, "co")
    r = client.post(f"/plan/changes/{second.id}/decide", data={"csrf": csrf, "decision": "reject", "reason": "no"})
    assert r.status_code == 303 and pc.get_change(ws, second.id).status == "rejected"
    plan_path(ws).write_text(BEFORE + "# edited by hand\n")
    page = client.get(f"/plan/changes/{first.id}").text
    assert 'id="stale"' in page and 'id="approve"' not in page and 'id="reject"' in page
    r = client.post(f"/plan/changes/{first.id}/decide", data={"csrf": csrf, "decision": "approve", "reason": "ok"})
    assert r.status_code == 400 and "plan.yaml changed since lab proposed it" in r.text
    assert plan_path(ws).read_text().endswith("# edited by hand\n")
    client.cookies.clear()
    csrf = sign_in(client, "vic")
    assert 'id="propose-form"' not in client.get("/plan/changes").text
    r = client.post("/plan/changes", data={"csrf": csrf, "plan_text": AFTER, "reason": "x"})
    assert r.status_code == 403
    assert [c["id"] for c in client.get("/api/plan/changes").json()] == [second.id, first.id]
