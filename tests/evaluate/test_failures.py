"""Failure categories: failing answers grouped by what was said about them, ranked by frequency × severity."""

from __future__ import annotations

import json

import orjson

from evaltray.evaluate import failures, score
from evaltray.evaluate import run as runner
from evaltray.evaluate.targets import make_target
from tests.cli.runner import run as cli


def test_failures_group_by_reason_and_rank_by_frequency(ws, tmp_path, monkeypatch):
    (tmp_path / "failbot.py").write_text("def answer(inp):\n    return 'I cannot help with that.'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = [
        *[
            {"id": f"w{i}", "input": f"refund {i}", "expected": {"assertions": ["contains: refund window"]}}
            for i in range(4)
        ],
        *[{"id": f"o{i}", "input": f"order {i}", "expected": {"assertions": [r"regex: #W\d{7}"]}} for i in range(2)],
        {"id": "ok", "input": "hi", "expected": {"assertions": ["contains: cannot help"]}},
    ]
    path = tmp_path / "cases.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    made = runner.execute(ws, runner.plan_file_run(path), make_target("python:failbot:answer"), actor="alice")
    score.score_run(ws, made.run_id, ["contains", "regex"], "alice")
    found = failures.failure_categories(ws, made.run_id)
    assert [(c.cases, c.score) for c in found] == [(["w0", "w1", "w2", "w3"], 4.0), (["o0", "o1"], 2.0)]
    assert (found[0].name, found[0].examples) == ("missing 'refund window'", ["missing 'refund window'"])
    assert found[1].name.startswith("no match for")
    monkeypatch.chdir(ws.root)
    data = json.loads(cli("failures", made.run_id, "--json").stdout)
    assert [len(c["cases"]) for c in data] == [4, 2]
    assert "failure categories of" in cli("failures", made.run_id, "--top", "1").stdout
