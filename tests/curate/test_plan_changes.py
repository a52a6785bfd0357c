"""A change of the plan's slice mix waits for the composition owner: proposed, shown as a per-slice diff (target
before → after, tray share, production share, worked out by hand), approved or rejected with a reason, audited;
a change made against an older plan is refused."""

from __future__ import annotations

import pytest
import sqlalchemy as sa

from evaltray.core.errors import NotFound, PermissionDenied
from evaltray.curate import plan_changes as pc
from evaltray.curate.plan import PlanError, load_plan, plan_path
from evaltray.tray import gate
from tests.helpers import labeled_candidate, register

BEFORE = """# our plan
dimensions:
  feature: [refunds, billing]
grid: [feature]
target_per_cell: 2
slices:
  refunds: {owner: alice, target_share: 0.6}
  billing: {owner: alice, target_share: 0.4}
"""
AFTER = BEFORE.replace("target_share: 0.6", "target_share: 0.5").replace("target_share: 0.4", "target_share: 0.3")
AFTER += "  shipping: {owner: alice, target_share: 0.2}\n"


@pytest.fixture
def owners(ws):
    register(ws, "ana", "labeler")
    register(ws, "co", "composition_owner")
    register(ws, "adj", "adjudicator")
    plan_path(ws).write_text(BEFORE)
    for i in range(3):
        labeled_candidate(ws, f"Refund question {i}?", slice="refunds")
    labeled_candidate(ws, "Billed twice?", slice="billing")
    gate.promote(ws, "alice")
    return ws


def _audit(ws, prefix):
    with ws.tx() as conn:
        q = sa.text("SELECT actor, action, object_id FROM audit WHERE action LIKE :p ORDER BY id")
        return [tuple(r) for r in conn.execute(q, {"p": prefix + "%"})]


def test_a_proposed_change_is_pending_and_its_diff_shows_each_slice(owners):
    ws = owners
    change = pc.propose(ws, "ana", AFTER, "shipping questions are 20% of traffic now")
    assert (change.status, change.proposed_by) == ("pending", "ana")
    assert plan_path(ws).read_text() == BEFORE  # nothing is written until approved
    diff = pc.plan_diff(ws, change, traffic={"refunds": 50, "billing": 30, "shipping": 20})
    rows = {r.slice: (r.before, r.after, r.tray, r.production, r.changed) for r in diff.slices}
    # tray: 3 refunds, 1 billing of 4 rows; traffic: 50/30/20 of 100
    assert rows == {
        "refunds": (0.6, 0.5, 0.75, 0.5, True),
        "billing": (0.4, 0.3, 0.25, 0.3, True),
        "shipping": (None, 0.2, None, 0.2, True),
    }
    assert diff.other == {"slices.shipping": (None, {"owner": "alice"})} and not diff.stale
    unknown = pc.plan_diff(ws, change)  # no score-live yet: production share not known, never 0
    assert {r.slice: r.production for r in unknown.slices} == {"refunds": None, "billing": None, "shipping": None}
    assert [c.id for c in pc.list_changes(ws, "pending")] == [change.id]


def test_the_composition_owner_approves_with_a_reason_and_the_plan_is_written(owners):
    ws = owners
    change = pc.propose(ws, "ana", AFTER, "more shipping")
    with pytest.raises(PermissionDenied, match="approving or rejecting a plan change needs one of"):
        pc.decide(ws, "adj", change.id, True, "looks right")
    with pytest.raises(pc.PlanChangeError, match=f"plan change {change.id}: say why you approve it"):
        pc.decide(ws, "co", change.id, True, "  ")
    done = pc.decide(ws, "co", change.id, True, "matches the traffic")
    assert (done.status, done.decided_by, done.decision_reason) == ("approved", "co", "matches the traffic")
    assert plan_path(ws).read_text() == AFTER
    assert load_plan(ws).slices["shipping"]["target_share"] == 0.2
    with pytest.raises(pc.PlanChangeError, match="was already approved by co"):
        pc.decide(ws, "alice", change.id, False, "too late")
    assert _audit(ws, "plan.") == [
        ("ana", "plan.propose", str(change.id)),
        ("co", "plan.approve", str(change.id)),
    ]


def test_a_rejected_change_leaves_the_plan_and_a_stale_change_is_refused(owners):
    ws = owners
    first = pc.propose(ws, "ana", AFTER, "more shipping")
    second = pc.propose(ws, "adj", BEFORE.replace("target_per_cell: 2", "target_per_cell: 3"), "three per cell")
    rejected = pc.decide(ws, "alice", second.id, False, "not this quarter")
    assert (rejected.status, rejected.decision_reason) == ("rejected", "not this quarter")
    assert plan_path(ws).read_text() == BEFORE
    plan_path(ws).write_text(BEFORE + "# edited by hand meanwhile\n")
    assert pc.plan_diff(ws, first).stale
    with pytest.raises(pc.StalePlan, match="plan.yaml changed since ana proposed it"):
        pc.decide(ws, "co", first.id, True, "ok")
    assert pc.get_change(ws, first.id).status == "pending"
    assert plan_path(ws).read_text().endswith("# edited by hand meanwhile\n")


def test_bad_proposals_are_refused_with_what_is_wrong(owners):
    ws = owners
    with pytest.raises(PermissionDenied):
        register(ws, "vic", "viewer")
        pc.propose(ws, "vic", AFTER, "why not")
    with pytest.raises(pc.PlanChangeError, match="needs a reason"):
        pc.propose(ws, "ana", AFTER, "")
    with pytest.raises(pc.PlanChangeError, match="nothing to change"):
        pc.propose(ws, "ana", BEFORE, "same")
    with pytest.raises(PlanError, match="the proposed plan: not valid YAML"):
        pc.propose(ws, "ana", "slices: [", "broken")
    too_much = AFTER.replace("target_share: 0.2", "target_share: 0.3")
    with pytest.raises(PlanError, match="target_share values add up to more than 1.0"):
        pc.propose(ws, "ana", too_much, "over")
    with pytest.raises(PlanError, match=r"slices.refunds.target_share must be a share between 0 and 1, got 'x'"):
        pc.propose(ws, "ana", BEFORE.replace("target_share: 0.6", "target_share: x"), "typo")
    with pytest.raises(NotFound, match="no plan change 99"):
        pc.get_change(ws, 99)
    assert pc.list_changes(ws) == [] and _audit(ws, "plan.") == []


def test_the_cli_proposes_shows_and_approves_a_change(owners, monkeypatch, tmp_path):
    import json

    from tests.cli.runner import run

    ws = owners
    monkeypatch.chdir(ws.root)
    new = tmp_path / "new-plan.yaml"
    new.write_text(AFTER)
    made = json.loads(run("-u", "ana", "plan", "propose", str(new), "--reason", "more shipping", "--json").stdout)
    assert made["status"] == "pending" and made["stale"] is False
    assert {r["slice"]: (r["before"], r["after"]) for r in made["slices"]}["refunds"] == (0.6, 0.5)
    shown = run("plan", "changes", str(made["id"])).stdout
    assert f"plan change {made['id']} by ana (pending): more shipping" in shown
    assert "60% -> 50%" in shown and "75%" in shown  # refunds: target before -> after, tray now
    listed = json.loads(run("plan", "changes", "--status", "pending", "--json").stdout)
    assert [c["id"] for c in listed] == [made["id"]]
    refused = run("-u", "adj", "plan", "approve", str(made["id"]), "--reason", "ok", ok=False)
    assert refused.exit_code == 1 and "approving or rejecting a plan change needs one of" in refused.stderr
    said = run("-u", "co", "plan", "approve", str(made["id"]), "--reason", "matches traffic").stdout
    assert said.strip() == f"plan change {made['id']} approved; plan.yaml written"
    assert plan_path(ws).read_text() == AFTER
    again = run("-u", "co", "plan", "reject", str(made["id"]), "--reason", "no", ok=False)
    assert again.exit_code == 1 and "was already approved by co" in again.stderr
