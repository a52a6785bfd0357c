"""``evaltray review`` and ``signoff``: the blind rule as the review session keeps it."""

from __future__ import annotations

import json
from pathlib import Path

from evaltray.core.store import Workspace
from evaltray.tray import review as rev

from .runner import run

ANSWERS = "\n".join(["Refunds take 5 days.", "", "", "pass", "", "", "refunds", "easy", "typical"]) + "\n"


def _expected_first(shop: Path, cid: str) -> bool:
    ws = Workspace.open(shop)
    try:
        return rev.latest_review(ws, cid).expected_first
    finally:
        ws.close()


def test_review_order_blind_and_output_first(shop):
    first, second = json.loads(run("candidates", "add", "--limit", "2", "--json").stdout)["added"]
    blind = run("review", first, input=ANSWERS).stdout
    assert blind.index("Expected behaviour") < blind.index("recorded output") < blind.index("Verdict")
    assert _expected_first(shop, first) is True
    shown = run("review", second, "--show-output-first", input=ANSWERS).stdout
    assert shown.index("recorded output") < shown.index("Expected behaviour") < shown.index("Verdict")
    assert _expected_first(shop, second) is False


def test_an_empty_label_is_asked_again(shop):
    (cid,) = json.loads(run("candidates", "add", "--limit", "1", "--json").stdout)["added"]
    r = run("review", cid, "--json", input="\n\n\n" + ANSWERS)
    assert r.stderr.count("the expected behaviour is empty") == 1
    assert json.loads(r.stdout[r.stdout.index("[\n") :]) == [{"candidate_id": cid, "review_id": 1, "signed": True}]


def test_scripted_review_and_signoff(shop):
    run("users", "add", "bob", "--role", "labeler")
    added = json.loads(run("candidates", "add", "--limit", "3", "--json").stdout)["added"]
    r = run(
        "--user", "bob", "review", *added[:2], "--expected", "An answer.", "--verdict", "pass", input="easy\ntypical\n"
    )
    assert r.stdout == "recorded 2 review(s); an adjudicator signs them off with `evaltray signoff`\n"
    assert all(_expected_first(shop, c) for c in added[:2])
    r = run("signoff", ok=False)
    assert (r.exit_code, r.stderr) == (1, "Error: nothing to sign: name candidates or pass --all\n")
    assert len(json.loads(run("signoff", "--all", "--json").stdout)["signed_reviews"]) == 2
    r = run("signoff", "--all")  # nothing left to sign is not an error
    assert (r.exit_code, r.stdout, r.stderr) == (0, "nothing to sign: no review in set 'main' awaits a sign-off\n", "")
    assert json.loads(run("signoff", "--all", "--json").stdout) == {"signed_reviews": [], "dry_run": False}
    run("reject", added[2], "--reason", "duplicate")
    r = run("review", added[2], "--expected", "x", ok=False)
    assert (r.exit_code, r.stderr) == (1, f"Error: candidate {added[2]} is rejected; it cannot be reviewed\n")
    r = run("review", "nope", "--expected", "x", ok=False)
    assert (r.exit_code, r.stderr) == (1, "Error: no candidate 'nope'\n")


def test_scripted_review_asks_for_what_the_gate_needs_then_promote_takes_it(shop):
    first, second = json.loads(run("candidates", "add", "--limit", "2", "--json").stdout)["added"]
    r = run("review", first, "--expected", "Refunds take 5 days.", "--verdict", "pass", input="hard\nedge\n")
    assert r.stderr == (
        f"{first}: no difficulty; the gate needs one (or pass --difficulty)\n"
        "Difficulty (easy, medium, hard): hard\n"  # the runner echoes the answers read from stdin
        f"{first}: no case type; the gate needs one (or pass --case-type)\n"
        "Case type (typical, edge, adversarial, safety): edge\n"
    )
    ws = Workspace.open(shop)
    try:
        got = rev.latest_review(ws, first)
        assert (got.difficulty, got.case_type, got.slice) == ("hard", "edge", None)  # slice: from the feature
    finally:
        ws.close()
    assert run("promote").stdout == "promoted 1 (1 new, 0 relabeled, 0 superseding); 0 blocked; 1 awaiting review\n"
    r = run("review", second, "--expected", "x", ok=False)  # a script with no answers: told at once, nothing stored
    assert (r.exit_code, r.stderr) == (
        1,
        f"{second}: no difficulty; the gate needs one (or pass --difficulty)\n"
        "Difficulty (easy, medium, hard): \n"
        f"Error: {second}: no difficulty, which the gate needs: pass --difficulty (easy, medium, hard); "
        "nothing was recorded\n",
    )
    ws = Workspace.open(shop)
    try:
        assert rev.latest_review(ws, second) is None
    finally:
        ws.close()
    r = run("review", second, "--expected", "x", "--difficulty", "easy", "--case-type", "typical")
    assert (r.stdout, r.stderr) == ("recorded 1 review(s)\n", "")


def test_labels_import_lists_at_most_max_issues_skipped_rows(shop, tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("candidate_id,expected,verdict\n" + "".join(f"nope{i},Answer.,pass\n" for i in range(25)))
    r = run("labels", "import", str(labels), ok=False)
    lines = r.stderr.splitlines()
    assert len(lines) == 22 and all(line.startswith(f"skipped {labels}:") for line in lines[:20])
    assert lines[20:] == [
        "… and 5 more skipped rows (all of them with --json)",
        f"Error: nothing imported from {labels}: all 25 row(s) were skipped",
    ]
    r = run("labels", "import", str(labels), "--max-issues", "2", "--json", ok=False)
    assert r.stderr.splitlines()[2:] == [
        "… and 23 more skipped rows (all of them with --json)",
        f"Error: nothing imported from {labels}: all 25 row(s) were skipped",
    ]
    assert len(json.loads(r.stdout)["problems"]) == 25


def test_candidates_label_sets_what_the_gate_needs_before_review(shop):
    (cid,) = json.loads(run("candidates", "add", "--limit", "1", "--json").stdout)["added"]
    r = run("candidates", "label", cid, "--scenario", "irate-user", "--tag", "vip", "--difficulty", "hard", "--json")
    data = json.loads(r.stdout)
    assert data["labels"] == {"feature": "shipping", "scenario": "irate-user", "persona": None, "tags": ["vip"]}
    assert (data["difficulty"], data["case_type"], data["slice"]) == ("hard", None, None)
    assert run("candidates", "label", cid, "--slice", "shipping/irate").stdout == (
        f"{cid}: feature shipping · scenario irate-user · tags ['vip']\n"
    )
    r = run("candidates", "label", cid, ok=False)
    assert r.stdout == "" and r.stderr.startswith("Error: nothing to set")


def test_labels_import_exits_1_when_nothing_was_imported(shop, tmp_path):
    """Failed before: every row skipped ("imported 0 label(s), skipped 1") exited 0, as did an empty file."""
    labels = tmp_path / "labels.csv"
    labels.write_text("candidate_id,expected,verdict\nnope,Answer.,pass\n")
    r = run("labels", "import", str(labels), ok=False)
    assert (r.exit_code, r.stdout) == (1, "imported 0 label(s), skipped 1\n")
    assert r.stderr.splitlines()[-1] == f"Error: nothing imported from {labels}: all 1 row(s) were skipped"
    labels.write_text("candidate_id,expected,verdict\n")
    r = run("labels", "import", str(labels), ok=False)
    assert (r.exit_code, r.stderr) == (1, f"Error: nothing imported from {labels}: it holds no rows\n")
    (cid,) = json.loads(run("candidates", "add", "--trace", "t1", "--json").stdout)["added"]
    labels.write_text(f"candidate_id,expected,verdict\n{cid},Answer.,pass\nnope,Answer.,pass\n")
    r = run("labels", "import", str(labels))  # one row in is a partial import: exit 0, the skipped row listed
    assert (r.stdout, r.stderr) == (
        "imported 1 label(s), skipped 1\n",
        f"skipped {labels}:3: no candidate 'nope'\n",
    )
