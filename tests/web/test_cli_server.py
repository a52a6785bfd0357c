"""The CLI on a team server (``evaltray --server URL`` with ``EVALTRAY_TOKEN``): a label, the task queue and a
promotion go through the web app's JSON endpoints, as the token's user; a bad token is refused plainly."""

from __future__ import annotations

import orjson
import pytest
import sqlalchemy as sa
from click.testing import CliRunner

from evaltray.cli import cli
from evaltray.tray import candidates as pool
from evaltray.tray import gate
from evaltray.tray import review as rev
from evaltray.tray import tasks as tq
from evaltray.web import accounts, create_app
from tests.helpers import labeled_candidate, register

from .conftest import serving


@pytest.fixture
def team(site, tmp_path):
    """A team server with its own signing key (user ``websrv``), and adj's key not on it; adj signed one
    candidate off (where their key is); the server's URL and that candidate."""
    register(site.ws, "websrv", "composition_owner")
    signer = site.ws.signer("websrv")
    signed = labeled_candidate(site.ws, "Can I return it?", user="adj")
    (tmp_path / "config" / "keys" / "adj.key").unlink()
    with serving(create_app(site.ws, signer)) as url:
        yield url, signed


def _cli(url: str, secret: str, *args: str):
    env = {"EVALTRAY_SERVER": url, "EVALTRAY_TOKEN": secret}
    return CliRunner().invoke(cli, list(args), env=env, catch_exceptions=False)


def test_a_labeler_labels_and_takes_tasks_through_the_server(team, site):
    team, _ = team
    _, secret = accounts.create_token(site.ws, "lab", "alice")
    cid = site.cands[1]
    r = _cli(team, secret, "labels", "record", cid, "--reference", "Five to seven days.", "--json")
    assert r.exit_code == 0, r.output
    assert orjson.loads(r.stdout)["reviewer"] == "lab"
    review = rev.latest_review(site.ws, cid)
    assert review is not None and (review.reviewer, review.expected["reference"]) == ("lab", "Five to seven days.")
    r = _cli(team, secret, "tasks", "next", "--json")
    assert r.exit_code == 0, r.output
    task = orjson.loads(r.stdout)
    assert (task["kind"], task["ref"], task["assignee"]) == ("label", site.cands[0], "lab")  # oldest unlabeled
    r = _cli(team, secret, "tasks", "list", "--kind", "label", "--json")
    listed = {t["ref"]: t["assignee"] for t in orjson.loads(r.stdout)}
    assert listed[site.cands[0]] == "lab" and cid not in listed  # a label task is opened only for the unlabeled


def test_an_adjudicator_promotes_through_the_server_signed_by_its_key(team, site):
    team, signed = team
    _, secret = accounts.create_token(site.ws, "adj", "alice")
    r = _cli(team, secret, "promote", "--dry-run", "--json")
    assert r.exit_code == 0 and [p["candidate_id"] for p in orjson.loads(r.stdout)["promoted"]] == [signed]
    assert gate.case_registry(site.ws) == []
    r = _cli(team, secret, "promote", signed)
    assert r.exit_code == 0, r.output
    assert (
        "promoted 1 (1 new, 0 relabeled, 0 superseding); 0 blocked; 0 awaiting review" in r.stdout
    )  # of the one asked for
    [case] = gate.case_registry(site.ws)
    assert (case["candidate_id"], case["promoted_by"]) == (signed, "websrv")


def test_a_bad_token_a_missing_token_and_a_local_only_command_are_refused(team, site):
    team, _ = team
    r = _cli(team, "evt_not-a-token", "tasks", "list")
    assert r.exit_code == 1
    assert r.stderr == (
        f"Error: the server {team} refused the token in EVALTRAY_TOKEN (the API token is unknown or revoked); "
        "ask an admin for a new one (`evaltray user token NAME`)\n"
    )
    r = _cli(team, "", "tasks", "list")
    assert r.exit_code == 1 and "--server needs an API token in EVALTRAY_TOKEN" in r.stderr
    _, secret = accounts.create_token(site.ws, "vic", "alice")
    r = _cli(team, secret, "promote")
    assert r.exit_code == 1 and "promoting needs one of: adjudicator, admin, composition_owner" in r.stderr
    r = _cli(team, secret, "signoff", site.cands[0])
    assert r.exit_code == 1
    assert "--server works with: promote, tasks list, tasks next, labels record, review, reject;" in r.stderr
    assert tq.list_tasks(site.ws, kind="label") == []  # nothing was written for the refused calls
    r = _cli("http://127.0.0.1:9", "x", "tasks", "list")
    assert r.exit_code == 1 and "cannot reach the server http://127.0.0.1:9" in r.stderr


def test_review_and_reject_act_on_the_server_for_the_tokens_user(team, site):
    team, _ = team
    _, secret = accounts.create_token(site.ws, "lab", "alice")
    first, second, third = site.cands
    r = _cli(
        team, secret, "review", first, second, "--expected", "Five to seven days.", "--verdict", "fail",
        "--critique", "It gives no date.", "--tag", "vague", "--json",
    )  # fmt: skip
    assert r.exit_code == 0, r.output
    made = orjson.loads(r.stdout)
    assert [(d["candidate_id"], d["signed"]) for d in made] == [(first, False), (second, False)]
    for cid, d in zip((first, second), made, strict=True):
        review = rev.latest_review(site.ws, cid)
        assert review is not None and review.id == d["review_id"]
        assert (review.reviewer, review.verdict, review.critique, review.failure_tags) == (
            "lab", "fail", "It gives no date.", ["vague"],
        )  # fmt: skip
        assert review.expected["reference"] == "Five to seven days." and review.signed_by is None
        assert review.expected_first  # written before the verdict, as the blind rule wants
    r = _cli(team, secret, "reject", third, "--reason", "duplicate", "--note", "same as the first", "--json")
    assert r.exit_code == 0, r.output
    assert orjson.loads(r.stdout) == {"candidate_id": third, "reason": "duplicate", "dry_run": False}
    cand = pool.get(site.ws, third)
    assert (cand.status, cand.reject_reason) == (pool.REJECTED, "duplicate")
    with site.ws.tx() as conn:
        actors = (
            conn.execute(
                sa.text("SELECT actor FROM audit WHERE action = 'candidate.reject' AND object_id = :c"), {"c": third}
            )
            .scalars()
            .all()
        )
    assert actors == ["lab"]


def test_review_and_reject_on_the_server_are_refused_plainly(team, site):
    team, _ = team
    _, viewer = accounts.create_token(site.ws, "vic", "alice")
    r = _cli(team, viewer, "reject", site.cands[0], "--reason", "duplicate")
    assert r.exit_code == 1 and "rejecting a candidate needs one of: adjudicator, admin, labeler" in r.stderr
    _, secret = accounts.create_token(site.ws, "lab", "alice")
    r = _cli(team, secret, "reject", site.cands[0], "--reason", "no such reason")
    assert r.exit_code == 1 and r.stderr.startswith(f"Error: the server {team} refused: ")
    r = _cli(team, secret, "review", "--expected", "x")
    assert r.exit_code == 1 and "review labels the candidates named, non-interactively" in r.stderr
    r = _cli(team, secret, "review", site.cands[0], "--verdict", "pass")
    assert r.exit_code == 1 and "review labels the candidates named, non-interactively" in r.stderr
    r = _cli(team, secret, "reject", site.cands[0], "--reason", "duplicate", "--dry-run")
    assert r.exit_code == 1 and "--dry-run acts on a local workspace" in r.stderr
    r = _cli(team, secret, "review", "cand-nope", "--expected", "x", "--verdict", "pass")
    assert r.exit_code == 1 and "cand-nope" in r.stderr
    assert pool.get(site.ws, site.cands[0]).status != pool.REJECTED  # nothing refused was written
    assert all(rev.latest_review(site.ws, c) is None for c in site.cands)
