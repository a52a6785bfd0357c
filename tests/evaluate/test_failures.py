"""Failure categories: failing answers grouped by what was said about them, ranked by frequency × severity."""

from __future__ import annotations

import json

import orjson
import pytest

from evaltray.core.errors import NotFound
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
    assert [len(c["cases"]) for c in data["categories"]] == [4, 2]
    assert "failure categories of" in cli("failures", made.run_id, "--top", "1").stdout


def _failing_run(ws, tmp_path, monkeypatch, rows):
    (tmp_path / "failbot.py").write_text("def answer(inp):\n    return 'I cannot help with that.'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    path = tmp_path / f"cases-{len(rows)}.jsonl"
    path.write_bytes(b"".join(orjson.dumps(r) + b"\n" for r in rows))
    made = runner.execute(ws, runner.plan_file_run(path), make_target("python:failbot:answer"), actor="alice")
    score.score_run(ws, made.run_id, ["contains", "regex"], "alice")
    return made.run_id


def _refund(i, **extra):
    return {"id": f"w{i}", "input": f"refund {i}", "expected": {"assertions": ["contains: refund window"]}, **extra}


def _order(i, **extra):
    return {"id": f"o{i}", "input": f"order {i}", "expected": {"assertions": [r"regex: #W\d{7}"]}, **extra}


def test_kept_categories_name_later_failures_and_merge(ws, tmp_path, monkeypatch):
    rows = [_refund(0, risk_level="high"), *[_refund(i) for i in (1, 2, 3)], _order(0, case_type="edge"), _order(1)]
    run1 = _failing_run(ws, tmp_path, monkeypatch, rows)
    found = failures.failure_categories(ws, run1)
    # refunds: severities 3, 1, 1, 1 -> mean 1.5, score 6; orders: 1.5 and 1 -> mean 1.25, score 2.5
    assert [(c.score, c.severity, c.kept) for c in found] == [(6.0, 1.5, False), (2.5, 1.25, False)]
    assert failures.failure_matrix(found) == {
        found[0].name: {"high": 1, "medium": 0, "low": 3},
        found[1].name: {"high": 0, "medium": 0, "low": 2},
    }
    assert found[0].terms == ["missing", "missing refund", "refund"]
    kept = failures.keep_category(ws, run1, 1, "misses the refund window", "alice")
    assert kept == {"name": "misses the refund window", "tags": [], "terms": [found[0].terms], "status": "kept"}
    run2 = _failing_run(ws, tmp_path, monkeypatch, [_refund(7), _order(7)])
    again = failures.failure_categories(ws, run2)
    assert [(c.name, c.cases, c.kept) for c in again][0] == ("misses the refund window", ["w7"], True)
    assert not again[1].kept and again[1].cases == ["o7"]
    with pytest.raises(failures.TaxonomyError, match="already in the taxonomy"):
        failures.keep_category(ws, run2, 1, "x", "alice")
    with pytest.raises(failures.TaxonomyError, match="exists already; merge into it instead"):
        failures.keep_category(ws, run2, 2, "misses the refund window", "alice")
    with pytest.raises(failures.TaxonomyError, match="has 2 failure categories; there is no number 3"):
        failures.keep_category(ws, run2, 3, "x", "alice")
    failures.keep_category(ws, run2, 2, "order id format", "alice")
    failures.rename_category(ws, "order id format", "wrong order id", "alice")
    merged = failures.merge_categories(ws, ["misses the refund window", "wrong order id"], "policy misses", "alice")
    assert merged["merged"] == ["misses the refund window", "wrong order id"]
    assert [(k["name"], k["status"], k["merged_into"]) for k in failures.taxonomy(ws)] == [
        ("misses the refund window", "merged", "policy misses"),
        ("wrong order id", "merged", "policy misses"),
        ("policy misses", "kept", None),
    ]
    assert [(c.name, sorted(c.cases)) for c in failures.failure_categories(ws, run2)] == [
        ("policy misses", ["o7", "w7"])
    ]
    with pytest.raises(failures.TaxonomyError, match="no failure category 'wrong order id' in the taxonomy"):
        failures.rename_category(ws, "wrong order id", "y", "alice")


def test_failing_cases_go_to_the_queue_more_severe_first(ws, tmp_path, monkeypatch):
    from evaltray.tray import tasks

    run_id = _failing_run(ws, tmp_path, monkeypatch, [_refund(0, risk_level="high"), _refund(1), _order(0)])
    sent = failures.send_failing(ws, run_id, "alice")
    assert sorted(sent) == ["o0", "w0", "w1"]
    w0 = tasks.get_task(ws, sent["w0"])
    assert (w0.kind, w0.ref, w0.priority, w0.payload["severity"]) == ("failing_case", f"{run_id}/w0", 2, "high")
    assert tasks.get_task(ws, sent["o0"]).priority == 0
    assert failures.send_failing(ws, run_id, "alice") == sent  # idempotent while open
    with pytest.raises(NotFound, match="has no failure category 'nope'"):
        failures.send_failing(ws, run_id, "alice", "nope")
    monkeypatch.chdir(ws.root)
    data = json.loads(cli("failures", run_id, "--send", "--json").stdout)
    assert data["tasks"] == sent and sorted(data["matrix"]) == sorted(c["name"] for c in data["categories"])


def test_top_five_per_release(ws, tmp_path, monkeypatch):
    from evaltray.tray import release as rel
    from tests.helpers import tray_of

    (tmp_path / "failbot.py").write_text("def answer(inp):\n    return 'no'\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    tray_of(ws, {"refunds": 3})
    rel.create_release(ws, "1.0.0", "alice")
    made = runner.execute(ws, runner.plan_release_run(ws, "1.0.0"), make_target("python:failbot:answer"), actor="alice")
    score.score_run(ws, made.run_id, ["exact"], "alice")
    found = failures.top_by_release(ws)
    assert list(found) == ["1.0.0"] and found["1.0.0"]["run_id"] == made.run_id
    assert sum(len(c.cases) for c in found["1.0.0"]["categories"]) == 3
    monkeypatch.chdir(ws.root)
    assert "release 1.0.0" in cli("failures", "--by-release").stdout
