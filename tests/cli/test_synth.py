"""``evaltray synth`` and ``evaltray score-live`` from the command line, against stub endpoints."""

from __future__ import annotations

import json
import re

import orjson

from evaltray.core.store import Workspace
from evaltray.evaluate.stub import StubServer
from evaltray.tray.candidates import list_candidates

from .runner import run

_N = re.compile(r"(?:Write|below) (\d+) different")


_QUERIES = {
    "pm": ["What is 9am PST in Berlin time?", "Move my standup to Thursday"],
    "exec": ["Which of my board meetings overlap next week?", "Cancel everything after 5pm today"],
    "ic": ["Accept the forwarded invite from Sam", "Who else is on the design review thread?"],
    "rewrite": ["is question one answerable", "pls answer q1"],
}


def _stub(body):
    """The generator for synth's prompts, a judge for the judge's (pass on even-numbered answers), else a bot."""
    text = body["messages"][-1]["content"]
    if text.startswith("You write test"):
        n = int(_N.search(text).group(1))
        who = re.search(r"^Persona: (\S+)", text, re.M)
        level = re.search(r"^Difficulty: (\S+)", text, re.M)
        start = ["easy", "medium"].index(level.group(1)) if level else 0  # one query per difficulty here
        return orjson.dumps(_QUERIES[who.group(1) if who else "rewrite"][start : start + n]).decode()
    if text.startswith("You are grading"):
        number = int(text.split("The assistant's answer:\n", 1)[1].split("\n", 1)[0].split()[-1])
        return '{"critique": "ok", "verdict": "%s"}' % ("pass" if number % 2 == 0 else "fail")
    return f"bot: {text}"


def test_synth_adds_answered_synthetic_candidates(shop):
    (shop / "personas.yaml").write_text("- name: pm\n  description: confused by time zones\n- exec\n- ic\n")
    (shop / "scenarios.yaml").write_text("reschedule: move a meeting\n")
    with StubServer(_stub) as stub:
        args = ("--generator", "openai:gen", "--target", "openai:bot", "--base-url", stub.base_url)
        r = run("synth", "--personas", "personas.yaml", "--scenarios", "scenarios.yaml", "--per-persona", "2", *args)
        again = run(
            "synth",
            "--personas",
            "personas.yaml",
            "--scenarios",
            "scenarios.yaml",
            "--per-persona",
            "2",
            *args,
            "--json",
        )
        rew = run("synth", "--rewrite", "t1", "--n", "2", "--difficulty", "easy", *args, "--json")
    assert r.stdout.splitlines()[0] == (
        "6 persona inputs generated: 0 duplicates, 0 target errors, 6 added to the pool as synthetic"
    )
    assert "What is 9am PST in Berlin time?" in r.stdout and r.stderr.startswith("asking openai:gen for persona inputs")
    # the same drafts again: every one is now a duplicate of a pool candidate, nothing is added or run
    data = json.loads(again.stdout)
    assert data["counts"] == {"new": 0, "duplicate": 6, "error": 0, "added": 0} and data["run_id"] is None
    assert json.loads(rew.stdout)["counts"]["added"] == 2
    pool = json.loads(run("candidates", "list", "--json").stdout)
    synthetic = [c for c in pool if c["source"] == "synthetic"]
    assert len(synthetic) == 8
    ws = Workspace.open(shop)
    try:
        outputs = {c.recorded_output for c in list_candidates(ws) if c.source == "synthetic"}
    finally:
        ws.close()
    assert outputs >= {"bot: Move my standup to Thursday", "bot: pls answer q1"}


def test_synth_refuses_two_kinds_at_once_and_a_missing_file(shop):
    r = run("synth", "--rewrite", "t1", "--multi-turn", "--generator", "openai:g", "--target", "replay", ok=False)
    assert r.exit_code == 1 and r.stderr.startswith("Error: --rewrite, --document and --multi-turn are different")
    r = run("synth", "--personas", "nope.yaml", "--generator", "openai:g", "--target", "replay", ok=False)
    assert (r.exit_code, r.stderr) == (1, "Error: nope.yaml: No such file or directory\n")


def test_score_live_refuses_an_uncalibrated_judge_then_flags_it(shop):
    with StubServer(_stub) as stub:
        (shop / "judge.yaml").write_text(f"name: strict\nmodel: judge\nbase_url: {stub.base_url}\n")
        refused = run("score-live", "--judge", "judge.yaml", ok=False)
        human = run("score-live", "--judge", "judge.yaml", "--allow-uncalibrated", "--human-share", "0.2")
        data = json.loads(run("score-live", "--judge", "judge.yaml", "--allow-uncalibrated", "--json").stdout)
    assert refused.exit_code == 1 and refused.stderr.splitlines()[-1].startswith(
        "Error: judge strict was never calibrated in this workspace"
    )
    lines = human.stdout.splitlines()
    assert lines[0] == "WARNING: UNCALIBRATED judge strict: its verdicts are counted as given"
    # the shop's ten traces: shipping answers are even-numbered (all pass), refunds odd (all fail)
    assert "on 10 traces of 10 sampled from 10 in the last 7d: 50.0% (95% 23.7%–76.3%)" in human.stdout
    assert "2 verdicts sent to the review queue as judge_check tasks" in human.stdout
    assert {k: (v["n"], v["passed"]) for k, v in data["slices"].items()} == {"refunds": (5, 0), "shipping": (5, 5)}
    assert data["calibrated"] is False and len(data["review_ids"]) == 1
    assert (shop / "live" / data["live_id"] / "verdicts.jsonl").exists()
