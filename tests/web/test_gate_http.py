"""Gate sign-off and retirement in the web: a keyed user acts on a team server that holds no key of theirs
(the session proves who they are); promoted rows are signed with the server's registered key and the audit log
names the person; retiring needs the composition owner and a reason."""

from __future__ import annotations

import orjson
import pytest
import sqlalchemy as sa
from fastapi.testclient import TestClient

from evaltray.core.errors import PermissionDenied
from evaltray.core.records import SIGN_ROLES
from evaltray.core.store import proved
from evaltray.tray import gate
from evaltray.tray import review as rev
from evaltray.web import accounts, create_app
from tests.helpers import labeled_candidate, register

from .conftest import sign_in


@pytest.fixture
def team(site, tmp_path):
    """A team server: it holds its own key (user ``websrv``) and not adj's, who signed two candidates off."""
    register(site.ws, "websrv", "composition_owner")
    signed = [labeled_candidate(site.ws, f"Can I return item {n}?", user="adj") for n in (1, 2)]
    server_signer = site.ws.signer("websrv")
    (tmp_path / "config" / "keys" / "adj.key").unlink()
    with TestClient(create_app(site.ws, server_signer), base_url="http://127.0.0.1", follow_redirects=False) as c:
        yield c, signed


def _audit(ws, action):
    audit = ws.t["audit"]
    with ws.tx() as conn:
        q = sa.select(audit.c.actor, audit.c.object_id, audit.c.detail).where(audit.c.action == action)
        return [(r.actor, r.object_id, orjson.loads(r.detail)) for r in conn.execute(q.order_by(audit.c.id))]


def test_a_web_promotion_is_signed_by_the_servers_key_and_audited_as_the_person(team, site):
    client, signed = team
    csrf = sign_in(client, "adj")
    r = client.post("/tray/promote", data={"csrf": csrf, "ids": signed[0]})
    assert r.status_code == 200 and "Promoted (1)" in r.text
    [reg] = [c for c in gate.case_registry(site.ws) if c["candidate_id"] == signed[0]]
    assert reg["promoted_by"] == "websrv"
    assert [(a, o, d["signed_as"]) for a, o, d in _audit(site.ws, "case.new")] == [("adj", reg["id"], "websrv")]
    assert gate.validate(site.ws) == []  # the promotion signature verifies against websrv's registered key
    assert [c["candidate_id"] for c in gate.case_registry(site.ws)] == [signed[0]]  # only the one asked for


def test_a_dry_run_promotion_through_a_token_answers_json_and_writes_nothing(team, site):
    client, signed = team
    _, secret = accounts.create_token(site.ws, "adj", "alice")
    r = client.post("/tray/promote", data={"dry_run": "1"}, headers={"Authorization": f"Bearer {secret}"})
    assert r.status_code == 200
    body = r.json()
    assert sorted(p["candidate_id"] for p in body["promoted"]) == sorted(signed)
    assert body["awaiting_review"] == 3  # the site's three candidates have no review
    assert gate.case_registry(site.ws) == []


def test_without_a_server_key_promotion_is_sent_to_the_cli(client, site):
    labeled_candidate(site.ws, "Can I return it?", user="adj")
    csrf = sign_in(client, "adj")
    r = client.post("/tray/promote", data={"csrf": csrf})
    assert r.status_code == 409
    assert "this server has no signing key of its own" in r.text and "evaltray -u adj promote" in r.text
    assert gate.case_registry(site.ws) == []


def test_a_labeler_is_refused_promotion_and_retirement(team, site):
    client, signed = team
    csrf = sign_in(client, "lab")
    r = client.post("/tray/promote", data={"csrf": csrf})
    assert r.status_code == 403 and "promoting needs one of: adjudicator, admin, composition_owner" in r.text
    r = client.post("/tray/retire", data={"csrf": csrf, "case_id": "x", "reason": "stale"})
    assert r.status_code == 403 and "retiring a case needs one of: adjudicator, admin, composition_owner" in r.text
    assert gate.case_registry(site.ws) == []


def test_the_composition_owner_retires_a_case_with_a_reason(team, site):
    client, signed = team
    report = gate.promote(site.ws, "alice")
    case_id = report.promoted[0].case_id
    site.ws.add_user("comp", "composition_owner", actor="alice")
    accounts.set_password(site.ws, "comp", "correct horse battery", actor="alice")
    csrf = sign_in(client, "comp")
    page = client.get("/tray")
    assert page.status_code == 200 and f'id="case-{case_id}"' in page.text and 'action="/tray/retire"' in page.text
    r = client.post("/tray/retire", data={"csrf": csrf, "case_id": case_id, "reason": "  "})
    assert r.status_code == 400 and "retiring needs a reason" in r.text
    r = client.post("/tray/retire", data={"csrf": csrf, "case_id": case_id, "reason": "policy changed"})
    assert (r.status_code, r.headers["location"]) == (303, "/tray")
    [reg] = [c for c in gate.case_registry(site.ws) if c["id"] == case_id]
    assert (reg["status"], reg["retired_by"], reg["retired_reason"]) == ("retired", "comp", "policy changed")
    assert _audit(site.ws, "case.retire") == [("comp", case_id, {"reason": "policy changed"})]
    listed = client.get("/api/tray").json()
    assert case_id not in [c["id"] for c in listed["cases"]] and listed["total"] == 1 and listed["signer"] == "websrv"


def test_a_keyed_adjudicator_labels_on_a_team_server(team, site):
    client, _ = team
    csrf = sign_in(client, "adj")
    cid = site.cands[0]
    r = client.post(f"/queue/{cid}/review", data={"csrf": csrf, "reference": "Five to seven days."})
    assert r.status_code == 303
    review = rev.latest_review(site.ws, cid)
    assert review is not None and (review.reviewer, review.signed_by) == ("adj", None)  # the web never signs


def test_the_proof_stays_with_its_request(team, site):
    client, _ = team
    csrf = sign_in(client, "adj")
    assert client.post(f"/queue/{site.cands[0]}/draft", data={"csrf": csrf, "critique": "x"}).status_code == 204
    with pytest.raises(PermissionDenied, match="no private key for user 'adj'"):
        site.ws.require("adj", SIGN_ROLES, "signing labels off")  # outside any request: the key is asked for
    with proved("adj"):
        site.ws.require("adj", SIGN_ROLES, "signing labels off")
    with pytest.raises(PermissionDenied):
        site.ws.require("adj", SIGN_ROLES, "signing labels off")
