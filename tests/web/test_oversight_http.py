"""The adjudicator's and the admin's forms: start a spot-check sample, deactivate a user choosing who inherits
their rows and slices; role checks and CSRF on the server, every act audited."""

from __future__ import annotations

import sqlalchemy as sa

from evaltray.curate.plan import Plan, load_plan, plan_path
from evaltray.tray import gate
from evaltray.tray import tasks as tq
from tests.helpers import labeled_candidate

from .conftest import sign_in


def _golden(ws, n: int) -> list[str]:
    for i in range(n):
        labeled_candidate(ws, f"Golden question {i}?", user="alice")
    return [p.case_id for p in gate.promote(ws, "alice").promoted]


def _audited(ws, action: str) -> list[tuple[str, str]]:
    with ws.tx() as conn:
        q = sa.text("SELECT actor, object_id FROM audit WHERE action = :a ORDER BY id")
        return [(r.actor, r.object_id) for r in conn.execute(q, {"a": action})]


def test_an_adjudicator_starts_a_spot_check_sample_from_the_agreement_page(client, site):
    rows = _golden(site.ws, 4)
    csrf = sign_in(client, "adj")
    page = client.get("/agreement").text
    assert 'id="spotcheck-form"' in page
    r = client.post("/agreement/spotcheck", data={"sample": "3", "seed": "7"})
    assert r.status_code == 403 and "CSRF" in r.text  # no token: refused, nothing opened
    assert tq.list_tasks(site.ws, kind="spotcheck") == []
    r = client.post("/agreement/spotcheck", data={"csrf": csrf, "sample": "3", "seed": "7"})
    assert r.status_code == 303 and r.headers["location"] == "/agreement?opened=3"
    opened = tq.list_tasks(site.ws, kind="spotcheck", status="open")
    assert len(opened) == 3 and {t.ref for t in opened} <= set(rows)
    assert {t.opened_by for t in opened} == {"adj"}
    assert "3 spot-check task(s) opened" in client.get(r.headers["location"]).text
    # the rest of the sample: only the one row without an open spot-check is left
    r = client.post("/agreement/spotcheck", data={"csrf": csrf, "sample": "3"})
    assert r.headers["location"] == "/agreement?opened=1"
    assert len(tq.list_tasks(site.ws, kind="spotcheck", status="open")) == 4
    r = client.post("/agreement/spotcheck", data={"csrf": csrf, "sample": "0"})
    assert r.status_code == 422
    assert client.get("/queue").headers["location"].startswith("/tasks/")  # the adjudicator's queue holds them
    assert [a for a, ref in _audited(site.ws, "task.open") if ref in rows] == ["adj"] * 4


def test_a_labeler_gets_no_spot_check_form_and_is_refused_on_the_server(client, site):
    _golden(site.ws, 2)
    csrf = sign_in(client, "lab")
    assert 'id="spotcheck-form"' not in client.get("/agreement").text
    r = client.post("/agreement/spotcheck", data={"csrf": csrf, "sample": "2"})
    assert r.status_code == 403 and "opening spot-checks needs one of: adjudicator, admin" in r.text
    assert tq.list_tasks(site.ws, kind="spotcheck") == []


def test_an_admin_deactivates_a_user_choosing_the_heirs_of_rows_and_slices(client, site):
    ws = site.ws
    dims = {"feature": ["refunds", "billing"]}
    slices = {"refunds": {"owner": "lab"}, "billing": {"owner": "adj"}}
    Plan(dimensions=dims, grid=["feature"], slices=slices).save(plan_path(ws))
    tq.open_label_tasks(ws, "alice")
    held = tq.next_task(ws, "lab", kinds=["label"])
    assert held is not None
    csrf = sign_in(client, "alice")
    page = client.get("/users").text
    assert 'id="deactivate-lab"' in page and 'id="deactivate-alice"' not in page  # never oneself
    assert '<tr id="user-lab"><td>lab</td><td>labeler</td><td></td><td>refunds</td>' in page
    form = {"csrf": csrf, "heir": "lab2", "slice_heir": "adj", "dry_run": "1"}
    r = client.post("/users/lab/deactivate", data=form)
    assert r.status_code == 200
    assert "Dry run: nothing changed." in r.text and "Would hand 1 task(s) and 0 golden row(s) of lab to lab2" in r.text
    assert tq.get_task(ws, held.id).assignee == "lab" and load_plan(ws).slices["refunds"]["owner"] == "lab"
    r = client.post("/users/lab/deactivate", data={**form, "dry_run": ""})
    assert r.status_code == 200 and "lab is no longer a user." in r.text
    assert "slice(s) refunds to adj" in r.text
    assert tq.get_task(ws, held.id).assignee == "lab2"
    assert load_plan(ws).slices["refunds"]["owner"] == "adj"
    assert "lab" not in {u["name"] for u in ws.users()}
    assert _audited(ws, "user.remove") == [("alice", "lab")]
    assert _audited(ws, "plan.slice_owner") == [("alice", "lab")]
    assert _audited(ws, "task.reassign")[-1] == ("alice", held.ref)


def test_deactivation_is_an_admins_act_and_bad_heirs_are_refused_before_anything_changes(client, site):
    ws = site.ws
    ws.settings.label_owner = None  # a row is owned by the adjudicator who signed it
    labeled_candidate(ws, "Owned row", user="adj")
    [made] = gate.promote(ws, "alice").promoted
    assert gate.case_registry(ws)[0]["id"] == made.case_id
    csrf = sign_in(client, "adj")
    assert client.get("/users").status_code == 403
    r = client.post("/users/lab/deactivate", data={"csrf": csrf, "heir": "lab2"})
    assert r.status_code == 403 and "deactivating a user needs one of: admin" in r.text
    client.cookies.clear()
    csrf = sign_in(client, "alice")
    r = client.post("/users/adj/deactivate", data={"csrf": csrf, "heir": "lab"})
    assert r.status_code == 400 and "name an adjudicator or admin" in r.text  # a labeler cannot re-sign rows
    r = client.post("/users/lab/deactivate", data={"csrf": csrf, "heir": "nobody"})
    assert r.status_code == 403 and "nobody" in r.text  # not a user of this workspace
    r = client.post("/users/alice/deactivate", data={"csrf": csrf, "heir": "adj"})
    assert r.status_code == 403 and "cannot deactivate themselves" in r.text
    assert {u["name"] for u in ws.users()} >= {"adj", "lab", "alice"}
    assert _audited(ws, "user.remove") == []
    data = client.get("/api/users").json()
    assert {u["name"]: u["role"] for u in data}["adj"] == "adjudicator"
