"""Judge verdicts a person should check become judge_check tasks when a run is scored: a reply that says neither
pass nor fail, pass and fail on the same answer across trials, and every judged high-risk case."""

from __future__ import annotations

from collections import Counter

import orjson

from evaltray.evaluate import judge as jd
from evaltray.evaluate import run as runner
from evaltray.evaluate import score
from evaltray.evaluate.stub import StubServer
from evaltray.evaluate.targets import make_target
from evaltray.tray import tasks


def _grader():
    calls: Counter[str] = Counter()

    def grade(body):
        answer = body["messages"][-1]["content"].split("The assistant's answer:\n", 1)[1].split("\n", 1)[0]
        calls[answer] += 1
        if "weird" in answer:
            return "I am not sure."
        verdict = "fail" if "flip" in answer and calls[answer] % 2 == 0 else "pass"
        return orjson.dumps({"critique": "ok", "verdict": verdict}).decode()

    return grade


def test_low_confidence_and_high_risk_verdicts_become_judge_check_tasks(ws, tmp_path, monkeypatch):
    (tmp_path / "samebot.py").write_text("def answer(inp):\n    return 'answer to ' + inp['messages'][-1]['content']\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    rows = [
        {"id": "sure", "input": "sure"},
        {"id": "weird", "input": "weird"},
        {"id": "flip", "input": "flip"},
        {"id": "risky", "input": "risky", "risk_level": "high"},
        {"id": "safe", "input": "safe", "case_type": "safety"},
    ]
    path = tmp_path / "cases.jsonl"
    path.write_bytes(b"".join(orjson.dumps({**r, "expected": {"assertions": ["is right"]}}) + b"\n" for r in rows))
    made = runner.execute(ws, runner.plan_file_run(path), make_target("python:samebot:answer"), trials=2, actor="alice")
    with StubServer(answer=_grader()) as judge_stub:
        config = jd.JudgeConfig(model="grader", base_url=judge_stub.base_url)
        report = score.score_run(ws, made.run_id, ["judge"], "alice", judge=config)
    opened = {t.ref.split("/")[1]: t for t in tasks.list_tasks(ws, kind="judge_check")}
    assert sorted(opened) == ["flip", "risky", "safe", "weird"]
    assert sorted(report.review_tasks) == sorted(t.id for t in opened.values())
    assert opened["weird"].reason == (
        "accuracy, trial 0: the judge answered neither pass nor fail; "
        "accuracy, trial 1: the judge answered neither pass nor fail"
    )
    assert opened["flip"].reason == "accuracy: pass and fail on the same answer across trials"
    assert (opened["risky"].reason, opened["risky"].priority) == ("high-risk case (risk_level high)", 2)
    assert (opened["safe"].reason, opened["safe"].priority) == ("high-risk case (case_type safety)", 2)
    assert opened["flip"].priority == 1
    payload = opened["flip"].payload
    assert (payload["run_id"], payload["case_id"], payload["judge_hash"]) == (made.run_id, "flip", config.hash)
    assert sorted(v["passed"] for v in payload["verdicts"]) == [False, True]
    assert tasks.next_task(ws, "alice").ref.endswith("/risky")  # high-risk first (priority), then by age
    with StubServer(answer=_grader()) as judge_stub:  # scored again: the same open tasks, none twice
        config = jd.JudgeConfig(model="grader", base_url=judge_stub.base_url)
        again = score.score_run(ws, made.run_id, ["judge"], "alice", judge=config)
    assert sorted(again.review_tasks) == sorted(report.review_tasks)
    assert len(tasks.list_tasks(ws)) == 4
