"""``evaltray plan …``, ``coverage`` and ``sample``."""

from __future__ import annotations

import json

from .runner import run


def test_sample_fills_the_pool_to_the_plan(shop):
    dry = json.loads(run("sample", "--size", "3", "--seed", "1", "--dry-run", "--json").stdout)
    assert len(dry["picks"]) == 3 and dry["added"] == [] and dry["dry_run"]
    assert json.loads(run("candidates", "list", "--json").stdout) == []
    run("plan", "init", "--feature", "refunds", "--feature", "shipping")
    r = run("sample", "--size", "4", "--seed", "1")
    assert r.stdout.startswith("added 4 trace(s) to the pool (plan plan.yaml)\n")
    listed = json.loads(run("candidates", "list", "--json").stdout)
    assert len(listed) == 4
    uniform = json.loads(run("sample", "--size", "2", "--uniform", "--json").stdout)
    assert {p["stratum"] for p in uniform["picks"]} == {"uniform"} and len(uniform["added"]) == 2


def test_plan_and_sample_errors(shop):
    (shop / "bad.yaml").write_text("dimensions: 5\n")
    for args, message in [
        (("coverage",), f"{shop / 'plan.yaml'}: no coverage plan; run `evaltray plan init`"),
        (("plan", "show", "--plan", "bad.yaml"), "bad.yaml: `dimensions` must be a mapping"),
        (("sample", "--size", "3", "--plan", "bad.yaml"), "bad.yaml: `dimensions` must be a mapping"),
        (("sample", "--size", "0"), "--size must be positive"),
        (
            ("sample", "--size", "3", "--outliers", "slow"),
            "unknown outlier kind 'slow' (one of: latency, cost, feedback, errors, long, tool_failures, terse, verbose, "
            "abandoned)",
        ),
    ]:
        r = run(*args, ok=False)
        assert (r.exit_code, r.stderr) == (1, f"Error: {message}\n"), args
    run("plan", "init")
    r = run("coverage", "--html", "plan.yaml/coverage.html", ok=False)
    assert r.exit_code == 1 and r.stderr.startswith("Error: cannot write plan.yaml/coverage.html: ")
    r = run("coverage", "--html", "cov.html", "--json")
    assert json.loads(r.stdout)["html"] == "cov.html" and (shop / "cov.html").read_text().startswith("<!doctype html>")


#: Feature names that were pasted into SQL rules: one matched every trace, the other did not parse.
WIDENS, BREAKS = "x' OR 1=1 OR feature='x", "x' OR 1=1 --"


def test_a_feature_named_like_sql_is_a_value_end_to_end(tmp_path, monkeypatch):
    """plan init -> plan show -> coverage -> sample with the issue's feature names: each rule is a condition
    whose value is bound, so each feature gets its own trace and no other (``refunds`` stays outside)."""
    run("--user", "alice", "init", "ws")
    monkeypatch.chdir(tmp_path / "ws")
    chats = tmp_path / "chats.jsonl"
    rows = [
        {"id": tid, "metadata": {"feature": feature}, "messages": [{"role": "user", "content": f"q {tid}"}]}
        for tid, feature in (("a1", WIDENS), ("a2", BREAKS), ("a3", "refunds"))
    ]
    chats.write_text("".join(json.dumps(r) + "\n" for r in rows))
    run("ingest", str(chats))
    run("plan", "init", "--feature", WIDENS, "--feature", BREAKS)
    shown = json.loads(run("plan", "show", "--json").stdout)
    assert shown["rules"][:2] == [
        {"when": [{"column": "feature", "op": "=", "value": feature}], "set": {"feature": feature}}
        for feature in (WIDENS, BREAKS)
    ]
    assert "\n feature = \"x' OR 1=1 OR feature='x\" │ feature=x' OR 1=1 OR feature='x " in run("plan", "show").stdout
    cells = json.loads(run("coverage", "--json").stdout)["cells"]
    assert len(cells) == 2 * 6 * 5  # two features × six scenarios × five personas
    assert {(c["feature"], c["traffic"], tuple(c["fillable"])) for c in cells} == {
        (WIDENS, 1, ("a1",)),
        (BREAKS, 1, ("a2",)),
    }
    picks = json.loads(run("sample", "--size", "3", "--dry-run", "--json").stdout)["picks"]
    assert sorted(p["trace_id"] for p in picks if p["stratum"].startswith("cell:")) == ["a1", "a2"]
