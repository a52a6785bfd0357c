"""``evaltray agreement``, ``spotcheck``, ``revalidate`` and the adjudicate flow through ``tasks``."""

from __future__ import annotations

import json

from evaltray.curate.plan import load_plan, plan_path
from evaltray.tray import candidates as pool
from evaltray.tray import gate, tasks
from evaltray.tray import review as rev
from tests.cli.runner import run as cli
from tests.helpers import labeled_candidate, register


def _overlap_everything(ws):
    toml = ws.root / "evaltray.toml"
    toml.write_text(toml.read_text().replace("overlap = 0.10", "overlap = 1.0"))


def test_a_disagreement_is_adjudicated_from_the_cli_and_counted(ws, monkeypatch):
    monkeypatch.chdir(ws.root)
    _overlap_everything(ws)
    register(ws, "ana", "labeler")
    register(ws, "bo", "labeler")
    cid = pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": "Can I return shoes?"}])
    cli("tasks", "add-candidates")
    for user, verdict in (("ana", "pass"), ("bo", "fail")):
        taken = json.loads(cli("-u", user, "tasks", "next", "--json").stdout)
        assert taken["ref"] == cid
        rev.record_review(ws, cid, user, rev.normalize_expected(ws, user, f"{user}'s answer"), verdict=verdict)
        cli("-u", user, "tasks", "close", taken["id"], "--outcome", "done")
    assert taken["kind"] == "overlap"
    [adj] = tasks.list_tasks(ws, kind="adjudicate", status="open")
    shown = cli("tasks", "show", adj.id).stdout
    assert "ana's answer" in shown and "bo's answer" in shown and "ana said pass, bo said fail" in shown
    refused = cli("tasks", "close", adj.id, "--outcome", "done", "--verdict", "pass", ok=False)
    assert refused.exit_code == 1 and "needs a verdict (pass or fail) and a reason" in refused.stderr
    cli("tasks", "close", adj.id, "--outcome", "done", "--verdict", "pass", "--reason", "returns are free")
    assert rev.latest_review(ws, cid).verdict == "pass"
    data = json.loads(cli("agreement", "--json").stdout)
    # one item rated [1 pass, 1 fail]: P̄ = 0, P̄e = 0.5, so Fleiss' κ = (0 - 0.5) / (1 - 0.5)
    assert data["overall"] == {"n": 1, "agree": 0, "share": 0.0, "kappa": -1.0, "fleiss_kappa": -1.0}
    assert (data["decisions"], data["undecided"], data["meets_bar"]) == (1, 0, False)
    who = {la["labeler"]: la["with_adjudicator"]["agree"] for la in data["labelers"]}
    assert who == {"ana": 1, "bo": 0}
    human = cli("agreement").stdout
    assert "human agreement 0.0% over 1 item(s)" in human and "below the 80% bar" in human


def test_spotcheck_and_revalidate_open_tasks(ws, monkeypatch):
    monkeypatch.chdir(ws.root)
    for i in range(3):
        labeled_candidate(ws, f"golden {i}")
    gate.promote(ws, "alice")
    opened = json.loads(cli("spotcheck", "--sample", "2", "--seed", "3", "--json").stdout)["tasks"]
    assert len(opened) == 2
    assert {tasks.get_task(ws, t).kind for t in opened} == {"spotcheck"}
    shown = cli("tasks", "show", opened[0]).stdout
    assert "golden" in shown and "Answer to" not in shown  # the row's label stays hidden
    dry = json.loads(cli("revalidate", "--guide-version", "2", "--slice", "refunds", "--dry-run", "--json").stdout)
    assert len(dry["cases"]) == 3 and tasks.list_tasks(ws, kind="revalidate") == []
    assert "sent 3 row(s)" in cli("revalidate", "--guide-version", "2", "--slice", "refunds").stdout
    none = cli("revalidate", "--guide-version", "2", ok=False)
    assert none.exit_code == 1 and "guide v2: name the behaviour codes or slices it changes" in none.stderr


def test_user_deactivate_names_the_heir(ws, monkeypatch):
    monkeypatch.chdir(ws.root)
    register(ws, "ana", "labeler")
    register(ws, "dee", "adjudicator")
    labeled_candidate(ws, "golden row")
    gate.promote(ws, "alice")
    pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": "new"}])
    cli("tasks", "add-candidates")
    cli("-u", "ana", "tasks", "next")
    missing = cli("user", "deactivate", "ana", ok=False)
    assert missing.exit_code == 1 and "--heir" in missing.stderr
    dry = json.loads(cli("user", "deactivate", "ana", "--heir", "dee", "--dry-run", "--json").stdout)
    assert (len(dry["tasks"]), dry["rows"], dry["removed"]) == (1, [], False)
    said = cli("user", "deactivate", "ana", "--heir", "dee").stdout
    assert said.strip() == "handed 1 task(s) and 0 golden row(s) of ana to dee; ana is no longer a user"
    assert "ana" not in cli("user", "list").stdout


def test_user_deactivate_hands_the_slices_plan_yaml_gives_them_to_the_slice_heir(ws, monkeypatch):
    monkeypatch.chdir(ws.root)
    register(ws, "ana", "composition_owner")
    register(ws, "dee", "adjudicator")
    register(ws, "po", "composition_owner")
    path = plan_path(ws)
    path.write_text(
        "# our plan: keep this comment\n"
        "dimensions:\n  feature: [refunds, billing, shipping]\ngrid: [feature]\n"
        "slices:\n  refunds: {owner: ana, pass_rate_floor: 0.8}\n  billing:\n    owner: dee\n"
        "  shipping:\n    owner: ana  # since May\n"
    )
    dry = json.loads(
        cli("user", "deactivate", "ana", "--heir", "dee", "--slice-heir", "po", "--dry-run", "--json").stdout
    )
    assert (dry["slices"], dry["slice_heir"], dry["removed"]) == (["refunds", "shipping"], "po", False)
    assert "owner: ana" in path.read_text()
    said = cli("user", "deactivate", "ana", "--heir", "dee", "--slice-heir", "po").stdout
    assert "handed slice(s) refunds, shipping to po" in said
    text = path.read_text()
    assert "# our plan: keep this comment" in text and "# since May" in text  # the layout is kept
    owners = {name: entry["owner"] for name, entry in load_plan(ws).slices.items()}
    assert owners == {"refunds": "po", "billing": "dee", "shipping": "po"}
    refused = cli("user", "deactivate", "dee", "--heir", "po", "--slice-heir", "dee", ok=False)
    assert refused.exit_code == 1 and "user 'dee' cannot inherit their own slices" in refused.stderr
    assert load_plan(ws).slices["billing"]["owner"] == "dee"  # refused before anything changed


def test_readthrough_marks_rows_read_per_release(ws, monkeypatch):
    monkeypatch.chdir(ws.root)
    ws.add_user("po", "viewer", actor="alice")
    none = cli("readthrough", ok=False)
    assert none.exit_code == 1 and "no release yet" in none.stderr
    for i in range(3):
        labeled_candidate(ws, f"row {i}")
    ids = [p.case_id for p in gate.promote(ws, "alice").promoted]
    cli("release", "create", "1.0.0")
    data = json.loads(cli("-u", "po", "readthrough", ids[0], ids[1], ids[0], "--json").stdout)
    assert data["marked"] == [ids[0], ids[1]]
    [po] = data["readers"]
    assert (po["reader"], po["release"], po["total"], po["share"]) == ("po", "1.0.0", 3, 0.6667)
    assert po["unread"] == [ids[2]]
    again = json.loads(cli("-u", "po", "readthrough", ids[1], "--json").stdout)
    assert again["marked"] == []  # a row counts once
    bad = cli("-u", "po", "readthrough", "c-nope", ok=False)
    assert bad.exit_code == 1 and "release 1.0.0 has no row c-nope" in bad.stderr
    alice = json.loads(cli("readthrough", "--reader", "alice", "--json").stdout)["readers"]
    assert [(r["reader"], len(r["read"]), r["total"]) for r in alice] == [("alice", 0, 3)]
    assert "po" in cli("readthrough").stdout
