"""``evaltray tasks``, ``bugs``, ``taxonomy`` and ``review --tasks``: each one call of the queue's API."""

from __future__ import annotations

import csv
import json

from evaltray.tray import candidates as pool
from evaltray.tray import review as rev
from evaltray.tray import tasks
from tests.cli.runner import run as cli


def test_open_list_next_close_and_export_bugs(ws, monkeypatch, tmp_path):
    monkeypatch.chdir(ws.root)
    opened = json.loads(cli("tasks", "open", "failing_case", "r-abc/c-1", "--reason", "failed", "--json").stdout)
    tid = opened["task_id"]
    assert json.loads(cli("tasks", "open", "failing_case", "r-abc/c-1", "--reason", "x", "--json").stdout) == opened
    cli("tasks", "open", "judge_check", "r-abc/c-2", "--reason", "unsure", "--priority", "3", "--payload", '{"k": 1}')
    listed = json.loads(cli("tasks", "list", "--json").stdout)
    assert [(t["kind"], t["ref"], t["priority"]) for t in listed] == [
        ("judge_check", "r-abc/c-2", 3),
        ("failing_case", "r-abc/c-1", 0),
    ]
    assert listed[0]["payload"] == {"k": 1}
    taken = json.loads(cli("tasks", "next", "--kind", "failing_case", "--json").stdout)
    assert (taken["id"], taken["assignee"]) == (tid, "alice")
    closed = json.loads(
        cli(
            "tasks", "close", tid, "--outcome", "bug", "--critique", "wrong order id", "--tag", "ids", "--seconds", "40",
            "--json",
        ).stdout
    )  # fmt: skip
    assert (closed["status"], closed["outcome"], closed["seconds"], closed["tags"]) == ("closed", "bug", 40.0, ["ids"])
    assert "1 bug(s)" in cli("bugs", "list").stdout
    assert "wrote 1 bug(s)" in cli("bugs", "export", "--to", str(tmp_path / "bugs.csv")).stdout
    row = next(csv.DictReader((tmp_path / "bugs.csv").open()))
    assert (row["run_id"], row["case_id"], row["critique"], row["who"]) == ("r-abc", "c-1", "wrong order id", "alice")
    bad = cli("tasks", "close", tid, "--outcome", "done", ok=False)
    assert bad.exit_code == 1 and f"task {tid} (failing_case r-abc/c-1) is already closed (bug)" in bad.stderr
    bad = cli("tasks", "open", "label", "c1", "--reason", "x", "--payload", "[1]", ok=False)
    assert "--payload" in bad.stderr and "a JSON object" in bad.stderr
    assert "the queue holds nothing for you" in cli("tasks", "next", "--kind", "revalidate").stdout
    other = json.loads(cli("tasks", "next", "--json").stdout)["id"]
    assert "is back in the queue" in cli("tasks", "release", other).stdout
    assert json.loads(cli("tasks", "show", other, "--json").stdout)["assignee"] is None
    pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": "Hello?"}])
    assert len(json.loads(cli("tasks", "add-candidates", "--json").stdout)["tasks"]) == 1


def test_review_takes_tasks_of_every_kind(ws, monkeypatch):
    cid = pool.add_manual(ws, "alice", "sme", [{"role": "user", "content": "Can I pay with PayPal?"}], slice="payments")
    label = tasks.open_task(ws, "label", cid, reason="new", actor="alice")
    check = tasks.open_task(ws, "judge_check", "r-abc/c-2", reason="unparsed", actor="alice", priority=2)
    failing = tasks.open_task(ws, "failing_case", "r-abc/c-3", reason="failed", actor="alice", priority=1)
    monkeypatch.chdir(ws.root)
    answers = [
        "done", "pass", "judge was right", "",  # the judge check: outcome, verdict, critique, tags
        "bug", "crashes on refunds", "crash",  # the failing case: outcome, critique, tags
        "yes", "Yes, we take PayPal.", "", "", "pass", "", "", "payments", "easy", "typical",  # the label task
    ]  # fmt: skip
    result = cli("review", "--tasks", "--json", input="\n".join(answers) + "\n")
    done = json.loads(result.stdout[result.stdout.index("[\n") :])  # after the prompts
    assert [(d["task_id"], d["outcome"]) for d in done] == [(check, "done"), (failing, "bug"), (label, "done")]
    assert tasks.get_task(ws, check).verdict == "pass"
    assert tasks.get_task(ws, failing).tags == ["crash"]
    assert rev.latest_review(ws, cid).expected["reference"] == "Yes, we take PayPal."
    assert tasks.next_task(ws, "alice") is None


def test_the_taxonomy_commands(ws, monkeypatch, tmp_path):
    import orjson

    from evaltray.evaluate import run as runner
    from evaltray.evaluate import score
    from evaltray.evaluate.targets import make_target

    (tmp_path / "nobot.py").write_text("def answer(inp):\n    return 'no'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = [{"id": f"w{i}", "input": f"q {i}", "expected": {"assertions": ["contains: refund window"]}} for i in (1, 2)]
    path = tmp_path / "cases.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    made = runner.execute(ws, runner.plan_file_run(path), make_target("python:nobot:answer"), actor="alice")
    score.score_run(ws, made.run_id, ["contains"], "alice")
    monkeypatch.chdir(ws.root)
    assert "(proposed)" in cli("failures", made.run_id).stdout
    cli("taxonomy", "keep", made.run_id, "1", "--name", "misses the refund window")
    cli("taxonomy", "rename", "misses the refund window", "refund window")
    merged = json.loads(cli("taxonomy", "merge", "refund window", "--into", "policy", "--json").stdout)
    assert merged["merged"] == ["refund window"]
    listed = json.loads(cli("taxonomy", "list", "--json").stdout)
    assert [(r["name"], r["status"]) for r in listed] == [("refund window", "merged"), ("policy", "kept")]
    data = json.loads(cli("failures", made.run_id, "--json").stdout)
    assert [(c["name"], c["kept"]) for c in data["categories"]] == [("policy", True)]
    assert data["matrix"] == {"policy": {"high": 0, "medium": 0, "low": 2}}
    bad = cli("failures", ok=False)
    assert bad.exit_code == 1 and "name a scored run, or pass --by-release" in bad.stderr
