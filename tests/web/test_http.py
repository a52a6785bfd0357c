"""The web app over HTTP (FastAPI's TestClient): accounts, CSRF, roles on every write, the blind rule, drafts,
time per row, the guide, traces and API tokens."""

from __future__ import annotations

import re

import pytest
import sqlalchemy as sa

from evaltray.core.errors import EvaltrayError, NotFound, PermissionDenied
from evaltray.tray import candidates as pool
from evaltray.tray import review as rev
from evaltray.web import accounts, guide, reviewing
from evaltray.web.app import CSP

from .conftest import OUTPUT, PASSWORD, add_candidate, ingest_chat, sign_in


def _reviews(ws, cid):
    with ws.tx() as conn:
        return conn.execute(sa.select(ws.t["reviews"]).where(ws.t["reviews"].c.candidate_id == cid)).all()


# ----------------------------------------------------------------------------- accounts


def test_a_page_without_a_session_sends_to_sign_in(client):
    r = client.get("/queue?x=1")
    assert (r.status_code, r.headers["location"]) == (303, "/login?next=%2Fqueue%3Fx%3D1")
    r = client.get("/api/queue")
    assert (r.status_code, r.json()) == (401, {"error": "sign in first"})


def test_sign_in_sets_an_httponly_samesite_session_and_a_wrong_password_says_nothing_more(client, site):
    token = client.get("/login").cookies["evaltray_login_csrf"]
    for name, password in (("lab", "wrong password!"), ("nobody", PASSWORD)):
        r = client.post("/login", data={"name": name, "password": password, "csrf": token})
        assert r.status_code == 401 and "wrong name or password" in r.text
        token = r.cookies["evaltray_login_csrf"]  # each form gets a fresh one
    r = client.post("/login", data={"name": "lab", "password": PASSWORD, "csrf": token, "next": "//evil.example/x"})
    assert (r.status_code, r.headers["location"]) == (303, "/")  # never off-site
    cookie = r.headers["set-cookie"]
    assert "evaltray_session=" in cookie and "HttpOnly" in cookie and "SameSite=strict" in cookie
    assert "Max-Age=43200" in cookie
    with site.ws.tx() as conn:  # only the secret's hash is kept
        stored = conn.execute(sa.select(site.ws.t["web_sessions"].c.token_hash)).scalars().all()
    assert client.cookies["evaltray_session"] not in stored and len(stored) == 1


def test_sign_in_without_the_forms_csrf_token_is_refused(client):
    client.get("/login")
    r = client.post("/login", data={"name": "lab", "password": PASSWORD, "csrf": "guessed"})
    assert r.status_code == 403 and "CSRF token is missing or wrong" in r.text
    assert "evaltray_session" not in client.cookies


def test_set_password_is_an_admins_act_and_ends_the_users_sessions(client, site):
    sign_in(client, "lab")
    assert client.get("/").status_code == 200
    with pytest.raises(PermissionDenied, match="user 'lab' is a labeler; setting passwords needs one of: admin"):
        accounts.set_password(site.ws, "lab", "a new long password", actor="lab")
    with pytest.raises(EvaltrayError, match="a password needs at least 10 characters"):
        accounts.set_password(site.ws, "lab", "short", actor="alice")
    with pytest.raises(NotFound, match="no user 'zed'"):
        accounts.set_password(site.ws, "zed", "a new long password", actor="alice")
    accounts.set_password(site.ws, "lab", "a new long password", actor="alice")
    assert client.get("/").status_code == 303  # the old session ended
    with site.ws.tx() as conn:
        hashed = conn.execute(sa.select(site.ws.t["users"].c.password_hash).where(site.ws.t["users"].c.name == "lab"))
        assert hashed.scalar().startswith("$argon2id$")


def test_every_answer_carries_the_security_headers(client):
    r = client.get("/login")
    assert r.headers["content-security-policy"] == CSP
    assert "script-src 'self'" in CSP and "unsafe-inline" not in CSP
    assert (r.headers["x-content-type-options"], r.headers["x-frame-options"]) == ("nosniff", "DENY")
    assert r.headers["cache-control"] == "no-store"


def test_an_unknown_page_is_a_404_page_that_does_not_echo_the_path(client):
    sign_in(client, "lab")
    r = client.get("/<script>x</script>")
    assert r.status_code == 404 and "no such page" in r.text and "<script>x" not in r.text


# ----------------------------------------------------------------------------- CSRF and roles


def test_a_post_without_the_sessions_csrf_token_writes_nothing(client, site):
    csrf = sign_in(client, "lab")
    cid = site.cands[0]
    for data in ({"reason": "duplicate"}, {"reason": "duplicate", "csrf": csrf[::-1]}):
        r = client.post(f"/queue/{cid}/reject", data=data)
        assert r.status_code == 403 and "CSRF token is missing or wrong" in r.text
    assert pool.get(site.ws, cid).status == "pending"
    r = client.post(f"/queue/{cid}/reject", data={"reason": "duplicate", "csrf": csrf})
    assert r.status_code == 303 and pool.get(site.ws, cid).status == "rejected"


def test_the_csrf_header_htmx_sends_is_accepted(client, site):
    csrf = sign_in(client, "lab")
    r = client.post(f"/queue/{site.cands[0]}/draft", data={"critique": "so far"}, headers={"X-CSRF-Token": csrf})
    assert r.status_code == 204
    assert reviewing.open_draft(site.ws, "lab", site.cands[0]).get("critique") == "so far"


def test_a_viewer_cannot_label_reject_or_save_a_draft(client, site):
    csrf = sign_in(client, "vic")
    cid = site.cands[0]
    page = client.get(f"/queue/{cid}")
    assert page.status_code == 200 and 'id="review-form"' not in page.text  # reads, no form
    for path, data in (
        ("review", {"reference": "Say 5-7 days."}),
        ("expected", {"reference": "Say 5-7 days."}),
        ("draft", {"critique": "x"}),
        ("reject", {"reason": "duplicate"}),
    ):
        r = client.post(f"/queue/{cid}/{path}", data={**data, "csrf": csrf})
        assert r.status_code == 403, path
        assert "user &#39;vic&#39; is a viewer" in r.text, path
    assert _reviews(site.ws, cid) == [] and pool.get(site.ws, cid).status == "pending"
    with site.ws.tx() as conn:  # reading kept no draft either
        assert conn.execute(sa.select(site.ws.t["review_drafts"])).all() == []


def test_a_labeler_is_refused_promotion_and_sign_off_and_an_adjudicator_is_sent_to_the_cli(client, site):
    csrf = sign_in(client, "lab")
    r = client.post("/tray/promote", data={"csrf": csrf})
    assert r.status_code == 403
    assert "user &#39;lab&#39; is a labeler; promoting needs one of: adjudicator, admin, composition_owner" in r.text
    r = client.post(f"/queue/{site.cands[0]}/signoff", data={"csrf": csrf})
    assert r.status_code == 403 and "signing labels off needs one of: adjudicator, admin" in r.text
    client.cookies.clear()
    csrf = sign_in(client, "adj")
    r = client.post("/tray/promote", data={"csrf": csrf})
    assert r.status_code == 409 and "run `evaltray -u adj promote` where your key is" in r.text  # no server key
    with site.ws.tx() as conn:
        assert conn.execute(sa.select(sa.func.count()).select_from(site.ws.t["cases"])).scalar() == 0


# ----------------------------------------------------------------------------- the review queue


def test_the_queue_opens_on_the_oldest_candidate_and_names_its_neighbours(client, site):
    sign_in(client, "lab")
    r = client.get("/queue")
    assert r.headers["location"] == f"/queue/{site.cands[0]}"
    page = client.get(f"/queue/{site.cands[1]}").text
    assert f'id="prev-link" href="/queue/{site.cands[0]}"' in page
    assert f'id="next-link" href="/queue/{site.cands[2]}"' in page and "2 of 3" in page
    assert [c["id"] for c in client.get("/api/queue").json()] == site.cands


def test_blind_review_hides_the_output_until_the_expected_behaviour_is_written(client, site):
    csrf = sign_in(client, "lab")
    cid = site.cands[0]
    page = client.get(f"/queue/{cid}").text
    assert OUTPUT not in page and "recorded_trajectory" not in page and 'id="blind-note"' in page
    assert "Policy 4.2: refunds are paid within 7 business days." in page  # the context is shown
    r = client.post(f"/queue/{cid}/review", data={"csrf": csrf, "verdict": "pass", "reference": "x"})
    assert r.status_code == 400 and "write the expected behaviour to see it first" in r.text
    r = client.post(f"/queue/{cid}/expected", data={"csrf": csrf}, headers={"HX-Request": "true"})
    assert r.status_code == 400
    assert (
        r.text
        == '<p class="error">the expected behaviour is empty: write a reference answer, a behavior code, assertions or tool calls</p>'
    )
    assert OUTPUT not in client.get(f"/queue/{cid}").text
    r = client.post(
        f"/queue/{cid}/expected", data={"csrf": csrf, "reference": "Say 5 to 7 days."}, headers={"HX-Request": "true"}
    )
    assert r.status_code == 200 and f'<pre class="text" id="recorded-output">{OUTPUT}</pre>' in r.text
    assert OUTPUT in client.get(f"/queue/{cid}").text  # a reload keeps it shown
    r = client.post(
        f"/queue/{cid}/review",
        data={"csrf": csrf, "verdict": "fail", "critique": "No order lookup.", "failure_tags": "no_lookup, vague"},
    )
    assert (r.status_code, r.headers["location"]) == (303, "/queue")
    review = rev.latest_review(site.ws, cid)
    assert review is not None
    assert (review.reviewer, review.verdict, review.critique) == ("lab", "fail", "No order lookup.")
    assert (review.expected["reference"], review.expected_first) == ("Say 5 to 7 days.", True)
    assert (review.failure_tags, review.guide_version, review.signed_by) == (["no_lookup", "vague"], "1", None)
    assert [c.id for c in reviewing.queue_items(site.ws, "lab")] == site.cands[1:]


def test_a_queue_that_is_not_blind_shows_the_output_first_and_the_review_says_so(client, site):
    site.ws.settings.write_expected_first = False
    csrf = sign_in(client, "lab")
    cid = site.cands[1]
    assert OUTPUT in client.get(f"/queue/{cid}").text
    client.post(f"/queue/{cid}/review", data={"csrf": csrf, "reference": "Five to seven days.", "verdict": "pass"})
    review = rev.latest_review(site.ws, cid)
    assert review is not None and (review.verdict, review.expected_first) == ("pass", False)


def test_a_draft_survives_a_reload_and_the_time_per_row_is_recorded(client, site, monkeypatch):
    csrf = sign_in(client, "lab")
    cid = site.cands[2]
    stamps = iter(["2026-01-01T10:00:00Z", "2026-01-01T10:00:00Z"])
    monkeypatch.setattr(reviewing, "now_iso", lambda: next(stamps, "2026-01-01T10:01:40Z"))
    client.get(f"/queue/{cid}")  # opened at 10:00:00
    data = {"reference": "Check the order <first>", "critique": "half & written", "failure_tags": "a, b"}
    assert client.post(f"/queue/{cid}/draft", data={**data, "csrf": csrf}).status_code == 204
    page = client.get(f"/queue/{cid}").text
    assert ">Check the order &lt;first&gt;</textarea>" in page and ">half &amp; written</textarea>" in page
    assert 'value="a, b"' in page
    client.post(f"/queue/{cid}/review", data={"csrf": csrf})  # a label without a verdict: the draft's fields
    review = rev.latest_review(site.ws, cid)
    assert review is not None and review.expected["reference"] == "Check the order <first>"
    assert (review.verdict, review.critique, review.failure_tags) == (None, "half & written", ["a", "b"])
    [timing] = reviewing.timings(site.ws, cid)
    assert (timing["reviewer"], timing["outcome"], timing["review_id"], timing["seconds"]) == (
        "lab",
        "review",
        review.id,
        100,
    )
    assert reviewing.open_draft(site.ws, "lab", cid).values == {}  # the draft went with the review


def test_drafts_are_each_reviewers_own(client, site):
    csrf = sign_in(client, "lab")
    client.post(f"/queue/{site.cands[0]}/draft", data={"critique": "mine", "csrf": csrf})
    assert reviewing.open_draft(site.ws, "lab2", site.cands[0]).get("critique") == ""


def test_reject_needs_a_reason_and_records_it_with_the_time(client, site):
    csrf = sign_in(client, "lab")
    cid = site.cands[0]
    r = client.post(f"/queue/{cid}/reject", data={"csrf": csrf, "reason": ""})
    assert r.status_code == 400 and "pick a reason to reject it (not_plausible, unlabelable" in r.text
    r = client.post(f"/queue/{cid}/reject", data={"csrf": csrf, "reason": "frivolous"})
    assert r.status_code == 400 and "unknown reject reason &#39;frivolous&#39;" in r.text
    client.post(f"/queue/{cid}/reject", data={"csrf": csrf, "reason": "out_of_scope", "note": "not ours"})
    cand = pool.get(site.ws, cid)
    assert (cand.status, cand.reject_reason) == ("rejected", "out_of_scope")
    assert [t["outcome"] for t in reviewing.timings(site.ws, cid)] == ["reject"]


def test_an_empty_queue_says_so(client, site):
    csrf = sign_in(client, "lab")
    for cid in site.cands:
        client.post(f"/queue/{cid}/reject", data={"csrf": csrf, "reason": "duplicate"})
    r = client.get("/queue")
    assert r.status_code == 200 and "Nothing waits for a label." in r.text


# ----------------------------------------------------------------------------- guide


def test_the_guide_is_published_by_its_owner_and_labels_record_the_workspaces_version(client, site):
    csrf = sign_in(client, "lab")
    r = client.post("/guide", data={"csrf": csrf, "version": "2", "body": "Be kind."})
    assert r.status_code == 403 and "publishing the labeling guide needs one of: adjudicator, admin" in r.text
    client.cookies.clear()
    csrf = sign_in(client, "adj")
    r = client.post("/guide", data={"csrf": csrf, "version": "1", "body": "Judge the <answer>, not the tone."})
    assert (r.status_code, r.headers["location"]) == (303, "/guide?version=1")
    page = client.get("/guide").text
    assert '<pre class="text" id="guide-body">Judge the &lt;answer&gt;, not the tone.</pre>' in page
    r = client.post("/guide", data={"csrf": csrf, "version": "1", "body": "Changed."})
    assert r.status_code == 400 and "guide version 1 is already published" in r.text
    guide.publish(site.ws, accounts.Actor("adj", accounts.Role.ADJUDICATOR), "2", "Second.")
    assert [g.version for g in guide.versions(site.ws)] == ["2", "1"]  # newest first
    assert re.search(r'id="current-version">1<', client.get("/guide").text)


# ----------------------------------------------------------------------------- traces


def test_traces_are_searched_with_bound_values_and_text_not_scrubbed_is_hidden(client, site, tmp_path):
    ingest_chat(site.ws, tmp_path, "t-plain", "Where is my parcel?", scrub=False)
    ingest_chat(site.ws, tmp_path, "t-pct", "I want 100% of it back", scrub=False)
    sign_in(client, "lab")
    site.ws.settings.scrub = False
    page = client.get("/traces").text
    assert "Where is my parcel?" in page and "I want 100% of it back" in page
    page = client.get("/traces", params={"q": "100%"}).text
    assert "t-pct" in page and "t-plain" not in page
    page = client.get("/traces", params={"q": "' OR 1=1 --", "feature": "x') OR (1=1"}).text
    assert "No trace matches." in page
    site.ws.settings.scrub = True  # the workspace scrubs, and these were stored as recorded
    page = client.get("/traces").text
    assert "Where is my parcel?" not in page and page.count("not scrubbed yet: hidden") == 2
    page = client.get("/trace", params={"id": "t-plain"}).text
    assert "Where is my parcel?" not in page and 'id="unscrubbed"' in page
    assert client.get("/trace", params={"id": "nope"}).status_code == 404


def test_a_trace_goes_to_the_pool_by_a_curator_only(client, site, tmp_path):
    ingest_chat(site.ws, tmp_path, "t/1 'quoted'", "Where is my parcel?", scrub=False)
    site.ws.settings.scrub = False
    csrf = sign_in(client, "vic")
    assert 'id="to-pool"' not in client.get("/trace", params={"id": "t/1 'quoted'"}).text
    r = client.post("/trace/candidate", data={"csrf": csrf, "trace_id": "t/1 'quoted'"})
    assert r.status_code == 403 and "adding candidates needs one of" in r.text
    client.cookies.clear()
    csrf = sign_in(client, "lab")
    r = client.post("/trace/candidate", data={"csrf": csrf, "trace_id": "t/1 'quoted'"})
    cid = pool.candidate_id("main", "t/1 'quoted'")
    assert r.status_code == 303 and r.headers["location"].endswith(f"added={cid}")
    cand = pool.get(site.ws, cid)
    assert (cand.trace_id, cand.created_by, cand.recorded_output) == ("t/1 'quoted'", "lab", "We are on it.")
    again = client.post("/trace/candidate", data={"csrf": csrf, "trace_id": "t/1 'quoted'"})
    assert again.headers["location"] == r.headers["location"]  # already there: no second row
    page = client.get(f"/queue/{cid}").text
    assert "We are on it." not in page  # from a trace too, the output waits for the expected behaviour


# ----------------------------------------------------------------------------- API tokens


def test_an_api_token_acts_without_csrf_until_it_is_revoked(client, site):
    token_id, secret = accounts.create_token(site.ws, "lab", "alice", label="CI")
    assert secret.startswith("evt_")
    auth = {"Authorization": f"Bearer {secret}"}
    assert client.get("/api/whoami", headers=auth).json() == {"name": "lab", "role": "labeler"}
    r = client.post(f"/queue/{site.cands[0]}/reject", data={"reason": "duplicate"}, headers=auth)
    assert r.status_code == 200 and r.json() == {"candidate_id": site.cands[0], "reason": "duplicate"}
    assert pool.get(site.ws, site.cands[0]).status == "rejected"
    r = client.post("/tray/promote", headers=auth)
    assert r.status_code == 403 and r.json()["error"].startswith("user 'lab' is a labeler; promoting")
    [listed] = accounts.list_tokens(site.ws)
    assert (listed["name"], listed["label"], listed["last_used_at"] is not None) == ("lab", "CI", True)
    assert secret not in str(listed)
    with pytest.raises(PermissionDenied):
        accounts.revoke_token(site.ws, token_id, "lab")
    accounts.revoke_token(site.ws, token_id, "alice")
    r = client.get("/api/whoami", headers=auth)
    assert (r.status_code, r.json()) == (401, {"error": "the API token is unknown or revoked"})
    with pytest.raises(NotFound, match="no live API token 1"):
        accounts.revoke_token(site.ws, token_id, "alice")


def test_a_role_change_takes_effect_on_the_next_request(client, site):
    csrf = sign_in(client, "lab2")
    site.ws.add_user("lab2", "viewer", actor="alice")
    r = client.post(f"/queue/{site.cands[0]}/draft", data={"critique": "x", "csrf": csrf})
    assert r.status_code == 403


def test_a_rejected_candidate_cannot_be_reviewed(client, site):
    cid = add_candidate(site.ws, "Another question")
    pool.reject(site.ws, cid, "duplicate", "alice")
    csrf = sign_in(client, "lab")
    r = client.post(f"/queue/{cid}/review", data={"csrf": csrf, "reference": "x"})
    assert r.status_code == 400 and f"candidate {cid} is rejected; it cannot be reviewed" in r.text


def test_sign_out_needs_the_csrf_token_and_ends_the_session(client, site):
    csrf = sign_in(client, "lab")
    assert client.post("/logout", data={}).status_code == 403
    assert client.get("/").status_code == 200
    r = client.post("/logout", data={"csrf": csrf})
    assert (r.status_code, r.headers["location"]) == (303, "/login")
    with site.ws.tx() as conn:
        assert conn.execute(sa.select(site.ws.t["web_sessions"])).all() == []
